import { X509Certificate } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createCertificateAuthority, issueLeafCertificate } from '../../certs/authority.js';
import { inProcessMinter } from '../../certs/in-process-minter.js';
import {
  createCertificateStore,
  ensureCertificateAuthority,
  ServedLeaf,
  leafNamesFor,
  loadCertificateAuthority,
  regenerateCertificateAuthority,
} from '../../certs/store.js';
import { homePaths } from '../../home-paths.js';
import { DevproxyError } from '../../errors.js';

const ROUTED = new Set(['api.feature-x.localhost', 'ui.feature-x.localhost', 'api.contoso.localhost', 'feature-x.localhost']);
const isKnownName = (name: string): boolean => ROUTED.has(name);
const DAY_MS = 86_400_000;

let home: string;

beforeEach(async () => {
  home = await mkdtemp(join(tmpdir(), 'devproxy-certs-'));
});

afterEach(async () => {
  await rm(home, { recursive: true, force: true });
});

function collectingLogger(): { messages: string[]; logger: { info(m: string): void; warn(m: string): void; error(m: string): void } } {
  const messages: string[] = [];
  const push = (m: string): void => {
    messages.push(m);
  };
  return { messages, logger: { info: push, warn: push, error: push } };
}

async function expectCode(promise: Promise<unknown>, code: string): Promise<DevproxyError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(DevproxyError);
  expect((error as DevproxyError).code).toBe(code);
  return error as DevproxyError;
}

describe('ServedLeaf', () => {
  it.each([
    ['ui.feature-x.localhost', 'api.feature-x.localhost', true],
    ['ui.feature-x.localhost', 'feature-x.localhost', true],
    ['UI.Feature-X.localhost.', 'ui.feature-x.localhost', true],
    ['ui.feature-x.localhost', 'blob.contoso.localhost', false],
    ['ui.feature-x.localhost', 'a.b.feature-x.localhost', false],
    ['ui.feature-x.localhost', 'localhost', false],
    ['localhost', 'localhost', true],
    ['api.feature-x.localhost', 'api.feature-x.localhost', true],
    ['feature-x.localhost', 'feature-x.localhost', true],
    ['feature-x.localhost', 'api.feature-x.localhost', false],
    ['localhost', 'api.feature-x.localhost', false],
    [undefined, 'localhost', true],
    [undefined, 'api.feature-x.localhost', false],
    ['bad name/..', 'localhost', false],
  ] as const)('SNI %s covers %s: %s', (sni, host, covered) => {
    expect(new ServedLeaf(sni).certificateCovers(host)).toBe(covered);
  });
});

describe('leafNamesFor', () => {
  it.each([
    ['api.feature-x.localhost', '*.feature-x.localhost', ['*.feature-x.localhost', 'feature-x.localhost']],
    ['a.b.feature-x.localhost', '*.b.feature-x.localhost', ['*.b.feature-x.localhost', 'b.feature-x.localhost']],
    ['feature-x.localhost', 'feature-x.localhost', ['feature-x.localhost']],
    ['localhost', 'localhost', ['localhost', '127.0.0.1', '::1']],
    ['127.0.0.1', 'localhost', ['localhost', '127.0.0.1', '::1']],
  ])('%s → key %s', (name, key, names) => {
    expect(leafNamesFor(name)).toEqual({ key, names });
  });

  it('never produces a wildcard directly under localhost', () => {
    for (const name of ['x.localhost', 'localhost', 'a.b.localhost']) {
      expect(leafNamesFor(name).names).not.toContain('*.localhost');
    }
  });
});

describe('the CA on disk', () => {
  it('is created on first use with a private key file and directory', async () => {
    const { ca, created } = await ensureCertificateAuthority(home, inProcessMinter);
    expect(created).toBe(true);
    const { certs: dir, caCert: certPath, caKey: keyPath } = homePaths(home);
    expect((await stat(dir)).mode & 0o777).toBe(0o700);
    expect((await stat(keyPath)).mode & 0o777).toBe(0o600);
    expect(await readFile(certPath, 'utf8')).toBe(ca.certPem);
    expect(new X509Certificate(ca.certPem).subject).toMatch(/CN=devproxy local CA \(.+@.+\)/);

    const again = await ensureCertificateAuthority(home, inProcessMinter);
    expect(again.created).toBe(false);
    expect(again.ca.certPem).toBe(ca.certPem);
  });

  it('is created once when several callers race for it', async () => {
    const results = await Promise.all(Array.from({ length: 6 }, () => ensureCertificateAuthority(home, inProcessMinter)));
    expect(new Set(results.map((r) => r.ca.certPem)).size).toBe(1);
    expect(results.filter((r) => r.created)).toHaveLength(1);
  });

  it('refuses an unparseable CA file with DEVPROXY_ERR_CA_CORRUPT and leaves it untouched', async () => {
    await ensureCertificateAuthority(home, inProcessMinter);
    const { caCert: certPath } = homePaths(home);
    await writeFile(certPath, '-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n');
    const error = await expectCode(ensureCertificateAuthority(home, inProcessMinter), 'DEVPROXY_ERR_CA_CORRUPT');
    expect(error.message).toContain('ca.pem is not a PEM certificate');
    expect(error.hint).toContain('devproxy trust --regenerate');
    expect(await readFile(certPath, 'utf8')).toContain('not base64 at all');
    // The store reports the same error to every TLS handshake instead of minting a new CA.
    const store = createCertificateStore({ home, minter: inProcessMinter, isKnownName });
    await expectCode(store.getLeaf('api.feature-x.localhost'), 'DEVPROXY_ERR_CA_CORRUPT');
    expect(await readFile(certPath, 'utf8')).toContain('not base64 at all');
  });

  it('refuses a key that does not belong to the cert', async () => {
    const { ca } = await ensureCertificateAuthority(home, inProcessMinter);
    const other = await createCertificateAuthority({ commonName: 'other' });
    await writeFile(homePaths(home).caKey, other.keyPem);
    const error = await expectCode(loadCertificateAuthority(home), 'DEVPROXY_ERR_CA_CORRUPT');
    expect(error.message).toContain('does not belong to');
    expect(await readFile(homePaths(home).caCert, 'utf8')).toBe(ca.certPem);
  });

  it('refuses a cert whose key file is missing', async () => {
    await ensureCertificateAuthority(home, inProcessMinter);
    await rm(homePaths(home).caKey);
    await expectCode(loadCertificateAuthority(home), 'DEVPROXY_ERR_CA_CORRUPT');
  });

  it('is replaced by an explicit regenerate, which also drops the leaves it signed', async () => {
    const { ca } = await ensureCertificateAuthority(home, inProcessMinter);
    const store = createCertificateStore({ home, minter: inProcessMinter, isKnownName });
    await store.getLeaf('api.feature-x.localhost');
    await writeFile(homePaths(home).caCert, 'garbage');
    const fresh = await regenerateCertificateAuthority(home, inProcessMinter);
    expect(fresh.certPem).not.toBe(ca.certPem);
    expect((await loadCertificateAuthority(home))?.certPem).toBe(fresh.certPem);
    await expect(stat(homePaths(home).leaves)).rejects.toThrow(/ENOENT/);
  });
});

describe('createCertificateStore', () => {
  it('issues one wildcard leaf per worktree, shared by concurrent handshakes', async () => {
    const { messages, logger } = collectingLogger();
    const store = createCertificateStore({ home, minter: inProcessMinter, isKnownName, logger });
    const entries = await Promise.all([
      ...Array.from({ length: 5 }, () => store.getLeaf('api.feature-x.localhost')),
      ...Array.from({ length: 5 }, () => store.getLeaf('UI.Feature-X.localhost.')),
    ]);
    expect(new Set(entries).size).toBe(1);
    expect(messages.filter((m) => m.startsWith('issued certificate'))).toHaveLength(1);
    const cert = new X509Certificate(entries[0]!.pair.certPem);
    const ca = new X509Certificate(await readFile(store.caPath, 'utf8'));
    expect(cert.verify(ca.publicKey)).toBe(true);
    expect(cert.checkHost('api.feature-x.localhost')).toBeDefined();
    expect(cert.checkHost('ui.feature-x.localhost')).toBeDefined();
    expect(cert.subjectAltName).not.toContain('DNS:*.localhost');
    const file = join(homePaths(home).leaves, '_wildcard_.feature-x.localhost.pem');
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    expect(messages.join('\n')).not.toContain('PRIVATE KEY');
  });

  it('prepares one leaf per worktree ahead of the first handshake, skipping unknown names', async () => {
    const { messages, logger } = collectingLogger();
    const store = createCertificateStore({ home, minter: inProcessMinter, isKnownName, logger });
    await store.prepare(['api.feature-x.localhost', 'ui.feature-x.localhost', 'api.contoso.localhost', 'evil.example.com']);
    expect(messages.filter((m) => m.startsWith('issued certificate')).sort()).toEqual([
      expect.stringMatching(/^issued certificate for \*\.contoso\.localhost, contoso\.localhost in \d+ ms$/),
      expect.stringMatching(/^issued certificate for \*\.feature-x\.localhost, feature-x\.localhost in \d+ ms$/),
    ]);
    expect(messages.filter((m) => m.startsWith('could not prepare'))).toEqual([
      expect.stringContaining('evil.example.com'),
    ]);
    messages.length = 0;
    await store.getLeaf('ui.feature-x.localhost');
    expect(messages).toEqual([]);
  });

  it('gives localhost an exact certificate and never a *.localhost wildcard', async () => {
    const store = createCertificateStore({ home, minter: inProcessMinter, isKnownName: () => false });
    const cert = new X509Certificate((await store.getLeaf('localhost')).pair.certPem);
    expect(cert.subjectAltName).toBe('DNS:localhost, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1');
  });

  it('refuses names devproxy does not route, and names that are not DNS names', async () => {
    const store = createCertificateStore({ home, minter: inProcessMinter, isKnownName });
    await expectCode(store.getLeaf('evil.example.com'), 'DEVPROXY_ERR_CERT_UNKNOWN_HOST');
    await expectCode(store.getLeaf('../../etc/passwd'), 'DEVPROXY_ERR_CERT_UNKNOWN_HOST');
    await expect(stat(homePaths(home).leaves)).rejects.toThrow(/ENOENT/);
  });

  it('reuses a valid leaf from disk after a restart', async () => {
    const first = await createCertificateStore({ home, minter: inProcessMinter, isKnownName }).getLeaf('api.contoso.localhost');
    const { messages, logger } = collectingLogger();
    const second = await createCertificateStore({ home, minter: inProcessMinter, isKnownName, logger }).getLeaf('api.contoso.localhost');
    expect(second.pair.certPem).toBe(first.pair.certPem);
    expect(messages).toEqual([]);
  });

  it.each([
    ['expired', -30, -1],
    ['due within 7 days', -80, 3],
  ])('renews a leaf on disk that is %s', async (_label, fromDays, toDays) => {
    const { ca } = await ensureCertificateAuthority(home, inProcessMinter);
    const { names } = leafNamesFor('api.feature-x.localhost');
    const stale = await issueLeafCertificate(ca, names, {
      notBefore: new Date(Date.now() + fromDays * DAY_MS),
      notAfter: new Date(Date.now() + toDays * DAY_MS),
    });
    const file = join(homePaths(home).leaves, '_wildcard_.feature-x.localhost.pem');
    await mkdir(homePaths(home).leaves, { recursive: true });
    await writeFile(file, stale.certPem + stale.keyPem);
    const { messages, logger } = collectingLogger();
    const entry = await createCertificateStore({ home, minter: inProcessMinter, isKnownName, logger }).getLeaf('api.feature-x.localhost');
    expect(entry.pair.certPem).not.toBe(stale.certPem);
    expect(entry.notAfter.getTime()).toBeGreaterThan(Date.now() + 80 * DAY_MS);
    expect(await readFile(file, 'utf8')).toBe(entry.pair.certPem + entry.pair.keyPem);
    expect(messages).toEqual([expect.stringMatching(/^renewed certificate for \*\.feature-x\.localhost/)]);
  });

  it('re-issues a cached leaf signed by another CA', async () => {
    await ensureCertificateAuthority(home, inProcessMinter);
    const stranger = await createCertificateAuthority({ commonName: 'stranger' });
    const foreign = await issueLeafCertificate(stranger, ['*.feature-x.localhost']);
    await mkdir(homePaths(home).leaves, { recursive: true });
    await writeFile(join(homePaths(home).leaves, '_wildcard_.feature-x.localhost.pem'), foreign.certPem + foreign.keyPem);
    const entry = await createCertificateStore({ home, minter: inProcessMinter, isKnownName }).getLeaf('api.feature-x.localhost');
    expect(entry.pair.certPem).not.toBe(foreign.certPem);
  });
});

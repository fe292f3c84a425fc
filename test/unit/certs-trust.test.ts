import { X509Certificate } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createCertificateAuthority } from '../../certs/authority.js';
import { installTrust, printTrust, uninstallTrust, type CommandResult, type TrustOptions } from '../../certs/trust.js';

let dir: string;
let root: string;
let home: string;
let caPath: string;
let caPem: string;
let calls: string[];
let answer: (command: string, args: string[]) => CommandResult;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'devproxy-trust-'));
  root = join(dir, 'root');
  home = join(dir, 'home');
  await mkdir(root);
  await mkdir(home);
  caPath = join(dir, 'ca.pem');
  caPem = (await createCertificateAuthority({ commonName: 'devproxy local CA (tester@box)' })).certPem;
  await writeFile(caPath, caPem);
  calls = [];
  answer = () => ({ code: 0, stdout: '', stderr: '' });
});

afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

function options(extra: Partial<TrustOptions>): TrustOptions {
  return {
    caPath,
    rootDir: root,
    homeDir: home,
    user: 'tester',
    // No browser installed unless a test says so (the machine's own PATH may have one).
    pathDirs: [],
    run: async (command, args) => {
      calls.push([command, ...args].join(' '));
      return answer(command, args);
    },
    ...extra,
  };
}

describe('Debian/Ubuntu system store', () => {
  const anchors = (): string => join(root, 'usr/local/share/ca-certificates');

  beforeEach(async () => {
    await mkdir(anchors(), { recursive: true });
  });

  it('copies the CA and runs update-ca-certificates as root, then reports it as already trusted', async () => {
    const steps = await installTrust(options({ platform: 'linux', isRoot: true, targets: ['system'] }));
    const dest = join(anchors(), 'devproxy-tester.crt');
    expect(steps).toEqual([
      { target: 'system (Debian/Ubuntu)', done: true, detail: `added ${dest} and ran \`update-ca-certificates\`` },
    ]);
    expect(await readFile(dest, 'utf8')).toBe(caPem);
    expect(calls).toEqual(['update-ca-certificates']);

    calls = [];
    const again = await installTrust(options({ platform: 'linux', isRoot: true, targets: ['system'] }));
    expect(again[0]).toMatchObject({ done: true, detail: `already trusted (${dest})` });
    expect(calls).toEqual([]);
  });

  it('without root writes nothing and gives the one command to run with sudo', async () => {
    const steps = await installTrust(options({ platform: 'linux', isRoot: false, targets: ['system'] }));
    const dest = join(anchors(), 'devproxy-tester.crt');
    expect(steps).toEqual([
      {
        target: 'system (Debian/Ubuntu)',
        done: false,
        detail: `needs root; run: sudo sh -c 'cp ${caPath} ${dest} && update-ca-certificates'`,
      },
    ]);
    await expect(stat(dest)).rejects.toThrow(/ENOENT/);
    expect(calls).toEqual([]);
  });

  it('says so when update-ca-certificates fails', async () => {
    answer = () => ({ code: 1, stdout: '', stderr: 'run-parts: failed\nmore' });
    const [step] = await installTrust(options({ platform: 'linux', isRoot: true }));
    expect(step).toMatchObject({ done: false });
    expect(step?.detail).toContain('but `update-ca-certificates` failed: run-parts: failed');
  });

  it('uninstalls: removes the file and rebuilds the bundle; nothing to do the second time', async () => {
    await installTrust(options({ platform: 'linux', isRoot: true }));
    calls = [];
    const steps = await uninstallTrust(options({ platform: 'linux', isRoot: true }));
    expect(steps[0]).toMatchObject({ done: true, detail: expect.stringContaining('removed') });
    await expect(stat(join(anchors(), 'devproxy-tester.crt'))).rejects.toThrow(/ENOENT/);
    expect(calls).toEqual(['update-ca-certificates']);
    const again = await uninstallTrust(options({ platform: 'linux', isRoot: true }));
    expect(again[0]?.detail).toContain('was not installed');
  });
});

describe('other system stores', () => {
  it('uses update-ca-trust on Fedora/RHEL', async () => {
    await mkdir(join(root, 'etc/pki/ca-trust/source/anchors'), { recursive: true });
    const [step] = await installTrust(options({ platform: 'linux', isRoot: true }));
    expect(step?.target).toBe('system (Fedora/RHEL)');
    expect(calls).toEqual(['update-ca-trust extract']);
    expect(await readFile(join(root, 'etc/pki/ca-trust/source/anchors/devproxy-tester.pem'), 'utf8')).toBe(caPem);
  });

  it('says what to do on a Linux without a known store', async () => {
    const [step] = await installTrust(options({ platform: 'linux', isRoot: true }));
    expect(step).toMatchObject({ done: false, detail: expect.stringContaining(`add ${caPath}`) });
  });

  it('adds a trusted root to the macOS System keychain, or prints the sudo command', async () => {
    const [asUser] = await installTrust(options({ platform: 'darwin', isRoot: false }));
    expect(asUser?.detail).toBe(
      `needs an administrator; run: sudo security add-trusted-cert -d -r trustRoot -k /Library/Keychains/System.keychain ${caPath}`,
    );
    expect(calls).toEqual([]);
    const [asRoot] = await installTrust(options({ platform: 'darwin', isRoot: true }));
    expect(asRoot?.done).toBe(true);
    expect(calls).toEqual([`security add-trusted-cert -d -r trustRoot -k /Library/Keychains/System.keychain ${caPath}`]);
  });

  it('uses certutil -addstore ROOT on Windows and deletes by serial number', async () => {
    await installTrust(options({ platform: 'win32' }));
    await uninstallTrust(options({ platform: 'win32' }));
    const serial = new X509Certificate(caPem).serialNumber;
    expect(calls).toEqual([`certutil -addstore -f ROOT ${caPath}`, `certutil -delstore ROOT ${serial}`]);
  });

  it('reports an elevated prompt is needed when certutil fails on Windows', async () => {
    answer = () => ({ code: 5, stdout: 'CertUtil: -addstore command FAILED: 0x80070005 (WIN32: 5 ERROR_ACCESS_DENIED)', stderr: '' });
    const [step] = await installTrust(options({ platform: 'win32' }));
    expect(step).toMatchObject({ done: false, detail: expect.stringContaining('elevated (administrator) prompt') });
    expect(step?.detail).toContain('ERROR_ACCESS_DENIED');
  });
});

describe('NSS databases', () => {
  async function makeDb(...parts: string[]): Promise<string> {
    const db = join(home, ...parts);
    await mkdir(db, { recursive: true });
    await writeFile(join(db, 'cert9.db'), '');
    return db;
  }

  it('adds the CA to the Chrome db and every Firefox profile', async () => {
    const chrome = await makeDb('.pki', 'nssdb');
    const firefox = await makeDb('.mozilla', 'firefox', 'abcd.default-release');
    await mkdir(join(home, '.mozilla', 'firefox', 'no-db-here'));
    const steps = await installTrust(options({ platform: 'linux', targets: ['nss'] }));
    expect(steps.map((s) => [s.target, s.done])).toEqual([
      [`NSS ${chrome}`, true],
      [`NSS ${firefox}`, true],
    ]);
    expect(calls).toEqual([
      'certutil -H',
      `certutil -A -n devproxy -t C,, -i ${caPath} -d sql:${chrome}`,
      `certutil -A -n devproxy -t C,, -i ${caPath} -d sql:${firefox}`,
    ]);
  });

  it('explains how to get certutil when it is missing', async () => {
    await makeDb('.pki', 'nssdb');
    answer = () => ({ code: 127, stdout: '', stderr: 'spawn certutil ENOENT' });
    const [step] = await installTrust(options({ platform: 'linux', targets: ['nss'] }));
    expect(step).toMatchObject({ done: false, detail: expect.stringContaining('libnss3-tools') });
  });

  it('says plainly that no browser database was found, and the one command to run', async () => {
    const steps = await installTrust(options({ platform: 'linux', targets: ['nss'] }));
    const db = join(home, '.pki', 'nssdb');
    expect(steps).toEqual([
      { target: 'browsers', done: false, detail: `no browser certificate database found (no ${db}, no Firefox profile): start your browser once, then run \`devproxy trust\` again; or create Chromium's now: mkdir -p ${db} && certutil -N -d sql:${db} --empty-password && devproxy trust` },
    ]);
    expect(calls).toEqual([]);
    expect(await uninstallTrust(options({ platform: 'linux', targets: ['nss'] }))).toEqual([]);
  });

  it('creates the database a Chromium that never ran will use (the regression: system store only, then ERR_CERT_AUTHORITY_INVALID)', async () => {
    const bin = join(dir, 'bin');
    await mkdir(bin);
    await writeFile(join(bin, 'chromium'), '#!/bin/sh\n', { mode: 0o755 });
    const steps = await installTrust(options({ platform: 'linux', targets: ['nss'], pathDirs: [join(dir, 'nothing'), bin] }));
    const db = join(home, '.pki', 'nssdb');
    expect(steps).toEqual([{ target: `NSS ${db}`, done: true, detail: `added as "devproxy" (trusted for TLS servers); created the database ${join(bin, 'chromium')} will use` }]);
    expect(calls).toEqual(['certutil -H', `certutil -N -d sql:${db} --empty-password`, `certutil -A -n devproxy -t C,, -i ${caPath} -d sql:${db}`]);
    expect((await stat(db)).isDirectory()).toBe(true);
  });

  it('names libnss3-tools when a browser needs a database but certutil is missing', async () => {
    const bin = join(dir, 'bin');
    await mkdir(bin);
    await writeFile(join(bin, 'google-chrome'), '#!/bin/sh\n', { mode: 0o755 });
    answer = () => ({ code: 127, stdout: '', stderr: 'spawn certutil ENOENT' });
    const steps = await installTrust(options({ platform: 'linux', targets: ['nss'], pathDirs: [bin] }));
    expect(steps).toEqual([{ target: `NSS ${join(home, '.pki', 'nssdb')}`, done: false, detail: expect.stringContaining('sudo apt-get install libnss3-tools') }]);
  });
});

describe('printTrust', () => {
  it('gives the CA path and the NODE_EXTRA_CA_CERTS line, quoted for a shell', () => {
    expect(printTrust({ caPath: '/home/al/.devproxy/certs/ca.pem' })).toEqual({
      caPath: '/home/al/.devproxy/certs/ca.pem',
      nodeExtraCaCerts: 'NODE_EXTRA_CA_CERTS=/home/al/.devproxy/certs/ca.pem',
    });
    expect(printTrust({ caPath: '/Users/A B/ca.pem' }).nodeExtraCaCerts).toBe("NODE_EXTRA_CA_CERTS='/Users/A B/ca.pem'");
  });
});

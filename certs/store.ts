/**
 * The local CA on disk and the leaf certificates it issues on demand, one per SNI name.
 *
 * Layout under `$DEVPROXY_HOME/certs` (dir 0700): `ca.pem` (the cert users trust), `ca-key.pem`
 * (0600) and `leaves/<name>.pem` (cert + key, 0600). Every file is written by temp file + rename,
 * so a reader never sees half a PEM.
 */
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { mkdir, readFile, rm, stat } from 'node:fs/promises';
import { hostname, userInfo } from 'node:os';
import { isIP } from 'node:net';
import { join } from 'node:path';
import { createSecureContext, type SecureContext } from 'node:tls';
import { writeFileAtomic } from '../atomic-write.js';
import { makePrivateDir } from '../private-files.js';
import { DevproxyError } from '../errors.js';
import { homePaths } from '../home-paths.js';
import type { Logger } from '../logger.js';
import { normaliseServername } from '../hostname.js';
import type { Minter, PemPair } from './authority.js';
import { SERVER_TLS_POLICY } from './tls-policy.js';

/** A leaf is re-issued when it has less than this left (and an expired one always is). */
export const LEAF_RENEW_BEFORE_MS = 7 * 86_400_000;
/** A creator that crashed leaves its lock behind; after this long the lock is taken over. */
const CA_LOCK_STALE_MS = 30_000;
const CA_LOCK_POLL_MS = 50;

/** Names every client reaching the proxy by loopback address or `localhost` may ask for. */
const DEFAULT_NAMES = ['localhost', '127.0.0.1', '::1'];

/** CN of a new CA: says whose it is, so a user reading a trust store knows what to remove. */
export function defaultCaCommonName(): string {
  return `devproxy local CA (${userInfo().username}@${hostname()})`;
}

/**
 * Reads and checks the CA under `home`. Returns undefined when there is none yet; throws
 * `DEVPROXY_ERR_CA_CORRUPT` when the files exist but cannot be used (unparseable PEM, key not
 * matching the cert, not a CA, expired) and leaves them untouched, because a CA that may be
 * trusted by the system must never be replaced silently.
 */
export async function loadCertificateAuthority(home: string): Promise<PemPair | undefined> {
  const { caCert: certPath, caKey: keyPath, certs: dir } = homePaths(home);
  const certPem = await readIfExists(certPath);
  // A key without a cert is a creator that died half-way: nothing can trust that key yet.
  if (certPem === undefined) return undefined;
  const corrupt = (what: string, cause?: unknown): DevproxyError =>
    new DevproxyError('DEVPROXY_ERR_CA_CORRUPT', `the devproxy CA in ${dir} is unusable: ${what}`, { cause });
  const keyPem = await readIfExists(keyPath);
  if (keyPem === undefined) throw corrupt(`${keyPath} is missing`);
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(certPem);
  } catch (error) {
    throw corrupt(`${certPath} is not a PEM certificate`, error);
  }
  let key: ReturnType<typeof createPrivateKey>;
  try {
    key = createPrivateKey(keyPem);
  } catch (error) {
    throw corrupt(`${keyPath} is not a PEM private key`, error);
  }
  if (!cert.ca) throw corrupt(`${certPath} is not a CA certificate`);
  if (!cert.checkPrivateKey(key)) throw corrupt(`${keyPath} does not belong to ${certPath}`);
  if (Date.parse(cert.validTo) <= Date.now()) throw corrupt(`${certPath} expired on ${cert.validTo}`);
  return { certPem, keyPem };
}

/**
 * Returns the CA under `home`, creating it with `minter` on first use. Concurrent callers (daemon
 * and CLI) agree on one CA: creation runs under an exclusive lock directory and re-checks inside it.
 */
export async function ensureCertificateAuthority(
  home: string,
  minter: Minter,
  opts: { commonName?: string } = {},
): Promise<{ ca: PemPair; created: boolean }> {
  const existing = await loadCertificateAuthority(home);
  if (existing !== undefined) return { ca: existing, created: false };
  return await withCaLock(home, async () => {
    const raced = await loadCertificateAuthority(home);
    if (raced !== undefined) return { ca: raced, created: false };
    return { ca: await writeNewCa(home, minter, opts.commonName), created: true };
  });
}

/**
 * Replaces the CA under `home` with a new one, whatever state the old one is in, and drops the
 * leaves it signed. Only for an explicit user request (`devproxy trust --regenerate`): anything
 * that trusted the old CA stops trusting devproxy's certificates until the new one is trusted,
 * and a running store keeps serving from the old CA until its process restarts.
 */
export async function regenerateCertificateAuthority(home: string, minter: Minter, opts: { commonName?: string } = {}): Promise<PemPair> {
  return await withCaLock(home, async () => {
    await rm(homePaths(home).leaves, { recursive: true, force: true });
    return await writeNewCa(home, minter, opts.commonName);
  });
}

async function writeNewCa(home: string, minter: Minter, commonName = defaultCaCommonName()): Promise<PemPair> {
  const { certs: dir, caCert: certPath, caKey: keyPath } = homePaths(home);
  await makePrivateDir(dir);
  const ca = await minter.createCertificateAuthority({ commonName });
  // Key first: a crash in between leaves a key without cert, which load treats as "no CA yet".
  await writeFileAtomic(keyPath, ca.keyPem, { mode: 0o600 });
  await writeFileAtomic(certPath, ca.certPem, { mode: 0o644 });
  return ca;
}

async function withCaLock<T>(home: string, body: () => Promise<T>): Promise<T> {
  const { certs: dir, caLock: lock } = homePaths(home);
  await makePrivateDir(dir);
  for (;;) {
    try {
      await mkdir(lock);
      break;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      const since = await stat(lock).then((s) => Date.now() - s.mtimeMs, () => 0);
      if (since > CA_LOCK_STALE_MS) await rm(lock, { recursive: true, force: true });
      else await new Promise((resolve) => setTimeout(resolve, CA_LOCK_POLL_MS));
    }
  }
  try {
    return await body();
  } finally {
    await rm(lock, { recursive: true, force: true });
  }
}

async function readIfExists(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}

/**
 * The SAN list of the leaf that serves `name`, and the cache key it is stored under.
 * `api.feature-x.localhost` → `*.feature-x.localhost` (one leaf per worktree) plus the
 * worktree's bare name; a two-label name (`localhost`, `feature-x.localhost`) gets an exact
 * leaf, because a wildcard directly under a TLD-like label (`*.localhost`) is refused by browsers.
 */
export function leafNamesFor(name: string): { key: string; names: string[] } {
  if (DEFAULT_NAMES.includes(name)) return { key: 'localhost', names: DEFAULT_NAMES };
  const labels = name.split('.');
  if (labels.length < 3) return { key: name, names: [name] };
  const parent = labels.slice(1).join('.');
  return { key: `*.${parent}`, names: [`*.${parent}`, parent] };
}

/**
 * The certificate one TLS connection was served, as the misdirected check asks about it: `sni`
 * as the client sent it (undefined without SNI: an IP-literal client got the localhost
 * certificate), normalised and expanded to the leaf's names once per connection rather than on
 * each of its requests.
 */
export class ServedLeaf {
  readonly #names: readonly string[];

  constructor(readonly sni: string | undefined) {
    const name = sni === undefined ? 'localhost' : normaliseName(sni);
    this.#names = name === undefined ? [] : leafNamesFor(name).names;
  }

  /** True when the leaf covers `host` (lower-case, no root dot); a wildcard covers one label. */
  certificateCovers(host: string): boolean {
    const dot = host.indexOf('.');
    for (const name of this.#names) {
      if (name === host || (name.startsWith('*.') && dot > 0 && host.slice(dot + 1) === name.slice(2))) return true;
    }
    return false;
  }
}

/**
 * Lower-cases and drops the root dot; undefined for anything that is not a DNS name of the
 * client grammar (`hostname.ts`: path separators, spaces are refused before use) or an IP.
 */
function normaliseName(servername: string): string | undefined {
  const name = servername.toLowerCase().replace(/\.$/, '');
  return isIP(name) !== 0 ? name : normaliseServername(servername);
}

/** A leaf ready to serve: PEMs, its validity end, and the TLS context built from it once. */
export interface LeafEntry {
  pair: PemPair;
  notAfter: Date;
  context: SecureContext;
}

export interface CertificateStoreOptions {
  /** `$DEVPROXY_HOME`; the CA and the leaf cache live in its `certs/` folder. */
  home: string;
  /**
   * Mints the CA and the leaves: the daemon's worker (`mint-worker-client.ts`), so its main
   * isolate never loads the minting code, or `authority.ts` itself in a short-lived process.
   */
  minter: Minter;
  /**
   * True for hostnames devproxy routes (read from the live routing table). Only those get a
   * certificate: SNI for any other name fails the handshake. `localhost` and loopback
   * addresses are always served. `name` comes normalised by the hostname grammar (lower-case,
   * no root dot), so it compares as a routing table key.
   */
  isKnownName: (name: string) => boolean;
  /** Issuances and renewals are reported at info level; nothing else is logged. */
  logger?: Logger;
}

/** Hands out TLS contexts per SNI name, minting leaves from the local CA on demand. */
export interface CertificateStore {
  /** Path of the CA certificate (what users trust, `NODE_EXTRA_CA_CERTS`). */
  readonly caPath: string;
  /** The CA, created on first use. Throws `DEVPROXY_ERR_CA_CORRUPT` for unusable CA files. */
  getCertificateAuthority(): Promise<PemPair>;
  /**
   * The leaf serving `servername`, from memory, else disk, else freshly issued. Concurrent calls
   * for names sharing a leaf share one issuance. Throws `DEVPROXY_ERR_CERT_UNKNOWN_HOST` for a
   * name devproxy does not route.
   */
  getLeaf(servername: string): Promise<LeafEntry>;
  /**
   * Loads or issues the leaves for `names` ahead of their first handshake (call it when the
   * routing table changes), so a browser's first connection does not wait for a mint. Never
   * throws: failures are logged and retried by the handshake that needs the leaf.
   */
  prepare(names: Iterable<string>): Promise<void>;
  /** The `SNICallback` of a TLS server: the handshake fails for unknown names. */
  SNICallback(servername: string, callback: (error: Error | null, context?: SecureContext) => void): void;
}

/** Creates a store over `$DEVPROXY_HOME/certs`; nothing touches the disk until first use. */
export function createCertificateStore(options: CertificateStoreOptions): CertificateStore {
  const paths = homePaths(options.home);
  const leaves = new Map<string, Promise<LeafEntry>>();
  let caPromise: Promise<PemPair> | undefined;

  const getCertificateAuthority = (): Promise<PemPair> => {
    caPromise ??= ensureCertificateAuthority(options.home, options.minter).then(
      ({ ca, created }) => {
        if (created) options.logger?.info(`created the devproxy CA ${paths.caCert}; trust it with \`devproxy trust\``);
        return ca;
      },
      (error: unknown) => {
        caPromise = undefined;
        throw error;
      },
    );
    return caPromise;
  };

  const loadOrIssue = async (key: string, names: string[]): Promise<LeafEntry> => {
    const ca = await getCertificateAuthority();
    const file = join(paths.leaves, `${key.replace('*', '_wildcard_').replaceAll(':', '_')}.pem`);
    const onDisk = await readIfExists(file);
    if (onDisk !== undefined) {
      const entry = usableLeaf(onDisk, ca);
      if (entry !== undefined) return entry;
    }
    const started = performance.now();
    const pair = await options.minter.issueLeafCertificate(ca, names);
    await makePrivateDir(paths.leaves);
    await writeFileAtomic(file, pair.certPem + pair.keyPem, { mode: 0o600 });
    const entry = toEntry(pair);
    options.logger?.info(
      `${onDisk === undefined ? 'issued' : 'renewed'} certificate for ${names.join(', ')} in ${Math.round(performance.now() - started)} ms`,
    );
    return entry;
  };

  const getLeaf = async (servername: string): Promise<LeafEntry> => {
    const name = normaliseName(servername);
    if (name === undefined || (!DEFAULT_NAMES.includes(name) && !options.isKnownName(name))) {
      throw new DevproxyError('DEVPROXY_ERR_CERT_UNKNOWN_HOST', `no certificate for ${JSON.stringify(servername)}: devproxy does not route it`);
    }
    const { key, names } = leafNamesFor(name);
    const cached = leaves.get(key);
    if (cached !== undefined) {
      const entry = await cached;
      if (!needsRenewal(entry.notAfter)) return entry;
      // Another caller may already have replaced the stale promise with a renewal.
      const current = leaves.get(key);
      if (current !== cached && current !== undefined) return await current;
    }
    const pending = loadOrIssue(key, names);
    leaves.set(key, pending);
    pending.catch(() => {
      if (leaves.get(key) === pending) leaves.delete(key);
    });
    return await pending;
  };

  return {
    caPath: paths.caCert,
    getCertificateAuthority,
    getLeaf,
    async prepare(names) {
      const byKey = new Map<string, string>();
      for (const name of names) {
        const normalised = normaliseName(name);
        if (normalised !== undefined) byKey.set(leafNamesFor(normalised).key, normalised);
      }
      await Promise.all(
        [...byKey.values()].map((name) =>
          getLeaf(name).catch((error: unknown) => options.logger?.warn(`could not prepare a certificate for ${name}: ${String(error)}`)),
        ),
      );
    },
    SNICallback(servername, callback) {
      getLeaf(servername).then(
        (entry) => callback(null, entry.context),
        (error: unknown) => callback(error instanceof Error ? error : new Error(String(error))),
      );
    },
  };
}

function needsRenewal(notAfter: Date): boolean {
  return notAfter.getTime() - Date.now() < LEAF_RENEW_BEFORE_MS;
}

function toEntry(pair: PemPair): LeafEntry {
  const cert = new X509Certificate(pair.certPem);
  return {
    pair,
    notAfter: new Date(cert.validTo),
    context: createSecureContext({ ...SERVER_TLS_POLICY, cert: pair.certPem, key: pair.keyPem }),
  };
}

const PEM_CERT = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----\n?/;
const PEM_KEY = /-----BEGIN PRIVATE KEY-----[\s\S]+?-----END PRIVATE KEY-----\n?/;

/** A cached leaf file is reused only if it parses, was signed by this CA and is not due. */
function usableLeaf(file: string, ca: PemPair): LeafEntry | undefined {
  const certPem = PEM_CERT.exec(file)?.[0];
  const keyPem = PEM_KEY.exec(file)?.[0];
  if (certPem === undefined || keyPem === undefined) return undefined;
  try {
    const cert = new X509Certificate(certPem);
    const caCert = new X509Certificate(ca.certPem);
    if (!cert.checkIssued(caCert) || !cert.verify(caCert.publicKey)) return undefined;
    if (Date.parse(cert.validFrom) > Date.now() || needsRenewal(new Date(cert.validTo))) return undefined;
    if (!cert.checkPrivateKey(createPrivateKey(keyPem))) return undefined;
    return toEntry({ certPem, keyPem });
  } catch {
    // An unreadable cache file is only a cache miss: the leaf is issued again.
    return undefined;
  }
}

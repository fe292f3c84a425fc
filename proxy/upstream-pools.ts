/**
 * Upstream connection pools, reused across requests (keep-alive): devproxy's own HTTP/1.1 client
 * (`h1-upstream.ts`) per local origin, an undici `Pool` per remote origin + TLS settings. Also owns
 * the CA set trusted for remotes, shared with WebSocket upgrades so both verify the same way.
 */
import { lookup as dnsLookup, type LookupAddress, type LookupOptions } from 'node:dns';
import { createRequire } from 'node:module';
import { isIP } from 'node:net';
import { createSecureContext, rootCertificates, type SecureContext } from 'node:tls';
import type { Pool as UndiciPool } from 'undici';
import { isLocalhostName } from '../hostname.js';
import { readSmallFileSync } from '../profiles/bounded-read.js';
import type { Target } from '../router/types.js';
import { H1Pool } from './h1-upstream.js';
import { CA_UNREADABLE_CODE } from './upstream-errors.js';

/** The pool of one upstream origin: both kinds take undici's `dispatch(options, handler)`. */
export type UpstreamPool = H1Pool | UndiciPool;

/** undici's Pool, once a remote route needs it. */
let undiciPool: typeof UndiciPool | undefined;

/**
 * undici's Pool class, loaded on first use: a daemon serving only local routes never loads undici
 * (~1.3 MiB at start, and ~10 MiB its WebAssembly parser's optimising compile used to leave in
 * malloc). undici's index also loads fetch, WebSocket, caches, mocks and interceptors (~9 MiB
 * more), so Pool's own module is loaded; undici has no `exports` map, so the path is public, and
 * `test/unit/proxy-upstream-pools.test.ts` checks that it is the class the index exports.
 */
function loadUndiciPool(): typeof UndiciPool {
  undiciPool ??= createRequire(import.meta.url)('undici/lib/dispatcher/pool.js') as typeof UndiciPool;
  return undiciPool;
}

/** Upstream timeouts, all in milliseconds. */
export interface UpstreamTimeouts {
  /** TCP + TLS connect. */
  connectTimeoutMs: number;
  /** From request sent to response headers received. */
  headersTimeoutMs: number;
  /** Longest silence between two response body chunks. */
  bodyTimeoutMs: number;
}

/** Defaults: connect 10 s, headers 60 s, body idle 5 min. */
export const DEFAULT_UPSTREAM_TIMEOUTS: Readonly<UpstreamTimeouts> = {
  connectTimeoutMs: 10_000,
  headersTimeoutMs: 60_000,
  bodyTimeoutMs: 300_000,
};

/** Most sockets kept per upstream origin; bounds what a runaway client can open. */
const MAX_CONNECTIONS_PER_ORIGIN = 256;

/** A remote target (the `remote` arm of {@link Target}). */
export type RemoteTarget = Extract<Target, { kind: 'remote' }>;

/** TLS options for one remote. */
export interface RemoteTlsOptions {
  /**
   * Context holding the trusted CAs, shared by every remote with the same CA set. Parsing the
   * ~145 root PEMs takes tens of milliseconds of event-loop time, so it is done once per set,
   * never per connection (tls.connect builds a new context whenever it is given `ca`).
   */
  secureContext: SecureContext;
  rejectUnauthorized: boolean;
  /** SNI; undefined for an IP-literal remote (RFC 6066 allows only DNS names, Node warns DEP0123). */
  servername: string | undefined;
}

type LookupCallback = (error: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void;

/**
 * `dns.lookup` that resolves `localhost` and `*.localhost` to 127.0.0.1 itself: the system
 * resolver here does not (nsswitch `files dns`), while browsers and curl do.
 */
export function loopbackLookup(hostname: string, options: LookupOptions, callback: LookupCallback): void {
  if (isLocalhostName(hostname)) {
    if (options.all === true) callback(null, [{ address: '127.0.0.1', family: 4 }]);
    else callback(null, '127.0.0.1', 4);
    return;
  }
  (dnsLookup as (host: string, opts: LookupOptions, cb: LookupCallback) => void)(hostname, options, callback);
}

/**
 * Largest CA bundle file devproxy reads (bytes). A CA certificate is 1–2 KiB and a whole
 * system bundle (Mozilla's ~145 roots) about 220 KiB; 1 MiB holds several of those, while a `ca:`
 * that a branch points at /dev/zero or a huge file is refused instead of filling the memory.
 */
export const MAX_CA_FILE_BYTES = 1024 * 1024;

/**
 * PEM certificates in a bundle file (a file may hold several). Read on the request's turn, so
 * read within bounds: a FIFO or a device is refused before it can block the event loop.
 */
function readPemBundle(file: string): string[] {
  const read = readSmallFileSync(file, MAX_CA_FILE_BYTES);
  if (read.problem !== undefined) throw Object.assign(new Error(`the CA file ${file} ${read.problem}`), { code: CA_UNREADABLE_CODE });
  return read.text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
}

/** Owns the pools; `close()` closes them all. */
export class UpstreamPools {
  readonly #timeouts: UpstreamTimeouts;
  readonly #extraCaFiles: readonly string[];
  readonly #pools = new Map<string, UpstreamPool>();
  readonly #tls = new Map<string, RemoteTlsOptions>();
  /** Secure contexts by CA set (the CA file list; `insecure` for unverified remotes). */
  readonly #contexts = new Map<string, SecureContext>();
  #systemCas: string[] | undefined;

  constructor(timeouts: UpstreamTimeouts, extraCaFiles: readonly string[] = []) {
    this.#timeouts = timeouts;
    this.#extraCaFiles = extraCaFiles;
  }

  /** The pool for a target, created on first use. Throws when a CA file cannot be read. */
  poolFor(target: Target): UpstreamPool {
    const key = target.kind === 'local' ? target.origin : remoteKey(target);
    let pool = this.#pools.get(key);
    if (pool === undefined) {
      pool = this.#createPool(target);
      this.#pools.set(key, pool);
    }
    return pool;
  }

  /**
   * Secure context and SNI for a remote. The trusted CAs are Node's roots, the PEMs of
   * NODE_EXTRA_CA_CERTS (which Node does not add to `tls.rootCertificates`), the target's CA
   * files and the proxy-wide extra CA files; remotes with the same CA files share one context.
   */
  tlsFor(target: RemoteTarget): RemoteTlsOptions {
    const key = remoteKey(target);
    let options = this.#tls.get(key);
    if (options === undefined) {
      options = {
        secureContext: this.#contextFor(target),
        rejectUnauthorized: !target.insecure,
        servername: isIP(target.hostname.replace(/^\[|\]$/g, '')) === 0 ? target.hostname : undefined,
      };
      this.#tls.set(key, options);
    }
    return options;
  }

  #contextFor(target: RemoteTarget): SecureContext {
    const caFiles = [...target.caFiles, ...this.#extraCaFiles];
    const key = target.insecure ? 'insecure' : caFiles.join('\n');
    let context = this.#contexts.get(key);
    if (context === undefined) {
      context = target.insecure ? createSecureContext() : createSecureContext({ ca: [...this.#systemCaSet(), ...caFiles.flatMap(readPemBundle)] });
      this.#contexts.set(key, context);
    }
    return context;
  }

  /**
   * Closes every pool: in-flight requests get {@link CLOSE_GRACE_MS} to finish, then long
   * streams (SSE, downloads) are cut so shutdown never hangs.
   */
  async close(): Promise<void> {
    const pools = [...this.#pools.values()];
    this.#pools.clear();
    await Promise.all(pools.map(closeWithGrace));
  }

  #systemCaSet(): string[] {
    if (this.#systemCas === undefined) {
      const extra = process.env.NODE_EXTRA_CA_CERTS;
      this.#systemCas = [...rootCertificates, ...(extra ? readPemBundle(extra) : [])];
    }
    return this.#systemCas;
  }

  #createPool(target: Target): UpstreamPool {
    const timeouts = this.#timeouts;
    if (target.kind === 'local') return new H1Pool(target.origin, { connections: MAX_CONNECTIONS_PER_ORIGIN, ...timeouts });
    const tls = this.tlsFor(target);
    const Pool = loadUndiciPool();
    return new Pool(target.origin, {
      connections: MAX_CONNECTIONS_PER_ORIGIN,
      headersTimeout: timeouts.headersTimeoutMs,
      bodyTimeout: timeouts.bodyTimeoutMs,
      connect: {
        timeout: timeouts.connectTimeoutMs,
        // The origin may be an address (tests, private endpoints) while SNI must be the remote's name.
        ...(tls.servername === undefined ? {} : { servername: tls.servername }),
        rejectUnauthorized: tls.rejectUnauthorized,
        secureContext: tls.secureContext,
        lookup: loopbackLookup,
      },
    });
  }
}

/** How long `close()` lets in-flight upstream requests finish before destroying them. */
export const CLOSE_GRACE_MS = 5_000;

async function closeWithGrace(pool: UpstreamPool): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const graceOver = new Promise<'grace-over'>((resolve) => {
    timer = setTimeout(resolve, CLOSE_GRACE_MS, 'grace-over');
    timer.unref();
  });
  const outcome = await Promise.race([pool.close(), graceOver]);
  clearTimeout(timer);
  if (outcome === 'grace-over') await pool.destroy();
}

function remoteKey(target: RemoteTarget): string {
  return `${target.origin}\n${target.hostname}\n${target.insecure ? 'insecure' : 'verify'}\n${target.caFiles.join('\n')}`;
}

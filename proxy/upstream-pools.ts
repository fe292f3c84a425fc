/**
 * Upstream connection pools: one undici `Pool` per local origin, one per remote origin + TLS
 * settings, reused across requests (keep-alive). Also owns the CA set trusted for remotes, shared
 * with WebSocket upgrades so both verify the same way.
 */
import { lookup as dnsLookup, type LookupAddress, type LookupOptions } from 'node:dns';
import { readFileSync } from 'node:fs';
import { rootCertificates } from 'node:tls';
import { Pool } from 'undici';
import type { Target } from '../router/types.js';
import { CA_UNREADABLE_CODE } from './upstream-errors.js';

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
  /** Trusted CAs; undefined when verification is off. */
  ca: string[] | undefined;
  rejectUnauthorized: boolean;
  servername: string;
}

type LookupCallback = (error: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void;

/**
 * `dns.lookup` that resolves `localhost` and `*.localhost` to 127.0.0.1 itself: the system
 * resolver here does not (nsswitch `files dns`), while browsers and curl do.
 */
export function loopbackLookup(hostname: string, options: LookupOptions, callback: LookupCallback): void {
  const name = hostname.toLowerCase();
  if (name === 'localhost' || name.endsWith('.localhost')) {
    if (options.all === true) callback(null, [{ address: '127.0.0.1', family: 4 }]);
    else callback(null, '127.0.0.1', 4);
    return;
  }
  (dnsLookup as (host: string, opts: LookupOptions, cb: LookupCallback) => void)(hostname, options, callback);
}

/** PEM certificates in a bundle file (a file may hold several). */
function readPemBundle(file: string): string[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    const reason = (error as NodeJS.ErrnoException).code ?? 'unreadable';
    throw Object.assign(new Error(`the CA file ${file} cannot be read (${reason})`), { code: CA_UNREADABLE_CODE });
  }
  return text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
}

/** Owns the pools; `close()` closes them all. */
export class UpstreamPools {
  readonly #timeouts: UpstreamTimeouts;
  readonly #extraCaFiles: readonly string[];
  readonly #pools = new Map<string, Pool>();
  readonly #tls = new Map<string, RemoteTlsOptions>();
  #systemCas: string[] | undefined;

  constructor(timeouts: UpstreamTimeouts, extraCaFiles: readonly string[] = []) {
    this.#timeouts = timeouts;
    this.#extraCaFiles = extraCaFiles;
  }

  /** The pool for a target, created on first use. Throws when a CA file cannot be read. */
  poolFor(target: Target): Pool {
    const key = target.kind === 'local' ? target.origin : remoteKey(target);
    let pool = this.#pools.get(key);
    if (pool === undefined) {
      pool = this.#createPool(target);
      this.#pools.set(key, pool);
    }
    return pool;
  }

  /**
   * CA set and SNI for a remote: Node's roots, the PEMs of NODE_EXTRA_CA_CERTS (which Node does
   * not add to `tls.rootCertificates`), the target's CA files and the proxy-wide extra CA files.
   */
  tlsFor(target: RemoteTarget): RemoteTlsOptions {
    const key = remoteKey(target);
    let options = this.#tls.get(key);
    if (options === undefined) {
      options = {
        ca: target.insecure ? undefined : [...this.#systemCaSet(), ...[...target.caFiles, ...this.#extraCaFiles].flatMap(readPemBundle)],
        rejectUnauthorized: !target.insecure,
        servername: target.hostname,
      };
      this.#tls.set(key, options);
    }
    return options;
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

  #createPool(target: Target): Pool {
    const timeouts = this.#timeouts;
    const common = {
      connections: MAX_CONNECTIONS_PER_ORIGIN,
      headersTimeout: timeouts.headersTimeoutMs,
      bodyTimeout: timeouts.bodyTimeoutMs,
    };
    if (target.kind === 'local') {
      return new Pool(target.origin, { ...common, connect: { timeout: timeouts.connectTimeoutMs } });
    }
    const tls = this.tlsFor(target);
    return new Pool(target.origin, {
      ...common,
      connect: {
        timeout: timeouts.connectTimeoutMs,
        // The origin may be an address (tests, private endpoints) while SNI must be the remote's name.
        servername: tls.servername,
        rejectUnauthorized: tls.rejectUnauthorized,
        ...(tls.ca === undefined ? {} : { ca: tls.ca }),
        lookup: loopbackLookup,
      },
    });
  }
}

/** How long `close()` lets in-flight upstream requests finish before destroying them. */
export const CLOSE_GRACE_MS = 5_000;

async function closeWithGrace(pool: Pool): Promise<void> {
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

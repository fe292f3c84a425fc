/**
 * Entra ID bearer tokens for `auth: { azure: { scope } }`: one fetch per scope shared by
 * concurrent requests, the token reused until shortly before it expires, and a failure that
 * names every credential tried and why it failed (shown on the 502 page, never the token).
 */
import type { AccessToken, TokenCredential } from '@azure/identity';

/** One credential of the chain, named on error pages. */
export interface NamedCredential {
  name: string;
  credential: TokenCredential;
}

/** Builds the chain tried, in order, for a tenant (undefined: the credential's default tenant). */
export type CredentialChainFactory = (tenant: string | undefined) => NamedCredential[] | Promise<NamedCredential[]>;

/** A cached token is refreshed this long before it expires, in ms. */
export const TOKEN_REFRESH_MARGIN_MS = 5 * 60_000;
/** Longest a CLI credential (`az`, `azd`) may take to print a token, in ms. */
const CLI_TIMEOUT_MS = 30_000;
/** Longest part of one credential's failure kept for the error page. */
const MAX_REASON_CHARS = 240;

/**
 * The chain devproxy uses: EnvironmentCredential (a service principal in AZURE_TENANT_ID /
 * AZURE_CLIENT_ID / AZURE_CLIENT_SECRET, for CI), then AzureCliCredential (`az login`), then
 * AzureDeveloperCliCredential (`azd auth login`). Not DefaultAzureCredential: its managed
 * identity probe calls IMDS (169.254.169.254), which on a laptop only adds a timeout to every
 * failure, and its workload identity needs a cluster.
 */
export async function defaultCredentialChain(tenant: string | undefined): Promise<NamedCredential[]> {
  // Loaded on the first token request: @azure/identity adds ~20 MB to a daemon that may never need it.
  const { AzureCliCredential, AzureDeveloperCliCredential, EnvironmentCredential } = await import('@azure/identity');
  const tenantOption = tenant === undefined ? {} : { tenantId: tenant };
  return [
    { name: 'EnvironmentCredential', credential: new EnvironmentCredential() },
    { name: 'AzureCliCredential', credential: new AzureCliCredential({ ...tenantOption, processTimeoutInMs: CLI_TIMEOUT_MS }) },
    { name: 'AzureDeveloperCliCredential', credential: new AzureDeveloperCliCredential({ ...tenantOption, processTimeoutInMs: CLI_TIMEOUT_MS }) },
  ];
}

/** Every credential of the chain failed; `attempts` says how, one line each. */
export class AzureTokenError extends Error {
  constructor(
    readonly scope: string,
    readonly tenant: string | undefined,
    readonly attempts: readonly { name: string; reason: string }[],
  ) {
    super(`no credential gave a token for ${scope}: ${attempts.map((a) => `${a.name}: ${a.reason}`).join('; ')}`);
    this.name = 'AzureTokenError';
  }
}

interface CacheEntry {
  token?: AccessToken;
  pending?: Promise<string>;
}

/** First sentence of a credential's error (the rest is troubleshooting links), short enough for a page. */
function reasonOf(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  const firstLine = message.split('\n').find((l) => l.trim() !== '')?.trim() ?? 'failed';
  const line = /^(.+?\.)\s/.exec(firstLine)?.[1] ?? firstLine;
  return line.length > MAX_REASON_CHARS ? `${line.slice(0, MAX_REASON_CHARS)}…` : line;
}

/** Tokens per (tenant, scope), fetched through a {@link CredentialChainFactory}. */
export class AzureTokenCache {
  readonly #chainFor: CredentialChainFactory;
  readonly #chains = new Map<string, Promise<NamedCredential[]>>();
  readonly #entries = new Map<string, CacheEntry>();

  constructor(chainFor: CredentialChainFactory = defaultCredentialChain) {
    this.#chainFor = chainFor;
  }

  /**
   * A bearer token for `scope`: the cached one (synchronously) until {@link
   * TOKEN_REFRESH_MARGIN_MS} before it expires, else one fetch shared by every caller. A failed
   * refresh still serves a token that has not expired; otherwise it rejects with
   * {@link AzureTokenError}. Failures are not cached: the next request tries again.
   */
  token(scope: string, tenant: string | undefined): string | Promise<string> {
    const key = `${tenant ?? ''}\n${scope}`;
    let entry = this.#entries.get(key);
    if (entry === undefined) {
      entry = {};
      this.#entries.set(key, entry);
    }
    const cached = entry.token;
    if (cached !== undefined && Date.now() < cached.expiresOnTimestamp - TOKEN_REFRESH_MARGIN_MS) return cached.token;
    entry.pending ??= this.#fetch(key, entry, scope, tenant);
    return entry.pending;
  }

  async #fetch(key: string, entry: CacheEntry, scope: string, tenant: string | undefined): Promise<string> {
    try {
      const token = await this.#fetchFromChain(key, scope, tenant);
      entry.token = token;
      return token.token;
    } catch (error) {
      const stale = entry.token;
      if (stale !== undefined && Date.now() < stale.expiresOnTimestamp) return stale.token;
      throw error;
    } finally {
      entry.pending = undefined;
    }
  }

  /** Tries each credential in turn, as ChainedTokenCredential does, keeping each one's failure. */
  async #fetchFromChain(key: string, scope: string, tenant: string | undefined): Promise<AccessToken> {
    let chain = this.#chains.get(key);
    if (chain === undefined) {
      chain = Promise.resolve(this.#chainFor(tenant));
      this.#chains.set(key, chain);
    }
    const attempts: { name: string; reason: string }[] = [];
    for (const { name, credential } of await chain) {
      try {
        const token = await credential.getToken(scope);
        if (token !== null) return token;
        attempts.push({ name, reason: 'returned no token' });
      } catch (error) {
        attempts.push({ name, reason: reasonOf(error) });
        // An available credential that failed (wrong tenant, consent missing) is the answer; an
        // unavailable one (not signed in, not installed) lets the next one try.
        if ((error as Error | undefined)?.name !== 'CredentialUnavailableError') break;
      }
    }
    throw new AzureTokenError(scope, tenant, attempts);
  }
}

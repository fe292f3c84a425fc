/**
 * The addresses of the running containers devproxy started (its compose labels), as the engine
 * says, for the bridge listeners' question "is this peer one of ours?" (proxy/bridge-peers.ts).
 *
 * Current by construction: an address is trusted from the cache only while the engine's event
 * feed that was open when the cache was read is still open, so every `die` since has removed its
 * container's addresses (an address a stopped container freed and another container got is
 * never lent to). Anything else — an address not in the cache (a container that started a moment
 * ago, whose event may not have arrived), no event feed, a feed reopened since — asks the engine
 * again before deciding: one snapshot at a time, at most one per {@link MIN_REFRESH_INTERVAL_MS},
 * shared by every question asked meanwhile, so a foreign container's flood of connections costs
 * the engine a few calls a second at most. An engine that does not answer in
 * {@link PEER_LOOKUP_TIMEOUT_MS} lends nothing.
 */

/** Shortest time between two snapshots of the engine, in ms: a bound on what questions cost it. */
export const MIN_REFRESH_INTERVAL_MS = 200;
/** Longest wait for the engine's answer to one question, in ms; then the peer is not ours. */
export const PEER_LOOKUP_TIMEOUT_MS = 3_000;

/**
 * Engine states in which a container holds its addresses besides `running`: the engine connects
 * a container's networks before its process starts but records `running` only after, and a
 * process that calls the proxy at once does so in between (`created`, or `restarting` under a
 * restart policy). A stopped container's addresses are cleared by the engine.
 */
const STARTING_STATES: ReadonlySet<string> = new Set(['created', 'restarting']);

/** The parts of a container inspect (`GET /containers/{id}/json`) {@link containerAddresses} reads. */
export interface ContainerNetworksInspect {
  State?: { Running?: boolean; Status?: string } | null;
  NetworkSettings?: { Networks?: Record<string, { IPAddress?: string | null; GlobalIPv6Address?: string | null } | null> | null } | null;
}

/** Pure: the addresses a running (or starting) container has on each of its networks; none for a stopped one. */
export function containerAddresses(inspect: ContainerNetworksInspect): string[] {
  if (inspect.State?.Running !== true && !STARTING_STATES.has(inspect.State?.Status ?? '')) return [];
  const found: string[] = [];
  for (const network of Object.values(inspect.NetworkSettings?.Networks ?? {})) {
    for (const address of [network?.IPAddress, network?.GlobalIPv6Address]) {
      if (typeof address === 'string' && address !== '') found.push(address);
    }
  }
  return found;
}

/** Options of {@link OwnedAddresses}. */
export interface OwnedAddressesOptions {
  /** Address → container id of every running container devproxy started, read from the engine now. */
  snapshot(): Promise<ReadonlyMap<string, string>>;
  /** The id of the engine event feed open now (each reconnect opens a new one), undefined when none is. */
  eventFeed(): number | undefined;
  /** Default {@link MIN_REFRESH_INTERVAL_MS}. */
  minRefreshIntervalMs?: number;
  /** Default {@link PEER_LOOKUP_TIMEOUT_MS}. */
  lookupTimeoutMs?: number;
}

/** Which addresses belong to containers devproxy started, kept current from the engine. */
export class OwnedAddresses {
  #known: ReadonlyMap<string, string> = new Map();
  /** The event feed open when {@link #known} was read; undefined when no feed was. */
  #feed: number | undefined;
  #running: Promise<void> | undefined;
  #queued: Promise<void> | undefined;
  #lastStart = Number.NEGATIVE_INFINITY;
  /** Containers that died while a snapshot was under way: its answer may still list them. */
  readonly #diedMeanwhile = new Set<string>();
  readonly #minIntervalMs: number;
  readonly #timeoutMs: number;

  constructor(private readonly opts: OwnedAddressesOptions) {
    this.#minIntervalMs = opts.minRefreshIntervalMs ?? MIN_REFRESH_INTERVAL_MS;
    this.#timeoutMs = opts.lookupTimeoutMs ?? PEER_LOOKUP_TIMEOUT_MS;
  }

  /** True when `address` is a running container of devproxy's: at once from a current cache, else once the engine answered. */
  isOwned(address: string): boolean | Promise<boolean> {
    if (this.#feed !== undefined && this.#feed === this.opts.eventFeed() && this.#known.has(address)) return true;
    return new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), this.#timeoutMs);
      timer.unref();
      this.#refreshed().then(() => {
        clearTimeout(timer);
        resolve(this.#known.has(address));
      });
    });
  }

  /** A container died (an engine event): its addresses are free for any container from now on. */
  forget(containerId: string): void {
    if (this.#running !== undefined) this.#diedMeanwhile.add(containerId);
    if (![...this.#known.values()].includes(containerId)) return;
    this.#known = new Map([...this.#known].filter(([, id]) => id !== containerId));
  }

  /** A snapshot that starts after this call, shared by every call until it starts; never rejects. */
  #refreshed(): Promise<void> {
    if (this.#queued !== undefined) return this.#queued;
    const queued = (this.#running ?? Promise.resolve())
      .then(() => waitMs(this.#lastStart + this.#minIntervalMs - Date.now()))
      .then(() => {
        this.#queued = undefined;
        return this.#snapshot();
      });
    this.#queued = queued;
    return queued;
  }

  #snapshot(): Promise<void> {
    this.#lastStart = Date.now();
    this.#diedMeanwhile.clear();
    const feed = this.opts.eventFeed();
    const running = this.opts.snapshot().then(
      (found) => {
        this.#known = new Map([...found].filter(([, id]) => !this.#diedMeanwhile.has(id)));
        this.#feed = feed;
      },
      () => {
        this.#known = new Map();
        this.#feed = undefined;
      },
    );
    this.#running = running.finally(() => {
      this.#running = undefined;
    });
    return this.#running;
  }
}

/** Resolves after `ms` (at once when it is not positive), without holding the process open. */
function waitMs(ms: number): Promise<void> {
  if (ms <= 0) return Promise.resolve();
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}

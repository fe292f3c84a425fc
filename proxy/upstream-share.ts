/**
 * A fair share of the upstream side per client connection. One HTTP/2 connection can carry a
 * hundred streams, and each in-flight request holds an upstream socket of a pool of at most 256:
 * without a share, one client with zero-window or never-ending streams holds them all and every
 * other client of the service waits. Each client connection may have at most
 * {@link MAX_UPSTREAM_PER_CLIENT} requests in flight; the rest wait in that connection's own
 * queue, and when the proxy-wide total is reached, waiting connections take turns.
 */

/** Upstream requests one client connection may have in flight at once; its further requests wait their turn. */
export const MAX_UPSTREAM_PER_CLIENT = 32;

/** An exchange waiting for its turn. */
export interface ShareWaiter {
  /** Called once when the exchange may start. */
  admitted(): void;
}

interface ClientShare {
  inFlight: number;
  waiting: ShareWaiter[];
}

/** In-flight upstream requests per client connection (an HTTP/1.1 socket or an h2 session). */
export class UpstreamShares {
  readonly #clients = new WeakMap<object, ClientShare>();
  /** Clients with waiting exchanges, in turn order. */
  readonly #queued = new Set<ClientShare>();
  #inFlight = 0;

  /**
   * @param total Upstream requests in flight across all clients (the descriptor budget).
   * @param perClient Upstream requests in flight per client connection.
   */
  constructor(
    private readonly total: number,
    private readonly perClient = MAX_UPSTREAM_PER_CLIENT,
  ) {}

  /** True when `waiter` may start now (it holds a slot); otherwise it is queued and `admitted()` is called later. */
  acquire(client: object, waiter: ShareWaiter): boolean {
    let share = this.#clients.get(client);
    if (share === undefined) {
      share = { inFlight: 0, waiting: [] };
      this.#clients.set(client, share);
    }
    if (share.waiting.length === 0 && share.inFlight < this.perClient && this.#inFlight < this.total) {
      share.inFlight++;
      this.#inFlight++;
      return true;
    }
    share.waiting.push(waiter);
    this.#queued.add(share);
    return false;
  }

  /** Gives back the slot of a finished exchange of `client` and starts whoever's turn it is. */
  release(client: object): void {
    const share = this.#clients.get(client);
    if (share === undefined || share.inFlight === 0) return;
    share.inFlight--;
    this.#inFlight--;
    this.#admitWaiting();
  }

  /** Forgets a waiting exchange whose client went away. */
  cancel(client: object, waiter: ShareWaiter): void {
    const share = this.#clients.get(client);
    if (share === undefined) return;
    const index = share.waiting.indexOf(waiter);
    if (index !== -1) share.waiting.splice(index, 1);
    if (share.waiting.length === 0) this.#queued.delete(share);
  }

  /** Starts waiting exchanges, one client at a time in turn, while slots are free. */
  #admitWaiting(): void {
    while (this.#inFlight < this.total) {
      let next: ClientShare | undefined;
      for (const share of this.#queued) {
        if (share.inFlight < this.perClient) {
          next = share;
          break;
        }
      }
      if (next === undefined) return;
      const waiter = next.waiting.shift() as ShareWaiter;
      next.inFlight++;
      this.#inFlight++;
      // To the back of the line: the next free slot goes to another waiting client first.
      this.#queued.delete(next);
      if (next.waiting.length > 0) this.#queued.add(next);
      waiter.admitted();
    }
  }
}

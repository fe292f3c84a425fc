/**
 * Who may borrow the remotes' credentials on the Docker bridge listeners. Loopback peers are
 * local programs of the developer and keep the `Origin` rule alone; a bridge listener is also
 * reached by every container on the machine (any image, any network) and by a LAN peer that
 * routes the bridge's subnet through the laptop, none of which send an `Origin`. So each
 * connection a bridge listener accepts is registered here with its peer's address, and a
 * request on it gets credentials only when the peer is the host itself or a container devproxy
 * started (asked of the engine, once per connection, and only when a request would lend).
 * Connections of the loopback listeners are never registered and cost nothing here.
 */

/** The verdict for one peer: at once, or once the engine answered. */
export type PeerVerdict = boolean | Promise<boolean>;

/** Decides whether the peer at `address` may borrow credentials (a container devproxy started). */
export type PeerVetter = (address: string) => PeerVerdict;

/** A connection a bridge listener accepted: its peer and, once asked, the verdict. */
interface BridgeConnection {
  readonly address: string;
  verdict: PeerVerdict | undefined;
}

/** The socket facts a registration reads (a TCP or TLS socket, or node's proxy of an h2 session's). */
interface PeerSocket {
  readonly remoteAddress?: string | undefined;
  readonly localAddress?: string | undefined;
}

/** Pure: an IPv4 peer of a dual-stack socket (`::ffff:172.17.0.2`) as the engine writes it. */
export function plainPeerAddress(address: string): string {
  return address.startsWith('::ffff:') && address.includes('.') ? address.slice('::ffff:'.length) : address;
}

/**
 * Pure: true when the peer is the host itself — a program of the host (or a container on the
 * host's network) that dialled the bridge address gets that address as its source, and could
 * as well have dialled loopback.
 */
export function isHostItself(remoteAddress: string, localAddress: string): boolean {
  return remoteAddress !== '' && plainPeerAddress(remoteAddress) === plainPeerAddress(localAddress);
}

/** The connections accepted on bridge listeners, and the verdict on each one's peer. */
export class BridgePeers {
  /** By connection: the TCP or TLS socket of an HTTP/1.1 connection, the session of an h2 one (as a request's context names it). */
  readonly #connections = new WeakMap<object, BridgeConnection>();

  /** @param vet asked once per connection that would borrow credentials, with the peer's plain address. */
  constructor(private readonly vet: PeerVetter) {}

  /** Registers a connection a bridge listener accepted (`connection` is what requests on it name as theirs). */
  admit(connection: object, socket: PeerSocket): void {
    const address = socket.remoteAddress ?? '';
    const verdict = isHostItself(address, socket.localAddress ?? '') ? true : address === '' ? false : undefined;
    this.#connections.set(connection, { address: plainPeerAddress(address), verdict });
  }

  /** The peer of a registered connection, undefined for any other (loopback) connection. */
  peerOf(connection: object): string | undefined {
    return this.#connections.get(connection)?.address;
  }

  /**
   * Whether requests on `connection` may borrow credentials: always for a connection no bridge
   * listener registered; for a registered one, the vetter's verdict on its peer, asked once.
   */
  mayLend(connection: object): PeerVerdict {
    const entry = this.#connections.get(connection);
    if (entry === undefined) return true;
    if (entry.verdict !== undefined) return entry.verdict;
    const verdict = this.vet(entry.address);
    if (typeof verdict === 'boolean') return (entry.verdict = verdict);
    // Later requests on the connection share the one question, then read the answer at once; a failed question lends nothing.
    const settled = verdict.then(
      (lend) => (entry.verdict = lend),
      () => (entry.verdict = false),
    );
    entry.verdict = settled;
    return settled;
  }
}

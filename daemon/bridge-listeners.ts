import type { Logger } from '../logger.js';

/** One extra address the proxy listens on, and how to stop listening there. */
interface BridgeListener {
  address: string;
  close(): Promise<void>;
}

/** Options of {@link BridgeListeners}. */
export interface BridgeListenersOptions {
  /** Where containers reach the host now (Docker's host-gateway); undefined until Docker is in use. */
  gateway(): Promise<string | undefined>;
  /** Starts the HTTP (and HTTPS, when enabled) listeners on one more address, same ports; never the admin API. */
  listen(address: string): Promise<() => Promise<void>>;
  /** Addresses the proxy already listens on (loopback, `--host`). */
  listening(): string[];
  /** Called after an address was added, so daemon.json can list it. */
  onAdded(address: string): void;
  logger: Logger;
}

/**
 * Makes the proxy reachable from containers on Linux without `--host`: once the runtime uses
 * Docker, the HTTP/HTTPS listeners also bind the bridge gateway that `extra_hosts: host-gateway`
 * names, a private address on a local bridge (never a wildcard, never the admin API).
 * `check()` is cheap to call on every runtime change; it acts once per gateway address.
 */
export class BridgeListeners {
  private readonly added: BridgeListener[] = [];
  private checking: Promise<void> | undefined;
  private readonly refused = new Set<string>();

  constructor(private readonly opts: BridgeListenersOptions) {}

  /** Adds the gateway address when Docker is in use and it is not listened on yet. */
  check(): Promise<void> {
    this.checking ??= this.attach().finally(() => {
      this.checking = undefined;
    });
    return this.checking;
  }

  /** The addresses added so far. */
  addresses(): string[] {
    return this.added.map((l) => l.address);
  }

  /** Stops listening on every added address. */
  async close(): Promise<void> {
    await this.checking;
    await Promise.all(this.added.splice(0).map((l) => l.close()));
  }

  private async attach(): Promise<void> {
    const address = await this.opts.gateway();
    if (!address || this.refused.has(address) || this.opts.listening().includes(address) || this.addresses().includes(address)) return;
    try {
      const close = await this.opts.listen(address);
      this.added.push({ address, close });
      this.opts.logger.info(`also listening on ${address}, the Docker bridge gateway, so containers reach the proxy (HTTP/HTTPS only)`);
      this.opts.onAdded(address);
    } catch (error) {
      // A wildcard --host already covers it (EADDRINUSE), or the address is not local (Docker Desktop).
      this.refused.add(address);
      this.opts.logger.warn(`could not listen on the Docker bridge gateway ${address}: ${(error as Error).message}; containers reach the proxy only with \`proxy start --host ${address}\``);
    }
  }
}

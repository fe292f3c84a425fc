import { syncHostsFile } from '../environment/hosts-file.js';
import type { Logger } from '../logger.js';

/** Table changes come in bursts (a new worktree adds five names at once): write once they settle. */
const HOSTS_SYNC_DEBOUNCE_MS = 200;

/**
 * `proxy start --sync-hosts`: keeps devproxy's block of a hosts file equal to the routed
 * hostnames, for clients that read only the hosts file. Writes only when the set changes; a
 * file it may not write is reported once, with the command to run, and never stops routing.
 */
export class HostsFileSync {
  private synced = '';
  private pending?: string[];
  private timer?: NodeJS.Timeout;
  private warned = false;

  constructor(
    private readonly path: string,
    private readonly logger: Logger,
  ) {}

  update(hosts: Iterable<string>): void {
    const sorted = [...hosts].sort();
    if (sorted.join(' ') === this.synced) return;
    this.pending = sorted;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.flush(), HOSTS_SYNC_DEBOUNCE_MS);
  }

  close(): void {
    clearTimeout(this.timer);
  }

  private async flush(): Promise<void> {
    const hosts = this.pending;
    if (!hosts) return;
    try {
      const result = await syncHostsFile(this.path, hosts, 'sudo devproxy hosts sync');
      this.synced = hosts.join(' ');
      if (result.changed) this.logger.info(`hosts file ${result.path}: ${hosts.length} hostnames`);
    } catch (error) {
      if (!this.warned) this.logger.warn(`cannot keep ${this.path} in sync: ${(error as Error).message}`);
      this.warned = true;
    }
  }
}

import type { ProjectConfig } from '../profiles/schema.js';
import { serviceHost } from '../hostname.js';

/** Where a container finds devproxy's CA when the runtime mounts it ({@link composeCaVolume}). */
export const CONTAINER_CA_PATH = '/etc/devproxy/ca.pem';

/**
 * `extra_hosts` entries sending every hostname of the worktree to the proxy on the host:
 * Docker's `host-gateway` on a bridge network, loopback under `network_mode: host`.
 */
export function composeExtraHosts(worktree: { config: ProjectConfig; slug: string }, opts: { hostNetwork: boolean }): string[] {
  const address = opts.hostNetwork ? '127.0.0.1' : 'host-gateway';
  return [...worktree.config.services.keys()].map((service) => `${serviceHost(service, worktree.slug)}:${address}`);
}

/** The read-only `volumes:` entry mounting devproxy's CA at {@link CONTAINER_CA_PATH}. */
export function composeCaVolume(caPath: string): string {
  return `${caPath}:${CONTAINER_CA_PATH}:ro`;
}

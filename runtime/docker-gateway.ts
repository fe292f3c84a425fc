/**
 * The address containers reach the host by: Docker's `host-gateway`, which is the gateway of the
 * default `bridge` network (every worktree's `extra_hosts` entries point there; a container on a
 * project network reaches it too, through the host's own routing). The engine usually reports it
 * in `IPAM.Config[].Gateway`; some engines omit it (a Debian docker.io 20.10 started by hand),
 * and then the bridge's own interface (`docker0`, or the name in the network's options) has it.
 * An idle bridge (no container on it) has no carrier, and Node's `networkInterfaces()` leaves
 * such interfaces out: the kernel's table of local addresses (`/proc/net/fib_trie`) still has
 * its address, the one inside the network's subnet.
 */
import type { NetworkInterfaceInfo } from 'node:os';
import { readFile } from 'node:fs/promises';
import { isIPv4 } from 'node:net';

/** The parts of `docker network inspect` this reads. */
export interface BridgeNetworkInspect {
  Driver?: string;
  IPAM?: { Config?: Array<{ Subnet?: string; Gateway?: string }> | null };
  Options?: Record<string, string> | null;
}

/** Name of the default bridge's interface when the network's options do not say. */
const DEFAULT_BRIDGE_INTERFACE = 'docker0';

/**
 * Pure: the IPv4 gateway of a bridge network, from the engine's IPAM config, else from the
 * bridge interface's address (within the network's subnet when the engine gives one), else the
 * host's local address inside that subnet (`localAddresses`, see {@link localAddressesFromFibTrie}).
 * Undefined when none knows it. Never a wildcard or loopback address: those would expose
 * the proxy to every network, or not reach containers at all.
 */
export function bridgeGateway(network: BridgeNetworkInspect, interfaces: NodeJS.Dict<NetworkInterfaceInfo[]>, localAddresses: readonly string[] = []): string | undefined {
  const configs = network.IPAM?.Config ?? [];
  const usable = (address: string | undefined): address is string => address !== undefined && isIPv4(address) && address !== '0.0.0.0' && !address.startsWith('127.');
  const fromEngine = configs.map((c) => c.Gateway).find(usable);
  if (fromEngine) return fromEngine;
  const name = network.Options?.['com.docker.network.bridge.name'] ?? DEFAULT_BRIDGE_INTERFACE;
  const subnets = configs.map((c) => c.Subnet).filter((s): s is string => s !== undefined && s.includes('.'));
  const addresses = (interfaces[name] ?? []).filter((i) => i.family === 'IPv4' && usable(i.address)).map((i) => i.address);
  const fromInterface = addresses.find((a) => subnets.length === 0 || subnets.some((s) => inSubnet(a, s)));
  if (fromInterface) return fromInterface;
  return localAddresses.find((a) => usable(a) && subnets.some((s) => inSubnet(a, s)));
}

/**
 * Pure: the host's own IPv4 addresses from the text of `/proc/net/fib_trie` (Linux), where each
 * local address is a `|-- a.b.c.d` line followed by `/32 host LOCAL`; down interfaces included.
 */
export function localAddressesFromFibTrie(text: string): string[] {
  const found = new Set<string>();
  const lines = text.split('\n');
  lines.forEach((line, i) => {
    const address = /\|--\s+(\d+\.\d+\.\d+\.\d+)\s*$/.exec(line)?.[1];
    if (address && /\/32 host LOCAL/.test(lines[i + 1] ?? '')) found.add(address);
  });
  return [...found];
}

/** The host's local IPv4 addresses from the kernel (Linux); none elsewhere or when unreadable. */
export async function localAddresses(): Promise<string[]> {
  if (process.platform !== 'linux') return [];
  return localAddressesFromFibTrie(await readFile('/proc/net/fib_trie', 'utf8').catch(() => ''));
}

function inSubnet(address: string, cidr: string): boolean {
  const [base, bits] = cidr.split('/');
  if (!base || !isIPv4(base)) return false;
  const prefix = Number(bits ?? 32);
  const mask = prefix === 0 ? 0 : (~0 << (32 - prefix)) >>> 0;
  return ((toInt(address) & mask) >>> 0) === ((toInt(base) & mask) >>> 0);
}

function toInt(address: string): number {
  return address.split('.').reduce((n, part) => ((n << 8) + Number(part)) >>> 0, 0);
}

import type { NetworkInterfaceInfo } from 'node:os';
import { describe, expect, it } from 'vitest';
import { bridgeGateway, localAddressesFromFibTrie, type BridgeNetworkInspect } from '../../runtime/docker-gateway.js';

/** /proc/net/fib_trie of a host whose docker0 is idle (no carrier), abridged. */
const FIB_TRIE = `Main:
  +-- 0.0.0.0/0 3 0 5
     |-- 0.0.0.0
        /0 universe UNICAST
     +-- 127.0.0.0/8 2 0 2
        +-- 127.0.0.0/31 1 0 0
           |-- 127.0.0.0
              /8 host LOCAL
           |-- 127.0.0.1
              /32 host LOCAL
     +-- 172.17.0.0/16 2 0 2
        |-- 172.17.0.0
           /16 link UNICAST
        |-- 172.17.0.1
           /32 host LOCAL
        |-- 172.17.255.255
           /32 link BROADCAST
     |-- 10.0.0.5
        /32 host LOCAL
Local:
  +-- 0.0.0.0/0 3 0 5
        |-- 172.17.0.1
           /32 host LOCAL
`;

/** `docker network inspect bridge` of a Debian docker.io 20.10 started by hand: no IPAM Gateway. */
const WITHOUT_GATEWAY: BridgeNetworkInspect = {
  Driver: 'bridge',
  IPAM: { Config: [{ Subnet: '172.17.0.0/16' }] },
  Options: { 'com.docker.network.bridge.default_bridge': 'true', 'com.docker.network.bridge.name': 'docker0', 'com.docker.network.bridge.host_binding_ipv4': '0.0.0.0' },
};

function iface(address: string, family: 'IPv4' | 'IPv6' = 'IPv4'): NetworkInterfaceInfo {
  return family === 'IPv4'
    ? { address, family, netmask: '255.255.0.0', mac: '02:42:00:00:00:00', internal: false, cidr: `${address}/16` }
    : { address, family, netmask: 'ffff:ffff:ffff:ffff::', mac: '02:42:00:00:00:00', internal: false, cidr: `${address}/64`, scopeid: 0 };
}

const INTERFACES = { lo: [iface('127.0.0.1')], eth0: [iface('10.0.0.5')], docker0: [iface('fe80::42:1', 'IPv6'), iface('172.17.0.1')] };

describe('bridgeGateway', () => {
  it('finds the gateway on the bridge interface when the engine omits IPAM.Config[].Gateway', () => {
    expect(bridgeGateway(WITHOUT_GATEWAY, INTERFACES)).toBe('172.17.0.1');
  });

  it('takes the engine\'s Gateway when it reports one (IPv4 only)', () => {
    const reported = { ...WITHOUT_GATEWAY, IPAM: { Config: [{ Subnet: 'fd00::/64', Gateway: 'fd00::1' }, { Subnet: '172.30.0.0/16', Gateway: '172.30.0.1' }] } };
    expect(bridgeGateway(reported, {})).toBe('172.30.0.1');
  });

  it('reads the interface named in the network options, within the network\'s subnet', () => {
    const custom = { IPAM: { Config: [{ Subnet: '192.168.200.0/24' }] }, Options: { 'com.docker.network.bridge.name': 'br-dev' } };
    expect(bridgeGateway(custom, { 'br-dev': [iface('10.9.9.9'), iface('192.168.200.1')] })).toBe('192.168.200.1');
    expect(bridgeGateway(custom, { 'br-dev': [iface('10.9.9.9')] })).toBeUndefined();
  });

  it('finds an idle bridge\'s address (absent from networkInterfaces) among the kernel\'s local addresses in its subnet', () => {
    const local = localAddressesFromFibTrie(FIB_TRIE);
    expect(local).toEqual(['127.0.0.1', '172.17.0.1', '10.0.0.5']);
    expect(bridgeGateway(WITHOUT_GATEWAY, { lo: [iface('127.0.0.1')], eth0: [iface('10.0.0.5')] }, local)).toBe('172.17.0.1');
    // Without a subnet there is no telling which local address is the bridge's.
    expect(bridgeGateway({ IPAM: { Config: [] }, Options: { 'com.docker.network.bridge.name': 'docker0' } }, {}, local)).toBeUndefined();
  });

  it('falls back to docker0 when the options do not name the bridge', () => {
    expect(bridgeGateway({ IPAM: { Config: null }, Options: null }, INTERFACES)).toBe('172.17.0.1');
  });

  it('never answers a wildcard or loopback address, nor a gateway nobody knows', () => {
    expect(bridgeGateway({ IPAM: { Config: [{ Gateway: '0.0.0.0' }] } }, {})).toBeUndefined();
    expect(bridgeGateway({ IPAM: { Config: [{ Gateway: '127.0.0.1' }] } }, {})).toBeUndefined();
    expect(bridgeGateway({ IPAM: { Config: [{ Subnet: '172.17.0.0/16' }] } }, { docker0: [iface('0.0.0.0')] })).toBeUndefined();
    expect(bridgeGateway(WITHOUT_GATEWAY, { eth0: [iface('10.0.0.5')] })).toBeUndefined();
  });
});

import { describe, expect, it } from 'vitest';
import { BridgePeers, isHostItself, plainPeerAddress } from '../../proxy/bridge-peers.js';

describe('bridge peers: who may borrow credentials on a Docker bridge listener', () => {
  it('reads an IPv4 peer of a dual-stack socket as the engine writes it', () => {
    expect(plainPeerAddress('::ffff:172.17.0.2')).toBe('172.17.0.2');
    expect(plainPeerAddress('172.17.0.2')).toBe('172.17.0.2');
    expect(plainPeerAddress('fd00::2')).toBe('fd00::2');
  });

  it('takes a peer that is the listener’s own address for the host itself, nothing else', () => {
    expect(isHostItself('172.17.0.1', '172.17.0.1')).toBe(true);
    expect(isHostItself('::ffff:172.17.0.1', '172.17.0.1')).toBe(true);
    expect(isHostItself('172.17.0.2', '172.17.0.1')).toBe(false);
    expect(isHostItself('', '')).toBe(false);
  });

  it('lends on a connection no bridge listener registered, without asking', () => {
    const asked: string[] = [];
    const peers = new BridgePeers((address) => (asked.push(address), false));
    expect(peers.mayLend({})).toBe(true);
    expect(peers.peerOf({})).toBeUndefined();
    expect(asked).toEqual([]);
  });

  it('asks once per registered connection, with the peer’s plain address, and keeps the verdict', () => {
    const asked: string[] = [];
    const peers = new BridgePeers((address) => (asked.push(address), address === '172.17.0.5'));
    const ours = {};
    const foreign = {};
    peers.admit(ours, { remoteAddress: '::ffff:172.17.0.5', localAddress: '172.17.0.1' });
    peers.admit(foreign, { remoteAddress: '172.24.0.2', localAddress: '172.17.0.1' });
    expect([peers.mayLend(ours), peers.mayLend(ours), peers.mayLend(foreign), peers.mayLend(foreign)]).toEqual([true, true, false, false]);
    expect(asked).toEqual(['172.17.0.5', '172.24.0.2']);
    expect(peers.peerOf(foreign)).toBe('172.24.0.2');
  });

  it('lends to the host itself, and never to a connection whose peer is unknown, without asking', () => {
    const asked: string[] = [];
    const peers = new BridgePeers((address) => (asked.push(address), true));
    const host = {};
    const gone = {};
    peers.admit(host, { remoteAddress: '172.17.0.1', localAddress: '172.17.0.1' });
    peers.admit(gone, { remoteAddress: undefined, localAddress: undefined });
    expect(peers.mayLend(host)).toBe(true);
    expect(peers.mayLend(gone)).toBe(false);
    expect(asked).toEqual([]);
  });

  it('shares an answer still to come between the requests of one connection, then reads it at once; a failed question lends nothing', async () => {
    let answer!: (lend: boolean) => void;
    let fail!: (error: Error) => void;
    let asked = 0;
    const peers = new BridgePeers((address) => {
      asked++;
      return new Promise<boolean>((resolve, reject) => (address === '172.17.0.7' ? (answer = resolve) : (fail = reject)));
    });
    const waiting = {};
    const failing = {};
    peers.admit(waiting, { remoteAddress: '172.17.0.7', localAddress: '172.17.0.1' });
    peers.admit(failing, { remoteAddress: '172.17.0.8', localAddress: '172.17.0.1' });
    const first = peers.mayLend(waiting);
    const second = peers.mayLend(waiting);
    expect(first).toBeInstanceOf(Promise);
    answer(true);
    expect(await first).toBe(true);
    expect(await second).toBe(true);
    expect(peers.mayLend(waiting)).toBe(true);
    const refused = peers.mayLend(failing);
    fail(new Error('engine gone'));
    expect(await refused).toBe(false);
    expect(peers.mayLend(failing)).toBe(false);
    expect(asked).toBe(2);
  });
});

/**
 * Ports a test names before anything binds them (a daemon that must keep its port across
 * restarts, a port that nothing listens on): from the top of this worker's local-port range
 * (test/setup/worker-ports.ts). No other worker uses that range and the kernel hands none of its
 * ports out (port-0 listeners and outgoing connections get ephemeral ports), so a port found free
 * here stays free until the test binds it; a port-0 port released and named later could be taken
 * meanwhile by another file's listener. The daemons' services take their ports from the bottom.
 */
import { isPortFree, parsePortRange } from '../../runtime/ports.js';

let next: number | undefined;

/** A port of this worker's range that nothing listens on now, never the same twice in a file. */
export async function fixedPort(): Promise<number> {
  const { start, end } = parsePortRange(process.env.DEVPROXY_LOCAL_PORTS ?? '');
  const lowest = start + Math.floor((end - start) / 2);
  next ??= end;
  while (next >= lowest) {
    const port = next--;
    if (await isPortFree(port)) return port;
  }
  throw new Error(`no free port left in the upper half of DEVPROXY_LOCAL_PORTS ${start}-${end}`);
}

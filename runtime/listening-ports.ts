/**
 * Which TCP ports a process tree listens on, to explain a dev server that runs but does not
 * answer on the PORT devproxy gave it (Vite on its default 5173, say). Linux reads the tree's
 * socket inodes from /proc/<pid>/fd and matches them against /proc/<pid>/net/tcp{,6}; macOS and
 * other systems ask `lsof`. The parsers and the message are pure.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readdir, readFile, readlink } from 'node:fs/promises';
import { promisify } from 'node:util';
import { sleep } from './health.js';
import { processTreePids, type ProcessRecord } from './processes.js';

const execFileAsync = promisify(execFile);

/** How often a starting process's listening ports are read while its PORT does not answer. */
const PORT_SCAN_INTERVAL_MS = 1_000;
/**
 * How long a process may listen elsewhere but not on PORT before that is its verdict: a dev
 * server sometimes opens a side port (HMR, inspector) a moment before its main one.
 */
const PORT_MISMATCH_GRACE_MS = 3_000;

/** State column of a listening socket in /proc/net/tcp. */
const TCP_LISTEN = '0A';

/** Listening sockets of a /proc/net/tcp or tcp6 table: socket inode → local port. */
export function parseProcNetTcp(text: string): Map<number, number> {
  const out = new Map<number, number>();
  for (const line of text.split('\n').slice(1)) {
    const fields = line.trim().split(/\s+/);
    if (fields.length < 10 || fields[3] !== TCP_LISTEN) continue;
    const port = Number.parseInt(fields[1]!.split(':').pop() ?? '', 16);
    const inode = Number(fields[9]);
    if (Number.isInteger(port) && inode > 0) out.set(inode, port);
  }
  return out;
}

/** Ports in `lsof -F n` output (`n127.0.0.1:5173`, `n*:5173`, `n[::1]:5173`). */
export function parseLsofListen(text: string): number[] {
  const ports = new Set<number>();
  for (const line of text.split('\n')) {
    if (!line.startsWith('n')) continue;
    const port = Number(line.slice(line.lastIndexOf(':') + 1));
    if (Number.isInteger(port) && port > 0) ports.add(port);
  }
  return [...ports].sort((a, b) => a - b);
}

/** TCP ports the process group `pgid` and its descendants listen on, ascending; [] when unknown. */
export async function listeningPorts(pgid: number): Promise<number[]> {
  const pids = await processTreePids(pgid);
  if (pids.length === 0) return [];
  if (existsSync('/proc/self/net/tcp')) return procListeningPorts(pids);
  try {
    const { stdout } = await execFileAsync('lsof', ['-nP', '-a', '-p', pids.join(','), '-iTCP', '-sTCP:LISTEN', '-Fn']);
    return parseLsofListen(stdout);
  } catch (error) {
    // lsof exits 1 when it found nothing.
    return parseLsofListen(String((error as { stdout?: string }).stdout ?? ''));
  }
}

async function procListeningPorts(pids: number[]): Promise<number[]> {
  const inodes = new Set<number>();
  // Tables are per network namespace: read each distinct one once (dev servers share the daemon's).
  const tables = new Map<string, Promise<Map<number, number>>>();
  const tableOf = (pid: number): Promise<Map<number, number>> => {
    return Promise.all([`/proc/${pid}/net/tcp`, `/proc/${pid}/net/tcp6`].map((f) => readFile(f, 'utf8').catch(() => ''))).then(
      ([v4, v6]) => new Map([...parseProcNetTcp(v4!), ...parseProcNetTcp(v6!)]),
    );
  };
  for (const pid of pids) {
    const namespace = await readlink(`/proc/${pid}/ns/net`).catch(() => 'default');
    if (!tables.has(namespace)) tables.set(namespace, tableOf(pid));
    const fds = await readdir(`/proc/${pid}/fd`).catch(() => [] as string[]);
    for (const fd of fds) {
      const target = await readlink(`/proc/${pid}/fd/${fd}`).catch(() => '');
      const match = /^socket:\[(\d+)\]$/.exec(target);
      if (match) inodes.add(Number(match[1]));
    }
  }
  const ports = new Set<number>();
  for (const table of tables.values()) for (const [inode, port] of await table) if (inodes.has(inode)) ports.add(port);
  return [...ports].sort((a, b) => a - b);
}

/** How to pass the port to the dev servers users run, recognised in the command. */
const PORT_FLAGS: ReadonlyArray<{ test: RegExp; how: string }> = [
  { test: /\bvite\b/, how: 'for Vite: --port $PORT --strictPort' },
  { test: /\bnext\b/, how: 'for Next.js: next dev -p $PORT' },
  { test: /\bfunc\b/, how: 'for Azure Functions: func start --port $PORT' },
  { test: /\bdotnet\b/, how: 'for ASP.NET Core: ASPNETCORE_URLS=http://127.0.0.1:$PORT' },
  { test: /\buvicorn\b/, how: 'for uvicorn: --port $PORT' },
];

/**
 * `ui listens on 5173, not on PORT=21002: start it with $PORT (for Vite: --port $PORT --strictPort)`,
 * the one line shown by the CLI, `status` and the 502 page.
 */
export function portMismatchMessage(service: string, command: string, listening: readonly number[], port: number): string {
  const how = PORT_FLAGS.find((flag) => flag.test.test(command))?.how ?? 'for Vite: --port $PORT --strictPort; Node: process.env.PORT';
  return `${service} listens on ${listening.join(', ')}, not on PORT=${port}: start it with $PORT (${how})`;
}

/** Why nothing answers on the process's PORT when it listens elsewhere; undefined when it does not. */
export async function portMismatch(service: string, record: ProcessRecord): Promise<string | undefined> {
  const ports = await listeningPorts(record.pid).catch((): number[] => []);
  return ports.length > 0 && !ports.includes(record.port) ? portMismatchMessage(service, record.command, ports, record.port) : undefined;
}

/**
 * Resolves with the mismatch once it has lasted PORT_MISMATCH_GRACE_MS, or undefined when
 * `signal` ends the watch or `isCurrent` says the record is no longer the service's process.
 */
export async function watchPortMismatch(service: string, record: ProcessRecord, isCurrent: () => boolean, signal: AbortSignal): Promise<string | undefined> {
  let since: number | undefined;
  while (!signal.aborted) {
    await sleep(PORT_SCAN_INTERVAL_MS, signal);
    if (signal.aborted || !isCurrent()) return undefined;
    const found = await portMismatch(service, record);
    if (found === undefined) since = undefined;
    else if (since === undefined) since = Date.now();
    else if (Date.now() - since >= PORT_MISMATCH_GRACE_MS) return found;
  }
  return undefined;
}

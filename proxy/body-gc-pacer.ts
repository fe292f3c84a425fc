/**
 * Paces young-generation collections while a long request body streams through the proxy.
 *
 * Each socket read is a 64 KiB buffer outside the JS heap, freed only when its small JS object is
 * collected. Forwarding a body allocates little on the heap per byte, so V8's young generation
 * fills slowly and a 1 GiB upload left ~40 MiB of read buffers waiting for a collection (V8 lets
 * external memory grow by 64 MiB before it forces one). A minor GC every 25 ms while such a body
 * streams keeps that at ~15 MiB, see README "Performance" → "Memory".
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

/** Interval of the minor collections while at least one long body streams. */
export const BODY_GC_INTERVAL_MS = 25;
/** Bodies from this size on (or of unknown size) are paced; shorter ones end before it would matter. */
export const LONG_BODY_BYTES = 1024 * 1024;

/** The request side the pacer needs: its framing headers, its connection and its end. */
export interface PacedBody {
  headers: { 'content-length'?: string | undefined };
  /** Its connection's byte count tells whether the body still flows. */
  readonly socket?: { readonly bytesRead: number } | null;
  once(event: 'end' | 'close', listener: () => void): unknown;
}

type Gc = (options: { type: 'minor' | 'major' }) => void;

let collect: Gc | undefined;
const paced = new Set<PacedBody>();
let timer: NodeJS.Timeout | undefined;
/** What the paced bodies' connections had read at the last tick. */
let lastBytesRead = -1;
let collections = 0;

/**
 * V8's `gc` without `--expose-gc` on the command line (a foreground daemon runs in the CLI's
 * process): the flag set at run time exposes it to contexts created afterwards.
 */
function minorGc(): void {
  if (!collect) {
    setFlagsFromString('--expose-gc');
    collect = runInNewContext('gc') as Gc;
  }
  collect({ type: 'minor' });
}

/** A collection when the paced bodies moved bytes since the last tick: a stalled body costs none. */
function tick(): void {
  let bytesRead = 0;
  for (const body of paced) bytesRead += body.socket?.bytesRead ?? 0;
  if (bytesRead === lastBytesRead) return;
  lastBytesRead = bytesRead;
  collections++;
  minorGc();
}

/** True when `body` is long enough (or of unknown length) to be paced. */
export function isLongBody(body: PacedBody): boolean {
  const length = body.headers['content-length'];
  return length === undefined || !(Number(length) < LONG_BODY_BYTES);
}

/**
 * Runs minor collections every BODY_GC_INTERVAL_MS from now until `body` ends or closes (one timer
 * for all bodies in flight), skipping the ticks in which no paced body's connection read a byte. Returns false, and does nothing, for a short body.
 */
export function paceLongBody(body: PacedBody): boolean {
  if (!isLongBody(body)) return false;
  const end = (): void => {
    if (!paced.delete(body) || paced.size > 0) return;
    clearInterval(timer);
    timer = undefined;
  };
  body.once('end', end);
  body.once('close', end);
  paced.add(body);
  if (paced.size === 1) {
    lastBytesRead = -1;
    timer = setInterval(tick, BODY_GC_INTERVAL_MS);
    timer.unref();
  }
  return true;
}

/** How many collections the pacer ran since the process started (for tests). */
export function pacerCollections(): number {
  return collections;
}

/** How many paced bodies are streaming now (for tests). */
export function pacedBodies(): number {
  return paced.size;
}

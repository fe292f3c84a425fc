import { EventEmitter } from 'node:events';
import { PerformanceObserver, constants } from 'node:perf_hooks';
import { describe, expect, it } from 'vitest';
import { BODY_GC_INTERVAL_MS, isLongBody, LONG_BODY_BYTES, paceLongBody, pacedBodies, pacerCollections } from '../../proxy/body-gc-pacer.js';

/** A request body as the pacer sees it: framing headers and its end events. */
function body(contentLength?: string): EventEmitter & { headers: { 'content-length'?: string } } {
  return Object.assign(new EventEmitter(), { headers: contentLength === undefined ? {} : { 'content-length': contentLength } });
}

/** Resolves on the next minor (young-generation) collection of this process. */
function nextMinorGc(): Promise<void> {
  return new Promise((resolve) => {
    const observer = new PerformanceObserver((list) => {
      if (list.getEntries().some((e) => (e as unknown as { detail?: { kind?: number } }).detail?.kind === constants.NODE_PERFORMANCE_GC_MINOR)) {
        observer.disconnect();
        resolve();
      }
    });
    observer.observe({ entryTypes: ['gc'] });
  });
}

describe('body GC pacer', () => {
  it('paces bodies of unknown length or from 1 MiB on, not shorter ones', () => {
    expect(isLongBody(body())).toBe(true);
    expect(isLongBody(body(String(LONG_BODY_BYTES)))).toBe(true);
    expect(isLongBody(body(String(LONG_BODY_BYTES - 1)))).toBe(false);
    expect(isLongBody(body('0'))).toBe(false);
    // A malformed length never reaches here (node answers 400), but it is not treated as short.
    expect(isLongBody(body('x'))).toBe(true);
    const short = body('10');
    expect(paceLongBody(short)).toBe(false);
    expect(pacedBodies()).toBe(0);
    expect(short.listenerCount('end')).toBe(0);
  });

  it('runs minor collections while a long body streams, and stops once every body ended or closed', async () => {
    const a = body();
    const b = body(String(8 * LONG_BODY_BYTES));
    const collected = nextMinorGc();
    expect(paceLongBody(a)).toBe(true);
    expect(paceLongBody(b)).toBe(true);
    expect(pacedBodies()).toBe(2);
    // Nothing in this test allocates enough to fill the young generation: the pacer's own
    // collection is the one observed (bounded by the test timeout).
    await collected;
    a.emit('end');
    a.emit('close');
    expect(pacedBodies()).toBe(1);
    b.emit('close');
    expect(pacedBodies()).toBe(0);
  });

  it('collects only in ticks in which a paced body read bytes: a stalled body costs nothing', async () => {
    const socket = { bytesRead: 0 };
    const flowing = Object.assign(body(), { socket });
    const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
    /** Resolves once the pacer ran more than `count` collections (bounded by the test timeout). */
    const collectedBeyond = async (count: number) => {
      while (pacerCollections() <= count) await pause(BODY_GC_INTERVAL_MS);
      return pacerCollections();
    };
    const before = pacerCollections();
    paceLongBody(flowing);
    const afterFirst = await collectedBeyond(before);
    // Stalled: ten ticks' time, no byte read, no collection.
    await pause(10 * BODY_GC_INTERVAL_MS);
    expect(pacerCollections()).toBe(afterFirst);
    // Flowing again: a later tick collects.
    socket.bytesRead += 65536;
    await collectedBeyond(afterFirst);
    flowing.emit('close');
    expect(pacedBodies()).toBe(0);
  });
});

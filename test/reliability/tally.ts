/**
 * Counts what a reliability category tried and how much of it passed, and prints one summary
 * line per category (`reliability host-headers: 23 tried, 23 passed`) from `afterAll`. A case
 * that fails still throws: the count is a report, never a substitute for the assertion.
 */
import { afterAll } from 'vitest';

/** One category's counter. */
export interface Tally {
  /** Runs one case: counts it as tried, and as passed only when `check` does not throw. */
  check<T>(check: () => T | Promise<T>): Promise<T>;
  /** Synchronous {@link Tally.check}, for fast-check properties (one generated input = one case). */
  checkSync<T>(check: () => T): T;
  /** Counts a case that was asserted inline (already passed when this is called). */
  passed(count?: number): void;
  readonly tried: number;
  readonly ok: number;
}

/** Creates the tally for `category` and registers its summary line in `afterAll`. */
export function tally(category: string): Tally {
  let tried = 0;
  let ok = 0;
  afterAll(() => {
    // The summary is the suite's report; vitest shows console output of the file.
    console.log(`reliability ${category}: ${tried} tried, ${ok} passed`);
  });
  return {
    async check<T>(check: () => T | Promise<T>): Promise<T> {
      tried++;
      const value = await check();
      ok++;
      return value;
    },
    checkSync<T>(check: () => T): T {
      tried++;
      const value = check();
      ok++;
      return value;
    },
    passed(count = 1) {
      tried += count;
      ok += count;
    },
    get tried() {
      return tried;
    },
    get ok() {
      return ok;
    },
  };
}

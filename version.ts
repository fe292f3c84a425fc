/** devproxy's version, as in package.json (test/unit/errors-documented.test.ts keeps them equal). */
export const VERSION = '0.1.0';

import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** A static value import (`import type` is erased, so it does not count). */
const STATIC_IMPORT = /^import\s+(?!type\s)(?:[^'";]*?\s+from\s+)?'([^']+)'/gm;

/** A lazy `import('…')` of a literal specifier, or a value re-export (`export … from '…'`). */
const LAZY_IMPORT_OR_REEXPORT = /\bimport\(\s*'([^']+)'\s*\)|^export\s+(?!type\s)[^'";]*?\s+from\s+'([^']+)'/gm;

function packagesReached(entry: string, patterns: RegExp[]): Set<string> {
  const packages = new Set<string>();
  const seen = new Set<string>();
  const visit = (file: string) => {
    if (seen.has(file)) return;
    seen.add(file);
    const source = readFileSync(file, 'utf8');
    for (const pattern of patterns) {
      for (const match of source.matchAll(pattern)) {
        const specifier = (match[1] ?? match[2])!;
        if (specifier.startsWith('.')) visit(resolve(dirname(file), specifier.replace(/\.js$/, '.ts')));
        else packages.add(specifier);
      }
    }
  };
  visit(join(ROOT, entry));
  return packages;
}

/**
 * Every package reached from `entry` (a path from the repository root) through static value
 * imports: `import type` is erased and `import()` is lazy, so neither counts. What a process
 * loads at start-up, read from the sources rather than guessed.
 */
export function staticPackages(entry: string): Set<string> {
  return packagesReached(entry, [STATIC_IMPORT]);
}

/**
 * Every package `entry` can ever load: through static imports, lazy `import('…')` calls and
 * re-exports, followed through the files each of them reaches.
 */
export function reachablePackages(entry: string): Set<string> {
  return packagesReached(entry, [STATIC_IMPORT, LAZY_IMPORT_OR_REEXPORT]);
}

import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
/** Folders that are not product code: they may import anything and nothing imports them. */
const NOT_PRODUCT = new Set(['test', 'bench', 'demo', 'node_modules', 'dist', 'docs', 'schemas', 'bin']);
/** What the CLI and the agents may load from daemon/: the module that starts a daemon. */
const DAEMON_START = ['daemon/main.ts'];

/** The room a product file belongs to: its top-level folder, `.` for a file at the root. */
function roomOf(file: string): string {
  const parts = file.split(sep);
  return parts.length === 1 ? '.' : parts[0]!;
}

/** Every product `.ts` file, relative to the repository root. */
function productFiles(): string[] {
  const isSource = (name: string) => name.endsWith('.ts') && !name.endsWith('.d.ts');
  const files: string[] = [];
  for (const top of readdirSync(ROOT, { withFileTypes: true })) {
    if (top.name.startsWith('.') || NOT_PRODUCT.has(top.name)) continue;
    if (top.isFile() && isSource(top.name)) files.push(top.name);
    if (!top.isDirectory()) continue;
    for (const entry of readdirSync(join(ROOT, top.name), { withFileTypes: true, recursive: true })) {
      if (entry.isFile() && isSource(entry.name)) files.push(relative(ROOT, join(entry.parentPath, entry.name)));
    }
  }
  return files;
}

/** Relative modules `file` imports: static `import`/`export … from` always, `import()` and `new URL()` when `lazy`. */
function importsOf(file: string, lazy: boolean): string[] {
  const source = readFileSync(join(ROOT, file), 'utf8');
  const pattern = lazy
    ? /(?:\bfrom\s+|^import\s+|\bimport\(\s*|\bnew URL\(\s*)'(\.{1,2}\/[^']+)'/gm
    : /(?:\bfrom\s+|^import\s+)'(\.{1,2}\/[^']+)'/gm;
  return [...source.matchAll(pattern)].map((m) => relative(ROOT, resolve(ROOT, dirname(file), m[1]!.replace(/\.js$/, '.ts'))));
}

/** Room → rooms it imports statically. */
function roomGraph(files: string[]): Map<string, Set<string>> {
  const graph = new Map<string, Set<string>>();
  for (const file of files) {
    const from = roomOf(file);
    const edges = graph.get(from) ?? graph.set(from, new Set()).get(from)!;
    for (const target of importsOf(file, false)) if (roomOf(target) !== from) edges.add(roomOf(target));
  }
  return graph;
}

/** One cycle of the graph as `a → b → a`, or undefined when there is none (depth-first search). */
function findCycle(graph: Map<string, Set<string>>): string[] | undefined {
  const done = new Set<string>();
  const path: string[] = [];
  const visit = (node: string): string[] | undefined => {
    const at = path.indexOf(node);
    if (at >= 0) return [...path.slice(at), node];
    if (done.has(node)) return undefined;
    path.push(node);
    for (const next of graph.get(node) ?? []) {
      const cycle = visit(next);
      if (cycle) return cycle;
    }
    path.pop();
    done.add(node);
    return undefined;
  };
  for (const node of graph.keys()) {
    const cycle = visit(node);
    if (cycle) return cycle;
  }
  return undefined;
}

describe('the rooms import one another without a cycle', () => {
  it('finds a cycle when there is one (so the check below can fail)', () => {
    const graph = new Map([
      ['certs', new Set(['proxy'])],
      ['proxy', new Set(['router', 'certs'])],
      ['router', new Set<string>()],
    ]);
    expect(findCycle(graph)).toEqual(['certs', 'proxy', 'certs']);
    graph.get('proxy')!.delete('certs');
    expect(findCycle(graph)).toBeUndefined();
  });

  it('has no cycle between the product folders (static imports)', () => {
    const graph = roomGraph(productFiles());
    // The graph is really read: the CLI reaches the workspace, the daemon the proxy.
    expect(graph.get('cli')).toContain('workspace');
    expect(graph.get('daemon')).toContain('proxy');
    expect(findCycle(graph)).toBeUndefined();
  });

  it('the root modules import no room', () => {
    const graph = roomGraph(productFiles());
    expect([...(graph.get('.') ?? [])]).toEqual([]);
  });
});

describe('the CLI and the agents use the daemon only to start it', () => {
  it('cli/ and agents/ import from daemon/ only its start module, lazily or not', () => {
    const front = productFiles().filter((f) => ['cli', 'agents'].includes(roomOf(f)));
    const intoDaemon = front.flatMap((file) => importsOf(file, true).filter((t) => roomOf(t) === 'daemon').map((t) => `${file} -> ${t}`));
    // The CLI does start the daemon: the check sees that import, and it is the only kind.
    expect(intoDaemon.some((edge) => edge.endsWith(`-> ${DAEMON_START[0]}`))).toBe(true);
    expect(intoDaemon.filter((edge) => !DAEMON_START.some((start) => edge.endsWith(`-> ${start}`)))).toEqual([]);
  });
});

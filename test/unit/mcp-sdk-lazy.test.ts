import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
/** Packages only `devproxy mcp` may load: the CLI's start-up and the daemon's memory do not pay for them. */
const MCP_ONLY = ['@modelcontextprotocol/sdk', 'zod'];

/** Every package reached from `entry` through static value imports (`import type` is erased; `import()` is lazy). */
function staticPackages(entry: string): Set<string> {
  const packages = new Set<string>();
  const seen = new Set<string>();
  const visit = (file: string) => {
    if (seen.has(file)) return;
    seen.add(file);
    const source = readFileSync(file, 'utf8');
    for (const match of source.matchAll(/^import\s+(?!type\s)(?:[^'";]*?\s+from\s+)?'([^']+)'/gm)) {
      const specifier = match[1]!;
      if (specifier.startsWith('.')) visit(resolve(dirname(file), specifier.replace(/\.js$/, '.ts')));
      else packages.add(specifier);
    }
  };
  visit(join(ROOT, entry));
  return packages;
}

describe('the MCP SDK loads only under `devproxy mcp`', () => {
  it('is not reached by a static import from the CLI entry or the daemon', () => {
    for (const entry of ['cli/index.ts', 'daemon/main.ts']) {
      const reached = [...staticPackages(entry)].filter((p) => MCP_ONLY.some((m) => p === m || p.startsWith(`${m}/`)));
      expect(reached, entry).toEqual([]);
    }
  });

  it('is reached by the MCP server module (so the check above can fail)', () => {
    expect([...staticPackages('agents/mcp-server.ts')]).toEqual(expect.arrayContaining(['@modelcontextprotocol/sdk/server/mcp.js', 'zod']));
  });
});

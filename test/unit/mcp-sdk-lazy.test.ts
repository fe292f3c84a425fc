import { describe, expect, it } from 'vitest';
import { staticPackages } from '../helpers/static-imports.js';

/** Packages only `devproxy mcp` may load: the CLI's start-up and the daemon's memory do not pay for them. */
const MCP_ONLY = ['@modelcontextprotocol/sdk', 'zod'];

describe('the MCP SDK loads only under `devproxy mcp`', () => {
  it('is not reached by a static import from the CLI entry or the daemon', () => {
    for (const entry of ['cli/index.ts', 'daemon/main.ts']) {
      const reached = [...staticPackages(entry)].filter((p) => MCP_ONLY.some((m) => p === m || p.startsWith(`${m}/`)));
      expect(reached, entry).toEqual([]);
    }
  });

  it('is reached by the MCP server module (so the check above can fail)', () => {
    expect([...staticPackages('cli/mcp-server.ts')]).toEqual(expect.arrayContaining(['@modelcontextprotocol/sdk/server/mcp.js', 'zod']));
  });
});

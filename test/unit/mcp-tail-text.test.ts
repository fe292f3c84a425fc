import { describe, expect, it } from 'vitest';
import { tailText } from '../../cli/mcp-server.js';

describe('tailText (the bound of the MCP logs tool)', () => {
  async function* chunks(...parts: string[]) {
    for (const part of parts) yield Buffer.from(part);
  }

  it('keeps everything under the bound', async () => {
    expect(await tailText(chunks('a\n', 'b\n'), 100)).toEqual({ text: 'a\nb\n', truncated: false });
  });

  it('keeps the newest bytes over the bound, starting at a whole line, however long the stream', async () => {
    const lines = Array.from({ length: 5_000 }, (_, i) => `line ${i}\n`);
    const { text, truncated } = await tailText(chunks(...lines), 1_000);
    expect(truncated).toBe(true);
    expect(Buffer.byteLength(text)).toBeLessThanOrEqual(1_000);
    expect(text.endsWith('line 4999\n')).toBe(true);
    expect(text.split('\n')[0]).toMatch(/^line \d+$/);
  });
});

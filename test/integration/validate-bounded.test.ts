import { describe, expect, it } from 'vitest';
import { INLINE_PARSE_MAX_BYTES, validateBounded } from '../../profiles/validate-bounded.js';

describe('a devproxy file too large to parse inline', () => {
  it('is validated in the worker thread, whose built script is found while devproxy runs from its sources', async () => {
    const head = 'name: big\nservices:\n  api: { remote: "http://api-dev.localhost:1" }\nprofiles: { p: [] }\ndefault: p\n';
    const padding = Array.from({ length: 400 }, (_, i) => `# comment line ${i} of a long header, as some teams write them`).join('\n');
    const text = `${head}${padding}\n`;
    expect(Buffer.byteLength(text)).toBeGreaterThan(INLINE_PARSE_MAX_BYTES);
    // A worker that cannot start reports "the file could not be parsed" as an error.
    const result = await validateBounded({ kind: 'config', text, file: '/repo/devproxy.yaml' });
    expect(result.errors).toEqual([]);
    expect(result.config?.name).toBe('big');
  });
});

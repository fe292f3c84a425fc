import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { hasReference, parseReferences, resolveReferences } from '../../profiles/references.js';

describe('references', () => {
  it('finds env and file references', () => {
    expect(parseReferences('Bearer ${env:TOKEN} and ${file:key.txt}')).toEqual({ references: [{ kind: 'env', target: 'TOKEN' }, { kind: 'file', target: 'key.txt' }] });
    expect(hasReference('plain')).toBe(false);
  });

  it('resolves from the environment and files, dropping one trailing newline', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'devproxy-ref-'));
    try {
      await writeFile(join(dir, 'key.txt'), 's3cret\n');
      expect(resolveReferences('k=${env:A};f=${file:key.txt}', { env: { A: 'one' }, baseDir: dir, what: 'auth of api' })).toBe('k=one;f=s3cret');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('names an unset variable instead of sending an empty value', () => {
    expect(() => resolveReferences('${env:COSMOS_DEV_CONNECTION}', { env: {}, baseDir: '/', what: 'env of cosmos' })).toThrow(
      'env of cosmos needs the environment variable COSMOS_DEV_CONNECTION, which is not set',
    );
  });
});

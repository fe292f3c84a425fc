import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ERROR_HINTS } from '../../errors.js';
import { VERSION } from '../../version.js';

const ROOT = join(import.meta.dirname, '..', '..');
const SOURCE_DIRS = ['profiles', 'router', 'proxy', 'cli', 'certs', 'daemon', 'workspace', 'worktrees', 'runtime', 'environment', 'agents'];

function sources(dir: string): string[] {
  const path = join(ROOT, dir);
  let entries: string[];
  try {
    entries = readdirSync(path);
  } catch {
    return [];
  }
  return entries.flatMap((entry) => {
    const full = join(path, entry);
    if (statSync(full).isDirectory()) return sources(join(dir, entry));
    return entry.endsWith('.ts') ? [readFileSync(full, 'utf8')] : [];
  });
}

describe('the error catalogue', () => {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const code = SOURCE_DIRS.flatMap(sources).join('\n');

  it.each(Object.keys(ERROR_HINTS))('documents %s in the README', (name) => {
    expect(readme).toContain(`\`${name}\``);
  });

  it.each(Object.keys(ERROR_HINTS))('raises %s somewhere (no dead codes)', (name) => {
    expect(code).toContain(`'${name}'`);
  });
});

describe('the version', () => {
  it('is the one in package.json', () => {
    expect(VERSION).toBe((JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version);
  });
});

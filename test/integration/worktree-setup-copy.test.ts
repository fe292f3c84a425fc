import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { matchFiles, runWorktreeSetup, type SetupEvent } from '../../worktrees/setup.js';

let dir: string;
let main: string;
let worktree: string;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'devproxy-setup-copy-'));
  main = join(dir, 'main');
  worktree = join(dir, 'wt');
  const files: Record<string, string> = {
    '.env': 'A=1',
    'ui/.env.local': 'B=2',
    'config/a.local.json': '{}',
    'config/b.local.json': '{}',
    'config/c.json': '{}',
    'config/.hidden.local.json': '{}',
    'certs/dev/ca.pem': 'pem',
    'certs/dev/.keep': '',
    'node_modules/pkg/.env': 'never',
    'services/x/.env': 'X=1',
  };
  for (const [file, text] of Object.entries(files)) {
    await mkdir(join(main, file, '..'), { recursive: true });
    await writeFile(join(main, file), text);
  }
  await mkdir(worktree);
});

afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('setup copy', () => {
  it('matches * within a folder (no leading dot), ** across folders (never into node_modules), and a folder\'s files', async () => {
    expect(await matchFiles(main, 'config/*.local.json')).toEqual(['config/a.local.json', 'config/b.local.json']);
    expect(await matchFiles(main, '**/.env')).toEqual(['.env', 'services/x/.env']);
    expect(await matchFiles(main, 'certs')).toEqual(['certs/dev/.keep', 'certs/dev/ca.pem']);
    expect(await matchFiles(main, 'nope/*.txt')).toEqual([]);
  });

  it('copies what is missing, keeps what exists, warns about patterns that match nothing', async () => {
    await mkdir(join(worktree, 'ui'));
    await writeFile(join(worktree, 'ui', '.env.local'), 'B=mine');
    const events: SetupEvent[] = [];
    const result = await runWorktreeSetup({ main, worktree, setup: { copy: ['.env', 'ui/.env.local', 'missing/*'], run: [] }, logFile: join(dir, 'setup.log'), onEvent: (e) => events.push(e) });
    expect(result).toEqual({ copied: ['.env'], kept: ['ui/.env.local'], unmatched: ['missing/*'], steps: [] });
    expect(events).toEqual([{ kind: 'copied', file: '.env' }, { kind: 'kept', file: 'ui/.env.local' }, { kind: 'unmatched', pattern: 'missing/*' }]);
    expect(await readFile(join(worktree, 'ui', '.env.local'), 'utf8')).toBe('B=mine');
    expect(await readFile(join(worktree, '.env'), 'utf8')).toBe('A=1');
  });

  it('runs steps in order in the worktree with DEVPROXY_MAIN set, and stops at the first failure with its cause', async () => {
    const logFile = join(dir, 'setup.log');
    const setup = { copy: [], run: ['echo "$DEVPROXY_MAIN" > from.txt', 'echo "Error: step two broke" >&2; exit 4', 'touch never'] };
    await expect(runWorktreeSetup({ main, worktree, setup, logFile })).rejects.toMatchObject({
      code: 'DEVPROXY_ERR_SETUP_FAILED',
      message: expect.stringMatching(/^setup step 2\/3 `echo "Error: step two broke" >&2; exit 4` exited with code 4 after \d+\.\d s:\n  Error: step two broke$/),
    });
    expect((await readFile(join(worktree, 'from.txt'), 'utf8')).trim()).toBe(main);
    await expect(readFile(join(worktree, 'never'))).rejects.toMatchObject({ code: 'ENOENT' });
    expect(await readFile(logFile, 'utf8')).toContain('step 2/3');
  });
});

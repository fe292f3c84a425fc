import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HOSTS_BLOCK_END, HOSTS_BLOCK_START } from '../../environment/hosts-file.js';
import { runCli } from '../helpers/cli.js';
import { createTempRepo, waitFor, type TempRepo } from '../helpers/git-repo.js';

const BEFORE = '127.0.0.1\tlocalhost\n# my own line\n10.0.0.5 intranet.example\n';
let home: string;
let hostsFile: string;
let repo: TempRepo;
let env: NodeJS.ProcessEnv;

beforeAll(async () => {
  home = await mkdtemp(join(tmpdir(), 'devproxy-hosts-home-'));
  hostsFile = join(home, 'hosts');
  await writeFile(hostsFile, BEFORE);
  repo = await createTempRepo({ 'devproxy.yaml': 'name: shop\nservices:\n  ui: { local: { port: 3000 } }\n  api: { remote: https://api-dev.example.com }\n' });
  env = { ...process.env, DEVPROXY_HOME: home, DEVPROXY_PORT: '0', DEVPROXY_HTTPS_PORT: '0' };
  expect((await runCli(['init'], { cwd: repo.main, env })).code).toBe(0);
});

afterAll(async () => {
  await runCli(['proxy', 'stop', '--all'], { cwd: repo.main, env });
  await repo.cleanup();
  await rm(home, { recursive: true, force: true });
});

describe('proxy start --sync-hosts FILE', () => {
  it('keeps a block of every routed hostname as worktrees come and go, touching nothing else', async () => {
    const started = await runCli(['proxy', 'start', '--sync-hosts', hostsFile], { cwd: repo.main, env });
    expect(started.code, started.stderr).toBe(0);
    const first = await waitFor(async () => {
      const text = await readFile(hostsFile, 'utf8');
      return text.includes('ui.shop.localhost') ? text : undefined;
    });
    expect(first.startsWith(BEFORE)).toBe(true);
    expect(first).toContain(HOSTS_BLOCK_START);
    expect(first).toMatch(/127\.0\.0\.1\s+.*api\.shop\.localhost/);

    const worktree = repo.addWorktree('feature/cart');
    await waitFor(async () => ((await readFile(hostsFile, 'utf8')).includes('ui.cart.localhost') ? true : undefined));
    repo.git(['worktree', 'remove', '--force', worktree]);
    const last = await waitFor(async () => {
      const text = await readFile(hostsFile, 'utf8');
      return text.includes('cart') ? undefined : text;
    });
    expect(last.startsWith(BEFORE)).toBe(true);
    expect(last.slice(last.indexOf(HOSTS_BLOCK_END) + HOSTS_BLOCK_END.length).trim()).toBe('');
  });
});

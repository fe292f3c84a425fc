/**
 * `use` that waits for the flip, a switch back inside the drain, a refused `rm`, and `status`
 * folding, through the real CLI and a real daemon, with real process services in real git
 * worktrees (issue 12, items 4, 5 and 7).
 */
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor, type TempRepo } from '../helpers/git-repo.js';
import { startLifecycle, type LifecycleFixture } from '../helpers/lifecycle-fixture.js';

/** The local api answers only after this delay, so that a `use` that does not wait is caught. */
const API_LISTEN_DELAY_MS = 1_500;

const API_JS = `
const http = require('node:http');
console.log('api booting on', process.env.PORT);
setTimeout(() => {
  http.createServer((req, res) => res.end('api local ' + process.pid + ' ' + process.env.PORT)).listen(Number(process.env.PORT), '127.0.0.1');
}, ${API_LISTEN_DELAY_MS});
`;

let fixture: LifecycleFixture | undefined;
let home: string;
let repo: TempRepo;
let alpha: string;
const cli = (args: string[], cwd?: string) => fixture!.cli(args, cwd);

const get = (host: string) => fixture!.get(host);

interface StatusJson {
  worktrees: Array<{ name: string; reconciling: boolean; services: Array<{ name: string; route: string; desired: string; problem: { message: string } | null; runtime?: { state: string; port?: number } }> }>;
}
const statusOf = async (worktree: string) => (JSON.parse((await cli(['status', '--json', '--no-probe'])).stdout) as StatusJson).worktrees.find((w) => w.name === worktree)!;

/** The daemon's status straight from its admin API: milliseconds, where a CLI run takes a second on a busy machine. */
async function daemonStatusOf(worktree: string): Promise<StatusJson['worktrees'][number]> {
  const info = JSON.parse(await readFile(join(home, 'daemon.json'), 'utf8')) as { adminPort: number; token: string };
  const response = await fetch(`http://127.0.0.1:${info.adminPort}/api/status?probe=0`, { headers: { authorization: `Bearer ${info.token}` } });
  return ((await response.json()) as StatusJson).worktrees.find((w) => w.name === worktree)!;
}

beforeAll(async () => {
  fixture = await startLifecycle({
    homePrefix: 'devproxy-use-home-',
    remoteHost: 'api-dev.localhost',
    files: (remoteUrl) => ({
      'api.js': API_JS,
      'broken.js': "console.error('broken: reading config');\nconsole.error('Error: missing key DB_URL');\nconsole.error('    at main (broken.js:2)');\nprocess.exit(3);\n",
      'devproxy.yaml': JSON.stringify({
        name: 'uselife',
        services: {
          api: { local: { command: 'node api.js' }, remote: remoteUrl },
          broken: { local: { command: 'node broken.js' }, remote: remoteUrl },
        },
        profiles: { minimal: [], standard: ['api'], broken: ['broken'] },
        default: 'minimal',
      }),
    }),
    profile: 'minimal',
    timeoutMs: 120_000,
  });
  ({ home, repo, alpha } = fixture);
}, 120_000);

afterAll(async () => {
  await fixture?.close();
}, 120_000);

describe('use waits for the flip', { timeout: 120_000 }, () => {
  it('returns only once the local route serves: the first request after it exits reaches the local instance', async () => {
    expect(await get('api.alpha.localhost')).toMatchObject({ status: 200, route: 'remote' });
    const flipped = await cli(['use', 'standard'], alpha);
    const first = await get('api.alpha.localhost');
    expect(flipped.code, flipped.stderr).toBe(0);
    expect(first).toMatchObject({ status: 200, route: 'local' });
    expect(first.body).toMatch(/^api local \d+ \d+$/);
    expect(flipped.stdout).toMatch(/api\s+starting…/);
    expect(flipped.stdout).toMatch(/api\s+local \(\d+\.\d s\)/);
    expect(flipped.stdout).toMatch(/api\s+local\s+127\.0\.0\.1:\d+/);
  });

  it('--no-wait returns at once and says what is still pending', async () => {
    const back = await cli(['use', 'minimal'], alpha);
    expect(back.code, back.stderr).toBe(0);
    expect(await get('api.alpha.localhost')).toMatchObject({ route: 'remote' });
    await waitFor(async () => ((await statusOf('alpha')).reconciling ? undefined : true), 30_000, 'api stopped');
    const quick = await cli(['use', 'standard', '--no-wait', '--json'], alpha);
    expect(quick.code, quick.stderr).toBe(0);
    expect(JSON.parse(quick.stdout)).toMatchObject({ profile: 'standard', pending: ['api'] });
    await waitFor(async () => ((await get('api.alpha.localhost')).route === 'local' ? true : undefined), 30_000, 'api local');
  });

  it('a switch back to local inside the drain keeps the running instance and its port (issue 12: 41002 → 41003)', async () => {
    const before = await get('api.alpha.localhost');
    expect(before.route).toBe('local');
    const profile = join(alpha, '.devproxy', 'profile.yaml');
    // Hand edits are the same as `use`: remote now, and back to local while the old instance drains.
    await writeFile(profile, 'profile: minimal\n');
    // The drain lasts 2 s: watch for it through the admin API, not a CLI run.
    await waitFor(async () => ((await daemonStatusOf('alpha')).services.find((s) => s.name === 'api')?.runtime?.state === 'stopping' ? true : undefined), 10_000, 'api draining');
    await writeFile(profile, 'profile: standard\n');
    const again = await cli(['use', 'standard'], alpha);
    expect(again.code, again.stderr).toBe(0);
    const after = await get('api.alpha.localhost');
    expect(after).toMatchObject({ status: 200, route: 'local' });
    expect(after.body).toBe(before.body);
    const ports = JSON.parse(await readFile(join(home, 'ports.json'), 'utf8')) as { ports: Record<string, number> };
    expect(ports.ports[`${alpha}\0api`]).toBe(Number(before.body.split(' ')[3]));
  });

  it('exits 1 with DEVPROXY_ERR_SERVICES_FAILED when a local service fails, and its route says why', async () => {
    const failed = await cli(['use', 'broken'], alpha);
    expect(failed.code).toBe(1);
    expect(failed.stderr).toMatch(/broken failed: .*\(worktree alpha\)/);
    expect(failed.stdout).toMatch(/broken\s+failed after \d+\.\d s: /);
    expect(failed.stdout).toContain('Error: missing key DB_URL');
    const page = await get('broken.alpha.localhost');
    expect(page.status).toBe(502);
    expect(page.body).toContain('missing key DB_URL');
  });

  it('status folds the multi-line failure into one table line; --verbose and --json carry it whole', async () => {
    const table = (await cli(['status', '--no-probe'])).stdout;
    const row = table.split('\n').filter((l) => /\sbroken\s+local\s/.test(l));
    expect(row).toHaveLength(1);
    expect(row[0]).toMatch(/\(the local process of "broken" failed: `node broken\.js` exited with code 3 \[\+\d+ lines: status --verbose\]\)/);
    expect(table).not.toContain('Error: missing key DB_URL');
    const verbose = (await cli(['status', '--no-probe', '--verbose'])).stdout;
    expect(verbose).toContain('Details:\n  broken in alpha:');
    expect(verbose).toContain('    Error: missing key DB_URL');
    const json = await statusOf('alpha');
    const message = json.services.find((s) => s.name === 'broken')!.problem!.message;
    expect(message).toContain('Error: missing key DB_URL');
    expect(message.split('\n').length).toBeGreaterThan(1);
  });
});

describe('rm checks everything before it stops anything', { timeout: 120_000 }, () => {
  it('a refused rm (dirty worktree, unmerged branch) leaves the worktree serving from the same instance', async () => {
    const use = await cli(['use', 'standard'], alpha);
    expect(use.code, use.stderr + use.stdout).toBe(0);
    const before = await get('api.alpha.localhost');
    expect(before).toMatchObject({ status: 200, route: 'local' });

    await writeFile(join(alpha, 'notes.txt'), 'work in progress\n');
    const dirty = await cli(['rm', 'alpha']);
    expect(dirty.code).toBe(1);
    expect(dirty.stderr).toContain('has uncommitted changes');
    expect(await get('api.alpha.localhost')).toEqual(before);

    repo.git(['add', 'notes.txt'], alpha);
    repo.git(['-c', 'user.email=t@t', '-c', 'user.name=t', 'commit', '-q', '-m', 'wip'], alpha);
    const unmerged = await cli(['rm', 'alpha', '--delete-branch']);
    expect(unmerged.code).toBe(1);
    expect(unmerged.stderr).toContain('branch "feature/alpha" is not merged');
    expect(await get('api.alpha.localhost')).toEqual(before);
    expect(repo.git(['worktree', 'list'])).toContain(alpha);
    const restart = await cli(['restart', 'api'], alpha);
    expect(restart.code, restart.stderr).toBe(0);
  });
});

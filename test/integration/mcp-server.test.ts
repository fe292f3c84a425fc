/**
 * `devproxy mcp` spoken to by the MCP SDK's own Client over stdio, as a coding agent does,
 * against a real daemon, real git worktrees and real upstream servers.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { API_KEY_SECRET, startAgentsFixture, type AgentsFixture } from '../helpers/agents-fixture.js';
import { waitFor } from '../helpers/git-repo.js';

let fx: AgentsFixture;
let feature: string;
let agent: Client;

const call = async (client: Client, name: string, args: Record<string, unknown> = {}) => (await client.callTool({ name, arguments: args })) as CallToolResult;
const structured = <T>(result: CallToolResult) => result.structuredContent as T;

beforeAll(async () => {
  fx = await startAgentsFixture();
  feature = fx.repo.addWorktree('feature/checkout');
  agent = await fx.mcpClient(feature);
}, 300_000);

afterAll(async () => {
  await fx?.close();
}, 60_000);

describe('devproxy mcp over stdio', { timeout: 240_000 }, () => {
  it('lists the tools with input schemas and read-only / destructive hints', async () => {
    const { tools } = await agent.listTools();
    const byName = new Map(tools.map((t) => [t.name, t]));
    expect([...byName.keys()].sort()).toEqual(['env', 'logs', 'new_feature', 'remove_feature', 'restart_service', 'status', 'use_profile']);
    expect(Object.keys(byName.get('use_profile')!.inputSchema.properties ?? {}).sort()).toEqual(['dry_run', 'profile', 'services', 'worktree']);
    expect(Object.keys(byName.get('remove_feature')!.inputSchema.properties ?? {}).sort()).toEqual(['confirm', 'delete_branch', 'force', 'name']);
    expect(Object.keys(byName.get('new_feature')!.inputSchema.properties ?? {}).sort()).toEqual(['base', 'name', 'profile']);
    expect(Object.keys(byName.get('logs')!.inputSchema.properties ?? {}).sort()).toEqual(['lines', 'service', 'worktree']);
    expect(byName.get('new_feature')!.inputSchema.required).toEqual(['name']);
    expect(byName.get('logs')!.inputSchema.properties!.lines).toMatchObject({ maximum: 1000 });
    for (const name of ['status', 'logs', 'env']) expect(byName.get(name)!.annotations).toMatchObject({ readOnlyHint: true });
    expect(byName.get('remove_feature')!.annotations).toMatchObject({ readOnlyHint: false, destructiveHint: true });
    expect(byName.get('use_profile')!.annotations).toMatchObject({ readOnlyHint: false, destructiveHint: false });
  });

  it('status describes the worktree the server was started in, as text and structured content', async () => {
    const result = await call(agent, 'status');
    expect(result.isError).toBeFalsy();
    const report = structured<{ daemon: { running: boolean }; worktrees: Array<{ name: string; path: string; profile: string | null }> }>(result);
    expect(report.daemon.running).toBe(true);
    expect(report.worktrees.map((w) => w.path)).toEqual([feature]);
    expect((result.content[0] as { text: string }).text).toContain('checkout: profile');
    expect(JSON.parse((result.content[1] as { text: string }).text)).toEqual(report);
  });

  it('use_profile dry_run returns the plan and changes nothing; for real, the next request takes the new route', async () => {
    expect(await fx.get('api.checkout.localhost')).toMatchObject({ status: 200, route: 'remote', body: 'api remote for checkout' });
    const profileFile = join(feature, '.devproxy', 'profile.yaml');
    const before = await readFile(profileFile, 'utf8').catch(() => null);

    const dry = await call(agent, 'use_profile', { profile: 'standard', dry_run: true });
    expect(dry.isError).toBeFalsy();
    // start/keep follow what the daemon runs now; the route change is the switch's own.
    expect(structured(dry)).toMatchObject({ worktree: 'checkout', dryRun: true, start: expect.arrayContaining(['api']), stop: [], routes: [{ service: 'api', from: 'remote', to: 'local' }] });
    expect(await readFile(profileFile, 'utf8').catch(() => null)).toBe(before);
    expect(await fx.get('api.checkout.localhost')).toMatchObject({ route: 'remote' });

    const real = await call(agent, 'use_profile', { profile: 'standard' });
    expect(real.isError, JSON.stringify(real.content)).toBeFalsy();
    expect(structured(real)).toMatchObject({ worktree: 'checkout', profile: 'standard', local: ['ui', 'api'] });
    expect(await readFile(profileFile, 'utf8')).toContain('profile: standard');
    // The tool returns once the daemon reports the flip: the very next request goes local.
    expect(await fx.get('api.checkout.localhost')).toMatchObject({ status: 200, route: 'local', body: 'api local for api.checkout.localhost' });

    const back = await call(agent, 'use_profile', { services: { api: 'remote' } });
    expect(structured(back)).toMatchObject({ profile: 'standard', overrides: { api: 'remote' }, local: ['ui'] });
    expect(await fx.get('api.checkout.localhost')).toMatchObject({ route: 'remote', body: 'api remote for checkout' });
  });

  it('an unknown profile comes back as a tool error with its code and fix, and the server keeps serving', async () => {
    const result = await call(agent, 'use_profile', { profile: 'standrd' });
    expect(result.isError).toBe(true);
    expect(structured(result)).toMatchObject({ error: { code: 'DEVPROXY_ERR_UNKNOWN_PROFILE', hint: expect.stringContaining('did you mean "standard"?') } });
    expect((result.content[0] as { text: string }).text).toMatch(/^DEVPROXY_ERR_UNKNOWN_PROFILE: unknown profile "standrd"\nfix: did you mean "standard"\?/);
    const bad = await call(agent, 'status', { worktree: 'nope' });
    expect(structured(bad)).toMatchObject({ error: { code: 'DEVPROXY_ERR_UNKNOWN_WORKTREE' } });
    expect((await call(agent, 'status')).isError).toBeFalsy();
  });

  it('remove_feature without confirm is refused and changes nothing', async () => {
    const other = fx.repo.addWorktree('feature/doomed');
    await waitFor(async () => ((await fx.get('ui.doomed.localhost')).status === 200 ? true : undefined), 10_000, 'doomed routed');
    const refused = await call(agent, 'remove_feature', { name: 'doomed' });
    expect(refused.isError).toBe(true);
    expect(structured(refused)).toEqual({
      error: { code: 'DEVPROXY_ERR_CONFIRMATION_REQUIRED', message: `remove_feature would stop the services of doomed and remove ${other}; nothing was changed`, hint: 'ask the user, then call remove_feature again with `confirm: true`' },
    });
    expect(fx.repo.git(['worktree', 'list'])).toContain(other);
    expect(fx.repo.git(['branch', '--list', 'feature/doomed'])).toContain('feature/doomed');
    expect(await fx.get('ui.doomed.localhost')).toMatchObject({ status: 200 });

    const removed = await call(agent, 'remove_feature', { name: 'doomed', confirm: true, delete_branch: true });
    expect(removed.isError, JSON.stringify(removed.content)).toBeFalsy();
    expect(structured(removed)).toEqual({ removed: other, worktree: 'doomed', branchDeleted: 'feature/doomed', branch: 'feature/doomed' });
    expect(fx.repo.git(['worktree', 'list'])).not.toContain(other);
  });

  it('env keeps references unresolved, so the secret never reaches the agent', async () => {
    const env = await call(agent, 'env');
    expect(env.isError).toBeFalsy();
    expect(structured<{ worktree: string; variables: Record<string, string> }>(env)).toMatchObject({
      worktree: 'checkout',
      variables: { API_URL: `http://api.checkout.localhost:${fx.httpPort}`, API_KEY: '${env:DEVPROXY_TEST_API_KEY}' },
    });
    expect(JSON.stringify(env)).not.toContain(API_KEY_SECRET);
  });

  it('logs returns the local instance\'s output, bounded; restart_service replaces it; errors carry the fix', async () => {
    expect((await call(agent, 'use_profile', { profile: 'full' })).isError).toBeFalsy();
    type Report = { worktrees: Array<{ services: Array<{ name: string; runtime?: { state?: string; pid?: number } }> }> };
    const worker = async () => structured<Report>(await call(agent, 'status')).worktrees[0]!.services.find((s) => s.name === 'worker');
    const before = (await waitFor(async () => ((await worker())?.runtime?.state === 'healthy' ? worker() : undefined), 60_000, 'worker healthy'))!.runtime!.pid;
    const logs = await call(agent, 'logs', { service: 'worker', lines: 20 });
    expect(logs.isError, JSON.stringify(logs.content)).toBeFalsy();
    expect(structured<{ text: string; truncated: boolean }>(logs)).toMatchObject({ text: expect.stringContaining('worker up'), truncated: false });

    const restarted = await call(agent, 'restart_service', { service: 'worker' });
    expect(restarted.isError, JSON.stringify(restarted.content)).toBeFalsy();
    expect(structured(restarted)).toMatchObject({ worktree: 'checkout', service: 'worker', status: { state: 'healthy' } });
    expect(structured<{ status: { pid: number } }>(restarted).status.pid).not.toBe(before);

    const tooMany = await call(agent, 'logs', { service: 'worker', lines: 100_000 });
    expect(tooMany.isError).toBe(true);
    const unknown = await call(agent, 'logs', { service: 'nope' });
    expect(unknown.isError).toBe(true);
    expect(structured<{ error: { code: string; hint: string } }>(unknown).error.code).toMatch(/^DEVPROXY_ERR_/);
    expect((await call(agent, 'use_profile', { profile: 'minimal' })).isError).toBeFalsy();
  });
});

describe('five agents at once', { timeout: 600_000 }, () => {
  const ROUNDS = 3;

  it('five MCP clients in five worktrees switch profiles and read status at the same moment: each applies to its own worktree, none is lost', async () => {
    const names = [1, 2, 3, 4, 5].map((i) => `agent-${i}`);
    const paths = names.map((name) => fx.repo.addWorktree(`feature/${name}`));
    const agents = await Promise.all(paths.map((path) => fx.mcpClient(path)));
    const wanted = (i: number, round: number) => ((i + round) % 2 === 0 ? 'standard' : 'minimal');
    const failures: string[] = [];

    for (let round = 0; round < ROUNDS; round++) {
      await Promise.all(
        agents.map(async (client, i) => {
          const [switched, seen] = await Promise.all([call(client, 'use_profile', { profile: wanted(i, round) }), call(client, 'status')]);
          for (const result of [switched, seen]) {
            if (!result.isError) continue;
            // A transient conflict is allowed only with a fix that says to retry; then the agent retries.
            const { error } = structured<{ error: { code: string; hint: string } }>(result);
            failures.push(`${names[i]} round ${round}: ${error.code}`);
            expect(error.hint).toMatch(/again|retry/);
          }
          if (switched.isError) expect((await call(client, 'use_profile', { profile: wanted(i, round) })).isError).toBeFalsy();
          expect(structured(seen)).toMatchObject({ worktrees: [{ path: paths[i] }] });
        }),
      );
      // Every worktree ends on its own agent's choice, in its file, in the daemon's report and on the wire.
      const after = await Promise.all(agents.map((client) => call(client, 'status')));
      for (const [i, result] of after.entries()) {
        const profile = wanted(i, round);
        expect(await readFile(join(paths[i]!, '.devproxy', 'profile.yaml'), 'utf8')).toContain(`profile: ${profile}`);
        expect(structured(result)).toMatchObject({ worktrees: [{ name: names[i], profile }] });
        const api = await fx.get(`api.${names[i]}.localhost`);
        expect(api.route, `${names[i]} round ${round}`).toBe(profile === 'standard' ? 'local' : 'remote');
      }
    }
    // Five worktrees, five profile files: no agent should ever meet another's lock.
    expect(failures).toEqual([]);
  });
});

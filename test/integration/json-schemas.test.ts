/**
 * Every `--json` output has a JSON Schema in schemas/, and real outputs (a real daemon, real git
 * worktrees, a real process service) validate against it; so do the MCP tools' structured results.
 * Each command runs with stdin held open and not a TTY: a prompt would hang it.
 */
import { readdir, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Ajv, type ValidateFunction } from 'ajv';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startAgentsFixture, type AgentsFixture } from '../helpers/agents-fixture.js';
import { runCli } from '../helpers/cli.js';

const SCHEMAS = fileURLToPath(new URL('../../schemas/', import.meta.url));
/** Machine outputs that are not a `--json` flag: `env --format json`, and any failure's `error`. */
const NOT_A_JSON_FLAG = ['env', 'error'];

let fx: AgentsFixture;
const ajv = new Ajv({ allErrors: true });

function validator(name: string): ValidateFunction {
  const validate = ajv.getSchema(`${name}.json`);
  if (!validate) throw new Error(`no schema ${name}.json`);
  return validate;
}

/** Asserts `value` (a parsed output) matches schemas/<name>.json, showing Ajv's errors when not. */
function expectValid(name: string, value: unknown): void {
  const validate = validator(name);
  const ok = validate(value);
  expect(ok, `${name}.json: ${ajv.errorsText(validate.errors)}\n${JSON.stringify(value, null, 2).slice(0, 2000)}`).toBe(true);
}

/** Runs `devproxy <args>`, expects `code`, validates its stdout against the schema; returns the parsed output. */
async function validOutput<T = Record<string, unknown>>(name: string, args: string[], cwd = fx.repo.main, code = 0): Promise<T> {
  const result = await fx.cli(args, cwd);
  expect(result.code, `${args.join(' ')}: ${result.stderr}`).toBe(code);
  const value = JSON.parse(result.stdout) as T;
  expectValid(name, value);
  return value;
}

/** `devproxy [<group>] --help` → the command names it lists. */
async function commandsOf(group: string[]): Promise<string[]> {
  const help = await runCli([...group, '--help'], { cwd: tmpdir(), env: process.env });
  const section = help.stdout.split('Commands:\n')[1] ?? '';
  return section.split('\n').map((line) => /^ {2}([a-z][\w-]*)/.exec(line)?.[1]).filter((name): name is string => name !== undefined && name !== 'help');
}

beforeAll(async () => {
  for (const file of (await readdir(SCHEMAS)).filter((f) => f.endsWith('.json'))) ajv.addSchema(JSON.parse(await readFile(join(SCHEMAS, file), 'utf8')) as object);
  fx = await startAgentsFixture();
}, 300_000);

afterAll(async () => {
  await fx?.close();
}, 60_000);

describe('JSON Schemas of the machine output', { timeout: 600_000 }, () => {
  it('every command with --json has schemas/<command>.json, and every schema belongs to one', async () => {
    const paths = (await Promise.all((await commandsOf([])).map(async (command) => {
      const sub = await commandsOf([command]);
      return sub.length > 0 ? sub.map((s) => [command, s]) : [[command]];
    }))).flat();
    const helps = await Promise.all(paths.map((path) => runCli([...path, '--help'], { cwd: tmpdir(), env: process.env })));
    const withJson = paths.filter((_, i) => helps[i]!.stdout.includes('--json')).map((path) => path.join('-'));
    expect(withJson.length).toBeGreaterThanOrEqual(12);
    const files = (await readdir(SCHEMAS)).filter((f) => f.endsWith('.json')).map((f) => f.replace(/\.json$/, ''));
    expect(files.sort()).toEqual([...withJson, ...NOT_A_JSON_FLAG].sort());
  });

  it('a drifted shape fails: a renamed field, a wrong enum, a leaked admin token, an error without its fix', () => {
    const service = { name: 'api', host: 'api.x.localhost', url: 'http://api.x.localhost:7080', httpsUrl: null, route: 'local', desired: 'local', target: '127.0.0.1:1', health: 'healthy', problem: null, insecure: false };
    const worktree = { name: 'x', path: '/r', repo: '/r', branch: null, main: true, profile: 'p', services: [service], diagnostics: [], memory: { usedBytes: null, profileBytes: 0, fullBytes: 0 } };
    const report = { daemon: { running: true, pid: 1, httpPort: 7080, httpsPort: null, version: '0' }, worktrees: [worktree], diagnostics: [] };
    expect(validator('status')(report)).toBe(true);
    expect(validator('status')({ ...report, worktrees: [{ ...worktree, services: [{ ...service, route: 'sideways' }] }] })).toBe(false);
    const { url: _url, ...renamed } = service;
    expect(validator('status')({ ...report, worktrees: [{ ...worktree, services: [{ ...renamed, href: service.url }] }] })).toBe(false);
    const daemon = { pid: 1, httpPort: 7080, httpsPort: 7443, adminPort: 9, startedAt: '2026-11-30T12:00:00.000Z', version: '0' };
    expect(validator('proxy-start')(daemon)).toBe(true);
    expect(validator('proxy-start')({ ...daemon, token: 'secret' })).toBe(false);
    expect(validator('error')({ error: { code: 'DEVPROXY_ERR_USAGE', message: 'm', hint: 'h' } })).toBe(true);
    expect(validator('error')({ error: { code: 'DEVPROXY_ERR_USAGE', message: 'm' } })).toBe(false);
    expect(validator('use')({ worktree: 'x', dryRun: true, start: [], stop: [], keep: [], routes: [{ service: 'api', from: 'local', to: 'elsewhere' }] })).toBe(false);
  });

  it('real outputs of a session validate: proxy, init, status, new, restart, use, down, up, env, hosts, trust, errors, rm', async () => {
    expectValid('proxy-start', JSON.parse(fx.startOutput));
    expectValid('proxy-status', JSON.parse((await fx.cli(['proxy', 'status', '--json'])).stdout));
    await validOutput('init', ['init', '--json']);
    const init = await validOutput<{ agents: unknown[] }>('init', ['init', '--agents', '--json']);
    expect(init.agents).toHaveLength(4);
    const all = await validOutput<{ worktrees: unknown[] }>('status', ['status', '--json']);
    expect(all.worktrees).toHaveLength(1);

    const made = await validOutput<{ path: string; services: Array<{ name: string; route: string }> }>('new', ['new', 'feature/schema', '--profile', 'standard', '--json']);
    expect(made.services.map((s) => [s.name, s.route])).toEqual([['ui', 'local'], ['api', 'local'], ['worker', 'remote']]);
    await validOutput('status', ['status', '--json', '--worktree', 'schema']);
    const plan = await validOutput<{ dryRun: boolean; start: string[] }>('use', ['use', 'full', '--dry-run', '--json'], made.path);
    expect(plan).toMatchObject({ dryRun: true, start: expect.arrayContaining(['worker']) });
    const used = await validOutput<{ applied: unknown[] | null }>('use', ['use', 'full', '--json'], made.path);
    expect(used.applied).toHaveLength(3);
    // restart waits until the new instance is healthy.
    const restarted = await validOutput<{ status: { state: string } }>('restart', ['restart', 'worker', '--json'], made.path);
    expect(restarted.status.state).toBe('healthy');
    await validOutput('use', ['use', '--service', 'api=remote', '--no-wait', '--json'], made.path);
    const downed = await validOutput<{ down: string[] }>('down', ['down', '--json'], made.path);
    expect(downed.down).toEqual([made.path]);
    const upped = await validOutput<{ up: Array<{ worktree: string; ready: string[] }> }>('up', ['up', '--json'], made.path);
    expect(upped.up[0]).toMatchObject({ worktree: 'schema', ready: expect.arrayContaining(['ui', 'worker']) });

    const env = await fx.cli(['env', '--format', 'json'], made.path);
    expect(env.code, env.stderr).toBe(0);
    expectValid('env', JSON.parse(env.stdout));

    const hostsFile = join(fx.home, 'hosts');
    const synced = await validOutput<{ hosts: string[] }>('hosts-sync', ['hosts', 'sync', '--file', hostsFile, '--json']);
    expect(synced.hosts).toContain('api.schema.localhost');
    await validOutput('hosts-clean', ['hosts', 'clean', '--file', hostsFile, '--json']);
    await validOutput('trust', ['trust', '--print', '--json']);

    const unknown = await validOutput<{ error: { code: string } }>('error', ['use', 'nope', '--json'], made.path, 1);
    expect(unknown.error.code).toBe('DEVPROXY_ERR_UNKNOWN_PROFILE');
    const usage = await validOutput<{ error: { code: string } }>('error', ['use', '--service', 'api=sideways', '--json'], made.path, 2);
    expect(usage.error.code).toBe('DEVPROXY_ERR_USAGE');

    const removed = await validOutput<{ worktree: string }>('rm', ['rm', 'schema', '--json']);
    expect(removed.worktree).toBe('schema');
    expect(await validOutput('proxy-stop', ['proxy', 'stop', '--json'])).toMatchObject({ stopped: true });
    expect(await validOutput('proxy-stop', ['proxy', 'stop', '--json'])).toEqual({ stopped: false });
    expect(await validOutput('proxy-status', ['proxy', 'status', '--json'], fx.repo.main, 3)).toEqual({ running: false });
    // Without a daemon, status is computed from the files: same shape.
    await validOutput('status', ['status', '--json']);
  });

  it("the MCP tools' structured results validate against the same schemas", async () => {
    const started = await fx.cli(['proxy', 'start', '--json']);
    expect(started.code, started.stderr).toBe(0);
    const wt = fx.repo.addWorktree('feature/mcp-schema');
    const agent = await fx.mcpClient(wt);
    const call = async (name: string, args: Record<string, unknown> = {}) => ((await agent.callTool({ name, arguments: args })) as CallToolResult).structuredContent;
    expectValid('status', await call('status'));
    expectValid('use', await call('use_profile', { profile: 'standard', dry_run: true }));
    expectValid('use', await call('use_profile', { profile: 'standard' }));
    expectValid('error', await call('use_profile', { profile: 'nope' }));
    expectValid('error', await call('remove_feature', { name: 'mcp-schema' }));
    expectValid('rm', await call('remove_feature', { name: 'mcp-schema', confirm: true }));
  });
});

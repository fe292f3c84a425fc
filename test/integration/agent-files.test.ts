/**
 * `devproxy init --agents` on an already initialised repository, and the generated slash
 * commands' shell lines run in real worktrees against a real daemon, compared with the CLI.
 */
import { execFile } from 'node:child_process';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AGENT_FILES, BLOCK_BEGIN, BLOCK_END } from '../../agents/agent-files.js';
import { startAgentsFixture, type AgentsFixture } from '../helpers/agents-fixture.js';
import { CLI, type CliResult } from '../helpers/cli.js';

let fx: AgentsFixture;
let bin: string;

const read = (path: string) => readFile(join(fx.repo.main, path), 'utf8');
const snapshot = async () => Object.fromEntries(await Promise.all(Object.values(AGENT_FILES).map(async (f) => [f, await read(f)] as const)));

/** The lines of the markdown's ```sh block, `$ARGUMENTS` replaced the way Claude Code does. */
function shellLines(markdown: string, args: string): string[] {
  const block = /```sh\n([\s\S]*?)```/.exec(markdown)?.[1];
  if (!block) throw new Error('no ```sh block in the slash command');
  return block.trim().split('\n').map((line) => line.replaceAll('$ARGUMENTS', args));
}

/** Runs shell lines with `sh` in `cwd`, `devproxy` on PATH being the built CLI. */
function runShell(lines: string[], cwd: string): Promise<CliResult> {
  return new Promise((resolve) => {
    execFile('sh', ['-c', lines.join('\n')], { cwd, env: { ...fx.env, PATH: `${bin}:${fx.env.PATH}` }, timeout: 240_000 }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, stdout, stderr });
    });
  });
}

beforeAll(async () => {
  fx = await startAgentsFixture();
  bin = join(fx.home, 'bin');
  await mkdir(bin);
  await writeFile(join(bin, 'devproxy'), `#!/bin/sh\nexec "${process.execPath}" "${CLI}" "$@"\n`);
  await chmod(join(bin, 'devproxy'), 0o755);
}, 300_000);

afterAll(async () => {
  await fx?.close();
}, 60_000);

describe('devproxy init --agents', { timeout: 240_000 }, () => {
  it('writes the slash commands, the AGENTS.md block and .mcp.json in an initialised repository', async () => {
    const config = await read('devproxy.yaml');
    const result = await fx.cli(['init', '--agents', '--json']);
    expect(result.code, result.stderr).toBe(0);
    const out = JSON.parse(result.stdout) as { created: boolean; agents: Array<{ path: string; action: string }> };
    expect(out.created).toBe(false);
    expect(out.agents).toEqual(Object.values(AGENT_FILES).map((f) => ({ path: join(fx.repo.main, f), action: 'created' })));
    expect(await read('devproxy.yaml')).toBe(config);

    const start = await read(AGENT_FILES.startFeature);
    expect(start).toMatch(/^---\ndescription: .+\nargument-hint: <branch> \[--profile <profile>\] \[--base <ref>\]\n(?:.+\n)*---\n/);
    expect(start).toContain('devproxy new $ARGUMENTS --json');
    const sw = await read(AGENT_FILES.switchProfile);
    expect(sw).toMatch(/^---\ndescription: .+\nargument-hint: <profile> .*\n(?:.+\n)*---\n/);
    expect(sw).toContain('devproxy use $ARGUMENTS --json');
    expect(await read(AGENT_FILES.agents)).toMatch(new RegExp(`^${BLOCK_BEGIN.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\n[\\s\\S]*\n${BLOCK_END}\n$`));
    expect(JSON.parse(await read(AGENT_FILES.mcp))).toEqual({ mcpServers: { devproxy: { type: 'stdio', command: 'devproxy', args: ['mcp'] } } });
  });

  it('run twice gives identical files; edits outside the block and an edited command survive', async () => {
    const first = await snapshot();
    const again = await fx.cli(['init', '--agents']);
    expect(again.code, again.stderr).toBe(0);
    expect(await snapshot()).toEqual(first);
    expect(again.stdout).toContain(`up to date: ${join(fx.repo.main, AGENT_FILES.agents)}`);

    const agentsMd = `# Team rules\n\nRun the linter.\n\n${first[AGENT_FILES.agents]!.replace('devproxy: services', 'EDITED INSIDE')}\n## More of mine\n`;
    await writeFile(join(fx.repo.main, AGENT_FILES.agents), agentsMd);
    const edited = `${first[AGENT_FILES.switchProfile]!}\nAlso run the tests afterwards.\n`;
    await writeFile(join(fx.repo.main, AGENT_FILES.switchProfile), edited);
    await writeFile(join(fx.repo.main, AGENT_FILES.mcp), JSON.stringify({ mcpServers: { devproxy: { command: 'npx', args: ['devproxy', 'mcp'] } } }));

    const third = await fx.cli(['init', '--agents', '--json']);
    expect(third.code, third.stderr).toBe(0);
    const actions = Object.fromEntries((JSON.parse(third.stdout) as { agents: Array<{ path: string; action: string }> }).agents.map((a) => [a.path.slice(fx.repo.main.length + 1), a.action]));
    expect(actions).toEqual({ [AGENT_FILES.startFeature]: 'unchanged', [AGENT_FILES.switchProfile]: 'kept', [AGENT_FILES.agents]: 'updated', [AGENT_FILES.mcp]: 'kept' });
    expect(await read(AGENT_FILES.agents)).toBe(`# Team rules\n\nRun the linter.\n\n${first[AGENT_FILES.agents]!}\n## More of mine\n`);
    expect(await read(AGENT_FILES.switchProfile)).toBe(edited);
    expect(JSON.parse(await read(AGENT_FILES.mcp))).toEqual({ mcpServers: { devproxy: { command: 'npx', args: ['devproxy', 'mcp'] } } });
    // Back to devproxy's own command for the next tests.
    await writeFile(join(fx.repo.main, AGENT_FILES.switchProfile), first[AGENT_FILES.switchProfile]!);
  });
});

describe('the generated slash commands do what the CLI does', { timeout: 600_000 }, () => {
  it('/switch-profile standard in one worktree equals `devproxy use standard --json` in another', async () => {
    const viaSlash = fx.repo.addWorktree('feature/slash-use');
    const viaCli = fx.repo.addWorktree('feature/cli-use');
    const lines = shellLines(await read(AGENT_FILES.switchProfile), 'standard');
    expect(lines).toEqual(['devproxy use standard --json']);
    const slash = await runShell(lines, viaSlash);
    const cli = await fx.cli(['use', 'standard', '--json'], viaCli);
    expect(slash.code, slash.stderr).toBe(0);
    expect(cli.code, cli.stderr).toBe(0);
    expect(JSON.parse(slash.stdout.replaceAll('slash-use', 'X'))).toEqual(JSON.parse(cli.stdout.replaceAll('cli-use', 'X')));
    expect(await readFile(join(viaSlash, '.devproxy', 'profile.yaml'), 'utf8')).toBe(await readFile(join(viaCli, '.devproxy', 'profile.yaml'), 'utf8'));
    expect(await fx.get('api.slash-use.localhost')).toMatchObject({ route: 'local' });

    const badSlash = await runShell(shellLines(await read(AGENT_FILES.switchProfile), 'nope'), viaSlash);
    const badCli = await fx.cli(['use', 'nope', '--json'], viaCli);
    expect(badSlash.code).toBe(1);
    expect(badCli.code).toBe(1);
    expect(JSON.parse(badSlash.stdout.replaceAll('slash-use', 'X'))).toEqual(JSON.parse(badCli.stdout.replaceAll('cli-use', 'X')));
    expect(JSON.parse(badSlash.stdout)).toMatchObject({ error: { code: 'DEVPROXY_ERR_UNKNOWN_PROFILE', hint: expect.stringContaining('minimal, standard') } });
  });

  it('/start-feature feature/slash-new --profile standard equals `devproxy new … --json`', async () => {
    const lines = shellLines(await read(AGENT_FILES.startFeature), 'feature/slash-new --profile standard');
    const slash = await runShell(lines, fx.repo.main);
    const cli = await fx.cli(['new', 'feature/cli-new', '--profile', 'standard', '--json']);
    expect(slash.code, slash.stderr).toBe(0);
    expect(cli.code, cli.stderr).toBe(0);
    type Made = { name: string; path: string; branch: string; profile: string; services: Array<{ name: string; route: string; desired: string; target: string; url: string }> };
    const project = (w: Made) => ({ name: w.name, path: w.path, branch: w.branch, profile: w.profile, services: w.services.map((s) => ({ name: s.name, route: s.route, desired: s.desired, target: s.target, url: s.url })) });
    const fromSlash = project(JSON.parse(slash.stdout.replaceAll('slash-new', 'X')) as Made);
    expect(fromSlash).toEqual(project(JSON.parse(cli.stdout.replaceAll('cli-new', 'X')) as Made));
    expect(fromSlash).toMatchObject({ name: 'X', profile: 'standard', services: [{ name: 'ui', route: 'local' }, { name: 'api', route: 'local' }, { name: 'worker', route: 'remote' }] });
    expect(await fx.get('api.slash-new.localhost')).toMatchObject({ status: 200, route: 'local' });
  });
});

import { mkdtemp, rm } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { CLI, runCli, type CliResult } from './cli.js';
import { createTempRepo, type TempRepo } from './git-repo.js';
import { startHttpUpstream, type Upstream } from './upstreams.js';

/**
 * A repository the way an agent meets it: a real git repo with a devproxy.yaml whose `api` runs
 * "locally" on a real HTTP server or remotely on another (a DEV stand-in), a real daemon started
 * through the CLI, and as many real worktrees as a test asks for.
 */
export interface AgentsFixture {
  home: string;
  repo: TempRepo;
  env: NodeJS.ProcessEnv;
  httpPort: number;
  /** stdout of `devproxy proxy start --json`. */
  startOutput: string;
  localApi: Upstream;
  remoteApi: Upstream;
  cli(args: string[], cwd?: string): Promise<CliResult>;
  /** GET / through the proxy with this Host; the route header and body. */
  get(host: string): Promise<{ status: number; route: string; body: string }>;
  /** An MCP client connected to `devproxy mcp` started in `cwd`. */
  mcpClient(cwd: string): Promise<Client>;
  close(): Promise<void>;
}

/** The value of the secret the config references as `${env:DEVPROXY_TEST_API_KEY}` (must never reach an agent unasked). */
export const API_KEY_SECRET = 'agents-fixture-secret-value';

/** Starts the fixture: upstreams, repository (`minimal` = ui local, `standard` = ui + api, `full` adds a `worker` process), daemon. */
export async function startAgentsFixture(): Promise<AgentsFixture> {
  const home = await mkdtemp(join(tmpdir(), 'devproxy-agents-home-'));
  const localUi = await startHttpUpstream((_req, res) => res.end('ui local'));
  const localApi = await startHttpUpstream((req, res) => res.end(`api local for ${req.headers.host}`));
  const remoteApi = await startHttpUpstream((req, res) => res.end(`api remote for ${req.headers['x-devproxy-worktree'] ?? '?'}`));
  const repo = await createTempRepo({
    'devproxy.yaml': `name: shop
services:
  ui:
    local: { port: ${localUi.port} }
  api:
    local: { port: ${localApi.port} }
    remote: http://api-dev.localhost:${remoteApi.port}
    env: { remote: { API_KEY: "\${env:DEVPROXY_TEST_API_KEY}" } }
  worker:
    local: { command: "node -e \\"console.log('worker up'); require('http').createServer((q, s) => s.end('worker')).listen(process.env.PORT)\\"" }
    memory: 16MB
profiles:
  minimal: [ui]
  standard: [ui, api]
  full: [ui, api, worker]
default: minimal
`,
    '.gitignore': '.devproxy/\n',
  });
  const env: NodeJS.ProcessEnv = { ...process.env, DEVPROXY_HOME: home, DEVPROXY_PORT: '0', DEVPROXY_HTTPS_PORT: '0', DEVPROXY_TEST_API_KEY: API_KEY_SECRET };
  const cli = (args: string[], cwd = repo.main) => runCli(args, { cwd, env, timeoutMs: 240_000 });
  const started = await cli(['proxy', 'start', '--json']);
  if (started.code !== 0) throw new Error(`proxy start failed: ${started.stderr}`);
  const httpPort = (JSON.parse(started.stdout) as { httpPort: number }).httpPort;
  const init = await cli(['init']);
  if (init.code !== 0) throw new Error(`init failed: ${init.stderr}`);
  const clients: Client[] = [];

  return {
    home,
    repo,
    env,
    httpPort,
    startOutput: started.stdout,
    localApi,
    remoteApi,
    cli,
    get: (host) =>
      new Promise((resolve) => {
        const req = request({ host: '127.0.0.1', port: httpPort, path: '/', headers: { host }, agent: false, timeout: 10_000 }, (res) => {
          let body = '';
          res.on('data', (c: Buffer) => (body += c));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, route: String(res.headers['x-devproxy-route']), body }));
        });
        req.on('timeout', () => req.destroy(new Error('timeout')));
        req.on('error', (error) => resolve({ status: -1, route: '', body: String(error) }));
        req.end();
      }),
    async mcpClient(cwd) {
      const transport = new StdioClientTransport({ command: process.execPath, args: [CLI, 'mcp'], cwd, env: env as Record<string, string>, stderr: 'pipe' });
      const client = new Client({ name: 'devproxy-test-agent', version: '1.0.0' });
      await client.connect(transport);
      clients.push(client);
      return client;
    },
    async close() {
      await Promise.all(clients.map((c) => c.close()));
      await cli(['proxy', 'stop', '--all']);
      await Promise.all([localUi.close(), localApi.close(), remoteApi.close()]);
      await repo.cleanup();
      await rm(home, { recursive: true, force: true });
    },
  };
}

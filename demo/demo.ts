/**
 * `npm run demo`: devproxy end to end on this machine with no cloud account. It makes a sample
 * repository with two feature worktrees, starts HTTPS stand-ins for the Azure DEV endpoints
 * (with a CA of their own) and two local services, starts the daemon through the real CLI,
 * prints the stable URLs and flips a profile to show the route change. Everything lives in a
 * temp folder and is stopped at the end; `--keep` leaves it running until Ctrl-C.
 */
import { execFile, execFileSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { createCertificateAuthority, issueLeafCertificate } from '../certs/authority.js';
import { homePaths } from '../home-paths.js';

const CLI = fileURLToPath(new URL('../../bin/devproxy.js', import.meta.url));
const REMOTE_NAMES = ['contoso-ui-dev.localhost', 'contoso-api-dev.localhost', 'contoso-pipeline-dev.localhost'];
const keep = process.argv.includes('--keep');

const bold = (text: string) => (process.stdout.isTTY ? `\x1b[1m${text}\x1b[0m` : text);
const step = (text: string) => console.log(`\n${bold(`▶ ${text}`)}`);

async function main(): Promise<void> {
  const root = await mkdtemp(join(tmpdir(), 'devproxy-demo-'));
  const home = join(root, 'devproxy-home');
  const env = { ...process.env, DEVPROXY_HOME: home, DEVPROXY_PORT: process.env.DEVPROXY_PORT ?? '0', DEVPROXY_HTTPS_PORT: process.env.DEVPROXY_HTTPS_PORT ?? '0' };
  const servers: Array<http.Server | https.Server> = [];
  const devproxy = async (args: string[], cwd: string, quiet = false): Promise<string> => {
    if (!quiet) console.log(`$ devproxy ${args.join(' ')}`);
    const { stdout } = await promisify(execFile)(process.execPath, [CLI, ...args], { cwd, env });
    if (!quiet) console.log(stdout.trimEnd());
    return stdout;
  };

  try {
    step('Stand-ins for the shared Azure DEV environment (HTTPS, their own CA)');
    const ca = await createCertificateAuthority({ commonName: 'demo "Azure DEV" CA' });
    const leaf = await issueLeafCertificate(ca, REMOTE_NAMES);
    const caFile = join(root, 'azure-dev-ca.pem');
    await writeFile(caFile, ca.certPem);
    const remote = https.createServer({ cert: leaf.certPem, key: leaf.keyPem }, (req, res) => {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ servedBy: 'Azure DEV (stand-in)', host: req.headers.host, path: req.url, worktree: req.headers['x-devproxy-worktree'] ?? null }));
    });
    const remotePort = await listen(remote, servers);
    console.log(`  ${REMOTE_NAMES.map((n) => `https://${n}:${remotePort}`).join('\n  ')}`);

    step('Local services: ui and api, as a dev server on your machine would be');
    const localPorts: Record<string, number> = {};
    for (const service of ['ui', 'api']) {
      const server = http.createServer((req, res) => {
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify({ servedBy: `local ${service}`, host: req.headers.host, path: req.url }));
      });
      localPorts[service] = await listen(server, servers);
      console.log(`  ${service}: http://127.0.0.1:${localPorts[service]}`);
    }

    step('A repository with devproxy.yaml and two feature worktrees');
    const repo = join(root, 'contoso');
    const git = (args: string[], cwd = repo) => execFileSync('git', ['-c', 'user.name=demo', '-c', 'user.email=demo@devproxy.test', '-c', 'init.defaultBranch=main', ...args], { cwd, stdio: 'pipe' });
    git(['init', '-q', repo], root);
    await writeFile(join(repo, 'devproxy.yaml'), demoConfig(caFile, remotePort, localPorts));
    git(['add', '.']);
    git(['commit', '-q', '-m', 'devproxy.yaml']);
    const worktrees = ['hierarchy-filters', 'billing-export'].map((name) => {
      const path = join(root, `contoso.worktrees`, name);
      git(['worktree', 'add', '-q', '-b', `feature/${name}`, path]);
      return path;
    });
    console.log(`  ${repo}\n  ${worktrees.join('\n  ')}`);

    step('Start the proxy and register the repository');
    await devproxy(['proxy', 'start'], repo);
    await devproxy(['init'], repo);
    const info = JSON.parse(await devproxy(['proxy', 'status', '--json'], repo, true)) as { httpPort: number; httpsPort: number | null };
    await waitForRoutes(info.httpPort);
    await devproxy(['status'], repo);

    const api = 'api.hierarchy-filters.localhost';
    step(`The ${api} URL, under the minimal profile (api is remote)`);
    console.log(describe(await get(info.httpPort, api)));

    step('Switch that worktree to the standard profile: api now runs locally');
    const started = performance.now();
    await devproxy(['use', 'standard'], worktrees[0]!);
    const flipped = await get(info.httpPort, api);
    console.log(`${describe(flipped)}   (use → first local response: ${(performance.now() - started).toFixed(0)} ms, CLI start-up included)`);
    console.log(`  …while the other worktree is untouched: ${describe(await get(info.httpPort, 'api.billing-export.localhost'))}`);

    step('What your app reads instead of hard-coded URLs');
    await devproxy(['env'], worktrees[0]!);

    step('Try it yourself');
    const httpsTry = info.httpsPort ? `\n  curl --cacert ${homePaths(home).caCert} https://${api}:${info.httpsPort}/` : '';
    console.log(`  curl http://${api}:${info.httpPort}/${httpsTry}\n  DEVPROXY_HOME=${home} node ${CLI} use minimal -C ${worktrees[0]}`);
    if (keep) {
      console.log('\nRunning until Ctrl-C …');
      await new Promise((resolve) => process.once('SIGINT', resolve));
    }
  } finally {
    await devproxy(['proxy', 'stop'], root, true).catch(() => undefined);
    await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
    await rm(root, { recursive: true, force: true });
    console.log('\nDemo finished: daemon stopped, stand-ins closed, temp files removed.');
  }
}

function demoConfig(caFile: string, remotePort: number, localPorts: Record<string, number>): string {
  return `# The demo's devproxy.yaml: three services, each with a local instance and a shared DEV endpoint.
name: contoso
ca: ${caFile}          # trusts the stand-in DEV endpoints' CA
services:
  ui:
    local: { port: ${localPorts.ui} }
    remote: https://contoso-ui-dev.localhost:${remotePort}
    memory: 256MB
  api:
    local: { port: ${localPorts.api} }
    remote: https://contoso-api-dev.localhost:${remotePort}
    health: /
    memory: 512MB
  pipeline:
    remote: https://contoso-pipeline-dev.localhost:${remotePort}
profiles:
  minimal: [ui]
  standard: [ui, api]
default: minimal
`;
}

function listen(server: http.Server | https.Server, servers: Array<http.Server | https.Server>): Promise<number> {
  servers.push(server);
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port)));
}

/** GET through the proxy with the stable Host (`*.localhost` needs no DNS: we connect to loopback). */
function get(port: number, host: string): Promise<{ route: string; body: string }> {
  return new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port, path: '/', headers: { host: `${host}:${port}` } }, (res) => {
        let body = '';
        res.on('data', (chunk: Buffer) => (body += chunk));
        res.on('end', () => resolve({ route: String(res.headers['x-devproxy-route']), body }));
      })
      .on('error', reject);
  });
}

function describe(response: { route: string; body: string }): string {
  return `  x-devproxy-route: ${response.route}  ${response.body}`;
}

async function waitForRoutes(port: number): Promise<void> {
  const deadline = Date.now() + 5_000;
  while (Date.now() < deadline) {
    if ((await get(port, 'ui.contoso.localhost').catch(() => undefined))?.route === 'local') return;
    await new Promise((r) => setTimeout(r, 50));
  }
}

main().catch((error: unknown) => {
  console.error(`demo failed: ${(error as Error).message}`);
  process.exitCode = 1;
});

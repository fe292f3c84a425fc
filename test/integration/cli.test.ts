import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ephemeralOverlapWarning, parsePortRange } from '../../runtime/ports.js';
import { runCli } from '../helpers/cli.js';
import { createTempRepo, waitFor, type TempRepo } from '../helpers/git-repo.js';
import { createTestTls, send, startHttpUpstream, startHttpsUpstream, type Upstream } from '../helpers/upstreams.js';

/**
 * The CLI and the daemon as a user runs them: real subprocesses, a real git repository with a
 * worktree, real upstream servers (one plain HTTP "local" service, one HTTPS stand-in for the
 * Azure DEV endpoint with a CA of its own).
 */
let home: string;
let repo: TempRepo;
let feature: string;
let localUi: Upstream;
let localApi: Upstream;
let remoteApi: Upstream;
let env: NodeJS.ProcessEnv;
let httpPort: number;

const cli = (args: string[], cwd = repo.main) => runCli(args, { cwd, env });

beforeAll(async () => {
  home = await mkdtemp(join(tmpdir(), 'devproxy-cli-home-'));
  localUi = await startHttpUpstream((req, res) => res.end(`ui local ${req.headers.host}`));
  localApi = await startHttpUpstream((req, res) => res.end(`api local ${req.headers.host}`));
  const tls = await createTestTls(['contoso-api-dev.localhost']);
  remoteApi = await startHttpsUpstream(tls, (req, res) => {
    res.setHeader('set-cookie', 'session=1; Domain=contoso-api-dev.localhost; Secure; HttpOnly');
    if (req.url === '/v1/login') {
      res.writeHead(302, { location: `https://contoso-api-dev.localhost:${remoteApi.port}/v1/home` }).end();
      return;
    }
    res.end(`api remote host=${req.headers.host} url=${req.url}`);
  });
  const caFile = join(home, 'dev-ca.pem');
  await writeFile(caFile, tls.caPem);
  repo = await createTempRepo({
    'compose.yaml': 'services:\n  web:\n    image: nginx\n    ports: ["8080:80"]\n',
    'devproxy.yaml': `name: contoso
ca: ${caFile}
services:
  ui:
    local: { port: ${localUi.port} }
    remote: https://contoso-ui-dev.localhost:1
  api:
    local: { port: ${localApi.port} }
    remote: https://contoso-api-dev.localhost:${remoteApi.port}/v1
profiles:
  minimal: [ui]
  standard: [ui, api]
default: minimal
`,
  });
  feature = repo.addWorktree('feature/hierarchy-filters');
  env = { ...process.env, DEVPROXY_HOME: home, DEVPROXY_PORT: '0', DEVPROXY_HTTPS_PORT: '0' };
});

afterAll(async () => {
  await cli(['proxy', 'stop', '--all']);
  await Promise.all([localUi.close(), localApi.close(), remoteApi.close()]);
  await repo.cleanup();
  await rm(home, { recursive: true, force: true });
});

describe('devproxy CLI end to end', () => {
  it('init keeps an existing devproxy.yaml and registers the repository', async () => {
    const before = await readFile(join(repo.main, 'devproxy.yaml'), 'utf8');
    const result = await cli(['init']);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain(`kept the existing ${join(repo.main, 'devproxy.yaml')}`);
    expect(await readFile(join(repo.main, 'devproxy.yaml'), 'utf8')).toBe(before);
    expect(JSON.parse(await readFile(join(home, 'repos.json'), 'utf8'))).toEqual({ repos: [repo.main] });
  });

  it('init scaffolds from the compose file when there is no devproxy.yaml, never twice', async () => {
    const other = await createTempRepo({ 'docker-compose.yml': 'services:\n  api:\n    ports: ["127.0.0.1:9000:8080/tcp"]\n  worker:\n    image: busybox\n' }, 'My_Shop');
    const otherHome = await mkdtemp(join(tmpdir(), 'devproxy-cli-home2-'));
    try {
      const first = await runCli(['init'], { cwd: other.main, env: { ...env, DEVPROXY_HOME: otherHome } });
      expect(first.code).toBe(0);
      const scaffold = await readFile(join(other.main, 'devproxy.yaml'), 'utf8');
      expect(scaffold).toContain('name: my-shop');
      expect(scaffold).toContain('compose: docker-compose.yml');
      expect(scaffold).toContain('local: { compose: api, port: 8080 }');
      expect(scaffold).toContain('local: { compose: worker, port: 80 }   # set the container port');
      expect(scaffold).toContain('full: [api, worker]');
      await writeFile(join(other.main, 'devproxy.yaml'), `${scaffold}# my edit\n`);
      const second = await runCli(['init'], { cwd: other.main, env: { ...env, DEVPROXY_HOME: otherHome } });
      expect(second.code).toBe(0);
      expect(await readFile(join(other.main, 'devproxy.yaml'), 'utf8')).toContain('# my edit');
    } finally {
      await other.cleanup();
      await rm(otherHome, { recursive: true, force: true });
    }
  });

  it('proxy start runs one daemon per user; a second start says where it runs', async () => {
    const started = await cli(['proxy', 'start', '--json']);
    expect(started.code, started.stderr).toBe(0);
    const info = JSON.parse(started.stdout) as { pid: number; httpPort: number; httpsPort: number };
    const { token } = JSON.parse(await readFile(join(home, 'daemon.json'), 'utf8')) as { token: string };
    expect(started.stdout).not.toContain(token);
    // The worker's DEVPROXY_LOCAL_PORTS lies below the ephemeral ports on a kernel of default
    // settings (no note); a kernel whose ephemeral ports start lower gets the note.
    const kernelPorts = await readFile('/proc/sys/net/ipv4/ip_local_port_range', 'utf8');
    expect(started.stderr.includes('ephemeral')).toBe(ephemeralOverlapWarning(parsePortRange(env.DEVPROXY_LOCAL_PORTS!), kernelPorts) !== undefined);
    httpPort = info.httpPort;
    expect(httpPort).toBeGreaterThan(0);
    expect((await stat(join(home, 'daemon.json'))).mode & 0o777).toBe(0o600);

    // The background daemon runs with its memory settings (README "Performance" → "Memory").
    const cmdline = (await readFile(`/proc/${info.pid}/cmdline`, 'utf8')).split('\0');
    expect(cmdline).toContain('--max-semi-space-size=2');
    const environ = (await readFile(`/proc/${info.pid}/environ`, 'utf8')).split('\0');
    expect(environ).toContain('MALLOC_MMAP_THRESHOLD_=131072');

    const again = await cli(['proxy', 'start']);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain(`devproxy is already running (pid ${info.pid}) on http://127.0.0.1:${httpPort}`);

    const status = await cli(['proxy', 'status', '--json']);
    expect(JSON.parse(status.stdout)).toMatchObject({ running: true, pid: info.pid, httpPort });
    expect(status.stdout).not.toContain(token);
  });

  it('routes the main checkout and the worktree by their live profiles', async () => {
    const ui = await send(httpPort, 'ui.contoso.localhost');
    expect(ui).toMatchObject({ status: 200, body: `ui local ui.contoso.localhost` });
    expect(ui.headers['x-devproxy-route']).toBe('local');

    const api = await send(httpPort, 'api.hierarchy-filters.localhost', { path: '/items?x=1' });
    expect(api.status).toBe(200);
    expect(api.body).toBe(`api remote host=contoso-api-dev.localhost:${remoteApi.port} url=/v1/items?x=1`);
    expect(api.headers['x-devproxy-route']).toBe('remote');
    expect(api.headers['set-cookie']).toEqual(['session=1; HttpOnly']);

    const login = await send(httpPort, `api.hierarchy-filters.localhost:${httpPort}`, { path: '/login' });
    expect(login.status).toBe(302);
    expect(login.headers.location).toBe(`http://api.hierarchy-filters.localhost:${httpPort}/home`);
  });

  it('use flips one worktree at once, writes the file atomically and keeps .devproxy out of git', async () => {
    const result = await cli(['use', 'standard'], feature);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toMatch(/hierarchy-filters: profile standard → .*\.devproxy\/profile\.yaml/);
    expect(result.stdout).toMatch(/api\s+local\s+127\.0\.0\.1:\d+/);
    expect(await readFile(join(feature, '.devproxy', 'profile.yaml'), 'utf8')).toContain('profile: standard');
    expect(repo.git(['status', '--porcelain'], feature)).toBe('');

    expect((await send(httpPort, 'api.hierarchy-filters.localhost')).body).toBe('api local api.hierarchy-filters.localhost');
    expect((await send(httpPort, 'api.contoso.localhost')).headers['x-devproxy-route']).toBe('remote');

    const override = await cli(['use', '--service', 'api=remote', '--json'], feature);
    expect(JSON.parse(override.stdout)).toMatchObject({ worktree: 'hierarchy-filters', profile: 'standard', local: ['ui'] });
    expect((await send(httpPort, 'api.hierarchy-filters.localhost')).headers['x-devproxy-route']).toBe('remote');

    const byName = await cli(['use', 'minimal', '--worktree', 'hierarchy-filters']);
    expect(byName.code, byName.stderr).toBe(0);
    expect(await readFile(join(feature, '.devproxy', 'profile.yaml'), 'utf8')).not.toContain('services');
  });

  it('a hand edit has the same effect as use, and a broken one keeps the last good routes', async () => {
    await writeFile(join(feature, '.devproxy', 'profile.yaml'), 'profile: standard\n');
    await waitFor(async () => ((await send(httpPort, 'api.hierarchy-filters.localhost')).headers['x-devproxy-route'] === 'local' ? true : undefined));

    await writeFile(join(feature, '.devproxy', 'profile.yaml'), 'profile: standard\nservices:\n  apii: local\n');
    const status = await waitFor(async () => {
      const out = await cli(['status', '--json']);
      const report = JSON.parse(out.stdout) as { worktrees: Array<{ name: string; diagnostics: Array<{ text: string }> }> };
      return report.worktrees.find((w) => w.name === 'hierarchy-filters' && w.diagnostics.length > 0);
    });
    expect(status.diagnostics[0]!.text).toBe(`${join(feature, '.devproxy', 'profile.yaml')}:3:3 services.apii: unknown service "apii" — did you mean "api"?`);
    expect((await send(httpPort, 'api.hierarchy-filters.localhost')).headers['x-devproxy-route']).toBe('local');
    const human = await cli(['status']);
    expect(human.stdout).toContain('Problems (the last good routes stay active):');
    expect(human.stdout).toContain('unknown service "apii"');
    await writeFile(join(feature, '.devproxy', 'profile.yaml'), 'profile: minimal\n');
  });

  it('use keeps every key of the profile file it does not change, with comments (regression: it dropped writes:)', async () => {
    const file = join(feature, '.devproxy', 'profile.yaml');
    const original = '# my worktree\nprofile: minimal # daily\nname: hierarchy-filters\nwrites:\n  api: read-write # I own the test tenant\nfutureKey: { kept: true }\n';
    await writeFile(file, original);
    const kept = ['# my worktree\n', 'name: hierarchy-filters\n', 'writes:\n  api: read-write # I own the test tenant\n', 'futureKey: { kept: true }\n'];

    const service = await cli(['use', '--service', 'ui=remote', '--no-wait'], feature);
    expect(service.code, service.stderr).toBe(0);
    const afterService = await readFile(file, 'utf8');
    for (const text of [...kept, 'profile: minimal # daily\n', 'services:\n  ui: remote\n']) expect(afterService).toContain(text);

    const both = await cli(['use', 'standard', '--service', 'api=remote', '--no-wait'], feature);
    expect(both.code, both.stderr).toBe(0);
    const afterBoth = await readFile(file, 'utf8');
    for (const text of [...kept, 'profile: standard # daily\n', 'services:\n  api: remote\n']) expect(afterBoth).toContain(text);
    expect(afterBoth).not.toContain('ui: remote');

    const profile = await cli(['use', 'minimal', '--no-wait'], feature);
    expect(profile.code, profile.stderr).toBe(0);
    expect(await readFile(file, 'utf8')).toBe(original);
    await writeFile(file, 'profile: minimal\n');
  });

  it('use refuses an unknown profile or service with the fix, and changes nothing', async () => {
    const before = await readFile(join(feature, '.devproxy', 'profile.yaml'), 'utf8');
    const profile = await cli(['use', 'standrd'], feature);
    expect(profile.code).toBe(1);
    expect(profile.stderr).toContain('error: unknown profile "standrd"');
    expect(profile.stderr).toContain('did you mean "standard"?');
    const service = await cli(['use', 'standard', '--service', 'apu=local'], feature);
    expect(service.code).toBe(1);
    expect(service.stderr).toContain('unknown service "apu"');
    const usage = await cli(['use', 'standard', '--service', 'api'], feature);
    expect(usage.code).toBe(2);
    expect(await readFile(join(feature, '.devproxy', 'profile.yaml'), 'utf8')).toBe(before);
  });

  it('status shows every worktree, route, target and health; --json is the same data', async () => {
    await cli(['use', 'standard'], feature);
    const raw = await cli(['status', '--json']);
    expect(raw.code, raw.stderr).toBe(0);
    const json = JSON.parse(raw.stdout) as { daemon: { running: boolean }; worktrees: Array<{ name: string; main: boolean; profile: string; services: Array<Record<string, unknown>> }> };
    expect(json.daemon.running).toBe(true);
    expect(json.worktrees.map((w) => [w.name, w.main, w.profile])).toEqual([['contoso', true, 'minimal'], ['hierarchy-filters', false, 'standard']]);
    expect(json.worktrees[1]!.services).toEqual([
      expect.objectContaining({ name: 'ui', route: 'local', target: `127.0.0.1:${localUi.port}`, health: 'healthy', url: `http://ui.hierarchy-filters.localhost:${httpPort}` }),
      expect.objectContaining({ name: 'api', route: 'local', target: `127.0.0.1:${localApi.port}`, health: 'healthy' }),
    ]);
    const human = (await cli(['ls'])).stdout;
    expect(human).toMatch(/hierarchy-filters\s+standard\s+ui\s+local\s+127\.0\.0\.1:\d+\s+healthy/);
    expect(human).toMatch(/contoso \(main\)\s+minimal\s+ui\s+local/);
  });

  it('env prints the stable URLs of the current worktree in three formats', async () => {
    const dotenv = (await cli(['env'], feature)).stdout;
    const info = JSON.parse(await readFile(join(home, 'daemon.json'), 'utf8')) as { httpsPort: number };
    expect(dotenv.trim().split('\n')).toEqual([
      `UI_URL=http://ui.hierarchy-filters.localhost:${httpPort}`,
      `UI_HTTPS_URL=https://ui.hierarchy-filters.localhost:${info.httpsPort}`,
      `API_URL=http://api.hierarchy-filters.localhost:${httpPort}`,
      `API_HTTPS_URL=https://api.hierarchy-filters.localhost:${info.httpsPort}`,
      `NODE_EXTRA_CA_CERTS=${join(home, 'certs', 'ca.pem')}`,
    ]);
    const json = JSON.parse((await cli(['env', '--format', 'json'], feature)).stdout) as Record<string, string>;
    expect(json.API_URL).toBe(`http://api.hierarchy-filters.localhost:${httpPort}`);
    expect((await cli(['env', '--format', 'shell'])).stdout).toContain(`export UI_URL='http://ui.contoso.localhost:${httpPort}'`);
    const bad = await cli(['env', '--format', 'xml']);
    expect(bad.code).toBe(2);
  });

  it('proxy stop stops the daemon; status then computes routes from the files', async () => {
    const stopped = await cli(['proxy', 'stop']);
    expect(stopped.stdout).toMatch(/devproxy stopped \(pid \d+\)/);
    const status = await cli(['proxy', 'status']);
    expect(status.code).toBe(3);
    const offline = await cli(['status']);
    expect(offline.stdout).toContain('devproxy is not running');
    expect(offline.stdout).toMatch(/hierarchy-filters\s+standard/);
    await expect(send(httpPort, 'ui.contoso.localhost')).rejects.toThrow(/ECONNREFUSED/);
  });

  it("proxy start warns, and the daemon logs, when DEVPROXY_LOCAL_PORTS overlaps the kernel's ephemeral ports", async () => {
    const [firstEphemeral] = (await readFile('/proc/sys/net/ipv4/ip_local_port_range', 'utf8')).trim().split(/\s+/);
    const inside = `${firstEphemeral}-${Number(firstEphemeral) + 99}`;
    const overlapping = { cwd: repo.main, env: { ...env, DEVPROXY_LOCAL_PORTS: inside } };
    try {
      const started = await runCli(['proxy', 'start'], overlapping);
      expect(started.code, started.stderr).toBe(0);
      const warning = `local ports ${inside} overlap the kernel's ephemeral ports ${firstEphemeral}-`;
      expect(started.stderr).toContain(`note: ${warning}`);
      expect(await readFile(join(home, 'logs', 'daemon.log'), 'utf8')).toContain(`warn  ${warning}`);
    } finally {
      await runCli(['proxy', 'stop'], overlapping);
    }
  });
});

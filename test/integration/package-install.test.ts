import { execFile } from 'node:child_process';
import { cp, mkdir, mkdtemp, readFile, rm, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { VERSION } from '../../version.js';
import { createTempRepo, type TempRepo } from '../helpers/git-repo.js';
import { send, startHttpUpstream, type Upstream } from '../helpers/upstreams.js';

const execFileAsync = promisify(execFile);
const PROJECT = fileURLToPath(new URL('../..', import.meta.url));

interface PackedFile {
  path: string;
}

let scratch: string;
let tarball: string;
let packedFiles: string[];
let installOutput: string;
let devproxyBin: string;
let upstream: Upstream;
let repo: TempRepo;

/**
 * Packs the project as `npm publish` would and installs the tarball globally into a temporary
 * prefix, as a user following the README does. The pack runs in a copy of the tracked files so
 * that its `prepack` build (which empties dist/) does not disturb the dist/ the other test files
 * run.
 */
beforeAll(async () => {
  scratch = await mkdtemp(join(tmpdir(), 'devproxy-pack-'));
  const source = join(scratch, 'source');
  const { stdout: tracked } = await execFileAsync('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], { cwd: PROJECT, maxBuffer: 16 * 1024 * 1024 });
  for (const file of tracked.split('\0').filter(Boolean)) {
    await cp(join(PROJECT, file), join(source, file), { recursive: true }).catch((error: NodeJS.ErrnoException) => {
      if (error.code !== 'ENOENT') throw error; // a tracked file deleted in the work tree is not shipped either
    });
  }
  await symlink(join(PROJECT, 'node_modules'), join(source, 'node_modules'), 'dir');
  const { stdout: packJson } = await execFileAsync('npm', ['pack', '--json', '--pack-destination', scratch], { cwd: source, maxBuffer: 64 * 1024 * 1024 });
  const [packed] = JSON.parse(packJson) as Array<{ filename: string; files: PackedFile[] }>;
  tarball = join(scratch, packed!.filename);
  packedFiles = packed!.files.map((file) => file.path);

  const prefix = join(scratch, 'prefix');
  await mkdir(prefix);
  // --prefer-offline: `npm ci` has just filled the cache with every dependency; the registry is
  // asked only for what the cache lacks.
  const install = await execFileAsync('npm', ['install', '-g', '--prefix', prefix, '--prefer-offline', '--no-audit', '--no-fund', tarball], { cwd: scratch, maxBuffer: 64 * 1024 * 1024 });
  installOutput = `${install.stdout}\n${install.stderr}`;
  devproxyBin = join(prefix, 'bin', 'devproxy');

  upstream = await startHttpUpstream((req, res) => res.end(`served for ${req.headers.host}`));
  repo = await createTempRepo({
    'devproxy.yaml': `name: packed\nservices:\n  web:\n    local: { port: ${upstream.port} }\n    remote: https://web-dev.invalid\nprofiles:\n  minimal: [web]\ndefault: minimal\n`,
  });
}, 420_000);

afterAll(async () => {
  await upstream?.close();
  await repo?.cleanup();
  await rm(scratch, { recursive: true, force: true });
});

describe('the published package', () => {
  it('ships the compiled CLI, the MCP server, the JSON Schemas, the README and the licence, and no tests or sources', () => {
    expect(packedFiles).toEqual(expect.arrayContaining(['bin/devproxy.js', 'dist/cli/index.js', 'dist/daemon/main.js', 'dist/cli/mcp-server.js', 'schemas/status.json', 'schemas/error.json', 'README.md', 'LICENSE', 'package.json']));
    expect(packedFiles.filter((file) => file.startsWith('test/') || file.startsWith('dist/test/') || file.startsWith('dist/bench/'))).toEqual([]);
    expect(packedFiles.filter((file) => file.endsWith('.ts') || file.endsWith('.map'))).toEqual([]);
  });

  it('installs on this Node without an engine warning', () => {
    expect(installOutput).not.toContain('EBADENGINE');
  });

  it('runs from the global prefix: --version, a daemon, a routed request', async () => {
    const home = join(scratch, 'home');
    const env = { ...process.env, DEVPROXY_HOME: home, DEVPROXY_PORT: '0', DEVPROXY_HTTPS_PORT: '0' };
    const run = (args: string[]) => execFileAsync(devproxyBin, args, { cwd: repo.main, env, timeout: 60_000 });

    expect((await run(['--version'])).stdout.trim()).toBe(VERSION);
    await run(['init']);
    const started = JSON.parse((await run(['proxy', 'start', '--json'])).stdout) as { httpPort: number };
    try {
      const response = await send(started.httpPort, 'web.packed.localhost');
      expect(response.status).toBe(200);
      expect(response.body).toBe('served for web.packed.localhost');
      expect(response.headers['x-devproxy-route']).toBe('local');
      const daemon = JSON.parse(await readFile(join(home, 'daemon.json'), 'utf8')) as { pid: number };
      const command = (await readFile(`/proc/${daemon.pid}/cmdline`, 'utf8')).split('\0').join(' ');
      expect(command).toContain(join(scratch, 'prefix'));
    } finally {
      await run(['proxy', 'stop', '--all']);
    }
  });
});

/**
 * Brings up a real Docker engine and the registry-free test image the runtime tests run on.
 * CI starts bare (root, no registry, only npm and Debian reachable), so this installs Debian's
 * `docker.io`, `docker-compose` and `busybox-static` when they are missing, starts `dockerd`
 * detached when nothing answers on the socket, and builds `devproxy-test-busybox:<applets>` with
 * `docker import` from a one-binary root filesystem. Idempotent: a second call only pings.
 *
 * CLI: `node dist/test/setup/docker-engine.js` (after `npm run build`); prints the socket path
 * and image name as JSON, progress on stderr.
 */
import { execFile, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, openSync, closeSync } from 'node:fs';
import { mkdir, mkdtemp, rm, symlink, copyFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import Docker from 'dockerode';
import { LABEL_REPO } from '../../runtime/compose.js';

const execFileAsync = promisify(execFile);

/** Applets linked into the test image; `busybox <applet>` works for any other one. */
const BUSYBOX_APPLETS = ['sh', 'httpd', 'sleep', 'echo', 'cat', 'mkdir', 'ls', 'wget', 'env', 'true', 'kill', 'ps', 'head', 'tr', 'wc'];

/**
 * The image every runtime test container runs: busybox alone, imported without a registry. Its
 * tag names the applet list, so an engine that kept an image of an older list (an earlier suite
 * on the machine) gets a new one rather than containers missing an applet.
 */
export const TEST_IMAGE = `devproxy-test-busybox:${createHash('sha256').update(BUSYBOX_APPLETS.join(' ')).digest('hex').slice(0, 12)}`;

/**
 * Unique to this test process (its pid, and a few random bytes against a reused pid): a Compose
 * project name, and so its containers and networks, is global on a shared engine, so two suites
 * on one machine must never use the same one, nor remove each other's.
 */
const RUN_SUFFIX = `${process.pid.toString(36)}${randomBytes(2).toString('hex')}`;

/** `base` made unique to this test run, for a name the Docker engine sees (a project's `name:`). */
export function runScoped(base: string): string {
  return `${base}-${RUN_SUFFIX}`;
}

/**
 * Removes the Compose networks of the projects a devproxy project named `scoped` (a
 * {@link runScoped} name) made, `<scoped>-<worktree>`: this run's, and no one else's. devproxy
 * removes them itself (`rm`, `proxy stop --all`; test/integration/stop-networks.test.ts): this
 * is for what a failed test left.
 */
export async function removeScopedNetworks(docker: Docker, scoped: string): Promise<void> {
  const networks = await docker.listNetworks({ filters: { label: ['com.docker.compose.project'] } });
  for (const n of networks) {
    if (n.Labels?.['com.docker.compose.project']?.startsWith(`${scoped}-`)) await docker.getNetwork(n.Id).remove().catch(() => undefined);
  }
}

/** Force-removes every container devproxy started for the repository at `repoMain` (by its label): what a failed test left. */
export async function removeRepoContainers(docker: Docker, repoMain: string): Promise<void> {
  for (const c of await docker.listContainers({ all: true, filters: { label: [`${LABEL_REPO}=${repoMain}`] } })) await docker.getContainer(c.Id).remove({ force: true });
}

/** Where dockerd listens unless DOCKER_HOST says otherwise. */
export const DEFAULT_SOCKET_PATH = '/var/run/docker.sock';

/** How long a freshly started dockerd gets to answer `/_ping`. */
const DOCKERD_START_TIMEOUT_MS = 60_000;

/** The socket path the engine is expected on: DOCKER_HOST when it is a unix socket, else the default. */
export function dockerSocketPath(env: NodeJS.ProcessEnv = process.env): string {
  const host = env.DOCKER_HOST;
  if (host?.startsWith('unix://')) return host.slice('unix://'.length);
  return DEFAULT_SOCKET_PATH;
}

async function pingEngine(socketPath: string): Promise<boolean> {
  try {
    await new Docker({ socketPath, timeout: 3_000 }).ping();
    return true;
  } catch {
    return false;
  }
}

async function commandExists(name: string): Promise<boolean> {
  try {
    await execFileAsync('sh', ['-c', `command -v ${name}`]);
    return true;
  } catch {
    return false;
  }
}

async function debianPackageInstalled(name: string): Promise<boolean> {
  try {
    const { stdout } = await execFileAsync('dpkg-query', ['-W', '-f=${Status}', name]);
    return stdout.includes('install ok installed');
  } catch {
    return false;
  }
}

/**
 * Held (flock) around every apt-get of the test set-up, also by the ensure-*.sh scripts: test
 * files run side by side, and a second apt-get would fail on dpkg's lock instead of waiting.
 */
const APT_LOCK_FILE = join(tmpdir(), 'devproxy-test-apt.lock');

async function aptInstall(packages: string[], log: (line: string) => void): Promise<void> {
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  // DPkg::Lock::Timeout: on a fresh machine apt-daily or unattended-upgrades may hold dpkg's own lock.
  const aptGet = (args: string[]): Promise<unknown> => execFileAsync('flock', [APT_LOCK_FILE, 'apt-get', '-o', 'DPkg::Lock::Timeout=600', ...args], { env, maxBuffer: 64 * 1024 * 1024 });
  const install = (): Promise<unknown> => aptGet(['install', '-y', '--no-install-recommends', ...packages]);
  log(`apt-get install ${packages.join(' ')}`);
  try {
    await install();
  } catch {
    // A bare machine has no package lists yet; update once and retry.
    log('apt-get update');
    await aptGet(['update']);
    await install();
  }
}

async function ensurePackages(log: (line: string) => void): Promise<void> {
  const wanted: Array<{ pkg: string; present: () => Promise<boolean> }> = [
    { pkg: 'docker.io', present: () => commandExists('dockerd') },
    { pkg: 'docker-compose', present: async () => (await commandExists('docker-compose')) || (await composeV2Works()) },
    { pkg: 'busybox-static', present: () => debianPackageInstalled('busybox-static') },
  ];
  const missing: string[] = [];
  for (const w of wanted) if (!(await w.present())) missing.push(w.pkg);
  if (missing.length === 0) return;
  if (process.getuid?.() !== 0) {
    throw new Error(`missing packages ${missing.join(', ')}; install them with: sudo apt-get install -y ${missing.join(' ')}`);
  }
  await aptInstall(missing, log);
}

async function composeV2Works(): Promise<boolean> {
  try {
    await execFileAsync('docker', ['compose', 'version']);
    return true;
  } catch {
    return false;
  }
}

async function startDockerd(socketPath: string, log: (line: string) => void): Promise<void> {
  if (process.getuid?.() !== 0) {
    throw new Error('no Docker engine answers and this is not root; start one with `sudo systemctl start docker` or `sudo dockerd &`');
  }
  const logFile = join(tmpdir(), 'devproxy-dockerd.log');
  const fd = openSync(logFile, 'a');
  // No iptables: CI containers may not have the netfilter modules; published ports still work
  // through docker-proxy (the userland proxy). vfs: overlayfs is not always mountable there.
  const args = ['--iptables=false', '--storage-driver=vfs'];
  if (socketPath !== DEFAULT_SOCKET_PATH) args.push('--host', `unix://${socketPath}`);
  log(`starting dockerd ${args.join(' ')} (log: ${logFile})`);
  const child = spawn('dockerd', args, { detached: true, stdio: ['ignore', fd, fd] });
  child.unref();
  closeSync(fd);
  let deadline = Date.now() + DOCKERD_START_TIMEOUT_MS;
  let exited = false;
  while (Date.now() < deadline) {
    if (await pingEngine(socketPath)) return;
    if (!exited && child.exitCode !== null) {
      // Ours may have lost a race with an engine the docker.io package's postinst started;
      // give that one a little while to answer before giving up.
      exited = true;
      deadline = Math.min(deadline, Date.now() + 10_000);
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`dockerd did not answer on ${socketPath} within ${DOCKERD_START_TIMEOUT_MS} ms; see ${logFile}`);
}

async function imageExists(docker: Docker, name: string): Promise<boolean> {
  try {
    await docker.getImage(name).inspect();
    return true;
  } catch {
    return false;
  }
}

async function findStaticBusybox(): Promise<string> {
  for (const candidate of ['/bin/busybox', '/usr/bin/busybox']) {
    if (!existsSync(candidate)) continue;
    // The dynamic `busybox` package would import fine and then fail to exec without its libc.
    const { stdout } = await execFileAsync('sh', ['-c', `ldd ${candidate} 2>&1 || true`]);
    if (/not a dynamic executable|statically linked/.test(stdout)) return candidate;
  }
  throw new Error('no statically linked busybox found; install it with: apt-get install -y busybox-static');
}

async function buildTestImage(docker: Docker, log: (line: string) => void): Promise<void> {
  const busybox = await findStaticBusybox();
  const root = await mkdtemp(join(tmpdir(), 'devproxy-busybox-rootfs-'));
  try {
    await mkdir(join(root, 'bin'), { recursive: true });
    await mkdir(join(root, 'tmp'), { recursive: true });
    await mkdir(join(root, 'www'), { recursive: true });
    await mkdir(join(root, 'etc'), { recursive: true });
    await copyFile(busybox, join(root, 'bin', 'busybox'));
    for (const applet of BUSYBOX_APPLETS) await symlink('busybox', join(root, 'bin', applet));
    await writeFile(join(root, 'www', 'index.html'), 'ok\n');
    await writeFile(join(root, 'etc', 'passwd'), 'root:x:0:0:root:/:/bin/sh\n');
    log(`importing ${TEST_IMAGE} from ${busybox}`);
    const tar = spawn('tar', ['-C', root, '-c', '.'], { stdio: ['ignore', 'pipe', 'inherit'] });
    const [repo, tag] = TEST_IMAGE.split(':') as [string, string];
    const stream = await docker.importImage(tar.stdout, { repo, tag, changes: ['ENV PATH=/bin', 'CMD ["sh"]'] } as object);
    await new Promise<void>((resolve, reject) => {
      docker.modem.followProgress(stream, (err: Error | null) => (err ? reject(err) : resolve()));
    });
  } finally {
    await rm(root, { recursive: true, force: true });
  }
  if (!(await imageExists(docker, TEST_IMAGE))) throw new Error(`docker import did not produce ${TEST_IMAGE}`);
}

/**
 * Makes sure a Docker engine answers and the test image exists; installs and starts what is
 * missing when running as root. Safe to call from every test file's `beforeAll`.
 */
export async function ensureDockerEngine(
  opts: { log?: (line: string) => void } = {},
): Promise<{ socketPath: string; image: string }> {
  const log = opts.log ?? (() => undefined);
  const socketPath = dockerSocketPath();
  if (!(await pingEngine(socketPath))) {
    await ensurePackages(log);
    if (!(await pingEngine(socketPath))) await startDockerd(socketPath, log);
  } else if (!(await commandExists('docker-compose')) && !(await composeV2Works())) {
    await ensurePackages(log);
  }
  const docker = new Docker({ socketPath });
  if (!(await imageExists(docker, TEST_IMAGE))) {
    if (!(await debianPackageInstalled('busybox-static'))) await ensurePackages(log);
    await buildTestImage(docker, log);
  }
  return { socketPath, image: TEST_IMAGE };
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  ensureDockerEngine({ log: (line) => process.stderr.write(`docker-engine: ${line}\n`) }).then(
    (r) => process.stdout.write(`${JSON.stringify(r)}\n`),
    (err: unknown) => {
      process.stderr.write(`docker-engine: ${err instanceof Error ? err.message : String(err)}\n`);
      process.exitCode = 1;
    },
  );
}

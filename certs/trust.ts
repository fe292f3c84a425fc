/**
 * Installing the devproxy CA where this machine's clients look for trust anchors: the OS store
 * (Debian/Ubuntu, Fedora/RHEL, macOS, Windows) and the NSS databases of Chrome/Chromium and
 * Firefox profiles. Every function returns steps saying exactly what was done and what was not,
 * with the one command to run when a step needs privileges devproxy does not have.
 */
import { execFile } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { access, constants, copyFile, mkdir, readdir, readFile, rm } from 'node:fs/promises';
import { homedir, userInfo } from 'node:os';
import { delimiter, join } from 'node:path';

/** One thing `devproxy trust` did or could not do. */
export interface TrustStep {
  /** Where trust was (un)installed: `system (Debian/Ubuntu)`, `NSS <dir>`. */
  target: string;
  done: boolean;
  /** What happened, or what to run to do it by hand. */
  detail: string;
}

/** Result of running a command; `code` 127 when the command does not exist. */
export interface CommandResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a command without a shell; tests pass a recorder. */
export type CommandRunner = (command: string, args: string[]) => Promise<CommandResult>;

export interface TrustOptions {
  /** PEM file of the CA (`$DEVPROXY_HOME/certs/ca.pem`). */
  caPath: string;
  /** Default `process.platform`. */
  platform?: NodeJS.Platform;
  /** Default: runs the command for real. */
  run?: CommandRunner;
  /** Prefix of system paths such as `/usr/local/share/ca-certificates` (default `/`; tests use a temp dir). */
  rootDir?: string;
  /** Home folder searched for NSS databases (default `os.homedir()`). */
  homeDir?: string;
  /** Names the installed system file `devproxy-<user>.crt` (default the current user). */
  user?: string;
  /** Whether system stores may be written (default: running as root). */
  isRoot?: boolean;
  /** Which stores to touch (default both). */
  targets?: ('system' | 'nss')[];
  /** Folders searched for browser executables (default the PATH). */
  pathDirs?: string[];
}

/** Nickname of the CA in NSS databases. */
export const NSS_NICKNAME = 'devproxy';
/** Deleting by nickname removes one certificate per call; a regenerated CA can leave several. */
const MAX_NSS_DELETES = 10;

const defaultRunner: CommandRunner = (command, args) =>
  new Promise((resolve) => {
    execFile(command, args, { timeout: 60_000 }, (error, stdout, stderr) => {
      const code = error === null ? 0 : (error as NodeJS.ErrnoException).code === 'ENOENT' ? 127 : typeof error.code === 'number' ? error.code : 1;
      resolve({ code, stdout, stderr: stderr || (error?.message ?? '') });
    });
  });

interface Resolved {
  caPath: string;
  platform: NodeJS.Platform;
  run: CommandRunner;
  root: string;
  home: string;
  user: string;
  isRoot: boolean;
  targets: ('system' | 'nss')[];
  pathDirs: string[];
}

function resolveOptions(opts: TrustOptions): Resolved {
  return {
    caPath: opts.caPath,
    platform: opts.platform ?? process.platform,
    run: opts.run ?? defaultRunner,
    root: opts.rootDir ?? '/',
    home: opts.homeDir ?? homedir(),
    user: opts.user ?? userInfo().username,
    isRoot: opts.isRoot ?? process.getuid?.() === 0,
    targets: opts.targets ?? ['system', 'nss'],
    pathDirs: opts.pathDirs ?? (process.env.PATH ?? '').split(delimiter).filter(Boolean),
  };
}

/** Adds the CA to the OS store and to every NSS database found; idempotent. */
export async function installTrust(opts: TrustOptions): Promise<TrustStep[]> {
  const o = resolveOptions(opts);
  const steps: TrustStep[] = [];
  if (o.targets.includes('system')) steps.push(await systemStore(o, 'install'));
  if (o.targets.includes('nss')) steps.push(...(await nssStores(o, 'install')));
  return steps;
}

/** Removes the CA from the OS store and from every NSS database found. */
export async function uninstallTrust(opts: TrustOptions): Promise<TrustStep[]> {
  const o = resolveOptions(opts);
  const steps: TrustStep[] = [];
  if (o.targets.includes('system')) steps.push(await systemStore(o, 'uninstall'));
  if (o.targets.includes('nss')) steps.push(...(await nssStores(o, 'uninstall')));
  return steps;
}

/** What Node apps need to trust devproxy's certificates without touching any store. */
export function printTrust(opts: { caPath: string }): { caPath: string; nodeExtraCaCerts: string } {
  return { caPath: opts.caPath, nodeExtraCaCerts: `NODE_EXTRA_CA_CERTS=${shellQuote(opts.caPath)}` };
}

type Action = 'install' | 'uninstall';

async function systemStore(o: Resolved, action: Action): Promise<TrustStep> {
  switch (o.platform) {
    case 'linux':
      return await linuxStore(o, action);
    case 'darwin':
      return await macStore(o, action);
    case 'win32':
      return await windowsStore(o, action);
    default:
      return { target: `system (${o.platform})`, done: false, detail: `devproxy does not know this OS's trust store; add ${o.caPath} by hand` };
  }
}

/** The two Linux families whose stores are a folder of anchors plus a rebuild command. */
const LINUX_STORES = [
  { name: 'Debian/Ubuntu', dir: 'usr/local/share/ca-certificates', ext: 'crt', rebuild: ['update-ca-certificates'] },
  { name: 'Fedora/RHEL', dir: 'etc/pki/ca-trust/source/anchors', ext: 'pem', rebuild: ['update-ca-trust', 'extract'] },
] as const;

async function linuxStore(o: Resolved, action: Action): Promise<TrustStep> {
  let store: (typeof LINUX_STORES)[number] | undefined;
  for (const candidate of LINUX_STORES) {
    if (await exists(join(o.root, candidate.dir))) {
      store = candidate;
      break;
    }
  }
  if (store === undefined) {
    return { target: 'system (Linux)', done: false, detail: `no known CA folder (Debian/Ubuntu or Fedora/RHEL); add ${o.caPath} to your distribution's trust store by hand` };
  }
  const target = `system (${store.name})`;
  const dest = join(o.root, store.dir, `devproxy-${o.user}.${store.ext}`);
  const [rebuild, ...rebuildArgs] = store.rebuild;
  const rebuildText = store.rebuild.join(' ');
  const present = await exists(dest);
  if (action === 'uninstall' && !present) return { target, done: true, detail: `${dest} was not installed` };
  if (action === 'install' && present && (await sameFile(dest, o.caPath))) {
    return { target, done: true, detail: `already trusted (${dest})` };
  }
  const manual =
    action === 'install' ? `sudo sh -c ${shellQuote(`cp ${shellQuote(o.caPath)} ${shellQuote(dest)} && ${rebuildText}`)}` : `sudo sh -c ${shellQuote(`rm ${shellQuote(dest)} && ${rebuildText}`)}`;
  if (!o.isRoot) return { target, done: false, detail: `needs root; run: ${manual}` };
  try {
    if (action === 'install') await copyFile(o.caPath, dest);
    else await rm(dest);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EACCES' || code === 'EPERM' || code === 'EROFS') return { target, done: false, detail: `cannot write ${dest} (${code}); run: ${manual}` };
    throw error;
  }
  const result = await o.run(rebuild, rebuildArgs);
  if (result.code !== 0) {
    return { target, done: false, detail: `${action === 'install' ? 'copied to' : 'removed'} ${dest}, but \`${rebuildText}\` failed: ${firstLine(result)}` };
  }
  return { target, done: true, detail: `${action === 'install' ? 'added' : 'removed'} ${dest} and ran \`${rebuildText}\`` };
}

const MAC_KEYCHAIN = '/Library/Keychains/System.keychain';

async function macStore(o: Resolved, action: Action): Promise<TrustStep> {
  const target = 'system (macOS keychain)';
  const args =
    action === 'install' ? ['add-trusted-cert', '-d', '-r', 'trustRoot', '-k', MAC_KEYCHAIN, o.caPath] : ['remove-trusted-cert', '-d', o.caPath];
  const manual = `sudo security ${args.map(shellQuote).join(' ')}`;
  if (!o.isRoot) return { target, done: false, detail: `needs an administrator; run: ${manual}` };
  const result = await o.run('security', args);
  if (result.code !== 0) return { target, done: false, detail: `\`security ${args[0] ?? ''}\` failed: ${firstLine(result)}; run: ${manual}` };
  return { target, done: true, detail: `${action === 'install' ? 'trusted' : 'untrusted'} ${o.caPath} in ${MAC_KEYCHAIN}` };
}

async function windowsStore(o: Resolved, action: Action): Promise<TrustStep> {
  const target = 'system (Windows ROOT store)';
  // Deleting needs the certificate's serial: a path names nothing inside the store.
  const args =
    action === 'install' ? ['-addstore', '-f', 'ROOT', o.caPath] : ['-delstore', 'ROOT', new X509Certificate(await readFile(o.caPath)).serialNumber];
  const result = await o.run('certutil', args);
  if (result.code !== 0) {
    return { target, done: false, detail: `\`certutil ${args.join(' ')}\` failed: ${firstLine(result)}; run it from an elevated (administrator) prompt` };
  }
  return { target, done: true, detail: `${action === 'install' ? 'added' : 'removed'} the CA ${action === 'install' ? 'to' : 'from'} the ROOT store` };
}

/** NSS databases (cert9.db) of Chrome/Chromium and Firefox profiles under `home`. */
export async function findNssDatabases(home: string, platform: NodeJS.Platform): Promise<string[]> {
  const candidates = [join(home, '.pki', 'nssdb'), join(home, 'snap', 'chromium', 'current', '.pki', 'nssdb')];
  const profileRoots =
    platform === 'darwin'
      ? [join(home, 'Library', 'Application Support', 'Firefox', 'Profiles')]
      : [join(home, '.mozilla', 'firefox'), join(home, 'snap', 'firefox', 'common', '.mozilla', 'firefox')];
  for (const root of profileRoots) {
    const entries = await readdir(root, { withFileTypes: true }).catch(() => []);
    for (const entry of entries) if (entry.isDirectory()) candidates.push(join(root, entry.name));
  }
  const found: string[] = [];
  for (const dir of candidates) if (await exists(join(dir, 'cert9.db'))) found.push(dir);
  return found;
}

/** Linux browsers that read the per-user NSS database `~/.pki/nssdb` (created by their first run). */
const NSSDB_BROWSERS = ['chromium', 'chromium-browser', 'google-chrome', 'google-chrome-stable', 'microsoft-edge', 'brave-browser'];

/** The first of `names` that is an executable in one of `dirs`. */
async function findExecutable(dirs: string[], names: string[]): Promise<string | undefined> {
  for (const name of names) {
    for (const dir of dirs) {
      const path = join(dir, name);
      if (await access(path, constants.X_OK).then(() => true, () => false)) return path;
    }
  }
  return undefined;
}

async function nssStores(o: Resolved, action: Action): Promise<TrustStep[]> {
  // Windows' own certutil is a different tool; browsers there use the system store.
  if (o.platform === 'win32') return [];
  const dbs = await findNssDatabases(o.home, o.platform);
  const chromeDb = join(o.home, '.pki', 'nssdb');
  // A Chromium that never ran has no database yet, and would then trust only the system store
  // it does not read (ERR_CERT_AUTHORITY_INVALID): create the one it will open.
  const browser = action === 'install' && o.platform === 'linux' && !dbs.includes(chromeDb) ? await findExecutable(o.pathDirs, NSSDB_BROWSERS) : undefined;
  const install = o.platform === 'darwin' ? 'brew install nss' : 'sudo apt-get install libnss3-tools (or your distribution\'s nss-tools)';
  const createDb = `mkdir -p ${shellQuote(chromeDb)} && certutil -N -d ${shellQuote(`sql:${chromeDb}`)} --empty-password && devproxy trust`;
  if (dbs.length === 0 && browser === undefined) {
    if (action === 'uninstall' || o.platform !== 'linux') return [];
    return [{ target: 'browsers', done: false, detail: `no browser certificate database found (no ${chromeDb}, no Firefox profile): start your browser once, then run \`devproxy trust\` again; or create Chromium's now: ${createDb}` }];
  }
  if ((await o.run('certutil', ['-H'])).code === 127) {
    return [...dbs, ...(browser ? [chromeDb] : [])].map((dir) => ({ target: `NSS ${dir}`, done: false, detail: `NSS certutil is not installed; ${install}, then run \`devproxy trust\` again` }));
  }
  const steps: TrustStep[] = [];
  if (browser !== undefined) {
    await mkdir(chromeDb, { recursive: true, mode: 0o700 });
    const created = await o.run('certutil', ['-N', '-d', `sql:${chromeDb}`, '--empty-password']);
    if (created.code === 0) dbs.unshift(chromeDb);
    else steps.push({ target: `NSS ${chromeDb}`, done: false, detail: `could not create the database ${browser} will use: ${firstLine(created)}; run: ${createDb}` });
  }
  for (const dir of dbs) {
    const db = `sql:${dir}`;
    if (action === 'install') {
      const result = await o.run('certutil', ['-A', '-n', NSS_NICKNAME, '-t', 'C,,', '-i', o.caPath, '-d', db]);
      steps.push(
        result.code === 0
          ? { target: `NSS ${dir}`, done: true, detail: `added as "${NSS_NICKNAME}" (trusted for TLS servers)${dir === chromeDb && browser ? `; created the database ${browser} will use` : ''}` }
          : { target: `NSS ${dir}`, done: false, detail: `certutil -A failed: ${firstLine(result)}` },
      );
      continue;
    }
    let removed = 0;
    while (removed < MAX_NSS_DELETES && (await o.run('certutil', ['-D', '-n', NSS_NICKNAME, '-d', db])).code === 0) removed++;
    steps.push({ target: `NSS ${dir}`, done: true, detail: removed === 0 ? `"${NSS_NICKNAME}" was not installed` : `removed "${NSS_NICKNAME}"` });
  }
  return steps;
}

async function exists(path: string): Promise<boolean> {
  return await access(path).then(
    () => true,
    () => false,
  );
}

async function sameFile(a: string, b: string): Promise<boolean> {
  const [left, right] = await Promise.all([readFile(a), readFile(b)]);
  return left.equals(right);
}

function firstLine(result: CommandResult): string {
  return (result.stderr.trim() || result.stdout.trim() || `exit code ${result.code}`).split('\n')[0] ?? '';
}

/** Quotes for a POSIX shell only when needed, so printed commands stay readable. */
function shellQuote(value: string): string {
  return /^[\w@%+=:,./-]+$/.test(value) ? value : `'${value.replaceAll("'", "'\\''")}'`;
}

/**
 * The layout of `$DEVPROXY_HOME`, in one place: every file devproxy keeps per user is named here
 * and nowhere else. Pure (no I/O), at the root because every room that keeps state there (certs,
 * runtime, workspace, daemon, cli) reads it and none of them may own the others' files.
 */
import { homedir } from 'node:os';
import { join } from 'node:path';

/** `$DEVPROXY_HOME`, default `~/.devproxy`. */
export function devproxyHome(env: NodeJS.ProcessEnv = process.env): string {
  return env.DEVPROXY_HOME || join(homedir(), '.devproxy');
}

/** The layout of a devproxy home; `home` is used as given (callers pass an absolute path). */
export interface HomePaths {
  home: string;
  /** Running daemon: pid, ports, admin token (mode 0600); removed when it stops. */
  daemon: string;
  /** Held while a daemon starts, so two starts of one home cannot both run. */
  daemonLock: string;
  /** Admin port and token kept across daemon restarts, so an open dashboard reconnects (mode 0600). */
  admin: string;
  /** Files handed to the browser opener instead of a URL with the token (mode 0700). */
  open: string;
  /** The page `devproxy dashboard` opens: a redirect to the dashboard URL with the token (mode 0600). */
  dashboardRedirect: string;
  /** Registered repositories (main checkout paths), `{"repos": [path…]}`. */
  repos: string;
  reposLock: string;
  /** Worktrees `devproxy down` stopped, `{"worktrees": [path…]}`; the daemon watches it. */
  down: string;
  downLock: string;
  /** Host ports devproxy allocated per worktree service; a service keeps its port across restarts. */
  ports: string;
  /** Local processes the runtime started, so a restarted daemon finds and stops them. */
  processes: string;
  /** Log folder: the daemon's log, each local service's output, each worktree's set-up. */
  logs: string;
  daemonLog: string;
  /** Derived Compose files, one per Compose project. */
  compose: string;
  /** The local CA's folder (mode 0700). */
  certs: string;
  /** The CA certificate users trust. */
  caCert: string;
  /** The CA's private key (mode 0600). */
  caKey: string;
  /** Held while the CA is created or replaced. */
  caLock: string;
  /** Cache of leaf certificates per SNI name. */
  leaves: string;
}

/** Every path of the devproxy home `home`. */
export function homePaths(home: string): HomePaths {
  const logs = join(home, 'logs');
  const certs = join(home, 'certs');
  const open = join(home, 'open');
  return {
    home,
    daemon: join(home, 'daemon.json'),
    daemonLock: join(home, 'daemon.json.lock'),
    admin: join(home, 'admin.json'),
    open,
    dashboardRedirect: join(open, 'dashboard.html'),
    repos: join(home, 'repos.json'),
    reposLock: join(home, 'repos.json.lock'),
    down: join(home, 'down.json'),
    downLock: join(home, 'down.json.lock'),
    ports: join(home, 'ports.json'),
    processes: join(home, 'processes.json'),
    logs,
    daemonLog: join(logs, 'daemon.log'),
    compose: join(home, 'compose'),
    certs,
    caCert: join(certs, 'ca.pem'),
    caKey: join(certs, 'ca-key.pem'),
    caLock: join(certs, '.ca.lock'),
    leaves: join(certs, 'leaves'),
  };
}

/** Output of one local service (`<slug>-<service>.log` in the log folder). */
export function serviceLogPath(home: string, slug: string, service: string): string {
  return join(homePaths(home).logs, `${slug}-${service}.log`);
}

/** Output of a worktree's `setup:` steps (`<slug>-setup.log` in the log folder). */
export function setupLogPath(home: string, slug: string): string {
  return join(homePaths(home).logs, `${slug}-setup.log`);
}

/** Ending of a derived Compose file's name, after its project's name. */
export const COMPOSE_FILE_SUFFIX = '.compose.yaml';

/** The Compose file devproxy derives for one Compose project. */
export function composeFilePath(home: string, projectName: string): string {
  return join(homePaths(home).compose, `${projectName}${COMPOSE_FILE_SUFFIX}`);
}

/**
 * The one catalogue of devproxy errors. Every error a user can meet has a stable `code`, a
 * message that says what happened, and a one-line `hint` that says how to fix it. The README's
 * "Error codes" section documents every code listed here (a unit test keeps the two in step).
 */

/** Every stable error code, with the one-line hint shown under the message. */
export const ERROR_HINTS = {
  DEVPROXY_ERR_CONFIG_NOT_FOUND: 'run `devproxy init` in the repository root to scaffold devproxy.yaml',
  DEVPROXY_ERR_CONFIG_INVALID: 'fix the file at the line shown; the last good routes stay active meanwhile',
  DEVPROXY_ERR_PROFILE_INVALID: 'fix .devproxy/profile.yaml at the line shown, or rewrite it with `devproxy use <profile>`',
  DEVPROXY_ERR_UNKNOWN_PROFILE: 'use one of the profiles listed in devproxy.yaml, or add it under `profiles:`',
  DEVPROXY_ERR_UNKNOWN_SERVICE: 'use a service name defined under `services:` in devproxy.yaml',
  DEVPROXY_ERR_NOT_A_REPO: 'run the command inside a git repository (or pass -C <dir>)',
  DEVPROXY_ERR_UNKNOWN_WORKTREE: 'run `devproxy status` to see the worktrees devproxy knows',
  DEVPROXY_ERR_DAEMON_NOT_RUNNING: 'start it with `devproxy proxy start`',
  DEVPROXY_ERR_DAEMON_ALREADY_RUNNING: 'stop it first with `devproxy proxy stop`, or use the running one',
  DEVPROXY_ERR_DAEMON_START_FAILED: 'read the daemon log shown above; a busy port can be changed with --port',
  DEVPROXY_ERR_PORT_IN_USE: 'choose another port with --port / DEVPROXY_PORT, or stop what holds it',
  DEVPROXY_ERR_ADMIN_UNAUTHORIZED: 'the admin API needs the token in $DEVPROXY_HOME/daemon.json; use the devproxy CLI',
  DEVPROXY_ERR_INTERNAL: 'devproxy hit an unexpected error: the daemon log has the details; please report it',
  DEVPROXY_ERR_WORKTREE_EXISTS: 'pick another feature name; `devproxy status` lists the worktrees that exist',
  DEVPROXY_ERR_DIRTY_BASE: 'commit or stash your changes first, or name the base with --base <ref>',
  DEVPROXY_ERR_DIRTY_WORKTREE: 'commit or stash the changes, or pass --force to discard them',
  DEVPROXY_ERR_BRANCH_NOT_MERGED: 'merge the branch first, drop --delete-branch to keep it, or pass --force to delete it anyway',
  DEVPROXY_ERR_SERVICES_FAILED: 'read `devproxy logs <service>`, fix it, then `devproxy restart <service>`',
  DEVPROXY_ERR_PROFILE_CHANGED: 'run the command again if you still want its profile (`devproxy status` shows the current one)',
  DEVPROXY_ERR_USAGE: 'run `devproxy --help` for the commands and their options',
  DEVPROXY_ERR_LOCKED: 'another devproxy command holds the lock: retry in a moment; if it persists, remove the stale lock file named',
  DEVPROXY_ERR_CONFIRMATION_REQUIRED: 'ask the user, then call remove_feature again with `confirm: true`',
  DEVPROXY_ERR_ENV_UNSET: 'export the variable named, or change the reference in devproxy.yaml',
  DEVPROXY_ERR_DOCKER_UNAVAILABLE: 'start Docker (`sudo systemctl start docker`, or `sudo dockerd &`); remote-only profiles keep working meanwhile',
  DEVPROXY_ERR_COMPOSE_CLI_MISSING: 'install Docker Compose: the `docker compose` plugin, or `docker-compose` (e.g. `sudo apt-get install docker-compose`)',
  DEVPROXY_ERR_COMPOSE_FILE_NOT_FOUND: 'create the compose file, or set `compose:` in devproxy.yaml to its path relative to the repository root',
  DEVPROXY_ERR_COMPOSE_UNKNOWN_SERVICE: 'use a service defined in the compose file, or fix `local.compose` of that service in devproxy.yaml',
  DEVPROXY_ERR_COMPOSE_FAILED: 'read the compose output shown; `devproxy logs <service>` shows the container output',
  DEVPROXY_ERR_PORTS_EXHAUSTED: 'stop the local services of worktrees you no longer use (`devproxy rm <feature>`) to free ports',
  DEVPROXY_ERR_UPSTREAM_REFUSED: 'start the local service, or route it to its remote with `devproxy use <profile> --service <service>=remote`',
  DEVPROXY_ERR_UPSTREAM_DNS: 'check the remote URL in devproxy.yaml and your network or VPN',
  DEVPROXY_ERR_UPSTREAM_TLS: 'trust the remote\'s CA with `ca:` in devproxy.yaml or NODE_EXTRA_CA_CERTS; `insecure: true` skips verification',
  DEVPROXY_ERR_UPSTREAM_TIMEOUT: 'the service is slow or hung: check its logs, or route it elsewhere with `devproxy use`',
  DEVPROXY_ERR_UPSTREAM_FAILED: 'check the service\'s logs; `devproxy status` shows its state',
  DEVPROXY_ERR_READ_ONLY: 'the remote is shared and read-only; allow writes from this worktree with `writes: { <service>: read-write }` in its .devproxy/profile.yaml',
  DEVPROXY_ERR_REMOTE_AUTH: 'sign in so devproxy can get a token: `az login` (with `--tenant <tenant>` when the config names one), then retry',
  DEVPROXY_ERR_REMOTE_WAKING: 'the remote is starting from zero: wait and retry, or raise `wake: { timeout: … }` for the service in devproxy.yaml',
  DEVPROXY_ERR_UNKNOWN_HOST: 'use one of the hosts listed, or run `devproxy status` to see them',
  DEVPROXY_ERR_MISDIRECTED_HOST: 'devproxy only serves `localhost` and `<service>.<worktree>.localhost`; use one of those names',
  DEVPROXY_ERR_MISDIRECTED_REQUEST: 'open a new connection for that hostname: a connection serves only the names its certificate covers',
  DEVPROXY_ERR_BAD_HOST: 'send a Host header naming `<service>.<worktree>.localhost`',
  DEVPROXY_ERR_ROUTE_UNAVAILABLE: 'run `devproxy status` to see why the route cannot be served',
  DEVPROXY_ERR_TRANSFER_CODING: 'send the body uncompressed, or compressed end to end with `Content-Encoding: gzip`, framed by Content-Length or `Transfer-Encoding: chunked` alone',
  DEVPROXY_ERR_LOOP_DETECTED: 'a route points back at devproxy itself; check the remote URL in devproxy.yaml',
  DEVPROXY_ERR_CA_CORRUPT: 'move $DEVPROXY_HOME/certs aside and run `devproxy trust --regenerate`',
  DEVPROXY_ERR_CERT_UNKNOWN_HOST: 'only hostnames devproxy routes get a certificate; run `devproxy status` to list them',
  DEVPROXY_ERR_HOSTS_NOT_WRITABLE: 'run the command again with administrator rights: `sudo devproxy hosts sync` (an Administrator terminal on Windows)',
  DEVPROXY_ERR_HOSTS_BLOCK_BROKEN: 'restore the `# <<< devproxy <<<` line that ends devproxy\'s block in the hosts file, or delete the block',
  DEVPROXY_ERR_SETUP_FAILED: 'fix the failing step (its output is shown, the whole of it in the log named), then `devproxy setup` in the worktree to retry',
  DEVPROXY_ERR_DAEMON_UNRESPONSIVE: 'the daemon runs but does not answer: read its log, then `devproxy proxy stop` and `devproxy proxy start`',
  DEVPROXY_ERR_NOT_WRITABLE: 'make the folder named writable, or point DEVPROXY_HOME at a writable folder',
  DEVPROXY_ERR_NOT_APPLIED: 'fix the problem the daemon reports (`devproxy status`); the file is written and applies once it is fixed',
  DEVPROXY_ERR_RUN_FAILED: 'check the command name and that it is on PATH (`devproxy run -- <command> [args…]`)',
  DEVPROXY_ERR_WATCH_LIMIT: 'raise the limit: `sudo sysctl fs.inotify.max_user_watches=524288` (add it to /etc/sysctl.d/ to keep it); devproxy watches again by itself once it can',
  DEVPROXY_ERR_REQUEST_NOT_FOUND: 'the request log keeps the last 1,000 exchanges; pick a recent one from `devproxy requests`',
} as const;

export type ErrorCode = keyof typeof ERROR_HINTS;

/** Base class: `code` is stable for scripts, `hint` is the fix shown to a person. */
export class DevproxyError extends Error {
  readonly code: ErrorCode;
  readonly hint: string;

  constructor(code: ErrorCode, message: string, options: { hint?: string; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'DevproxyError';
    this.code = code;
    this.hint = options.hint ?? ERROR_HINTS[code];
  }
}

/** Codes that mean the caller asked for something that does not exist or cannot be: 4xx, never 500. */
const CLIENT_ERROR_STATUS: Partial<Record<ErrorCode, number>> = {
  DEVPROXY_ERR_UNKNOWN_SERVICE: 404,
  DEVPROXY_ERR_UNKNOWN_WORKTREE: 404,
  DEVPROXY_ERR_UNKNOWN_PROFILE: 404,
  DEVPROXY_ERR_USAGE: 400,
  DEVPROXY_ERR_CONFIG_INVALID: 400,
  DEVPROXY_ERR_PROFILE_INVALID: 400,
  DEVPROXY_ERR_COMPOSE_UNKNOWN_SERVICE: 400,
  DEVPROXY_ERR_COMPOSE_FILE_NOT_FOUND: 400,
  DEVPROXY_ERR_ENV_UNSET: 400,
  DEVPROXY_ERR_LOCKED: 409,
  DEVPROXY_ERR_PROFILE_CHANGED: 409,
};

/** The HTTP status an API answers for `error`: 4xx for a caller's mistake, 503 for Docker away, else 500. */
export function httpStatusOf(error: unknown): number {
  if (!isDevproxyError(error)) return 500;
  if (error.code === 'DEVPROXY_ERR_DOCKER_UNAVAILABLE') return 503;
  return CLIENT_ERROR_STATUS[error.code] ?? 500;
}

/** True for errors devproxy raised on purpose (safe to show without a stack trace). */
export function isDevproxyError(error: unknown): error is DevproxyError {
  return error instanceof DevproxyError;
}

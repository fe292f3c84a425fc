import { Command, CommanderError } from 'commander';
import { accessSync, constants, existsSync } from 'node:fs';
import { dirname } from 'node:path';
import { VERSION } from '../version.js';
import { DevproxyError, isDevproxyError } from '../errors.js';
import { devproxyHome } from '../home-paths.js';
import { jsonError } from './format.js';

/**
 * The devproxy CLI. Commands are imported lazily so `devproxy status` does not load the proxy;
 * this is the only place that catches errors and sets the exit code (1 for a devproxy error,
 * 2 for bad usage, 70 for a bug).
 */
const program = new Command('devproxy')
  .description('Stable URLs for every service of every git worktree, routed local or to the shared DEV environment by a live profile.')
  .version(VERSION)
  .showSuggestionAfterError()
  .exitOverride();

const collect = (value: string, previous: string[] = []) => [...previous, value];

const proxy = program.command('proxy').description('start, stop or inspect the per-user proxy daemon');
proxy
  .command('start')
  .description('start the daemon (in the background unless --foreground)')
  .option('--foreground', 'stay attached; logs go to the terminal')
  .option('--port <port>', 'plain HTTP port (env DEVPROXY_PORT, default 7080)')
  .option('--https-port <port>', 'HTTPS/HTTP2 port (env DEVPROXY_HTTPS_PORT, default 7443)')
  .option('--no-https', 'serve plain HTTP only')
  .option('--redirect-https', 'answer routed plain-HTTP requests with a 308 to the HTTPS listener')
  .option('--sync-hosts [file]', 'keep a devproxy block of every routed hostname in the hosts file (default the system one; needs write access)')
  .option('--host <address>', 'bind address (repeatable; default 127.0.0.1 and ::1). Anything else exposes devproxy to the network', collect)
  .option('--json', 'machine-readable output')
  .action(async (opts) => (await import('./commands/proxy.js')).proxyStart(opts));
proxy
  .command('stop')
  .description('drain in-flight requests and stop the daemon; local instances keep running (a new daemon adopts them) unless --all')
  .option('--all', 'also stop every local process and container of every worktree (they stay down until `devproxy up`)')
  .option('--json', 'machine-readable output')
  .action(async (opts) => (await import('./commands/proxy.js')).proxyStop(opts));
proxy
  .command('status')
  .description('whether the daemon runs, its ports and log (exit 3 when stopped)')
  .option('--json', 'machine-readable output')
  .action(async (opts) => (await import('./commands/proxy.js')).proxyStatus(opts));

program
  .command('init')
  .description('scaffold devproxy.yaml (never overwriting one) and register the repository')
  .option('-C <dir>', 'run as if started in <dir>')
  .option('--agents', 'also write the agent files: .claude/commands/{start-feature,switch-profile}.md, a block in AGENTS.md, .mcp.json (never overwriting your edits)')
  .option('--json', 'machine-readable output')
  .action(async (opts) => (await import('./commands/init.js')).init({ dir: opts.C, json: opts.json, agents: opts.agents }));

program
  .command('use')
  .alias('switch-profile')
  .argument('[profile]', 'profile from devproxy.yaml (omit to keep the current one and only apply --service)')
  .description("switch the worktree's live profile; routes flip without restarting anything")
  .option('-C <dir>', 'the worktree containing <dir> (default: the current folder)')
  .option('--worktree <name>', 'a worktree of the same repository by its hostname name')
  .option('--service <name=local|remote>', 'one-off override for one service (repeatable)', collect)
  .option('--no-wait', 'do not wait for the daemon to report the new routes')
  .option('--dry-run', 'print the plan (containers/processes to start and stop, route changes) and change nothing')
  .option('--json', 'machine-readable output')
  .action(async (profile, opts) => (await import('./commands/use.js')).use(profile, { ...opts, dir: opts.C }));

program
  .command('new')
  .alias('start-feature')
  .argument('<feature>', 'branch name, e.g. feature/hierarchy-filters (its last part names the worktree in URLs)')
  .description('create a worktree on a new branch, write its profile, start its local services and print its URLs')
  .option('--profile <profile>', 'profile of the new worktree (default: the config\'s default)')
  .option('--base <ref>', 'start the branch from <ref> (default: the current HEAD)')
  .option('--path <dir>', 'where to put the worktree (default: <repo>.worktrees/<name>, or `worktrees:` in devproxy.yaml)')
  .option('-C <dir>', 'run as if started in <dir>')
  .option('--json', 'machine-readable output')
  .action(async (feature, opts) => (await import('./commands/new.js')).newFeature(feature, { ...opts, dir: opts.C }));

program
  .command('setup')
  .description("run the `setup:` of devproxy.yaml (copy files, set-up commands) in a worktree, then start its local services")
  .option('-C <dir>', 'the worktree containing <dir> (default: the current folder)')
  .option('--worktree <name>', 'a worktree of the same repository by its hostname name')
  .option('--json', 'machine-readable output')
  .action(async (opts) => (await import('./commands/setup.js')).setup({ ...opts, dir: opts.C }));

program
  .command('down')
  .description('stop every local instance of the worktree (or --all); its routes go remote until `devproxy up` or `use`')
  .option('--all', 'every worktree of every registered repository')
  .option('-C <dir>', 'the worktree containing <dir>')
  .option('--worktree <name>', 'a worktree of the same repository by its hostname name')
  .option('--json', 'machine-readable output')
  .action(async (opts) => (await import('./commands/down.js')).down({ ...opts, dir: opts.C }));

program
  .command('up')
  .description("start the worktree's local services again after `devproxy down` (or --all) and wait until they are healthy")
  .option('--all', 'every worktree that is down')
  .option('-C <dir>', 'the worktree containing <dir>')
  .option('--worktree <name>', 'a worktree of the same repository by its hostname name')
  .option('--json', 'machine-readable output')
  .action(async (opts) => (await import('./commands/down.js')).up({ ...opts, dir: opts.C }));

program
  .command('rm')
  .argument('<feature>', 'the worktree by its name in URLs')
  .description("stop and remove the worktree's containers and processes, then the worktree")
  .option('--force', 'remove even with uncommitted changes (they are lost)')
  .option('--delete-branch', 'also delete its branch')
  .option('-C <dir>', 'run as if started in <dir>')
  .option('--json', 'machine-readable output')
  .action(async (feature, opts) => (await import('./commands/rm.js')).rm(feature, { ...opts, dir: opts.C }));

program
  .command('logs')
  .argument('<service>', 'service of the current worktree')
  .description("output of the service's local container or process")
  .option('-f, --follow', 'keep printing new output')
  .option('-n, --lines <n>', 'how many past lines', '100')
  .option('-C <dir>', 'the worktree containing <dir>')
  .option('--worktree <name>', 'a worktree of the same repository by its hostname name')
  .action(async (service, opts) => (await import('./commands/service.js')).logs(service, { ...opts, dir: opts.C }));

program
  .command('restart')
  .argument('<service>', 'service of the current worktree')
  .description('replace the local instance of a service with a new one and wait until it is healthy')
  .option('-C <dir>', 'the worktree containing <dir>')
  .option('--worktree <name>', 'a worktree of the same repository by its hostname name')
  .option('--json', 'machine-readable output')
  .action(async (service, opts) => (await import('./commands/service.js')).restart(service, { ...opts, dir: opts.C }));

program
  .command('status')
  .alias('ls')
  .description('every worktree with its profile and each service: route, target, health, URL')
  .option('--json', 'stable JSON for scripts and agents')
  .option('--worktree <name>', 'only this worktree (by its hostname name)')
  .option('--no-probe', 'skip the health probes')
  .option('-v, --verbose', 'print multi-line problems (a failed service\'s last output) in full under the table')
  .action(async (opts) => (await import('./commands/status.js')).status(opts));

program
  .command('env')
  .description("print the worktree's environment: stable service URLs, per-service env values for the live profile, CA")
  .option('-C <dir>', 'the worktree containing <dir>')
  .option('--worktree <name>', 'a worktree of the same repository by its hostname name')
  .option('--format <format>', 'dotenv | json | shell', 'dotenv')
  .option('--resolve', 'print ${env:…}/${file:…} references resolved (shows secrets)')
  .option('--write [file]', 'write it resolved to a git-ignored file (default .env.devproxy in the worktree)')
  .action(async (opts) => (await import('./commands/env.js')).env({ ...opts, dir: opts.C }));

program
  .command('run')
  .argument('<command...>', 'the command and its arguments, after --')
  .usage('[options] -- <command> [args…]')
  .description("run a command with the worktree's environment; Node processes resolve *.localhost to the proxy")
  .option('-C <dir>', 'the worktree containing <dir>; the command runs there')
  .option('--worktree <name>', 'a worktree of the same repository by its hostname name')
  .action(async (command, opts) => (await import('./commands/run.js')).run(command, { ...opts, dir: opts.C }));

const hosts = program.command('hosts').description("keep every routed hostname in the hosts file, for clients that do not resolve *.localhost");
hosts
  .command('sync')
  .description("write devproxy's block of the hosts file (needs administrator rights)")
  .option('--file <path>', 'hosts file (default /etc/hosts, or System32\\drivers\\etc\\hosts on Windows)')
  .option('--json', 'machine-readable output')
  .action(async (opts) => (await import('./commands/hosts.js')).hostsSync(opts));
hosts
  .command('clean')
  .description("remove devproxy's block from the hosts file")
  .option('--file <path>', 'hosts file (default /etc/hosts, or System32\\drivers\\etc\\hosts on Windows)')
  .option('--json', 'machine-readable output')
  .action(async (opts) => (await import('./commands/hosts.js')).hostsClean(opts));

program
  .command('trust')
  .description('trust the devproxy CA in the OS store and browser NSS databases')
  .option('--uninstall', 'remove the CA from every store')
  .option('--print', 'only show the CA path and the NODE_EXTRA_CA_CERTS line')
  .option('--regenerate', 'untrust the old CA, create a new one and trust it')
  .option('--no-system', "leave the OS store alone: only the browsers' NSS databases (no administrator rights needed)")
  .option('--json', 'machine-readable output')
  .action(async (opts) => {
    const { trust } = await import('./commands/trust.js');
    const { home } = await import('./context.js');
    console.log(await trust({ ...opts, home: home() }));
  });

program
  .command('mcp')
  .description("serve the Model Context Protocol over stdio for coding agents (tools: status, use_profile, new_feature, remove_feature, restart_service, logs, env)")
  .option('-C <dir>', 'the worktree the tools act on by default (default: the current folder)')
  .action(async (opts) => (await import('./commands/mcp.js')).mcp({ dir: opts.C }));

program
  .command('dashboard')
  .description('open the live dashboard in the default browser (prints its URL)')
  .option('--no-open', 'only print the URL')
  .action(async (opts) => (await import('./commands/dashboard.js')).dashboard(opts));

program
  .command('requests')
  .description('recent requests through the proxy: time, worktree, service, method, path, status, duration, route, bytes')
  .option('-f, --follow', 'keep printing requests as they happen')
  .option('--limit <n>', 'print only the last <n> recorded requests first')
  .option('--json', 'JSON (with --follow: one object per line)')
  .action(async (opts) => (await import('./commands/requests.js')).requests(opts));

async function main(argv: string[]): Promise<number> {
  try {
    await program.parseAsync(argv);
    return typeof process.exitCode === 'number' ? process.exitCode : 0;
  } catch (error) {
    if (error instanceof CommanderError) return error.exitCode === 0 ? 0 : 2;
    const known = isDevproxyError(error) ? error : fileSystemError(error);
    if (known) {
      const error = known;
      // Scripts and agents read stdout: with --json it holds the error's code and fix as JSON, unless
      // the command already printed its result there (which then carries its own `failures`).
      const written = (process.stdout as { bytesWritten?: number }).bytesWritten;
      if (argv.includes('--json') && !written) console.log(JSON.stringify(jsonError(error), null, 2));
      console.error(`error: ${error.message}\n  ${error.hint}`);
      return error.code === 'DEVPROXY_ERR_USAGE' ? 2 : 1;
    }
    console.error(`devproxy crashed — please report this with the command you ran:\n${(error as Error).stack ?? String(error)}`);
    return 70;
  }
}

/** Codes of a file system that refuses a write (a situation to explain, not a bug to report), and why. */
const NOT_WRITABLE_REASONS: Record<string, string> = { EACCES: 'permission denied', EPERM: 'operation not permitted', EROFS: 'read-only file system', ENOSPC: 'no space left on the device', EDQUOT: 'disk quota exceeded' };

/** A read-only, full or denied `$DEVPROXY_HOME` (or repository) as a devproxy error naming the path. */
function fileSystemError(error: unknown): DevproxyError | undefined {
  const { path, syscall } = error as NodeJS.ErrnoException;
  let { code } = error as NodeJS.ErrnoException;
  // `mkdir -p` on a read-only file system reports ENOENT: ask the nearest existing folder why.
  if (code === 'ENOENT' && syscall === 'mkdir' && path) code = writeRefusal(path);
  if (!code || !Object.hasOwn(NOT_WRITABLE_REASONS, code)) return undefined;
  const home = devproxyHome();
  const where = path ?? home;
  const inHome = where === home || where.startsWith(`${home}/`);
  return new DevproxyError('DEVPROXY_ERR_NOT_WRITABLE', `cannot write ${where}: ${NOT_WRITABLE_REASONS[code]} (${code})`, {
    hint: inHome ? `make ${home} writable, or set DEVPROXY_HOME to a writable folder` : `make ${where} writable`,
    cause: error,
  });
}

/** The errno a write into the nearest existing ancestor of `path` meets, if any. */
function writeRefusal(path: string): string | undefined {
  for (let dir = dirname(path); ; dir = dirname(dir)) {
    if (!existsSync(dir)) {
      if (dirname(dir) === dir) return undefined;
      continue;
    }
    try {
      accessSync(dir, constants.W_OK);
      return undefined;
    } catch (error) {
      return (error as NodeJS.ErrnoException).code;
    }
  }
}

process.exitCode = await main(process.argv);

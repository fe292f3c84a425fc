import { dropDaemonSpawnEnv } from '../daemon-env.js';
import { isDevproxyError } from '../errors.js';
import { localPortRangeFromEnv } from '../runtime/ports.js';
import { startDaemon } from './daemon.js';
import { DEFAULT_LOG_MAX_BYTES, openDaemonLog } from './daemon-log.js';
import { devproxyHome } from '../home-paths.js';

/** Longest wait for in-flight requests when the daemon is asked to stop. */
const SHUTDOWN_TIMEOUT_MS = 10_000;

/**
 * Runs the daemon until SIGTERM/SIGINT or an admin stop. `args` are the ones `proxy start`
 * passes: `--port N --https-port N|none [--host ADDR]… [--redirect-https] [--sync-hosts FILE]
 * [--log-file FILE]`. With `--log-file` (a background daemon) logs go to that file, capped and
 * rotated; without it (foreground) to stdout.
 */
export async function runDaemon(args: string[]): Promise<void> {
  const value = (name: string) => args[args.indexOf(name) + 1];
  const hosts = args.flatMap((arg, i) => (arg === '--host' ? [args[i + 1]!] : []));
  const httpsArg = value('--https-port');
  const logFile = args.includes('--log-file') ? value('--log-file') : undefined;
  const log = logFile ? openDaemonLog(logFile, logMaxBytes()) : undefined;
  const logger = log ?? {
    info: (m: string) => console.log(`${new Date().toISOString()} info  ${m}`),
    warn: (m: string) => console.log(`${new Date().toISOString()} warn  ${m}`),
    error: (m: string) => console.log(`${new Date().toISOString()} error ${m}`),
  };
  for (const host of hosts) {
    if (host !== '127.0.0.1' && host !== '::1' && host !== 'localhost') {
      logger.warn(`binding to ${host}: devproxy is reachable from other machines; your routes and remote credentials are exposed to them`);
    }
  }
  const localPorts = localPortRangeFromEnv(process.env);
  const daemon = await startDaemon({
    home: devproxyHome(),
    httpPort: Number(value('--port')),
    httpsPort: httpsArg === undefined || httpsArg === 'none' ? null : Number(httpsArg),
    ...(hosts.length > 0 ? { hosts } : {}),
    ...(args.includes('--redirect-https') ? { redirectToHttps: true } : {}),
    ...(args.includes('--sync-hosts') ? { syncHostsFile: value('--sync-hosts') } : {}),
    ...(localPorts ? { localPorts } : {}),
    logger,
  });
  await new Promise<void>((resolve) => {
    process.once('SIGTERM', resolve);
    process.once('SIGINT', resolve);
    void daemon.stopRequested.then(resolve);
  });
  logger.info('stopping');
  const forced = setTimeout(() => process.exit(1), SHUTDOWN_TIMEOUT_MS);
  forced.unref();
  await daemon.close();
  logger.info('stopped');
  log?.close();
}

/** `DEVPROXY_LOG_MAX_BYTES` when it is a positive integer, else the default. */
function logMaxBytes(): number {
  const raw = Number(process.env.DEVPROXY_LOG_MAX_BYTES);
  return Number.isInteger(raw) && raw > 0 ? raw : DEFAULT_LOG_MAX_BYTES;
}

const isEntryPoint = process.argv[1] !== undefined && import.meta.url === new URL(`file://${process.argv[1]}`).href;
if (isEntryPoint) {
  // stdout/stderr are the log file of a background daemon: a full disk makes their writes fail,
  // which must not take the daemon down (its own log degrades instead, see openDaemonLog).
  for (const stream of [process.stdout, process.stderr]) stream.on('error', () => undefined);
  dropDaemonSpawnEnv(process.env);
  runDaemon(process.argv.slice(2)).then(
    () => process.exit(0),
    (error: unknown) => {
      console.log(isDevproxyError(error) ? `error ${error.message}\n  ${error.hint}` : `error ${(error as Error).stack ?? String(error)}`);
      process.exit(1);
    },
  );
}

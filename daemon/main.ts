import { isDevproxyError } from '../errors.js';
import { startDaemon } from './daemon.js';
import { devproxyHome } from './home.js';

/** Longest wait for in-flight requests when the daemon is asked to stop. */
const SHUTDOWN_TIMEOUT_MS = 10_000;

/**
 * Runs the daemon until SIGTERM/SIGINT or an admin stop. `args` are the ones `proxy start`
 * passes: `--port N --https-port N|none [--host ADDR]… [--redirect-https] [--sync-hosts FILE]`. Logs go to stdout, which a background
 * daemon has redirected into $DEVPROXY_HOME/logs/daemon.log.
 */
export async function runDaemon(args: string[]): Promise<void> {
  const value = (name: string) => args[args.indexOf(name) + 1];
  const hosts = args.flatMap((arg, i) => (arg === '--host' ? [args[i + 1]!] : []));
  const httpsArg = value('--https-port');
  const logger = {
    info: (m: string) => console.log(`${new Date().toISOString()} info  ${m}`),
    warn: (m: string) => console.log(`${new Date().toISOString()} warn  ${m}`),
    error: (m: string) => console.log(`${new Date().toISOString()} error ${m}`),
  };
  for (const host of hosts) {
    if (host !== '127.0.0.1' && host !== '::1' && host !== 'localhost') {
      logger.warn(`binding to ${host}: devproxy is reachable from other machines; your routes and remote credentials are exposed to them`);
    }
  }
  const daemon = await startDaemon({
    home: devproxyHome(),
    httpPort: Number(value('--port')),
    httpsPort: httpsArg === undefined || httpsArg === 'none' ? null : Number(httpsArg),
    ...(hosts.length > 0 ? { hosts } : {}),
    ...(args.includes('--redirect-https') ? { redirectToHttps: true } : {}),
    ...(args.includes('--sync-hosts') ? { syncHostsFile: value('--sync-hosts') } : {}),
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
}

const isEntryPoint = process.argv[1] !== undefined && import.meta.url === new URL(`file://${process.argv[1]}`).href;
if (isEntryPoint) {
  runDaemon(process.argv.slice(2)).then(
    () => process.exit(0),
    (error: unknown) => {
      console.log(isDevproxyError(error) ? `error ${error.message}\n  ${error.hint}` : `error ${(error as Error).stack ?? String(error)}`);
      process.exit(1);
    },
  );
}

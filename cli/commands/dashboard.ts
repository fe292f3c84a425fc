import { spawn } from 'node:child_process';
import { pathToFileURL } from 'node:url';
import { writeDashboardRedirect } from '../dashboard-redirect.js';
import { readDaemonInfo } from '../../workspace/home.js';
import { DevproxyError } from '../../errors.js';
import { home } from '../context.js';

export interface DashboardOptions {
  /** commander's `--no-open` sets this to false: only print the URL. */
  open?: boolean;
}

/**
 * `devproxy dashboard [--no-open]`: prints the dashboard URL and opens it in the default browser
 * when there is a display. The token rides in the fragment, which browsers never send, and never
 * in the opener's arguments, which every local user can read: the browser is given a file only
 * the user can read, which redirects to the URL.
 */
export async function dashboard(opts: DashboardOptions = {}): Promise<void> {
  const info = await readDaemonInfo(home());
  if (!info) throw new DevproxyError('DEVPROXY_ERR_DAEMON_NOT_RUNNING', 'devproxy is not running');
  const url = `http://127.0.0.1:${info.adminPort}/#token=${info.token}`;
  console.log(url);
  const opener = opts.open === false ? undefined : browserOpener(process.platform, process.env);
  if (!opener) return;
  const [command, ...args] = opener as [string, ...string[]];
  const redirect = pathToFileURL(await writeDashboardRedirect(home(), url)).href;
  const child = spawn(command, [...args, redirect], { detached: true, stdio: 'ignore' });
  child.once('error', (error: Error) => console.error(`could not open a browser (${(error as NodeJS.ErrnoException).code ?? error.message}): open the URL above yourself`));
  child.unref();
}

/** The command that opens a URL in the default browser; undefined without a display (ssh, CI, containers). */
function browserOpener(platform: NodeJS.Platform, env: NodeJS.ProcessEnv): string[] | undefined {
  if (platform === 'darwin') return ['open'];
  // `start` is a cmd built-in; its first quoted argument is the window title.
  if (platform === 'win32') return ['cmd', '/c', 'start', '""'];
  if (!env.DISPLAY && !env.WAYLAND_DISPLAY) return undefined;
  return ['xdg-open'];
}

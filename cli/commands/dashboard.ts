import { readDaemonInfo } from '../../daemon/home.js';
import { DevproxyError } from '../../errors.js';
import { home } from '../context.js';

/** `devproxy dashboard`: the dashboard URL; the token rides in the fragment, which browsers never send. */
export async function dashboard(): Promise<void> {
  const info = await readDaemonInfo(home());
  if (!info) throw new DevproxyError('DEVPROXY_ERR_DAEMON_NOT_RUNNING', 'devproxy is not running');
  console.log(`http://127.0.0.1:${info.adminPort}/#token=${info.token}`);
}

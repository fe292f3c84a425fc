import { caPaths } from '../../certs/store.js';
import { home, listenPorts, selectWorktree, type WorktreeSelection } from '../context.js';
import { DevproxyError } from '../../errors.js';

/** Output formats of `devproxy env`. */
const FORMATS = ['dotenv', 'json', 'shell'] as const;

/** `API_URL` for service `api`; hyphens become underscores. */
export function urlVariable(service: string, https = false): string {
  return `${service.toUpperCase().replace(/-/g, '_')}_${https ? 'HTTPS_' : ''}URL`;
}

/** The environment of a worktree: each service's stable URL (and HTTPS URL + CA when HTTPS is on). */
export async function worktreeEnv(selection: WorktreeSelection): Promise<Record<string, string>> {
  const { worktree } = await selectWorktree(selection);
  const { httpPort, httpsPort } = await listenPorts();
  const env: Record<string, string> = {};
  for (const host of worktree.hosts) {
    const service = host.split('.')[0]!;
    env[urlVariable(service)] = `http://${host}:${httpPort}`;
    if (httpsPort !== null) env[urlVariable(service, true)] = `https://${host}:${httpsPort}`;
  }
  if (httpsPort !== null) env.NODE_EXTRA_CA_CERTS = caPaths(home()).certPath;
  return env;
}

/** `devproxy env`: prints the worktree's environment as dotenv (default), JSON or shell exports. */
export async function env(opts: WorktreeSelection & { format?: string }): Promise<void> {
  const format = (opts.format ?? 'dotenv') as (typeof FORMATS)[number];
  if (!FORMATS.includes(format)) throw new DevproxyError('DEVPROXY_ERR_USAGE', `--format must be one of ${FORMATS.join(', ')}, not "${opts.format}"`);
  const values = await worktreeEnv(opts);
  if (format === 'json') {
    console.log(JSON.stringify(values, null, 2));
    return;
  }
  const quote = (v: string) => `'${v.replace(/'/g, `'\\''`)}'`;
  console.log(Object.entries(values).map(([k, v]) => (format === 'shell' ? `export ${k}=${quote(v)}` : `${k}=${v}`)).join('\n'));
}

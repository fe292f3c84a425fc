import { resolve } from 'node:path';
import { defaultHostsPath, syncHostsFile } from '../../environment/hosts-file.js';
import { currentStatus, home } from '../context.js';

/** Options of `devproxy hosts sync|clean`. */
export interface HostsOptions {
  /** Hosts file to manage; default the system one. */
  file?: string;
  json?: boolean;
}

/**
 * `devproxy hosts sync`: sets devproxy's block in the hosts file to every routed hostname (from
 * the running daemon, else from the registered repositories' files), for clients that read
 * only the hosts file. Without rights, the error names the exact command to run.
 */
export async function hostsSync(opts: HostsOptions): Promise<void> {
  const status = await currentStatus(false);
  const names = status.worktrees.flatMap((w) => w.services.map((s) => s.host));
  await update('sync', names, opts);
}

/** `devproxy hosts clean`: removes devproxy's block from the hosts file, nothing else. */
export async function hostsClean(opts: HostsOptions): Promise<void> {
  await update('clean', [], opts);
}

async function update(action: 'sync' | 'clean', names: string[], opts: HostsOptions): Promise<void> {
  const path = opts.file ? resolve(opts.file) : defaultHostsPath();
  const result = await syncHostsFile(path, names, privilegedCommand(action, opts.file ? path : undefined));
  if (opts.json) {
    console.log(JSON.stringify(result, null, 2));
    return;
  }
  const what = action === 'clean' ? 'no devproxy block' : `${result.hosts.length} hostname${result.hosts.length === 1 ? '' : 's'} in devproxy's block`;
  console.log(`${result.path}: ${what}${result.changed ? '' : ' (already up to date, not written)'}`);
}

/**
 * The one command that does the same with administrator rights: sudo resets HOME and PATH, so
 * it names this node, this CLI and this DEVPROXY_HOME explicitly.
 */
function privilegedCommand(action: 'sync' | 'clean', file: string | undefined): string {
  const fileArg = file ? ` --file ${quote(file)}` : '';
  if (process.platform === 'win32') return `devproxy hosts ${action}${fileArg}   (in a terminal opened with "Run as administrator")`;
  const cli = process.argv[1] ?? 'devproxy';
  return `sudo env DEVPROXY_HOME=${quote(home())} ${quote(process.execPath)} ${quote(cli)} hosts ${action}${fileArg}`;
}

function quote(value: string): string {
  return /^[\w@%+=:,./-]+$/.test(value) ? value : `'${value.replace(/'/g, `'\\''`)}'`;
}

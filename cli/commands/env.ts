import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { isAbsolute, join, relative, resolve, sep } from 'node:path';
import { writeFileAtomic } from '../../atomic-write.js';
import { homePaths } from '../../home-paths.js';
import { buildWorktreeEnvironment, displayEnvironment, resolveEnvironment, type WorktreeEnvironment } from '../../environment/worktree-env.js';
import { DevproxyError } from '../../errors.js';
import { localServices } from '../../router/profile-resolution.js';
import type { WorktreeState } from '../../router/types.js';
import type { RepoLocation } from '../../workspace/git-worktrees.js';
import { home, listenPorts, selectWorktree, type WorktreeSelection } from '../context.js';

/** Output formats of `devproxy env`. */
const FORMATS = ['dotenv', 'json', 'shell'] as const;
type Format = (typeof FORMATS)[number];

/** File `devproxy env --write` writes in the worktree when no path is given. */
export const DEFAULT_ENV_FILE = '.env.devproxy';

/** A worktree's environment with what is needed to resolve and place it. */
export interface LoadedEnvironment {
  environment: WorktreeEnvironment;
  worktree: WorktreeState;
  location: RepoLocation;
  /** `${file:…}` references are relative to the repository root. */
  baseDir: string;
}

/** The environment of the selected worktree for its live profile and the proxy's current ports. */
export async function loadEnvironment(selection: WorktreeSelection): Promise<LoadedEnvironment> {
  const { location, worktree, input } = await selectWorktree(selection);
  const { httpPort, httpsPort } = await listenPorts();
  const environment = input.config
    ? buildWorktreeEnvironment({
        config: input.config,
        slug: worktree.slug,
        local: localServices(input.config, input.profile),
        httpPort,
        httpsPort,
        caPath: httpsPort === null ? null : homePaths(home()).caCert,
      })
    : { variables: [], notes: [] };
  return { environment, worktree, location, baseDir: worktree.repo };
}

/** Options of `devproxy env`. */
export interface EnvOptions extends WorktreeSelection {
  format?: string;
  /** Print `${env:…}`/`${file:…}` references resolved (secrets in clear); default they stay references. */
  resolve?: boolean;
  /** `--write [FILE]`: write the file (true = `.env.devproxy` in the worktree) instead of printing. */
  write?: string | boolean;
}

/**
 * `devproxy env`: prints the worktree's environment as dotenv (default), JSON or shell exports,
 * with references unresolved unless `--resolve`; `--write` writes it resolved to a git-ignored file.
 * Notes (a data service whose values change on a flip) go to stderr, so stdout stays parseable.
 */
export async function env(opts: EnvOptions): Promise<void> {
  const format = (opts.format ?? 'dotenv') as Format;
  if (!FORMATS.includes(format)) throw new DevproxyError('DEVPROXY_ERR_USAGE', `--format must be one of ${FORMATS.join(', ')}, not "${opts.format}"`);
  const loaded = await loadEnvironment(opts);
  const { environment } = loaded;
  if (opts.write !== undefined && opts.write !== false) {
    await writeEnvFile(loaded, format, opts);
    return;
  }
  const values = opts.resolve ? resolveEnvironment(environment, { env: process.env, baseDir: loaded.baseDir }) : displayEnvironment(environment);
  console.log(render(values, format));
  for (const note of environment.notes) console.error(`note: ${note}`);
}

async function writeEnvFile(loaded: LoadedEnvironment, format: Format, opts: EnvOptions): Promise<void> {
  const { environment, worktree, location } = loaded;
  const path = typeof opts.write === 'string' ? resolve(opts.dir ?? process.cwd(), opts.write) : join(worktree.path, DEFAULT_ENV_FILE);
  const values = resolveEnvironment(environment, { env: process.env, baseDir: loaded.baseDir });
  const header = [
    `Written by \`devproxy env --write\` for worktree ${worktree.slug} (profile ${worktree.profile ?? 'none'}); write it again after \`devproxy use\`.`,
    ...environment.notes,
  ];
  const body = render(values, format);
  const text = format === 'json' ? `${body}\n` : `${header.map((line) => `# ${line}`).join('\n')}\n${body}\n`;
  // Resolved references may be secrets: readable by the user only.
  await writeFileAtomic(path, text, { mode: 0o600 });
  const excluded = await excludeFromGit(path, worktree.path, location.commonDir);
  console.log(`wrote ${path} (${Object.keys(values).length} variables${excluded ? `; git-ignored by ${excluded}` : ''})`);
  for (const note of environment.notes) console.error(`note: ${note}`);
}

/**
 * Keeps a file inside the worktree out of git: nothing when git already ignores it, else an
 * anchored line in `<common git dir>/info/exclude`, which every worktree of the repository
 * reads, so no tracked `.gitignore` changes. Returns what ignores it, or undefined outside.
 */
async function excludeFromGit(path: string, worktree: string, commonDir: string): Promise<string | undefined> {
  const rel = relative(worktree, path);
  if (rel === '' || rel.startsWith('..') || isAbsolute(rel)) return undefined;
  const posix = rel.split(sep).join('/');
  if (await gitIgnores(worktree, posix)) return 'git';
  const exclude = join(commonDir, 'info', 'exclude');
  const current = await readFile(exclude, 'utf8').catch(() => '');
  const line = `/${posix}`;
  if (!current.split(/\r?\n/).includes(line)) {
    const separator = current === '' || current.endsWith('\n') ? '' : '\n';
    await writeFileAtomic(exclude, `${current}${separator}# devproxy env --write\n${line}\n`);
  }
  return exclude;
}

function gitIgnores(worktree: string, file: string): Promise<boolean> {
  return new Promise((done) => execFile('git', ['check-ignore', '-q', '--', file], { cwd: worktree }, (error) => done(error === null)));
}

function render(values: Record<string, string>, format: Format): string {
  if (format === 'json') return JSON.stringify(values, null, 2);
  const entries = Object.entries(values);
  if (format === 'shell') return entries.map(([k, v]) => `export ${k}=${shellQuote(v)}`).join('\n');
  return entries.map(([k, v]) => `${k}=${dotenvValue(v)}`).join('\n');
}

function shellQuote(value: string): string {
  return `'${value.replace(/'/g, `'\\''`)}'`;
}

/**
 * Plain whenever that reads back unchanged, since `docker --env-file` strips no quotes; else
 * single-quoted, which dotenv, python-dotenv and Compose take literally (no
 * `$` expansion); double-quoted with escapes only when it holds a quote or a line break.
 */
function dotenvValue(value: string): string {
  if (/^[^\s"'`#\\$]*$/.test(value)) return value;
  if (!/['\r\n]/.test(value)) return `'${value}'`;
  return `"${value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\r?\n/g, '\\n')}"`;
}

/**
 * Preparing a fresh worktree so its services can run (`setup:` of devproxy.yaml): copying the
 * git-ignored files a checkout lacks (`.env`, `ui/.env.local`) from the main checkout, never
 * overwriting, then running the set-up commands (`npm ci --prefix ui`) in order in the worktree
 * root, their output appended to a log. Library code: it reports through `onEvent`, never prints.
 */
import { spawn } from 'node:child_process';
import { closeSync, writeSync } from 'node:fs';
import { lstat, readdir, stat } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { createFileIfAbsent } from '../atomic-write.js';
import { makePrivateDir, openPrivateLog } from '../private-files.js';
import { DevproxyError } from '../errors.js';
import type { WorktreeSetup } from '../profiles/schema.js';
import { causeLines } from '../runtime/failure-cause.js';
import { lastLines } from '../runtime/compose.js';
import { readLogTail } from '../runtime/log-file.js';

/** Folders a `**` never descends into: they are huge and never hold files worth copying. */
const SKIPPED_DIRS = new Set(['.git', 'node_modules']);
/** Lines of a failed step's output searched for its cause (npm prints pages of help after its error). */
const FAILED_STEP_LINES = 2_000;

/** One thing the set-up did, for the CLI's progress lines. */
export type SetupEvent =
  | { kind: 'copied'; file: string }
  | { kind: 'kept'; file: string }
  | { kind: 'unmatched'; pattern: string }
  | { kind: 'step'; index: number; total: number; command: string }
  | { kind: 'step-done'; index: number; total: number; command: string; elapsedMs: number };

/** What {@link runWorktreeSetup} needs. */
export interface SetupOptions {
  /** Main checkout: where `copy` patterns are matched. */
  main: string;
  /** The worktree to prepare: where files are copied to and commands run. */
  worktree: string;
  setup: WorktreeSetup;
  /** Log file the commands' output is appended to. */
  logFile: string;
  onEvent?: (event: SetupEvent) => void;
}

/** Files copied and kept, patterns that matched nothing, steps run. */
export interface SetupResult {
  copied: string[];
  kept: string[];
  unmatched: string[];
  steps: Array<{ command: string; elapsedMs: number }>;
}

/**
 * Copies, then runs every step; throws `DEVPROXY_ERR_SETUP_FAILED` at the first step that
 * fails, with the lines of its output that say why. Copying into the main checkout itself is
 * skipped (its files are the originals).
 */
export async function runWorktreeSetup(opts: SetupOptions): Promise<SetupResult> {
  const result: SetupResult = { copied: [], kept: [], unmatched: [], steps: [] };
  if (opts.worktree !== opts.main) {
    for (const pattern of opts.setup.copy) {
      const files = await matchFiles(opts.main, pattern);
      if (files.length === 0) {
        result.unmatched.push(pattern);
        opts.onEvent?.({ kind: 'unmatched', pattern });
      }
      for (const file of files) {
        const copied = await createFileIfAbsent(join(opts.worktree, file), { copyOf: join(opts.main, file) });
        (copied ? result.copied : result.kept).push(file);
        opts.onEvent?.({ kind: copied ? 'copied' : 'kept', file });
      }
    }
  }
  const total = opts.setup.run.length;
  for (const [i, command] of opts.setup.run.entries()) {
    opts.onEvent?.({ kind: 'step', index: i + 1, total, command });
    const began = Date.now();
    await runStep(opts, command, i + 1, total);
    const elapsedMs = Date.now() - began;
    result.steps.push({ command, elapsedMs });
    opts.onEvent?.({ kind: 'step-done', index: i + 1, total, command, elapsedMs });
  }
  return result;
}

async function runStep(opts: SetupOptions, command: string, index: number, total: number): Promise<void> {
  await makePrivateDir(dirname(opts.logFile));
  const fd = openPrivateLog(opts.logFile);
  let offset: number;
  let exit: { code: number | null; signal: NodeJS.Signals | null } | Error;
  const began = Date.now();
  try {
    writeSync(fd, `--- devproxy setup: ${new Date().toISOString()} step ${index}/${total} \`${command}\` in ${opts.worktree}\n`);
    offset = (await stat(opts.logFile)).size;
    // Steps may link or copy from the main checkout (`ln -s "$DEVPROXY_MAIN/node_modules" .`).
    const child = spawn('sh', ['-c', command], { cwd: opts.worktree, env: { ...process.env, DEVPROXY_MAIN: opts.main, DEVPROXY_WORKTREE: opts.worktree }, stdio: ['ignore', fd, fd] });
    exit = await new Promise((resolve) => {
      child.once('error', resolve);
      child.once('exit', (code, signal) => resolve({ code, signal }));
    });
  } finally {
    closeSync(fd);
  }
  if (!(exit instanceof Error) && exit.code === 0) return;
  const how = exit instanceof Error ? `could not start (${exit.message})` : exit.signal ? `was killed by ${exit.signal}` : `exited with code ${exit.code}`;
  const cause = causeLines(lastLines((await readLogTail(opts.logFile, offset)).text, FAILED_STEP_LINES));
  const seconds = ((Date.now() - began) / 1000).toFixed(1);
  throw new DevproxyError('DEVPROXY_ERR_SETUP_FAILED', `setup step ${index}/${total} \`${command}\` ${how} after ${seconds} s${cause.length > 0 ? `:\n${cause.map((l) => `  ${l}`).join('\n')}` : ''}`, {
    hint: `fix it, then run \`devproxy setup -C ${opts.worktree}\` to retry (full output: ${opts.logFile})`,
  });
}

/**
 * Files under `root` matching `pattern` (`*` and `?` within one segment, `**` for any folders),
 * relative, sorted. A pattern naming a folder matches every file in it.
 */
export async function matchFiles(root: string, pattern: string): Promise<string[]> {
  const segments = pattern.replace(/\\/g, '/').split('/').filter((s) => s !== '' && s !== '.');
  const found = new Set<string>();
  const walk = async (dir: string, rel: string, rest: string[]): Promise<void> => {
    if (rest.length === 0) {
      const info = await lstat(dir).catch(() => undefined);
      if (info?.isFile() || info?.isSymbolicLink()) found.add(rel);
      else if (info?.isDirectory()) for (const entry of await readdir(dir)) await walk(join(dir, entry), `${rel}/${entry}`, []);
      return;
    }
    const [head, ...tail] = rest as [string, ...string[]];
    if (head === '**') {
      await walk(dir, rel, tail);
      for (const entry of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
        if (entry.isDirectory() && !SKIPPED_DIRS.has(entry.name)) await walk(join(dir, entry.name), rel ? `${rel}/${entry.name}` : entry.name, rest);
      }
      return;
    }
    if (!/[*?]/.test(head)) {
      await walk(join(dir, head), rel ? `${rel}/${head}` : head, tail);
      return;
    }
    const re = segmentRegExp(head);
    for (const entry of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
      if (re.test(entry.name)) await walk(join(dir, entry.name), rel ? `${rel}/${entry.name}` : entry.name, tail);
    }
  };
  await walk(root, '', segments);
  return [...found].sort();
}

function segmentRegExp(segment: string): RegExp {
  const body = segment.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '[^/]*').replace(/\?/g, '[^/]');
  // Like a shell: `*` does not match a leading dot unless the pattern starts with one.
  return new RegExp(segment.startsWith('.') ? `^${body}$` : `^(?!\\.)${body}$`);
}

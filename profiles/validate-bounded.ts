import { Worker } from 'node:worker_threads';
import { builtScriptUrl } from '../built-script.js';
import { fileProblem } from './bounded-read.js';
import type { Diagnostic, ProjectConfig } from './schema.js';
import { validateConfig, type ConfigValidation } from './validate-config.js';
import { validateProfile, type ProfileValidation } from './validate-profile.js';

/**
 * Files up to this size (bytes) are validated on the calling thread: a few milliseconds on an
 * idle machine. Larger ones go to a worker thread, so that the proxy keeps routing while they
 * parse (YAML parsing is linear but slow: ~0.2 s for 5,000 keys on a loaded 2-core machine).
 */
export const INLINE_PARSE_MAX_BYTES = 8 * 1024;
/**
 * Most lines plus flow-collection commas a devproxy file may hold, counted before parsing. A
 * real file has a few hundred; the cap bounds the parse of a hostile one.
 */
export const MAX_YAML_ENTRIES = 20_000;
/** A worker parse that takes longer than this is stopped and the file reported. */
const PARSE_TIMEOUT_MS = 15_000;
/** Heap of the parse worker (MiB): a hostile file fails the parse instead of growing the daemon. */
const WORKER_HEAP_MB = 96;
/** Diagnostics kept per file: a file of 20,000 unknown keys must not make a 20,000-line status. */
const MAX_DIAGNOSTICS = 20;

type Job = { kind: 'config'; text: string; file: string } | { kind: 'profile'; text: string; file: string; config: ProjectConfig };
type Result<J extends Job> = J extends { kind: 'config' } ? ConfigValidation : ProfileValidation;

/** One worker at a time: several hostile files at once cost one worker's memory, not several. */
let queue: Promise<unknown> = Promise.resolve();

/**
 * Validates a devproxy file within bounds: too many entries is refused before parsing, a large
 * file is parsed in a short-lived worker thread (none stays when idle) with a capped heap and a
 * time limit, and at most {@link MAX_DIAGNOSTICS} errors and warnings are kept.
 */
export async function validateBounded<J extends Job>(job: J): Promise<Result<J>> {
  const entries = countEntries(job.text);
  if (entries > MAX_YAML_ENTRIES) {
    return { errors: [fileProblem(job.file, `the file has ${entries} lines and list items; devproxy reads at most ${MAX_YAML_ENTRIES}`, 'shorten it: a devproxy file needs a few hundred lines at most')], warnings: [] } as unknown as Result<J>;
  }
  if (Buffer.byteLength(job.text) <= INLINE_PARSE_MAX_BYTES) return capped(validateInline(job)) as Result<J>;
  const run = queue.then(() => validateInWorker(job));
  queue = run.catch(() => undefined);
  return capped(await run) as Result<J>;
}

function validateInline(job: Job): ConfigValidation | ProfileValidation {
  return job.kind === 'config' ? validateConfig(job.text, job.file) : validateProfile(job.text, job.file, job.config);
}

function validateInWorker(job: Job): Promise<ConfigValidation | ProfileValidation> {
  return new Promise((resolve) => {
    const worker = new Worker(builtScriptUrl('profiles/validate-worker.js'), { workerData: job, resourceLimits: { maxOldGenerationSizeMb: WORKER_HEAP_MB } });
    let settled = false;
    const finish = (result: ConfigValidation | ProfileValidation): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      void worker.terminate();
      resolve(result);
    };
    const failed = (message: string): ConfigValidation => ({ errors: [fileProblem(job.file, message, 'shorten the file: a devproxy file needs only a few KiB (see the README for the format)')], warnings: [] });
    const timer = setTimeout(() => finish(failed(`the file took more than ${PARSE_TIMEOUT_MS / 1000} s to parse`)), PARSE_TIMEOUT_MS);
    worker.once('message', (result: ConfigValidation | ProfileValidation) => finish(result));
    worker.once('error', (error: Error & { code?: string }) =>
      finish(failed(error.code === 'ERR_WORKER_OUT_OF_MEMORY' ? `parsing the file needed more than ${WORKER_HEAP_MB} MiB` : `the file could not be parsed (${error.message})`)),
    );
    worker.once('exit', () => finish(failed('the file could not be parsed (the parser stopped)')));
  });
}

/** Lines plus commas: an upper bound on the mapping entries and list items YAML can make of the text. */
function countEntries(text: string): number {
  let count = 1;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 10 || c === 44) count++;
  }
  return count;
}

function capped<T extends { errors: Diagnostic[]; warnings: Diagnostic[] }>(result: T): T {
  return { ...result, errors: cap(result.errors), warnings: cap(result.warnings) };
}

function cap(diagnostics: Diagnostic[]): Diagnostic[] {
  if (diagnostics.length <= MAX_DIAGNOSTICS) return diagnostics;
  const first = diagnostics[0]!;
  return [...diagnostics.slice(0, MAX_DIAGNOSTICS), { ...fileProblem(first.file, `and ${diagnostics.length - MAX_DIAGNOSTICS} more problems like these`, first.hint), ...(first.severity ? { severity: first.severity } : {}) }];
}

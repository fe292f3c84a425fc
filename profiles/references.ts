import { isAbsolute, resolve } from 'node:path';
import { DevproxyError } from '../errors.js';
import { readSmallFileSync } from './bounded-read.js';

/** `${env:NAME}` or `${file:path}` inside a config value. */
const REFERENCE = /\$\{([a-z]+):([^}]*)\}/g;
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;
/**
 * Largest file a `${file:}` reference may name (bytes). A secret (a key, a connection string, a
 * token) is a few hundred bytes; 64 KiB leaves room for a long SAS or JWT while a branch that
 * names /dev/zero or a 1 GB file costs the daemon one refused read, not its memory.
 */
export const MAX_SECRET_FILE_BYTES = 64 * 1024;

/** One reference found in a value. */
export interface Reference {
  kind: 'env' | 'file';
  target: string;
}

/**
 * The references in a value, or a message saying what is wrong with one. Pure: config
 * validation uses it to reject `${enV:X}` or `${env:}` with a line number, long before use.
 */
export function parseReferences(value: string): { references: Reference[]; problem?: string } {
  const references: Reference[] = [];
  for (const match of value.matchAll(REFERENCE)) {
    const [whole, kind, target] = match as unknown as [string, string, string];
    if (kind !== 'env' && kind !== 'file') return { references, problem: `${whole} is not a reference devproxy knows: use \${env:NAME} or \${file:path}` };
    if (kind === 'env' && !ENV_NAME.test(target)) return { references, problem: `${whole} does not name an environment variable` };
    if (kind === 'file' && target.trim() === '') return { references, problem: `${whole} does not name a file` };
    references.push({ kind, target });
  }
  return { references };
}

/** True when the value holds a reference, i.e. it may be a secret and is never printed resolved. */
export function hasReference(value: string): boolean {
  return parseReferences(value).references.length > 0;
}

/**
 * Replaces references by their values: environment variables from `env`, files (relative to
 * `baseDir`, or absolute) read whole with one trailing newline dropped. An unset variable, or a
 * file that is missing, unreadable, not a regular file or over {@link MAX_SECRET_FILE_BYTES}, is
 * a DevproxyError naming it — never an empty string sent upstream.
 */
export function resolveReferences(value: string, context: { env: NodeJS.ProcessEnv; baseDir: string; what: string }): string {
  return value.replace(REFERENCE, (_whole, kind: string, target: string) => {
    if (kind === 'env') {
      const resolved = context.env[target];
      if (resolved === undefined || resolved === '') {
        throw new DevproxyError('DEVPROXY_ERR_ENV_UNSET', `${context.what} needs the environment variable ${target}, which is not set`, { hint: `export ${target}=… in the shell that starts devproxy (then \`devproxy proxy stop && devproxy proxy start\`), or change the reference in devproxy.yaml` });
      }
      return resolved;
    }
    const path = isAbsolute(target) ? target : resolve(context.baseDir, target);
    // Synchronous, as resolution is, but bounded (stat, non-blocking open, fstat, capped read):
    // a FIFO or a device a branch names cannot stall the event loop or fill the memory.
    const read = readSmallFileSync(path, MAX_SECRET_FILE_BYTES);
    if (read.problem === undefined) return read.text.replace(/\r?\n$/, '');
    const named = path === target ? `\${file:${target}}` : `\${file:${target}} (${path})`;
    throw new DevproxyError('DEVPROXY_ERR_ENV_UNSET', `${context.what} reads ${named}, which ${read.problem}`, {
      hint: `point the \${file:…} reference in devproxy.yaml at a readable regular file of at most ${MAX_SECRET_FILE_BYTES / 1024} KiB (create it if it is missing)`,
    });
  });
}

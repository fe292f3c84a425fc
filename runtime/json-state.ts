/**
 * Small JSON state files under $DEVPROXY_HOME (ports.json, processes.json): read tolerantly
 * (a missing or torn file is an empty state, never a crash) and written atomically.
 */
import { readFile } from 'node:fs/promises';
import { writeFileAtomic } from '../atomic-write.js';
import { PRIVATE_FILE_MODE } from '../private-files.js';

/** Reads a JSON object file; `fallback` when it is missing or not valid JSON. */
export async function readJsonState<T>(path: string, fallback: T): Promise<T> {
  try {
    const parsed: unknown = JSON.parse(await readFile(path, 'utf8'));
    return parsed !== null && typeof parsed === 'object' ? (parsed as T) : fallback;
  } catch {
    return fallback;
  }
}

/** Writes a JSON file atomically (temp file + rename), pretty-printed for people who look. */
export async function writeJsonState(path: string, value: unknown): Promise<void> {
  await writeFileAtomic(path, `${JSON.stringify(value, null, 2)}\n`, { mode: PRIVATE_FILE_MODE });
}

/**
 * Tools the integration tests drive that a fresh machine lacks (Debian's chromium, certutil,
 * testssl.sh): installed by the idempotent scripts of test/setup/, and an NSS db for Chromium.
 */
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
const SETUP_DIR = join(import.meta.dirname, '..', 'setup');
/** An apt-get install on a fresh machine may take minutes. */
const INSTALL_TIMEOUT_MS = 600_000;

/**
 * Runs `test/setup/<script>` (installs what is missing, as root). Resolves with the reason the
 * tool is unavailable (the test skips with it), or undefined when it is there.
 */
export async function ensureTool(script: string, what: string): Promise<string | undefined> {
  try {
    await run('sh', [join(SETUP_DIR, script)], { timeout: INSTALL_TIMEOUT_MS });
    return undefined;
  } catch (error) {
    return `${what} not available: ${String((error as { stderr?: string }).stderr ?? error)}`;
  }
}

/** A throwaway HOME whose NSS db trusts only `caPath` (what `devproxy trust` does for Chromium); the caller removes it. */
export async function nssHomeTrusting(caPath: string): Promise<string> {
  const home = await mkdtemp(join(tmpdir(), 'devproxy-chromium-home-'));
  const db = join(home, '.pki', 'nssdb');
  await mkdir(db, { recursive: true });
  await run('certutil', ['-N', '-d', `sql:${db}`, '--empty-password']);
  await run('certutil', ['-A', '-n', 'devproxy', '-t', 'C,,', '-i', caPath, '-d', `sql:${db}`]);
  return home;
}

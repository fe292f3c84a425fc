import { execFile } from 'node:child_process';
import { chmod, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { loadConfig, loadProfile } from '../../profiles/files.js';
import { validateConfig } from '../../profiles/validate-config.js';
import { tally } from './tally.js';
import { letUnprivilegedReachProject, UNPRIVILEGED } from '../helpers/unprivileged.js';

/**
 * Every file devproxy writes is written atomically (a reader sees the old or the new file,
 * never half of one), and unreadable files become located diagnostics, never crashes.
 */
const atomic = tally('atomic-writes');
const unreadable = tally('unreadable-files');

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
/** The product's code; bench/, demo/ and test/ write fixtures and reports, not user state. */
const PRODUCT_DIRS = ['profiles', 'router', 'proxy', 'cli', 'certs', 'daemon', 'workspace', 'worktrees', 'runtime', 'environment'];
const WRITE_CALL = /\b(writeFile|writeFileSync|appendFile|appendFileSync|createWriteStream|copyFile|copyFileSync|truncate)\s*\(|\bopen\([^)]*['"](w|a|wx|w\+|a\+)['"]/;

/**
 * Writes that are not `writeFileAtomic`, each with the reason it is safe. Anything else found
 * fails the test: route it through `writeFileAtomic` or add it here with a reason.
 */
const ALLOWED: Array<{ file: string; pattern: RegExp; why: string }> = [
  { file: 'atomic-write.ts', pattern: /open\(temp, 'wx'|handle\.writeFile|copyFile\(content\.copyOf, temp/, why: 'the atomic writes themselves (temp file, then rename or link)' },
  { file: 'workspace/home.ts', pattern: /open\(path, 'wx', PRIVATE_FILE_MODE\)|handle\.writeFile\(String\(process\.pid\)\)/, why: 'lock file: created exclusively, only its existence and age are read' },
  { file: 'environment/hosts-file.ts', pattern: /writeFile\(target, after\)/, why: 'fallback for a bind-mounted hosts file, which cannot be renamed over (EBUSY/EXDEV)' },
  { file: 'certs/trust.ts', pattern: /copyFile\(o\.caPath, dest\)/, why: 'installs the CA into an OS trust folder, read by OS tools after the command' },
];

async function sourceFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (entry.isFile() && entry.name.endsWith('.ts')) out.push(join(entry.parentPath, entry.name));
  }
  return out;
}

describe('every file devproxy writes is written atomically', () => {
  it('no write call in the product code bypasses writeFileAtomic without a stated reason', async () => {
    const files = [join(ROOT, 'atomic-write.ts'), ...(await Promise.all(PRODUCT_DIRS.map((d) => sourceFiles(join(ROOT, d)).catch(() => [])))).flat()];
    const offenders: string[] = [];
    for (const file of files) {
      const rel = relative(ROOT, file);
      const lines = (await readFile(file, 'utf8')).split('\n');
      lines.forEach((line, i) => {
        if (/^\s*(\/\/|\*|import )/.test(line) || !WRITE_CALL.test(line)) return;
        atomic.checkSync(() => {
          const allowed = ALLOWED.some((a) => a.file === rel && a.pattern.test(line));
          if (!allowed) offenders.push(`${rel}:${i + 1}: ${line.trim()}`);
          expect(allowed, `${rel}:${i + 1} writes without writeFileAtomic: ${line.trim()}`).toBe(true);
        });
      });
    }
    expect(offenders).toEqual([]);
  });
});

describe('unreadable files become located diagnostics', () => {
  const CONFIG = validateConfig('name: contoso\nservices:\n  api: { local: { port: 3000 } }\nprofiles:\n  standard: [api]\ndefault: standard\n', '/r/devproxy.yaml').config!;

  it('a directory where the file should be', async () => {
    await unreadable.check(async () => {
      const dir = await mkdtemp(join(tmpdir(), 'devproxy-rel-files-'));
      try {
        const result = await loadConfig(dir);
        expect(result.errors[0]).toMatchObject({ file: dir, line: 0, message: 'a directory stands where the file should be' });
        const profile = await loadProfile(dir, CONFIG);
        expect(profile.errors[0]?.message).toBe('a directory stands where the file should be');
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    });
  });

  /*
   * Tests run as root in CI, and chmod 000 does not stop root from reading. The EACCES path is
   * exercised by loading the file in a child process running as `nobody` (uid 65534), with the
   * compiled loader; where the tests do not run as root the current user is already subject to
   * the mode bits and the child runs as that user.
   */
  it('permission denied (EACCES) names the file and the chmod fix', async () => {
    await unreadable.check(async () => {
      const dir = await mkdtemp(join(tmpdir(), 'devproxy-rel-eacces-'));
      try {
        await chmod(dir, 0o755);
        const file = join(dir, 'devproxy.yaml');
        await writeFile(file, 'name: contoso\n');
        await chmod(file, 0o000);
        const loader = join(ROOT, 'dist', 'profiles', 'files.js');
        const script = `import(${JSON.stringify(loader)}).then((m) => m.loadConfig(${JSON.stringify(file)})).then((r) => process.stdout.write(JSON.stringify(r.errors)))`;
        const restore = await letUnprivilegedReachProject();
        const stdout = await new Promise<string>((resolve, reject) => {
          execFile(process.execPath, ['--input-type=module', '-e', script], { ...UNPRIVILEGED, timeout: 10_000 }, (error, out, err) => (error ? reject(new Error(`${error.message}\n${err}`)) : resolve(out)));
        }).finally(restore);
        const errors = JSON.parse(stdout) as Array<{ file: string; line: number; message: string; hint: string }>;
        expect(errors).toEqual([{ file, line: 0, column: 0, message: 'permission denied reading the file', hint: `make it readable: chmod u+r ${file}` }]);
      } finally {
        await rm(dir, { recursive: true, force: true });
      }
    });
  });
});

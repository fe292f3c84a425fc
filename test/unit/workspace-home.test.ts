import { spawn, spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { homePaths } from '../../home-paths.js';
import { waitFor } from '../helpers/git-repo.js';
import { isAlive, readAdminIdentity, readDaemonInfo, writeAdminIdentity, writeDaemonInfo, type DaemonInfo } from '../../workspace/home.js';

let home: string;
beforeEach(async () => {
  home = await mkdtemp(`${tmpdir()}/devproxy-home-`);
});
afterEach(async () => {
  await rm(home, { recursive: true, force: true });
});

const TOKEN = 'a'.repeat(48);

/** A pid that no process has: a child that already exited. */
function deadPid(): number {
  return spawnSync(process.execPath, ['-e', '']).pid as number;
}

describe('admin.json', () => {
  it('gives back the identity written, and none when the file is missing, damaged or not an identity', async () => {
    expect(await readAdminIdentity(home)).toBeUndefined();
    await writeAdminIdentity(home, { port: 7081, token: TOKEN });
    expect(await readAdminIdentity(home)).toEqual({ port: 7081, token: TOKEN });
    for (const text of ['{"port": 70', 'null', '42', '"text"', '{"port": "7081", "token": "x"}', `{"port": 7081, "token": "${'A'.repeat(48)}"}`]) {
      await writeFile(homePaths(home).admin, text);
      expect(await readAdminIdentity(home), text).toBeUndefined();
    }
  });
});

describe('daemon.json', () => {
  const info = (pid: number): DaemonInfo => ({ pid, httpPort: 7080, httpsPort: null, adminPort: 7081, token: TOKEN, startedAt: '2026-11-30T18:00:00.000Z', version: 'test' });

  it('names a running daemon, and none when the file is missing, damaged or its pid is gone', async () => {
    expect(await readDaemonInfo(home)).toBeUndefined();
    await writeDaemonInfo(home, info(process.pid));
    expect(await readDaemonInfo(home)).toEqual(info(process.pid));
    await writeDaemonInfo(home, info(deadPid()));
    expect(await readDaemonInfo(home)).toBeUndefined();
    for (const text of ['{"pid": ', 'null', '{}']) {
      await writeFile(homePaths(home).daemon, text);
      expect(await readDaemonInfo(home), text).toBeUndefined();
    }
  });

  it.runIf(process.platform === 'linux')('names no daemon whose process exited but is not reaped yet (a zombie)', async () => {
    // The shell starts a child, then becomes a `sleep` that never reaps it; the child exits only
    // once its parent is that `sleep` (a child exiting before the exec could be reaped by the shell).
    const parent = spawn('sh', ['-c', '(while [ "$(cat /proc/$$/comm)" != sleep ]; do sleep 0.01; done) & echo $!; exec sleep 30'], { stdio: ['ignore', 'pipe', 'ignore'] });
    try {
      const zombie = Number(await new Promise<string>((resolve) => parent.stdout.once('data', (chunk: Buffer) => resolve(chunk.toString()))));
      // Asserted on a zombie, not on a process still exiting.
      await waitFor(async () => ((await readFile(`/proc/${zombie}/stat`, 'latin1')).match(/\) (\S)/)?.[1] === 'Z' ? true : undefined), 10_000, 'the child to turn zombie');
      expect(isAlive(zombie)).toBe(false);
      expect(isAlive(parent.pid!)).toBe(true);
      await writeDaemonInfo(home, info(zombie));
      expect(await readDaemonInfo(home)).toBeUndefined();
    } finally {
      parent.kill('SIGKILL');
    }
  });
});

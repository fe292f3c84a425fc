import { spawnSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { homePaths } from '../../home-paths.js';
import { readAdminIdentity, readDaemonInfo, writeAdminIdentity, writeDaemonInfo, type DaemonInfo } from '../../workspace/home.js';

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
});

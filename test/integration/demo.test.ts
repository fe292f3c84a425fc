import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const DEMO = fileURLToPath(new URL('../../dist/demo/demo.js', import.meta.url));

describe('npm run demo', () => {
  it('shows a remote route flip to local in one worktree and leaves the other alone', async () => {
    const { stdout } = await promisify(execFile)(process.execPath, [DEMO], { timeout: 60_000 });
    const remoteFirst = stdout.indexOf('x-devproxy-route: remote  {"servedBy":"Azure DEV (stand-in)"');
    const localAfter = stdout.indexOf('x-devproxy-route: local  {"servedBy":"local api"');
    expect(remoteFirst).toBeGreaterThan(0);
    expect(localAfter).toBeGreaterThan(remoteFirst);
    expect(stdout).toMatch(/…while the other worktree is untouched:\s+x-devproxy-route: remote/);
    expect(stdout).toMatch(/API_URL=http:\/\/api\.hierarchy-filters\.localhost:\d+/);
    expect(stdout).toContain('Demo finished: daemon stopped, stand-ins closed, temp files removed.');
  }, 90_000); // the demo itself may take its execFile timeout on a busy machine
});

import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { trust } from '../../cli/commands/trust.js';
import { homePaths } from '../../home-paths.js';

// Only --print is exercised here: install/uninstall would change this machine's trust stores
// (they are covered through certs/trust.ts with a temp root and in https-trust.test.ts).
let home: string;
beforeEach(async () => {
  home = await mkdtemp(join(tmpdir(), 'devproxy-trust-cmd-'));
});
afterEach(async () => {
  await rm(home, { recursive: true, force: true });
});

describe('devproxy trust --print', () => {
  it('creates the CA on first use and shows its path and the NODE_EXTRA_CA_CERTS line', async () => {
    const { caCert: certPath } = homePaths(home);
    const first = await trust({ home, print: true });
    expect(first).toBe(`devproxy CA: ${certPath} (new)\n\nNode apps trust it with:\n  NODE_EXTRA_CA_CERTS=${certPath}`);
    expect(await readFile(certPath, 'utf8')).toMatch(/^-----BEGIN CERTIFICATE-----/);
    const second = JSON.parse(await trust({ home, print: true, json: true })) as Record<string, unknown>;
    expect(second).toEqual({ caPath: certPath, created: false, nodeExtraCaCerts: `NODE_EXTRA_CA_CERTS=${certPath}`, steps: [] });
  });

  it('refuses a corrupted CA with the regenerate hint and does not replace it', async () => {
    await trust({ home, print: true });
    await writeFile(homePaths(home).caCert, 'garbage');
    await expect(trust({ home, print: true })).rejects.toMatchObject({
      code: 'DEVPROXY_ERR_CA_CORRUPT',
      hint: expect.stringContaining('devproxy trust --regenerate'),
    });
    expect(await readFile(homePaths(home).caCert, 'utf8')).toBe('garbage');
  });
});

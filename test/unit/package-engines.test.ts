import { readFileSync } from 'node:fs';
import semver from 'semver';
import { describe, expect, it } from 'vitest';

interface LockedPackage {
  dev?: boolean;
  engines?: { node?: string };
}

const manifest = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { engines: { node: string } };
const lock = JSON.parse(readFileSync(new URL('../../package-lock.json', import.meta.url), 'utf8')) as { packages: Record<string, LockedPackage> };

describe('the Node versions devproxy declares', () => {
  it('every runtime dependency accepts the oldest Node that package.json admits (regression: >=20.11 while undici needs >=20.18.1)', () => {
    const oldest = semver.minVersion(manifest.engines.node)!.version;
    const refusing = Object.entries(lock.packages)
      .filter(([path, pkg]) => path !== '' && pkg.dev !== true && pkg.engines?.node !== undefined)
      .filter(([, pkg]) => !semver.satisfies(oldest, pkg.engines!.node!))
      .map(([path, pkg]) => `${path.replace(/^.*node_modules\//, '')} needs node ${pkg.engines!.node}`);
    expect(refusing, `package.json says node ${manifest.engines.node}`).toEqual([]);
  });

  it('the README states the same oldest Node', () => {
    const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
    expect(readme).toContain(`Node.js ≥ ${semver.minVersion(manifest.engines.node)!.version.replace(/\.0$/, '')}`);
  });
});

import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { dockerConnectionOptions } from '../../runtime/docker-engine-api.js';
import { resolveDockerHost } from '../../runtime/docker-observer.js';

let dir: string;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'devproxy-docker-host-'));
});

afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('resolveDockerHost', () => {
  it('keeps an explicit DOCKER_HOST', () => {
    expect(resolveDockerHost('tcp://10.0.0.5:2376', { home: dir, systemSocket: join(dir, 'none.sock') })).toBe('tcp://10.0.0.5:2376');
  });

  it('prefers the system socket when it exists', async () => {
    const system = join(dir, 'docker.sock');
    await writeFile(system, '');
    await mkdir(join(dir, '.docker', 'run'), { recursive: true });
    await writeFile(join(dir, '.docker', 'run', 'docker.sock'), '');
    expect(resolveDockerHost(undefined, { home: dir, systemSocket: system })).toBe(`unix://${system}`);
  });

  it('falls back to Docker Desktop\'s per-user socket when only that one exists', async () => {
    await mkdir(join(dir, '.docker', 'run'), { recursive: true });
    await writeFile(join(dir, '.docker', 'run', 'docker.sock'), '');
    expect(resolveDockerHost('', { home: dir, systemSocket: join(dir, 'none.sock') })).toBe(`unix://${join(dir, '.docker', 'run', 'docker.sock')}`);
  });

  it('names the system socket when neither exists (so the error says where it looked)', () => {
    expect(resolveDockerHost(undefined, { home: dir, systemSocket: '/nope/docker.sock' })).toBe('unix:///nope/docker.sock');
  });
});

describe('dockerConnectionOptions', () => {
  it.each([
    ['unix:///var/run/docker.sock', { socketPath: '/var/run/docker.sock' }],
    ['tcp://127.0.0.1:2375', { host: '127.0.0.1', port: 2375, protocol: 'http' }],
    ['tcp://docker.internal', { host: 'docker.internal', port: 2375, protocol: 'http' }],
  ])('%s', (host, expected) => {
    expect(dockerConnectionOptions(host)).toEqual(expected);
  });
});

import { describe, expect, it } from 'vitest';
import { daemonSpawnEnv, dropDaemonSpawnEnv } from '../../daemon-env.js';

describe('the background daemon environment', () => {
  it('adds the malloc setting for the daemon and takes exactly it out again, so what the daemon starts inherits the user environment', () => {
    const user = { PATH: '/usr/bin', HOME: '/home/dev' };
    const spawned = daemonSpawnEnv(user);
    expect(spawned.MALLOC_MMAP_THRESHOLD_).toBe('131072');
    expect(user).toEqual({ PATH: '/usr/bin', HOME: '/home/dev' });
    dropDaemonSpawnEnv(spawned);
    expect(spawned).toEqual(user);
  });

  it('keeps a setting the user made: neither overridden nor removed', () => {
    const user = { PATH: '/usr/bin', MALLOC_MMAP_THRESHOLD_: '65536' };
    const spawned = daemonSpawnEnv(user);
    expect(spawned).toEqual(user);
    dropDaemonSpawnEnv(spawned);
    expect(spawned.MALLOC_MMAP_THRESHOLD_).toBe('65536');
  });

  it('removes only the names it manages, whatever the marker lists', () => {
    const env = { PATH: '/usr/bin', DEVPROXY_DAEMON_ADDED_ENV: 'PATH,MALLOC_MMAP_THRESHOLD_', MALLOC_MMAP_THRESHOLD_: '131072' };
    dropDaemonSpawnEnv(env);
    expect(env).toEqual({ PATH: '/usr/bin' });
  });
});

/**
 * The environment of the background daemon's own process: settings for its C library that `proxy
 * start` adds, and that the daemon takes out again so the apps, set-up hooks and Compose it starts
 * inherit the user's environment, not devproxy's tuning.
 */

/**
 * glibc malloc settings of the background daemon, unless the user's environment sets them. Setting
 * the mmap threshold (to glibc's own initial 128 KiB) turns off its dynamic raising: once V8 freed
 * one large block (its optimizing compiler's work memory when undici's HTTP parser tiers up), glibc
 * would serve blocks up to 32 MiB from its arenas and keep ~10 MiB of them resident for good. 64 KiB
 * socket reads stay under the threshold, so the request path allocates as before. Ignored by other C
 * libraries.
 */
const DAEMON_MALLOC_ENV: Readonly<Record<string, string>> = { MALLOC_MMAP_THRESHOLD_: '131072' };
/** Names the variables devproxy added (comma-separated), so the daemon removes exactly those. */
const ADDED_ENV = 'DEVPROXY_DAEMON_ADDED_ENV';

/** `env` with the daemon's malloc settings that `env` does not set already, and what was added. */
export function daemonSpawnEnv(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const added = Object.keys(DAEMON_MALLOC_ENV).filter((name) => env[name] === undefined);
  if (added.length === 0) return env;
  return { ...env, ...Object.fromEntries(added.map((name) => [name, DAEMON_MALLOC_ENV[name]])), [ADDED_ENV]: added.join(',') };
}

/** Removes from `env` what {@link daemonSpawnEnv} added (glibc read it when the process started). */
export function dropDaemonSpawnEnv(env: NodeJS.ProcessEnv): void {
  for (const name of (env[ADDED_ENV] ?? '').split(',')) if (name in DAEMON_MALLOC_ENV) delete env[name];
  delete env[ADDED_ENV];
}

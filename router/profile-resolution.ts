import type { ProfileFile, ProjectConfig } from '../profiles/schema.js';
import type { WorktreeInput } from './types.js';

/**
 * The services that run locally in a worktree: the profile's list, plus the file's `local`
 * overrides, minus its `remote` ones; in the config's service order. A worktree without a
 * profile file uses the config's default profile.
 */
export function localServices(config: ProjectConfig, profile: ProfileFile | undefined): string[] {
  const listed = new Set(config.profiles.get(profile?.profile ?? config.defaultProfile) ?? []);
  for (const [service, mode] of profile?.services ?? []) {
    if (mode === 'local') listed.add(service);
    else listed.delete(service);
  }
  return [...config.services.keys()].filter((service) => listed.has(service));
}

/** The services that should run locally now: none while the worktree is down or its set-up pending, else its profile's. */
export function desiredLocalServices(input: Pick<WorktreeInput, 'down' | 'setupPending' | 'profile'> & { config: ProjectConfig }): string[] {
  return input.down || input.setupPending ? [] : localServices(input.config, input.profile);
}

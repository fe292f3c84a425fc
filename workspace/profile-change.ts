/**
 * A change of a worktree's live profile, as `devproxy use` and the dashboard make it: the next
 * profile file (validated before anything is written), the plan it leads to, and the write that
 * refuses to undo another command's change made in between.
 */
import { mkdir, readFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { acquireLock } from './home.js';
import { DevproxyError } from '../errors.js';
import { localServices } from '../router/profile-resolution.js';
import { planReconcile, type ReconcilePlan } from '../runtime/plan.js';
import { configPath, profilePath, writeProfile } from '../profiles/files.js';
import { editProfileText, type ProfileChange } from '../profiles/profile-edit.js';
import type { ProfileFile, ProjectConfig, RouteMode } from '../profiles/schema.js';
import { validateProfile } from '../profiles/validate-profile.js';
import { didYouMean } from '../profiles/yaml-source.js';

/** What a change asks for: a new profile (clears earlier overrides), overrides, or both. */
export interface ProfileChangeRequest {
  profile?: string;
  /** One-off per-service overrides, applied on top of the profile. */
  services?: ReadonlyArray<readonly [string, RouteMode]>;
}

/** The profile and overrides a change writes; every other key of the file stays. */
export type NextProfile = ProfileChange & { services: Map<string, RouteMode> };

/**
 * The profile file `request` leads to from `current` (the file's text is `seen`, null for none),
 * validated exactly as the daemon will read it; pure. A new profile clears earlier overrides;
 * overrides alone keep the profile. Throws a DevproxyError for an unknown profile or service.
 */
export function nextProfile(
  config: ProjectConfig,
  current: ProfileFile | undefined,
  request: ProfileChangeRequest,
  worktreePath: string,
  seen: string | null,
): { next: NextProfile; validated: ProfileFile } {
  const profileName = request.profile;
  if (profileName === undefined && !request.services?.length) {
    throw new DevproxyError('DEVPROXY_ERR_USAGE', 'name a profile or give --service <name>=local|remote', { hint: `profiles: ${[...config.profiles.keys()].join(', ')}` });
  }
  if (profileName !== undefined && !config.profiles.has(profileName)) {
    const suggestion = didYouMean(profileName, config.profiles.keys());
    throw new DevproxyError('DEVPROXY_ERR_UNKNOWN_PROFILE', `unknown profile "${profileName}"`, {
      hint: `${suggestion ? `did you mean "${suggestion}"? ` : ''}profiles in ${configPath(worktreePath)}: ${[...config.profiles.keys()].join(', ')}`,
    });
  }
  const services = new Map<string, RouteMode>(profileName === undefined ? current?.services : []);
  for (const [service, mode] of request.services ?? []) {
    if (!config.services.has(service)) {
      const suggestion = didYouMean(service, config.services.keys());
      throw new DevproxyError('DEVPROXY_ERR_UNKNOWN_SERVICE', `unknown service "${service}"`, { hint: `${suggestion ? `did you mean "${suggestion}"? ` : ''}services: ${[...config.services.keys()].join(', ')}` });
    }
    services.set(service, mode);
  }
  // Only `profile` and `services` change: `name`, `writes` and every other key of the file stay.
  const next: NextProfile = { profile: profileName ?? current?.profile ?? config.defaultProfile, services };
  // Validate exactly what will be written, so a change never leaves a file the daemon rejects.
  const check = validateProfile(editProfileText(seen, next), profilePath(worktreePath), config);
  if (check.errors[0] || !check.profile) {
    throw new DevproxyError('DEVPROXY_ERR_PROFILE_INVALID', check.errors[0]?.message ?? 'the profile would not validate', check.errors[0] ? { hint: check.errors[0].hint } : {});
  }
  return { next, validated: check.profile };
}

/** A route that flips with a change. */
export interface RouteChange {
  service: string;
  from: RouteMode;
  to: RouteMode;
}

/** What a change does before it is applied: instances to start/stop/keep and the routes that flip. */
export interface ProfileChangePlan extends ReconcilePlan {
  /** Services local after the change, in config order. */
  local: string[];
  routes: RouteChange[];
}

/**
 * The plan of going from `current` to `next`; `running` are the services with a local instance
 * now (from the daemon), else the current profile's local services are assumed running. Pure.
 */
export function planProfileChange(config: ProjectConfig, current: ProfileFile | undefined, next: ProfileFile, running?: readonly string[]): ProfileChangePlan {
  const before = localServices(config, current);
  const after = localServices(config, next);
  const routes = [...config.services.keys()]
    .filter((s) => before.includes(s) !== after.includes(s))
    .map((s): RouteChange => ({ service: s, from: before.includes(s) ? 'local' : 'remote', to: after.includes(s) ? 'local' : 'remote' }));
  return { ...planReconcile(after, running ?? before), local: after, routes };
}

/**
 * Writes the profile under a lock, unless another command rewrote it since `seen` (its text
 * then, null for none) was read: the caller lost a race, and says so instead of silently
 * undoing the other change.
 */
export async function writeProfileUnlessChanged(worktree: string, next: NextProfile, seen: string | null): Promise<string> {
  const path = profilePath(worktree);
  await mkdir(dirname(path), { recursive: true });
  const release = await acquireLock(`${path}.lock`);
  try {
    const now = await readFile(path, 'utf8').catch(() => null);
    if (now !== seen) {
      const current = /^profile:\s*(\S+)/m.exec(now ?? '')?.[1] ?? 'the default';
      throw new DevproxyError('DEVPROXY_ERR_PROFILE_CHANGED', `another command changed ${path} while this one ran (it is now ${current}); nothing was written`);
    }
    return await writeProfile(worktree, next);
  } finally {
    await release();
  }
}

/** The profile file's text now, null when there is none: what a later write compares against. */
export function readProfileText(worktree: string): Promise<string | null> {
  return readFile(profilePath(worktree), 'utf8').catch(() => null);
}

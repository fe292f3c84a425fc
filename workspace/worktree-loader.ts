import { readBoundedFile } from '../profiles/bounded-read.js';
import { configPath, loadConfig, loadProfile, profilePath } from '../profiles/files.js';
import type { Diagnostic, ProfileFile, ProjectConfig } from '../profiles/schema.js';
import type { WorktreeInput } from '../router/types.js';
import { listWorktrees, type GitWorktree } from './git-worktrees.js';

/** The last files of a worktree that validated; they stay in force while an edit is broken. */
export interface LastGood {
  config?: ProjectConfig;
  profile?: ProfileFile;
}

export interface LoadedWorktree extends LastGood {
  /** True when the worktree has no devproxy.yaml of its own and follows the main checkout's. */
  usesMainConfig: boolean;
  diagnostics: Diagnostic[];
}

/**
 * Reads a worktree's devproxy.yaml and profile file. A worktree without its own devproxy.yaml
 * (a branch from before devproxy) follows the main checkout's config. A file that fails
 * validation keeps the last good version in force and reports why.
 */
export async function loadWorktree(path: string, mainConfig: ProjectConfig | undefined, lastGood: LastGood): Promise<LoadedWorktree> {
  const diagnostics: Diagnostic[] = [];
  // The profile is read while the config loads: a flip waits for both.
  const profileRead = readBoundedFile(profilePath(path), path);
  const configResult = await loadConfig(configPath(path));
  let config: ProjectConfig | undefined;
  let usesMainConfig = false;
  if (configResult.config) {
    config = configResult.config;
  } else if (configResult.missing && mainConfig) {
    config = mainConfig;
    usesMainConfig = true;
  } else {
    config = lastGood.config;
    diagnostics.push(...configResult.errors);
  }
  diagnostics.push(...asWarnings(configResult.warnings));
  if (!config) return { usesMainConfig, diagnostics };

  const profileResult = await loadProfile(profilePath(path), config, path, profileRead);
  diagnostics.push(...profileResult.errors, ...asWarnings(profileResult.warnings));
  let profile = profileResult.profile;
  if (profileResult.errors.length > 0 && lastGood.profile && config.profiles.has(lastGood.profile.profile)) {
    profile = lastGood.profile;
  }
  return { config, ...(profile ? { profile } : {}), usesMainConfig, diagnostics };
}

function asWarnings(warnings: Diagnostic[]): Diagnostic[] {
  return warnings.map((w) => ({ ...w, severity: 'warning' as const }));
}

/**
 * A one-shot snapshot of every worktree of a repository as the router needs it, for commands
 * that run without the daemon (`status` fallback, `env`, `use --worktree`).
 */
export async function loadRepoInputs(main: string): Promise<WorktreeInput[]> {
  const inputs: WorktreeInput[] = [];
  let mainConfig: ProjectConfig | undefined;
  for (const git of await listWorktrees(main)) {
    const loaded = await loadWorktree(git.path, git.isMain ? undefined : mainConfig, {});
    if (git.isMain) mainConfig = loaded.config;
    inputs.push(worktreeInput(main, git, loaded, loaded.diagnostics, mainConfig));
  }
  return inputs;
}

/** The router's view of one worktree: where it is, its last good files and their problems. */
export function worktreeInput(repo: string, git: GitWorktree, files: LastGood, diagnostics: Diagnostic[], mainConfig: ProjectConfig | undefined): WorktreeInput {
  return {
    path: git.path,
    repo,
    ...(git.branch ? { branch: git.branch } : {}),
    isMain: git.isMain,
    ...(git.setupPending ? { setupPending: true } : {}),
    ...(files.config ? { config: files.config } : {}),
    ...(files.profile ? { profile: files.profile } : {}),
    diagnostics,
    ...(mainConfig ? { projectName: mainConfig.name } : {}),
  };
}

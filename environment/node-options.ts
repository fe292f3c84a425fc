// The preload is loaded by URL, never imported; this type-only import keeps it in the
// compiled program (tsconfig's `include` does not list environment/).
import type {} from './localhost-preload.js';
import { buildWorktreeEnvironment, resolveEnvironment, type EnvironmentInputs, type ResolveContext } from './worktree-env.js';

/** `file://…/dist/environment/localhost-preload.js`: a URL, so spaces and Windows drives need no quoting in NODE_OPTIONS. */
export function localhostPreloadUrl(): string {
  return new URL('./localhost-preload.js', import.meta.url).href;
}

/** NODE_OPTIONS with the localhost preload appended to what the user already has (once). */
export function nodeOptionsWithPreload(existing: string | undefined, preloadUrl = localhostPreloadUrl()): string {
  const flag = `--import ${preloadUrl}`;
  const current = (existing ?? '').trim();
  if (current.includes(flag)) return current;
  return current === '' ? flag : `${current} ${flag}`;
}

/**
 * The environment of a process started for a worktree (`devproxy run`, a `command` service):
 * the resolved worktree variables plus NODE_OPTIONS loading the localhost preload, appended to
 * `context.env.NODE_OPTIONS`. Merge it over the parent environment. `preloadUrl` defaults to the
 * compiled preload next to this module (code run from its .ts sources must pass dist's).
 */
export function processEnvironment(inputs: EnvironmentInputs, context: ResolveContext, preloadUrl = localhostPreloadUrl()): Record<string, string> {
  return {
    ...resolveEnvironment(buildWorktreeEnvironment(inputs), context),
    NODE_OPTIONS: nodeOptionsWithPreload(context.env.NODE_OPTIONS, preloadUrl),
  };
}

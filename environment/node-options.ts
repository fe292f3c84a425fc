
/** `file://…/dist/environment/localhost-preload.js`: a URL, so spaces and Windows drives need no quoting in NODE_OPTIONS. */
export function localhostPreloadUrl(): string {
  // Run from the TypeScript sources (the test suite), the compiled preload lives in dist/.
  const relative = import.meta.url.endsWith('.ts') ? '../dist/environment/localhost-preload.js' : './localhost-preload.js';
  return new URL(relative, import.meta.url).href;
}

/** NODE_OPTIONS with the localhost preload appended to what the user already has (once). */
export function nodeOptionsWithPreload(existing: string | undefined, preloadUrl = localhostPreloadUrl()): string {
  const flag = `--import ${preloadUrl}`;
  const current = (existing ?? '').trim();
  if (current.includes(flag)) return current;
  return current === '' ? flag : `${current} ${flag}`;
}

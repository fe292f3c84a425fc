import { builtScriptUrl } from '../built-script.js';

/** `file://…/dist/environment/localhost-preload.js`: a URL, so spaces and Windows drives need no quoting in NODE_OPTIONS. */
export function localhostPreloadUrl(): string {
  return builtScriptUrl('environment/localhost-preload.js').href;
}

/** NODE_OPTIONS with the localhost preload appended to what the user already has (once). */
export function nodeOptionsWithPreload(existing: string | undefined, preloadUrl = localhostPreloadUrl()): string {
  const flag = `--import ${preloadUrl}`;
  const current = (existing ?? '').trim();
  if (current.includes(flag)) return current;
  return current === '' ? flag : `${current} ${flag}`;
}

/**
 * Where devproxy's own built scripts are: the preload it hands to Node apps and its worker
 * threads' entries must be JavaScript, also while devproxy itself runs from its TypeScript
 * sources (the test suite, whose set-up emits dist/ first).
 */

/**
 * The URL of the built script at `path` (relative to the package root, as in the sources:
 * `certs/mint-worker.js`): beside this module in dist/ when devproxy runs built, in dist/ under
 * the root when it runs from the sources.
 */
export function builtScriptUrl(path: string): URL {
  return new URL(import.meta.url.endsWith('.ts') ? `./dist/${path}` : `./${path}`, import.meta.url);
}

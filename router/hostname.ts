/** The top-level domain every stable hostname lives under; browsers resolve it to loopback. */
export const LOCAL_TLD = 'localhost';

const MAX_LABEL_LENGTH = 63;

/**
 * A DNS-safe label from a branch or folder name: the last path segment, lower-cased, runs of
 * anything but [a-z0-9] folded to one hyphen, trimmed of hyphens, at most 63 characters.
 * Returns '' when nothing usable is left.
 */
export function toSlug(name: string): string {
  const lastSegment = name.split('/').filter(Boolean).pop() ?? '';
  return lastSegment
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '')
    .slice(0, MAX_LABEL_LENGTH)
    .replace(/-+$/, '');
}

/**
 * The slug that names a worktree in hostnames: the profile file's `name:` if set; the project
 * name for the main checkout; else the last segment of its branch; else its folder name.
 */
export function worktreeSlug(w: { isMain: boolean; branch?: string; path: string; nameOverride?: string; projectName?: string }): string {
  if (w.nameOverride) return w.nameOverride;
  if (w.isMain && w.projectName) return w.projectName;
  const fromBranch = w.branch ? toSlug(w.branch) : '';
  return fromBranch || toSlug(w.path);
}

/** `<service>.<worktree>.localhost`, the table key of a route. */
export function serviceHost(service: string, worktree: string): string {
  return `${service}.${worktree}.${LOCAL_TLD}`;
}

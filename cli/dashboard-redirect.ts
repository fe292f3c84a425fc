/**
 * The file `devproxy dashboard` hands to the browser opener instead of the dashboard URL, as
 * Jupyter does: a command's arguments are readable by every local user (`ps`,
 * /proc/<pid>/cmdline) for as long as it runs, and a browser started by `xdg-open` keeps its URL
 * in its own arguments for its whole session. The file's path holds no secret; the file itself
 * (mode 0600, in a 0700 folder) redirects to the URL with the token in the fragment.
 */
import { writeFileAtomic } from '../atomic-write.js';
import { homePaths } from '../home-paths.js';
import { makePrivateDir, PRIVATE_FILE_MODE } from '../private-files.js';
import { escapeHtml } from '../proxy/error-pages.js';

/**
 * The redirect page to `url`: a meta refresh (works from file:// without script), a link for a
 * browser that refreshes nothing, and no referrer. Pure.
 */
export function dashboardRedirectHtml(url: string): string {
  const href = escapeHtml(url);
  return (
    `<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><meta name="referrer" content="no-referrer">` +
    `<meta http-equiv="refresh" content="0;url=${href}"><title>devproxy dashboard</title></head>\n` +
    `<body><p><a href="${href}">Open the devproxy dashboard</a></p></body></html>\n`
  );
}

/** Writes the redirect page to `url` in `home`'s `open/` folder (made 0700 even if it existed); returns its path. */
export async function writeDashboardRedirect(home: string, url: string): Promise<string> {
  const paths = homePaths(home);
  await makePrivateDir(paths.open);
  await writeFileAtomic(paths.dashboardRedirect, dashboardRedirectHtml(url), { mode: PRIVATE_FILE_MODE });
  return paths.dashboardRedirect;
}

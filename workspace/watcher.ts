import { lstat, readdir, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { CONFIG_FILE, PROFILE_FILE, STATE_DIR, configPath, profilePath } from '../profiles/files.js';
import type { Diagnostic } from '../profiles/schema.js';
import type { Logger } from '../logger.js';
import { updateRoutingTable, type RoutingBuild } from '../router/route-table.js';
import type { RouteProblem, RoutingTable, WorktreeInput } from '../router/types.js';
import { gitCommonDir, readWorktreeList, type GitWorktree } from './git-worktrees.js';
import { isDevproxyError, type DevproxyError } from '../errors.js';
import { readDownWorktrees } from './down-state.js';
import { homePaths } from '../home-paths.js';
import { readRepos } from './home.js';
import { loadWorktree, worktreeInput, type LastGood } from './worktree-loader.js';
import { isWithin } from '../path-within.js';
import { dirApproach, dirState, watchDir, type DirApproach, type DirWatch } from './dir-watch.js';

/** Git writes several files per `git worktree add/remove`; one rescan after they settle is enough. */
const GIT_RESCAN_DEBOUNCE_MS = 50;
/**
 * While a directory cannot be watched (the inotify limit reached, a watch that failed), watching
 * it is tried again this often, and the files of its worktree are compared with what was loaded
 * (inode, size, mtime), so an edit still applies within about a second.
 */
const UNWATCHED_POLL_MS = 1000;
/**
 * Most moves of the watch on the way to a missing `$DEVPROXY_HOME` in one pass (one per folder
 * made meanwhile); a pass cut short by folders made and deleted without end goes on at the next
 * event of the folder it stopped at.
 */
const HOME_APPROACH_STEPS = 16;
/**
 * Entries of `<git common dir>/worktrees/<name>/` that change what devproxy routes: the branch,
 * the set-up lock (see SETUP_PENDING_LOCK) and the folder `git worktree move` points to.
 */
const GIT_ENTRY_FILES = new Set(['HEAD', 'locked', 'gitdir']);

/** What the local runtime tells the workspace (kept narrow so tests can pass a real one or none). */
export interface RuntimeView {
  /** Host ports of healthy local instances of one worktree (service → port). */
  healthyPorts(worktreePath: string): Map<string, number>;
  /** Local instances of one worktree that failed, with the reason shown on their route. */
  failures(worktreePath: string): Map<string, RouteProblem>;
}

export interface WorkspaceOptions {
  home: string;
  logger?: Logger;
  runtime?: RuntimeView;
  /** Called after every table swap with the worktrees whose files changed. */
  onChange?: (table: RoutingTable, changed: WorktreeInput[]) => void;
}

/**
 * The symbolic links on the way to a watched directory (`a → b → folder`), each as the folder
 * holding it and its name there, and a watch on each such folder, keyed by its path: a link
 * re-pointed leads elsewhere, and only a watch on its folder hears of it (the one on the
 * directory it led to does not). See {@link Workspace.watchChain}.
 */
interface LinkChain {
  links: DirApproach['links'];
  watches: Map<string, DirWatch>;
}

interface TrackedWorktree {
  git: GitWorktree;
  repo: string;
  lastGood: LastGood;
  usesMainConfig: boolean;
  diagnostics: Diagnostic[];
  /** The worktree's folder: devproxy.yaml, and `.devproxy/` coming and going. */
  rootWatch?: DirWatch;
  /** `.devproxy/` while it exists: profile.yaml. */
  stateWatch?: DirWatch;
  /**
   * While `.devproxy` is a symbolic link: the folder its target is made and deleted in, and the
   * entry's name there (see {@link dirApproach}).
   */
  linkWatch?: DirWatch;
  link?: { dir: string; name: string };
  /**
   * While `.devproxy` is a chain of links (`.devproxy` → a → b → folder): the links after the
   * first ({@link DirApproach.links}), each folder holding one watched.
   */
  chain: LinkChain;
  /** Serialises the (re)starts of its watches, so two at once cannot leak one. */
  watching?: Promise<void>;
  /** Identity (inode, size, mtime) of the files last loaded while unwatched ('' while watched). */
  signature: string;
  /** Serialises reloads: a change during a reload triggers exactly one more. */
  reloading?: Promise<void>;
  dirty: boolean;
  /** A reload finished whose files no rebuild of {@link Workspace.reloadAndRebuild} has taken yet. */
  unbuilt: boolean;
  /** Its files were read once; until then it is not handed to the runtime. */
  loaded: boolean;
}

interface TrackedRepo {
  main: string;
  /** The shared `.git` directory, once found. */
  commonDir?: string;
  /** `<commonDir>` itself: git creates `worktrees/` with the first linked worktree and removes it with the last. */
  commonWatch?: DirWatch;
  /** `<commonDir>/worktrees/`: a worktree added or removed. */
  listWatch?: DirWatch;
  /** `<commonDir>/worktrees/<name>/` by name: HEAD, `locked`, `gitdir` (see GIT_ENTRY_FILES). */
  entryWatches: Map<string, DirWatch>;
  /** Directories reported created or deleted since the last (re)start of the watches: renewed. */
  stale: Set<string>;
  watching?: Promise<void>;
  rescanTimer?: NodeJS.Timeout;
  /** The last rescan queued; rescans of one repository run one after another. */
  rescanning?: Promise<void>;
  diagnostics: Diagnostic[];
}

/**
 * Owns the watchers: the registry (repos.json), each repository's git worktree list and each
 * worktree's devproxy.yaml and profile file. It reloads only what changed, keeps the last good
 * files of a worktree when an edit is broken, and swaps the routing table in one assignment.
 * Directories are watched through the OS (see {@link watchDir}), never files: a watch on a file
 * follows its inode and misses every change after an editor's atomic replace, while a watch on
 * its folder sees the replacement itself, at once.
 */
export class Workspace {
  private table: RoutingTable = { routes: new Map(), worktrees: [], diagnostics: [] };
  /** The router's last build, before the workspace's own diagnostics join it: the next rebuild starts from it. */
  private built?: RoutingBuild;
  private readonly repos = new Map<string, TrackedRepo>();
  /** Why repos.json could not be read; the repositories already tracked stay meanwhile. */
  private registryDiagnostics: Diagnostic[] = [];
  private readonly worktrees = new Map<string, TrackedWorktree>();
  /** `$DEVPROXY_HOME`: repos.json and down.json. */
  private homeWatch?: DirWatch;
  /** While `$DEVPROXY_HOME` is missing (`rm -rf ~/.devproxy`): the folder it will be made in. */
  private homeApproach?: DirWatch;
  private homeApproachDir?: string;
  private homeWatching: Promise<void> = Promise.resolve();
  /** While `$DEVPROXY_HOME` is a symbolic link: that link and those after it (`home → a → b → folder`). */
  private readonly homeChain: LinkChain = { links: [], watches: new Map() };
  /** Directories that should be watched and cannot be, by path, with why (shown as diagnostics). */
  private readonly unwatched = new Map<string, Diagnostic>();
  private pollTimer?: NodeJS.Timeout;
  private syncing: Promise<void> = Promise.resolve();
  /** Worktrees tracked since the last rebuild: reported as changed so the runtime reconciles them. */
  private readonly fresh = new Set<string>();
  /** Worktrees `devproxy down` stopped (down.json): their services route remote. */
  private down = new Set<string>();
  private downSync: Promise<void> = Promise.resolve();
  private closed = false;
  private rebuildQueued = false;

  constructor(private readonly options: WorkspaceOptions) {}

  /** The current table; the proxy calls this on every request. */
  readonly getTable = (): RoutingTable => this.table;

  /** Loads every registered repository and starts watching. */
  async start(): Promise<void> {
    await this.watchHome();
    this.down = await readDownWorktrees(this.options.home);
    await this.syncRepos();
  }

  /** Re-reads everything from disk (the admin API's reload); a watch that failed is tried again. */
  async reload(): Promise<void> {
    await this.watchHome();
    await this.syncDown();
    await this.syncRepos();
    await Promise.all([...this.repos.values()].map((repo) => this.watchRepo(repo, true)));
    await Promise.all([...this.repos.keys()].map((repo) => this.rescanRepo(repo)));
    await Promise.all([...this.worktrees.values()].map((w) => this.watchWorktree(w).then(() => this.reloadWorktree(w))));
    this.rebuild();
  }

  /** Rebuilds the table from what is loaded (the runtime calls this when a port becomes healthy). */
  rebuild(changed: WorktreeInput[] = []): void {
    const inputs = this.inputs();
    if (this.fresh.size > 0) {
      // A worktree still being read (a rebuild for another cause can come while its watcher
      // starts) stays fresh: handed over unread, it would be reconciled on the default profile
      // and never again once its real profile arrived.
      const isLoaded = (path: string) => this.worktrees.get(path)?.loaded !== false;
      changed = [...changed, ...inputs.filter((i) => this.fresh.has(i.path) && isLoaded(i.path) && !changed.some((c) => c.path === i.path))];
      for (const path of [...this.fresh]) if (isLoaded(path)) this.fresh.delete(path);
    }
    // Only the worktrees whose input changed are built again (a flip rebuilds one of hundreds).
    this.built = updateRoutingTable(this.built, inputs);
    const workspaceDiagnostics = [...this.registryDiagnostics, ...[...this.repos.values()].flatMap((r) => r.diagnostics), ...this.unwatched.values()];
    this.table = { ...this.built.table, diagnostics: [...this.built.table.diagnostics, ...workspaceDiagnostics] };
    this.options.onChange?.(this.table, changed);
  }

  /**
   * Rebuilds once at the end of this event-loop turn, however many times it is asked meanwhile:
   * the runtime reports every instance change, and a hundred worktrees stopping at once must
   * not rebuild the table a hundred times in a row.
   */
  rebuildSoon(): void {
    if (this.rebuildQueued) return;
    this.rebuildQueued = true;
    setImmediate(() => {
      this.rebuildQueued = false;
      if (!this.closed) this.rebuild();
    });
  }

  /** The router inputs for the current files (also what the runtime reconciles). */
  inputs(): WorktreeInput[] {
    const inputs: WorktreeInput[] = [];
    for (const [path, w] of this.worktrees) inputs.push(this.inputOf(path, w));
    return inputs;
  }

  private inputOf(path: string, w: TrackedWorktree): WorktreeInput {
    const mainConfig = this.worktrees.get(w.repo)?.lastGood.config;
    const runtimePorts = this.options.runtime?.healthyPorts(path);
    const runtimeFailures = this.options.runtime?.failures(path);
    return {
      ...worktreeInput(w.repo, w.git, w.lastGood, w.diagnostics, mainConfig),
      ...(runtimePorts ? { runtimePorts } : {}),
      ...(runtimeFailures?.size ? { runtimeFailures } : {}),
      ...(this.down.has(path) ? { down: true } : {}),
    };
  }

  /** Re-reads down.json; the worktrees that went down or came up are reconciled. */
  private syncDown(): Promise<void> {
    this.downSync = this.downSync.then(async () => {
      if (this.closed) return;
      const next = await readDownWorktrees(this.options.home);
      const flipped = new Set([...next, ...this.down].filter((path) => next.has(path) !== this.down.has(path)));
      this.down = next;
      if (flipped.size > 0) this.rebuild(this.inputs().filter((i) => flipped.has(i.path)));
    });
    return this.downSync;
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.pollTimer);
    this.homeWatch?.close();
    this.homeApproach?.close();
    for (const watch of this.homeChain.watches.values()) watch.close();
    for (const repo of this.repos.values()) this.unwatchRepo(repo);
    for (const w of this.worktrees.values()) this.unwatchWorktree(w);
    this.repos.clear();
    this.worktrees.clear();
  }

  /** (Re)starts the watch of `$DEVPROXY_HOME`; `renew` when it may have been deleted and made again. */
  private watchHome(renew = false): Promise<void> {
    const { home, repos, down } = homePaths(this.options.home);
    const wanted = () => !this.closed;
    this.homeWatching = this.homeWatching.then(async () => {
      const watchItself = (renewIt: boolean) =>
        this.ensureWatch(this.homeWatch, home, wanted, (name) => {
          // Every write arrives (no throttling), so one read per event is never a stale one.
          if (name === undefined || join(home, name) === down) void this.syncDown();
          if (name === undefined || join(home, name) === repos) void this.syncRepos();
          // Its own name: the folder itself deleted (`rm -rf ~/.devproxy`), or an entry named alike.
          const path = this.homeWatch?.path;
          if (path !== undefined && name === basename(path)) void exists(join(path, name)).then((child) => child || this.homeRemade());
        }, { renew: renewIt });
      this.homeWatch = await watchItself(renew);
      // Missing: the folder it will be made in is watched until it is, then the home again (made
      // before that watch began, it sends no event). A folder on the way made meanwhile sends
      // none either (`mkdir -p` makes them all at once): the approach is looked for again after
      // each watch began, and moves down until it stands still.
      let approachDir: string | undefined;
      for (let step = 0; step < HOME_APPROACH_STEPS && !this.homeWatch && !this.unwatched.has(home); step++) {
        const approach = await dirApproach(home);
        if (!approach || approach.dir.path === approachDir) break;
        approachDir = approach.dir.path;
        this.homeApproachDir = approachDir;
        this.homeApproach = await this.ensureWatch(this.homeApproach, approachDir, wanted, (name) => {
          // The folder's own name: it was deleted too (`rm -rf` deletes the home first), so the
          // approach moves up to the folder that still stands.
          if (name === approach.name || name === basename(approach.dir.path)) this.homeRemade();
        });
        this.homeWatch = await watchItself(true);
      }
      if (this.homeWatch && this.homeApproachDir !== undefined) {
        this.homeApproach?.close();
        this.homeApproach = undefined;
        this.unwatched.delete(this.homeApproachDir);
        this.homeApproachDir = undefined;
      }
      // A home reached through symbolic links: the folder of each link is watched too (bounded by
      // dirApproach's hops), the first one's included, which nothing else watches.
      const approach = this.homeWatch && (await isLink(home)) ? await dirApproach(home) : undefined;
      const links = approach ? [{ dir: dirname(home), name: basename(home) }, ...approach.links] : [];
      await this.watchChain(this.homeChain, links, wanted, () => this.homeRemade(), { renew, shared: (dir) => dir === this.homeApproachDir });
      // A watch opened as close() ran is closed now: close is final.
      if (!wanted()) for (const watch of [this.homeWatch, this.homeApproach, ...this.homeChain.watches.values()]) watch?.close();
    });
    return this.homeWatching;
  }

  /** `$DEVPROXY_HOME` deleted, or made again: watched anew and its files read (missing, none). */
  private homeRemade(): void {
    void this.watchHome(true).then(() => Promise.all([this.syncDown(), this.syncRepos()]));
  }

  /**
   * Makes `chain` watch the folders of `links` (the links on the way to a directory, from
   * {@link dirApproach}): `onChange` runs when one of those links is made, re-pointed or deleted,
   * or a folder holding one is itself deleted. Watches of folders no longer on the way are closed,
   * and such a folder is no longer polled for unless `shared` says another watch needs it.
   */
  private async watchChain(chain: LinkChain, links: DirApproach['links'], wanted: () => boolean, onChange: () => void, options: { root?: string; renew?: boolean; shared?: (dir: string) => boolean }): Promise<void> {
    const before = chain.links;
    chain.links = links;
    const watches = new Map<string, DirWatch>();
    // A watch kept across a renewal keeps its first handler: `leads` reads the chain anew.
    for (const dir of new Set(links.map((link) => link.dir))) {
      const leads = (name: string) => chain.links.some((link) => link.dir === dir && link.name === name);
      const watch = await this.ensureWatch(chain.watches.get(dir), dir, wanted, onApproach(dir, leads, onChange), { root: options.root, renew: options.renew });
      if (watch) watches.set(dir, watch);
    }
    for (const [dir, watch] of chain.watches) if (watches.get(dir) !== watch) watch.close();
    for (const { dir } of before) if (!links.some((link) => link.dir === dir) && options.shared?.(dir) !== true) this.unwatched.delete(dir);
    chain.watches = watches;
  }

  /**
   * Makes `current` watch the directory standing at `path` now: kept while it is the same
   * directory, closed when it is gone (or no longer `wanted`), replaced when another stands there
   * or when `renew` says it may have been deleted and made again (its inode number can be reused,
   * and the old watch went deaf with the old directory). `root` lets a symbolic link lead to a
   * directory inside it (see {@link dirState}).
   */
  private async ensureWatch(current: DirWatch | undefined, path: string, wanted: () => boolean, onEvent: (name: string | undefined) => void, options: { root?: string; renew?: boolean } = {}): Promise<DirWatch | undefined> {
    const dir = await dirState(path, options.root);
    if (!options.renew && current?.open && dir && current.path === dir.path && current.ino === dir.ino && wanted()) return current;
    current?.close();
    if (dir && wanted()) {
      try {
        const watch = watchDir(dir, onEvent, (error) => this.watchFailed(path, error));
        this.unwatched.delete(path);
        return watch;
      } catch (error) {
        this.watchFailed(path, error as Error);
        return undefined;
      }
    }
    this.unwatched.delete(path);
    return undefined;
  }

  /** A directory that cannot be watched: named (once in the log), and polled until it can. */
  private watchFailed(path: string, error: Error): void {
    if (this.closed) return;
    const hint = isDevproxyError(error) ? error.hint : 'devproxy tries again every second and reads its files meanwhile; `devproxy proxy stop` and `proxy start` if it persists';
    if (!this.unwatched.has(path)) this.options.logger?.warn(`${error.message} — ${hint}`);
    this.unwatched.set(path, { file: path, line: 0, column: 0, message: error.message, hint });
    this.rebuildSoon();
    this.pollUnwatchedSoon();
  }

  private pollUnwatchedSoon(): void {
    if (this.pollTimer || this.closed || this.unwatched.size === 0) return;
    this.pollTimer = setTimeout(() => void this.pollUnwatched(), UNWATCHED_POLL_MS);
  }

  /** Tries the failed watches again, and reads what they should have reported. */
  private async pollUnwatched(): Promise<void> {
    const home = this.options.home;
    if (this.unwatched.has(home) || (this.homeApproachDir !== undefined && this.unwatched.has(this.homeApproachDir)) || this.homeChain.links.some((link) => this.unwatched.has(link.dir))) {
      await this.watchHome();
      await this.syncDown();
      await this.syncRepos();
    }
    for (const repo of [...this.repos.values()]) {
      const dir = repo.commonDir;
      if (dir === undefined || ![...this.unwatched.keys()].some((path) => isWithin(dir, path))) continue;
      await this.watchRepo(repo, true);
      await this.rescanRepo(repo.main);
      this.rebuild();
    }
    for (const w of [...this.worktrees.values()]) {
      if (!this.isUnwatched(w)) continue;
      await this.watchWorktree(w);
      await this.checkIdentity(w);
    }
    this.pollTimer = undefined;
    this.rebuildSoon();
    this.pollUnwatchedSoon();
  }

  private syncRepos(): Promise<void> {
    this.syncing = this.syncing.then(async () => {
      if (this.closed) return;
      let wanted: Set<string>;
      try {
        wanted = new Set(await readRepos(this.options.home));
        this.registryDiagnostics = [];
      } catch (error) {
        const { message, hint } = error as DevproxyError;
        this.registryDiagnostics = [{ file: homePaths(this.options.home).repos, line: 0, column: 0, message, hint }];
        this.options.logger?.warn(`${message} — ${hint}`);
        this.rebuild();
        return;
      }
      for (const repo of [...this.repos.keys()]) if (!wanted.has(repo)) await this.dropRepo(repo);
      await Promise.all([...wanted].filter((repo) => !this.repos.has(repo)).map((repo) => this.addRepo(repo)));
      this.rebuild();
    });
    return this.syncing;
  }

  private async addRepo(main: string): Promise<void> {
    const repo: TrackedRepo = { main, entryWatches: new Map(), stale: new Set(), diagnostics: [] };
    this.repos.set(main, repo);
    try {
      repo.commonDir = await gitCommonDir(main);
    } catch (error) {
      repo.diagnostics = [{ file: main, line: 0, column: 0, message: `cannot read the repository: ${(error as Error).message}`, hint: 'check that the folder still exists and is a git repository, or `devproxy init --unregister` it' }];
      return;
    }
    // Watching first, then reading: a worktree added in between is seen either way.
    await this.watchRepo(repo, true);
    await this.rescanRepo(main);
  }

  /**
   * (Re)starts the watches of a repository's git data: only the worktree list and each worktree's
   * entries matter, everything else in `.git` churns. `listChanged` also lists `worktrees/` again.
   */
  private watchRepo(repo: TrackedRepo, listChanged: boolean): Promise<void> {
    const wanted = () => !this.closed && this.repos.get(repo.main) === repo;
    const next = (repo.watching ?? Promise.resolve()).then(async () => {
      const commonDir = repo.commonDir;
      if (commonDir === undefined) return;
      const list = join(commonDir, 'worktrees');
      const renew = (path: string) => repo.stale.delete(path);
      repo.commonWatch = await this.ensureWatch(repo.commonWatch, commonDir, wanted, (name) => {
        if (name === 'worktrees') this.gitChanged(repo, list);
      });
      repo.listWatch = await this.ensureWatch(repo.listWatch, list, wanted, (name) => this.gitChanged(repo, name === undefined ? list : join(list, name)), { renew: renew(list) });
      if (!listChanged) return;
      const names = new Set(repo.listWatch ? await readdir(list).catch(() => []) : []);
      for (const [name, watch] of [...repo.entryWatches]) {
        if (names.has(name)) continue;
        watch.close();
        repo.entryWatches.delete(name);
        this.unwatched.delete(join(list, name));
      }
      for (const name of names) {
        const watch = await this.ensureWatch(repo.entryWatches.get(name), join(list, name), wanted, (file) => {
          if (file === undefined || GIT_ENTRY_FILES.has(file)) this.gitChanged(repo);
        }, { renew: renew(join(list, name)) });
        if (watch) repo.entryWatches.set(name, watch);
        else repo.entryWatches.delete(name);
      }
    }).finally(() => {
      // A watch opened as close() or the repository's removal ran is closed now: close is final.
      if (!wanted()) for (const watch of [repo.commonWatch, repo.listWatch, ...repo.entryWatches.values()]) watch?.close();
    });
    repo.watching = next;
    return next;
  }

  /** Rescans the repository once git is done; `created` is a directory that came or went there. */
  private gitChanged(repo: TrackedRepo, created?: string): void {
    if (created !== undefined) repo.stale.add(created);
    clearTimeout(repo.rescanTimer);
    repo.rescanTimer = setTimeout(() => {
      void this.watchRepo(repo, repo.stale.size > 0 || repo.listWatch === undefined)
        .then(() => this.rescanRepo(repo.main))
        .then(() => {
          if (!this.closed) this.rebuild();
        });
    }, GIT_RESCAN_DEBOUNCE_MS);
  }

  private unwatchRepo(repo: TrackedRepo): void {
    clearTimeout(repo.rescanTimer);
    repo.commonWatch?.close();
    repo.listWatch?.close();
    for (const watch of repo.entryWatches.values()) watch.close();
    const dir = repo.commonDir;
    if (dir !== undefined) for (const path of [...this.unwatched.keys()]) if (isWithin(dir, path)) this.unwatched.delete(path);
  }

  private async dropRepo(main: string): Promise<void> {
    const repo = this.repos.get(main);
    this.repos.delete(main);
    if (repo) this.unwatchRepo(repo);
    for (const [path, w] of [...this.worktrees]) {
      if (w.repo === main) await this.dropWorktree(path);
    }
  }

  /**
   * Re-reads the repository's worktree list. Rescans are serialised: two at once (a folder
   * deleted while git's own files change) could finish out of order, and a list read before a
   * deletion would track the deleted worktree again after the newer one dropped it, so its
   * services were reconciled and removed twice.
   */
  private rescanRepo(main: string): Promise<void> {
    const repo = this.repos.get(main);
    if (!repo) return Promise.resolve();
    const next = (repo.rescanning ?? Promise.resolve()).then(() => this.rescanRepoNow(main));
    // The chain goes on after a failed rescan; the caller still hears of the failure.
    repo.rescanning = next.catch(() => {});
    return next;
  }

  private async rescanRepoNow(main: string): Promise<void> {
    const repo = this.repos.get(main);
    if (!repo || this.closed) return;
    let listed: GitWorktree[];
    try {
      const list = await readWorktreeList(main);
      listed = list.worktrees;
      // Deleted with `rm -rf` instead of `git worktree remove`: unrouted, and the fix named.
      repo.diagnostics = list.gone.map((g) => ({
        file: g.path,
        line: 0,
        column: 0,
        message: `the worktree folder is gone (${g.reason}); devproxy no longer routes it`,
        hint: `run \`git worktree prune\` in ${main} to forget it, or \`git worktree add\` it again`,
      }));
    } catch (error) {
      repo.diagnostics = [{ file: main, line: 0, column: 0, message: `git worktree list failed: ${(error as Error).message.split('\n')[0]}`, hint: 'check that the repository still exists' }];
      return;
    }
    const seen = new Set(listed.map((g) => g.path));
    for (const [path, w] of [...this.worktrees]) {
      if (w.repo === main && !seen.has(path)) await this.dropWorktree(path);
    }
    // The main checkout first: other worktrees may follow its config.
    for (const git of listed) {
      const known = this.worktrees.get(git.path);
      if (known) {
        // The end of a set-up lock changes what the worktree runs: reconcile it.
        if (known.git.setupPending !== git.setupPending) this.fresh.add(git.path);
        known.git = git;
        // Its watch failed, or went deaf with a folder deleted and made again under the same path.
        // Still unwatched (the inotify limit): the once-a-second identity check reads it when it changes.
        if (!known.rootWatch?.open) {
          await this.watchWorktree(known);
          if (known.rootWatch?.open) await this.reloadWorktree(known);
        }
        continue;
      }
      await this.trackWorktree(main, git);
    }
  }

  private async trackWorktree(repo: string, git: GitWorktree): Promise<void> {
    const tracked: TrackedWorktree = { git, repo, lastGood: {}, usesMainConfig: false, diagnostics: [], signature: '', dirty: false, unbuilt: false, loaded: false, chain: { links: [], watches: new Map() } };
    this.worktrees.set(git.path, tracked);
    this.fresh.add(git.path);
    // Watching first, then reading: a write in between is seen either way.
    await this.watchWorktree(tracked);
    await this.reloadWorktree(tracked);
  }

  /**
   * (Re)starts a worktree's two watches: its folder, and `.devproxy/` when that is a directory
   * (or a symbolic link to one inside the worktree: a hostile branch's `.devproxy` → `/` is not
   * watched, and its files are refused by the loader).
   */
  private watchWorktree(w: TrackedWorktree, renew: { root?: boolean; state?: boolean } = {}): Promise<void> {
    const root = w.git.path;
    const wanted = () => !this.closed && this.worktrees.get(root) === w;
    const next = (w.watching ?? Promise.resolve()).then(async () => {
      const renewAndReload = (renewRoot: boolean) => void this.watchWorktree(w, { root: renewRoot, state: true }).then(() => this.reloadAndRebuild(w));
      w.rootWatch = await this.ensureWatch(w.rootWatch, root, wanted, (name) => {
        if (name === CONFIG_FILE) void this.reloadAndRebuild(w);
        // `.devproxy` came or went.
        else if (name === undefined || name === STATE_DIR) renewAndReload(name === undefined);
        // The folder's own name: it was itself deleted or moved (reloadAndRebuild then asks git)
        // — unless an entry of that name inside it changed (`go build` in `app/` writes `app/app`),
        // which node reports alike.
        else if (name === basename(root)) void exists(join(root, name)).then((child) => child || renewAndReload(true));
      }, { renew: renew.root === true });
      // A link's target is made and deleted in a folder of its own, which no other watch sees:
      // watched before the target is looked at, so a target made meanwhile is seen either way.
      const approach = (await isLink(join(root, STATE_DIR))) ? await dirApproach(join(root, STATE_DIR), root) : undefined;
      if (w.link && w.link.dir !== approach?.dir.path && w.link.dir !== root) this.unwatched.delete(w.link.dir);
      w.link = approach && { dir: approach.dir.path, name: approach.name };
      if (approach) {
        const dir = approach.dir.path;
        // A watch kept across a renewal keeps its first handler: `leads` reads the entry anew.
        w.linkWatch = await this.ensureWatch(w.linkWatch, dir, wanted, onApproach(dir, (name) => name === w.link?.name, () => renewAndReload(false)), { renew: renew.state === true });
      } else {
        w.linkWatch?.close();
        w.linkWatch = undefined;
      }
      // The links in between (bounded by dirApproach's hops), each in a folder inside the worktree.
      await this.watchChain(w.chain, approach?.links ?? [], wanted, () => renewAndReload(false), { root, renew: renew.state === true, shared: (dir) => dir === root || dir === w.link?.dir });
      w.stateWatch = await this.ensureWatch(w.stateWatch, join(root, STATE_DIR), wanted, (name) => {
        // Its own deletion is reported on the folder's watch too (or the link's), which starts the next one.
        if (name === undefined || name === PROFILE_FILE) void this.reloadAndRebuild(w);
      }, { root, renew: renew.state === true });
      // A watch opened as close() or the worktree's removal ran is closed now: close is final.
      if (!wanted()) for (const watch of [w.rootWatch, w.linkWatch, w.stateWatch, ...w.chain.watches.values()]) watch?.close();
    });
    w.watching = next;
    return next;
  }

  private unwatchWorktree(w: TrackedWorktree): void {
    w.rootWatch?.close();
    w.linkWatch?.close();
    w.stateWatch?.close();
    for (const watch of w.chain.watches.values()) watch.close();
    this.unwatched.delete(w.git.path);
    this.unwatched.delete(join(w.git.path, STATE_DIR));
    if (w.link) this.unwatched.delete(w.link.dir);
    for (const link of w.chain.links) this.unwatched.delete(link.dir);
  }

  private isUnwatched(w: TrackedWorktree): boolean {
    return (
      this.unwatched.has(w.git.path) ||
      this.unwatched.has(join(w.git.path, STATE_DIR)) ||
      (w.link !== undefined && this.unwatched.has(w.link.dir)) ||
      w.chain.links.some((link) => this.unwatched.has(link.dir))
    );
  }

  /** Reads the worktree's files again when they are not what was loaded (the net while unwatched). */
  private async checkIdentity(w: TrackedWorktree): Promise<void> {
    if (this.closed || w.reloading || this.worktrees.get(w.git.path) !== w) return;
    if ((await fileSignature(w.git.path)) !== w.signature && !w.reloading) await this.reloadAndRebuild(w);
  }

  private async dropWorktree(path: string): Promise<void> {
    const w = this.worktrees.get(path);
    this.worktrees.delete(path);
    if (w) this.unwatchWorktree(w);
  }

  private async reloadAndRebuild(w: TrackedWorktree): Promise<void> {
    // Asked alongside the read rather than before it: a flip waits for every step.
    const [present] = await Promise.all([exists(w.git.path), this.reloadWorktree(w)]);
    if (!present) {
      // Its files vanished with the folder: ask git again instead of routing the main config,
      // once for the whole `rm -rf` (each entry deleted is an event of its own).
      const repo = this.repos.get(w.repo);
      if (repo && !this.closed) this.gitChanged(repo);
      return;
    }
    // Events that came while the reload ran joined it (`echo x >` is a truncate, then a write):
    // the first of their callers here rebuilds for all of them, at once, without waiting for more.
    if (!w.unbuilt) return;
    w.unbuilt = false;
    const changed = [this.inputOf(w.git.path, w)];
    // A new main config also applies to every worktree that follows it.
    if (w.git.isMain) {
      for (const other of this.worktrees.values()) {
        if (other.repo === w.repo && other.usesMainConfig && other !== w) {
          await this.reloadWorktree(other);
          changed.push(this.inputOf(other.git.path, other));
        }
      }
    }
    if (!this.closed && this.worktrees.get(w.git.path) === w) this.rebuild(changed);
  }

  private reloadWorktree(w: TrackedWorktree): Promise<void> {
    if (w.reloading) {
      w.dirty = true;
      return w.reloading;
    }
    w.reloading = (async () => {
      do {
        w.dirty = false;
        // Only the check while unwatched uses it. Taken before the read: a file replaced while it
        // is read leaves the signature behind the file, so the next check reads it again. Watched,
        // the replacement's event does that, and a first check once unwatched always reads.
        w.signature = this.isUnwatched(w) ? await fileSignature(w.git.path) : '';
        const mainConfig = w.git.isMain ? undefined : this.worktrees.get(w.repo)?.lastGood.config;
        const loaded = await loadWorktree(w.git.path, mainConfig, w.lastGood);
        w.lastGood = { ...(loaded.config ? { config: loaded.config } : {}), ...(loaded.profile ? { profile: loaded.profile } : {}) };
        w.usesMainConfig = loaded.usesMainConfig;
        w.diagnostics = loaded.diagnostics;
        for (const d of loaded.diagnostics) {
          if (d.severity !== 'warning') this.options.logger?.warn(`${d.file}:${d.line} ${d.message} — ${d.hint}`);
        }
      } while (w.dirty);
      w.loaded = true;
      w.unbuilt = true;
      w.reloading = undefined;
    })();
    return w.reloading;
  }
}

/** Inode, size and mtime (ns) of a worktree's two files: changes whenever either is rewritten. */
async function fileSignature(worktree: string): Promise<string> {
  const one = (path: string) =>
    stat(path, { bigint: true }).then(
      (s) => `${s.ino}:${s.size}:${s.mtimeNs}`,
      (error: NodeJS.ErrnoException) => error.code ?? 'error',
    );
  return `${await one(configPath(worktree))}|${await one(profilePath(worktree))}`;
}

/**
 * The handler of a watch on a folder on the way to a directory: `onChange` when an entry that
 * `leads` there changed, or when the folder itself was deleted or moved (its own name reported),
 * unless an entry named like the folder changed, which node reports alike.
 */
function onApproach(dir: string, leads: (name: string) => boolean, onChange: () => void): (name: string | undefined) => void {
  return (name) => {
    if (name === undefined || leads(name)) onChange();
    else if (name === basename(dir)) void exists(join(dir, name)).then((child) => child || onChange());
  };
}

function isLink(path: string): Promise<boolean> {
  return lstat(path).then(
    (entry) => entry.isSymbolicLink(),
    () => false,
  );
}

function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

import { watch, type FSWatcher } from 'chokidar';
import { stat } from 'node:fs/promises';
import { basename, dirname, join, relative, sep } from 'node:path';
import { CONFIG_FILE, PROFILE_FILE, STATE_DIR, configPath, profilePath } from '../profiles/files.js';
import type { Diagnostic } from '../profiles/schema.js';
import type { Logger } from '../logger.js';
import { buildRoutingTable } from '../router/route-table.js';
import type { RouteProblem, RoutingTable, WorktreeInput } from '../router/types.js';
import { locateRepo, readWorktreeList, type GitWorktree } from './git-worktrees.js';
import type { DevproxyError } from '../errors.js';
import { readDownWorktrees } from './down-state.js';
import { homePaths } from '../home-paths.js';
import { readRepos } from './home.js';
import { loadWorktree, worktreeInput, type LastGood } from './worktree-loader.js';

/** Git writes several files per `git worktree add/remove`; one rescan after they settle is enough. */
const GIT_RESCAN_DEBOUNCE_MS = 50;
/**
 * chokidar drops, rather than delays, events inside its throttle windows (a second `change` of
 * a path within 50 ms, a second `unlink` within 100 ms, an unlink+add within 100 ms under
 * `atomic`), and its watch of a file replaced by a rename can miss the next replacement, so a
 * quick second edit would be lost. Once a worktree's files have been quiet this long (no event
 * and no reload running) their identity is checked against what was loaded, and they are read
 * again when it differs. Longer than chokidar's longest window, so a dropped event always falls
 * before the check.
 */
const SETTLE_MS = 150;
/**
 * While events keep coming (a burst of writes never leaves the quiet period the settled check
 * waits for), the identity is also checked this often until SETTLE_MS after the last event, so a
 * replacement whose own event was dropped applies within a flip's budget, not after the burst.
 */
const QUICK_CHECK_MS = 20;

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

interface TrackedWorktree {
  git: GitWorktree;
  repo: string;
  lastGood: LastGood;
  usesMainConfig: boolean;
  diagnostics: Diagnostic[];
  watcher: FSWatcher;
  /** Identity (inode, size, mtime) of the files last loaded; a check that finds the same skips work. */
  signature: string;
  /** The identity check once the files are quiet (see SETTLE_MS). */
  settleTimer?: NodeJS.Timeout;
  /** The identity checks while events come (see QUICK_CHECK_MS). */
  quickTimer?: NodeJS.Timeout;
  lastEventAt: number;
  /** Serialises reloads: a change during a reload triggers exactly one more. */
  reloading?: Promise<void>;
  dirty: boolean;
  /** Its files were read once; until then it is not handed to the runtime. */
  loaded: boolean;
}

interface TrackedRepo {
  main: string;
  gitWatcher?: FSWatcher;
  rescanTimer?: NodeJS.Timeout;
  /** The last rescan queued; rescans of one repository run one after another. */
  rescanning?: Promise<void>;
  diagnostics: Diagnostic[];
}

/**
 * Owns the watchers: the registry (repos.json), each repository's git worktree list and each
 * worktree's devproxy.yaml and profile file. It reloads only what changed, keeps the last good
 * files of a worktree when an edit is broken, and swaps the routing table in one assignment.
 * Directories are watched rather than files: a watcher on a file follows its inode and misses
 * every change after an editor's atomic replace.
 */
export class Workspace {
  private table: RoutingTable = { routes: new Map(), worktrees: [], diagnostics: [] };
  private readonly repos = new Map<string, TrackedRepo>();
  /** Why repos.json could not be read; the repositories already tracked stay meanwhile. */
  private registryDiagnostics: Diagnostic[] = [];
  private registryRecheck?: NodeJS.Timeout;
  private readonly worktrees = new Map<string, TrackedWorktree>();
  private homeWatcher?: FSWatcher;
  private syncing: Promise<void> = Promise.resolve();
  /** Worktrees tracked since the last rebuild: reported as changed so the runtime reconciles them. */
  private readonly fresh = new Set<string>();
  /** Worktrees `devproxy down` stopped (down.json): their services route remote. */
  private down = new Set<string>();
  private downSync: Promise<void> = Promise.resolve();
  private downRecheck?: NodeJS.Timeout;
  private closed = false;
  private rebuildQueued = false;

  constructor(private readonly options: WorkspaceOptions) {}

  /** The current table; the proxy calls this on every request. */
  readonly getTable = (): RoutingTable => this.table;

  /** Loads every registered repository and starts watching. */
  async start(): Promise<void> {
    const paths = homePaths(this.options.home);
    this.homeWatcher = watch(this.options.home, { depth: 0, ignoreInitial: true });
    this.homeWatcher.on('all', (_event, path) => {
      if (path === paths.down) {
        void this.syncDown();
        // The same throttle as for repos.json: a quick second write would be missed.
        clearTimeout(this.downRecheck);
        this.downRecheck = setTimeout(() => void this.syncDown(), SETTLE_MS);
      }
      if (path !== paths.repos) return;
      void this.syncRepos();
      // chokidar drops a second event for the same path inside its throttle window, so a quick
      // fix right after a bad write would be missed: read the registry once more after it.
      clearTimeout(this.registryRecheck);
      this.registryRecheck = setTimeout(() => void this.syncRepos(), SETTLE_MS);
    });
    this.homeWatcher.on('error', (error) => this.options.logger?.warn(`watcher: ${String(error)}`));
    await once(this.homeWatcher, 'ready');
    this.down = await readDownWorktrees(this.options.home);
    await this.syncRepos();
  }

  /** Re-reads everything from disk (the admin API's reload). */
  async reload(): Promise<void> {
    await this.syncDown();
    await this.syncRepos();
    await Promise.all([...this.repos.keys()].map((repo) => this.rescanRepo(repo)));
    await Promise.all([...this.worktrees.values()].map((w) => this.reloadWorktree(w)));
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
    this.table = buildRoutingTable(inputs);
    const repoDiagnostics = [...this.registryDiagnostics, ...[...this.repos.values()].flatMap((r) => r.diagnostics)];
    if (repoDiagnostics.length > 0) this.table.diagnostics.push(...repoDiagnostics);
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
    clearTimeout(this.registryRecheck);
    clearTimeout(this.downRecheck);
    await this.homeWatcher?.close();
    for (const repo of this.repos.values()) {
      clearTimeout(repo.rescanTimer);
      await repo.gitWatcher?.close();
    }
    for (const w of this.worktrees.values()) {
      clearTimeout(w.settleTimer);
      clearTimeout(w.quickTimer);
    }
    await Promise.all([...this.worktrees.values()].map((w) => w.watcher.close()));
    this.repos.clear();
    this.worktrees.clear();
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
    const repo: TrackedRepo = { main, diagnostics: [] };
    this.repos.set(main, repo);
    try {
      const location = await locateRepo(main);
      // Only the worktree list and each worktree's HEAD matter; everything else in .git churns.
      const worktreesDir = join(location.commonDir, 'worktrees');
      repo.gitWatcher = watch(location.commonDir, {
        depth: 2,
        ignoreInitial: true,
        ignored: (path) => {
          const rel = relative(location.commonDir, path);
          if (rel === '') return false;
          const parts = rel.split(sep);
          // `locked` comes and goes with devproxy's set-up lock (see SETUP_PENDING_LOCK).
          return parts[0] !== 'worktrees' || (parts.length === 3 && parts[2] !== 'HEAD' && parts[2] !== 'locked');
        },
      });
      repo.gitWatcher.on('all', (_event, path) => {
        if (!path.startsWith(worktreesDir)) return;
        clearTimeout(repo.rescanTimer);
        repo.rescanTimer = setTimeout(() => void this.rescanRepo(main).then(() => this.rebuild()), GIT_RESCAN_DEBOUNCE_MS);
      });
      await once(repo.gitWatcher, 'ready');
    } catch (error) {
      repo.diagnostics = [{ file: main, line: 0, column: 0, message: `cannot read the repository: ${(error as Error).message}`, hint: 'check that the folder still exists and is a git repository, or `devproxy init --unregister` it' }];
      return;
    }
    await this.rescanRepo(main);
  }

  private async dropRepo(main: string): Promise<void> {
    const repo = this.repos.get(main);
    this.repos.delete(main);
    clearTimeout(repo?.rescanTimer);
    await repo?.gitWatcher?.close();
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
        continue;
      }
      await this.trackWorktree(main, git);
    }
  }

  private async trackWorktree(repo: string, git: GitWorktree): Promise<void> {
    const root = git.path;
    const watcher = watch(root, {
      depth: 1,
      ignoreInitial: true,
      ignored: (path) => {
        const rel = relative(root, path);
        if (rel === '') return false;
        const parts = rel.split(sep);
        // devproxy.yaml's own temp files (writeFileAtomic) also mark a change of it.
        return parts[0] !== STATE_DIR && parts[0] !== CONFIG_FILE && !parts[0]!.startsWith(`.${CONFIG_FILE}.`);
      },
    });
    const tracked: TrackedWorktree = { git, repo, lastGood: {}, usesMainConfig: false, diagnostics: [], watcher, signature: '', dirty: false, loaded: false, lastEventAt: 0 };
    this.worktrees.set(root, tracked);
    this.fresh.add(root);
    watcher.on('all', (event, path) => {
      // The folder itself deleted (`rm -rf`): git does not notice until a rescan asks it.
      if (event === 'unlinkDir' && path === root) {
        void this.rescanRepo(repo).then(() => this.rebuild());
        return;
      }
      const name = basename(path);
      const isProfile = name === PROFILE_FILE && basename(dirname(path)) === STATE_DIR;
      // Any other event (a temp file of an atomic write, .gitignore) only asks for the identity
      // check: when chokidar missed the file's own event, that check still sees the new file.
      if (isProfile || name === CONFIG_FILE || name === STATE_DIR) void this.reloadAndRebuild(tracked);
      this.checkWhenSettled(tracked);
      tracked.lastEventAt = Date.now();
      this.checkWhileEventsCome(tracked);
    });
    watcher.on('error', (error) => this.options.logger?.warn(`watcher ${root}: ${String(error)}`));
    await once(watcher, 'ready');
    await this.reloadWorktree(tracked);
  }

  /**
   * (Re)starts the quiet period after which the worktree's files are compared with what was
   * loaded. Restarted by every event and by the end of every reload, so the check always runs
   * after the last change and the last read, however long a reload took.
   */
  private checkWhenSettled(w: TrackedWorktree): void {
    clearTimeout(w.settleTimer);
    w.settleTimer = setTimeout(() => void this.checkSettled(w), SETTLE_MS);
  }

  private checkWhileEventsCome(w: TrackedWorktree): void {
    w.quickTimer ??= setTimeout(() => {
      w.quickTimer = undefined;
      void this.checkIdentity(w);
      if (!this.closed && this.worktrees.get(w.git.path) === w && Date.now() - w.lastEventAt < SETTLE_MS) this.checkWhileEventsCome(w);
    }, QUICK_CHECK_MS);
  }

  private async checkSettled(w: TrackedWorktree): Promise<void> {
    w.settleTimer = undefined;
    await this.checkIdentity(w);
  }

  private async checkIdentity(w: TrackedWorktree): Promise<void> {
    // A reload still running starts a new quiet period when it ends (marking it dirty here instead
    // would keep it reading, and the table unchanged, for as long as a burst of writes lasts).
    if (this.closed || w.reloading || this.worktrees.get(w.git.path) !== w) return;
    if ((await fileSignature(w.git.path)) !== w.signature && !w.reloading) await this.reloadAndRebuild(w);
  }

  private async dropWorktree(path: string): Promise<void> {
    const w = this.worktrees.get(path);
    clearTimeout(w?.settleTimer);
    clearTimeout(w?.quickTimer);
    this.worktrees.delete(path);
    await w?.watcher.close();
  }

  private async reloadAndRebuild(w: TrackedWorktree): Promise<void> {
    if (!(await exists(w.git.path))) {
      // Its files vanished with the folder: ask git again instead of routing the main config.
      await this.rescanRepo(w.repo);
      if (!this.closed) this.rebuild();
      return;
    }
    await this.reloadWorktree(w);
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
        // Taken before the read: a file replaced while it is read leaves the signature behind the
        // file, so the settled check reads it again — while every read still applies at once, which
        // a burst of writes that re-read in a loop here would hold back until the burst ended.
        w.signature = await fileSignature(w.git.path);
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
      w.reloading = undefined;
      if (!this.closed && this.worktrees.get(w.git.path) === w) this.checkWhenSettled(w);
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

function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

function once(watcher: FSWatcher, event: 'ready'): Promise<void> {
  return new Promise((resolve) => watcher.once(event, () => resolve()));
}

/**
 * The admin API routes behind the dashboard and `devproxy requests`: the live event stream,
 * the request log, and profile changes (plan, then apply) made through the same library code as
 * `devproxy use`. All live under `/api/`, so the admin API's token, Host and Origin checks cover
 * them; the event stream is a plain authorised GET that the page reads with `fetch`, which can
 * send the Authorization header (EventSource cannot), so no token or ticket ever sits in a URL.
 */
import { createHash } from 'node:crypto';
import { DevproxyError } from '../errors.js';
import { nextProfile, planProfileChange, readProfileText, writeProfileUnlessChanged, type ProfileChangeRequest } from '../workspace/profile-change.js';
import type { ProfileFile, ProjectConfig, RouteMode } from '../profiles/schema.js';
import type { RequestLog } from '../proxy/request-log.js';
import type { WorktreeInput } from '../router/types.js';
import { availableMemoryBytes, checkMemoryBudget } from '../runtime/memory.js';
import type { AdminRouter } from './admin-router.js';
import type { DashboardFeed, FeedTopic } from './dashboard-feed.js';

export interface DashboardApiOptions {
  feed: DashboardFeed;
  requestLog: RequestLog;
  /** The loaded files of the worktree devproxy routes at `path`; undefined when it routes none there. */
  worktree(path: string): { input: WorktreeInput; slug: string } | undefined;
  /** Services of the worktree with a local instance now. */
  running(path: string): string[];
}

/** Body of a profile plan or change. */
interface ProfileBody {
  path?: string;
  profile?: string;
  /** Per-service overrides, e.g. `{ "api": "local" }`. */
  services?: Record<string, string>;
  /** The `revision` the plan was made from; the change is refused when the file moved on since. */
  revision?: string;
}

/** Identifies the profile file's text: a change carries the one its plan saw. */
function revisionOf(text: string | null): string {
  return text === null ? 'none' : createHash('sha256').update(text).digest('hex').slice(0, 16);
}

/** Adds the dashboard's routes to the admin API. */
export function registerDashboardRoutes(app: AdminRouter, options: DashboardApiOptions): void {
  const { feed, requestLog } = options;

  app.get('/api/events', (request, reply) => {
    const topics = new Set<FeedTopic>((request.query('topics') ?? 'status,requests').split(',').filter((t): t is FeedTopic => t === 'status' || t === 'requests'));
    feed.open(reply.hijack(), topics, Number(request.query('after')) || 0);
  });

  app.get('/api/requests', (request) => {
    const limit = Number(request.query('limit'));
    return { stats: requestLog.stats(), entries: requestLog.entries(Number(request.query('after')) || 0, Number.isInteger(limit) && limit >= 0 ? limit : requestLog.capacity) };
  });

  app.get('/api/requests/:seq', (request, reply) => {
    const given = request.params.seq ?? '';
    const seq = Number(given);
    const detail = Number.isInteger(seq) ? requestLog.detail(seq) : undefined;
    if (detail) return detail;
    reply.json(404, { error: { code: 'DEVPROXY_ERR_REQUEST_NOT_FOUND', message: `request ${given} is no longer in the log` } });
    return undefined;
  });

  app.put('/api/requests/recording', (request) => {
    const { recording } = (request.body ?? {}) as { recording?: unknown };
    if (typeof recording !== 'boolean') throw new DevproxyError('DEVPROXY_ERR_USAGE', 'send {"recording": true|false}');
    requestLog.recording = recording;
    return requestLog.stats();
  });

  const prepare = async (body: ProfileBody) => {
    const found = body.path === undefined ? undefined : options.worktree(body.path);
    if (!found || body.path === undefined) {
      throw new DevproxyError('DEVPROXY_ERR_UNKNOWN_WORKTREE', `devproxy routes no worktree at ${body.path ?? '(none given)'}`);
    }
    const { input, slug } = found;
    const config: ProjectConfig | undefined = input.config;
    if (!config) {
      // The request is right; the worktree's state is what stands in the way (the catalogue's 400 is for a bad file sent).
      throw Object.assign(new DevproxyError('DEVPROXY_ERR_CONFIG_INVALID', `worktree ${slug} has no valid devproxy.yaml: fix the problems shown first`), { statusCode: 409 });
    }
    const change: ProfileChangeRequest = {
      ...(body.profile ? { profile: body.profile } : {}),
      services: Object.entries(body.services ?? {}).map(([service, mode]) => {
        if (mode !== 'local' && mode !== 'remote') throw new DevproxyError('DEVPROXY_ERR_USAGE', `service ${service}: "${mode}" is not local or remote`);
        return [service, mode as RouteMode] as const;
      }),
    };
    const seen = await readProfileText(body.path);
    const current: ProfileFile | undefined = input.profile;
    const { next, validated } = withStatus(() => nextProfile(config, current, change, body.path as string, seen));
    const plan = planProfileChange(config, current, validated, options.running(body.path));
    const budget = checkMemoryBudget(config, plan.start, await availableMemoryBytes());
    return { path: body.path, slug, seen, next, response: { worktree: slug, profile: next.profile, services: Object.fromEntries(next.services), revision: revisionOf(seen), plan, memory: budget } };
  };

  app.post('/api/profile/plan', async (request) => (await prepare((request.body ?? {}) as ProfileBody)).response);

  app.post('/api/profile', async (request) => {
    const body = (request.body ?? {}) as ProfileBody;
    const prepared = await prepare(body);
    if (body.revision !== undefined && body.revision !== prepared.response.revision) {
      throw new DevproxyError('DEVPROXY_ERR_PROFILE_CHANGED', `the profile of ${prepared.slug} changed since the plan was shown; nothing was written`);
    }
    const file = await writeProfileUnlessChanged(prepared.path, prepared.next, prepared.seen);
    feed.changed();
    return { ...prepared.response, file };
  });
}

/**
 * Runs `fn`, giving its usage errors a 400: a profile or service named in the body that does not
 * exist is a bad request body here, not the catalogue's 404 for a name the caller addresses.
 */
function withStatus<T>(fn: () => T): T {
  try {
    return fn();
  } catch (error) {
    if (error instanceof DevproxyError) throw Object.assign(error, { statusCode: 400 });
    throw error;
  }
}

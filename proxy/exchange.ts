/**
 * The forwarding exchange: one request sent to its upstream through its pool (devproxy's own
 * HTTP/1.1 client for a local origin, an undici Pool for a remote) and the answer streamed back
 * into the client's response (HTTP/1.1, HTTP/2 compat or the h2 front alike), on undici's dispatch handler API
 * (`onRequestStart` … `onResponseEnd`), which both pools drive. Back-pressure runs both ways
 * (the pool pauses the request body; the exchange pauses the upstream while the client is full),
 * a client that goes away aborts the upstream request, and a failure becomes an error page. One
 * handler object per request, no closures.
 */
import http, { type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Http2ServerRequest, Http2ServerResponse } from 'node:http2';
import type { Dispatcher } from 'undici';
import type { Route, Target } from '../router/types.js';
import { paceLongBody } from './body-gc-pacer.js';
import { answeredCors, withCorsHeaders, type CorsMode, type Preflight } from './cors.js';
import { DispatchControllerState } from './dispatch-controller.js';
import { renderWakingPage } from './error-pages.js';
import { buildClientHeaders, flattenHeaders, h2HeaderObject, mayCarryTrailers, type ResponseHeaderRewriter } from './forward-headers.js';
import { sendError, sendPage, sendPreflight, type ClientResponse } from './own-answers.js';
import { FrontResponse } from './h1-front.js';
import { H2Response } from './h2-front.js';
import { profileOf, type ClientRequest, type ProxyCore } from './proxy-core.js';
import type { RequestContext } from './request-context.js';
import { exchangeStart, recordExchange } from './request-log.js';
import { isWakingStatus, mayRetryWake, WAKE_PAGE_RETRY_S, wakeDelayMs, wakeErrorCode, type WakePlan } from './remote-hop.js';
import { closesConnection, endUnfinishedUpload } from './unfinished-upload.js';
import { mapUpstreamError } from './upstream-errors.js';
import type { AnswerWatcher } from './types.js';
import type { ShareWaiter } from './upstream-share.js';
import { openUpstream } from './websocket.js';

/** Reason given to undici when the client went away; maps to "write nothing". */
const CLIENT_ABORTED: Error = Object.assign(new Error('client closed the connection'), { code: 'DEVPROXY_CLIENT_ABORTED' });

/**
 * What the request entry decided for one exchange: where it goes and how its answer is shaped.
 * Every field is always given (undefined when unused), so plans share one shape.
 */
export interface ExchangePlan {
  route: Route;
  target: Target;
  /** Path sent upstream: origin-form under the target's base path, or `*` for `OPTIONS *`. */
  path: string;
  /** Request headers sent upstream, flat (`buildUpstreamHeaders`). */
  headers: string[];
  /** Location/Set-Cookie rewriting of a remote's answer. */
  rewriter: ResponseHeaderRewriter | undefined;
  /** The request's Origin when it is one of the worktree's origins: the answer gets CORS for it. */
  corsOrigin: string | undefined;
  /** Set for a sleeping-capable remote: 502–504 and timeouts are retried or answered with the waking page. */
  wake: WakePlan | undefined;
  /** A preflight from the worktree's origin to a local app: answered by devproxy if the app does not answer CORS. */
  preflight: Preflight | undefined;
}

/** node's responses, which tell of their client by events (the fronts' tell their watcher). */
type NodeResponse = (ServerResponse | Http2ServerResponse) & { [kForward]?: ForwardExchange };

const kForward = Symbol('devproxy.forward');

function onClientDrain(this: NodeResponse): void {
  this[kForward]?.clientDrained();
}

function onClientClose(this: NodeResponse): void {
  this[kForward]?.clientClosed();
}

/** What an exchange sends through: an upstream pool, or the asterisk-form sender. */
type Dispatches = Pick<Dispatcher, 'dispatch'>;

/**
 * One forwarded request: an undici dispatch handler streaming the response into `res`. It holds
 * one slot of its client connection's upstream share from its start until it ends.
 */
class ForwardExchange implements Dispatcher.DispatchHandler, ShareWaiter, AnswerWatcher {
  /** undici's handle on the dispatch under way: pause/resume the response, abort the request. */
  #controller: Dispatcher.DispatchController | undefined;
  #clientGone = false;
  #done = false;
  /** Set while an upstream answer is read only to be dropped: a retry or the waking page follows. */
  #dropping: string | undefined;
  #attempts = 1;
  #startedAt = 0;
  #retryTimer: NodeJS.Timeout | undefined;
  /** Set once devproxy answered a local app's non-CORS preflight answer itself; its body is drained. */
  #replaced = false;
  #pool: Dispatches | undefined;
  #request: Dispatcher.DispatchOptions | undefined;
  /** For the request log: when the exchange began, what was answered and how many body bytes. */
  readonly #begun: number;
  #status = 0;
  #bytes = 0;
  #responseHeaders: string[] | undefined;
  /** Holds a slot of the client's upstream share. */
  #holding = false;
  /** Waits in the client's share queue. */
  #queued = false;
  /** Dispatched and not yet completed or failed (undici will call back). */
  #dispatched = false;
  /** The client's drain resumes the upstream (from the first time the client filled up). */
  #awaitsDrain = false;

  constructor(
    private readonly core: ProxyCore,
    /** The request itself: read only for its body (the rest is in `context`). */
    private readonly req: ClientRequest,
    private readonly context: RequestContext,
    private readonly res: ClientResponse,
    private readonly plan: ExchangePlan,
  ) {
    if (res instanceof FrontResponse || res instanceof H2Response) res.watcher = this;
    else {
      (res as NodeResponse)[kForward] = this;
      res.on('close', onClientClose);
    }
    if (plan.wake !== undefined) this.#startedAt = Date.now();
    this.#begun = exchangeStart(core.options.requestLog);
  }

  /** Sends the request once the client's upstream share has a free slot. */
  start(pool: Dispatches, request: Dispatcher.DispatchOptions): void {
    this.#pool = pool;
    this.#request = request;
    if (this.core.shares.acquire(this.context.connection, this)) {
      this.#holding = true;
      this.#dispatch();
    } else {
      this.#queued = true;
    }
  }

  admitted(): void {
    this.#queued = false;
    this.#holding = true;
    if (this.#clientGone) this.#release();
    else this.#dispatch();
  }

  #dispatch(): void {
    this.#dispatched = true;
    (this.#pool as Dispatches).dispatch(this.#request as Dispatcher.DispatchOptions, this);
  }

  #release(): void {
    if (!this.#holding) return;
    this.#holding = false;
    this.core.shares.release(this.context.connection);
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    if (this.#clientGone) controller.abort(CLIENT_ABORTED);
    else this.#controller = controller;
  }

  onResponseStart(controller: Dispatcher.DispatchController, statusCode: number, headers: IncomingHttpHeaders): void {
    // node:http already answered the client's 100-continue; other 1xx are not relayed.
    if (statusCode < 200) return;
    const { plan, res } = this;
    if (plan.wake !== undefined && isWakingStatus(statusCode) && (plan.wake.navigation || this.#canRetry())) {
      this.#dropping = String(statusCode);
      return;
    }
    this.#status = statusCode;
    // The raw list keeps the upstream's names, order and repeated fields; this undici gives it
    // next to the parsed object, which is what a controller without one falls back to.
    const raw = Array.isArray(controller.rawHeaders) ? controller.rawHeaders : flattenHeaders(headers);
    const kind = plan.target.kind;
    const corsOrigin = plan.corsOrigin;
    let out = buildClientHeaders(raw, kind, plan.rewriter);
    if (corsOrigin !== undefined) {
      if (plan.preflight !== undefined && !answeredCors(raw)) {
        // The app does not speak CORS (an Express app without cors(), a 404/405 to OPTIONS): the page
        // gets the same preflight answer it gets while the service is remote.
        this.#replaced = true;
        this.#done = true;
        sendPreflight(this.core, this.context, res, plan.route, corsOrigin, plan.preflight, kind, kind, this.#begun);
        return;
      }
      const mode: CorsMode = kind === 'local' ? 'unless-answered' : 'replace';
      out = withCorsHeaders(out, corsOrigin, mode);
    }
    // An answer before the whole upload (a 413): see unfinished-upload.ts.
    if (this.context.hasBody && closesConnection(this.req)) out.push('connection', 'close');
    this.#responseHeaders = out;
    if (this.context.h2) respondH2(res as Http2ServerResponse | H2Response, statusCode, out, mayCarryTrailers(raw));
    else (res as ServerResponse).writeHead(statusCode, out);
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    if (this.#dropping !== undefined || this.#replaced) return;
    this.#bytes += chunk.length;
    // Paused until the client drains (back-pressure, no buffering). Most answers never fill the
    // client's buffer, so the drain listener is added only the first time one does.
    if (!(this.res as ServerResponse).write(chunk)) {
      controller.pause();
      if (!this.#awaitsDrain) {
        this.#awaitsDrain = true;
        // A front's answer tells its watcher of every drain; node's emit 'drain'.
        if (!(this.res instanceof FrontResponse || this.res instanceof H2Response)) this.res.on('drain', onClientDrain);
      }
    }
  }

  onResponseEnd(_controller: Dispatcher.DispatchController, trailers: IncomingHttpHeaders): void {
    this.#dispatched = false;
    this.#controller = undefined;
    if (this.#replaced) {
      this.#release();
      return;
    }
    if (this.#dropping !== undefined) {
      this.#stillWaking(this.#dropping);
      return;
    }
    this.#done = true;
    this.#release();
    // Trailers are relayed because `TE: trailers` was forwarded (gRPC-web, Server-Timing).
    if (Object.keys(trailers).length > 0) this.res.addTrailers(trailers);
    (this.res as ServerResponse).end();
    if (this.context.hasBody) endUnfinishedUpload(this.req);
    recordExchange(this.core.options.requestLog, this.context, this.plan.route, this.plan.target.kind, this.#status, this.#bytes, this.#responseHeaders, this.#begun);
  }

  onResponseError(_controller: Dispatcher.DispatchController | undefined, error: Error): void {
    this.#dispatched = false;
    this.#controller = undefined;
    if (this.#replaced) {
      this.#release();
      return;
    }
    const { plan, res } = this;
    if (this.#clientGone) {
      this.#done = true;
      // Status 0: the client went away before the answer was complete.
      recordExchange(this.core.options.requestLog, this.context, plan.route, plan.target.kind, 0, this.#bytes, this.#responseHeaders, this.#begun);
      this.#release();
      return;
    }
    if (plan.wake !== undefined && !res.headersSent) {
      const code = this.#dropping ?? wakeErrorCode(error);
      if (code !== undefined && (plan.wake.navigation || this.#canRetry())) {
        this.#stillWaking(code);
        return;
      }
    }
    this.#done = true;
    this.#release();
    const info = mapUpstreamError(error, { route: plan.route, target: plan.target, profile: profileOf(this.core, plan.route) });
    if (info === null) return;
    this.core.logger?.warn(`${plan.route.host}: ${info.message}`);
    if (!res.headersSent) sendError(this.core, this.context, res, info, plan.route, plan.corsOrigin, this.#begun);
    else {
      res.destroy();
      recordExchange(this.core.options.requestLog, this.context, plan.route, plan.target.kind, 0, this.#bytes, this.#responseHeaders, this.#begun);
    }
  }

  clientDrained(): void {
    if (this.#awaitsDrain) this.#controller?.resume();
  }

  clientClosed(): void {
    if (this.#done) return;
    this.#clientGone = true;
    clearTimeout(this.#retryTimer);
    if (this.#queued) {
      this.#queued = false;
      this.core.shares.cancel(this.context.connection, this);
    }
    // Between wake attempts nothing is dispatched: no undici callback will give the slot back.
    if (!this.#dispatched) this.#release();
    this.#controller?.abort(CLIENT_ABORTED);
  }

  /** Whether one more attempt fits in the wake timeout and the attempt bound. */
  #canRetry(): boolean {
    return mayRetryWake(this.plan.wake as WakePlan, this.#attempts, Date.now() - this.#startedAt);
  }

  /** The remote answered `answered` (a 5xx status or a timeout code) while it may be waking. */
  #stillWaking(answered: string): void {
    this.#dropping = undefined;
    const { plan } = this;
    const wake = plan.wake as WakePlan;
    if (wake.navigation) {
      this.#done = true;
      this.#release();
      this.core.logger?.info(`${plan.route.host}: the remote answered ${answered}; serving the waking page`);
      sendWakingPage(this.core, this.context, this.res, plan, answered, wake.timeoutMs, this.#begun);
      return;
    }
    const delay = wakeDelayMs(this.#attempts);
    this.#attempts++;
    this.core.logger?.info(`${plan.route.host}: the remote answered ${answered}; attempt ${this.#attempts} in ${delay} ms`);
    this.#retryTimer = setTimeout(retryExchange, delay, this);
  }

  /** Sends the request again after a backoff (no body: only bodiless idempotent requests get here). */
  retry(): void {
    this.#retryTimer = undefined;
    if (this.#clientGone) return;
    this.#dispatch();
  }
}

/**
 * Starts an HTTP/2 answer on the stream with one header object: the compat `writeHead` trims,
 * lower-cases and validates each field twice over, for fields `buildClientHeaders` already
 * filtered. Compat keeps writing the body. Only an answer that may end in trailers waits for
 * them (`waitForTrailers`, which compat's own writeHead always sets): the wait holds END_STREAM
 * back until compat sends the trailers, an empty DATA frame when there are none, so every other
 * answer would cost a second TLS write, a JS round trip and a read stop/start on the socket.
 */
function respondH2(res: Http2ServerResponse | H2Response, status: number, flat: readonly string[], mayHaveTrailers: boolean): void {
  if (res instanceof H2Response) {
    res.respond(status, h2HeaderObject(flat, status), mayHaveTrailers);
    return;
  }
  const stream = res.stream;
  if (stream.destroyed || stream.closed) return;
  res.statusCode = status;
  stream.respond(h2HeaderObject(flat, status), { waitForTrailers: mayHaveTrailers });
}

function retryExchange(exchange: ForwardExchange): void {
  exchange.retry();
}

/** The waking page reloads itself after this long; clients that retry read it here. */
const WAKING_PAGE_HEADERS: readonly string[] = ['retry-after', String(WAKE_PAGE_RETRY_S)];

function sendWakingPage(core: ProxyCore, context: RequestContext, res: ClientResponse, plan: ExchangePlan, answered: string, timeoutMs: number, begun: number): void {
  const { route } = plan;
  const body = renderWakingPage({
    service: route.service,
    worktree: route.worktree,
    target: plan.target.origin,
    answered,
    timeoutMs,
    retryAfterSeconds: WAKE_PAGE_RETRY_S,
  });
  sendPage(core, context, res, 503, body, false, route, undefined, undefined, begun, WAKING_PAGE_HEADERS);
}

/**
 * Forwards `req` as `plan` says and streams the answer into `res`; failures (no pool for the
 * target, upstream errors) become error pages through the same path.
 */
export function forwardExchange(core: ProxyCore, req: ClientRequest, context: RequestContext, res: ClientResponse, plan: ExchangePlan): void {
  const exchange = new ForwardExchange(core, req, context, res, plan);
  let pool;
  try {
    pool = core.pools.poolFor(plan.target);
  } catch (error) {
    exchange.onResponseError(undefined, error as Error);
    return;
  }
  // Only node's requests carry a body: the front serves bodiless ones alone.
  const body = context.hasBody ? (req as IncomingMessage | Http2ServerRequest) : null;
  const options: Dispatcher.DispatchOptions = { method: context.method as Dispatcher.HttpMethod, path: plan.path, headers: plan.headers, body: body as IncomingMessage | null };
  // undici closes the connection after every HEAD (against servers that send a body anyway), so
  // the next request to an HTTPS remote paid a new TLS handshake; the remotes devproxy talks to
  // (Azure front ends, Node, dev servers) frame HEAD answers correctly. (The local client keeps
  // the connection after a well-framed HEAD answer by itself.)
  if (options.method === 'HEAD') options.reset = false;
  // A long body's 64 KiB socket buffers are freed only by a collection: see body-gc-pacer.ts.
  if (body !== null) paceLongBody(body);
  // The pools send only origin-form (and undici absolute-form) targets; `OPTIONS *` goes out by node:http.
  exchange.start(plan.path === '*' ? new AsteriskDispatcher(core, plan.target) : pool, options);
}

/** The controller of one asterisk-form request: node:http's response stands in for undici's parser. */
class AsteriskController extends DispatchControllerState {
  rawHeaders: string[] | null = null;
  response: IncomingMessage | undefined;

  constructor(private readonly fail: (reason: Error) => void) {
    super();
  }

  protected onAbort(reason: Error): void {
    this.fail(reason);
  }

  protected onPause(): void {
    this.response?.pause();
  }

  protected onResume(): void {
    this.response?.resume();
  }
}

/**
 * Sends one request with the asterisk-form target (`OPTIONS *`) on a connection of its own and
 * drives the exchange's undici handler with the answer, so errors, back-pressure and client
 * aborts take the same path as every other request.
 */
class AsteriskDispatcher {
  constructor(
    private readonly core: ProxyCore,
    private readonly target: Target,
  ) {}

  dispatch(options: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean {
    const headers: Record<string, string> = {};
    const flat = options.headers as string[];
    for (let i = 0; i < flat.length; i += 2) headers[flat[i] as string] = flat[i + 1] as string;
    let upstream: http.ClientRequest;
    let failed = false;
    const fail = (error: Error): void => {
      if (failed) return;
      failed = true;
      upstream?.destroy();
      handler.onResponseError?.(controller, error);
    };
    const controller = new AsteriskController(fail);
    try {
      upstream = openUpstream(this.core, this.target, options.method, '*', headers);
    } catch (error) {
      fail(error as Error);
      return true;
    }
    upstream.setTimeout(this.core.timeouts.headersTimeoutMs, () => fail(Object.assign(new Error('upstream did not answer OPTIONS *'), { code: 'UND_ERR_HEADERS_TIMEOUT' })));
    upstream.on('error', fail);
    upstream.on('response', (response: IncomingMessage) => {
      upstream.setTimeout(0);
      controller.response = response;
      controller.rawHeaders = response.rawHeaders;
      handler.onResponseStart?.(controller, response.statusCode ?? 502, response.headers, response.statusMessage ?? '');
      response.on('data', (chunk: Buffer) => handler.onResponseData?.(controller, chunk));
      response.on('end', () => {
        if (!failed) handler.onResponseEnd?.(controller, response.trailers);
      });
      response.on('error', fail);
    });
    handler.onRequestStart?.(controller, {});
    const body = options.body as IncomingMessage | null | undefined;
    if (body) body.pipe(upstream);
    else upstream.end();
    return true;
  }
}

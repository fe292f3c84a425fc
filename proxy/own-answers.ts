/**
 * The answers devproxy writes itself instead of an upstream's: error pages, the landing page,
 * the waking page, CORS preflights. Each one is written in one `writeHead` + `end` and recorded in the request log.
 */
import type { ServerResponse } from 'node:http';
import type { Http2ServerResponse } from 'node:http2';
import type { H2Response } from './h2-front.js';
import type { Route } from '../router/types.js';
import type { FrontResponse } from './h1-front.js';
import { preflightHeaders, withCorsHeaders, type Preflight } from './cors.js';
import { renderErrorPage, wantsHtml } from './error-pages.js';
import { ERROR_CODE_HEADER, ROUTE_HEADER } from './forward-headers.js';
import type { ProxyCore } from './proxy-core.js';
import type { RequestContext } from './request-context.js';
import { recordExchange, type RecordedRoute } from './request-log.js';
import type { ProxyErrorInfo } from './upstream-errors.js';

/** The response of either listener: node's HTTP/1.1 or h2 compat response, the HTTP/1.1 front's or the h2 front's. */
export type ClientResponse = ServerResponse | Http2ServerResponse | FrontResponse | H2Response;

/**
 * Answers with `body` (JSON or HTML), the flat `extra` headers (the waking page's `retry-after`),
 * `x-devproxy-error: <code>` when given, the route's `x-devproxy-route`, and CORS for a worktree
 * origin so its page can read why; records it. `begun` is when the exchange began
 * (`exchangeStart`), 0 when devproxy answered at once.
 */
export function sendPage(
  core: ProxyCore,
  context: RequestContext,
  res: ClientResponse,
  status: number,
  body: string,
  json: boolean,
  route?: Route,
  corsOrigin?: string,
  code?: string,
  begun = 0,
  extra?: readonly string[],
): void {
  let headers = [
    'content-type', json ? 'application/json; charset=utf-8' : 'text/html; charset=utf-8',
    'content-length', String(Buffer.byteLength(body)),
    'cache-control', 'no-store',
  ];
  if (extra !== undefined) headers.push(...extra);
  // Readable without the body: HEAD answers have none, and SDKs surface response headers (the
  // Azure SDKs put them in RestError.details).
  if (code !== undefined) headers.push(ERROR_CODE_HEADER, code);
  if (route !== undefined) headers.push(ROUTE_HEADER, route.mode);
  // The worktree's UI must be able to read why devproxy refused its fetch.
  if (corsOrigin !== undefined) headers = withCorsHeaders(headers, corsOrigin, 'replace');
  const out = res as ServerResponse;
  out.writeHead(status, headers);
  if (context.method === 'HEAD') out.end();
  else out.end(body);
  recordExchange(core.options.requestLog, context, route, 'devproxy', status, context.method === 'HEAD' ? 0 : Buffer.byteLength(body), headers, begun);
}

/** Answers with the error page of `info`, HTML for browsers and JSON for everyone else. */
export function sendError(core: ProxyCore, context: RequestContext, res: ClientResponse, info: ProxyErrorInfo, route?: Route, corsOrigin?: string, begun = 0): void {
  const html = wantsHtml(context.headers.accept);
  sendPage(core, context, res, info.status, renderErrorPage(info, html), !html, route, corsOrigin, info.code, begun);
}

/**
 * Answers the worktree `origin`'s CORS `preflight` itself with a 204 (`x-devproxy-route: <route>`),
 * recorded as answered by `answeredBy`.
 */
export function sendPreflight(core: ProxyCore, context: RequestContext, res: ClientResponse, route: Route, origin: string, preflight: Preflight, mode: 'local' | 'remote', answeredBy: RecordedRoute, begun = 0): void {
  const answer = preflightHeaders(origin, preflight.method, preflight.headers, mode);
  (res as ServerResponse).writeHead(204, answer).end();
  recordExchange(core.options.requestLog, context, route, answeredBy, 204, 0, answer, begun);
}

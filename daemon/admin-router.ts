/**
 * The admin API's router, on node's own `http` (fastify cost the daemon ~7 MiB at start for a
 * handful of JSON routes). Matching is exact and literal, as find-my-way's was: a path matches a
 * route only segment by segment after percent-decoding each segment, so `%2F` never splits one,
 * and case, `//`, `.`/`..`, a trailing `/` and `;` are not normalised (they match nothing). The
 * absolute form `http(s)://<anything>/…` is routed by its path, as before. `match` and
 * `parseTarget` are pure; `AdminRouter.handle` does the I/O.
 */
import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import { Readable } from 'node:stream';
import { DevproxyError, httpStatusOf } from '../errors.js';

/** Largest request body read (fastify's default, which the admin API had): more is 413. */
export const ADMIN_BODY_LIMIT_BYTES = 1024 * 1024;

/** The scheme and authority of an absolute-form target (`HTTP://user@host:1/x`), routed by its path as find-my-way did. */
const ABSOLUTE_FORM = /^https?:\/\/.*?\//i;

/** A request target split for routing. */
export interface ParsedTarget {
  /** The path's segments, each percent-decoded; undefined when the target is no path (`*`, `ftp://…`): it matches no route. */
  segments: string[] | undefined;
  /** A percent-escape in the path is malformed (`%zz`): 400. */
  malformed: boolean;
  /** The raw query (after the first `?`), undecoded. */
  query: string;
}

/** Splits `url` (the request line's target) into decoded path segments and its query. */
export function parseTarget(url: string): ParsedTarget {
  const target = ABSOLUTE_FORM.test(url) ? url.replace(ABSOLUTE_FORM, '/') : url;
  const question = target.indexOf('?');
  const hash = target.indexOf('#');
  const pathEnd = Math.min(question === -1 ? target.length : question, hash === -1 ? target.length : hash);
  const path = target.slice(0, pathEnd);
  const query = question === -1 || question > pathEnd ? '' : target.slice(question + 1);
  if (!path.startsWith('/')) return { segments: undefined, malformed: false, query };
  try {
    return { segments: path.split('/').map((segment) => decodeURIComponent(segment)), malformed: false, query };
  } catch {
    return { segments: undefined, malformed: true, query };
  }
}

/** The route `segments` reach with `method` (HEAD reaches GET routes), and its `:param` values. */
export function match<T extends { method: string; pattern: string }>(routes: readonly T[], method: string, segments: readonly string[]): { route: T; params: Record<string, string> } | undefined {
  const wanted = method === 'HEAD' ? 'GET' : method;
  for (const route of routes) {
    if (route.method !== wanted) continue;
    const parts = route.pattern.split('/');
    if (parts.length !== segments.length) continue;
    const params: Record<string, string> = {};
    if (parts.every((part, i) => (part.startsWith(':') ? ((params[part.slice(1)] = segments[i]!), true) : part === segments[i]))) return { route, params };
  }
  return undefined;
}

/** The media type of a Content-Type header, lower-cased, without parameters. */
export function mediaType(header: string | undefined): string | undefined {
  if (header === undefined) return undefined;
  return header.split(';', 1)[0]!.trim().toLowerCase();
}

/** One routed request, as a handler sees it. */
export interface AdminRequest {
  raw: IncomingMessage;
  params: Record<string, string>;
  /** The query parameter `name` when given exactly once (a repeated one counts as not given). */
  query(name: string): string | undefined;
  /** The JSON body (a string for `text/plain`); undefined when none was sent. */
  body: unknown;
}

/** How a handler answers when its value is not a JSON 200. */
export interface AdminReply {
  /** Sends `value` as JSON with `status`. */
  json(status: number, value: unknown): void;
  /** Sends `body` with `status` and `headers` (headers only for HEAD). */
  send(status: number, headers: OutgoingHttpHeaders, body: string): void;
  /** Streams `chunks` as `contentType`; a failure before the first chunk is an error reply, after it ends the connection. */
  stream(contentType: string, chunks: AsyncIterable<string>): void;
  /** Takes the response over (event streams): the router writes nothing more. */
  hijack(): ServerResponse;
  /** Calls `callback` once the reply has been handed to the connection. */
  onSent(callback: () => void): void;
}

/** A route's handler: its return value is sent as JSON 200 unless it answered through `reply`. */
export type AdminHandler = (request: AdminRequest, reply: AdminReply) => unknown;

interface Route {
  method: string;
  pattern: string;
  handler: AdminHandler;
}

/**
 * Called for every request before its body is read, with the pattern of the route it matched
 * (undefined when none): answers and returns false to refuse it.
 */
export type AdminGate = (req: IncomingMessage, res: ServerResponse, route: string | undefined) => boolean;

/** Routes, body parsing, JSON replies and the one error reply of the admin API. */
export class AdminRouter {
  readonly #routes: Route[] = [];

  constructor(private readonly gate: AdminGate) {}

  /** Adds a GET route (HEAD answers it too, headers only). */
  get(pattern: string, handler: AdminHandler): void {
    this.#routes.push({ method: 'GET', pattern, handler });
  }

  /** Adds a POST route (JSON body). */
  post(pattern: string, handler: AdminHandler): void {
    this.#routes.push({ method: 'POST', pattern, handler });
  }

  /** Adds a PUT route (JSON body). */
  put(pattern: string, handler: AdminHandler): void {
    this.#routes.push({ method: 'PUT', pattern, handler });
  }

  /** Serves one request: gate, route, body, handler, reply; every failure becomes an error reply. */
  async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const method = req.method ?? 'GET';
    const target = parseTarget(req.url ?? '');
    const found = target.segments === undefined ? undefined : match(this.#routes, method, target.segments);
    let answered = false;
    const reply: AdminReply = {
      json: (status, value) => {
        answered = true;
        writeJson(res, status, value);
      },
      send: (status, headers, body) => {
        answered = true;
        res.writeHead(status, { ...headers, 'content-length': Buffer.byteLength(body) });
        res.end(body);
      },
      stream: (contentType, chunks) => {
        answered = true;
        streamReply(res, contentType, chunks);
      },
      hijack: () => {
        answered = true;
        return res;
      },
      onSent: (callback) => res.once('finish', callback),
    };
    try {
      if (!this.gate(req, res, found?.route.pattern)) return;
      if (target.malformed) throw clientError(400, `'${req.url ?? ''}' is not a valid url component`);
      if (!found) throw clientError(404, `no admin API route ${method} ${req.url ?? ''}`);
      const query = new URLSearchParams(target.query);
      const body = method === 'POST' || method === 'PUT' ? await readBody(req) : undefined;
      const value = await found.route.handler({ raw: req, params: found.params, body, query: (name) => (query.getAll(name).length === 1 ? (query.get(name) ?? undefined) : undefined) }, reply);
      if (!answered) reply.json(200, value);
    } catch (error) {
      if (!res.headersSent) reply.json(...errorReply(error));
      else res.destroy();
    }
  }
}

/** A caller's mistake with its HTTP status, answered with the usage code. */
function clientError(status: number, message: string): DevproxyError {
  return Object.assign(new DevproxyError('DEVPROXY_ERR_USAGE', message), { statusCode: status });
}

/**
 * The status and body for a failed request: a caller's mistake (unknown service, bad body) is its
 * 4xx with its code, never a 500.
 */
export function errorReply(error: unknown): [number, { error: { code: string; message: string; hint: string | null } }] {
  const e = error as Error & { code?: string; hint?: string; statusCode?: number };
  const status = e.statusCode && e.statusCode < 500 ? e.statusCode : httpStatusOf(error);
  return [status, { error: { code: e.code ?? 'DEVPROXY_ERR_INTERNAL', message: e.message, hint: e.hint ?? null } }];
}

/**
 * The body of a POST or PUT: JSON (`application/json`), a string (`text/plain`), or undefined when
 * none was sent without a type; any other type is 415, more than the limit 413, bad JSON 400.
 */
async function readBody(req: IncomingMessage): Promise<unknown> {
  const type = mediaType(req.headers['content-type']);
  const length = req.headers['content-length'];
  const sent = req.headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0');
  if (type === undefined && !sent) return undefined;
  if (type !== 'application/json' && type !== 'text/plain') throw clientError(415, `the admin API reads application/json bodies, not ${type ?? 'a body without a Content-Type'}`);
  if (Number(length) > ADMIN_BODY_LIMIT_BYTES) throw clientError(413, `the request body is larger than ${ADMIN_BODY_LIMIT_BYTES} bytes`);
  const text = await readText(req);
  if (type === 'text/plain') return text;
  if (text === '') throw clientError(400, "the body is empty but its Content-Type is 'application/json'");
  try {
    return JSON.parse(text, refusePrototypeKeys);
  } catch {
    throw clientError(400, "the body is not valid JSON but its Content-Type is 'application/json'");
  }
}

/**
 * The body as text, up to the limit. Past it the rest is left to node, which discards it once the
 * 413 is sent (destroying the request would reset the connection before the client reads the answer).
 */
function readText(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      if (size <= ADMIN_BODY_LIMIT_BYTES) {
        chunks.push(chunk);
        return;
      }
      req.off('data', onData).off('end', onEnd);
      req.resume();
      reject(clientError(413, `the request body is larger than ${ADMIN_BODY_LIMIT_BYTES} bytes`));
    };
    const onEnd = (): void => resolve(Buffer.concat(chunks).toString('utf8'));
    // A client gone before the end: `close` without `end` (after `end` the rejection is a no-op).
    req.on('data', onData).once('end', onEnd).once('error', reject).once('close', () => reject(new Error('the client went away before the body ended')));
  });
}

/** Refuses `__proto__` and `constructor.prototype` keys, as fastify's parser did: no body reaches an object's prototype. */
function refusePrototypeKeys(key: string, value: unknown): unknown {
  if (key === '__proto__' || (key === 'constructor' && typeof value === 'object' && value !== null && 'prototype' in value)) throw new SyntaxError('prototype key');
  return value;
}

/**
 * Streams `chunks`; the head goes out with the first chunk, so a source that fails at once (an
 * unknown service) still gets its error reply. The source stops when the client goes away.
 */
function streamReply(res: ServerResponse, contentType: string, chunks: AsyncIterable<string>): void {
  const source = Readable.from(chunks);
  res.statusCode = 200;
  res.setHeader('content-type', contentType);
  source.once('error', (error) => {
    if (res.headersSent) {
      res.destroy();
      return;
    }
    res.removeHeader('content-type');
    writeJson(res, ...errorReply(error));
  });
  res.once('close', () => source.destroy());
  source.pipe(res);
}

/** Answers with `value` as JSON. */
export function writeJson(res: ServerResponse, status: number, value: unknown): void {
  const text = JSON.stringify(value) ?? 'null';
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

/**
 * The recent-requests log: a fixed ring of preallocated slots the proxy fills as each exchange
 * ends, read by the dashboard and `devproxy requests`. Recording assigns fields of the next slot
 * and keeps each side's headers as one joined string: no closure, no timer unless someone
 * listens. Redaction (proxy/log-redaction.ts: secret headers, secret query values in the path) and
 * JSON shaping happen only on the read side.
 */
import type { Route } from '../router/types.js';
import { isSecretHeader, REDACTED, redactPath } from './log-redaction.js';
import type { RequestContext } from './request-context.js';

/** How many exchanges the log keeps: the last 1,000. */
export const REQUEST_LOG_CAPACITY = 1000;
/**
 * Header and path characters one entry may keep for its detail view (request + response). An
 * exchange over it keeps its summary only, so the whole log stays under capacity × this.
 */
export const MAX_ENTRY_CHARS = 8 * 1024;
/** Longest path kept, in characters; longer ones are cut (the summary says so with `…`). */
const MAX_PATH_CHARS = 2048;
/** Estimated fixed cost of one slot (object, fields, array headers), in bytes, for `stats()`. */
const SLOT_OVERHEAD_BYTES = 240;

const NO_HEADERS: readonly string[] = [];
/**
 * Joins a slot's header fields. Neither side can hold a line feed (HTTP/1.1 ends a field at it,
 * HTTP/2 and node's writeHead refuse it); the read side still checks the field count.
 */
const FIELD_SEPARATOR = '\n';

/** How an exchange was answered: by the route's target, or by devproxy itself (error pages, refusals, redirects). */
export type RecordedRoute = 'local' | 'remote' | 'devproxy';

/** What the log says about every exchange, in the slot and in the summary alike. */
interface ExchangeFacts {
  /** Increases by one per exchange; a client asks for `after=<seq>`. */
  seq: number;
  host: string;
  /** '' for hosts no route knows. */
  worktree: string;
  service: string;
  method: string;
  path: string;
  /** HTTP status sent; 0 when the client went away before an answer. */
  status: number;
  route: RecordedRoute;
  /** Response body bytes sent to the client. */
  bytes: number;
}

/** One slot of the ring; reused for every `capacity`-th exchange. */
interface Slot extends ExchangeFacts {
  /** performance.now() when the exchange began (0: unknown, devproxy answered at once). */
  begun: number;
  /** performance.now() when it ended. */
  ended: number;
  /**
   * The client's raw headers joined by {@link FIELD_SEPARATOR}. One string per side instead of the
   * arrays and their dozen strings: each object a slot holds lives through ~1,000 exchanges, so it
   * is copied by young-generation GCs and then promoted, a cost paid per request on every field.
   */
  requestHeaders: string;
  /** How many fields `requestHeaders` joins. */
  requestFields: number;
  /** devproxy's answer headers, joined like `requestHeaders`. */
  responseHeaders: string;
  responseFields: number;
  /** The route the exchange took (names the headers its remote hop injected). */
  routeRef: Route | undefined;
  /** Characters kept by this slot's headers and path. */
  chars: number;
  headersOmitted: boolean;
}

/** The summary of one exchange, as the admin API and `devproxy requests --json` give it. */
export interface RequestEntry extends ExchangeFacts {
  /** When the exchange began, ISO 8601. */
  time: string;
  durationMs: number;
}

/** One exchange with its headers, secrets redacted. */
export interface RequestDetail extends RequestEntry {
  /** [name, value] as the client sent them; Authorization, Cookie, API keys ({@link isSecretHeader}) read `[redacted]`. */
  requestHeaders: Array<[string, string]>;
  /** Headers devproxy added on the remote hop (auth, tokens): names only, values always `[redacted]`. */
  injectedHeaders: Array<[string, string]>;
  /** [name, value] as devproxy answered; Set-Cookie reads `[redacted]`. */
  responseHeaders: Array<[string, string]>;
  /** True when the headers were larger than one entry may keep ({@link MAX_ENTRY_CHARS}). */
  headersOmitted: boolean;
}

/** Size figures of the log, for the bench and the dashboard. */
export interface RequestLogStats {
  capacity: number;
  /** Entries held now (≤ capacity). */
  size: number;
  /** Exchanges recorded since the daemon started. */
  recorded: number;
  recording: boolean;
  /** Estimated memory held by the entries, in bytes (2 bytes per kept character + slot overhead). */
  approxBytes: number;
  /** Upper bound of `approxBytes` whatever the traffic. */
  maxBytes: number;
}

/** Receives every recorded exchange, in batches (one per event-loop turn at most). */
export type RequestListener = (entries: RequestEntry[]) => void;

/** The ring buffer of recent exchanges. */
export class RequestLog {
  readonly capacity: number;
  /** False pauses recording (the dashboard's record button, the bench's "log off" phase). */
  recording = true;
  readonly #slots: Slot[];
  #next = 1;
  #chars = 0;
  #listeners = new Set<RequestListener>();
  /** Seq of the first entry not yet handed to listeners; 0 when no flush is pending. */
  #pendingFrom = 0;
  readonly #timeOrigin = performance.timeOrigin;

  constructor(capacity = REQUEST_LOG_CAPACITY) {
    this.capacity = capacity;
    this.#slots = new Array<Slot>(capacity);
    for (let i = 0; i < capacity; i++) {
      this.#slots[i] = {
        seq: 0, begun: 0, ended: 0, host: '', worktree: '', service: '', method: '', path: '', status: 0, route: 'devproxy', bytes: 0,
        requestHeaders: '', requestFields: 0, responseHeaders: '', responseFields: 0, routeRef: undefined, chars: 0, headersOmitted: false,
      };
    }
  }

  /**
   * Records one finished exchange into the next slot. `begun` is `performance.now()` at its
   * start (0 when devproxy answered at once); `requestHeaders` is the client's rawHeaders and
   * `responseHeaders` the flat array devproxy wrote (kept joined, see {@link Slot.requestHeaders}).
   */
  record(
    begun: number,
    host: string,
    route: Route | undefined,
    answeredBy: RecordedRoute,
    method: string,
    path: string,
    status: number,
    bytes: number,
    requestHeaders: readonly string[],
    responseHeaders: readonly string[] | undefined,
  ): void {
    if (!this.recording) return;
    const seq = this.#next++;
    const slot = this.#slots[seq % this.capacity] as Slot;
    this.#chars -= slot.chars;
    const ended = performance.now();
    slot.seq = seq;
    slot.begun = begun === 0 ? ended : begun;
    slot.ended = ended;
    slot.host = host;
    slot.worktree = route === undefined ? '' : route.worktree;
    slot.service = route === undefined ? '' : route.service;
    slot.routeRef = route;
    slot.method = method;
    slot.route = answeredBy;
    slot.status = status;
    slot.bytes = bytes;
    const response = responseHeaders ?? NO_HEADERS;
    // One separator per field, as the joined strings hold them.
    let chars = host.length + method.length + requestHeaders.length + response.length;
    for (let i = 0; i < requestHeaders.length; i++) chars += (requestHeaders[i] as string).length;
    for (let i = 0; i < response.length; i++) chars += (response[i] as string).length;
    if (chars + Math.min(path.length, MAX_PATH_CHARS) > MAX_ENTRY_CHARS) {
      slot.requestHeaders = '';
      slot.requestFields = 0;
      slot.responseHeaders = '';
      slot.responseFields = 0;
      slot.headersOmitted = true;
      chars = host.length + method.length;
    } else {
      slot.requestHeaders = requestHeaders.join(FIELD_SEPARATOR);
      slot.requestFields = requestHeaders.length;
      slot.responseHeaders = response.join(FIELD_SEPARATOR);
      slot.responseFields = response.length;
      slot.headersOmitted = false;
    }
    slot.path = path.length > MAX_PATH_CHARS ? `${path.slice(0, MAX_PATH_CHARS)}…` : path;
    chars += slot.path.length;
    slot.chars = chars;
    this.#chars += chars;
    if (this.#listeners.size > 0 && this.#pendingFrom === 0) {
      this.#pendingFrom = seq;
      setImmediate(flushLog, this);
    }
  }

  /** Summaries of the entries after `afterSeq` (all by default), oldest first, at most `limit`. */
  entries(afterSeq = 0, limit = this.capacity): RequestEntry[] {
    const first = Math.max(afterSeq + 1, this.#next - this.capacity, 1);
    const from = Math.max(first, this.#next - limit);
    const out: RequestEntry[] = [];
    for (let seq = from; seq < this.#next; seq++) out.push(this.#summary(this.#slots[seq % this.capacity] as Slot));
    return out;
  }

  /** One entry with its redacted headers; undefined once the ring has overwritten it. */
  detail(seq: number): RequestDetail | undefined {
    const slot = this.#slots[seq % this.capacity] as Slot;
    if (slot.seq !== seq || seq === 0) return undefined;
    const injected = slot.route === 'remote' ? injectedHeaderNames(slot.routeRef) : [];
    const secret = new Set(injected);
    const request = splitFields(slot.requestHeaders, slot.requestFields);
    const response = splitFields(slot.responseHeaders, slot.responseFields);
    return {
      ...this.#summary(slot),
      requestHeaders: redactedPairs(request ?? NO_HEADERS, secret),
      injectedHeaders: injected.map((name) => [name, REDACTED]),
      responseHeaders: redactedPairs(response ?? NO_HEADERS, secret),
      // Fields that could not be split back are shown as omitted, not as an empty list.
      headersOmitted: slot.headersOmitted || request === undefined || response === undefined,
    };
  }

  /** Size figures; `approxBytes` counts what the entries hold, bounded by `maxBytes`. */
  stats(): RequestLogStats {
    const size = Math.min(this.#next - 1, this.capacity);
    return {
      capacity: this.capacity,
      size,
      recorded: this.#next - 1,
      recording: this.recording,
      approxBytes: this.#chars * 2 + this.capacity * SLOT_OVERHEAD_BYTES,
      maxBytes: this.capacity * (MAX_ENTRY_CHARS * 2 + SLOT_OVERHEAD_BYTES + 2 * MAX_PATH_CHARS),
    };
  }

  /** Calls `listener` with every batch recorded from now on; returns the unsubscribe. */
  subscribe(listener: RequestListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Hands the entries recorded since the last flush to the listeners. */
  flush(): void {
    const from = this.#pendingFrom;
    this.#pendingFrom = 0;
    if (from === 0 || this.#listeners.size === 0) return;
    const batch = this.entries(from - 1);
    for (const listener of this.#listeners) listener(batch);
  }

  #summary(slot: Slot): RequestEntry {
    return {
      seq: slot.seq,
      time: new Date(this.#timeOrigin + slot.begun).toISOString(),
      durationMs: Math.round((slot.ended - slot.begun) * 100) / 100,
      host: slot.host,
      worktree: slot.worktree,
      service: slot.service,
      method: slot.method,
      // Redacted here, on the read side: recording stays a few field assignments.
      path: redactPath(slot.path),
      status: slot.status,
      route: slot.route,
      bytes: slot.bytes,
    };
  }
}

/**
 * The proxy's hook: records one answered request when a log is configured. `begun` is
 * `performance.now()` at the exchange's start, 0 when devproxy answered at once.
 */
export function recordExchange(
  log: RequestLog | undefined,
  context: RequestContext,
  route: Route | undefined,
  answeredBy: RecordedRoute,
  status: number,
  bytes: number,
  responseHeaders: readonly string[] | undefined,
  begun: number,
): void {
  if (log === undefined) return;
  const host = route === undefined ? (context.authority ?? '') : route.host;
  log.record(begun, host, route, answeredBy, context.method, context.url, status, bytes, context.rawHeaders, responseHeaders);
}

/** `performance.now()` when a log is configured, else 0 (no clock read for nobody). */
export function exchangeStart(log: RequestLog | undefined): number {
  return log === undefined ? 0 : performance.now();
}

function flushLog(log: RequestLog): void {
  log.flush();
}

/** Names (lower-case) of the headers the route's remote hop adds that carry credentials. */
function injectedHeaderNames(route: Route | undefined): string[] {
  const target = route?.target;
  if (target?.kind !== 'remote') return [];
  const auth = target.hop?.auth;
  if (auth === undefined) return [];
  const names = [...auth.headers.keys()];
  if (auth.azure !== undefined && !names.includes('authorization')) names.push('authorization');
  return names;
}

/**
 * A slot's joined header fields as the flat list they came from; undefined when the count does not
 * match, so a field that held the separator can never shift a secret value into a name's place.
 */
function splitFields(joined: string, count: number): readonly string[] | undefined {
  if (count === 0) return NO_HEADERS;
  const fields = joined.split(FIELD_SEPARATOR);
  return fields.length === count ? fields : undefined;
}

function redactedPairs(flat: readonly string[], secret: ReadonlySet<string>): Array<[string, string]> {
  const pairs: Array<[string, string]> = [];
  for (let i = 0; i + 1 < flat.length; i += 2) {
    const name = flat[i] as string;
    pairs.push([name, secret.has(name.toLowerCase()) || isSecretHeader(name) ? REDACTED : (flat[i + 1] as string)]);
  }
  return pairs;
}

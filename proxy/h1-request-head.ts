/**
 * Which HTTP/1.1 request heads devproxy's own front (`h1-front.ts`) serves itself, and what they
 * say. Pure. The front takes a strict, common subset: `HTTP/1.1`, an origin-form target, no body,
 * no `Expect`, no upgrade, no repeated field, no byte node's parser (llhttp) could read another
 * way. Everything else is left to node:http, which serves or refuses it as it always did, so this
 * parser never refuses anything itself (not even a missing Host) and a request is never framed two ways.
 */
import type { IncomingHttpHeaders } from 'node:http';

/** A request head the front serves. */
export interface ServedHead {
  method: string;
  /** The origin-form target as sent. */
  url: string;
  /** Field names as sent and values without surrounding whitespace, flat `[name, value, …]` (node's `rawHeaders`). */
  rawHeaders: string[];
  /** Lower-case names to values, as node's `req.headers` for fields that are not repeated. */
  headers: IncomingHttpHeaders;
}

/** Most fields in a head the front serves; a longer one goes to node:http. */
export const MAX_SERVED_FIELDS = 100;

/** RFC 9110 token characters (field names, methods), by char code below 128. */
const TCHAR = new Uint8Array(128);
for (const c of "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz") TCHAR[c.charCodeAt(0)] = 1;

const SP = 0x20;
const HTAB = 0x09;
const CR = 0x0d;
const LF = 0x0a;
const VERSION = ' HTTP/1.1';
/** A byte a field value may not hold (HTAB, visible ASCII and obs-text are allowed). */
const CONTROL = /[\0-\x08\x0a-\x1f\x7f]/;

function isTchar(code: number): boolean {
  return code < 128 && TCHAR[code] === 1;
}

/**
 * Reads `text`, a request head without its final CRLF CRLF (latin1, as node decodes header
 * bytes); undefined when the front should leave the request to node:http. One pass over the
 * characters: a request line `method SP origin-form SP HTTP/1.1` with visible ASCII in the target,
 * then `token ":" OWS value OWS` lines ended by CRLF, values of HTAB, visible ASCII and obs-text.
 */
export function parseServedHead(text: string): ServedHead | undefined {
  const end = text.length;
  let at = 0;
  while (at < end && isTchar(text.charCodeAt(at))) at++;
  if (at === 0 || text.charCodeAt(at) !== SP) return undefined;
  const method = text.slice(0, at);
  const targetStart = ++at;
  if (text.charCodeAt(at) !== 0x2f) return undefined;
  for (; at < end; at++) {
    const code = text.charCodeAt(at);
    if (code === SP) break;
    if (code < 0x21 || code > 0x7e) return undefined;
  }
  const url = text.slice(targetStart, at);
  if (!text.startsWith(VERSION, at)) return undefined;
  at += VERSION.length;
  const rawHeaders: string[] = [];
  const headers: IncomingHttpHeaders = {};
  while (at < end) {
    if (text.charCodeAt(at) !== CR || text.charCodeAt(at + 1) !== LF) return undefined;
    at += 2;
    if (rawHeaders.length === 2 * MAX_SERVED_FIELDS) return undefined;
    const nameStart = at;
    while (at < end && isTchar(text.charCodeAt(at))) at++;
    // An empty name, a space before the colon or obs-fold (a line starting with SP/HTAB) fail here.
    if (at === nameStart || text.charCodeAt(at) !== 0x3a) return undefined;
    const name = text.slice(nameStart, at);
    at++;
    while (at < end && (text.charCodeAt(at) === SP || text.charCodeAt(at) === HTAB)) at++;
    let lineEnd = text.indexOf('\r', at);
    if (lineEnd === -1) lineEnd = end;
    let valueEnd = lineEnd;
    while (valueEnd > at && (text.charCodeAt(valueEnd - 1) === SP || text.charCodeAt(valueEnd - 1) === HTAB)) valueEnd--;
    const value = text.slice(at, valueEnd);
    // A bare LF, NUL and the other control bytes but HTAB, DEL.
    if (CONTROL.test(value)) return undefined;
    at = lineEnd;
    const lower = name.toLowerCase();
    // A repeated field, or one named like an Object property (`__proto__`, `constructor`).
    if (headers[lower] !== undefined || !servable(lower, value)) return undefined;
    headers[lower] = value;
    rawHeaders.push(name, value);
  }
  // node answers an HTTP/1.1 request without Host with a bare 400 (its `requireHostHeader`).
  if (headers.host === undefined) return undefined;
  return { method, url, rawHeaders, headers };
}

/** False for a field that gives the request a body, an interim answer, another protocol or a close. */
function servable(lower: string, value: string): boolean {
  switch (lower) {
    case 'content-length':
      return value === '0';
    case 'transfer-encoding':
    case 'expect':
    case 'upgrade':
      return false;
    case 'connection':
      return value.toLowerCase() === 'keep-alive';
    default:
      return true;
  }
}

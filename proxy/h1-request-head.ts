/**
 * Which HTTP/1.1 request heads devproxy's own front (`h1-front.ts`) serves itself, and what they
 * say. Pure. The front takes a strict, common subset: `HTTP/1.1`, an origin-form target, no body,
 * no `Expect`, no upgrade, no repeated field, no byte node's parser (llhttp) could read another
 * way. Everything else is left to node:http, which serves or refuses it as it always did, so this
 * parser never refuses anything itself (not even a missing Host) and a request is never framed two ways.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { FIELD_LINE } from './h1-grammar.js';

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

/** `method SP origin-form SP HTTP/1.1`: visible ASCII in the target (llhttp's strict reading). */
const REQUEST_LINE = /^([!#$%&'*+\-.^_`|~0-9A-Za-z]+) (\/[\x21-\x7e]*) HTTP\/1\.1$/;

/**
 * Reads `text`, a request head without its final CRLF CRLF (latin1, as node decodes header
 * bytes); undefined when the front should leave the request to node:http.
 */
export function parseServedHead(text: string): ServedHead | undefined {
  const lines = text.split('\r\n');
  if (lines.length - 1 > MAX_SERVED_FIELDS) return undefined;
  const request = REQUEST_LINE.exec(lines[0] as string);
  if (request === null) return undefined;
  const rawHeaders: string[] = [];
  const headers: IncomingHttpHeaders = Object.create(null) as IncomingHttpHeaders;
  for (let i = 1; i < lines.length; i++) {
    // A bare CR or LF, obs-fold, a space before the colon or a control byte fails the grammar.
    const field = FIELD_LINE.exec(lines[i] as string);
    if (field === null) return undefined;
    const name = field[1] as string;
    const value = field[2] as string;
    const lower = name.toLowerCase();
    if (headers[lower] !== undefined || !servable(lower, value)) return undefined;
    headers[lower] = value;
    rawHeaders.push(name, value);
  }
  // node answers an HTTP/1.1 request without Host with a bare 400 (its `requireHostHeader`).
  if (headers.host === undefined) return undefined;
  return { method: request[1] as string, url: request[2] as string, rawHeaders, headers };
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

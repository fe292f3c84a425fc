/**
 * The messages between the daemon and its certificate worker (`mint-worker.ts`), and the error
 * shape that crosses the process boundary. Pure: no process, no crypto.
 *
 * Structured clone (the IPC channel's `advanced` serialization) keeps an error's message but not its class or extra fields (`code`, `hint`),
 * so errors travel as {@link WireError} and are rebuilt on the daemon's side as the same
 * `DevproxyError` (code, message, hint) or the same built-in error class the caller would have
 * met minting in-process.
 */
import { DevproxyError, ERROR_HINTS, type ErrorCode } from '../errors.js';
import type { PemPair } from './authority.js';

/** One request to the worker; `id` pairs it with its answer. */
export type MintRequest =
  | { id: number; op: 'ca'; opts: { commonName: string; validityDays?: number } }
  | { id: number; op: 'leaf'; ca: PemPair; names: string[]; opts: { validityDays?: number; notBefore?: Date; notAfter?: Date } };

/** The worker's answer to request `id`: the minted pair, or the error it threw. */
export type MintResponse = { id: number; pair: PemPair } | { id: number; error: WireError };

/** An error reduced to what structured clone carries and the caller may look at. */
export interface WireError {
  name: string;
  message: string;
  /** `DEVPROXY_ERR_*` or Node's own (`ERR_OSSL_…`), when the error had one. */
  code?: string;
  hint?: string;
  stack?: string;
}

/** What the worker sends back for `error` (anything thrown, not only `Error`s). */
export function toWireError(error: unknown): WireError {
  if (!(error instanceof Error)) return { name: 'Error', message: String(error) };
  const { code, hint } = error as { code?: unknown; hint?: unknown };
  return {
    name: error.name,
    message: error.message,
    ...(typeof code === 'string' ? { code } : {}),
    ...(typeof hint === 'string' ? { hint } : {}),
    ...(error.stack !== undefined ? { stack: error.stack } : {}),
  };
}

/** Built-in classes rebuilt as themselves, so `instanceof TypeError` holds as it did in-process. */
const BUILT_IN_ERRORS: Record<string, ErrorConstructor> = { TypeError, RangeError, SyntaxError, ReferenceError };

/** The error the daemon throws for a {@link WireError}: same class, code, message and hint. */
export function fromWireError(wire: WireError): Error {
  if (wire.name === 'DevproxyError' && wire.code !== undefined && wire.code in ERROR_HINTS) {
    const error = new DevproxyError(wire.code as ErrorCode, wire.message, wire.hint === undefined ? {} : { hint: wire.hint });
    if (wire.stack !== undefined) error.stack = wire.stack;
    return error;
  }
  const error = new (BUILT_IN_ERRORS[wire.name] ?? Error)(wire.message);
  if (error.name !== wire.name) error.name = wire.name;
  if (wire.code !== undefined) Object.assign(error, { code: wire.code });
  if (wire.stack !== undefined) error.stack = wire.stack;
  return error;
}

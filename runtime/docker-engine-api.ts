/**
 * The Docker Engine API over `node:http`: the few calls devproxy makes, on the unix socket or the
 * tcp address DOCKER_HOST names. A client of its own because dockerode costs the daemon ~10 MiB
 * resident (most of it ssh2, loaded by docker-modem for `ssh://` hosts devproxy never uses).
 * Paths are unversioned, as dockerode sends them: the engine answers them at its own current
 * version, so a newer engine that no longer serves an old pinned version keeps working. The
 * framing parts (log frames, event lines, query strings, errors) are pure and unit-tested.
 */
import { request, type IncomingMessage } from 'node:http';

/** How long a call may wait for the engine (ms): the whole answer, or a stream's response head. */
export const ENGINE_TIMEOUT_MS = 30_000;

/** Where the engine listens, as `node:http` takes it: a unix socket, or a plain-http tcp address. */
export type DockerConnection = { socketPath: string } | { host: string; port: number; protocol: 'http' };

/** Connection options for a DOCKER_HOST value (`unix://…` or `tcp://host[:port]`, 2375 by default, no TLS). */
export function dockerConnectionOptions(dockerHost: string): DockerConnection {
  if (dockerHost.startsWith('unix://')) return { socketPath: dockerHost.slice('unix://'.length) };
  const url = new URL(dockerHost.replace(/^tcp:/, 'http:'));
  return { host: url.hostname, port: Number(url.port || 2375), protocol: 'http' };
}

/** Query parameters of an engine call: objects (`filters`) travel as JSON, as the API wants them. */
export type EngineQuery = Record<string, string | number | boolean | object | undefined>;

/** Pure: the request path for an API path and its query (undefined values left out). */
export function enginePath(path: string, query: EngineQuery = {}): string {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query)) {
    if (value === undefined) continue;
    params.append(key, typeof value === 'object' ? JSON.stringify(value) : String(value));
  }
  const search = params.toString();
  return search ? `${path}?${search}` : path;
}

/** A non-2xx answer of the engine: `statusCode` is its status, the message carries the engine's own. */
export class DockerApiError extends Error {
  /** HTTP status the engine answered (304 not modified, 404 gone, 409 conflict…). */
  readonly statusCode: number;

  constructor(method: string, path: string, statusCode: number, body: string) {
    super(`Docker engine answered ${statusCode} to ${method} ${path.split('?')[0]}: ${engineMessage(body) || 'no message'}`);
    this.name = 'DockerApiError';
    this.statusCode = statusCode;
  }
}

/** Pure: the engine's error text from an error body (`{"message": …}`), else the body itself. */
export function engineMessage(body: string): string {
  try {
    const parsed = JSON.parse(body) as { message?: unknown };
    if (typeof parsed?.message === 'string') return parsed.message;
  } catch {
    // Not JSON (a proxy in front of the engine, or a plain-text answer): show it as it is.
  }
  return body.trim();
}

/** True when `error` is the engine answering `status`. */
export function isEngineStatus(error: unknown, status: number): boolean {
  return error instanceof DockerApiError && error.statusCode === status;
}

/** One call of {@link DockerEngineApi.request}. */
interface EngineCall {
  method?: 'GET' | 'POST' | 'DELETE';
  query?: EngineQuery;
  /** Wait this long instead of {@link ENGINE_TIMEOUT_MS} (e.g. a stop with a long grace period). */
  timeoutMs?: number;
}

/** A small Docker Engine API client: JSON answers, raw bodies and streams. */
export class DockerEngineApi {
  /** Where `node:http` connects: the socket path, or host and port (its `protocol` wants `http:`, and is the default). */
  private readonly target: { socketPath: string } | { host: string; port: number };

  /** @param dockerHost a DOCKER_HOST value, see {@link dockerConnectionOptions}. */
  constructor(dockerHost: string) {
    const connection = dockerConnectionOptions(dockerHost);
    this.target = 'socketPath' in connection ? { socketPath: connection.socketPath } : { host: connection.host, port: connection.port };
  }

  /** `GET /_ping`: resolves when the engine answers. */
  async ping(): Promise<void> {
    await this.buffer('/_ping');
  }

  /** A call whose answer is JSON (undefined for an empty answer, e.g. 204). */
  async json<T>(path: string, call: EngineCall = {}): Promise<T> {
    const body = (await this.buffer(path, call)).toString('utf8');
    return (body ? JSON.parse(body) : undefined) as T;
  }

  /** A call whose whole answer is read as bytes. */
  async buffer(path: string, call: EngineCall = {}): Promise<Buffer> {
    const res = await this.open(path, call, false);
    const chunks: Buffer[] = [];
    for await (const chunk of res) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks);
  }

  /**
   * A call whose answer is a stream (events, followed logs): the response, once its head is in;
   * it stays open as long as the engine sends, with no idle timeout (an event feed may be quiet
   * for hours). Destroying it ends the call.
   */
  stream(path: string, call: EngineCall = {}): Promise<IncomingMessage> {
    return this.open(path, call, true);
  }

  private open(path: string, call: EngineCall, streaming: boolean): Promise<IncomingMessage> {
    const method = call.method ?? 'GET';
    const fullPath = enginePath(path, call.query);
    const timeoutMs = call.timeoutMs ?? ENGINE_TIMEOUT_MS;
    return new Promise((resolve, reject) => {
      const req = request({ ...this.target, path: fullPath, method, headers: { Accept: 'application/json' } });
      req.setTimeout(timeoutMs, () => {
        req.destroy(Object.assign(new Error(`Docker engine did not answer ${method} ${path} within ${timeoutMs} ms`), { code: 'ETIMEDOUT' }));
      });
      req.once('error', reject);
      req.once('response', (res) => {
        const status = res.statusCode ?? 0;
        if (status < 200 || status > 299) {
          collectText(res).then((body) => reject(new DockerApiError(method, fullPath, status, body)), reject);
          return;
        }
        if (streaming) req.setTimeout(0);
        resolve(res);
      });
      req.end();
    });
  }
}

async function collectText(res: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of res) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/** Frames cut out of a multiplexed log stream so far. */
export interface LogFrames {
  /** Payloads of the complete frames (stdout and stderr alike), in order. */
  payloads: Buffer[];
  /** An unfinished frame (header included): prepend it to the next chunk. */
  rest: Buffer;
  /** A header was not a frame header (a TTY log): the stream is not multiplexed from there on, and `payloads` ends with the rest of the bytes as they are. */
  raw: boolean;
}

/**
 * Pure: cuts Docker's multiplexed log stream (each frame an 8-byte header — stream 0/1/2, three
 * zero bytes, big-endian payload length — then the payload) into payloads. Frames split across
 * chunks come back whole once the rest arrives (see {@link LogFrames.rest}).
 */
export function splitLogFrames(buffer: Buffer): LogFrames {
  const payloads: Buffer[] = [];
  let offset = 0;
  while (offset + 8 <= buffer.length) {
    const kind = buffer[offset];
    if ((kind !== 0 && kind !== 1 && kind !== 2) || buffer[offset + 1] !== 0 || buffer[offset + 2] !== 0 || buffer[offset + 3] !== 0) {
      payloads.push(buffer.subarray(offset));
      return { payloads, rest: Buffer.alloc(0), raw: true };
    }
    const end = offset + 8 + buffer.readUInt32BE(offset + 4);
    if (end > buffer.length) break;
    payloads.push(buffer.subarray(offset + 8, end));
    offset = end;
  }
  return { payloads, rest: buffer.subarray(offset), raw: false };
}

/**
 * Turns Docker's multiplexed log answer into text. A buffer that does not start with a valid
 * header is a TTY log: kept as is.
 */
export function demuxDockerLog(buffer: Buffer): string {
  const { payloads, rest } = splitLogFrames(buffer);
  // A last frame cut short still shows what it has.
  if (rest.length > 8) payloads.push(rest.subarray(8));
  return Buffer.concat(payloads).toString('utf8');
}

/**
 * A demultiplexer for a following log stream: give it each chunk as it comes, it answers the
 * output bytes complete so far (frames split across chunks are held until whole).
 */
export function logDemuxer(): (chunk: Buffer) => Buffer[] {
  let pending: Buffer = Buffer.alloc(0);
  let raw = false;
  return (chunk) => {
    if (raw) return [chunk];
    const frames = splitLogFrames(pending.length > 0 ? Buffer.concat([pending, chunk]) : chunk);
    pending = frames.rest;
    raw = frames.raw;
    return frames.payloads;
  };
}

/** Complete lines cut out of a text stream so far. */
export interface SplitLines {
  /** Non-blank lines, trimmed, in order. */
  lines: string[];
  /** The unfinished last line: prepend it to the next chunk. */
  rest: string;
}

/** Pure: cuts a newline-delimited stream (the engine's event feed: one JSON object per line) into lines. */
export function splitLines(text: string): SplitLines {
  const parts = text.split('\n');
  const rest = parts.pop() ?? '';
  return { lines: parts.map((l) => l.trim()).filter((l) => l !== ''), rest };
}

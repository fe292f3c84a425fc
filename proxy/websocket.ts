/**
 * WebSocket forwarding, for an HTTP/1.1 `Upgrade` and an HTTP/2 extended CONNECT (RFC 8441)
 * alike: the same routing, remote-hop policy and upstream header builder as plain requests, a
 * fresh HTTP/1.1 upgrade to the target per WebSocket (node:http / node:https with the remote's
 * SNI and CA set), then bytes piped both ways. What differs between the two client protocols —
 * how the switch, a refusal and an error page are told to the client — is a {@link ClientEnd}.
 */
import { randomBytes } from 'node:crypto';
import http, { type IncomingMessage, type OutgoingHttpHeaders } from 'node:http';
import type { Http2ServerRequest, OutgoingHttpHeaders as H2Headers, ServerHttp2Stream } from 'node:http2';
import https from 'node:https';
import type { Socket } from 'node:net';
import type { Duplex, Readable } from 'node:stream';
import type { ConnectionOptions } from 'node:tls';
import type { Route, Target } from '../router/types.js';
import { renderErrorPage, wantsHtml } from './error-pages.js';
import { buildClientHeaders, h2HeaderObject, ROUTE_HEADER } from './forward-headers.js';
import { profileOf, requestPath, worktreePathOf, type ClientRequest, type ProxyCore } from './proxy-core.js';
import { refusalOf, resolveRequest, upstreamHeadersFor } from './request-context.js';
import { HopRefusal, refusedWrite, sendWithHopHeaders } from './remote-hop.js';
import { mapUpstreamError, type ProxyErrorInfo } from './upstream-errors.js';
import { loopbackLookup } from './upstream-pools.js';

const STATUS_TEXT: Readonly<Record<number, string>> = http.STATUS_CODES as Record<number, string>;

/** The version of RFC 6455, the only one there is; h2 clients must send it but some omit it. */
const WEBSOCKET_VERSION = '13';

function ignoreError(): void {
  // The other side of a piped pair reports the failure; nothing to add here.
}

/**
 * The client side of one WebSocket: what differs between an HTTP/1.1 upgraded socket and an h2
 * extended-CONNECT stream. Everything else (routing, policy, headers, the upstream) is shared.
 */
interface ClientEnd {
  /** The socket or h2 stream carrying the WebSocket: written to, destroyed to cut it, its `close` ends the tunnel. */
  readonly channel: Duplex;
  /** Where the client's WebSocket bytes are read from. */
  readonly incoming: Readable;
  /** Headers the upstream upgrade needs besides the client's own (an h2 client sends no key). */
  readonly added: readonly string[];
  /** The upstream switched protocols: tells the client, with the upstream's answer headers. */
  accept(response: IncomingMessage, route: Route): void;
  /** The upstream answered without switching: relays its response, body streamed. */
  relay(response: IncomingMessage, route: Route): void;
  /** Answers with devproxy's own page and ends the WebSocket. */
  page(info: ProxyErrorInfo, route?: Route): void;
}

/** Status line and headers of a raw HTTP/1.1 response head. */
function rawHead(statusCode: number, statusMessage: string | undefined, rawHeaders: readonly string[], extra: readonly string[]): string {
  let head = `HTTP/1.1 ${statusCode} ${statusMessage ?? STATUS_TEXT[statusCode] ?? ''}\r\n`;
  for (let i = 0; i < rawHeaders.length; i += 2) head += `${rawHeaders[i]}: ${rawHeaders[i + 1]}\r\n`;
  for (let i = 0; i < extra.length; i += 2) head += `${extra[i]}: ${extra[i + 1]}\r\n`;
  return `${head}\r\n`;
}

/** An HTTP/1.1 upgrade: answers are raw HTTP/1.1 on the client socket. */
class UpgradedSocket implements ClientEnd {
  readonly added: readonly string[] = [];
  readonly incoming: Readable;

  constructor(
    readonly channel: Duplex,
    private readonly accepts: string | undefined,
  ) {
    this.incoming = channel;
  }

  accept(response: IncomingMessage, route: Route): void {
    this.channel.write(rawHead(101, response.statusMessage, response.rawHeaders, [ROUTE_HEADER, route.mode]));
  }

  relay(response: IncomingMessage, route: Route): void {
    // Close-delimited: the hop-by-hop framing is gone, so the end of the connection ends the body.
    const headers = buildClientHeaders(response.rawHeaders, route.mode, undefined);
    this.channel.write(rawHead(response.statusCode ?? 502, response.statusMessage, headers, ['Connection', 'close']));
    response.pipe(this.channel);
  }

  page(info: ProxyErrorInfo, route?: Route): void {
    if (!this.channel.writable) {
      this.channel.destroy();
      return;
    }
    const html = wantsHtml(this.accepts);
    const body = renderErrorPage(info, html);
    this.channel.end(
      `HTTP/1.1 ${info.status} ${STATUS_TEXT[info.status] ?? ''}\r\n` +
        `Content-Type: ${html ? 'text/html' : 'application/json'}; charset=utf-8\r\n` +
        `Content-Length: ${Buffer.byteLength(body)}\r\n` +
        (route === undefined ? '' : `${ROUTE_HEADER}: ${route.mode}\r\n`) +
        'Connection: close\r\n\r\n' +
        body,
    );
  }
}

/**
 * An RFC 8441 extended CONNECT: `:status 200` stands for the 101 and the stream carries the
 * WebSocket bytes; a refusal or an error page is the stream's h2 response. Reads go through
 * the compat request, which already consumes the stream's DATA frames.
 */
class ConnectStream implements ClientEnd {
  readonly channel: ServerHttp2Stream;
  readonly added: readonly string[];

  constructor(readonly incoming: Http2ServerRequest) {
    this.channel = incoming.stream;
    // h2 clients send no key (RFC 8441 §5); the upstream's accept for this one is dropped.
    const added = ['sec-websocket-key', randomBytes(16).toString('base64')];
    if (incoming.headers['sec-websocket-version'] === undefined) added.push('sec-websocket-version', WEBSOCKET_VERSION);
    this.added = added;
  }

  accept(response: IncomingMessage, route: Route): void {
    // buildClientHeaders drops what HTTP/2 forbids (Connection, Upgrade…); the accept answers
    // the key devproxy made up, and RFC 8441 §5 has none.
    const headers = h2HeaderObject(buildClientHeaders(response.rawHeaders, route.mode, undefined), 200);
    delete headers['sec-websocket-accept'];
    this.channel.respond(headers);
  }

  relay(response: IncomingMessage, route: Route): void {
    const status = response.statusCode ?? 502;
    if (status >= 200 && status < 300) {
      // A 2xx to CONNECT tells the client its WebSocket is open (RFC 8441 §5): it is not.
      response.destroy();
      const message = `the upstream answered ${status} instead of switching to WebSocket\n`;
      this.channel.respond({ ':status': 502, 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(message), [ROUTE_HEADER]: route.mode });
      this.channel.end(message);
      return;
    }
    this.channel.respond(h2HeaderObject(buildClientHeaders(response.rawHeaders, route.mode, undefined), status));
    response.pipe(this.channel);
  }

  page(info: ProxyErrorInfo, route?: Route): void {
    if (this.channel.destroyed || this.channel.headersSent) {
      this.channel.destroy();
      return;
    }
    const html = wantsHtml(this.incoming.headers.accept);
    const body = renderErrorPage(info, html);
    const headers: H2Headers = { ':status': info.status, 'content-type': `${html ? 'text/html' : 'application/json'}; charset=utf-8`, 'content-length': Buffer.byteLength(body) };
    if (route !== undefined) headers[ROUTE_HEADER] = route.mode;
    this.channel.respond(headers);
    this.channel.end(body);
  }
}

/**
 * True for the one upgrade devproxy tunnels: a GET asking for `websocket` (RFC 6455 §4.1). node
 * reports any method with `Connection: upgrade` + `Upgrade` as an upgrade; a `DELETE` taking that
 * path would skip the write policy, so everything else is served as an ordinary request.
 */
export function isWebSocketUpgrade(req: IncomingMessage): boolean {
  if (req.method !== 'GET') return false;
  const upgrade = req.headers.upgrade;
  return upgrade !== undefined && upgrade.split(',').some((token) => token.trim().toLowerCase() === 'websocket');
}

/**
 * Puts an upgrade request that is not a WebSocket handshake back on its socket, without its
 * `Upgrade` header and `upgrade` connection option, followed by the bytes node read past its head
 * (`head`, the start of the body or of the next request). The listener then parses it again as
 * an ordinary request (emit its connection event), so routing, the write policy and body framing
 * apply exactly as to any other request. The head is rebuilt from node's parsed (validated) headers.
 */
export function requeueWithoutUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
  let text = `${req.method ?? 'GET'} ${req.url ?? '/'} HTTP/${req.httpVersion}\r\n`;
  const raw = req.rawHeaders;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i] as string;
    const lower = name.toLowerCase();
    if (lower === 'upgrade') continue;
    let value = raw[i + 1] as string;
    if (lower === 'connection') {
      value = value
        .split(',')
        .map((token) => token.trim())
        .filter((token) => token !== '' && token.toLowerCase() !== 'upgrade')
        .join(', ');
      if (value === '') continue;
    }
    text += `${name}: ${value}\r\n`;
  }
  socket.unshift(Buffer.concat([Buffer.from(`${text}\r\n`, 'latin1'), head]));
}

/** Forwards one HTTP/1.1 WebSocket upgrade, or answers it raw (400/404/421/502/504). */
export function forwardUpgrade(core: ProxyCore, req: IncomingMessage, socket: Duplex, head: Buffer): void {
  socket.on('error', ignoreError);
  forwardWebSocket(core, req, new UpgradedSocket(socket, req.headers.accept), req.headers.upgrade ?? 'websocket', head);
}

/** Forwards one h2 extended CONNECT for `websocket` (RFC 8441), or answers it with an h2 page. */
export function forwardWebSocketConnect(core: ProxyCore, req: Http2ServerRequest): void {
  req.stream.on('error', ignoreError);
  forwardWebSocket(core, req, new ConnectStream(req), 'websocket', Buffer.alloc(0));
}

function forwardWebSocket(core: ProxyCore, req: ClientRequest, client: ClientEnd, upgrade: string, head: Buffer): void {
  const context = resolveRequest(core, req);
  const resolved = context.outcome;
  if (resolved.kind === 'landing') {
    client.page({
      status: 404,
      code: 'DEVPROXY_ERR_UNKNOWN_HOST',
      message: 'localhost itself serves no WebSocket.',
      hint: 'connect to a `<service>.<worktree>.localhost` host',
    });
    return;
  }
  if (resolved.kind !== 'route') {
    const refused = refusalOf(core, context, resolved);
    client.page(refused.info, refused.route);
    return;
  }
  const { route, target } = resolved;
  // A route was found, so the request named a host.
  const authority = context.authority as string;
  const send = (extra: readonly string[]): void => {
    const added = client.added.length === 0 ? extra : [...client.added, ...extra];
    const headers = upstreamHeadersFor(context, target.kind === 'remote' ? target.authority : authority, added, upgrade);
    openTunnel(core, client, head, context.url, route, target, headers);
  };
  if (target.kind !== 'remote' || target.hop === undefined) {
    send([]);
    return;
  }
  // Auth (for the worktree's own pages) and the worktree header go on WebSockets too. Only a GET
  // (or its h2 CONNECT) gets here, so of a read-only policy only its `deny` rules apply.
  const refused = refusedWrite(route, target, target.hop, 'GET', context.url, worktreePathOf(core, route));
  if (refused !== undefined) {
    core.logger?.info(`${route.host}: WebSocket refused (${refused.why})`);
    client.page(refused.info, route);
    return;
  }
  sendWithHopHeaders(
    core,
    context,
    route,
    target,
    target.hop,
    send,
    (error) => refuseWebSocket(core, client, route, error),
    () => client.channel.destroyed,
  );
}

function refuseWebSocket(core: ProxyCore, client: ClientEnd, route: Route, error: unknown): void {
  if (!(error instanceof HopRefusal)) {
    client.channel.destroy();
    return;
  }
  core.logger?.warn(`${route.host}: ${error.info.message}`);
  client.page(error.info, route);
}

/** Opens the upstream upgrade request and pipes both ways once it is accepted. */
function openTunnel(core: ProxyCore, client: ClientEnd, head: Buffer, url: string, route: Route, target: Target, headers: readonly string[]): void {
  const path = (target.kind === 'remote' ? target.basePath : '') + requestPath(url);
  const channel = client.channel;
  let upstream: http.ClientRequest;
  try {
    upstream = openUpstream(core, target, 'GET', path, headers);
  } catch (error) {
    failWebSocket(core, client, route, target, error);
    return;
  }
  let settled = false;
  const onClientGone = (): void => {
    if (!settled) upstream.destroy();
  };
  channel.once('close', onClientGone);
  upstream.setTimeout(core.timeouts.headersTimeoutMs, () => {
    upstream.destroy(Object.assign(new Error('upstream did not answer the upgrade'), { code: 'ETIMEDOUT' }));
  });

  upstream.on('upgrade', (response: IncomingMessage, upstreamSocket: Socket, upstreamHead: Buffer) => {
    settled = true;
    upstreamSocket.setTimeout(0);
    upstreamSocket.on('error', ignoreError);
    if (!channel.writable) {
      upstreamSocket.destroy();
      return;
    }
    client.accept(response, route);
    if (upstreamHead.length > 0) channel.write(upstreamHead);
    if (head.length > 0) upstreamSocket.write(head);
    core.tunnels.add(channel);
    upstreamSocket.on('close', () => channel.destroy());
    channel.on('close', () => {
      core.tunnels.delete(channel);
      upstreamSocket.destroy();
    });
    upstreamSocket.pipe(channel);
    client.incoming.pipe(upstreamSocket);
  });

  upstream.on('response', (response: IncomingMessage) => {
    // The upstream refused the upgrade: relay its answer.
    settled = true;
    if (!channel.writable) {
      response.destroy();
      return;
    }
    client.relay(response, route);
  });

  upstream.on('error', (error: Error) => {
    if (settled) return;
    settled = true;
    failWebSocket(core, client, route, target, error);
  });
  upstream.end();
}

function failWebSocket(core: ProxyCore, client: ClientEnd, route: Route, target: Target, error: unknown): void {
  const info = mapUpstreamError(error, { route, target, profile: profileOf(core, route) });
  if (info === null) {
    client.channel.destroy();
    return;
  }
  core.logger?.warn(`${route.host}: ${info.message}`);
  client.page(info, route);
}

/**
 * A node:http(s) request to the route's target with the same TLS settings as the pools; `path`
 * is sent as given (a remote's base path already applied). Used where undici cannot go:
 * upgrades, and the asterisk form of `OPTIONS *`.
 */
export function openUpstream(core: ProxyCore, target: Target, method: string, path: string, headers: OutgoingHttpHeaders | readonly string[]): http.ClientRequest {
  if (target.kind === 'local') {
    return http.request({ host: '127.0.0.1', port: target.port, method, path, headers, agent: false });
  }
  const url = new URL(target.origin);
  if (url.protocol === 'http:') {
    return http.request({ host: url.hostname.replace(/^\[|\]$/g, ''), port: url.port === '' ? 80 : Number(url.port), method, path, headers, agent: false, lookup: loopbackLookup });
  }
  const tls = core.pools.tlsFor(target);
  // https.request hands its options to tls.connect, which takes the shared context (its types omit it).
  const options: https.RequestOptions & Pick<ConnectionOptions, 'secureContext'> = {
    host: url.hostname.replace(/^\[|\]$/g, ''),
    port: url.port === '' ? 443 : Number(url.port),
    method,
    path,
    headers,
    agent: false,
    ...(tls.servername === undefined ? {} : { servername: tls.servername }),
    rejectUnauthorized: tls.rejectUnauthorized,
    secureContext: tls.secureContext,
    lookup: loopbackLookup,
  };
  return https.request(options);
}

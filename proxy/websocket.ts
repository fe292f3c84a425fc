/**
 * HTTP/1.1 upgrade (WebSocket) forwarding: the same routing and target as plain requests, a
 * fresh upstream connection per upgrade (node:http / node:https with the remote's SNI and CA
 * set), then bytes piped both ways. Failures are answered as raw HTTP on the client socket.
 */
import http, { type IncomingMessage, type OutgoingHttpHeaders } from 'node:http';
import https from 'node:https';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { ConnectionOptions } from 'node:tls';
import { deniedBy } from '../profiles/request-rules.js';
import type { Route, Target } from '../router/types.js';
import { renderErrorPage, wantsHtml } from './error-pages.js';
import { HOP_BY_HOP_HEADERS, HOPS_HEADER, isProxyOwned, ROUTE_HEADER } from './forward-headers.js';
import { lendsCredentials, profileOf, requestPath, worktreePathOf, type ProxyCore } from './proxy-core.js';
import { refusalOf, resolveRequest } from './request-context.js';
import { HopRefusal, readOnlyRefusal } from './remote-hop.js';
import { mapUpstreamError, type ProxyErrorInfo } from './upstream-errors.js';
import { loopbackLookup } from './upstream-pools.js';

const STATUS_TEXT: Readonly<Record<number, string>> = http.STATUS_CODES as Record<number, string>;

function ignoreError(): void {
  // The other side of a piped pair reports the failure; nothing to add here.
}

/** Writes a complete HTTP/1.1 response on a raw socket and closes it. */
function writeRawPage(socket: Duplex, req: IncomingMessage, info: ProxyErrorInfo, route?: Route): void {
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  const html = wantsHtml(req.headers.accept);
  const body = renderErrorPage(info, html);
  socket.end(
    `HTTP/1.1 ${info.status} ${STATUS_TEXT[info.status] ?? ''}\r\n` +
      `Content-Type: ${html ? 'text/html' : 'application/json'}; charset=utf-8\r\n` +
      `Content-Length: ${Buffer.byteLength(body)}\r\n` +
      (route === undefined ? '' : `${ROUTE_HEADER}: ${route.mode}\r\n`) +
      'Connection: close\r\n\r\n' +
      body,
  );
}

/** Status line and headers of a raw HTTP/1.1 response head. */
function rawHead(statusCode: number, statusMessage: string | undefined, rawHeaders: readonly string[], extra: readonly string[]): string {
  let head = `HTTP/1.1 ${statusCode} ${statusMessage ?? STATUS_TEXT[statusCode] ?? ''}\r\n`;
  for (let i = 0; i < rawHeaders.length; i += 2) head += `${rawHeaders[i]}: ${rawHeaders[i + 1]}\r\n`;
  for (let i = 0; i < extra.length; i += 2) head += `${extra[i]}: ${extra[i + 1]}\r\n`;
  return `${head}\r\n`;
}

/**
 * Headers for the upstream upgrade request: the client's end-to-end headers and its
 * `Connection: upgrade` / `Upgrade` pair (Sec-WebSocket-* pass unchanged, so subprotocols and
 * extensions are negotiated end to end), without client-supplied X-Forwarded-* / x-devproxy-*.
 */
function upgradeHeaders(req: IncomingMessage, host: string, authority: string, https: boolean, hops: number): OutgoingHttpHeaders {
  const headers: OutgoingHttpHeaders = {};
  const raw = req.rawHeaders;
  for (let i = 0; i < raw.length; i += 2) {
    const lower = (raw[i] as string).toLowerCase();
    if (lower === 'host' || isProxyOwned(lower)) continue;
    if (HOP_BY_HOP_HEADERS.has(lower) && lower !== 'upgrade') continue;
    const value = raw[i + 1] as string;
    const previous = headers[lower];
    headers[lower] = previous === undefined ? value : `${String(previous)}, ${value}`;
  }
  headers.connection = 'upgrade';
  headers.host = host;
  headers['x-forwarded-for'] = req.socket.remoteAddress ?? '';
  headers['x-forwarded-host'] = authority;
  headers['x-forwarded-proto'] = https ? 'https' : 'http';
  headers[HOPS_HEADER] = String(hops + 1);
  return headers;
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

/** Forwards one upgrade request to the route's target, or answers it raw (400/404/421/502/504). */
export function forwardUpgrade(core: ProxyCore, req: IncomingMessage, socket: Duplex, head: Buffer): void {
  socket.on('error', ignoreError);
  const context = resolveRequest(core, req);
  const resolved = context.outcome;
  if (resolved.kind === 'landing') {
    writeRawPage(socket, req, {
      status: 404,
      code: 'DEVPROXY_ERR_UNKNOWN_HOST',
      message: 'localhost itself serves no WebSocket.',
      hint: 'connect to a `<service>.<worktree>.localhost` host',
    });
    return;
  }
  if (resolved.kind !== 'route') {
    const refused = refusalOf(core, context, resolved);
    writeRawPage(socket, req, refused.info, refused.route);
    return;
  }
  const { route, target } = resolved;
  // A route was found, so the request named a host.
  const authority = context.authority as string;
  const headers = upgradeHeaders(req, target.kind === 'remote' ? target.authority : authority, authority, context.https, context.hops);
  if (target.kind === 'remote' && target.hop !== undefined) {
    // Auth (for the worktree's own pages) and the worktree header go on upgrades too. Only a GET
    // reaches here (isWebSocketUpgrade), so of a read-only policy only its `deny` rules apply.
    const rule = target.hop.readOnly === true ? deniedBy(target.hop.deny, 'GET', context.url) : undefined;
    if (rule !== undefined) {
      core.logger?.info(`${route.host}: WebSocket refused (writes: read-only, deny "${rule.text}")`);
      writeRawPage(socket, req, readOnlyRefusal(route, target, 'GET', worktreePathOf(core, route), rule), route);
      return;
    }
    let extra: string[] | Promise<string[]>;
    try {
      extra = core.hopHeaders.headersFor(route, target, target.hop, authority, lendsCredentials(core, req, route, target.hop));
    } catch (error) {
      refuseUpgrade(core, req, socket, route, error);
      return;
    }
    if (Array.isArray(extra)) {
      openTunnel(core, req, socket, head, context.url, route, target, withExtra(headers, extra));
    } else {
      extra.then(
        (resolvedExtra) => {
          if (!socket.destroyed) openTunnel(core, req, socket, head, context.url, route, target, withExtra(headers, resolvedExtra));
        },
        (error: unknown) => refuseUpgrade(core, req, socket, route, error),
      );
    }
    return;
  }
  openTunnel(core, req, socket, head, context.url, route, target, headers);
}

/** Upgrade headers with the remote hop's pairs set over any client value of the same name. */
function withExtra(headers: OutgoingHttpHeaders, extra: readonly string[]): OutgoingHttpHeaders {
  for (let i = 0; i < extra.length; i += 2) headers[extra[i] as string] = extra[i + 1] as string;
  return headers;
}

function refuseUpgrade(core: ProxyCore, req: IncomingMessage, socket: Duplex, route: Route, error: unknown): void {
  if (!(error instanceof HopRefusal)) {
    socket.destroy();
    return;
  }
  core.logger?.warn(`${route.host}: ${error.info.message}`);
  writeRawPage(socket, req, error.info, route);
}

/** Opens the upstream upgrade request and pipes both ways once it is accepted. */
function openTunnel(core: ProxyCore, req: IncomingMessage, socket: Duplex, head: Buffer, url: string, route: Route, target: Target, headers: OutgoingHttpHeaders): void {
  const path = (target.kind === 'remote' ? target.basePath : '') + requestPath(url);
  let upstream: http.ClientRequest;
  try {
    upstream = openUpstream(core, target, req.method ?? 'GET', path, headers);
  } catch (error) {
    failUpgrade(core, req, socket, route, target, error);
    return;
  }
  let settled = false;
  const onClientGone = (): void => {
    if (!settled) upstream.destroy();
  };
  socket.once('close', onClientGone);
  upstream.setTimeout(core.timeouts.headersTimeoutMs, () => {
    upstream.destroy(Object.assign(new Error('upstream did not answer the upgrade'), { code: 'ETIMEDOUT' }));
  });

  upstream.on('upgrade', (response: IncomingMessage, upstreamSocket: Socket, upstreamHead: Buffer) => {
    settled = true;
    upstreamSocket.setTimeout(0);
    upstreamSocket.on('error', ignoreError);
    if (!socket.writable) {
      upstreamSocket.destroy();
      return;
    }
    socket.write(rawHead(101, response.statusMessage, response.rawHeaders, [ROUTE_HEADER, route.mode]));
    if (upstreamHead.length > 0) socket.write(upstreamHead);
    if (head.length > 0) upstreamSocket.write(head);
    core.tunnels.add(socket);
    upstreamSocket.on('close', () => socket.destroy());
    socket.on('close', () => {
      core.tunnels.delete(socket);
      upstreamSocket.destroy();
    });
    upstreamSocket.pipe(socket);
    socket.pipe(upstreamSocket);
  });

  upstream.on('response', (response: IncomingMessage) => {
    // The upstream refused the upgrade: relay its answer as a plain, close-delimited response.
    settled = true;
    const raw = response.rawHeaders;
    const kept: string[] = [];
    for (let i = 0; i < raw.length; i += 2) {
      const lower = (raw[i] as string).toLowerCase();
      if (HOP_BY_HOP_HEADERS.has(lower)) continue;
      kept.push(raw[i] as string, raw[i + 1] as string);
    }
    if (!socket.writable) {
      response.destroy();
      return;
    }
    socket.write(rawHead(response.statusCode ?? 502, response.statusMessage, kept, [ROUTE_HEADER, route.mode, 'Connection', 'close']));
    response.pipe(socket);
  });

  upstream.on('error', (error: Error) => {
    if (settled) return;
    settled = true;
    failUpgrade(core, req, socket, route, target, error);
  });
  upstream.end();
}

function failUpgrade(core: ProxyCore, req: IncomingMessage, socket: Duplex, route: Route, target: Target, error: unknown): void {
  const info = mapUpstreamError(error, { route, target, profile: profileOf(core, route) });
  if (info === null) {
    socket.destroy();
    return;
  }
  core.logger?.warn(`${route.host}: ${info.message}`);
  writeRawPage(socket, req, info, route);
}

/**
 * A node:http(s) request to the route's target with the same TLS settings as the pools; `path`
 * is sent as given (a remote's base path already applied). Used where undici cannot go:
 * upgrades, and the asterisk form of `OPTIONS *`.
 */
export function openUpstream(core: ProxyCore, target: Target, method: string, path: string, headers: OutgoingHttpHeaders): http.ClientRequest {
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

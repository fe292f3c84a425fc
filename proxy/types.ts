import type { IncomingMessage } from 'node:http';
import type { Http2ServerRequest } from 'node:http2';
import type { Duplex } from 'node:stream';
import type { Logger } from '../logger.js';
import type { BridgePeers } from './bridge-peers.js';
import type { RoutingTable } from '../router/types.js';
import type { ClientResponse } from './own-answers.js';
import type { ClientRequest } from './proxy-core.js';
import type { RequestLog } from './request-log.js';

export interface ProxyOptions {
  /** Returns the current table; the watcher swaps it in one assignment, the proxy only reads. */
  getTable: () => RoutingTable;
  /** Port the plain HTTP listener is bound to (used to build stable URLs and rewrite Location). */
  httpPort: number;
  /** Port of the HTTPS listener, when there is one. */
  httpsPort?: number;
  /** Answer routed plain-HTTP requests with a 308 to the same URL on the HTTPS listener. Default false. */
  redirectToHttps?: boolean;
  /** Extra PEM CA files trusted for every remote (e.g. the demo's stand-in DEV CA). */
  extraCaFiles?: string[];
  logger?: Logger;
  /** Where finished exchanges are recorded for the dashboard and `devproxy requests`; absent: nothing is recorded. */
  requestLog?: RequestLog;
  /** The connections Docker bridge listeners accepted (given the same to them): credentials only for their own containers' peers. Absent: no bridge listener. */
  bridgePeers?: BridgePeers;
}

/**
 * Who a front's answer (`FrontResponse`, `H2Response`) tells of its client, in place of the
 * 'drain' and 'close' events node's responses emit: the answers are no event emitters, so making
 * one and watching it costs no emitter set-up and no listener bookkeeping per request.
 */
export interface AnswerWatcher {
  /** The client's buffer drained (a write had found it full). */
  clientDrained(): void;
  /** The client went away (for h2, the stream closed, answered or reset). */
  clientClosed(): void;
}

/** The request handler shared by the HTTP/1.1 and HTTP/2 listeners. */
export interface ProxyHandler {
  handleRequest(req: ClientRequest, res: ClientResponse): void;
  /** HTTP/1.1 `upgrade` event (WebSocket). */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void;
  /** HTTP/2 extended CONNECT with `:protocol websocket` (RFC 8441): a WebSocket on one h2 stream. */
  handleWebSocketConnect(req: Http2ServerRequest): void;
  /** Closes upstream pools. */
  close(): Promise<void>;
}

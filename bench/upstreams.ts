/**
 * Upstream servers the benchmark proxies to, run in their own process so that they do not share
 * the harness's event loop: `node upstreams.js fixed <port>` (a fixed small body, the fallback when
 * nginx is missing) or `node upstreams.js aux '<json ports>'` (the two flip targets, the upload
 * sink, the WebSocket echo server and the HTTPS stand-in remote). Stops on SIGTERM.
 */
import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { WebSocketServer } from 'ws';

/** Ports of the auxiliary upstreams. */
export interface AuxPorts {
  flipA: number;
  flipB: number;
  sink: number;
  ws: number;
  /** The HTTPS stand-in remote (a leaf of a CA of its own, PEM files). */
  tls: { port: number; certFile: string; keyFile: string };
}

/** Keep upstream connections open as long as the proxies want them. */
const KEEP_ALIVE_MS = 120_000;

function fixedBody(body: string): (req: IncomingMessage, res: ServerResponse) => void {
  const payload = Buffer.from(body);
  return (req, res) => {
    // Drain any body so the connection can be reused.
    req.resume();
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': payload.length });
      res.end(payload);
    });
  };
}

function listen(server: Server, port: number): Promise<void> {
  server.keepAliveTimeout = KEEP_ALIVE_MS;
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve());
  });
}

async function main(): Promise<void> {
  const [role, arg] = process.argv.slice(2);
  const servers: Server[] = [];
  if (role === 'fixed') {
    const server = createServer(fixedBody('ok'));
    servers.push(server);
    await listen(server, Number(arg));
  } else if (role === 'aux') {
    const ports = JSON.parse(arg ?? '{}') as AuxPorts;
    const flipA = createServer(fixedBody('A'));
    const flipB = createServer(fixedBody('B'));
    // Counts what arrives and answers the total, so the uploader can check nothing was lost.
    const sink = createServer((req, res) => {
      let bytes = 0;
      req.on('data', (chunk: Buffer) => (bytes += chunk.length));
      req.on('end', () => {
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.end(String(bytes));
      });
    });
    const wsHttp = createServer((_req, res) => res.writeHead(426).end());
    const wss = new WebSocketServer({ server: wsHttp, perMessageDeflate: false });
    wss.on('connection', (socket) => {
      socket.on('message', (data, isBinary) => socket.send(data, { binary: isBinary }));
    });
    // Answers like Azure Storage (HEAD and GET with a length and an ETag); `GET /connections`
    // tells how many TLS connections it accepted, so the bench can see a proxy reconnecting.
    let tlsConnections = 0;
    const fixed = fixedBody('remote');
    const tlsRemote = createHttpsServer({ cert: readFileSync(ports.tls.certFile), key: readFileSync(ports.tls.keyFile) }, (req, res) => {
      if (req.url === '/connections') res.end(String(tlsConnections));
      else fixed(req, res);
    });
    tlsRemote.on('secureConnection', () => tlsConnections++);
    servers.push(flipA, flipB, sink, wsHttp, tlsRemote);
    await Promise.all([listen(flipA, ports.flipA), listen(flipB, ports.flipB), listen(sink, ports.sink), listen(wsHttp, ports.ws), listen(tlsRemote, ports.tls.port)]);
  } else {
    throw new Error(`unknown role ${String(role)}: expected fixed <port> or aux <json>`);
  }
  process.stdout.write('ready\n');
  const stop = (): void => {
    for (const server of servers) {
      server.closeAllConnections();
      server.close();
    }
    process.exit(0);
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});

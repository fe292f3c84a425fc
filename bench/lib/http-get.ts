/** One small GET to 127.0.0.1 with a chosen Host header, for probes and flip polling. */
import { Agent, request } from 'node:http';

/** What a probe saw. */
export interface Probe {
  status: number;
  body: string;
  /** `x-devproxy-route` (local | remote), when present. */
  route?: string;
}

/** A keep-alive agent with one socket, so polling never pays for a new connection. */
export function pollingAgent(): Agent {
  return new Agent({ keepAlive: true, maxSockets: 1 });
}

/** GETs `path` from 127.0.0.1:port with `Host: host`; rejects on socket errors or after `timeoutMs`. */
export function httpGet(port: number, host: string, agent?: Agent, timeoutMs = 5000, path = '/'): Promise<Probe> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, headers: { host }, agent: agent ?? false, timeout: timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => {
        const probe: Probe = { status: res.statusCode ?? 0, body };
        const route = res.headers['x-devproxy-route'];
        if (typeof route === 'string') probe.route = route;
        resolve(probe);
      });
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${host}${path} timed out after ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end();
  });
}

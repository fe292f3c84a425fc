/**
 * A large streamed upload through the proxy to the sink upstream, generated on the fly (one
 * reused chunk, back-pressure respected), while the daemon's RSS is sampled.
 */
import { request } from 'node:http';
import { peakRssBytes, resetPeakRss, rssBytes } from './proc-stats.js';

/** Upload chunk size. */
const CHUNK_BYTES = 64 * 1024;
/** How often RSS is sampled during the upload. */
const SAMPLE_EVERY_MS = 20;

/** Memory of the daemon around one upload. */
export interface UploadResult {
  bytes: number;
  /** Bytes the sink reported receiving. */
  received: number;
  seconds: number;
  mibPerS: number;
  rssBeforeBytes: number;
  /** Highest of the sampled RSS and the kernel's VmHWM (when it could be reset). */
  rssPeakBytes: number;
  rssAfterBytes: number;
  /** Whether VmHWM was reset before the upload, so it covers only the upload. */
  hwmUsed: boolean;
}

/** POSTs `bytes` to 127.0.0.1:port with `Host: host`, measuring `pid`'s RSS; bounded by `timeoutMs`. */
export async function measureUpload(port: number, host: string, pid: number, bytes: number, timeoutMs: number): Promise<UploadResult> {
  const rssBeforeBytes = rssBytes(pid);
  const hwmUsed = resetPeakRss(pid);
  let sampledPeak = rssBeforeBytes;
  const sampler = setInterval(() => {
    try {
      sampledPeak = Math.max(sampledPeak, rssBytes(pid));
    } catch {
      // The daemon is gone; the upload reports the failure.
    }
  }, SAMPLE_EVERY_MS);
  const chunk = Buffer.alloc(CHUNK_BYTES, 'x');
  const started = performance.now();
  try {
    const received = await new Promise<number>((resolve, reject) => {
      const req = request(
        { host: '127.0.0.1', port, method: 'POST', path: '/upload', headers: { host, 'content-type': 'application/octet-stream', 'content-length': bytes }, timeout: timeoutMs },
        (res) => {
          let body = '';
          res.setEncoding('utf8');
          res.on('data', (d: string) => (body += d));
          res.on('end', () => (res.statusCode === 200 ? resolve(Number(body)) : reject(new Error(`upload answered ${res.statusCode}: ${body.slice(0, 200)}`))));
        },
      );
      const timer = setTimeout(() => req.destroy(new Error(`upload not done within ${timeoutMs} ms`)), timeoutMs);
      req.on('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
      req.on('close', () => clearTimeout(timer));
      let sent = 0;
      const pump = (): void => {
        while (sent < bytes) {
          const n = Math.min(CHUNK_BYTES, bytes - sent);
          sent += n;
          if (!req.write(n === CHUNK_BYTES ? chunk : chunk.subarray(0, n))) {
            req.once('drain', pump);
            return;
          }
        }
        req.end();
      };
      pump();
    });
    const seconds = (performance.now() - started) / 1000;
    const rssPeakBytes = Math.max(sampledPeak, hwmUsed ? peakRssBytes(pid) : 0);
    return { bytes, received, seconds, mibPerS: bytes / 1024 / 1024 / seconds, rssBeforeBytes, rssPeakBytes, rssAfterBytes: rssBytes(pid), hwmUsed };
  } finally {
    clearInterval(sampler);
  }
}

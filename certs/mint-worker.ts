/**
 * The certificate worker's entry (a `worker_threads` script, started by `mint-worker-client.ts`):
 * it runs `authority.ts`, so @peculiar/x509 and its polyfill load in this isolate and leave with
 * it, never in the daemon's. It only mints: the daemon keeps the files, locks and caches.
 */
import { parentPort } from 'node:worker_threads';
import { createCertificateAuthority, issueLeafCertificate } from './authority.js';
import { toWireError, type MintRequest, type MintResponse } from './mint-messages.js';

const port = parentPort;
if (port === null) throw new Error('certs/mint-worker.js runs as a worker thread only (see mint-worker-client.ts)');

port.on('message', (request: MintRequest) => {
  const minted = request.op === 'ca' ? createCertificateAuthority(request.opts) : issueLeafCertificate(request.ca, request.names, request.opts);
  minted.then(
    (pair) => port.postMessage({ id: request.id, pair } satisfies MintResponse),
    (error: unknown) => port.postMessage({ id: request.id, error: toWireError(error) } satisfies MintResponse),
  );
});

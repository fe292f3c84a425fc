/**
 * The certificate worker's entry (a child process started by `mint-worker-client.ts` over an IPC
 * channel): it runs `authority.ts`, so @peculiar/x509 and its polyfill load in this process and
 * leave with it, never in the daemon's. It only mints: the daemon keeps the files, locks and
 * caches. When the daemon goes away, the channel closes and nothing keeps this process alive.
 */
import { createCertificateAuthority, issueLeafCertificate } from './authority.js';
import { toWireError, type MintRequest, type MintResponse } from './mint-messages.js';

const send = process.send?.bind(process);
if (send === undefined) throw new Error('certs/mint-worker.js runs as a child process with an IPC channel only (see mint-worker-client.ts)');

process.on('message', (request: MintRequest) => {
  const minted = request.op === 'ca' ? createCertificateAuthority(request.opts) : issueLeafCertificate(request.ca, request.names, request.opts);
  minted.then(
    (pair) => send({ id: request.id, pair } satisfies MintResponse),
    (error: unknown) => send({ id: request.id, error: toWireError(error) } satisfies MintResponse),
  );
});

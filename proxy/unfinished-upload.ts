/**
 * What becomes of a request body the client is still sending once its answer is complete (an
 * upstream that answered an upload early, a 413 or a 401). Reading the rest to keep the
 * connection would let a client hold the daemon busy for as long as it likes to send, so devproxy
 * does what Go's net/http does (maxPostHandlerReadBytes): at most {@link MAX_DRAIN_BYTES} more are
 * read and dropped, then the connection is cut. An HTTP/1.1 answer that starts while the body is
 * unfinished says `Connection: close` ({@link closesConnection}), and node:http ends the
 * connection once that answer is written; an h2 upload stream is reset with NO_ERROR after its
 * answer (RFC 9113 §8.1), which tells the client to stop sending without failing the answer.
 *
 * For a remote target undici itself destroys the body once such an answer is complete (it closes
 * its connection to the remote, which is mid-request). On HTTP/1.1 node:http then stops reading
 * the client at once, and `Connection: close` still ends the connection after the answer (without
 * it node would read the whole upload to keep the connection). Destroying node's h2 compat
 * request leaves its stream open, so the NO_ERROR reset here is what stops an h2 client there too.
 */
import type { IncomingMessage } from 'node:http';
import { constants as h2, type Http2ServerRequest } from 'node:http2';
import type { ClientRequest } from './proxy-core.js';

/** Most body bytes read and dropped after the answer to an unfinished HTTP/1.1 upload (Go's figure). */
export const MAX_DRAIN_BYTES = 256 * 1024;

/**
 * True when `req`, an HTTP/1.1 request with a body, is still being sent as its answer starts:
 * that answer closes the connection, which cannot carry another request until the body is read.
 */
export function closesConnection(req: ClientRequest): boolean {
  return req.httpVersionMajor !== 2 && !(req as IncomingMessage).complete;
}

/**
 * Ends what is left of the body of `req` once its answer is complete: nothing when the client
 * sent it all; an h2 stream is reset with NO_ERROR (node sends the reset after the answer's last
 * frame); HTTP/1.1 reads at most {@link MAX_DRAIN_BYTES} more while node:http writes the
 * `Connection: close` answer out, and cuts the connection beyond that.
 */
export function endUnfinishedUpload(req: ClientRequest): void {
  if (req.httpVersionMajor === 2) {
    const stream = (req as Http2ServerRequest).stream;
    if (!stream.readableEnded && !stream.closed) stream.close(h2.NGHTTP2_NO_ERROR);
    return;
  }
  const body = req as IncomingMessage;
  if (body.complete) return;
  let drained = 0;
  const onData = (chunk: Buffer): void => {
    drained += chunk.length;
    if (drained > MAX_DRAIN_BYTES) {
      body.off('data', onData);
      body.socket.destroy();
    }
  };
  body.on('data', onData);
  body.on('error', ignoreError);
  body.resume();
}

function ignoreError(): void {
  // A body cut while it is dropped: the answer is complete, nothing waits for the rest.
}

import http from 'node:http';
import net, { type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { endUnfinishedUpload, MAX_DRAIN_BYTES } from '../../proxy/unfinished-upload.js';
import { waitFor } from '../helpers/git-repo.js';

/**
 * The drain limit itself, on a real node:http server and a real client socket: an answer whose
 * end the client does not read keeps node:http from closing the connection after it, so only the
 * limit stops the daemon from reading an upload the client goes on sending.
 */

const KIB = 1024;
const UPLOAD_BYTES = 64 * 1024 * KIB;
const PIECE = Buffer.alloc(64 * KIB, 0x61);

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

describe('endUnfinishedUpload on HTTP/1.1', () => {
  it('reads at most 256 KiB more of an unfinished body, then cuts the connection', async () => {
    let served: Socket | undefined;
    let readAtEnd = -1;
    const server = http.createServer((req, res) => {
      served = req.socket;
      // The answer is under way (its end unread by the client): what is left of the upload is ended.
      res.writeHead(413, { connection: 'close', 'content-length': '9' });
      readAtEnd = req.socket.bytesRead;
      endUnfinishedUpload(req);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    cleanups.push(() => new Promise<void>((resolve) => server.close(() => resolve())));
    cleanups.push(() => server.closeAllConnections());
    const client = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
    cleanups.push(() => void client.destroy());
    let closed = false;
    client.on('error', () => {});
    client.on('close', () => (closed = true));
    client.write(`PUT /upload HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: ${UPLOAD_BYTES}\r\n\r\n`);
    let sent = 0;
    const pump = (): void => {
      while (!closed && !client.destroyed && sent < UPLOAD_BYTES) {
        sent += PIECE.length;
        if (!client.write(PIECE)) {
          client.once('drain', pump);
          return;
        }
      }
    };
    pump();
    await waitFor(() => (closed || (sent >= UPLOAD_BYTES && client.writableLength === 0)) || undefined, 30_000, 'the upload to end or its connection to close');
    expect((served as Socket).bytesRead - readAtEnd).toBeLessThanOrEqual(MAX_DRAIN_BYTES + PIECE.length);
    await waitFor(() => served?.destroyed || undefined, 5_000, 'the server to cut the connection');
    expect(sent).toBeLessThan(UPLOAD_BYTES);
  });
});

/**
 * `writes.deny` against the real thing: Azurite's queue service over HTTPS (its own CA) as the
 * shared DEV remote, the official @azure/storage-queue client through devproxy's HTTPS listener.
 * Azure Queue "Get Messages" is a GET that dequeues: under `read-only` with a deny rule it must
 * be refused and the message must stay for every other developer, while "Peek Messages" (same
 * path, `peekonly=true`) is let through again by a `!` rule.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { QueueServiceClient, RestError, StorageSharedKeyCredential } from '@azure/storage-queue';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { AZURITE_ACCOUNT, AZURITE_KEY, startAzurite, type Azurite } from '../helpers/azurite.js';
import { resolveLocalhostNames, trustingOptions } from '../helpers/azure-sdk.js';
import { startRemoteWorktree, type RemoteWorktree } from '../helpers/remote-worktree.js';
import { createTestTls } from '../helpers/upstreams.js';

const REMOTE_HOST = 'azurite-dev.localhost';
const cleanups: (() => Promise<void>)[] = [];

beforeAll(() => resolveLocalhostNames());

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

function queueClient(url: string, caPems: string[]): QueueServiceClient {
  const options = trustingOptions(caPems);
  cleanups.push(async () => options.agent.destroy());
  return new QueueServiceClient(url, new StorageSharedKeyCredential(AZURITE_ACCOUNT, AZURITE_KEY), options);
}

async function setup(writes: string): Promise<{ direct: QueueServiceClient; proxied: QueueServiceClient; wt: RemoteWorktree; azurite: Azurite }> {
  const tls = await createTestTls([REMOTE_HOST]);
  const azurite = await startAzurite('queue', tls);
  cleanups.push(() => azurite.stop());
  const dir = await mkdtemp(join(tmpdir(), 'devproxy-queue-ca-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  await writeFile(join(dir, 'azurite-ca.pem'), tls.caPem);
  const wt = await startRemoteWorktree({
    https: true,
    upstreams: {},
    services: `  queue:\n    remote: { url: "https://${REMOTE_HOST}:${azurite.port}", ca: ${join(dir, 'azurite-ca.pem')} }\n    writes: ${writes}`,
  });
  cleanups.push(() => wt.close());
  // Azurite takes the account from the first path segment, so the app's URL carries it too.
  const direct = queueClient(`https://${REMOTE_HOST}:${azurite.port}/${AZURITE_ACCOUNT}`, [tls.caPem]);
  const proxied = queueClient(`https://queue.x.localhost:${wt.httpsPort}/${AZURITE_ACCOUNT}`, [wt.httpsCaPem as string]);
  return { direct, proxied, wt, azurite };
}

describe('writes.deny with the Azure Queue SDK and Azurite', () => {
  it('refuses receiveMessages (a GET that dequeues) under read-only, and the message stays; peek is let through', async () => {
    const { direct, proxied, wt } = await setup('{ policy: read-only, deny: ["GET /*/*/messages", "!GET /*/*/messages?peekonly=true"] }');
    await direct.createQueue('orders');
    await direct.getQueueClient('orders').sendMessage('order 42');

    const queue = proxied.getQueueClient('orders');
    // Reads that change nothing pass through the read-only route.
    expect((await queue.getProperties()).approximateMessagesCount).toBe(1);
    const peeked = await queue.peekMessages();
    expect(peeked.peekedMessageItems.map((m) => m.messageText)).toEqual(['order 42']);

    const refused = await queue.receiveMessages().then(
      () => undefined,
      (error: unknown) => error,
    );
    expect(refused).toBeInstanceOf(RestError);
    expect((refused as RestError).statusCode).toBe(403);
    expect((refused as RestError).code).toBe('DEVPROXY_ERR_READ_ONLY');
    expect((refused as RestError).message).toContain('denies "GET /*/*/messages"');
    expect(((refused as RestError).details as Record<string, unknown>)['x-devproxy-error']).toBe('DEVPROXY_ERR_READ_ONLY');
    // Mutating methods stay refused as before.
    await expect(queue.sendMessage('from a worktree')).rejects.toMatchObject({ statusCode: 403, code: 'DEVPROXY_ERR_READ_ONLY' });
    expect(wt.logs.some((line) => line.includes('GET refused (writes: read-only, deny "GET /*/*/messages")'))).toBe(true);

    // The message is still there for everyone else: the direct client dequeues it.
    const received = await direct.getQueueClient('orders').receiveMessages();
    expect(received.receivedMessageItems.map((m) => m.messageText)).toEqual(['order 42']);
  });

  it('lets receiveMessages through under read-write (deny only narrows read-only)', async () => {
    const { direct, proxied } = await setup('{ policy: read-write, deny: ["GET /*/*/messages"] }');
    await direct.createQueue('orders');
    await direct.getQueueClient('orders').sendMessage('order 43');
    const received = await proxied.getQueueClient('orders').receiveMessages();
    expect(received.receivedMessageItems.map((m) => m.messageText)).toEqual(['order 43']);
    expect((await direct.getQueueClient('orders').peekMessages()).peekedMessageItems).toEqual([]);
  });
});

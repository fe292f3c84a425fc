/**
 * Real Azure software end to end: Azurite over HTTPS with its own CA as the shared "remote DEV"
 * storage account, a second Azurite as the worktree's local instance (a `command:` service the
 * daemon starts), a real daemon driven by the real CLI, and the official @azure/storage-blob
 * client talking only to the stable URL `https://blob.contoso.localhost:<port>/devstoreaccount1`.
 * One client object is used throughout: `devproxy use` flips it from the remote to the local
 * Azurite and back, and the write policy decides what it may change on the remote.
 */
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import {
  AnonymousCredential,
  BlobServiceClient,
  ContainerClient,
  ContainerSASPermissions,
  generateBlobSASQueryParameters,
  RestError,
  StorageSharedKeyCredential,
} from '@azure/storage-blob';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { homePaths } from '../../home-paths.js';
import { AZURITE_ACCOUNT, AZURITE_KEY, azuriteArgs, azuriteScript, startAzurite, type Azurite } from '../helpers/azurite.js';
import { resolveLocalhostNames, trustingOptions, type TrustingOptions } from '../helpers/azure-sdk.js';
import { waitFor } from '../helpers/git-repo.js';
import { createTestTls } from '../helpers/upstreams.js';
import { prepareDaemon, type DaemonUnderTest } from '../reliability/daemon-harness.js';

const REMOTE_HOST = 'azurite-dev.localhost';
const MB = 1024 * 1024;
/** The streamed upload: 50 MB in 1 MB chunks the SDK stages as 4 MB blocks. */
const BIG_BYTES = 50 * MB;
/** How long the daemon may take to start the local Azurite and flip (a busy machine; the work is bounded). */
const FLIP_TIMEOUT_MS = 90_000;
const OVERRIDE_PROFILE = 'profile: minimal\nwrites:\n  blob: read-write # this worktree owns its test container\n';

/** Byte `i` of the big blob: a pattern whose every 1 MB chunk differs, so a misplaced range shows. */
function bigChunk(index: number): Buffer {
  const chunk = Buffer.alloc(MB);
  for (let i = 0; i < MB; i += 4) chunk.writeUInt32BE((index * MB + i) >>> 0, i);
  return chunk;
}

function bigRange(offset: number, count: number): Buffer {
  const parts: Buffer[] = [];
  for (let chunk = Math.floor(offset / MB); chunk * MB < offset + count; chunk++) parts.push(bigChunk(chunk));
  const start = offset - Math.floor(offset / MB) * MB;
  return Buffer.concat(parts).subarray(start, start + count);
}

async function body(stream: NodeJS.ReadableStream | undefined): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream as AsyncIterable<Buffer>) chunks.push(chunk);
  return Buffer.concat(chunks);
}

async function failure(promise: Promise<unknown>): Promise<RestError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!(error instanceof RestError)) throw new Error(`expected a RestError, got ${String(error)}`);
  return error;
}

let remote: Azurite;
let daemon: DaemonUnderTest;
let scratch: string;
let httpsPort: number;
let caPems: string[];
let client: BlobServiceClient;
/** Port of the local Azurite the daemon started, once known. */
let localPort: number | undefined;
const agents: { destroy(): void }[] = [];

/** Client options trusting devproxy's CA only: the client never talks to an Azurite directly. */
function options(): TrustingOptions {
  const trusting = trustingOptions(caPems);
  agents.push(trusting.agent);
  return trusting;
}

const sharedKey = () => new StorageSharedKeyCredential(AZURITE_ACCOUNT, AZURITE_KEY);

const profileFile = () => join(daemon.repo.main, '.devproxy', 'profile.yaml');

async function blobRoute(): Promise<{ route: string; target: string | null }> {
  const status = await daemon.status();
  const service = status.worktrees.find((w) => w.main)?.services.find((s) => s.name === 'blob');
  return { route: service?.route ?? 'none', target: service?.target ?? null };
}

async function waitRoute(route: 'local' | 'remote'): Promise<string | null> {
  return waitFor(async () => {
    const now = await blobRoute();
    return now.route === route ? now.target : undefined;
  }, FLIP_TIMEOUT_MS, `blob routed ${route}`);
}

beforeAll(async () => {
  resolveLocalhostNames();
  scratch = await mkdtemp(join(tmpdir(), 'devproxy-azure-flip-'));
  const tls = await createTestTls([REMOTE_HOST]);
  remote = await startAzurite('blob', tls);
  await writeFile(join(scratch, 'azurite-ca.pem'), tls.caPem);
  // The local instance: a second Azurite the daemon runs as a process with PORT injected.
  const local = [process.execPath, azuriteScript('blob'), ...azuriteArgs('blob', '$PORT', join(scratch, 'local-data'))];
  const command = `exec ${local.map((arg) => (arg === '$PORT' ? '"$PORT"' : `'${arg}'`)).join(' ')}`;
  daemon = await prepareDaemon(`name: contoso
services:
  blob:
    local: { command: ${JSON.stringify(command)} }
    remote: { url: "https://${REMOTE_HOST}:${remote.port}", ca: ${join(scratch, 'azurite-ca.pem')} }
    writes: read-only
  prefixed:
    remote: { url: "https://${REMOTE_HOST}:${remote.port}/${AZURITE_ACCOUNT}", ca: ${join(scratch, 'azurite-ca.pem')} }
profiles:
  minimal: []
  standard: [blob]
default: minimal
`);
  expect((await daemon.cli(['init'])).code).toBe(0);
  // The issue's case: a worktree that owns its test container allows itself writes.
  await mkdir(join(daemon.repo.main, '.devproxy'), { recursive: true });
  await writeFile(profileFile(), OVERRIDE_PROFILE);
  const started = await daemon.cli(['proxy', 'start']);
  expect(started.code, started.stderr).toBe(0);
  const info = await waitFor(async () => ((await daemon.info())?.httpsPort ? daemon.info() : undefined), 30_000, 'daemon.json with an HTTPS port');
  httpsPort = info!.httpsPort as number;
  caPems = [await readFile(homePaths(daemon.home).caCert, 'utf8')];
  client = new BlobServiceClient(`https://blob.contoso.localhost:${httpsPort}/${AZURITE_ACCOUNT}`, sharedKey(), options());
  expect(await waitRoute('remote')).toBe(`https://${REMOTE_HOST}:${remote.port}`);
}, 120_000);

afterAll(async () => {
  for (const agent of agents) agent.destroy();
  await daemon?.cleanup();
  // Stopping the daemon stops the local Azurite it started.
  if (localPort !== undefined) await waitFor(() => refused(localPort as number), 30_000, 'the local Azurite stopped with the daemon');
  await remote?.stop();
  if (scratch) await rm(scratch, { recursive: true, force: true });
}, 90_000);

/** True once nothing accepts connections on 127.0.0.1:port. */
function refused(port: number): Promise<true | undefined> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(undefined);
    });
    socket.once('error', () => resolve(true));
  });
}

describe('Azure Blob Storage through devproxy, remote Azurite ⇄ local Azurite', () => {
  it('works on the remote with SharedKey and SAS, flips the same client to the local Azurite and back, and keeps the write policy', async () => {
    // ── Remote (read-only in devproxy.yaml, read-write for this worktree) ──
    const container = client.getContainerClient('reports');
    await container.create();
    const hello = container.getBlockBlobClient('hello.txt');
    const uploaded = await hello.upload('hello remote', 12);
    expect(uploaded._response.headers.get('x-devproxy-route')).toBe('remote');

    const big = container.getBlockBlobClient('big.bin');
    const source = Readable.from((function* () {
      for (let i = 0; i < BIG_BYTES / MB; i++) yield bigChunk(i);
    })());
    await big.uploadStream(source, 4 * MB, 4);
    const properties = await big.getProperties();
    expect(properties.contentLength).toBe(BIG_BYTES);

    const names: string[] = [];
    for await (const item of container.listBlobsFlat()) names.push(item.name);
    expect(names).toEqual(['big.bin', 'hello.txt']);

    // Ranged downloads: the start, across a 4 MB block boundary, and the last bytes.
    for (const [offset, count] of [[0, 1000], [4 * MB - 500, 1000], [BIG_BYTES - 777, 777]] as const) {
      const part = await big.download(offset, count);
      expect(part.contentLength).toBe(count);
      expect(createHash('sha256').update(await body(part.readableStreamBody)).digest('hex')).toBe(createHash('sha256').update(bigRange(offset, count)).digest('hex'));
    }

    // Conditional requests: If-None-Match with the current ETag is 304, If-Match with another is 412.
    const etag = properties.etag as string;
    expect((await failure(big.download(0, 10, { conditions: { ifNoneMatch: etag } }))).statusCode).toBe(304);
    const stale = await failure(hello.upload('lost update', 11, { conditions: { ifMatch: etag } }));
    expect(stale.statusCode).toBe(412);
    expect(stale.code).toBe('ConditionNotMet');
    const current = (await hello.getProperties()).etag as string;
    await hello.upload('hello remote', 12, { conditions: { ifMatch: current } });
    expect((await failure(hello.upload('again', 5, { conditions: { ifNoneMatch: '*' } }))).statusCode).toBe(409);

    // SAS: the signature covers account/container/blob names, not the URL path.
    const sas = generateBlobSASQueryParameters(
      { containerName: 'reports', permissions: ContainerSASPermissions.parse('racwl'), expiresOn: new Date(Date.now() + 3_600_000) },
      sharedKey(),
    ).toString();
    const bySas = new ContainerClient(`https://blob.contoso.localhost:${httpsPort}/${AZURITE_ACCOUNT}/reports?${sas}`, new AnonymousCredential(), options());
    await bySas.getBlockBlobClient('sas.txt').upload('written with SAS', 16);
    expect((await body((await bySas.getBlobClient('hello.txt').download()).readableStreamBody)).toString()).toBe('hello remote');

    // A path-prefixed remote: SharedKey signs the path the client sees (/reports/…), the remote
    // checks the path it sees (/devstoreaccount1/reports/…), so only SAS works there.
    const prefixedUrl = `https://prefixed.contoso.localhost:${httpsPort}`;
    const prefixedKey = new BlobServiceClient(prefixedUrl, sharedKey(), options());
    const mismatch = await failure(prefixedKey.getContainerClient('reports').getBlobClient('hello.txt').download());
    expect(mismatch.statusCode).toBe(403);
    expect(mismatch.code).toBe('AuthorizationFailure');
    const prefixedSas = new ContainerClient(`${prefixedUrl}/reports?${sas}`, new AnonymousCredential(), options());
    expect((await body((await prefixedSas.getBlobClient('hello.txt').download()).readableStreamBody)).toString()).toBe('hello remote');

    // ── Flip to the local Azurite: the same client object, nothing reconfigured ──
    const toLocal = await daemon.cli(['use', '--service', 'blob=local']);
    expect(toLocal.code, toLocal.stderr).toBe(0);
    expect(await readFile(profileFile(), 'utf8')).toContain('blob: read-write # this worktree owns its test container');
    const localTarget = await waitRoute('local');
    expect(localTarget).toMatch(/^127\.0\.0\.1:\d+$/);
    localPort = Number(localTarget?.split(':')[1]);
    expect(await container.exists()).toBe(false);
    await container.create();
    const local = await hello.upload('hello local', 11);
    expect(local._response.headers.get('x-devproxy-route')).toBe('local');
    expect((await body((await hello.download()).readableStreamBody)).toString()).toBe('hello local');
    const localNames: string[] = [];
    for await (const item of container.listBlobsFlat()) localNames.push(item.name);
    expect(localNames).toEqual(['hello.txt']);

    // ── Back to the remote: its data is as it was, and `use` kept the worktree's writes override ──
    const toRemote = await daemon.cli(['use', 'minimal']);
    expect(toRemote.code, toRemote.stderr).toBe(0);
    expect(await readFile(profileFile(), 'utf8')).toBe(OVERRIDE_PROFILE);
    await waitRoute('remote');
    expect((await body((await hello.download()).readableStreamBody)).toString()).toBe('hello remote');
    await container.getBlockBlobClient('after-flip.txt').upload('still writable', 14);

    // ── Without the override, read-only refuses uploads with an error the SDK surfaces ──
    await writeFile(profileFile(), 'profile: minimal\n');
    const refused = await waitFor(async () => {
      const outcome = await container.getBlockBlobClient('probe.txt').upload('probe', 5).then(() => undefined, (e: unknown) => e);
      return outcome instanceof RestError ? outcome : undefined;
    }, FLIP_TIMEOUT_MS, 'uploads refused once the override is gone');
    expect(refused.statusCode).toBe(403);
    expect(refused.code).toBe('DEVPROXY_ERR_READ_ONLY');
    expect(refused.message).toContain('`blob` is `writes: read-only`');
    const details = refused.details as Record<string, unknown> & { error?: { hint?: string } };
    expect(details['x-devproxy-error']).toBe('DEVPROXY_ERR_READ_ONLY');
    expect(details.error?.hint).toContain('writes: { blob: read-write }');
    const refusedStream = await failure(container.getBlockBlobClient('big2.bin').uploadStream(Readable.from([bigChunk(0)]), MB, 1));
    expect(refusedStream.code).toBe('DEVPROXY_ERR_READ_ONLY');
    // Reads still work.
    expect((await big.getProperties()).contentLength).toBe(BIG_BYTES);

    // ── The worktree's override allows them again ──
    await writeFile(profileFile(), 'profile: minimal\nwrites: { blob: read-write }\n');
    await waitFor(async () => container.getBlockBlobClient('allowed.txt').upload('allowed', 7).then(() => true, () => undefined), FLIP_TIMEOUT_MS, 'uploads allowed by the override');
    const all: string[] = [];
    for await (const item of container.listBlobsFlat()) all.push(item.name);
    expect(all).toEqual(expect.arrayContaining(['after-flip.txt', 'allowed.txt', 'big.bin', 'hello.txt', 'sas.txt']));
    expect(all).not.toContain('big2.bin');
  }, 300_000);
});

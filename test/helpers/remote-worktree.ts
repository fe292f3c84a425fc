/**
 * A worktree whose services are remote DEV endpoints stood in for by local HTTPS servers (their
 * own CA), routed through the real config validator and router, behind a real proxy. Remote
 * names are `*.localhost` (the pools resolve them to 127.0.0.1) with the servers' ports.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import type { RequestListener } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inProcessMinter } from '../../certs/in-process-minter.js';
import { createCertificateStore } from '../../certs/store.js';
import { validateConfig } from '../../profiles/validate-config.js';
import { validateProfile } from '../../profiles/validate-profile.js';
import type { BridgePeers } from '../../proxy/bridge-peers.js';
import { startHttpsProxy, type HttpsProxy } from '../../proxy/https-listener.js';
import { createProxyHandler, type ProxyHandlerOptions } from '../../proxy/server.js';
import { startHttpProxy } from '../../proxy/http-listener.js';
import { buildRoutingTable } from '../../router/route-table.js';
import type { RoutingTable } from '../../router/types.js';
import { createTestTls, startHttpsUpstream, type TestTls, type Upstream } from './upstreams.js';

/** Remote names the stand-in certificate covers. */
export const REMOTE_NAMES = ['contoso-api-dev.localhost', 'login-dev.localhost', 'contoso-ui-dev.localhost'];

let sharedTls: Promise<TestTls> | undefined;
/** One CA + leaf for every stand-in remote (certificates are slow enough to share). */
export function remoteTls(): Promise<TestTls> {
  sharedTls ??= createTestTls(REMOTE_NAMES);
  return sharedTls;
}

/** Everything a remote test needs, closed by `close()`. */
export interface RemoteWorktree {
  /** The proxy's plain HTTP port. */
  port: number;
  /** The HTTPS listener's port and the PEM of the CA its leaves are signed by, with `https: true`. */
  httpsPort?: number;
  /** With `bridgePeers`: the ports of the listeners that register their connections there, as the Docker bridge listeners do (on 127.0.0.1 here). */
  bridgePort?: number;
  bridgeHttpsPort?: number;
  httpsCaPem?: string;
  table: RoutingTable;
  /** Every message the proxy logged (info, warn, error). */
  logs: string[];
  dir: string;
  close(): Promise<void>;
}

/** Options of {@link startRemoteWorktree}. */
export interface RemoteWorktreeOptions {
  /** The `services:` block of devproxy.yaml; `${port:<name>}` is replaced by that upstream's port, `${dir}` by the repo folder. */
  services: string;
  /** Upstreams by name (their ports fill `${port:<name>}`). */
  upstreams: Record<string, Upstream>;
  /** Services the profile runs locally (default none). */
  locals?: string[];
  /** Extra top-level YAML (e.g. `worktreeHeader: false`). */
  top?: string;
  /** The worktree's `.devproxy/profile.yaml`, when it has one. */
  profile?: string;
  /** Handler options (env, azureCredentials, timeouts). */
  proxy?: Partial<ProxyHandlerOptions>;
  /** Also serve HTTPS (HTTP/1.1 and HTTP/2) with a devproxy CA of its own in the temp folder. */
  https?: boolean;
  /** Extra files written into the repo folder before the config is read (name → content). */
  files?: Record<string, string>;
  /** Also start listeners (HTTP, and HTTPS with `https: true`) that register their connections here, as the daemon's Docker bridge listeners do; the handler is given the same. */
  bridgePeers?: BridgePeers;
}

/** Starts a stand-in HTTPS remote with the shared test CA. */
export async function startRemote(handler?: RequestListener): Promise<Upstream> {
  return startHttpsUpstream(await remoteTls(), handler);
}

/** Validates the config and profile, builds the table for worktree `x` (branch feature/x) and starts the proxy. */
export async function startRemoteWorktree(options: RemoteWorktreeOptions): Promise<RemoteWorktree> {
  const dir = await mkdtemp(join(tmpdir(), 'devproxy-remote-wt-'));
  const tls = await remoteTls();
  await writeFile(join(dir, 'dev-ca.pem'), tls.caPem);
  for (const [name, content] of Object.entries(options.files ?? {})) await writeFile(join(dir, name), content);
  const services = options.services
    .replace(/\$\{port:([a-z]+)\}/g, (_m, name: string) => String((options.upstreams[name] as Upstream).port))
    .replace(/\$\{dir\}/g, dir);
  const yaml = `name: contoso\nca: dev-ca.pem\n${options.top ?? ''}services:\n${services}\nprofiles:\n  minimal: [${(options.locals ?? []).join(', ')}]\n`;
  const validated = validateConfig(yaml, join(dir, 'devproxy.yaml'));
  if (!validated.config) throw new Error(`test config invalid: ${JSON.stringify(validated.errors)}`);
  const config = validated.config;
  const profile = options.profile === undefined ? undefined : validateProfile(options.profile, join(dir, '.devproxy/profile.yaml'), config);
  if (profile !== undefined && !profile.profile) throw new Error(`test profile invalid: ${JSON.stringify(profile.errors)}`);
  const table = buildRoutingTable([
    { path: dir, repo: dir, branch: 'feature/x', isMain: false, config, diagnostics: [], projectName: 'contoso', ...(profile?.profile ? { profile: profile.profile } : {}) },
  ]);
  const logs: string[] = [];
  const handlerOptions: ProxyHandlerOptions = {
    getTable: () => table,
    httpPort: 0,
    logger: { info: (m) => logs.push(m), warn: (m) => logs.push(m), error: (m) => logs.push(m) },
    ...options.proxy,
    ...(options.bridgePeers === undefined ? {} : { bridgePeers: options.bridgePeers }),
  };
  const handler = createProxyHandler(handlerOptions);
  const server = await startHttpProxy({ handler, port: 0, hosts: ['127.0.0.1'] });
  handlerOptions.httpPort = server.port;
  const bridgePeers = options.bridgePeers;
  const bridge = bridgePeers === undefined ? undefined : await startHttpProxy({ handler, port: 0, hosts: ['127.0.0.1'], bridgePeers });
  let secure: HttpsProxy | undefined;
  let bridgeSecure: HttpsProxy | undefined;
  let httpsCaPem: string | undefined;
  if (options.https === true) {
    const certificates = createCertificateStore({ home: join(dir, 'home'), minter: inProcessMinter, isKnownName: (name) => table.routes.has(name) });
    secure = await startHttpsProxy({ handler, port: 0, hosts: ['127.0.0.1'], certificates });
    handlerOptions.httpsPort = secure.port;
    httpsCaPem = await readFile(certificates.caPath, 'utf8');
    if (bridgePeers !== undefined) bridgeSecure = await startHttpsProxy({ handler, port: 0, hosts: ['127.0.0.1'], certificates, bridgePeers });
  }
  return {
    port: server.port,
    ...(secure === undefined ? {} : { httpsPort: secure.port, httpsCaPem }),
    ...(bridge === undefined ? {} : { bridgePort: bridge.port }),
    ...(bridgeSecure === undefined ? {} : { bridgeHttpsPort: bridgeSecure.port }),
    table,
    logs,
    dir,
    async close() {
      await bridgeSecure?.close();
      await bridge?.close();
      await secure?.close();
      await server.close();
      await handler.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** {@link startRemoteWorktree}, with its `close()` registered in `cleanups` (which the test's afterEach runs). */
export async function remoteWorktreeFor(cleanups: (() => Promise<void>)[], options: RemoteWorktreeOptions): Promise<RemoteWorktree> {
  const wt = await startRemoteWorktree(options);
  cleanups.push(() => wt.close());
  return wt;
}

import { randomBytes } from 'node:crypto';
import { readFile, rm } from 'node:fs/promises';
import { DevproxyError } from '../errors.js';
import { VERSION } from '../version.js';
import { startHttpsProxy } from '../proxy/https-listener.js';
import { budgetFromLimit, ConnectionBudget, descriptorLimit } from '../proxy/connection-limits.js';
import { createProxyHandler, type ProxyHandlerOptions } from '../proxy/server.js';
import { startHttpProxy } from '../proxy/http-listener.js';
import type { Logger } from '../logger.js';
import { RequestLog } from '../proxy/request-log.js';
import { startAdminApi, type AdminApiOptions } from './admin-api.js';
import { DashboardFeed } from './dashboard-feed.js';
import { makePrivateDir, octalMode } from '../private-files.js';
import { homePaths } from '../home-paths.js';
import { acquireLock, readAdminIdentity, readDaemonInfo, writeAdminIdentity, writeDaemonInfo, type DaemonInfo } from '../workspace/home.js';
import { buildStatus, probeLocalHealth, type Health, type StatusReport } from '../workspace/status.js';
import { createWorkerMinter } from '../certs/mint-worker-client.js';
import { createCertificateStore, type CertificateStore } from '../certs/store.js';
import { BridgeListeners } from './bridge-listeners.js';
import { BridgePeers } from '../proxy/bridge-peers.js';
import { worktreeEnvironment } from '../environment/worktree-env.js';
import { isRunningState } from '../runtime/instance.js';
import { LocalRuntime, type LocalServiceStatus } from '../runtime/local-runtime.js';
import { localPortRangeWarning } from '../runtime/ports.js';
import { HostsFileSync } from './hosts-sync.js';
import { RuntimeController } from './runtime-controller.js';
import { Workspace } from '../workspace/watcher.js';


export interface DaemonOptions {
  home: string;
  httpPort: number;
  /** null: no HTTPS listener. */
  httpsPort: number | null;
  /** Addresses to bind; loopback by default. */
  hosts?: string[];
  /** Send routed plain-HTTP requests to the HTTPS listener (308). */
  redirectToHttps?: boolean;
  /** Keep devproxy's block of this hosts file in step with the routed hostnames (opt-in). */
  syncHostsFile?: string;
  /** Range local ports are allocated from (`DEVPROXY_LOCAL_PORTS`); default 21000-28999. */
  localPorts?: { start: number; end: number };
  logger: Logger;
}

export interface RunningDaemon {
  info: DaemonInfo;
  workspace: Workspace;
  status(probe?: boolean): Promise<StatusReport>;
  /** Stops listening, drains, closes watchers and removes daemon.json. */
  close(): Promise<void>;
  /** Resolves when the daemon was asked to stop through the admin API. */
  stopRequested: Promise<void>;
}

/**
 * Starts the per-user daemon in this process: watchers, proxy listeners and the admin API,
 * then publishes daemon.json. Refuses when another daemon of the same $DEVPROXY_HOME runs.
 */
export async function startDaemon(options: DaemonOptions): Promise<RunningDaemon> {
  const paths = homePaths(options.home);
  const wider = await makePrivateDir(options.home);
  if (wider !== undefined) options.logger.warn(`${options.home} was mode ${octalMode(wider)}, readable by other users; set it to 0700 (it holds the admin token, logs and resolved secrets)`);
  const portsOverlap = await localPortRangeWarning(options.localPorts);
  if (portsOverlap !== undefined) options.logger.warn(portsOverlap);
  const release = await acquireLock(paths.daemonLock);
  try {
    const running = await readDaemonInfo(options.home);
    if (running) {
      throw new DevproxyError('DEVPROXY_ERR_DAEMON_ALREADY_RUNNING', `devproxy is already running (pid ${running.pid}) on http://127.0.0.1:${running.httpPort}`);
    }
    return await startUnlocked(options);
  } finally {
    await release();
  }
}

async function startUnlocked(options: DaemonOptions): Promise<RunningDaemon> {
  const { logger } = options;
  // The runtime reports instance changes → the table is rebuilt → routes flip when healthy;
  // the table reports file changes → the runtime reconciles those worktrees.
  let workspace!: Workspace;
  let feed: DashboardFeed | undefined;
  let bridges: BridgeListeners | undefined;
  const runtime = new LocalRuntime({
    home: options.home,
    logger,
    ...(options.localPorts ? { portRange: options.localPorts } : {}),
    onChange: () => {
      workspace.rebuildSoon();
      void bridges?.check();
    },
  });
  const controller = new RuntimeController(runtime, logger, () => workspace.rebuildSoon());
  const hostsSync = options.syncHostsFile ? new HostsFileSync(options.syncHostsFile, logger) : undefined;
  workspace = new Workspace({
    home: options.home,
    logger,
    runtime: controller,
    onChange: (table, changed) => {
      controller.reconcile(table, changed);
      hostsSync?.update(table.routes.keys());
      feed?.changed();
    },
  });
  await workspace.start();

  let httpsPort = options.httpsPort;
  // Descriptors are split so that no flood of clients or upstream requests takes the last ones:
  // the admin API, logs and watchers keep a reserve.
  const budget = budgetFromLimit(descriptorLimit());
  const connectionBudget = new ConnectionBudget(budget.clientConnections);
  let httpsCertificates: CertificateStore | undefined;
  let published: DaemonInfo | undefined;
  // The handler reads its options per request: the bound ports (port 0 = any) are filled in below.
  const requestLog = new RequestLog();
  // Connections of the bridge listeners borrow credentials only from a container devproxy started.
  const bridgePeers = new BridgePeers((address) => runtime.isOwnContainerAddress(address));
  const proxyOptions: ProxyHandlerOptions = {
    getTable: workspace.getTable,
    httpPort: options.httpPort,
    logger,
    requestLog,
    maxUpstreamRequests: budget.upstreamRequests,
    bridgePeers,
    ...(options.redirectToHttps ? { redirectToHttps: true } : {}),
  };
  const handler = createProxyHandler(proxyOptions);
  const closers: Array<() => Promise<void>> = [() => runtime.close(), () => workspace.close(), () => handler.close(), async () => hostsSync?.close()];
  const closeAll = async () => {
    for (const close of closers.reverse()) await close().catch((error: unknown) => logger.warn(`shutdown: ${String(error)}`));
  };
  try {
    const http = await startHttpProxy({ handler, port: options.httpPort, connectionBudget, ...(options.hosts ? { hosts: options.hosts } : {}) }).catch((error: unknown) => {
      throw portError(error, options.httpPort, '--port / DEVPROXY_PORT');
    });
    closers.push(() => http.close());
    proxyOptions.httpPort = http.port;
    if (httpsPort !== null) {
      const minter = createWorkerMinter({ logger });
      closers.push(() => minter.close());
      const certificates = createCertificateStore({
        home: options.home,
        minter,
        logger,
        isKnownName: (name) => workspace.getTable().routes.has(name),
      });
      const https = await startHttpsProxy({ handler, port: httpsPort, certificates, logger, connectionBudget, ...(options.hosts ? { hosts: options.hosts } : {}) }).catch((error: unknown) => {
        throw portError(error, httpsPort!, '--https-port / DEVPROXY_HTTPS_PORT');
      });
      httpsPort = https.port;
      httpsCertificates = certificates;
      proxyOptions.httpsPort = https.port;
      closers.push(() => https.close());
    }

    const listening = [...http.addresses];
    let publishing: Promise<void> = Promise.resolve();
    /**
     * Writes daemon.json naming every address listened on now. Writes run one after another, each
     * reading the list when it runs: a bridge listener added while the first write was under way
     * would otherwise be missing from the file that landed last.
     */
    const publish = (info: DaemonInfo): Promise<void> => {
      published = info;
      const write = publishing.then(() => writeDaemonInfo(options.home, { ...info, listen: [...listening] }));
      publishing = write.catch((error: unknown) => logger.warn(`could not write daemon.json: ${(error as Error).message}`));
      return write;
    };
    const certificates = httpsCertificates;
    bridges = new BridgeListeners({
      gateway: () => runtime.hostGateway(),
      listening: () => listening,
      listen: async (address) => {
        const extraHttp = await startHttpProxy({ handler, port: http.port, connectionBudget, hosts: [address], bridgePeers });
        const extraHttps = httpsPort !== null && certificates ? await startHttpsProxy({ handler, port: httpsPort, certificates, logger, connectionBudget, hosts: [address], bridgePeers }).catch(async (error: unknown) => {
          await extraHttp.close();
          throw error;
        }) : undefined;
        return async () => {
          await Promise.all([extraHttp.close(), extraHttps?.close()]);
        };
      },
      onAdded: (address) => {
        listening.push(address);
        if (published) void publish(published).catch(() => undefined);
      },
      logger,
    });
    const bridgeListeners = bridges;
    closers.push(() => bridgeListeners.close());
    const caPath = httpsPort === null ? null : homePaths(options.home).caCert;
    controller.start(
      (input, slug, local) => worktreeEnvironment({ config: input.config!, slug, local, httpPort: http.port, httpsPort, caPath }, { env: process.env, baseDir: input.repo }),
      workspace.getTable(),
      workspace.inputs(),
    );

    let requestStop!: () => void;
    const stopRequested = new Promise<void>((resolve) => (requestStop = resolve));
    const daemon = { httpPort: http.port, httpsPort };
    const report = (health: ReadonlyMap<string, Health>): StatusReport =>
      buildStatus(workspace.getTable(), { running: true, pid: process.pid, ...daemon, version: VERSION }, health, (path, service) => runtimeFacts(controller.statusOf(path, service)), (path) => controller.reconciling(path));
    const status = async (probe = true): Promise<StatusReport> => report(probe ? await probeLocalHealth(workspace.getTable()) : new Map());
    feed = new DashboardFeed({
      // Health probed for a local target holds only while the route still goes there.
      report: (health) => report(new Map([...health].filter(([host]) => workspace.getTable().routes.get(host)?.target?.kind === 'local'))),
      probe: () => probeLocalHealth(workspace.getTable()),
      requestLog,
    });
    const adminOptions: Omit<AdminApiOptions, 'token'> = {
      status,
      reload: () => workspace.reload(),
      stop: () => requestStop(),
      runtime,
      worktreePaths: () => workspace.getTable().worktrees.map((w) => w.path),
      dashboard: {
        feed,
        requestLog,
        worktree: (path) => {
          const input = workspace.inputs().find((i) => i.path === path);
          const slug = workspace.getTable().worktrees.find((w) => w.path === path)?.slug;
          return input && slug !== undefined ? { input, slug } : undefined;
        },
        running: (path) => runtime.status(path).filter((s) => isRunningState(s.state)).map((s) => s.service),
      },
    };
    const admin = await startAdminOnLastPort(options.home, adminOptions, logger);
    closers.push(() => admin.close());
    const { token } = admin;
    await writeAdminIdentity(options.home, { port: admin.port, token });

    const info: DaemonInfo = { pid: process.pid, httpPort: http.port, httpsPort, adminPort: admin.port, token, startedAt: new Date().toISOString(), version: VERSION, listen: [...listening] };
    await publish(info);
    // Docker may already be in use by the reconciles started above.
    void bridges.check();
    closers.push(() => removeDaemonInfo(options.home));
    logger.info(`devproxy ${VERSION} listening on http://127.0.0.1:${http.port}${httpsPort !== null ? ` and https://127.0.0.1:${httpsPort}` : ''} (pid ${process.pid})`);
    return { info, workspace, status, close: closeAll, stopRequested };
  } catch (error) {
    await closeAll();
    throw error;
  }
}

/**
 * Starts the admin API on the last daemon's port with its token, so a dashboard left open
 * reconnects by itself (the page checks the daemon's proof first). When that port is taken, the
 * API listens on another one with a new token: whatever holds the old port serves its own page to
 * a dashboard URL opened or reloaded there (from the history, a bookmark, the terminal), and that
 * page reads the old token from the fragment; the old token must open nothing.
 */
async function startAdminOnLastPort(home: string, options: Omit<AdminApiOptions, 'token'>, logger: Logger): Promise<{ port: number; token: string; close(): Promise<void> }> {
  const previous = await readAdminIdentity(home);
  if (previous) {
    try {
      return { ...(await startAdminApi({ ...options, token: previous.token }, previous.port)), token: previous.token };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw error;
    }
  }
  const token = randomBytes(24).toString('hex');
  const admin = await startAdminApi({ ...options, token }, 0);
  if (previous) {
    logger.warn(`admin port ${previous.port} is taken by another program: the admin API listens on ${admin.port} with a new token, as the old one may have reached that program; run \`devproxy dashboard\` to open the dashboard again`);
  }
  return { ...admin, token };
}

function runtimeFacts(status: LocalServiceStatus | undefined): Record<string, unknown> | undefined {
  if (!status) return undefined;
  const { service: _service, lastLogLines: _lines, containerId: _id, pid: _pid, ...facts } = status;
  return facts;
}

async function removeDaemonInfo(home: string): Promise<void> {
  const path = homePaths(home).daemon;
  const info = await readFile(path, 'utf8').then((text) => JSON.parse(text) as DaemonInfo, () => undefined);
  if (info?.pid === process.pid) await rm(path, { force: true });
}

function portError(error: unknown, port: number, option: string): unknown {
  if ((error as NodeJS.ErrnoException).code === 'EADDRINUSE') {
    return new DevproxyError('DEVPROXY_ERR_PORT_IN_USE', `port ${port} is already in use`, { hint: `choose another port with ${option}, or stop what holds it`, cause: error });
  }
  return error;
}

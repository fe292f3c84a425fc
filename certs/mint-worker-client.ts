/**
 * Certificate minting in a short-lived worker thread: the daemon's {@link Minter}.
 *
 * Minting needs @peculiar/x509 and its polyfill (~13 MiB of RSS in the daemon) and happens
 * rarely: a new `$DEVPROXY_HOME` (the CA), a new worktree or a renewal (a leaf). Loaded in the
 * daemon's own isolate that code would stay for the daemon's life; in a worker it leaves with the
 * worker, which stops once no request came for {@link MINT_WORKER_IDLE_MS}, so a burst of new names
 * (a routing table change, a browser opening several worktrees) shares one worker.
 */
import { Worker } from 'node:worker_threads';
import { builtScriptUrl } from '../built-script.js';
import { DevproxyError } from '../errors.js';
import type { Logger } from '../logger.js';
import type { Minter, PemPair } from './authority.js';
import { fromWireError, type MintRequest, type MintResponse } from './mint-messages.js';

/** How long an idle worker waits for another request before it stops. */
export const MINT_WORKER_IDLE_MS = 3_000;

export interface WorkerMinterOptions {
  /** The worker's script. Default: the built `certs/mint-worker.js` ({@link builtScriptUrl}). */
  workerUrl?: URL;
  /** Idle time (ms) after which the worker stops; default {@link MINT_WORKER_IDLE_MS}. */
  idleMs?: number;
  /** Told when a worker starts and stops (info), and when one dies with requests pending (warn). */
  logger?: Logger;
}

/** A {@link Minter} backed by a worker thread started on demand. */
export interface WorkerMinter extends Minter {
  /** Stops the worker, if one runs; requests still pending fail. The next request starts a new one. */
  close(): Promise<void>;
}

interface Waiter {
  resolve: (pair: PemPair) => void;
  reject: (error: Error) => void;
}

/** One running worker and the requests it has not answered yet. */
interface Running {
  thread: Worker;
  waiting: Map<number, Waiter>;
  idleTimer?: NodeJS.Timeout;
}

/** Creates the minter; nothing starts until the first request. */
export function createWorkerMinter(options: WorkerMinterOptions = {}): WorkerMinter {
  const workerUrl = options.workerUrl ?? builtScriptUrl('certs/mint-worker.js');
  const idleMs = options.idleMs ?? MINT_WORKER_IDLE_MS;
  let current: Running | undefined;
  let nextId = 0;

  const retire = (running: Running): void => {
    clearTimeout(running.idleTimer);
    if (current === running) current = undefined;
  };

  const start = (): Running => {
    const running: Running = { thread: new Worker(workerUrl), waiting: new Map() };
    let idleStop = false;
    let failure: Error | undefined;
    running.thread.on('message', (response: MintResponse) => {
      const waiter = running.waiting.get(response.id);
      if (waiter === undefined) return;
      running.waiting.delete(response.id);
      if ('pair' in response) waiter.resolve(response.pair);
      else waiter.reject(fromWireError(response.error));
      if (running.waiting.size > 0) return;
      // Idle: the worker must not keep a CLI process alive, and stops unless asked again soon.
      running.thread.unref();
      running.idleTimer = setTimeout(() => {
        idleStop = true;
        retire(running);
        void running.thread.terminate();
      }, idleMs).unref();
    });
    // An uncaught exception in the worker (or a script that does not load); 'exit' follows.
    running.thread.on('error', (error) => {
      failure = error;
    });
    running.thread.on('exit', (code) => {
      retire(running);
      if (idleStop) options.logger?.info(`certificate worker stopped after ${idleMs} ms idle`);
      if (running.waiting.size === 0) return;
      const why = failure?.message ?? `exit code ${code}`;
      options.logger?.warn(`certificate worker died with ${running.waiting.size} request(s) pending: ${why}`);
      const error = new DevproxyError('DEVPROXY_ERR_INTERNAL', `the certificate worker stopped before answering (${why}); the next request starts a new one`, {
        cause: failure,
      });
      for (const waiter of running.waiting.values()) waiter.reject(error);
      running.waiting.clear();
    });
    options.logger?.info('certificate worker started');
    return running;
  };

  const ask = (request: (id: number) => MintRequest): Promise<PemPair> => {
    current ??= start();
    const running = current;
    clearTimeout(running.idleTimer);
    running.thread.ref();
    const id = nextId++;
    return new Promise<PemPair>((resolve, reject) => {
      running.waiting.set(id, { resolve, reject });
      running.thread.postMessage(request(id));
    });
  };

  return {
    createCertificateAuthority: (opts) => ask((id) => ({ id, op: 'ca', opts })),
    issueLeafCertificate: (ca, names, opts = {}) => ask((id) => ({ id, op: 'leaf', ca, names, opts })),
    async close() {
      const running = current;
      if (running === undefined) return;
      retire(running);
      await running.thread.terminate();
    },
  };
}

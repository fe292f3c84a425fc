/**
 * Certificate minting in a short-lived child process: the daemon's {@link Minter}.
 *
 * Minting needs @peculiar/x509 and its polyfill (~13 MiB of RSS in the daemon) and happens
 * rarely: a new `$DEVPROXY_HOME` (the CA), a new worktree or a renewal (a leaf). Loaded in the
 * daemon's own isolate that code would stay for the daemon's life. A worker thread was not enough:
 * what its isolate allocated through malloc stayed in the thread's glibc arena after it stopped
 * (a fresh home's daemon idled 5–6 MiB higher, which `malloc_trim` gave back), while a process
 * returns all of it when it exits. The worker stops once no request came for
 * {@link MINT_WORKER_IDLE_MS}, so a burst of new names (a routing table change, a browser opening
 * several worktrees) shares one worker.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { builtScriptUrl } from '../built-script.js';
import { DevproxyError } from '../errors.js';
import type { Logger } from '../logger.js';
import type { Minter, PemPair } from './authority.js';
import { fromWireError, type MintRequest, type MintResponse } from './mint-messages.js';

/** How long an idle worker waits for another request before it stops. */
export const MINT_WORKER_IDLE_MS = 3_000;

/**
 * The only variables of the daemon's environment the worker gets, when set. Minting reads none; the
 * daemon's environment holds NODE_OPTIONS (which would load code into the worker or change its
 * heap) and the tokens of remote hops' auth, which the worker has no use for. `SystemRoot` is there
 * because Windows' node cannot seed its random generator without it. fork adds the IPC channel's
 * own variables.
 */
const MINT_WORKER_ENV_NAMES: readonly string[] = ['SystemRoot'];

export interface WorkerMinterOptions {
  /** The worker's script, run by this Node binary. Default: the built `certs/mint-worker.js` ({@link builtScriptUrl}). */
  workerUrl?: URL;
  /** Idle time (ms) after which the worker stops; default {@link MINT_WORKER_IDLE_MS}. */
  idleMs?: number;
  /** Told when a worker starts and stops (info), and when one dies with requests pending (warn). */
  logger?: Logger;
}

/** A {@link Minter} backed by a worker process started on demand. */
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
  child: ChildProcess;
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
    // No inherited flags (the daemon's heap settings, a test runner's loaders) nor environment: the
    // worker is plain node running one script; stderr stays the daemon's, so a crash's trace
    // reaches its log.
    const child = fork(fileURLToPath(workerUrl), [], {
      execArgv: [],
      env: workerEnv(process.env),
      serialization: 'advanced',
      stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
    });
    const running: Running = { child, waiting: new Map() };
    let idleStop = false;
    let failure: Error | undefined;
    let ended = false;
    const end = (why: string): void => {
      if (ended) return;
      ended = true;
      retire(running);
      if (idleStop) options.logger?.info(`certificate worker stopped after ${idleMs} ms idle`);
      if (running.waiting.size === 0) return;
      options.logger?.warn(`certificate worker died with ${running.waiting.size} request(s) pending: ${why}`);
      const error = new DevproxyError('DEVPROXY_ERR_INTERNAL', `the certificate worker stopped before answering (${why}); the next request starts a new one`, {
        cause: failure,
      });
      for (const waiter of running.waiting.values()) waiter.reject(error);
      running.waiting.clear();
    };
    child.on('message', (response: MintResponse) => {
      const waiter = running.waiting.get(response.id);
      if (waiter === undefined) return;
      running.waiting.delete(response.id);
      if ('pair' in response) waiter.resolve(response.pair);
      else waiter.reject(fromWireError(response.error));
      if (running.waiting.size > 0) return;
      // Idle: the worker must not keep a CLI process alive, and stops unless asked again soon.
      unrefChild(child);
      running.idleTimer = setTimeout(() => {
        idleStop = true;
        retire(running);
        child.kill();
      }, idleMs).unref();
    });
    // A process that could not be started never exits: its 'error' is its end.
    child.on('error', (error) => {
      failure = error;
      if (child.pid === undefined) end(error.message);
    });
    child.on('exit', (code, signal) => end(code === null ? `signal ${signal}` : `exit code ${code}`));
    // A worker whose channel closed can answer nothing more, dead or not; one that lives on (its
    // code closed the channel) would keep what it had pending waiting for ever. It is killed at once
    // and its exit fails those requests, with the exit code of one that died by itself (its channel
    // closes as it exits: killing a process that already ended changes nothing).
    child.on('disconnect', () => {
      if (current !== running) return;
      retire(running);
      options.logger?.warn('certificate worker closed its channel; stopping it');
      child.kill('SIGKILL');
    });
    options.logger?.info('certificate worker started');
    return running;
  };

  const ask = (request: (id: number) => MintRequest): Promise<PemPair> => {
    current ??= start();
    const running = current;
    clearTimeout(running.idleTimer);
    refChild(running.child);
    const id = nextId++;
    return new Promise<PemPair>((resolve, reject) => {
      running.waiting.set(id, { resolve, reject });
      running.child.send(request(id), (error) => {
        // Not there any more: the worker died meanwhile and its 'exit' failed this request.
        if (error === null || !running.waiting.delete(id)) return;
        options.logger?.warn(`certificate worker: request not sent (${error.message}), stopping the worker`);
        reject(
          new DevproxyError('DEVPROXY_ERR_INTERNAL', `the certificate worker could not be sent the request (${error.message}); the next request starts a new one`, {
            cause: error,
          }),
        );
        // Its channel failed, so it can answer nothing more: its exit fails what it still had
        // pending, as a death does, and the next request starts a new worker.
        retire(running);
        running.child.kill();
      });
    });
  };

  return {
    createCertificateAuthority: (opts) => ask((id) => ({ id, op: 'ca', opts })),
    issueLeafCertificate: (ca, names, opts = {}) => ask((id) => ({ id, op: 'leaf', ca, names, opts })),
    async close() {
      const running = current;
      if (running === undefined) return;
      retire(running);
      if (running.child.exitCode !== null || running.child.signalCode !== null) return;
      const exited = new Promise((resolve) => running.child.once('exit', resolve));
      // An idle worker is unreferenced: without this, a process with nothing else to do would
      // end while it waits for the worker's exit.
      running.child.ref();
      running.child.kill();
      await exited;
    },
  };
}

/** Keeps the process running while the worker has requests to answer (its IPC channel is a handle too). */
function refChild(child: ChildProcess): void {
  child.ref();
  child.channel?.ref();
}

/** Lets the process exit while the idle worker still runs: the undoing of {@link refChild}. */
function unrefChild(child: ChildProcess): void {
  child.unref();
  child.channel?.unref();
}

/** The worker's environment: the {@link MINT_WORKER_ENV_NAMES} that `env` sets, nothing else. */
function workerEnv(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  return Object.fromEntries(MINT_WORKER_ENV_NAMES.flatMap((name) => (env[name] === undefined ? [] : [[name, env[name]]])));
}

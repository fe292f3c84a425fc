import { closeSync, fstatSync, renameSync, writeSync } from 'node:fs';
import type { Logger } from '../logger.js';
import { openPrivateLog } from '../private-files.js';

/**
 * Default size (bytes) at which the daemon log is rotated: daemon.log becomes daemon.log.1 (the
 * previous .1 is dropped), so the log never takes more than twice this. A client that makes the
 * daemon log every request cannot fill the disk through it. `DEVPROXY_LOG_MAX_BYTES` changes it.
 */
export const DEFAULT_LOG_MAX_BYTES = 10 * 1024 * 1024;
/** After a failed write (disk full), writes are retried at most this often; lines meanwhile are dropped and counted. */
const RETRY_AFTER_FAILURE_MS = 2_000;

/** The daemon's logger writing to its own file. */
export interface DaemonLog extends Logger {
  close(): void;
}

/**
 * A logger that appends timestamped lines to `path`, rotates it at `maxBytes`, and treats a
 * refused write (disk full) as degraded logging: the line is dropped and counted, never thrown,
 * and the next line that can be written says how many were lost. Writes are synchronous and
 * short (one line), so lines stay in order and nothing is buffered in memory without bound.
 */
export function openDaemonLog(path: string, maxBytes = DEFAULT_LOG_MAX_BYTES): DaemonLog {
  let fd: number | undefined;
  let size = 0;
  let unreported = 0;
  let retryAt = 0;

  const open = (): void => {
    fd = openPrivateLog(path);
    size = fstatSync(fd).size;
  };
  const closeFd = (): void => {
    if (fd !== undefined) closeSync(fd);
    fd = undefined;
  };
  const rotate = (): void => {
    closeFd();
    renameSync(path, `${path}.1`);
    open();
  };
  const write = (level: string, message: string): void => {
    const now = Date.now();
    if (unreported > 0 && now < retryAt) {
      unreported++;
      return;
    }
    let line = `${new Date(now).toISOString()} ${level} ${message}\n`;
    if (unreported > 0) line = `${new Date(now).toISOString()} warn  ${unreported} log lines were dropped: the disk was full or refused writes\n${line}`;
    try {
      if (fd === undefined) open();
      const bytes = Buffer.byteLength(line);
      if (size > 0 && size + bytes > maxBytes) rotate();
      size += writeSync(fd!, line);
      unreported = 0;
    } catch {
      // Degraded logging: the daemon keeps routing; the loss is reported once writes succeed.
      unreported++;
      retryAt = now + RETRY_AFTER_FAILURE_MS;
      closeFd();
    }
  };
  return {
    info: (m) => write('info ', m),
    warn: (m) => write('warn ', m),
    error: (m) => write('error', m),
    close: () => {
      try {
        closeFd();
      } catch {
        // Closing a file on a full disk can fail too; nothing is left to do.
      }
    },
  };
}

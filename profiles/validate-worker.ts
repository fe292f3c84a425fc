/**
 * Worker entry of {@link validateBounded}: validates one large devproxy file off the daemon's
 * event loop and posts the result back (structured clone keeps the config's Maps).
 */
import { parentPort, workerData } from 'node:worker_threads';
import type { ProjectConfig } from './schema.js';
import { validateConfig } from './validate-config.js';
import { validateProfile } from './validate-profile.js';

const job = workerData as { kind: 'config' | 'profile'; text: string; file: string; config?: ProjectConfig };
parentPort?.postMessage(job.kind === 'config' ? validateConfig(job.text, job.file) : validateProfile(job.text, job.file, job.config!));

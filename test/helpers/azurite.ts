/**
 * Real Azurite (npm `azurite`, the Azure Storage emulator) for tests: one service per process,
 * on 127.0.0.1 and a port the OS picks, data in a temp folder, telemetry off, optionally over
 * HTTPS with a test CA's leaf. Stopped (and its data removed) by `stop()`.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { TestTls } from './upstreams.js';

/** Azurite's well-known development account and key (public, documented by Microsoft). */
export const AZURITE_ACCOUNT = 'devstoreaccount1';
export const AZURITE_KEY = 'Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==';

/** How long Azurite may take to listen (it loads its metadata store first; the machine may be busy). */
const START_TIMEOUT_MS = 60_000;
const STOP_TIMEOUT_MS = 10_000;

export type AzuriteService = 'blob' | 'queue';

/** The entry script of one Azurite service. */
export function azuriteScript(service: AzuriteService): string {
  return fileURLToPath(new URL(`../../node_modules/azurite/dist/src/${service}/main.js`, import.meta.url));
}

/**
 * Flags every Azurite of these tests runs with: `--loose` and `--skipApiVersionCheck` so a newer
 * SDK is accepted, `--disableProductStyleUrl` because the Host it sees through devproxy is a
 * dotted name that is not `<account>.blob…`, and no telemetry (tests talk to loopback only).
 */
export function azuriteArgs(service: AzuriteService, port: string, location: string, tls?: { cert: string; key: string }): string[] {
  return [
    `--${service}Host`, '127.0.0.1', `--${service}Port`, port, '--location', location,
    '--loose', '--skipApiVersionCheck', '--disableProductStyleUrl', '--disableTelemetry', '--silent',
    ...(tls ? ['--cert', tls.cert, '--key', tls.key] : []),
  ];
}

export interface Azurite {
  /** `http(s)://127.0.0.1:<port>` */
  origin: string;
  port: number;
  /** What the process printed (stdout and stderr), for failure messages. */
  output: string[];
  stop(): Promise<void>;
}

/** Starts one Azurite service; with `tls`, it serves HTTPS with that leaf. */
export async function startAzurite(service: AzuriteService, tls?: TestTls): Promise<Azurite> {
  const dir = await mkdtemp(join(tmpdir(), `devproxy-azurite-${service}-`));
  let files: { cert: string; key: string } | undefined;
  if (tls) {
    files = { cert: join(dir, 'cert.pem'), key: join(dir, 'key.pem') };
    await writeFile(files.cert, tls.certPem);
    await writeFile(files.key, tls.keyPem, { mode: 0o600 });
  }
  const child = spawn(process.execPath, [azuriteScript(service), ...azuriteArgs(service, '0', join(dir, 'data'), files)], { stdio: ['ignore', 'pipe', 'pipe'] });
  const output: string[] = [];
  const stop = async () => {
    await stopChild(child);
    await rm(dir, { recursive: true, force: true });
  };
  try {
    const origin = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`Azurite ${service} did not listen within ${START_TIMEOUT_MS} ms:\n${output.join('')}`)), START_TIMEOUT_MS);
      const onData = (chunk: Buffer) => {
        output.push(chunk.toString());
        const match = /successfully listens on (https?:\/\/[\d.]+:\d+)/.exec(output.join(''));
        if (match) {
          clearTimeout(timer);
          resolve(match[1] as string);
        }
      };
      child.stdout.on('data', onData);
      child.stderr.on('data', onData);
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`Azurite ${service} exited with ${code}:\n${output.join('')}`));
      });
    });
    return { origin, port: Number(new URL(origin).port), output, stop };
  } catch (error) {
    await stop();
    throw error;
  }
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
  await exited;
  clearTimeout(timer);
}

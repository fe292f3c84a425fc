/**
 * Git repositories the benchmark registers with devproxy: a small one whose services point at
 * the benchmark's upstreams, and a large one with many real worktrees for the scale figures.
 */
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runCommand } from './procs.js';

/** Ports of the upstreams the small repository's services route to. */
export interface BenchUpstreams {
  /** Fixed `ok` body (nginx or the Node fallback). */
  api: number;
  sink: number;
  ws: number;
  /** `flip` is local on A (body `A`) under `standard`, remote on B (body `B`) under `flipped`. */
  flipA: number;
  flipB: number;
  /** The HTTPS stand-in remote of the `tls` service, and the PEM file of its CA. */
  tls: { port: number; caFile: string };
}

/** Profile under which `flip` is local (answers `A`). */
export const PROFILE_LOCAL = 'standard';
/** Profile under which `flip` is remote (answers `B`). */
export const PROFILE_REMOTE = 'flipped';

async function git(cwd: string, args: string[]): Promise<void> {
  const result = await runCommand('git', args, { cwd, timeoutMs: 60_000 });
  if (result.code !== 0) throw new Error(`git ${args.join(' ')} failed in ${cwd}: ${result.stderr.trim()}`);
}

async function initRepo(dir: string, devproxyYaml: string): Promise<void> {
  mkdirSync(dir, { recursive: true });
  await git(dir, ['init', '-q', '-b', 'main']);
  writeFileSync(join(dir, 'devproxy.yaml'), devproxyYaml);
  writeFileSync(join(dir, '.gitignore'), '.devproxy/\n');
  await git(dir, ['add', 'devproxy.yaml', '.gitignore']);
  await git(dir, ['-c', 'user.name=bench', '-c', 'user.email=bench@localhost', 'commit', '-q', '-m', 'bench fixture']);
}

/** Writes a worktree's live profile the way an editor or agent would: temp file + rename. */
export function writeProfileAtomically(worktree: string, profile: string): void {
  const dir = join(worktree, '.devproxy');
  mkdirSync(dir, { recursive: true });
  const tmp = join(dir, `.profile.yaml.${process.pid}.tmp`);
  writeFileSync(tmp, `profile: ${profile}\n`);
  renameSync(tmp, join(dir, 'profile.yaml'));
}

/**
 * The small repository `bench` (main checkout only). Every remote points at a loopback upstream
 * too, so no route can ever leave the machine.
 */
export async function createBenchRepo(dir: string, up: BenchUpstreams): Promise<string> {
  const yaml = `name: bench
ca: ${up.tls.caFile}
services:
  api:
    local: { port: ${up.api} }
    remote: http://127.0.0.1:${up.api}
  sink:
    local: { port: ${up.sink} }
    remote: http://127.0.0.1:${up.sink}
  ws:
    local: { port: ${up.ws} }
    remote: http://127.0.0.1:${up.ws}
  flip:
    local: { port: ${up.flipA} }
    remote: http://127.0.0.1:${up.flipB}
  tls:
    remote: https://remote-dev.localhost:${up.tls.port}
profiles:
  minimal: []
  ${PROFILE_LOCAL}: [api, sink, ws, flip]
  ${PROFILE_REMOTE}: [api, sink, ws]
default: minimal
`;
  await initRepo(dir, yaml);
  writeProfileAtomically(dir, PROFILE_LOCAL);
  return dir;
}

/** Local ports of the scale services: never listened on, as every worktree there is all-remote. */
const SCALE_LOCAL_PORT_BASE = 29101;

/** Number of services per worktree in the scale repository. */
export const SCALE_SERVICES = 5;

/**
 * The repository `scale`: main checkout plus `worktrees - 1` real git worktrees (branch
 * `wt-NNN`), each with a profile file, 5 services each whose remotes are the loopback upstream.
 * Returns the worktree paths (main first).
 */
export async function createScaleRepo(dir: string, worktrees: number, upstreamPort: number, onProgress: (done: number) => void): Promise<string[]> {
  const services = Array.from({ length: SCALE_SERVICES }, (_, i) => `s${i + 1}`);
  const yaml = `name: scale
services:
${services.map((s, i) => `  ${s}:\n    local: { port: ${SCALE_LOCAL_PORT_BASE + i} }\n    remote: http://127.0.0.1:${upstreamPort}\n`).join('')}profiles:
  minimal: []
  standard: [s1]
default: minimal
`;
  const main = join(dir, 'main');
  await initRepo(main, yaml);
  writeProfileAtomically(main, 'minimal');
  const paths = [main];
  for (let i = 1; i < worktrees; i++) {
    const name = `wt-${String(i).padStart(3, '0')}`;
    const path = join(dir, name);
    await git(main, ['worktree', 'add', '-q', '-b', name, path]);
    writeProfileAtomically(path, 'minimal');
    paths.push(path);
    if (i % 25 === 0) onProgress(i);
  }
  return paths;
}

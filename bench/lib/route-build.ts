/** Times the pure routing-table build for a large workspace, in process. */
import { buildRoutingTable, updateRoutingTable } from '../../router/route-table.js';
import type { WorktreeInput } from '../../router/types.js';
import type { ProjectConfig, ServiceConfig } from '../../profiles/schema.js';
import { summarise, type Summary } from './stats.js';

/** Build times, ms, and the table's size (to prove the build did the work). */
export interface RouteBuildResult {
  worktrees: number;
  routes: number;
  iterations: number;
  ms: Summary;
  /** The same table after one worktree's profile flipped, through updateRoutingTable (taken in turn with the full builds). */
  flipMs: Summary;
}

/** Inputs shaped like the scale repository: `worktrees` worktrees × `services` services. */
export function scaleInputs(worktrees: number, services: number): WorktreeInput[] {
  const serviceMap = new Map<string, ServiceConfig>();
  for (let i = 1; i <= services; i++) {
    serviceMap.set(`s${i}`, {
      name: `s${i}`,
      local: { kind: 'port', port: 20000 + i },
      remote: { url: `https://s${i}-dev.example.com`, insecure: false },
      health: '/healthz',
    });
  }
  const config: ProjectConfig = {
    name: 'scale',
    services: serviceMap,
    profiles: new Map([
      ['minimal', []],
      ['standard', ['s1', 's2']],
    ]),
    defaultProfile: 'minimal',
  };
  const inputs: WorktreeInput[] = [];
  for (let i = 0; i < worktrees; i++) {
    const name = `wt-${String(i).padStart(3, '0')}`;
    inputs.push({
      path: i === 0 ? '/work/scale/main' : `/work/scale/${name}`,
      repo: '/work/scale/main',
      ...(i === 0 ? { branch: 'main' } : { branch: `feature/${name}` }),
      isMain: i === 0,
      config,
      profile: { profile: i % 2 === 0 ? 'minimal' : 'standard', services: new Map() },
      diagnostics: [],
      projectName: 'scale',
    });
  }
  return inputs;
}

/**
 * Builds the table repeatedly (after a warm-up) for up to `budgetMs` or `maxIterations`, and in
 * turn updates it after a flip of one worktree's profile, as the daemon does.
 */
export function measureRouteBuild(worktrees: number, services: number, budgetMs: number, maxIterations: number): RouteBuildResult {
  const inputs = scaleInputs(worktrees, services);
  const middle = Math.floor(worktrees / 2);
  const flipped = (i: number): WorktreeInput[] => inputs.map((input, j) => (j === middle ? { ...input, profile: { profile: i % 2 === 0 ? 'standard' : 'minimal', services: new Map() } } : input));
  let routes = 0;
  let build = updateRoutingTable(undefined, inputs);
  for (let i = 0; i < 20; i++) {
    routes = buildRoutingTable(inputs).routes.size;
    build = updateRoutingTable(build, flipped(i));
  }
  const samples: number[] = [];
  const flipSamples: number[] = [];
  const deadline = performance.now() + budgetMs;
  while (samples.length < maxIterations && performance.now() < deadline) {
    const t0 = performance.now();
    routes = buildRoutingTable(inputs).routes.size;
    samples.push(performance.now() - t0);
    const next = flipped(samples.length);
    const t1 = performance.now();
    build = updateRoutingTable(build, next);
    flipSamples.push(performance.now() - t1);
    if (build.full !== undefined || build.table.routes.size !== routes) throw new Error(`a flip rebuilt the whole table (${build.full ?? 'routes lost'})`);
  }
  return { worktrees, routes, iterations: samples.length, ms: summarise(samples), flipMs: summarise(flipSamples) };
}

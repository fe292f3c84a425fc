import { describe, expect, it } from 'vitest';
import { validateConfig } from '../../profiles/validate-config.js';
import { buildRoutingTable } from '../../router/route-table.js';
import type { WorktreeInput } from '../../router/types.js';

const CONFIG = validateConfig(
  `name: shop
setup: { run: ["npm ci"] }
services:
  ui: { local: { command: "npx vite --port $PORT", cwd: ui } }
  api: { local: { command: "node server.js" }, remote: "https://api-dev.example.com" }
profiles: { standard: [ui, api] }
`,
  '/repo/devproxy.yaml',
).config!;

function input(setupPending: boolean): WorktreeInput {
  return { path: '/repo.worktrees/x', repo: '/repo', branch: 'feature/x', isMain: false, config: CONFIG, profile: { profile: 'standard', services: new Map() }, diagnostics: [], projectName: 'shop', ...(setupPending ? { setupPending } : {}) };
}

describe('routes of a worktree whose set-up has not succeeded', () => {
  it('serves the remote meanwhile, and says to run devproxy setup where there is none', () => {
    const table = buildRoutingTable([input(true)]);
    expect(table.routes.get('api.x.localhost')).toMatchObject({ mode: 'remote', desired: 'local', target: { kind: 'remote', hostname: 'api-dev.example.com' } });
    expect(table.routes.get('ui.x.localhost')).toMatchObject({
      mode: 'local',
      problem: { message: 'worktree "x" is not set up yet, so "ui" does not run locally (and has no remote to serve meanwhile)', hint: 'run `devproxy setup` in /repo.worktrees/x; its output says what failed' },
    });
  });

  it('says "starting" as before once the set-up is done', () => {
    expect(buildRoutingTable([input(false)]).routes.get('ui.x.localhost')?.problem?.message).toContain('is starting locally');
  });
});

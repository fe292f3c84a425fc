import { describe, expect, it } from 'vitest';
import { formatDiagnostic } from '../../profiles/schema.js';
import { validateConfig } from '../../profiles/validate-config.js';

const FILE = '/repo/devproxy.yaml';
const errorsOf = (text: string): string[] => validateConfig(text, FILE).errors.map(formatDiagnostic);

describe('validateConfig: setup, cwd and health', () => {
  it('reads the setup block, a command cwd and the health mapping', () => {
    const { config, errors, warnings } = validateConfig(
      `name: contoso
setup:
  copy: [.env, "ui/.env.local", "config/*.local.json"]
  run:
    - npm ci --prefix ui
    - npm ci --prefix api
services:
  ui:
    local: { command: "npx vite --port $PORT --strictPort", cwd: ui/ }
    health: { path: /, timeout: 90s }
  api:
    local: { command: "node server.js", cwd: ./api }
    health: /healthz
  web:
    local: { command: "npm start", cwd: . }
    health: { timeout: 2m }
`,
      FILE,
    );
    expect(errors).toEqual([]);
    expect(warnings).toEqual([]);
    expect(config?.setup).toEqual({ copy: ['.env', 'ui/.env.local', 'config/*.local.json'], run: ['npm ci --prefix ui', 'npm ci --prefix api'] });
    expect(config?.services.get('ui')).toMatchObject({ local: { kind: 'command', command: 'npx vite --port $PORT --strictPort', cwd: 'ui' }, health: '/', healthTimeoutMs: 90_000 });
    expect(config?.services.get('api')).toMatchObject({ local: { kind: 'command', command: 'node server.js', cwd: 'api' }, health: '/healthz' });
    expect(config?.services.get('api')?.healthTimeoutMs).toBeUndefined();
    expect(config?.services.get('web')?.local).toEqual({ kind: 'command', command: 'npm start' });
    expect(config?.services.get('web')?.health).toBeUndefined();
    expect(config?.services.get('web')?.healthTimeoutMs).toBe(120_000);
  });

  it('has no setup when the block is absent', () => {
    expect(validateConfig('name: x\nservices:\n  ui: { local: { port: 3000 } }\n', FILE).config?.setup).toBeUndefined();
  });

  it.each([
    ['setup that is a list', 'name: x\nsetup: [npm ci]\nservices:\n  ui: { local: { port: 3000 } }\n', /:2:8 setup: setup must be a mapping with `copy:` and\/or `run:` — write e\.g\./],
    ['run that is a string', 'name: x\nsetup:\n  run: npm ci\nservices:\n  ui: { local: { port: 3000 } }\n', /:3:8 setup\.run: setup\.run must be a list — /],
    ['an empty run step', 'name: x\nsetup:\n  run: ["npm ci", " "]\nservices:\n  ui: { local: { port: 3000 } }\n', /:3:19 setup\.run: " " is not a shell command — /],
    ['a copy pattern outside the repository', 'name: x\nsetup:\n  copy: [../secrets.env]\nservices:\n  ui: { local: { port: 3000 } }\n', /:3:10 setup\.copy: "\.\.\/secrets\.env" is not a path pattern relative to the repository root/],
    ['an absolute copy pattern', 'name: x\nsetup:\n  copy: [/etc/passwd]\nservices:\n  ui: { local: { port: 3000 } }\n', /:3:10 setup\.copy: "\/etc\/passwd" is not a path pattern/],
    ['a cwd outside the worktree', 'name: x\nservices:\n  ui:\n    local: { command: "vite", cwd: ../other }\n', /:4:36 services\.ui\.local\.cwd: cwd must be a folder inside the worktree, relative to its root — write e\.g\. `cwd: ui`/],
    ['a cwd without command', 'name: x\nservices:\n  ui:\n    local: { port: 3000, cwd: ui }\n', /:4:26 services\.ui\.local\.cwd: cwd applies only to a `command:` service/],
    ['a health path without slash', 'name: x\nservices:\n  ui:\n    local: { port: 3000 }\n    health: { path: healthz }\n', /:5:21 services\.ui\.health\.path: health must be an HTTP path — write e\.g\. `health: \/healthz` or `health: \{ path: \/healthz, timeout: 60s \}`/],
    ['a health timeout that is no duration', 'name: x\nservices:\n  ui:\n    local: { port: 3000 }\n    health: { path: /, timeout: soon }\n', /:5:33 services\.ui\.health\.timeout: timeout must be a duration — write e\.g\. `timeout: 60s`/],
    ['a string health that is no path', 'name: x\nservices:\n  ui:\n    local: { port: 3000 }\n    health: 42\n', /:5:13 services\.ui\.health: health must be an HTTP path/],
  ])('reports %s with its line', (_what, text, expected) => {
    const errors = errorsOf(text);
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatch(expected);
  });

  it('warns about unknown keys of setup and health', () => {
    const { config, warnings } = validateConfig('name: x\nsetup:\n  copy: [.env]\n  runs: [npm ci]\nservices:\n  ui:\n    local: { port: 3000 }\n    health: { path: /, timeuot: 5s }\n', FILE);
    expect(config).toBeDefined();
    expect(warnings.map(formatDiagnostic)).toEqual([
      '/repo/devproxy.yaml:4:3 setup.runs: unknown key "runs" is ignored — did you mean "run"?',
      '/repo/devproxy.yaml:8:24 services.ui.health.timeuot: unknown key "timeuot" is ignored — did you mean "timeout"?',
    ]);
  });
});

import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CONTAINER_CA_PATH, composeCaVolume, composeExtraHosts } from '../../environment/compose-env.js';
import { nodeOptionsWithPreload } from '../../environment/node-options.js';
import { buildWorktreeEnvironment, displayEnvironment, httpsVariable, resolveEnvironment, urlVariable, type EnvironmentInputs } from '../../environment/worktree-env.js';
import type { ProjectConfig } from '../../profiles/schema.js';
import { validateConfig } from '../../profiles/validate-config.js';

/** A config as devproxy.yaml would give it, through the real validator. */
function config(yaml: string): ProjectConfig {
  const result = validateConfig(yaml, 'devproxy.yaml');
  if (!result.config) throw new Error(result.errors.map((e) => e.message).join('\n'));
  return result.config;
}

const HYBRID = config(`name: contoso
services:
  ui:
    local: { port: 5173 }
  api:
    local: { port: 3000 }
    remote: https://contoso-api-dev.azurewebsites.net
    env: { url: API_BASE_URL }
  cosmos:
    local: { compose: cosmos, port: 8081 }
    remote: https://contoso-cosmos-dev.documents.azure.com
    env:
      url: false
      local: { COSMOS_CONNECTION: "AccountEndpoint=https://localhost:8081/;AccountKey=local", COSMOS_DB: contoso }
      remote: { COSMOS_CONNECTION: "\${env:COSMOS_DEV_CONNECTION}", COSMOS_DB: contoso }
  search-index:
    remote: https://search.dev.example
profiles:
  minimal: [ui]
  data: [ui, cosmos]
default: minimal
`);

const inputs = (over: Partial<EnvironmentInputs> = {}): EnvironmentInputs => ({
  config: HYBRID,
  slug: 'feature-x',
  local: ['ui'],
  httpPort: 7080,
  httpsPort: 7443,
  caPath: '/home/me/.devproxy/certs/ca.pem',
  ...over,
});

describe('buildWorktreeEnvironment', () => {
  it('names each URL after the service or its env.url, with HTTPS twins and the CA', () => {
    expect(displayEnvironment(buildWorktreeEnvironment(inputs()))).toEqual({
      UI_URL: 'http://ui.feature-x.localhost:7080',
      UI_HTTPS_URL: 'https://ui.feature-x.localhost:7443',
      API_BASE_URL: 'http://api.feature-x.localhost:7080',
      API_BASE_HTTPS_URL: 'https://api.feature-x.localhost:7443',
      COSMOS_CONNECTION: '${env:COSMOS_DEV_CONNECTION}',
      COSMOS_DB: 'contoso',
      SEARCH_INDEX_URL: 'http://search-index.feature-x.localhost:7080',
      SEARCH_INDEX_HTTPS_URL: 'https://search-index.feature-x.localhost:7443',
      NODE_EXTRA_CA_CERTS: '/home/me/.devproxy/certs/ca.pem',
    });
  });

  it('keeps the order: per service its URLs then its values, the CA last', () => {
    const names = buildWorktreeEnvironment(inputs()).variables.map((v) => v.name);
    expect(names).toEqual(['UI_URL', 'UI_HTTPS_URL', 'API_BASE_URL', 'API_BASE_HTTPS_URL', 'COSMOS_CONNECTION', 'COSMOS_DB', 'SEARCH_INDEX_URL', 'SEARCH_INDEX_HTTPS_URL', 'NODE_EXTRA_CA_CERTS']);
  });

  it('emits the local value of a data service routed locally, the remote one (a reference) otherwise', () => {
    const local = buildWorktreeEnvironment(inputs({ local: ['ui', 'cosmos'] }));
    expect(local.variables.find((v) => v.name === 'COSMOS_CONNECTION')).toEqual({
      name: 'COSMOS_CONNECTION',
      value: 'AccountEndpoint=https://localhost:8081/;AccountKey=local',
      source: 'services.cosmos.env.local',
      reference: false,
    });
    const remote = buildWorktreeEnvironment(inputs({ local: ['ui'] }));
    expect(remote.variables.find((v) => v.name === 'COSMOS_CONNECTION')).toEqual({
      name: 'COSMOS_CONNECTION',
      value: '${env:COSMOS_DEV_CONNECTION}',
      source: 'services.cosmos.env.remote',
      reference: true,
    });
  });

  it('notes that a flip of the data service changes only the variables that differ', () => {
    const { notes } = buildWorktreeEnvironment(inputs());
    expect(notes).toEqual([
      'switching cosmos between local and remote changes COSMOS_CONNECTION: restart the processes that read it (`devproxy restart <service>`, or run `devproxy run` again)',
    ]);
  });

  it('emits no HTTPS twins and no CA when HTTPS is off', () => {
    const env = displayEnvironment(buildWorktreeEnvironment(inputs({ httpsPort: null })));
    expect(Object.keys(env).filter((k) => k.includes('HTTPS') || k === 'NODE_EXTRA_CA_CERTS')).toEqual([]);
    expect(env.UI_URL).toBe('http://ui.feature-x.localhost:7080');
  });

  it('leaves the port out of URLs on the standard ports', () => {
    const env = displayEnvironment(buildWorktreeEnvironment(inputs({ httpPort: 80, httpsPort: 443 })));
    expect(env.UI_URL).toBe('http://ui.feature-x.localhost');
    expect(env.UI_HTTPS_URL).toBe('https://ui.feature-x.localhost');
  });

  it('says which service wins when two set the same variable', () => {
    const clash = config(`name: p
services:
  a:
    local: { port: 1 }
    env: { local: { SHARED: from-a } }
  b:
    local: { port: 2 }
    env: { local: { SHARED: from-b } }
profiles: { all: [a, b] }
default: all
`);
    const environment = buildWorktreeEnvironment(inputs({ config: clash, local: ['a', 'b'] }));
    // env: without url: keeps the default URL variable.
    expect(displayEnvironment(environment).A_URL).toBe('http://a.feature-x.localhost:7080');
    expect(displayEnvironment(environment).SHARED).toBe('from-b');
    expect(environment.variables.filter((v) => v.name === 'SHARED')).toHaveLength(1);
    expect(environment.notes).toContain("SHARED is set by both a and b; b's value is used");
  });

  it('names the HTTPS twin of any URL variable', () => {
    expect(urlVariable('search-index')).toBe('SEARCH_INDEX_URL');
    expect(httpsVariable('API_URL')).toBe('API_HTTPS_URL');
    expect(httpsVariable('BACKEND')).toBe('BACKEND_HTTPS');
  });
});

describe('resolveEnvironment', () => {
  it('resolves references for injection only', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'devproxy-env-unit-'));
    try {
      await writeFile(join(dir, 'db-name.txt'), 'contoso-dev\n');
      const withFile = config(`name: p
services:
  db:
    remote: https://db.example
    env: { url: false, remote: { DB: "\${env:DB_DEV}", DB_NAME: "\${file:db-name.txt}" } }
profiles: { none: [] }
default: none
`);
      const environment = buildWorktreeEnvironment(inputs({ config: withFile, local: [] }));
      expect(displayEnvironment(environment)).toMatchObject({ DB: '${env:DB_DEV}', DB_NAME: '${file:db-name.txt}' });
      expect(resolveEnvironment(environment, { env: { DB_DEV: 'AccountKey=s3cret' }, baseDir: dir })).toMatchObject({ DB: 'AccountKey=s3cret', DB_NAME: 'contoso-dev' });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('refuses an unset variable, naming it and the variable being built', () => {
    const environment = buildWorktreeEnvironment(inputs());
    let caught: unknown;
    try {
      resolveEnvironment(environment, { env: {}, baseDir: '/' });
    } catch (error) {
      caught = error;
    }
    expect(caught).toMatchObject({
      code: 'DEVPROXY_ERR_ENV_UNSET',
      message: 'COSMOS_CONNECTION (services.cosmos.env.remote) needs the environment variable COSMOS_DEV_CONNECTION, which is not set',
      hint: 'set it and run again, or change services.cosmos.env.remote.COSMOS_CONNECTION in devproxy.yaml',
    });
  });
});

describe('process and container environments', () => {
  it('appends the localhost preload to the NODE_OPTIONS a process already has, once', () => {
    expect(nodeOptionsWithPreload(undefined, 'file:///p.js')).toBe('--import file:///p.js');
    expect(nodeOptionsWithPreload('--max-old-space-size=4096', 'file:///p.js')).toBe('--max-old-space-size=4096 --import file:///p.js');
    expect(nodeOptionsWithPreload('--import file:///p.js', 'file:///p.js')).toBe('--import file:///p.js');
    expect(nodeOptionsWithPreload('--trace-warnings')).toMatch(/^--trace-warnings --import file:\/\/\/.*\/dist\/environment\/localhost-preload\.js$/);
  });

  it('sends every worktree hostname to the host from a container, and points the CA at its mount', () => {
    expect(composeExtraHosts({ config: HYBRID, slug: 'feature-x' }, { hostNetwork: false })).toEqual([
      'ui.feature-x.localhost:host-gateway',
      'api.feature-x.localhost:host-gateway',
      'cosmos.feature-x.localhost:host-gateway',
      'search-index.feature-x.localhost:host-gateway',
    ]);
    expect(composeExtraHosts({ config: HYBRID, slug: 'feature-x' }, { hostNetwork: true })[0]).toBe('ui.feature-x.localhost:127.0.0.1');
    expect(composeCaVolume('/home/me/.devproxy/certs/ca.pem')).toBe(`/home/me/.devproxy/certs/ca.pem:${CONTAINER_CA_PATH}:ro`);
  });
});

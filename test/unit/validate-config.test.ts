import { describe, expect, it } from 'vitest';
import { formatDiagnostic } from '../../profiles/schema.js';
import { parseMemory, validateConfig } from '../../profiles/validate-config.js';

const FILE = '/repo/devproxy.yaml';

const VALID = `name: contoso
compose: docker-compose.yml
services:
  ui:
    local: { compose: ui, port: 3000 }
    remote: https://contoso-ui-dev.azurewebsites.net
    memory: 256MB
  api:
    local: { command: "npm run dev --prefix api", port: 8080 }
    remote: https://contoso-api-dev.azurecontainerapps.io/v1/
    health: /healthz
    memory: 512MB
  db:
    local: { port: 5432 }
    remote: { url: "https://db-dev.example.com", ca: certs/dev-ca.pem, insecure: false }
    memory: 2GB
profiles:
  minimal: [ui]
  standard: [ui, api]
  full: [ui, api, db]
default: minimal
`;

function errorsOf(text: string): string[] {
  return validateConfig(text, FILE).errors.map(formatDiagnostic);
}

describe('validateConfig', () => {
  it('accepts the DESIGN.md example with every kind of local service', () => {
    const { config, errors, warnings } = validateConfig(VALID, FILE);
    expect(errors).toEqual([]);
    expect(warnings).toEqual([]);
    expect(config?.name).toBe('contoso');
    expect([...config!.services.keys()]).toEqual(['ui', 'api', 'db']);
    expect(config!.services.get('ui')).toEqual({ name: 'ui', local: { kind: 'compose', compose: 'ui', port: 3000 }, remote: { url: 'https://contoso-ui-dev.azurewebsites.net', insecure: false }, memoryBytes: 256 * 1024 ** 2 });
    expect(config!.services.get('api')?.local).toEqual({ kind: 'command', command: 'npm run dev --prefix api', port: 8080 });
    expect(config!.services.get('api')?.remote?.url).toBe('https://contoso-api-dev.azurecontainerapps.io/v1');
    expect(config!.services.get('db')?.remote).toEqual({ url: 'https://db-dev.example.com', ca: 'certs/dev-ca.pem', insecure: false });
    expect(config!.profiles.get('standard')).toEqual(['ui', 'api']);
    expect(config!.profiles.get('remote')).toEqual([]);
    expect(config!.defaultProfile).toBe('minimal');
  });

  it.each([
    ['a YAML syntax error', 'name: x\nservices:\n  ui: [unclosed\n', /^\/repo\/devproxy\.yaml:4:1 YAML syntax error: .+ — fix the YAML syntax at this line/],
    ['an empty file', '', /^\/repo\/devproxy\.yaml the file is empty — /],
    ['a scalar document', 'just text\n', /^\/repo\/devproxy\.yaml:1:1 devproxy\.yaml must be a mapping of keys to values/],
    ['a missing name', 'services:\n  ui: { remote: https://ui.example.com }\n', /^\/repo\/devproxy\.yaml:1:1 name: the project has no name — add `name: <project>`/],
    ['a name that is no hostname label', 'name: My_Project\nservices:\n  ui: { remote: https://ui.example.com }\n', /^\/repo\/devproxy\.yaml:1:7 name: "My_Project" cannot be used in a hostname/],
    ['no services', 'name: x\nservices: {}\n', /:2:11 services: no services are defined/],
    ['a bad remote URL', 'name: x\nservices:\n  api:\n    remote: ftp://nope\n', /:4:13 services\.api\.remote: "ftp:\/\/nope" is not an absolute http\(s\) URL — write e\.g\. `remote: https:/],
    ['a port out of range', 'name: x\nservices:\n  api:\n    local: { port: 70000 }\n', /:4:20 services\.api\.local\.port: port must be a whole number from 1 to 65535/],
    ['a duplicate port', 'name: x\nservices:\n  a:\n    local: { port: 3000 }\n  b:\n    local: { port: 3000 }\n', /:6:20 services\.b\.local\.port: port 3000 is already the local port of service "a" — give each service its own port/],
    ['a compose service without port', 'name: x\nservices:\n  ui:\n    local: { compose: ui }\n', /:4:12 services\.ui\.local\.port: a compose service needs the container port/],
    ['a typo in local', 'name: x\nservices:\n  ui:\n    local: { prot: 3000 }\n', /:4:14 services\.ui\.local\.prot: unknown key "prot" — did you mean "port"\?/],
    ['a service with neither', 'name: x\nservices:\n  ui:\n    health: /h\n', /:4:5 services\.ui: service "ui" has neither local nor remote/],
    ['an unknown service in a profile', 'name: x\nservices:\n  api: { local: { port: 1 } }\nprofiles:\n  standard: [apii]\n', /:5:14 profiles\.standard: profile "standard" names unknown service "apii" — did you mean "api"\?/],
    ['a profile running a remote-only service', 'name: x\nservices:\n  api: { remote: https://a.example.com }\nprofiles:\n  full: [api]\n', /:5:10 profiles\.full: profile "full" runs "api" locally but the service has no local definition/],
    ['an unknown default', 'name: x\nservices:\n  api: { local: { port: 1 } }\nprofiles:\n  standard: [api]\ndefault: standrd\n', /:6:10 default: default profile "standrd" is not defined — did you mean "standard"\?/],
    ['a bad memory size', 'name: x\nservices:\n  api:\n    local: { port: 1 }\n    memory: lots\n', /:5:13 services\.api\.memory: memory must be a size/],
    ['a health check without slash', 'name: x\nservices:\n  api:\n    local: { port: 1 }\n    health: healthz\n', /:5:13 services\.api\.health: health must be an HTTP path/],
    ['a duplicate key', 'name: x\nname: y\nservices:\n  api: { local: { port: 1 } }\n', /:2:1 YAML syntax error: Map keys must be unique/],
  ])('rejects %s with file, line, field and fix', (_case, text, expected) => {
    const errors = errorsOf(text);
    expect(errors.length).toBeGreaterThan(0);
    expect(errors[0]).toMatch(expected);
  });

  it('warns about unknown keys with a suggestion but still loads', () => {
    const { config, warnings } = validateConfig('name: x\nservicse: 1\nservices:\n  api:\n    local: { port: 1 }\n    helth: /h\n', FILE);
    expect(config).toBeDefined();
    expect(warnings.map(formatDiagnostic)).toEqual([
      '/repo/devproxy.yaml:2:1 servicse: unknown key "servicse" is ignored — did you mean "services"?',
      '/repo/devproxy.yaml:6:5 services.api.helth: unknown key "helth" is ignored — did you mean "health"?',
    ]);
  });

  it('defaults to minimal when defined, else the first profile', () => {
    expect(validateConfig('name: x\nservices:\n  a: { local: { port: 1 } }\nprofiles:\n  full: [a]\n  minimal: []\n', FILE).config?.defaultProfile).toBe('minimal');
    expect(validateConfig('name: x\nservices:\n  a: { local: { port: 1 } }\nprofiles:\n  full: [a]\n', FILE).config?.defaultProfile).toBe('full');
    expect(validateConfig('name: x\nservices:\n  a: { remote: https://a.example.com }\n', FILE).config?.defaultProfile).toBe('remote');
  });
});

describe('parseMemory', () => {
  it.each([
    ['256MB', 256 * 1024 ** 2],
    ['1.5GB', 1.5 * 1024 ** 3],
    ['6gb', 6 * 1024 ** 3],
    [512, 512],
    ['12', undefined],
    ['-1GB', undefined],
  ])('%s → %s', (input, bytes) => expect(parseMemory(input)).toBe(bytes));
});

describe('validateConfig: remote options and environment', () => {
  const base = 'name: x\nservices:\n  api:\n    local: { port: 1 }\n    remote: https://api-dev.example.com\n';

  it('reads auth, writes, cors, wake, fallback, env and the worktree header', () => {
    const { config, errors } = validateConfig(
      `${base}    fallback: remote\n    writes: read-only\n    cors: false\n    wake: { timeout: 90s }\n    auth:\n      headers: { X-Functions-Key: "\${env:API_KEY}" }\n      azure: { scope: "api://api-dev/.default", tenant: contoso }\n    env:\n      url: API_BASE\n      local: { DB: "mongodb://localhost:27017" }\n      remote: { DB: "\${env:COSMOS_DEV}" }\nworktreeHeader: X-Who\nworktrees: ../trees\n`,
      FILE,
    );
    expect(errors.map(formatDiagnostic)).toEqual([]);
    const api = config!.services.get('api')!;
    expect(api).toMatchObject({ fallback: 'remote', writes: 'read-only', cors: false, wake: { timeoutMs: 90_000 } });
    expect(api.auth).toEqual({ headers: new Map([['x-functions-key', '${env:API_KEY}']]), azure: { scope: 'api://api-dev/.default', tenant: 'contoso' } });
    expect(api.env).toEqual({ urlName: 'API_BASE', local: new Map([['DB', 'mongodb://localhost:27017']]), remote: new Map([['DB', '${env:COSMOS_DEV}']]) });
    expect(config).toMatchObject({ worktreeHeader: 'x-who', worktreesDir: '../trees' });
  });

  it('leaves the URL variable to its default unless told otherwise', () => {
    const { config } = validateConfig(`${base}    env: { remote: { A: b } }\n  my-svc: { remote: https://m.example.com, env: { url: false } }\n`, FILE);
    expect(config!.services.get('api')!.env!.urlName).toBeUndefined();
    expect(config!.services.get('my-svc')!.env!.urlName).toBeNull();
  });

  it.each([
    ['a bad write policy', `${base}    writes: never\n`, ':6:13 services.api.writes: "never" is not a write policy'],
    ['an unknown reference kind', `${base}    auth: { headers: { k: "\${vault:x}" } }\n`, ':6:27 services.api.auth.headers.k: ${vault:x} is not a reference devproxy knows'],
    ['an empty env reference', `${base}    env: { remote: { A: "\${env:}" } }\n`, ':6:25 services.api.env.remote.A: ${env:} does not name an environment variable'],
    ['a bad wake timeout', `${base}    wake: { timeout: soon }\n`, ':6:22 services.api.wake: wake takes a timeout, or false'],
    ['auth without remote', 'name: x\nservices:\n  api:\n    local: { port: 1 }\n    auth: { headers: { k: v } }\n', ':5:5 services.api.auth: auth is injected on the remote hop, but the service has no remote'],
    ['azure auth without scope', `${base}    auth: { azure: { tenant: t } }\n`, ':6:20 services.api.auth.azure.scope: azure auth needs the token scope'],
  ])('rejects %s', (_case, text, expected) => {
    expect(errorsOf(text)[0]).toContain(expected);
  });
});

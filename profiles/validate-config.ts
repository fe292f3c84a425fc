import { isMap, isScalar, isSeq, type Node, type YAMLMap } from 'yaml';
import { isNameLabel } from '../hostname.js';
import { parseReferences } from './references.js';
import { parseRequestRule, type RequestRule } from './request-rules.js';
import type { Diagnostic, LocalDefinition, ProjectConfig, RemoteAuth, RemoteDefinition, ServiceConfig, ServiceEnv, WorktreeSetup } from './schema.js';
import { didYouMean, entries, parseYamlMap, type YamlSource } from './yaml-source.js';

/** Built-in profile under which every service is remote; defined unless the config defines its own. */
export const REMOTE_PROFILE = 'remote';

const TOP_LEVEL_KEYS = ['name', 'compose', 'ca', 'services', 'profiles', 'default', 'worktreeHeader', 'worktrees', 'setup'];
const SETUP_KEYS = ['copy', 'run'];
const HEALTH_KEYS = ['path', 'timeout'];
const SERVICE_KEYS = ['local', 'remote', 'health', 'memory', 'fallback', 'env', 'auth', 'writes', 'cors', 'wake'];
/** Header that tells the shared DEV logs which worktree sent a request. */
export const DEFAULT_WORKTREE_HEADER = 'x-devproxy-worktree';
/** How long a started local instance may take to become healthy before devproxy reports it failed. */
export const DEFAULT_HEALTH_TIMEOUT_MS = 60_000;
/** How long a sleeping remote may take to wake before devproxy gives up. */
export const DEFAULT_WAKE_TIMEOUT_MS = 60_000;
const HEADER_NAME = /^[A-Za-z0-9!#$%&'*+.^_`|~-]+$/;
const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000 };
const LOCAL_KINDS = ['port', 'compose', 'command'] as const;
const LOCAL_KEYS = [...LOCAL_KINDS, 'cwd'] as const;
const MEMORY_UNITS: Record<string, number> = { B: 1, KB: 1024, MB: 1024 ** 2, GB: 1024 ** 3, TB: 1024 ** 4 };

export interface ConfigValidation {
  /** Present when there is no error (warnings allowed). */
  config?: ProjectConfig;
  errors: Diagnostic[];
  warnings: Diagnostic[];
}

/**
 * Validates the text of a `devproxy.yaml`. Pure: `file` is only used in messages. Every problem
 * is reported with its line, the field and a fix; unknown keys are warnings so that a newer
 * config still loads in an older devproxy.
 */
export function validateConfig(text: string, file: string): ConfigValidation {
  const root = parseYamlMap(text, file, 'devproxy.yaml');
  if ('diagnostics' in root) return { errors: root.diagnostics, warnings: [] };
  const source = root.source;

  const errors: Diagnostic[] = [];
  const warnings: Diagnostic[] = [];
  const problem = (node: Node | null | undefined, field: string, message: string, hint: string) =>
    errors.push(source.problem(node, field, message, hint));

  const fields = new Map(entries(root.map).map((e) => [e.key, e]));
  warnUnknownKeys(source, root.map, TOP_LEVEL_KEYS, '', warnings);

  const nameEntry = fields.get('name');
  let name = '';
  if (!nameEntry) {
    errors.push(source.problem(root.map, 'name', 'the project has no name', 'add `name: <project>` (lower-case letters, digits and hyphens); it names the main checkout in hostnames'));
  } else {
    name = scalarString(nameEntry.value) ?? '';
    if (!isNameLabel(name)) {
      problem(nameEntry.value, 'name', `"${name}" cannot be used in a hostname`, 'use lower-case letters, digits and hyphens, e.g. `name: contoso`');
    }
  }

  const compose = optionalString(source, fields.get('compose')?.value, 'compose', errors);
  const ca = optionalString(source, fields.get('ca')?.value, 'ca', errors);
  const worktreesDir = optionalString(source, fields.get('worktrees')?.value, 'worktrees', errors);
  const setupEntry = fields.get('setup');
  const setup = setupEntry ? validateSetup(source, setupEntry.value, errors, warnings) : undefined;
  let worktreeHeader: string | null | undefined;
  const headerEntry = fields.get('worktreeHeader');
  if (headerEntry) {
    const value = isScalar(headerEntry.value) ? headerEntry.value.value : undefined;
    if (value === false) worktreeHeader = null;
    else if (typeof value === 'string' && HEADER_NAME.test(value)) worktreeHeader = value.toLowerCase();
    else problem(headerEntry.value, 'worktreeHeader', 'worktreeHeader must be a header name or false', 'write e.g. `worktreeHeader: x-devproxy-worktree`, or `false` to send none');
  }

  const services = new Map<string, ServiceConfig>();
  const servicesEntry = fields.get('services');
  const servicesNode = servicesEntry?.value;
  if (!servicesEntry || !isMap(servicesNode) || servicesNode.items.length === 0) {
    problem(servicesNode ?? root.map, 'services', 'no services are defined', 'add `services:` with at least one service, e.g. `api: { local: { port: 8080 }, remote: https://api-dev.example.com }`');
  } else {
    const portOwners = new Map<number, string>();
    for (const { key, pair, value } of entries(servicesNode)) {
      const field = `services.${key}`;
      if (!isNameLabel(key)) {
        errors.push(source.problem(pair, field, `service name "${key}" cannot be used in a hostname`, 'rename it with lower-case letters, digits and hyphens'));
        continue;
      }
      const service = validateService(source, key, value, errors, warnings);
      if (!service) continue;
      if (service.local?.kind === 'port') {
        const owner = portOwners.get(service.local.port);
        if (owner) {
          problem(localPortNode(value), `${field}.local.port`, `port ${service.local.port} is already the local port of service "${owner}"`, 'give each service its own port');
        } else {
          portOwners.set(service.local.port, key);
        }
      }
      services.set(key, service);
    }
  }

  const profiles = new Map<string, string[]>();
  const profilesEntry = fields.get('profiles');
  if (profilesEntry) {
    const profilesNode = profilesEntry.value;
    if (!isMap(profilesNode)) {
      problem(profilesNode, 'profiles', 'profiles must be a mapping of profile name to a list of services', 'write e.g. `profiles: { minimal: [ui], standard: [ui, api] }`');
    } else {
      for (const { key, pair, value } of entries(profilesNode)) {
        const list = validateProfileList(source, key, pair, value, services, errors);
        if (list) profiles.set(key, list);
      }
    }
  }
  if (!profiles.has(REMOTE_PROFILE)) profiles.set(REMOTE_PROFILE, []);

  let defaultProfile = profiles.has('minimal') ? 'minimal' : profiles.keys().next().value ?? REMOTE_PROFILE;
  const defaultEntry = fields.get('default');
  if (defaultEntry) {
    const value = scalarString(defaultEntry.value);
    if (value === undefined || !profiles.has(value)) {
      const suggestion = value === undefined ? undefined : didYouMean(value, profiles.keys());
      problem(defaultEntry.value, 'default', `default profile "${value ?? ''}" is not defined`, suggestion ? `did you mean "${suggestion}"?` : `use one of: ${[...profiles.keys()].join(', ')}`);
    } else {
      defaultProfile = value;
    }
  }

  if (errors.length > 0) return { errors, warnings };
  return {
    config: { name, ...(compose ? { compose } : {}), ...(ca ? { ca } : {}), services, profiles, defaultProfile, ...(worktreeHeader !== undefined ? { worktreeHeader } : {}), ...(worktreesDir ? { worktreesDir } : {}), ...(setup ? { setup } : {}) },
    errors,
    warnings,
  };
}

function validateService(source: YamlSource, name: string, node: Node | null, errors: Diagnostic[], warnings: Diagnostic[]): ServiceConfig | undefined {
  const field = `services.${name}`;
  if (!isMap(node)) {
    errors.push(source.problem(node, field, `service "${name}" must be a mapping`, 'give it `local:` and/or `remote:`, e.g. `remote: https://api-dev.example.com`'));
    return undefined;
  }
  warnUnknownKeys(source, node, SERVICE_KEYS, `${field}.`, warnings);
  const fields = new Map(entries(node).map((e) => [e.key, e]));
  const before = errors.length;
  const service: ServiceConfig = { name };

  const localNode = fields.get('local')?.value;
  if (localNode !== undefined) {
    const local = validateLocal(source, `${field}.local`, localNode, errors);
    if (local) service.local = local;
  }
  const remoteNode = fields.get('remote')?.value;
  if (remoteNode !== undefined) {
    const remote = validateRemote(source, `${field}.remote`, remoteNode, errors);
    if (remote) service.remote = remote;
  }
  if (localNode === undefined && remoteNode === undefined) {
    errors.push(source.problem(node, field, `service "${name}" has neither local nor remote`, 'add `local: { port: <n> }` and/or `remote: <https url>`'));
  }
  const healthEntry = fields.get('health');
  if (healthEntry) validateHealth(source, `${field}.health`, healthEntry.value, service, errors, warnings);
  const memoryEntry = fields.get('memory');
  if (memoryEntry) {
    const bytes = parseMemory(isScalar(memoryEntry.value) ? memoryEntry.value.value : undefined);
    if (bytes === undefined) {
      errors.push(source.problem(memoryEntry.value, `${field}.memory`, 'memory must be a size', 'write e.g. `memory: 512MB` or `memory: 1.5GB`'));
    } else {
      service.memoryBytes = bytes;
    }
  }
  validateRemoteOptions(source, field, fields, service, errors);
  return errors.length === before ? service : undefined;
}

type Fields = Map<string, { key: string; pair: import('yaml').Pair; value: Node | null }>;

/** fallback, env, auth, writes, cors and wake of one service. */
function validateRemoteOptions(source: YamlSource, field: string, fields: Fields, service: ServiceConfig, errors: Diagnostic[]): void {
  const fallback = fields.get('fallback');
  if (fallback) {
    if (scalarString(fallback.value) !== 'remote') errors.push(source.problem(fallback.value, `${field}.fallback`, 'fallback can only be `remote`', 'write `fallback: remote` to serve the remote while the local instance is down'));
    else if (!service.remote) errors.push(source.problem(fallback.value, `${field}.fallback`, 'fallback: remote needs a remote endpoint', 'add `remote: <url>` to the service, or remove fallback'));
    else service.fallback = 'remote';
  }
  const writes = fields.get('writes');
  if (writes) validateWrites(source, `${field}.writes`, writes.value, service, errors);
  const cors = fields.get('cors');
  if (cors) {
    if (!isScalar(cors.value) || typeof cors.value.value !== 'boolean') errors.push(source.problem(cors.value, `${field}.cors`, 'cors must be true or false', 'write `cors: false` to pass the remote\'s own CORS answers through unchanged'));
    else service.cors = cors.value.value;
  }
  const wake = fields.get('wake');
  if (wake) {
    if (isScalar(wake.value) && wake.value.value === false) service.wake = null;
    else {
      const timeout = isMap(wake.value) ? wake.value.get('timeout', true) : undefined;
      const ms = parseDuration(isScalar(timeout) ? timeout.value : undefined);
      if (ms === undefined) errors.push(source.problem((timeout as Node | undefined) ?? wake.value, `${field}.wake`, 'wake takes a timeout, or false', 'write e.g. `wake: { timeout: 60s }`, or `wake: false` to turn cold-start handling off'));
      else service.wake = { timeoutMs: ms };
    }
  }
  const env = fields.get('env');
  if (env) {
    const parsed = validateServiceEnv(source, `${field}.env`, env.value, errors);
    if (parsed) service.env = parsed;
  }
  const auth = fields.get('auth');
  if (auth) {
    const parsed = validateAuth(source, `${field}.auth`, auth.value, errors);
    if (parsed) service.auth = parsed;
    if (!service.remote) errors.push(source.problem(auth.pair, `${field}.auth`, 'auth is injected on the remote hop, but the service has no remote', 'add `remote: <url>`, or remove auth'));
  }
}

const WRITES_HINT = 'write `writes: read-only` (refuse POST/PUT/PATCH/DELETE to the shared remote), `read-write`, or `{ policy: read-only, deny: ["GET /*/messages"] }`';

/** `writes: read-only|read-write`, or `{ policy, deny: ["METHOD /path/glob", …] }`. */
function validateWrites(source: YamlSource, field: string, node: Node | null, service: ServiceConfig, errors: Diagnostic[]): void {
  if (!isMap(node)) {
    const value = scalarString(node);
    if (value !== 'read-only' && value !== 'read-write') errors.push(source.problem(node, field, `"${value ?? ''}" is not a write policy`, WRITES_HINT));
    else service.writes = value;
    return;
  }
  const fields = new Map(entries(node).map((e) => [e.key, e]));
  for (const { key, pair } of fields.values()) {
    if (key === 'policy' || key === 'deny') continue;
    const suggestion = didYouMean(key, ['policy', 'deny']);
    errors.push(source.problem(pair, `${field}.${key}`, `unknown key "${key}"`, suggestion ? `did you mean "${suggestion}"?` : 'writes takes `policy:` and `deny:`'));
  }
  const policy = fields.get('policy');
  const value = scalarString(policy?.value);
  if (value !== 'read-only' && value !== 'read-write') {
    errors.push(source.problem(policy?.value ?? node, `${field}.policy`, policy ? `"${value ?? ''}" is not a write policy` : 'writes names no policy', 'write `policy: read-only` (or `read-write`)'));
  } else {
    service.writes = value;
  }
  const deny = fields.get('deny');
  if (!deny) return;
  if (!isSeq(deny.value)) {
    errors.push(source.problem(deny.value, `${field}.deny`, 'deny must be a list of requests', 'write e.g. `deny: ["GET /*/messages"]` (method, then a path where * is one segment and ** any)'));
    return;
  }
  const rules: RequestRule[] = [];
  for (const item of deny.value.items as Node[]) {
    const text = scalarString(item);
    const rule = text === undefined ? { problem: 'each entry must be a string' } : parseRequestRule(text);
    if ('problem' in rule) errors.push(source.problem(item, `${field}.deny`, rule.problem, 'write `METHOD /path`, e.g. "GET /*/messages" (* is one path segment, ** any; `!` first lets a request through again)'));
    else rules.push(rule);
  }
  if (rules.length > 0) service.writesDeny = rules;
}

function validateServiceEnv(source: YamlSource, field: string, node: Node | null, errors: Diagnostic[]): ServiceEnv | undefined {
  const hint = 'write e.g. `env: { url: API_BASE_URL, local: { DB: "…" }, remote: { DB: "${env:DB_DEV}" } }`';
  if (!isMap(node)) {
    errors.push(source.problem(node, field, 'env must be a mapping', hint));
    return undefined;
  }
  const env: ServiceEnv = { local: new Map(), remote: new Map() };
  for (const { key, pair, value } of entries(node)) {
    if (key === 'url') {
      if (isScalar(value) && value.value === false) {
        env.urlName = null;
        continue;
      }
      const name = scalarString(value);
      if (!name || !/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) errors.push(source.problem(value, `${field}.url`, 'url must name an environment variable, or be false', 'write e.g. `url: API_BASE_URL`'));
      else env.urlName = name;
    } else if (key === 'local' || key === 'remote') {
      if (!isMap(value)) {
        errors.push(source.problem(value, `${field}.${key}`, `env.${key} must map variable names to values`, hint));
        continue;
      }
      for (const item of entries(value)) {
        const text = isScalar(item.value) && item.value.value !== null ? String(item.value.value) : undefined;
        const checked = text === undefined ? undefined : parseReferences(text);
        if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(item.key) || text === undefined || checked?.problem) {
          errors.push(source.problem(item.value ?? item.pair, `${field}.${key}.${item.key}`, checked?.problem ?? 'each entry must be VARIABLE: value', hint));
          continue;
        }
        env[key].set(item.key, text);
      }
    } else {
      errors.push(source.problem(pair, `${field}.${key}`, `unknown key "${key}"`, hint));
    }
  }
  return env;
}

function validateAuth(source: YamlSource, field: string, node: Node | null, errors: Diagnostic[]): RemoteAuth | undefined {
  const hint = 'write e.g. `auth: { headers: { x-functions-key: "${env:API_FUNCTIONS_KEY}" } }` or `auth: { azure: { scope: "api://app/.default" } }`';
  if (!isMap(node)) {
    errors.push(source.problem(node, field, 'auth must be a mapping', hint));
    return undefined;
  }
  const auth: RemoteAuth = { headers: new Map() };
  for (const { key, pair, value } of entries(node)) {
    if (key === 'headers' && isMap(value)) {
      for (const item of entries(value)) {
        const text = scalarString(item.value);
        const checked = text === undefined ? undefined : parseReferences(text);
        if (!HEADER_NAME.test(item.key) || text === undefined || checked?.problem) {
          errors.push(source.problem(item.value ?? item.pair, `${field}.headers.${item.key}`, checked?.problem ?? 'each header must be name: "value"', 'keep secrets out of the file: `"${env:NAME}"` or `"${file:path}"`'));
          continue;
        }
        auth.headers.set(item.key.toLowerCase(), text);
      }
    } else if (key === 'azure' && isMap(value)) {
      const scope = scalarString(value.get('scope', true) as Node | null);
      const tenant = scalarString(value.get('tenant', true) as Node | null);
      if (!scope) errors.push(source.problem(value, `${field}.azure.scope`, 'azure auth needs the token scope', 'write e.g. `azure: { scope: "api://contoso-api-dev/.default" }`'));
      else auth.azure = { scope, ...(tenant ? { tenant } : {}) };
    } else {
      errors.push(source.problem(pair, `${field}.${key}`, `"${key}" is not an auth kind (or is not a mapping)`, hint));
    }
  }
  return auth;
}

/** `60s`, `500ms`, `2m`, or a number of seconds → milliseconds; undefined when not a duration. */
export function parseDuration(value: unknown): number | undefined {
  if (typeof value === 'number' && value > 0) return Math.round(value * 1000);
  if (typeof value !== 'string') return undefined;
  const match = /^(\d+(?:\.\d+)?)\s*(ms|s|m)$/.exec(value.trim());
  return match ? Math.round(Number(match[1]) * DURATION_UNITS[match[2]!]!) : undefined;
}

function validateLocal(source: YamlSource, field: string, node: Node | null, errors: Diagnostic[]): LocalDefinition | undefined {
  const hint = 'write one of `{ port: 5173 }`, `{ compose: <service>, port: <container port> }`, `{ command: "npm run dev" }`';
  if (!isMap(node)) {
    errors.push(source.problem(node, field, 'local must be a mapping', hint));
    return undefined;
  }
  const fields = new Map(entries(node).map((e) => [e.key, e]));
  for (const { key, pair } of fields.values()) {
    if (!(LOCAL_KEYS as readonly string[]).includes(key)) {
      const suggestion = didYouMean(key, LOCAL_KEYS);
      errors.push(source.problem(pair, `${field}.${key}`, `unknown key "${key}"`, suggestion ? `did you mean "${suggestion}"?` : hint));
      return undefined;
    }
  }
  let port: number | undefined;
  const portEntry = fields.get('port');
  if (portEntry) {
    port = isScalar(portEntry.value) ? portNumber(portEntry.value.value) : undefined;
    if (port === undefined) {
      errors.push(source.problem(portEntry.value, `${field}.port`, 'port must be a whole number from 1 to 65535', 'write e.g. `port: 8080`'));
      return undefined;
    }
  }
  if (fields.has('compose') && fields.has('command')) {
    errors.push(source.problem(node, field, 'local has both compose and command', 'keep one of them: a compose service or a process command'));
    return undefined;
  }
  const composeEntry = fields.get('compose');
  if (composeEntry) {
    const compose = scalarString(composeEntry.value);
    if (!compose) {
      errors.push(source.problem(composeEntry.value, `${field}.compose`, 'compose must name a service of the compose file', 'write e.g. `compose: ui`'));
      return undefined;
    }
    if (port === undefined) {
      errors.push(source.problem(node, `${field}.port`, 'a compose service needs the container port it listens on', 'add `port: <container port>`, e.g. `port: 3000`'));
      return undefined;
    }
    return { kind: 'compose', compose, port };
  }
  const commandEntry = fields.get('command');
  const cwdEntry = fields.get('cwd');
  if (cwdEntry && !commandEntry) {
    errors.push(source.problem(cwdEntry.pair, `${field}.cwd`, 'cwd applies only to a `command:` service', 'remove cwd, or run the service with `command:`'));
    return undefined;
  }
  if (commandEntry) {
    const command = scalarString(commandEntry.value);
    if (!command) {
      errors.push(source.problem(commandEntry.value, `${field}.command`, 'command must be a shell command', 'write e.g. `command: "npm run dev"`'));
      return undefined;
    }
    let cwd: string | undefined;
    if (cwdEntry) {
      cwd = relativePath(scalarString(cwdEntry.value));
      if (cwd === undefined) {
        errors.push(source.problem(cwdEntry.value, `${field}.cwd`, 'cwd must be a folder inside the worktree, relative to its root', 'write e.g. `cwd: ui`'));
        return undefined;
      }
    }
    return { kind: 'command', command, ...(port === undefined ? {} : { port }), ...(cwd === undefined || cwd === '.' ? {} : { cwd }) };
  }
  if (port === undefined) {
    errors.push(source.problem(node, field, 'local says nothing about where the service runs', hint));
    return undefined;
  }
  return { kind: 'port', port };
}

/** `health: /healthz` or `health: { path: /healthz, timeout: 60s }` (both keys optional). */
function validateHealth(source: YamlSource, field: string, node: Node | null, service: ServiceConfig, errors: Diagnostic[], warnings: Diagnostic[]): void {
  const hint = 'write e.g. `health: /healthz` or `health: { path: /healthz, timeout: 60s }`';
  let pathNode: Node | null | undefined = node;
  if (isMap(node)) {
    warnUnknownKeys(source, node, HEALTH_KEYS, `${field}.`, warnings);
    pathNode = node.get('path', true) as Node | undefined;
    const timeoutNode = node.get('timeout', true) as Node | undefined;
    if (timeoutNode !== undefined) {
      const ms = parseDuration(isScalar(timeoutNode) ? timeoutNode.value : undefined);
      if (ms === undefined) errors.push(source.problem(timeoutNode, `${field}.timeout`, 'timeout must be a duration', 'write e.g. `timeout: 60s`, `90s` or `2m`'));
      else service.healthTimeoutMs = ms;
    }
    if (pathNode === undefined) return;
  }
  const path = scalarString(pathNode);
  if (!path || !path.startsWith('/')) errors.push(source.problem(pathNode, isMap(node) ? `${field}.path` : field, 'health must be an HTTP path', hint));
  else service.health = path;
}

/** `setup: { copy: [globs], run: [commands] }`. */
function validateSetup(source: YamlSource, node: Node | null, errors: Diagnostic[], warnings: Diagnostic[]): WorktreeSetup | undefined {
  const hint = 'write e.g. `setup: { copy: [.env, "ui/.env.local"], run: ["npm ci --prefix ui"] }`';
  if (!isMap(node)) {
    errors.push(source.problem(node, 'setup', 'setup must be a mapping with `copy:` and/or `run:`', hint));
    return undefined;
  }
  warnUnknownKeys(source, node, SETUP_KEYS, 'setup.', warnings);
  const before = errors.length;
  const list = (key: 'copy' | 'run', check: (value: string) => string | undefined, what: string): string[] => {
    const value = node.get(key, true) as Node | undefined;
    if (value === undefined) return [];
    if (!isSeq(value)) {
      errors.push(source.problem(value, `setup.${key}`, `setup.${key} must be a list`, hint));
      return [];
    }
    const out: string[] = [];
    for (const item of value.items as Node[]) {
      const text = scalarString(item);
      const checked = text === undefined ? undefined : check(text);
      if (checked === undefined) errors.push(source.problem(item, `setup.${key}`, `"${text ?? String(isScalar(item) ? item.value : '')}" is not ${what}`, hint));
      else out.push(checked);
    }
    return out;
  };
  const copy = list('copy', (pattern) => (relativePath(pattern) === undefined || pattern.trim() === '.' ? undefined : pattern.trim()), 'a path pattern relative to the repository root');
  const run = list('run', (command) => (command.trim() === '' ? undefined : command), 'a shell command');
  return errors.length === before ? { copy, run } : undefined;
}

/** A relative path that stays inside its root (no absolute path, no `..`), normalised; undefined otherwise. */
function relativePath(value: string | undefined): string | undefined {
  const trimmed = value?.trim().replace(/\\/g, '/').replace(/\/+$/, '');
  if (!trimmed || trimmed.startsWith('/') || /^[A-Za-z]:/.test(trimmed)) return undefined;
  const parts = trimmed.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.includes('..')) return undefined;
  return parts.length === 0 ? '.' : parts.join('/');
}

function validateRemote(source: YamlSource, field: string, node: Node | null, errors: Diagnostic[]): RemoteDefinition | undefined {
  let urlNode: Node | null = node;
  let ca: string | undefined;
  let insecure = false;
  if (isMap(node)) {
    const fields = new Map(entries(node).map((e) => [e.key, e]));
    urlNode = fields.get('url')?.value ?? null;
    ca = optionalString(source, fields.get('ca')?.value, `${field}.ca`, errors);
    const insecureNode = fields.get('insecure')?.value;
    if (insecureNode !== undefined) {
      if (!isScalar(insecureNode) || typeof insecureNode.value !== 'boolean') {
        errors.push(source.problem(insecureNode, `${field}.insecure`, 'insecure must be true or false', 'write `insecure: true` only for a remote whose certificate cannot be verified'));
        return undefined;
      }
      insecure = insecureNode.value;
    }
    if (!urlNode) {
      errors.push(source.problem(node, `${field}.url`, 'remote has no url', 'add `url: https://<service>-dev.example.com`'));
      return undefined;
    }
  }
  const raw = scalarString(urlNode);
  const url = raw === undefined ? undefined : parseRemoteUrl(raw);
  if (!url) {
    errors.push(source.problem(urlNode, field, `"${raw ?? ''}" is not an absolute http(s) URL`, 'write e.g. `remote: https://contoso-api-dev.azurecontainerapps.io`'));
    return undefined;
  }
  return { url, ...(ca ? { ca } : {}), insecure };
}

function parseRemoteUrl(raw: string): string | undefined {
  try {
    const url = new URL(raw);
    if ((url.protocol !== 'http:' && url.protocol !== 'https:') || url.search || url.hash || url.username || url.password) return undefined;
    return url.href.replace(/\/$/, '');
  } catch {
    return undefined;
  }
}

function validateProfileList(source: YamlSource, name: string, pair: import('yaml').Pair, node: Node | null, services: Map<string, ServiceConfig>, errors: Diagnostic[]): string[] | undefined {
  const field = `profiles.${name}`;
  if (!isNameLabel(name)) {
    errors.push(source.problem(pair, field, `profile name "${name}" is not valid`, 'use lower-case letters, digits and hyphens'));
    return undefined;
  }
  if (!isSeq(node)) {
    errors.push(source.problem(node, field, 'a profile must be a list of the services that run locally', `write e.g. \`${name}: [ui, api]\` (\`[]\` for none)`));
    return undefined;
  }
  const list: string[] = [];
  for (const item of node.items as Node[]) {
    const service = scalarString(item);
    if (service === undefined || !services.has(service)) {
      const suggestion = service === undefined ? undefined : didYouMean(service, services.keys());
      errors.push(source.problem(item, field, `profile "${name}" names unknown service "${service ?? ''}"`, suggestion ? `did you mean "${suggestion}"?` : `define it under \`services:\` or remove it (services: ${[...services.keys()].join(', ')})`));
      continue;
    }
    if (!services.get(service)?.local) {
      errors.push(source.problem(item, field, `profile "${name}" runs "${service}" locally but the service has no local definition`, `add \`local:\` to services.${service}, or remove it from this profile`));
      continue;
    }
    list.push(service);
  }
  return list;
}

/** Unknown keys named one by one per mapping; the rest are counted (a hostile file may hold thousands). */
const MAX_UNKNOWN_KEY_WARNINGS = 20;

function warnUnknownKeys(source: YamlSource, map: YAMLMap, known: string[], prefix: string, warnings: Diagnostic[]): void {
  const unknown = entries(map).filter(({ key }) => !known.includes(key));
  for (const [i, { key, pair }] of unknown.entries()) {
    if (i === MAX_UNKNOWN_KEY_WARNINGS) {
      warnings.push(source.problem(pair, prefix.replace(/\.$/, '') || undefined, `and ${unknown.length - i} more unknown keys are ignored`, `known keys: ${known.join(', ')}`));
      return;
    }
    const suggestion = didYouMean(key, known);
    warnings.push(source.problem(pair, `${prefix}${key}`, `unknown key "${key}" is ignored`, suggestion ? `did you mean "${suggestion}"?` : `known keys: ${known.join(', ')}`));
  }
}

function localPortNode(serviceNode: Node | null): Node | null {
  if (!isMap(serviceNode)) return serviceNode;
  const local = serviceNode.get('local', true);
  return isMap(local) ? ((local.get('port', true) as Node | undefined) ?? local) : serviceNode;
}

function optionalString(source: YamlSource, node: Node | null | undefined, field: string, errors: Diagnostic[]): string | undefined {
  if (node === undefined) return undefined;
  const value = scalarString(node);
  if (!value) {
    errors.push(source.problem(node, field, `${field} must be a non-empty string`, `write e.g. \`${field.split('.').pop()}: path/to/file\``));
    return undefined;
  }
  return value;
}

/** The string value of a scalar node (numbers and booleans are not strings). */
export function scalarString(node: Node | null | undefined): string | undefined {
  return isScalar(node) && typeof node.value === 'string' ? node.value : undefined;
}

function portNumber(value: unknown): number | undefined {
  return typeof value === 'number' && Number.isInteger(value) && value >= 1 && value <= 65535 ? value : undefined;
}

/** `256MB`, `1.5GB`, `512` (bytes) → bytes; undefined when not a size. */
export function parseMemory(value: unknown): number | undefined {
  if (typeof value === 'number' && value > 0) return Math.round(value);
  if (typeof value !== 'string') return undefined;
  const match = /^(\d+(?:\.\d+)?)\s*([KMGT]?B)$/i.exec(value.trim());
  if (!match) return undefined;
  const unit = MEMORY_UNITS[match[2]!.toUpperCase()];
  return unit === undefined ? undefined : Math.round(Number(match[1]) * unit);
}

import type { ProjectConfig } from '../profiles/schema.js';
import { hasReference, resolveReferences } from '../profiles/references.js';
import { serviceHost } from '../hostname.js';
import { DevproxyError, isDevproxyError } from '../errors.js';

/** What the environment of one worktree is computed from; everything is passed in, nothing is read. */
export interface EnvironmentInputs {
  config: ProjectConfig;
  /** The worktree's hostname slug (`feature-x` in `api.feature-x.localhost`). */
  slug: string;
  /** Services the live profile routes locally (`localServices(config, profile)`); the rest are remote. */
  local: Iterable<string>;
  /** Plain HTTP port of the proxy. */
  httpPort: number;
  /** HTTPS port of the proxy; null when HTTPS is off (no `*_HTTPS_URL`, no CA). */
  httpsPort: number | null;
  /** devproxy's CA certificate (PEM path) for NODE_EXTRA_CA_CERTS; null to emit none. */
  caPath: string | null;
}

/** One variable of the environment, as configured (references not resolved). */
export interface EnvironmentVariable {
  name: string;
  /** The value with `${env:…}`/`${file:…}` references kept: safe to show. */
  value: string;
  /** The config field it comes from, e.g. `services.db.env.remote`; absent for devproxy's own. */
  source?: string;
  /** True when the value holds a reference, i.e. resolves to something that may be a secret. */
  reference: boolean;
}

/** The environment of a worktree before resolution. */
export interface WorktreeEnvironment {
  /** In output order: per service (config order) its URLs then its `env` values, then NODE_EXTRA_CA_CERTS. */
  variables: EnvironmentVariable[];
  /** Things a person must know, e.g. which variables change when a data service flips. */
  notes: string[];
}

/** `API_URL` for service `api`; hyphens become underscores. */
export function urlVariable(service: string): string {
  return `${service.toUpperCase().replace(/-/g, '_')}_URL`;
}

/**
 * The HTTPS twin of a URL variable: `API_URL` → `API_HTTPS_URL`, `API_BASE_URL` →
 * `API_BASE_HTTPS_URL`, a name without the `_URL` suffix gets `_HTTPS` appended.
 */
export function httpsVariable(urlName: string): string {
  return urlName.endsWith('_URL') ? `${urlName.slice(0, -'URL'.length)}HTTPS_URL` : `${urlName}_HTTPS`;
}

/**
 * Builds the environment a process of the worktree gets: each service's stable URL under its
 * `env.url` name (and its HTTPS twin when HTTPS is on), the service's `env.local` or
 * `env.remote` values for its live route, and NODE_EXTRA_CA_CERTS. Pure; references stay
 * references until {@link resolveEnvironment}.
 */
export function buildWorktreeEnvironment(inputs: EnvironmentInputs): WorktreeEnvironment {
  const local = new Set(inputs.local);
  const variables: EnvironmentVariable[] = [];
  const notes: string[] = [];
  const setBy = new Map<string, string>();
  const add = (variable: EnvironmentVariable, owner: string) => {
    const previous = setBy.get(variable.name);
    if (previous !== undefined && previous !== owner) {
      notes.push(`${variable.name} is set by both ${previous} and ${owner}; ${owner}'s value is used`);
    }
    setBy.set(variable.name, owner);
    const at = variables.findIndex((v) => v.name === variable.name);
    if (at === -1) variables.push(variable);
    else variables[at] = variable;
  };

  for (const service of inputs.config.services.values()) {
    const host = serviceHost(service.name, inputs.slug);
    const urlName = service.env?.urlName === undefined ? urlVariable(service.name) : service.env.urlName;
    if (urlName !== null) {
      add({ name: urlName, value: origin('http', host, inputs.httpPort), reference: false }, service.name);
      if (inputs.httpsPort !== null) add({ name: httpsVariable(urlName), value: origin('https', host, inputs.httpsPort), reference: false }, service.name);
    }
    if (!service.env) continue;
    const mode = local.has(service.name) ? 'local' : 'remote';
    for (const [name, value] of service.env[mode]) {
      add({ name, value, source: `services.${service.name}.env.${mode}`, reference: hasReference(value) }, service.name);
    }
    const changing = flipSensitive(service.env.local, service.env.remote);
    if (changing.length > 0) {
      notes.push(
        `switching ${service.name} between local and remote changes ${changing.join(', ')}: restart the processes that read ${changing.length === 1 ? 'it' : 'them'} (\`devproxy restart <service>\`, or run \`devproxy run\` again)`,
      );
    }
  }
  if (inputs.httpsPort !== null && inputs.caPath !== null) add({ name: 'NODE_EXTRA_CA_CERTS', value: inputs.caPath, reference: false }, 'devproxy');
  return { variables, notes };
}

/** Variables a service sets differently (or only) on one side: a flip changes them under a running process. */
function flipSensitive(local: ReadonlyMap<string, string>, remote: ReadonlyMap<string, string>): string[] {
  const names = [...new Set([...local.keys(), ...remote.keys()])];
  return names.filter((name) => local.get(name) !== remote.get(name));
}

function origin(scheme: 'http' | 'https', host: string, port: number): string {
  const standard = scheme === 'http' ? 80 : 443;
  return `${scheme}://${host}${port === standard ? '' : `:${port}`}`;
}

/** The variables as shown to a person: references kept, so secrets are never printed. */
export function displayEnvironment(environment: WorktreeEnvironment): Record<string, string> {
  return Object.fromEntries(environment.variables.map((v) => [v.name, v.value]));
}

/** Where references are resolved from. */
export interface ResolveContext {
  /** Environment that `${env:NAME}` reads (the shell of `devproxy run`, or the daemon's). */
  env: NodeJS.ProcessEnv;
  /** Folder `${file:relative}` is resolved against (the repository root). */
  baseDir: string;
}

/**
 * The variables with every reference resolved, for injection into a process (never for
 * display). An unset variable or unreadable file is DEVPROXY_ERR_ENV_UNSET naming both the
 * variable being built and what it references.
 */
export function resolveEnvironment(environment: WorktreeEnvironment, context: ResolveContext): Record<string, string> {
  const out: Record<string, string> = {};
  for (const variable of environment.variables) {
    if (!variable.reference) {
      out[variable.name] = variable.value;
      continue;
    }
    try {
      out[variable.name] = resolveReferences(variable.value, { env: context.env, baseDir: context.baseDir, what: `${variable.name} (${variable.source})` });
    } catch (error) {
      if (!isDevproxyError(error)) throw error;
      throw new DevproxyError(error.code, error.message, {
        hint: `set it and run again, or change ${variable.source}.${variable.name} in devproxy.yaml`,
        cause: error,
      });
    }
  }
  return out;
}

/**
 * The resolved environment of a worktree in one call: what `devproxy run` injects and what
 * the runtime passes to the process and compose services it starts (`WorktreeRuntimeSpec.env`).
 */
export function worktreeEnvironment(inputs: EnvironmentInputs, context: ResolveContext): Record<string, string> {
  return resolveEnvironment(buildWorktreeEnvironment(inputs), context);
}

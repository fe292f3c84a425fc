/**
 * Compose services of one worktree, run with the real Compose CLI as the project
 * `<project>-<worktree slug>`. devproxy never hands the user's compose file to Compose as is:
 * fixed host ports (`8080:3000`) would collide between worktrees, and Compose v1 cannot remove
 * list entries from an override (`!reset` is v2 only). So it derives a complete file
 * (`$DEVPROXY_HOME/compose/<project>.compose.yaml`, written atomically) in which every published
 * port becomes `127.0.0.1::<container port>` (Docker picks the host port, devproxy discovers it),
 * `container_name` is dropped, ownership labels and the memory budget are added, and starts only
 * the services asked for with `up -d --no-deps <services>`, which leaves the others untouched.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { parse, parseDocument, stringify, visit } from 'yaml';
import { DevproxyError } from '../errors.js';
import { writeFileAtomic } from '../atomic-write.js';
import { makePrivateDir, PRIVATE_FILE_MODE } from '../private-files.js';
import { COMPOSE_FILE_SUFFIX, composeFilePath, homePaths } from '../home-paths.js';
import { CONTAINER_CA_PATH, composeCaVolume, composeExtraHosts } from '../environment/compose-env.js';
import { MAX_FILE_BYTES, readSmallFileSync } from '../profiles/bounded-read.js';
import type { ProjectConfig } from '../profiles/schema.js';

/** Compose file names tried, in order, when devproxy.yaml names none. */
export const DEFAULT_COMPOSE_FILES = ['docker-compose.yml', 'compose.yaml', 'docker-compose.yaml', 'compose.yml'];

/** Label: main checkout path of the repository that owns the container. */
export const LABEL_REPO = 'dev.devproxy.repo';
/** Label: path of the worktree that owns the container. */
export const LABEL_WORKTREE = 'dev.devproxy.worktree';
/** Label: devproxy service name (may differ from the compose service name). */
export const LABEL_SERVICE = 'dev.devproxy.service';
/** Label: worktree slug, for people reading `docker ps`. */
export const LABEL_SLUG = 'dev.devproxy.slug';

/**
 * Most aliases (`*name`) a compose file may hold. Real files use a few dozen (`<<: *defaults`
 * per service); the YAML library looks every alias up among all anchors and aliases before it,
 * so a file of 100,000 aliases would hold the event loop for minutes.
 */
export const MAX_COMPOSE_ALIASES = 1_000;
/**
 * Largest size a compose file may expand to once its aliases are written out (values plus the
 * characters of strings and keys, about the characters of the derived file). A real file
 * expands to tens of KiB; nine levels of nine aliases (the "billion laughs") to ~10^9, which the
 * derived file would write out for minutes without an event-loop turn.
 */
export const MAX_COMPOSE_EXPANDED_SIZE = 4 * 1024 * 1024;

/** How long one Compose CLI call may take (image builds included). */
const COMPOSE_TIMEOUT_MS = 10 * 60_000;

/** A parsed compose file: only what devproxy reads; the rest is carried over untouched. */
export interface ComposeFile {
  path: string;
  /** The whole document as plain data, merge keys resolved. */
  doc: Record<string, unknown>;
  /** Names under `services:`. */
  services: string[];
}

/**
 * Finds the compose file of a worktree: `configured` (relative to the worktree root) when the
 * config names one, else the first default name that exists.
 */
export function findComposeFile(worktreePath: string, configured?: string): string {
  const candidates = configured ? [configured] : DEFAULT_COMPOSE_FILES;
  for (const name of candidates) {
    const path = resolve(worktreePath, name);
    if (existsSync(path)) return path;
  }
  const tried = candidates.map((c) => resolve(worktreePath, c)).join(', ');
  throw new DevproxyError('DEVPROXY_ERR_COMPOSE_FILE_NOT_FOUND', `compose file not found (looked for ${tried})`);
}

/**
 * Reads and parses a compose file; a YAML error names the file and line. A branch commits it, so
 * it is read within bounds (a regular file of at most 1 MiB, as devproxy.yaml: a FIFO or a link
 * to /dev/zero is refused, never waited on) and refused when its aliases would expand too far.
 */
export async function readComposeFile(path: string): Promise<ComposeFile> {
  // On the calling thread, like the parse that follows: a capped read of a regular file is short.
  const read = readSmallFileSync(path, MAX_FILE_BYTES);
  if (read.problem !== undefined) {
    throw new DevproxyError('DEVPROXY_ERR_COMPOSE_FAILED', `the compose file ${path} ${read.problem}`, {
      hint: 'make the compose file a regular file of at most 1 MiB (`git rm` a FIFO or a link a branch committed), or point `compose:` in devproxy.yaml at one',
    });
  }
  const text = read.text;
  const document = parseDocument(text, { merge: true, prettyErrors: true });
  if (document.errors.length > 0) {
    const first = document.errors[0]!;
    const line = first.linePos?.[0]?.line ?? 0;
    throw new DevproxyError('DEVPROXY_ERR_COMPOSE_FAILED', `${path}:${line} invalid YAML: ${first.message.split('\n')[0]}`, {
      hint: 'fix the compose file at the line shown',
    });
  }
  let aliases = 0;
  visit(document, { Alias: () => void aliases++ });
  if (aliases > MAX_COMPOSE_ALIASES) throw aliasBomb(path, `holds ${aliases} aliases; devproxy reads at most ${MAX_COMPOSE_ALIASES}`);
  // Aliases become shared objects here (cheap); the bound is on what writing them out would cost.
  const doc: unknown = document.toJS({ maxAliasCount: -1 });
  const expanded = expandedSize(doc, MAX_COMPOSE_EXPANDED_SIZE);
  if (expanded === 'cycle') throw aliasBomb(path, 'holds an alias inside the node it names (a recursive anchor)');
  if (expanded > MAX_COMPOSE_EXPANDED_SIZE) throw aliasBomb(path, `expands to more than ${MAX_COMPOSE_EXPANDED_SIZE} values and characters once its aliases are written out; devproxy derives at most that`);
  if (!isRecord(doc) || !isRecord(doc.services)) {
    throw new DevproxyError('DEVPROXY_ERR_COMPOSE_FAILED', `${path} has no \`services:\` mapping`, {
      hint: 'a compose file lists its containers under `services:`',
    });
  }
  return { path, doc, services: Object.keys(doc.services) };
}

function aliasBomb(path: string, what: string): DevproxyError {
  return new DevproxyError('DEVPROXY_ERR_COMPOSE_FAILED', `${path} ${what}`, {
    hint: 'write the repeated parts out or nest fewer anchors (`&name` / `*name`); a real compose file expands to a few hundred KiB at most',
  });
}

/**
 * Size of `value` with every shared object counted each time it is reached (one per value, plus
 * the length of strings and keys), stopping once past `limit`; `cycle` when an object contains
 * itself. Linear in the distinct objects: each one's size is computed once.
 */
function expandedSize(value: unknown, limit: number): number | 'cycle' {
  const sizes = new Map<object, number>();
  const open = new Set<object>();
  const measure = (node: unknown): number | 'cycle' => {
    if (typeof node === 'string') return 1 + node.length;
    if (node === null || typeof node !== 'object') return 1;
    const known = sizes.get(node);
    if (known !== undefined) return known;
    if (open.has(node)) return 'cycle';
    open.add(node);
    let size = 1;
    // Keys count as values too; `!!omap` and `!!set` come out as a Map and a Set.
    const children: unknown[] = Array.isArray(node) ? node : node instanceof Map ? [...node].flat() : node instanceof Set ? [...node] : Object.entries(node).flat();
    for (const child of children) {
      const part = measure(child);
      if (part === 'cycle') return 'cycle';
      size += part;
      if (size > limit) break;
    }
    open.delete(node);
    sizes.set(node, size);
    return size;
  };
  return measure(value);
}

/** Throws a DevproxyError naming the service and the file when `service` is not in `file`. */
export function assertComposeService(file: ComposeFile, service: string, devproxyService: string): void {
  if (file.services.includes(service)) return;
  throw new DevproxyError(
    'DEVPROXY_ERR_COMPOSE_UNKNOWN_SERVICE',
    `compose service "${service}" (local of "${devproxyService}") is not defined in ${file.path}; it defines: ${file.services.join(', ') || 'nothing'}`,
  );
}

/** How devproxy runs one compose service of a worktree. */
export interface ComposeServicePlan {
  /** devproxy service name (label value). */
  service: string;
  /** Container port devproxy routes to (`local.port`). */
  containerPort: number;
  /** Memory budget applied as `mem_limit`, in bytes. */
  memoryBytes?: number;
  /** Host port devproxy allocated; used (and injected as PORT) when the service runs on the host network. */
  hostPort?: number;
}

/** Inputs of {@link deriveComposeDocument}. */
export interface DeriveOptions {
  repo: string;
  worktreePath: string;
  slug: string;
  /** compose service name → how devproxy runs it; services absent here are carried over (ports rewritten). */
  managed: Map<string, ComposeServicePlan>;
  /** Extra environment for managed services (the worktree's environment, resolved). */
  env?: Record<string, string>;
  /** The worktree's config: its hostnames go into `extra_hosts`, so containers reach the proxy by them. */
  config?: ProjectConfig;
}

/** True when a compose service definition runs on the host's network (no port publishing). */
export function usesHostNetwork(definition: unknown): boolean {
  return isRecord(definition) && definition.network_mode === 'host';
}

/**
 * The derived compose document (pure): every service's published ports become
 * `127.0.0.1::<container port>`, fixed container names go, managed services get ownership
 * labels, `mem_limit` (and `memswap_limit`, unless set), extra env and their routed container port published.
 */
export function deriveComposeDocument(doc: Record<string, unknown>, opts: DeriveOptions): Record<string, unknown> {
  const services = isRecord(doc.services) ? doc.services : {};
  const out: Record<string, unknown> = {};
  for (const [name, raw] of Object.entries(services)) {
    const def: Record<string, unknown> = isRecord(raw) ? { ...raw } : {};
    delete def.container_name;
    const plan = opts.managed.get(name);
    const hostNetwork = usesHostNetwork(def);
    if (hostNetwork) {
      delete def.ports;
    } else {
      const containerPorts = (Array.isArray(def.ports) ? def.ports : []).flatMap(containerPortOf);
      if (plan && !containerPorts.some((p) => p === String(plan.containerPort) || p === `${plan.containerPort}/tcp`)) {
        containerPorts.push(String(plan.containerPort));
      }
      const unique = [...new Set(containerPorts)];
      if (unique.length > 0) def.ports = unique.map((p) => `127.0.0.1::${p}`);
      else delete def.ports;
    }
    if (plan) {
      def.labels = {
        ...toMap(def.labels),
        [LABEL_REPO]: opts.repo,
        [LABEL_WORKTREE]: opts.worktreePath,
        [LABEL_SERVICE]: plan.service,
        [LABEL_SLUG]: opts.slug,
      };
      const env = { ...toMap(def.environment), ...(opts.env ?? {}) };
      if (hostNetwork && plan.hostPort !== undefined) env.PORT = String(plan.hostPort);
      // The host's CA path means nothing inside the container: mount it at a fixed path instead.
      if (opts.env?.NODE_EXTRA_CA_CERTS) {
        def.volumes = [...(Array.isArray(def.volumes) ? def.volumes : []), composeCaVolume(opts.env.NODE_EXTRA_CA_CERTS)];
        env.NODE_EXTRA_CA_CERTS = CONTAINER_CA_PATH;
      }
      if (Object.keys(env).length > 0) def.environment = env;
      if (opts.config) {
        const existing = Array.isArray(def.extra_hosts) ? def.extra_hosts : Object.entries(toMap(def.extra_hosts)).map(([host, ip]) => `${host}:${ip}`);
        def.extra_hosts = [...new Set([...existing, ...composeExtraHosts({ config: opts.config, slug: opts.slug }, { hostNetwork })])];
      }
      if (plan.memoryBytes !== undefined) {
        def.mem_limit = plan.memoryBytes;
        // A budget that can spill into swap is no budget; keep the user's own swap limit if set.
        def.memswap_limit ??= plan.memoryBytes;
      }
    }
    out[name] = def;
  }
  return { ...doc, services: out };
}

/**
 * The container-port part of one `ports:` entry, in short (`"8080:3000"`, `"127.0.0.1:8080:3000/udp"`,
 * `3000`) or long (`{ target: 3000, protocol: udp }`) syntax.
 */
export function containerPortOf(entry: unknown): string[] {
  if (typeof entry === 'number') return [String(entry)];
  if (typeof entry === 'string') {
    const [spec, protocol] = entry.split('/');
    // IPv6 host addresses come in brackets; the container port is always the last field.
    const last = (spec ?? '').replace(/^\[[^\]]*\]:/, '').split(':').pop() ?? '';
    return last ? [protocol ? `${last}/${protocol}` : last] : [];
  }
  if (isRecord(entry) && (typeof entry.target === 'number' || typeof entry.target === 'string')) {
    const protocol = typeof entry.protocol === 'string' && entry.protocol !== 'tcp' ? `/${entry.protocol}` : '';
    return [`${entry.target}${protocol}`];
  }
  return [];
}

function toMap(value: unknown): Record<string, string> {
  if (Array.isArray(value)) {
    const out: Record<string, string> = {};
    for (const item of value) {
      if (typeof item !== 'string') continue;
      const eq = item.indexOf('=');
      if (eq === -1) out[item] = '';
      else out[item.slice(0, eq)] = item.slice(eq + 1);
    }
    return out;
  }
  if (isRecord(value)) {
    const out: Record<string, string> = {};
    for (const [k, v] of Object.entries(value)) out[k] = v === null || v === undefined ? '' : String(v);
    return out;
  }
  return {};
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/** Compose project name of a worktree: `<project>-<slug>`, in the characters Compose accepts. */
export function composeProjectName(project: string, slug: string): string {
  const name = `${project}-${slug}`.toLowerCase().replace(/[^a-z0-9_-]+/g, '-').replace(/^[^a-z0-9]+/, '');
  return name || 'devproxy';
}

/** Writes the derived file for a project and answers its path. */
export async function writeDerivedComposeFile(home: string, projectName: string, doc: Record<string, unknown>): Promise<string> {
  const path = composeFilePath(home, projectName);
  const header = '# Generated by devproxy from the worktree\'s compose file; edits are overwritten.\n';
  // The environment holds resolved `${env:…}` values: owner-only, like the service's log.
  await makePrivateDir(dirname(path));
  await writeFileAtomic(path, header + stringify(doc, { aliasDuplicateObjects: false }), { mode: PRIVATE_FILE_MODE });
  return path;
}

/** True when a derived compose document (parsed) labels one of its services as `worktreePath`'s (pure). */
export function isDerivedFor(doc: unknown, worktreePath: string): boolean {
  const services = isRecord(doc) && isRecord(doc.services) ? Object.values(doc.services) : [];
  return services.some((def) => isRecord(def) && toMap(def.labels)[LABEL_WORKTREE] === worktreePath);
}

/**
 * The Compose projects devproxy brought up for a worktree and has not swept yet: those whose
 * derived file (removed only by the sweep) labels a service as the worktree's. It is the one
 * record that outlives both the containers and the daemon: once a daemon stopped every container
 * of a worktree (`down`, `proxy stop --all`), no container names the project any more, and a
 * new process does not know it. An unreadable file is skipped: it names no project for sure.
 */
export async function derivedProjectsOf(home: string, worktreePath: string): Promise<string[]> {
  const dir = homePaths(home).compose;
  const files = await readdir(dir).catch(() => [] as string[]);
  const projects: string[] = [];
  for (const file of files.filter((f) => f.endsWith(COMPOSE_FILE_SUFFIX))) {
    let doc: unknown;
    try {
      doc = parse(await readFile(join(dir, file), 'utf8'));
    } catch {
      continue;
    }
    if (isDerivedFor(doc, worktreePath)) projects.push(file.slice(0, -COMPOSE_FILE_SUFFIX.length));
  }
  return projects;
}

/** The Compose command line to use: `docker compose` (v2) when it works, else `docker-compose` (v1). */
export type ComposeCommand = readonly string[];

let detected: Promise<ComposeCommand> | undefined;

/** Detects (once per process) which Compose CLI works here. */
export function detectComposeCli(): Promise<ComposeCommand> {
  detected ??= (async () => {
    for (const candidate of [['docker', 'compose'], ['docker-compose']] as const) {
      try {
        await run([...candidate, 'version'], process.env, 20_000);
        return candidate;
      } catch {
        // try the next one
      }
    }
    detected = undefined;
    throw new DevproxyError('DEVPROXY_ERR_COMPOSE_CLI_MISSING', 'neither `docker compose` nor `docker-compose` works on this machine');
  })();
  return detected;
}

/** Options of {@link composeUp}. */
export interface ComposeUpOptions {
  /** Derived compose file. */
  file: string;
  projectName: string;
  /** The directory relative paths of the user's compose file refer to (its own folder). */
  projectDirectory: string;
  /** Compose service names to create/start. */
  services: string[];
  /** Environment of the CLI (DOCKER_HOST…); default process.env. */
  env?: NodeJS.ProcessEnv;
}

/** `up -d --no-deps <services>`: creates and starts exactly these services, nothing else. */
export async function composeUp(opts: ComposeUpOptions): Promise<string> {
  if (opts.services.length === 0) return '';
  const cli = await detectComposeCli();
  const args = [
    ...cli,
    '--project-name',
    opts.projectName,
    '--project-directory',
    opts.projectDirectory,
    '--file',
    opts.file,
    'up',
    '--detach',
    '--no-deps',
    '--no-color',
    ...opts.services,
  ];
  try {
    return await run(args, opts.env ?? process.env, COMPOSE_TIMEOUT_MS);
  } catch (error) {
    const output = error instanceof CommandError ? error.output : String(error);
    throw new DevproxyError(
      'DEVPROXY_ERR_COMPOSE_FAILED',
      `${cli.join(' ')} up ${opts.services.join(' ')} failed (project ${opts.projectName}):\n${lastLines(output, 8).join('\n')}`,
      { cause: error },
    );
  }
}

/** The directory a compose file's relative paths resolve against. */
export function composeProjectDirectory(composeFile: string): string {
  return dirname(composeFile);
}

class CommandError extends Error {
  constructor(
    message: string,
    readonly output: string,
  ) {
    super(message);
  }
}

function run(args: readonly string[], env: NodeJS.ProcessEnv, timeoutMs: number): Promise<string> {
  const [cmd, ...rest] = args as [string, ...string[]];
  return new Promise((resolvePromise, reject) => {
    execFile(cmd, rest, { env, timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024 }, (error, stdout, stderr) => {
      const output = `${stdout}${stderr}`;
      if (error) reject(new CommandError(`${args.join(' ')}: ${error.message}`, output || error.message));
      else resolvePromise(output);
    });
  });
}

/** The last `n` non-empty lines of a text. */
export function lastLines(text: string, n: number): string[] {
  return text
    .split(/\r?\n/)
    .filter((l) => l.trim() !== '')
    .slice(-n);
}

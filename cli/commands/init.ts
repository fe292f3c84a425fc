import { readFile } from 'node:fs/promises';
import { createFileIfAbsent } from '../../atomic-write.js';
import { basename, join } from 'node:path';
import { parse } from 'yaml';
import { updateRepos } from '../../workspace/home.js';
import { CONFIG_FILE, configPath, loadConfig } from '../../profiles/files.js';
import { formatDiagnostic } from '../../profiles/schema.js';
import { toSlug } from '../../hostname.js';
import { locateRepo } from '../../workspace/git-worktrees.js';
import { DevproxyError } from '../../errors.js';
import { writeAgentFiles } from '../../agents/agent-files.js';
import { printJson } from '../format.js';
import { home } from '../context.js';

/** Compose file names looked for, in Docker Compose's own order of preference. */
const COMPOSE_FILES = ['compose.yaml', 'compose.yml', 'docker-compose.yaml', 'docker-compose.yml'];

/**
 * `devproxy init`: scaffolds a commented devproxy.yaml (from the compose file's services when
 * there is one) unless one exists, and registers the repository. `--agents` also writes the
 * agent files (slash commands, AGENTS.md block, .mcp.json), never overwriting a user's edits.
 */
export async function init(opts: { dir?: string; json?: boolean; agents?: boolean }): Promise<void> {
  const location = await locateRepo(opts.dir ?? process.cwd());
  const path = configPath(location.worktree);
  const compose = await findCompose(location.worktree);
  const created = await createFileIfAbsent(path, { data: scaffold(toSlug(basename(location.main)) || 'app', compose) });
  const validation = await loadConfig(path);
  const repos = await updateRepos(home(), (list) => (list.includes(location.main) ? list : [...list, location.main]));
  const agents = opts.agents ? await writeAgentFiles(location.worktree, validation.config?.name) : undefined;
  const failure = validation.errors.length > 0 ? new DevproxyError('DEVPROXY_ERR_CONFIG_INVALID', `${CONFIG_FILE} has ${validation.errors.length} problem(s), listed above`) : undefined;
  if (opts.json) {
    printJson({ config: path, created, registered: location.main, repos, errors: validation.errors.map(formatDiagnostic), ...(agents ? { agents } : {}) }, failure);
    return;
  }
  console.log(created ? `wrote ${path}${compose ? ` (services from ${compose.file})` : ''}` : `kept the existing ${path}`);
  console.log(`registered ${location.main}`);
  for (const change of agents ?? []) console.log(`${AGENT_FILE_VERBS[change.action]} ${change.path}`);
  for (const error of validation.errors) console.log(`error: ${formatDiagnostic(error)}`);
  console.log(agents ? 'next: `devproxy proxy start`; agents now find /start-feature, /switch-profile, the devproxy MCP server and AGENTS.md' : 'next: `devproxy proxy start`, then `devproxy status` to see the URLs');
  if (failure) throw failure;
}

/** How `init --agents` reports each file. */
const AGENT_FILE_VERBS = { created: 'wrote', updated: 'updated', unchanged: 'up to date:', kept: 'kept your version of' } as const;

interface ComposeServices {
  file: string;
  services: Array<{ name: string; port?: number }>;
}

async function findCompose(root: string): Promise<ComposeServices | undefined> {
  for (const file of COMPOSE_FILES) {
    const text = await readFile(join(root, file), 'utf8').catch(() => undefined);
    if (text === undefined) continue;
    const doc = (() => {
      try {
        return parse(text) as { services?: Record<string, { ports?: unknown[]; expose?: unknown[] }> } | null;
      } catch {
        return null;
      }
    })();
    const services = Object.entries(doc?.services ?? {}).map(([name, service]) => {
      const port = containerPort(service?.ports?.[0] ?? service?.expose?.[0]);
      return port === undefined ? { name } : { name, port };
    });
    return { file, services };
  }
  return undefined;
}

/** The container side of a compose port entry: `"3000"`, `"8080:3000"`, `"127.0.0.1:8080:3000/tcp"`, `{ target: 3000 }`. */
function containerPort(entry: unknown): number | undefined {
  if (typeof entry === 'number') return entry;
  if (typeof entry === 'string') return Number(entry.split('/')[0]!.split(':').pop()) || undefined;
  if (entry && typeof entry === 'object' && 'target' in entry) return Number((entry as { target: unknown }).target) || undefined;
  return undefined;
}

function scaffold(name: string, compose: ComposeServices | undefined): string {
  const services = (compose?.services ?? []).filter((s) => toSlug(s.name) === s.name);
  const lines = [
    '# devproxy: stable URLs per git worktree (http://<service>.<worktree>.localhost:7080),',
    '# each routed to a local instance or to the shared DEV environment by the live profile',
    '# in <worktree>/.devproxy/profile.yaml (`devproxy use <profile>`). Reference: README.md.',
    `name: ${name}`,
    ...(compose ? [`compose: ${compose.file}`] : []),
    '',
    'services:',
  ];
  if (services.length === 0) {
    lines.push(
      '  app:',
      '    # Where it runs locally: a port you run yourself, a compose service, or a command.',
      '    local: { port: 3000 }',
      '    # Its shared DEV endpoint, used whenever the profile does not run it locally.',
      '    # remote: https://app-dev.example.com',
      '    # health: /healthz',
      '    # memory: 256MB',
      '',
      'profiles:',
      '  full: [app]',
      'default: full',
    );
  } else {
    for (const s of services) {
      lines.push(`  ${s.name}:`, `    local: { compose: ${s.name}, port: ${s.port ?? 80} }${s.port === undefined ? '   # set the container port' : ''}`, `    # remote: https://${s.name}-dev.example.com   # its shared DEV endpoint`, '    # memory: 512MB');
    }
    const names = services.map((s) => s.name);
    lines.push(
      '',
      '# Which services run locally under each profile; the others go to their remote.',
      'profiles:',
      `  minimal: [${names.slice(0, 1).join(', ')}]`,
      `  full: [${names.join(', ')}]`,
      '# Until the services have a remote, only `full` can serve every hostname.',
      'default: full',
    );
  }
  return lines.join('\n') + '\n';
}

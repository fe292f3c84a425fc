import { isAbsolute, resolve } from 'node:path';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { z } from 'zod';
import { displayEnvironment } from '../environment/worktree-env.js';
import { DevproxyError, isDevproxyError } from '../errors.js';
import { VERSION } from '../version.js';
import { selectWorktree, type WorktreeSelection } from './context.js';
import { loadEnvironment } from './commands/env.js';
import { jsonError } from './format.js';
import { createFeature } from './commands/new.js';
import { removeFeature } from './commands/rm.js';
import { restartService, serviceLogs } from './commands/service.js';
import { assertServicesHealthy, type ServiceFailure } from './service-wait.js';
import { worktreeStatus } from './commands/status.js';
import { switchProfile } from './commands/use.js';

/** Most past log lines one `logs` call returns. */
export const MAX_LOG_LINES = 1_000;
/** Most bytes of log one `logs` call returns (the newest are kept). */
export const MAX_LOG_BYTES = 64 * 1024;

/** Where the tools act when a call names no worktree. */
export interface McpServerOptions {
  /** The folder the agent started the server in (its worktree). */
  cwd: string;
}

const worktreeArg = z
  .string()
  .min(1)
  .optional()
  .describe("The worktree to act on: its name in URLs (e.g. hierarchy-filters) or its absolute path. Default: the worktree the server was started in.");

/**
 * devproxy's Model Context Protocol server. Every tool is a thin call of the same function the
 * matching CLI command uses (`cli/commands/*`); a devproxy error comes back as a tool error
 * carrying its DEVPROXY_ERR code and fix, never as a crash of the server.
 */
export function createMcpServer(options: McpServerOptions): McpServer {
  const server = new McpServer({ name: 'devproxy', version: VERSION }, { instructions: INSTRUCTIONS });
  const select = (worktree: string | undefined): WorktreeSelection =>
    worktree === undefined ? { dir: options.cwd } : isAbsolute(worktree) ? { dir: worktree } : { dir: options.cwd, worktree };

  server.registerTool(
    'status',
    {
      title: 'Worktree status',
      description: "The worktree's live profile and each service: route (local/remote), target, health, stable URL; plus the daemon's state and any file problems.",
      inputSchema: { worktree: worktreeArg },
      annotations: { readOnlyHint: true, openWorldHint: false },
    },
    ({ worktree }) =>
      run(async () => {
        const report = await worktreeStatus(select(worktree), true);
        const w = report.worktrees[0];
        const summary = w ? `${w.name}: profile ${w.profile ?? '-'}; ${w.services.map((s) => `${s.name} ${s.route}${s.route === s.desired ? '' : `→${s.desired}`} ${s.httpsUrl ?? s.url}`).join(', ')}` : 'no such worktree in the report';
        return { summary: `${report.daemon.running ? '' : 'devproxy is not running (routes it would serve). '}${summary}`, data: report };
      }),
  );

  server.registerTool(
    'use_profile',
    {
      title: 'Switch profile',
      description: "Switch the worktree's live profile (which services run locally; the rest go to the shared DEV environment). Routes flip without restarting apps. With dry_run: the start/stop/re-route plan, nothing changed.",
      inputSchema: {
        profile: z.string().min(1).optional().describe('A profile from devproxy.yaml; omit to keep the current one and only apply `services`.'),
        services: z.record(z.string(), z.enum(['local', 'remote'])).optional().describe('One-off overrides, e.g. { "api": "local" }.'),
        worktree: worktreeArg,
        dry_run: z.boolean().optional().describe('Return the plan and change nothing.'),
      },
      annotations: { readOnlyHint: false, destructiveHint: false, idempotentHint: true, openWorldHint: false },
    },
    ({ profile, services, worktree, dry_run }) =>
      run(async () => {
        const result = await switchProfile(profile, {
          ...select(worktree),
          service: Object.entries(services ?? {}).map(([name, mode]) => `${name}=${mode}`),
          dryRun: dry_run === true,
          json: true,
        });
        if ('dryRun' in result) {
          const routes = result.routes.map((r) => `${r.service} ${r.from}→${r.to}`).join(', ') || 'no route changes';
          return { summary: `${result.worktree}: dry run, nothing changed. start: ${result.start.join(', ') || '-'}; stop: ${result.stop.join(', ') || '-'}; ${routes}`, data: result };
        }
        const routes = result.applied ? result.applied.map((s) => `${s.name} ${s.route}${s.route === s.desired ? '' : `→${s.desired}`}`).join(', ') : 'devproxy is not running: applies when it starts';
        const failure = healthFailure(result.target, result.failures);
        return { summary: `${result.worktree}: profile ${result.profile} (${routes})${result.warnings.map((w) => `\nwarning: ${w}`).join('')}`, data: result, ...(failure ? { failure } : {}) };
      }),
  );

  server.registerTool(
    'new_feature',
    {
      title: 'Start a feature',
      description: 'Create a git worktree on a new branch, write its profile, start its local services (and the daemon if needed) and return its URLs. The worktree folder is `path` in the result: work there.',
      inputSchema: {
        name: z.string().min(1).describe('The branch, e.g. feature/hierarchy-filters; its last part names the worktree in URLs.'),
        profile: z.string().min(1).optional().describe("Profile of the new worktree (default: devproxy.yaml's default)."),
        base: z.string().min(1).optional().describe('Start the branch from this ref (default: the current HEAD).'),
      },
      annotations: { readOnlyHint: false, destructiveHint: false, idempotentHint: false, openWorldHint: false },
    },
    ({ name, profile, base }) =>
      run(async () => {
        const progress: string[] = [];
        const result = await createFeature(name, { dir: options.cwd, ...(profile ? { profile } : {}), ...(base ? { base } : {}) }, (line) => progress.push(line.trim()));
        const w = result.worktree;
        const failure = healthFailure(w, result.failures);
        return { summary: `created ${w.name} at ${w.path} (profile ${w.profile ?? '-'}): ${w.services.map((s) => `${s.name} ${s.route} ${s.httpsUrl ?? s.url}`).join(', ')}`, data: { ...w, failures: result.failures, progress }, ...(failure ? { failure } : {}) };
      }),
  );

  server.registerTool(
    'remove_feature',
    {
      title: 'Remove a feature worktree',
      description: "Stop the worktree's containers and processes and remove the worktree (its branch only with delete_branch). Refuses unless confirm is true: ask the user first.",
      inputSchema: {
        name: z.string().min(1).describe('The worktree by its name in URLs.'),
        confirm: z.boolean().optional().describe('Must be true: the user agreed to the removal.'),
        force: z.boolean().optional().describe('Remove even with uncommitted changes (they are lost).'),
        delete_branch: z.boolean().optional().describe('Also delete its branch.'),
      },
      annotations: { readOnlyHint: false, destructiveHint: true, idempotentHint: false, openWorldHint: false },
    },
    ({ name, confirm, force, delete_branch }) =>
      run(async () => {
        if (confirm !== true) {
          // Name what would go (and fail on an unknown name) without touching anything.
          const { worktree } = await selectWorktree({ dir: options.cwd, worktree: name });
          throw new DevproxyError('DEVPROXY_ERR_CONFIRMATION_REQUIRED', `remove_feature would stop the services of ${worktree.slug} and remove ${worktree.path}; nothing was changed`);
        }
        const result = await removeFeature(name, { dir: options.cwd, force: force === true, deleteBranch: delete_branch === true });
        return { summary: `removed ${result.worktree} (${result.removed})${result.branchDeleted ? `, branch ${result.branchDeleted} deleted` : result.branch ? `; branch ${result.branch} kept` : ''}`, data: result };
      }),
  );

  server.registerTool(
    'restart_service',
    {
      title: 'Restart a local service',
      description: "Replace the worktree's local instance of a service with a new one and wait until it is healthy.",
      inputSchema: { service: z.string().min(1).describe('A service from devproxy.yaml.'), worktree: worktreeArg },
      annotations: { readOnlyHint: false, destructiveHint: false, idempotentHint: false, openWorldHint: false },
    },
    ({ service, worktree }) =>
      run(async () => {
        const { worktree: target, result, failures } = await restartService(service, select(worktree));
        const failure = healthFailure(target, failures);
        return { summary: `${service} in ${target.name}: ${String(result.status?.state ?? 'restarted')}`, data: { worktree: target.name, service, ...result, failures }, ...(failure ? { failure } : {}) };
      }),
  );

  server.registerTool(
    'logs',
    {
      title: 'Service logs',
      description: `The last lines of output of the worktree's local instance of a service (at most ${MAX_LOG_LINES} lines and ${MAX_LOG_BYTES / 1024} KiB, newest kept).`,
      inputSchema: {
        service: z.string().min(1).describe('A service from devproxy.yaml.'),
        lines: z.number().int().min(1).max(MAX_LOG_LINES).optional().describe('How many past lines (default 100).'),
        worktree: worktreeArg,
      },
      annotations: { readOnlyHint: true, openWorldHint: false },
    },
    ({ service, lines, worktree }) =>
      run(async () => {
        const text = await tailText(await serviceLogs(service, { ...select(worktree), lines: String(lines ?? 100) }), MAX_LOG_BYTES);
        return { summary: text.text || '(no output yet)', data: { service, text: text.text, truncated: text.truncated } };
      }),
  );

  server.registerTool(
    'env',
    {
      title: 'Worktree environment',
      description: "The worktree's environment for its live profile: stable service URLs and per-service values. ${env:…}/${file:…} references stay references (never resolved, so no secret leaves the machine's files).",
      inputSchema: { worktree: worktreeArg },
      annotations: { readOnlyHint: true, openWorldHint: false },
    },
    ({ worktree }) =>
      run(async () => {
        const { environment, worktree: w } = await loadEnvironment(select(worktree));
        const variables = displayEnvironment(environment);
        return { summary: Object.entries(variables).map(([k, v]) => `${k}=${v}`).join('\n'), data: { worktree: w.slug, variables, notes: environment.notes } };
      }),
  );
  return server;
}

/** What every agent is told once, at initialisation. */
const INSTRUCTIONS = [
  'devproxy gives every service of every git worktree a stable URL http(s)://<service>.<worktree>.localhost and routes it to a local instance or the shared DEV environment by the worktree\'s live profile.',
  'Tools act on the worktree this server was started in unless given `worktree`. Never switch or remove another agent\'s worktree.',
  'A failed call returns a DEVPROXY_ERR code and its fix; follow the fix (or retry when it says so).',
].join('\n');

/**
 * Runs a tool body: its result as text plus structured content. An error, or a result that is
 * also a failure (a worktree made whose service did not start), is a tool error carrying the
 * DEVPROXY_ERR code and its fix.
 */
async function run(body: () => Promise<{ summary: string; data: object; failure?: DevproxyError }>): Promise<CallToolResult> {
  let outcome: { summary: string; data: object; failure?: DevproxyError };
  try {
    outcome = await body();
  } catch (error) {
    const known = isDevproxyError(error) ? error : new DevproxyError('DEVPROXY_ERR_INTERNAL', (error as Error)?.message ?? String(error), { cause: error });
    outcome = { summary: '', data: {}, failure: known };
  }
  const { summary, data, failure } = outcome;
  if (!failure) return { content: [{ type: 'text', text: summary }, { type: 'text', text: JSON.stringify(data, null, 2) }], structuredContent: data as Record<string, unknown> };
  const structured = { ...data, ...jsonError(failure) };
  const text = `${failure.code}: ${failure.message}\nfix: ${failure.hint}${summary ? `\n${summary}` : ''}`;
  return { isError: true, content: [{ type: 'text', text }, { type: 'text', text: JSON.stringify(structured, null, 2) }], structuredContent: structured };
}

/** The error the CLI exits 1 with for these failures (same code and fix), or undefined when there are none. */
function healthFailure(worktree: { name: string; path: string }, failures: readonly ServiceFailure[]): DevproxyError | undefined {
  try {
    assertServicesHealthy(worktree, failures);
    return undefined;
  } catch (error) {
    return error as DevproxyError;
  }
}

/** Reads a stream to its end keeping only the newest `maxBytes` (cut at a line start when cut). */
export async function tailText(stream: AsyncIterable<Uint8Array>, maxBytes: number): Promise<{ text: string; truncated: boolean }> {
  let chunks: Buffer[] = [];
  let size = 0;
  let truncated = false;
  for await (const chunk of stream) {
    chunks.push(Buffer.from(chunk));
    size += chunk.byteLength;
    if (size > 2 * maxBytes) {
      const all = Buffer.concat(chunks);
      chunks = [all.subarray(all.length - maxBytes)];
      size = maxBytes;
      truncated = true;
    }
  }
  let all = Buffer.concat(chunks);
  if (all.length > maxBytes) {
    all = all.subarray(all.length - maxBytes);
    truncated = true;
  }
  let text = all.toString('utf8');
  if (truncated) text = text.slice(text.indexOf('\n') + 1);
  return { text, truncated };
}

/** Serves the tools over stdio until the client closes stdin. Stdout belongs to the protocol. */
export async function serveStdio(options: McpServerOptions): Promise<void> {
  // Anything printed by accident would corrupt the JSON-RPC stream on stdout.
  console.log = console.error;
  console.info = console.error;
  const { StdioServerTransport } = await import('@modelcontextprotocol/sdk/server/stdio.js');
  const server = createMcpServer({ cwd: resolve(options.cwd) });
  const closed = new Promise<void>((done) => {
    process.stdin.once('end', done);
    process.stdin.once('close', done);
  });
  await server.connect(new StdioServerTransport());
  await closed;
  await server.close();
}

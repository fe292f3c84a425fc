import type { ServiceStatus, StatusReport, WorktreeStatus } from '../workspace/status.js';
import type { DevproxyError } from '../errors.js';
import { formatMemory } from '../runtime/memory.js';

/** Left-aligned columns separated by two spaces; the widest cell sets each column's width. */
export function renderTable(rows: string[][]): string {
  const widths: number[] = [];
  for (const row of rows) row.forEach((cell, i) => (widths[i] = Math.max(widths[i] ?? 0, cell.length)));
  return rows.map((row) => row.map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i]!))).join('  ').trimEnd()).join('\n');
}

/** `local`, `remote`, or `remote → local` while a local instance starts. */
export function routeLabel(service: ServiceStatus): string {
  return service.desired === service.route ? service.route : `${service.route} → ${service.desired}`;
}

/**
 * One table cell from a possibly multi-line text (a failure with its last output lines): the
 * first non-empty line, and how many lines `status --verbose` would add, so rows stay rows.
 */
export function foldLines(text: string): string {
  const lines = text.split(/\r?\n/).map((l) => l.trimEnd()).filter((l) => l.trim() !== '');
  if (lines.length <= 1) return lines[0] ?? '';
  return `${lines[0]} [+${lines.length - 1} line${lines.length === 2 ? '' : 's'}: status --verbose]`;
}

/** Options of {@link renderStatus}. */
export interface RenderStatusOptions {
  /** Print each multi-line problem in full under the table (`status --verbose`); default false. */
  verbose?: boolean;
}

/** The human form of `devproxy status`: one line per service, problems folded unless verbose. */
export function renderStatus(report: StatusReport, opts: RenderStatusOptions = {}): string {
  const lines: string[] = [];
  const daemon = report.daemon;
  lines.push(daemon.running ? `devproxy ${daemon.version} running (pid ${daemon.pid}) — http :${daemon.httpPort}${daemon.httpsPort ? `, https :${daemon.httpsPort}` : ''}` : 'devproxy is not running (start it with `devproxy proxy start`); showing the routes it would serve');
  if (report.worktrees.length === 0) {
    lines.push('', 'No repository registered: run `devproxy init` in one.');
    return lines.join('\n');
  }
  const rows = [['WORKTREE', 'PROFILE', 'SERVICE', 'ROUTE', 'TARGET', 'HEALTH', 'URL']];
  for (const w of report.worktrees) rows.push(...worktreeRows(w));
  lines.push('', renderTable(rows));
  const details = report.worktrees.flatMap((w) => w.services.filter((s) => s.problem?.message.includes('\n')).map((s) => ({ w, s, text: s.problem!.message })));
  if (opts.verbose && details.length > 0) {
    lines.push('', 'Details:');
    for (const { w, s, text } of details) lines.push(`  ${s.name} in ${w.name}:`, ...text.split(/\r?\n/).map((l) => `    ${l}`));
  }
  const down = report.worktrees.filter((w) => w.down).map((w) => w.name);
  if (down.length > 0) lines.push('', `Down (local instances stopped by \`devproxy down\`, every route remote): ${down.join(', ')}; \`devproxy up\` starts them again.`);
  lines.push('', renderMemory(report.worktrees));
  const problems = [...report.diagnostics, ...report.worktrees.flatMap((w) => w.diagnostics)];
  const unique = [...new Map(problems.map((d) => [d.text, d])).values()];
  if (unique.length > 0) {
    lines.push('', 'Problems (the last good routes stay active):');
    for (const d of unique) {
      const text = opts.verbose ? d.text.replace(/\r?\n/g, '\n    ') : foldLines(d.text);
      lines.push(`  ${d.severity === 'warning' ? 'warning' : 'error'}: ${text}`);
    }
  }
  return lines.join('\n');
}

/** `feature-x  minimal  248 MB local  (profile declares 768 MB; full: 10.5 GB)` per worktree, and the total. */
export function renderMemory(worktrees: WorktreeStatus[]): string {
  const used = (w: WorktreeStatus) => (w.memory.usedBytes === null ? '-' : formatMemory(w.memory.usedBytes));
  const rows = [['MEMORY', 'PROFILE', 'LOCAL NOW', 'PROFILE DECLARES', 'FULL WOULD NEED']];
  for (const w of worktrees) rows.push([w.name, w.profile ?? '-', used(w), formatMemory(w.memory.profileBytes), formatMemory(w.memory.fullBytes)]);
  const total = worktrees.reduce((sum, w) => sum + (w.memory.usedBytes ?? 0), 0);
  rows.push(['total', '', formatMemory(total), formatMemory(worktrees.reduce((s, w) => s + w.memory.profileBytes, 0)), formatMemory(worktrees.reduce((s, w) => s + w.memory.fullBytes, 0))]);
  return renderTable(rows);
}

function worktreeRows(w: WorktreeStatus): string[][] {
  const name = `${w.name}${w.main ? ' (main)' : ''}`;
  if (w.services.length === 0) return [[name, w.profile ?? '-', '-', '-', w.diagnostics.length > 0 ? 'not routed: see problems below' : '-', '-', '-']];
  return w.services.map((s, i) => [
    i === 0 ? name : '',
    i === 0 ? `${w.profile ?? '-'}${w.down ? ' (down)' : ''}` : '',
    s.name,
    routeLabel(s),
    s.target === null ? `(${foldLines(s.problem?.message ?? 'unavailable')})` : s.insecure ? `${s.target} (TLS NOT VERIFIED)` : s.target,
    s.health,
    s.httpsUrl ?? s.url,
  ]);
}

/** The `error` member of `--json` output on failure (schemas/error.json): the stable code, what happened, the fix. */
export function jsonError(error: DevproxyError): { error: { code: string; message: string; hint: string } } {
  return { error: { code: error.code, message: error.message, hint: error.hint } };
}

/**
 * Prints a command's `--json` result; a failure that still has a result (a worktree created but
 * a service not healthy) is one document with the result and its `error`, and exit code 1.
 */
export function printJson(result: object, failure?: DevproxyError): void {
  console.log(JSON.stringify(failure ? { ...result, ...jsonError(failure) } : result, null, 2));
  if (failure) process.exitCode = 1;
}

/**
 * Picks, from the last output of something that failed (a dev server, a set-up step), the lines
 * that say what went wrong: not a wrapper's usage text (`npm ci` prints its whole option list
 * after the one line that matters), not stack frames, not blank or punctuation-only lines.
 * Pure: the callers read the log.
 */

/** Most lines a cause shows. */
export const CAUSE_MAX_LINES = 8;

/** Only this many of the last meaningful lines are searched for the first error line. */
const RECENT_LINES = 24;

/** Words that mark a line as the report of a failure. */
const ERROR_WORDS = /\b(?:error|errors?:|err!|failed|failure|fatal|panic|exception|traceback|cannot|can't|could not|not found|no such|denied|refused|eaddrinuse|eacces|enoent|missing|invalid|unexpected)\b/i;

/** `npm error Usage:`, `Usage: vite [options]`: the start of a command's help text. */
const USAGE_LINE = /^(?:(?:npm|pnpm|yarn)\s+(?:error|ERR!)\s+)?usage:/i;

/** A stack frame of Node, Python (`File "…", line 3`) or .NET (`   at X.Y()`). */
const STACK_FRAME = /^\s+(?:at\s|File\s")/;

/** The tool's own prefix on every line (`npm error `), which alone makes a line look non-empty. */
const TOOL_PREFIX = /^(?:npm|pnpm|yarn)\s+(?:error|ERR!|warn|WARN|notice)\s?/;

/**
 * The lines of `lines` (oldest first) that explain a failure, at most `max`: from the first
 * line naming an error among the recent ones, else the last lines; help text is cut off.
 */
export function causeLines(lines: readonly string[], max = CAUSE_MAX_LINES): string[] {
  const trimmed = lines.map((line) => line.trimEnd());
  const usage = trimmed.findIndex((line) => USAGE_LINE.test(line.trim()));
  const beforeUsage = usage > 0 ? trimmed.slice(0, usage) : trimmed;
  const meaningful = beforeUsage.filter((line) => !STACK_FRAME.test(line) && /[A-Za-z0-9]/.test(line.replace(TOOL_PREFIX, '')));
  const recent = meaningful.slice(-RECENT_LINES);
  const first = recent.findIndex((line) => ERROR_WORDS.test(line));
  return first < 0 ? recent.slice(-max) : recent.slice(first, first + max);
}

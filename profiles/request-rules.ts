/**
 * `writes.deny` rules: requests a `read-only` remote refuses although their method is safe, such
 * as Azure Queue "Get Messages" (a GET that dequeues). Pure: parsed once with the config, matched
 * per request on the remote hop.
 */

/** One rule, e.g. `GET /*\/messages` or `!GET /*\/messages?peekonly=true`. */
export interface RequestRule {
  /** The rule as written, for messages. */
  text: string;
  /** Upper-case method, or `*` for any. */
  method: string;
  /** The path glob compiled (case-insensitive): `*` is one path segment, `**` any number of them. */
  path: RegExp;
  /** Query parameters that must be present (lower-case name → value, or `*` for any value). */
  query: ReadonlyArray<readonly [string, string]>;
  /** `!` rule: lets a request through that an earlier rule refused. */
  allow: boolean;
}

const RULE = /^(!?)\s*([A-Za-z]+|\*)\s+(\/\S*)$/;

/** A rule from its text, or the reason it is not one (for a diagnostic naming its line). */
export function parseRequestRule(text: string): RequestRule | { problem: string } {
  const match = RULE.exec(text.trim());
  if (match === null) return { problem: `"${text}" is not a request rule` };
  const [pathPart, queryPart] = splitOnce(match[3] as string, '?');
  const query: Array<[string, string]> = [];
  for (const pair of queryPart === undefined ? [] : queryPart.split('&')) {
    const [name, value] = splitOnce(pair, '=');
    if (name === '') return { problem: `"${text}" has an empty query parameter name` };
    query.push([name.toLowerCase(), value ?? '*']);
  }
  return { text: text.trim(), method: (match[2] as string).toUpperCase(), path: globToRegExp(pathPart), query, allow: match[1] === '!' };
}

/**
 * True when `rules` refuse `method` on `url` (path and query as the client sent them): the last
 * rule that matches decides, as in .gitignore, so a `!` rule after a broader one lets its
 * requests through. Undefined rules or none matching: not refused.
 */
export function deniedBy(rules: readonly RequestRule[] | undefined, method: string, url: string): RequestRule | undefined {
  if (rules === undefined) return undefined;
  const q = url.indexOf('?');
  // A rule must not be dodged by spelling its path differently: unreserved characters are
  // compared decoded (RFC 3986 §6.2.2.2) and letters in any case (the rules refuse, so wider is safer).
  const path = (q === -1 ? url : url.slice(0, q)).replace(/%([0-9A-Fa-f]{2})/g, (escape, hex: string) => {
    const char = String.fromCharCode(parseInt(hex, 16));
    return /[A-Za-z0-9._~-]/.test(char) ? char : escape;
  });
  let params: URLSearchParams | undefined;
  let decided: RequestRule | undefined;
  for (const rule of rules) {
    if (rule.method !== '*' && rule.method !== method) continue;
    if (!rule.path.test(path)) continue;
    if (rule.query.length > 0) {
      params ??= lowerCaseParams(q === -1 ? '' : url.slice(q + 1));
      if (!rule.query.every(([name, value]) => params!.has(name) && (value === '*' || params!.getAll(name).includes(value)))) continue;
    }
    decided = rule;
  }
  return decided?.allow === false ? decided : undefined;
}

function globToRegExp(glob: string): RegExp {
  let source = '';
  for (let i = 0; i < glob.length; i++) {
    const char = glob[i] as string;
    if (char === '*' && glob[i + 1] === '*') {
      source += '.*';
      i++;
    } else if (char === '*') {
      source += '[^/]*';
    } else {
      source += char.replace(/[.+?^${}()|[\]\\]/g, '\\$&');
    }
  }
  return new RegExp(`^${source}$`, 'i');
}

function lowerCaseParams(query: string): URLSearchParams {
  const params = new URLSearchParams();
  for (const [name, value] of new URLSearchParams(query)) params.append(name.toLowerCase(), value);
  return params;
}

function splitOnce(text: string, separator: string): [string, string | undefined] {
  const at = text.indexOf(separator);
  return at === -1 ? [text, undefined] : [text.slice(0, at), text.slice(at + 1)];
}

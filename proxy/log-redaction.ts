/**
 * Which parts of a recorded request are secrets the request log never shows: header values by
 * the header's name, query values by the parameter's name. Pure; the log calls it when an entry
 * is read (`devproxy requests`, the dashboard), never while the request is proxied, and the
 * request itself is forwarded unchanged.
 */

/** What a redacted value reads as. */
export const REDACTED = '[redacted]';

/**
 * Headers whose values are secrets by name: credentials (Authorization, Cookie) and the API-key
 * headers of common gateways (Azure Functions, API Management, Azure OpenAI, AWS, Google).
 */
const SECRET_HEADERS: ReadonlySet<string> = new Set([
  'authorization', 'proxy-authorization', 'cookie', 'set-cookie',
  'x-api-key', 'api-key', 'apikey', 'x-functions-key', 'ocp-apim-subscription-key',
]);
/**
 * A header is also secret when one of its `-`/`_`-separated words is one of these
 * (`x-ms-encryption-key`, `x-ms-copy-source-authorization`, `x-amz-security-token`, `x-csrf-token`).
 */
const SECRET_HEADER_WORDS: ReadonlySet<string> = new Set(['authorization', 'cookie', 'token', 'secret', 'password', 'passwd', 'key', 'apikey', 'signature', 'credential', 'credentials']);
/** Headers a word would catch that hold no secret and help when reading a row. */
const PUBLIC_HEADERS: ReadonlySet<string> = new Set(['sec-websocket-key']);

/**
 * Query parameters whose values are secrets by name: Azure SAS `sig`, Azure Functions `code`,
 * OAuth codes and tokens, API keys and passwords.
 */
const SECRET_PARAMS: ReadonlySet<string> = new Set([
  'sig', 'code', 'token', 'access_token', 'id_token', 'refresh_token', 'api_key', 'apikey', 'api-key', 'key',
  'secret', 'client_secret', 'password', 'passwd', 'pwd', 'subscription-key', 'subscription_key', 'auth',
]);
/** A parameter is also secret when one of its `-`/`_`/`.`-separated words is one of these (`x-api-key`, `sas_token`). */
const SECRET_PARAM_WORDS: ReadonlySet<string> = new Set(['token', 'secret', 'password', 'passwd', 'key', 'apikey', 'signature', 'credential', 'credentials']);

/** True when a header named `name` (any case) carries a secret the log must not show. */
export function isSecretHeader(name: string): boolean {
  const lower = name.toLowerCase();
  if (SECRET_HEADERS.has(lower)) return true;
  if (PUBLIC_HEADERS.has(lower)) return false;
  return hasWord(lower, /[-_]/, SECRET_HEADER_WORDS);
}

/** True when a query parameter named `name` (already decoded, any case) carries a secret. */
export function isSecretParam(name: string): boolean {
  const lower = name.toLowerCase();
  return SECRET_PARAMS.has(lower) || hasWord(lower, /[-_.]/, SECRET_PARAM_WORDS);
}

/**
 * `path` with the value of every secret query parameter replaced by {@link REDACTED}; the names,
 * the other parameters and their order stay, so a row still says what was asked. A path without
 * a query is answered as it is, at no cost.
 */
export function redactPath(path: string): string {
  const query = path.indexOf('?');
  if (query === -1) return path;
  const params = path.slice(query + 1).split('&');
  let changed = false;
  for (let i = 0; i < params.length; i++) {
    const param = params[i] as string;
    const equals = param.indexOf('=');
    const name = equals === -1 ? param : param.slice(0, equals);
    if (equals === -1 || equals === param.length - 1 || !isSecretParam(decodedName(name))) continue;
    params[i] = `${name}=${REDACTED}`;
    changed = true;
  }
  return changed ? `${path.slice(0, query + 1)}${params.join('&')}` : path;
}

/** A query parameter's name as the server reads it (`%73ig` and `si%67` are `sig`, `+` is a space). */
function decodedName(name: string): string {
  if (!name.includes('%') && !name.includes('+')) return name;
  try {
    return decodeURIComponent(name.replaceAll('+', ' '));
  } catch {
    // A malformed escape: the server cannot decode it either; compare the raw name.
    return name;
  }
}

function hasWord(name: string, separator: RegExp, words: ReadonlySet<string>): boolean {
  for (const word of name.split(separator)) if (words.has(word)) return true;
  return false;
}

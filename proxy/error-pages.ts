/**
 * Bodies of the pages devproxy answers itself: error pages (HTML for browsers, JSON otherwise)
 * and the `localhost` landing page. Everything interpolated into HTML is escaped.
 */
import { ERROR_HINTS, type ErrorCode } from '../errors.js';
import type { ProxyErrorInfo } from './upstream-errors.js';

/** One known host, as listed on the landing and 404 pages. */
export interface HostEntry {
  host: string;
  /** Stable URL, e.g. `http://api.feature-x.localhost:8080/`. */
  url: string;
  worktree: string;
  service: string;
  mode: 'local' | 'remote';
  /** Why the route cannot be served, when it cannot. */
  problem?: string;
}

const HTML_ESCAPES: Readonly<Record<string, string>> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&#39;',
};

/** Escapes text for HTML element content and quoted attribute values. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => HTML_ESCAPES[c] as string);
}

/** True when the client asked for HTML (browsers); API clients get JSON. */
export function wantsHtml(accept: string | undefined): boolean {
  return accept !== undefined && accept.includes('text/html');
}

const STYLE =
  'body{font:15px/1.5 system-ui,sans-serif;max-width:50rem;margin:3rem auto;padding:0 1rem;color:#222}' +
  'code{background:#f3f3f3;padding:0 .25em}dt{font-weight:600}dd{margin:0 0 .5rem}li{margin:.2rem 0}';

/** Inline code spans written as backticks in messages and hints. */
function formatText(text: string): string {
  return escapeHtml(text).replace(/`([^`]+)`/g, '<code>$1</code>');
}

function htmlDocument(title: string, body: string): string {
  return (
    `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${escapeHtml(title)}</title>` +
    `<style>${STYLE}</style></head><body>${body}</body></html>\n`
  );
}

function hostList(urls: readonly string[]): string {
  if (urls.length === 0) return '<p>devproxy knows no hosts yet: run <code>devproxy init</code> in a repository.</p>';
  return `<ul>${urls.map((u) => `<li><a href="${escapeHtml(u)}">${escapeHtml(u)}</a></li>`).join('')}</ul>`;
}

/** The body of an error page; JSON is `{ error: { code, message, hint, service?, worktree?, target?, knownHosts? } }`. */
export function renderErrorPage(info: ProxyErrorInfo, html: boolean): string {
  if (!html) {
    const { status: _status, ...error } = info;
    return `${JSON.stringify({ error })}\n`;
  }
  const details: string[] = [];
  if (info.service !== undefined) details.push(`<dt>Service</dt><dd>${escapeHtml(info.service)}</dd>`);
  if (info.worktree !== undefined) details.push(`<dt>Worktree</dt><dd>${escapeHtml(info.worktree)}</dd>`);
  if (info.target !== undefined) details.push(`<dt>Target</dt><dd>${escapeHtml(info.target)}</dd>`);
  const body =
    `<h1>${info.status} · devproxy</h1><p>${formatText(info.message)}</p>` +
    `<p><strong>Fix:</strong> ${formatText(info.hint)}</p>` +
    (details.length > 0 ? `<dl>${details.join('')}</dl>` : '') +
    (info.knownHosts !== undefined ? `<h2>Known hosts</h2>${hostList(info.knownHosts)}` : '') +
    `<p><small>${escapeHtml(info.code)}</small></p>`;
  return htmlDocument(`${info.status} · devproxy`, body);
}

/** The page served for Host `localhost`: every known host with its worktree, service and mode. */
export function renderLandingPage(hosts: readonly HostEntry[], html: boolean): string {
  if (!html) return `${JSON.stringify({ hosts })}\n`;
  const rows = hosts
    .map(
      (h) =>
        `<tr><td><a href="${escapeHtml(h.url)}">${escapeHtml(h.host)}</a></td><td>${escapeHtml(h.worktree)}</td>` +
        `<td>${escapeHtml(h.service)}</td><td>${h.mode}</td><td>${escapeHtml(h.problem ?? '')}</td></tr>`,
    )
    .join('');
  const body =
    '<h1>devproxy</h1>' +
    (hosts.length === 0
      ? '<p>devproxy knows no hosts yet: run <code>devproxy init</code> in a repository.</p>'
      : `<table><thead><tr><th>Host</th><th>Worktree</th><th>Service</th><th>Route</th><th>Problem</th></tr></thead><tbody>${rows}</tbody></table>`);
  return htmlDocument('devproxy', body);
}

const WAKING_CODE: ErrorCode = 'DEVPROXY_ERR_REMOTE_WAKING';

/** What the "waking <service>…" page says. */
export interface WakingPage {
  service: string;
  worktree: string;
  /** Remote origin, shown so the team knows which endpoint is asleep. */
  target: string;
  /** What the remote answered, e.g. `503` or `UND_ERR_HEADERS_TIMEOUT`. */
  answered: string;
  /** How long the page keeps reloading before it stops and says so, in ms (the service's `wake` timeout). */
  timeoutMs: number;
  /** Seconds between reloads. */
  retryAfterSeconds: number;
}

/**
 * The page a browser navigation gets while a remote scales from zero: it reloads itself every
 * `retryAfterSeconds` (script; `<noscript>` falls back to a meta refresh) until the remote
 * answers, and gives up after `timeoutMs` counted from the first waking page of this tab.
 */
export function renderWakingPage(page: WakingPage): string {
  // `<` escaped so no name can close the script element.
  const key = JSON.stringify(`devproxy-waking:${page.service}.${page.worktree}`).replace(/</g, '\\u003c');
  const script =
    `<script>(function(){var k=${key},s=sessionStorage,t=Number(s.getItem(k))||Date.now();s.setItem(k,String(t));` +
    `if(Date.now()-t<${page.timeoutMs}){setTimeout(function(){location.reload()},${page.retryAfterSeconds * 1000});}` +
    `else{s.removeItem(k);document.getElementById('state').textContent='It did not wake up within ${Math.round(page.timeoutMs / 1000)} s: reload to try again, or check the remote.';}})();</script>`;
  const body =
    `<h1>Waking ${escapeHtml(page.service)}…</h1>` +
    `<p>The remote of <code>${escapeHtml(page.service)}</code> (worktree <code>${escapeHtml(page.worktree)}</code>) at ${escapeHtml(page.target)} ` +
    `answered ${escapeHtml(page.answered)}: it is probably starting from zero.</p>` +
    `<p id="state">This page reloads by itself every ${page.retryAfterSeconds} s.</p>` +
    `<noscript><meta http-equiv="refresh" content="${page.retryAfterSeconds}"></noscript>` +
    `<p><strong>If it stays asleep:</strong> ${formatText(ERROR_HINTS[WAKING_CODE])}</p>` +
    `<p><small>${WAKING_CODE}</small></p>${script}`;
  return htmlDocument(`Waking ${page.service}… · devproxy`, body);
}

import { describe, expect, it } from 'vitest';
import { formatDiagnostic } from '../../profiles/schema.js';
import { deniedBy, parseRequestRule, type RequestRule } from '../../profiles/request-rules.js';
import { validateConfig } from '../../profiles/validate-config.js';
import { validateProfile } from '../../profiles/validate-profile.js';
import { buildRoutingTable } from '../../router/route-table.js';

function rules(...texts: string[]): RequestRule[] {
  return texts.map((text) => {
    const rule = parseRequestRule(text);
    if ('problem' in rule) throw new Error(rule.problem);
    return rule;
  });
}

const denied = (list: RequestRule[], method: string, url: string) => deniedBy(list, method, url)?.text;

describe('writes.deny rules', () => {
  const queue = rules('GET /*/messages');

  it.each([
    ['GET', '/orders/messages', 'GET /*/messages'],
    ['GET', '/orders/messages?numofmessages=32&visibilitytimeout=30', 'GET /*/messages'],
    ['GET', '/orders/MESSAGES', 'GET /*/messages'],
    ['GET', '/orders/%6Dessages', 'GET /*/messages'],
    ['GET', '/orders', undefined],
    ['GET', '/orders/messages/abc', undefined],
    ['GET', '/account/orders/messages', undefined],
    ['HEAD', '/orders/messages', undefined],
    ['GET', '/orders/messages%2Fx', undefined],
  ])('Azure Queue "Get Messages": %s %s → %s', (method, url, expected) => {
    expect(denied(queue, method, url)).toBe(expected);
  });

  it('** spans segments, * any method, ! lets a narrower request through again (last match decides)', () => {
    const list = rules('GET /**/messages', '!GET /**/messages?peekonly=true', '* /$batch');
    expect(denied(list, 'GET', '/devstoreaccount1/orders/messages')).toBe('GET /**/messages');
    expect(denied(list, 'GET', '/devstoreaccount1/orders/messages?PeekOnly=true&numofmessages=1')).toBeUndefined();
    expect(denied(list, 'GET', '/devstoreaccount1/orders/messages?peekonly=false')).toBe('GET /**/messages');
    expect(denied(list, 'GET', '/$batch')).toBe('* /$batch');
    expect(denied(list, 'OPTIONS', '/$batch')).toBe('* /$batch');
    expect(deniedBy(undefined, 'GET', '/orders/messages')).toBeUndefined();
  });

  it('matches the Service Bus REST shapes (receive-and-delete is DELETE …/messages/head) and a required query parameter', () => {
    const list = rules('DELETE /*/messages/head', 'DELETE /*/subscriptions/*/messages/head', 'GET /*?comp=list');
    expect(denied(list, 'DELETE', '/orders/messages/head?timeout=60')).toBe('DELETE /*/messages/head');
    expect(denied(list, 'DELETE', '/topic/subscriptions/audit/messages/head')).toBe('DELETE /*/subscriptions/*/messages/head');
    expect(denied(list, 'GET', '/container?comp=list&restype=container')).toBe('GET /*?comp=list');
    expect(denied(list, 'GET', '/container?restype=container')).toBeUndefined();
  });

  it.each(['GET', '/orders/messages', 'GET orders/messages', 'GET /a b', 'GET /x?=1', ''])('refuses the rule %j', (text) => {
    expect(parseRequestRule(text)).toHaveProperty('problem');
  });
});

const FILE = '/repo/devproxy.yaml';
const config = (writes: string) => `name: contoso
services:
  queue:
    remote: https://contosodev.queue.core.windows.net
    writes: ${writes}
`;

describe('writes in devproxy.yaml', () => {
  it('takes the string form and the { policy, deny } form', () => {
    expect(validateConfig(config('read-only'), FILE).config?.services.get('queue')?.writes).toBe('read-only');
    const service = validateConfig(config('{ policy: read-only, deny: ["GET /*/messages", "!GET /*/messages?peekonly=true"] }'), FILE).config?.services.get('queue');
    expect(service?.writes).toBe('read-only');
    expect(service?.writesDeny?.map((r) => r.text)).toEqual(['GET /*/messages', '!GET /*/messages?peekonly=true']);
  });

  it.each([
    ['a bad policy', 'read-mostly', `${FILE}:5:13 services.queue.writes: "read-mostly" is not a write policy — write \`writes: read-only\` (refuse POST/PUT/PATCH/DELETE to the shared remote), \`read-write\`, or \`{ policy: read-only, deny: ["GET /*/messages"] }\``],
    ['no policy', '{ deny: ["GET /*/messages"] }', `${FILE}:5:13 services.queue.writes.policy: writes names no policy — write \`policy: read-only\` (or \`read-write\`)`],
    ['a typo', '{ policy: read-only, deni: [] }', `${FILE}:5:34 services.queue.writes.deni: unknown key "deni" — did you mean "deny"?`],
    ['deny not a list', '{ policy: read-only, deny: "GET /*/messages" }', `${FILE}:5:40 services.queue.writes.deny: deny must be a list of requests — write e.g. \`deny: ["GET /*/messages"]\` (method, then a path where * is one segment and ** any)`],
    ['a rule without a method', '\n      policy: read-only\n      deny:\n        - "GET /*/messages"\n        - "/*/messages"', `${FILE}:9:11 services.queue.writes.deny: "/*/messages" is not a request rule — write \`METHOD /path\`, e.g. "GET /*/messages" (* is one path segment, ** any; \`!\` first lets a request through again)`],
  ])('reports %s with its line', (_case, writes, expected) => {
    expect(validateConfig(config(writes), FILE).errors.map(formatDiagnostic)).toEqual([expected]);
  });

  it('puts the rules on the remote hop while read-only, and lifts them with the worktree override', () => {
    const parsed = validateConfig(config('{ policy: read-only, deny: ["GET /*/messages"] }'), FILE).config!;
    const override = validateProfile('profile: remote\nwrites: { queue: read-write }\n', '/w/y/.devproxy/profile.yaml', parsed).profile!;
    const table = buildRoutingTable([
      { path: '/w/x', repo: '/repo', branch: 'feature/x', isMain: false, config: parsed, diagnostics: [], projectName: 'contoso' },
      { path: '/w/y', repo: '/repo', branch: 'feature/y', isMain: false, config: parsed, diagnostics: [], projectName: 'contoso', profile: override },
    ]);
    const hop = (host: string) => {
      const target = table.routes.get(host)?.target;
      return target?.kind === 'remote' ? target.hop : undefined;
    };
    expect(hop('queue.x.localhost')?.readOnly).toBe(true);
    expect(hop('queue.x.localhost')?.deny?.map((r) => r.text)).toEqual(['GET /*/messages']);
    expect(hop('queue.y.localhost')?.readOnly).toBeUndefined();
    expect(hop('queue.y.localhost')?.deny).toBeUndefined();
  });
});

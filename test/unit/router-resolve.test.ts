import { describe, expect, it } from 'vitest';
import { ServedLeaf } from '../../certs/store.js';
import { validateConfig } from '../../profiles/validate-config.js';
import { buildRoutingTable } from '../../router/route-table.js';
import { MAX_PROXY_HOPS, resolve, type Resolution, type TlsConnection } from '../../router/resolve.js';
import type { RoutingTable } from '../../router/types.js';

const config = validateConfig(
  `name: contoso
services:
  ui: { local: { command: npm run dev } }
  api: { local: { port: 8080 }, remote: https://contoso-api-dev.azurewebsites.net }
profiles:
  standard: [ui, api]
`,
  '/repo/devproxy.yaml',
).config!;

/** The main checkout (slug `contoso`) with its `ui` running, and worktree `feature-x` whose `ui` failed to start. */
const table: RoutingTable = buildRoutingTable([
  { path: '/repo', repo: '/repo', isMain: true, config, diagnostics: [], projectName: 'contoso', runtimePorts: new Map([['ui', 5173]]) },
  {
    path: '/wt/feature-x',
    repo: '/repo',
    isMain: false,
    branch: 'feature/feature-x',
    config,
    diagnostics: [],
    projectName: 'contoso',
    runtimeFailures: new Map([['ui', { message: 'ui exited with code 1', hint: 'read its log' }]]),
  },
]);

const tls = (sni: string | undefined): TlsConnection => new ServedLeaf(sni);

/** The route outcome for `host`, as the table holds it. */
function routeOf(host: string): Resolution {
  const route = table.routes.get(host)!;
  return { kind: 'route', host, route, target: route.target! };
}

describe('resolve', () => {
  it('the table is what this test thinks it is', () => {
    expect([...table.routes.keys()].sort()).toEqual(['api.contoso.localhost', 'api.feature-x.localhost', 'ui.contoso.localhost', 'ui.feature-x.localhost']);
    expect(table.routes.get('ui.feature-x.localhost')?.target).toBeUndefined();
  });

  describe('route', () => {
    it.each([
      ['api.feature-x.localhost', 'api.feature-x.localhost'],
      ['api.feature-x.localhost:8080', 'api.feature-x.localhost'],
      ['api.feature-x.localhost:0', 'api.feature-x.localhost'],
      ['API.Feature-X.LocalHost', 'api.feature-x.localhost'],
      ['api.feature-x.localhost.', 'api.feature-x.localhost'],
      ['api.feature-x.localhost.:443', 'api.feature-x.localhost'],
      [' api.feature-x.localhost ', 'api.feature-x.localhost'],
      // The main checkout is named by the project: <service>.<project>.localhost.
      ['ui.contoso.localhost', 'ui.contoso.localhost'],
      ['api.contoso.localhost:80', 'api.contoso.localhost'],
    ])('%j → the route of %s', (authority, host) => {
      expect(resolve(table, authority, 0, undefined)).toEqual(routeOf(host));
    });

    it('answers from the table it is given, nothing else', () => {
      const empty: RoutingTable = { routes: new Map(), worktrees: [], diagnostics: [] };
      expect(resolve(empty, 'api.feature-x.localhost', 0)).toEqual({ kind: 'unknown', host: 'api.feature-x.localhost' });
    });
  });

  describe('landing', () => {
    it.each(['localhost', 'localhost:8080', 'LOCALHOST', 'localhost.'])('%j → the landing page', (authority) => {
      expect(resolve(table, authority, 0)).toEqual({ kind: 'landing' });
    });

    it('is not subject to the hop limit (it forwards nothing)', () => {
      expect(resolve(table, 'localhost', MAX_PROXY_HOPS + 3)).toEqual({ kind: 'landing' });
    });
  });

  describe('bad host', () => {
    it.each([undefined, '', '   '])('%j → missing', (authority) => {
      expect(resolve(table, authority, 0)).toEqual({ kind: 'bad-host', missing: true });
    });

    it.each(['api..localhost', 'a pi.localhost', 'api.localhost:http', 'api.localhost:70000', 'api.localhost:', '-api.localhost', 'user@api.localhost', `${'a'.repeat(64)}.localhost`])(
      '%j → not a hostname',
      (authority) => {
        expect(resolve(table, authority, 0)).toEqual({ kind: 'bad-host', missing: false });
      },
    );
  });

  describe('misdirected', () => {
    it.each(['127.0.0.1', '127.0.0.1:8080', '[::1]', '[::1]:8080', '::1', '0x7f000001', '127.1'])('IP literal %j → misdirected, naming the authority as sent', (authority) => {
      expect(resolve(table, authority, 0)).toEqual({ kind: 'misdirected', why: 'ip-literal', name: authority });
    });

    it.each([
      ['evil.com', 'evil.com'],
      ['EVIL.com:80', 'evil.com'],
      ['localhost.evil.com', 'localhost.evil.com'],
      ['evillocalhost', 'evillocalhost'],
      ['api.feature-x.localhost.evil.com', 'api.feature-x.localhost.evil.com'],
    ])('%j → misdirected: not a localhost name (DNS rebinding)', (authority, name) => {
      expect(resolve(table, authority, 0)).toEqual({ kind: 'misdirected', why: 'not-localhost', name });
    });

    it('a name outside localhost is refused before the certificate is asked', () => {
      let asked = false;
      const spyTls: TlsConnection = { sni: 'evil.com', certificateCovers: () => (asked = true) };
      expect(resolve(table, 'evil.com', 0, spyTls)).toMatchObject({ why: 'not-localhost' });
      expect(asked).toBe(false);
    });

    it('over TLS, a host the connection certificate does not cover → misdirected, naming the SNI', () => {
      expect(resolve(table, 'api.contoso.localhost', 0, tls('ui.feature-x.localhost'))).toEqual({
        kind: 'misdirected',
        why: 'other-certificate',
        name: 'api.contoso.localhost',
        sni: 'ui.feature-x.localhost',
      });
    });

    it('over TLS without SNI (an IP-literal client, localhost certificate), a route host is misdirected', () => {
      expect(resolve(table, 'api.feature-x.localhost', 0, tls(undefined))).toEqual({
        kind: 'misdirected',
        why: 'other-certificate',
        name: 'api.feature-x.localhost',
        sni: undefined,
      });
    });

    it('the certificate check comes before the landing page: a worktree certificate does not cover localhost', () => {
      expect(resolve(table, 'localhost', 0, tls('api.feature-x.localhost'))).toMatchObject({ kind: 'misdirected', why: 'other-certificate' });
      expect(resolve(table, 'localhost', 0, tls(undefined))).toEqual({ kind: 'landing' });
      expect(resolve(table, 'localhost', 0, tls('localhost'))).toEqual({ kind: 'landing' });
    });

    it('a sibling host the wildcard covers is served on the same connection (h2 reuse), whatever the SNI case', () => {
      expect(resolve(table, 'api.feature-x.localhost', 0, tls('UI.Feature-X.localhost'))).toEqual(routeOf('api.feature-x.localhost'));
      expect(resolve(table, 'api.feature-x.localhost:8443', 0, tls('api.feature-x.localhost.'))).toEqual(routeOf('api.feature-x.localhost'));
    });
  });

  describe('unknown', () => {
    it.each([
      ['web.feature-x.localhost', 'web.feature-x.localhost'],
      ['api.localhost', 'api.localhost'],
      ['Nope.Localhost:3000', 'nope.localhost'],
      // `_` is read from clients (README, Routing rules): it reaches the 404 that lists the routes.
      ['my_service.feature-x.localhost', 'my_service.feature-x.localhost'],
    ])('%j → unknown %s', (authority, host) => {
      expect(resolve(table, authority, 0)).toEqual({ kind: 'unknown', host });
    });
  });

  describe('unavailable', () => {
    it('a route without target → unavailable, with the route (its problem says why)', () => {
      const route = table.routes.get('ui.feature-x.localhost')!;
      expect(resolve(table, 'ui.feature-x.localhost', 0)).toEqual({ kind: 'unavailable', route });
      expect(route.problem?.message).toContain('exited with code 1');
    });

    it('is answered before the loop check', () => {
      expect(resolve(table, 'ui.feature-x.localhost', MAX_PROXY_HOPS)).toMatchObject({ kind: 'unavailable' });
    });
  });

  describe('loop', () => {
    it(`the ${MAX_PROXY_HOPS}th hop through devproxy → loop, with the route and the count`, () => {
      const route = table.routes.get('api.feature-x.localhost')!;
      expect(resolve(table, 'api.feature-x.localhost', MAX_PROXY_HOPS)).toEqual({ kind: 'loop', route, hops: MAX_PROXY_HOPS });
      expect(resolve(table, 'api.feature-x.localhost', MAX_PROXY_HOPS + 10)).toEqual({ kind: 'loop', route, hops: MAX_PROXY_HOPS + 10 });
    });

    it('one hop fewer is still routed', () => {
      expect(resolve(table, 'api.feature-x.localhost', MAX_PROXY_HOPS - 1)).toEqual(routeOf('api.feature-x.localhost'));
    });
  });
});

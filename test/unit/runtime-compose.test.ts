import { describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import {
  LABEL_REPO,
  LABEL_SERVICE,
  LABEL_SLUG,
  LABEL_WORKTREE,
  composeProjectName,
  containerPortOf,
  deriveComposeDocument,
  isDerivedFor,
  lastLines,
  type ComposeServicePlan,
} from '../../runtime/compose.js';

const base = { repo: '/r', worktreePath: '/r.worktrees/feat', slug: 'feat' };

function derive(services: Record<string, unknown>, managed: Record<string, ComposeServicePlan>, env?: Record<string, string>) {
  const opts = { ...base, managed: new Map(Object.entries(managed)), ...(env ? { env } : {}) };
  const out = deriveComposeDocument({ version: '3.8', services }, opts);
  return out.services as Record<string, Record<string, unknown>>;
}

describe('containerPortOf', () => {
  it.each([
    [3000, ['3000']],
    ['3000', ['3000']],
    ['8080:3000', ['3000']],
    ['127.0.0.1:8080:3000', ['3000']],
    ['127.0.0.1::3000', ['3000']],
    ['[::1]:8080:3000', ['3000']],
    ['5353:53/udp', ['53/udp']],
    ['9000-9001:3000-3001', ['3000-3001']],
    [{ target: 3000, published: 80 }, ['3000']],
    [{ target: 53, protocol: 'udp' }, ['53/udp']],
    [{ published: 80 }, []],
    [null, []],
  ])('%j → %j', (entry, expected) => {
    expect(containerPortOf(entry)).toEqual(expected);
  });
});

describe('deriveComposeDocument', () => {
  it('replaces fixed host ports with Docker-assigned loopback ports and drops container_name', () => {
    const out = derive(
      { web: { image: 'x', container_name: 'web', ports: ['8080:3000', { target: 9229, published: 9229 }] } },
      { web: { service: 'ui', containerPort: 3000 } },
    );
    expect(out.web!.ports).toEqual(['127.0.0.1::3000', '127.0.0.1::9229']);
    expect(out.web).not.toHaveProperty('container_name');
  });

  it('publishes the routed container port even when the compose file does not', () => {
    const out = derive({ api: { image: 'x' } }, { api: { service: 'api', containerPort: 8080 } });
    expect(out.api!.ports).toEqual(['127.0.0.1::8080']);
  });

  it('adds ownership labels to list- or map-style labels, keeping the user ones', () => {
    const out = derive(
      { a: { image: 'x', labels: ['team=core', 'flag'] }, b: { image: 'x', labels: { team: 'edge' } } },
      { a: { service: 'svc-a', containerPort: 1 }, b: { service: 'svc-b', containerPort: 2 } },
    );
    expect(out.a!.labels).toEqual({ team: 'core', flag: '', [LABEL_REPO]: '/r', [LABEL_WORKTREE]: '/r.worktrees/feat', [LABEL_SERVICE]: 'svc-a', [LABEL_SLUG]: 'feat' });
    expect(out.b!.labels).toMatchObject({ team: 'edge', [LABEL_SERVICE]: 'svc-b' });
  });

  it('sets mem_limit from the memory budget and merges extra env', () => {
    const out = derive(
      { a: { image: 'x', environment: ['A=1', 'B=2'] } },
      { a: { service: 'a', containerPort: 1, memoryBytes: 268435456 } },
      { B: 'over', C: '3' },
    );
    expect(out.a!.mem_limit).toBe(268435456);
    expect(out.a!.memswap_limit).toBe(268435456);
    expect(out.a!.environment).toEqual({ A: '1', B: 'over', C: '3' });
  });

  it('runs host-network services on the allocated port, injected as PORT, with no published ports', () => {
    const out = derive(
      { h: { image: 'x', network_mode: 'host', ports: ['3000:3000'] } },
      { h: { service: 'h', containerPort: 3000, hostPort: 41234 } },
    );
    expect(out.h).not.toHaveProperty('ports');
    expect(out.h!.environment).toEqual({ PORT: '41234' });
  });

  it('rewrites the ports of unmanaged services too, but labels only managed ones', () => {
    const out = derive({ db: { image: 'x', ports: ['5432:5432'] }, a: { image: 'x' } }, { a: { service: 'a', containerPort: 1 } });
    expect(out.db!.ports).toEqual(['127.0.0.1::5432']);
    expect(out.db).not.toHaveProperty('labels');
  });

  it('carries other top-level keys and fields over untouched', () => {
    const doc = { version: '2.4', networks: { n: {} }, services: { a: { image: 'x', command: ['sh', '-c', 'echo $$HOME'], depends_on: ['db'] } } };
    const out = deriveComposeDocument(doc, { ...base, managed: new Map() });
    expect(out.version).toBe('2.4');
    expect(out.networks).toEqual({ n: {} });
    expect((out.services as Record<string, Record<string, unknown>>).a!.command).toEqual(['sh', '-c', 'echo $$HOME']);
    expect(doc.services.a).not.toHaveProperty('labels');
  });
});

describe('isDerivedFor', () => {
  // As the sweep reads it: the derived document written to YAML and parsed back.
  const written = (managed: Record<string, ComposeServicePlan>): unknown =>
    parse(stringify(deriveComposeDocument({ services: { web: { image: 'x' }, db: { image: 'y' } } }, { ...base, managed: new Map(Object.entries(managed)) })));

  it('names the worktree whose services it labels, and no other (not the main checkout it lies under)', () => {
    const doc = written({ web: { service: 'ui', containerPort: 3000 } });
    expect(isDerivedFor(doc, base.worktreePath)).toBe(true);
    expect(isDerivedFor(doc, base.repo)).toBe(false);
    expect(isDerivedFor(doc, `${base.worktreePath}-2`)).toBe(false);
  });

  it('names no worktree when no service is managed, or when the file is no compose document', () => {
    expect(isDerivedFor(written({}), base.worktreePath)).toBe(false);
    expect(isDerivedFor(null, base.worktreePath)).toBe(false);
    expect(isDerivedFor({ services: ['web'] }, base.worktreePath)).toBe(false);
    expect(isDerivedFor({ services: { web: { labels: [`${LABEL_WORKTREE}=${base.worktreePath}`] } } }, base.worktreePath)).toBe(true);
  });
});

describe('composeProjectName', () => {
  it.each([
    ['contoso', 'feature-x', 'contoso-feature-x'],
    ['Contoso App', 'Feat.1', 'contoso-app-feat-1'],
    ['_x', 'y', 'x-y'],
  ])('%s + %s → %s', (project, slug, expected) => {
    expect(composeProjectName(project, slug)).toBe(expected);
  });
});

describe('lastLines', () => {
  it('answers the last non-empty lines', () => {
    expect(lastLines('a\n\nb\r\nc\n\n', 2)).toEqual(['b', 'c']);
  });
});

import { describe, expect, it } from 'vitest';
import { validateConfig } from '../../profiles/validate-config.js';
import type { Instance } from '../../runtime/instance.js';
import { deadLeftovers, liveServices, localDefinitionOf, planReconcile } from '../../runtime/plan.js';

describe('planReconcile', () => {
  it.each([
    { desired: [], running: [], start: [], stop: [], keep: [] },
    { desired: ['ui'], running: [], start: ['ui'], stop: [], keep: [] },
    { desired: [], running: ['ui', 'api'], start: [], stop: ['ui', 'api'], keep: [] },
    { desired: ['ui', 'api'], running: ['ui'], start: ['api'], stop: [], keep: ['ui'] },
    { desired: ['ui', 'pipeline'], running: ['ui', 'api'], start: ['pipeline'], stop: ['api'], keep: ['ui'] },
    { desired: ['api', 'ui', 'api'], running: ['ui', 'ui'], start: ['api'], stop: [], keep: ['ui'] },
  ])('$desired over $running', ({ desired, running, start, stop, keep }) => {
    expect(planReconcile(desired, running)).toEqual({ start, stop, keep });
  });

  it('never starts or stops a service that stays local', () => {
    const plan = planReconcile(['a', 'b', 'c'], ['c', 'b', 'x']);
    expect(plan.keep.sort()).toEqual(['b', 'c']);
    expect(plan.start).toEqual(['a']);
    expect(plan.stop).toEqual(['x']);
    for (const s of plan.keep) {
      expect(plan.start).not.toContain(s);
      expect(plan.stop).not.toContain(s);
    }
  });
});

describe('what a reconcile sees', () => {
  const inst = (service: string, state: Instance['state'], drain = false): Instance => ({ service, kind: 'command', state, check: { kind: 'tcp' }, ...(drain ? { drain: new AbortController() } : {}) });

  it('counts running and draining instances as live, not failed or stopped ones', () => {
    const instances = [inst('ui', 'healthy'), inst('api', 'starting'), inst('db', 'unhealthy'), inst('old', 'stopping', true), inst('gone', 'stopping'), inst('bad', 'failed')];
    expect(liveServices(instances)).toEqual(['ui', 'api', 'db', 'old']);
  });

  it('removes unwanted instances that are neither running nor draining', () => {
    const instances = [inst('bad', 'failed'), inst('wanted', 'failed'), inst('ui', 'healthy'), inst('old', 'stopping', true)];
    expect(deadLeftovers(instances, ['wanted']).map((i) => i.service)).toEqual(['bad']);
  });
});

describe('localDefinitionOf', () => {
  const result = validateConfig(
    JSON.stringify({ name: 'p', services: { api: { local: { command: 'run', port: 4000 } }, docs: { remote: 'https://docs.example.test' } } }),
    'devproxy.yaml',
  );
  const config = result.config!;

  it('answers the local definition', () => {
    expect(localDefinitionOf(config, 'api').local).toMatchObject({ kind: 'command', command: 'run', port: 4000 });
  });

  it('names the known services for an unknown one', () => {
    expect(() => localDefinitionOf(config, 'nope')).toThrow('service "nope" is not defined in devproxy.yaml (known: api, docs)');
  });

  it('says a remote-only service cannot run locally, and how to fix it', () => {
    expect(() => localDefinitionOf(config, 'docs')).toThrow(expect.objectContaining({ code: 'DEVPROXY_ERR_UNKNOWN_SERVICE', hint: expect.stringContaining('add `local:`') }));
  });
});

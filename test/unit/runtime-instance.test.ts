import { describe, expect, it } from 'vitest';
import { endDrain, healthyPorts, isRunning, markFailed, markHealthy, markStopping, toStatus, type Instance } from '../../runtime/instance.js';

function instance(over: Partial<Instance> = {}): Instance {
  return { service: 'api', kind: 'command', state: 'starting', check: { kind: 'tcp' }, ...over };
}

describe('instance record', () => {
  it('counts starting, healthy and unhealthy as running, not failed, stopping or stopped', () => {
    const states = ['starting', 'healthy', 'unhealthy', 'failed', 'stopping', 'stopped'] as const;
    expect(states.filter((state) => isRunning(instance({ state })))).toEqual(['starting', 'healthy', 'unhealthy']);
  });

  it('reports only the fields it has, as copies', () => {
    const inst = instance({ port: 41000, lastLogLines: ['a'], cause: ['b'], process: { pid: 7 } as Instance['process'] });
    const status = toStatus(inst);
    expect(status).toEqual({ service: 'api', kind: 'command', state: 'starting', port: 41000, lastLogLines: ['a'], cause: ['b'], pid: 7 });
    status.lastLogLines!.push('changed');
    expect(inst.lastLogLines).toEqual(['a']);
    expect(toStatus(instance({ kind: 'compose', containerId: 'c1', memoryBytes: 5 }))).toEqual({ service: 'api', kind: 'compose', state: 'starting', containerId: 'c1', memoryBytes: 5 });
  });

  it('fails with the cause found in the longer scanned output, and ends the health watch', () => {
    const watch = new AbortController();
    const inst = instance({ watch });
    markFailed(inst, '`npm run dev` exited with code 1', ['last line'], ['Error: missing API_KEY', 'last line']);
    expect(inst).toMatchObject({ state: 'failed', detail: '`npm run dev` exited with code 1', lastLogLines: ['last line'], cause: ['Error: missing API_KEY', 'last line'] });
    expect(watch.signal.aborted).toBe(true);
  });

  it('forgets why it failed once healthy', () => {
    const inst = instance({ state: 'unhealthy', detail: 'no answer', lastLogLines: ['x'], cause: ['x'] });
    markHealthy(inst);
    expect(inst).toEqual(instance({ state: 'healthy' }));
  });

  it('stops routing and watching when it starts stopping', () => {
    const watch = new AbortController();
    const inst = instance({ state: 'healthy', watch });
    markStopping(inst);
    expect(inst.state).toBe('stopping');
    expect(watch.signal.aborted).toBe(true);
  });

  it('cancels a drain by removing and aborting it', () => {
    const drain = new AbortController();
    const inst = instance({ drain });
    endDrain(inst);
    expect(inst.drain).toBeUndefined();
    expect(drain.signal.aborted).toBe(true);
    expect(() => endDrain(inst)).not.toThrow();
  });

  it('routes to healthy instances with a port only', () => {
    const ports = healthyPorts([
      instance({ service: 'ui', state: 'healthy', port: 41001 }),
      instance({ service: 'api', state: 'unhealthy', port: 41002 }),
      instance({ service: 'db', state: 'healthy' }),
      instance({ service: 'queue', state: 'starting', port: 41003 }),
    ]);
    expect([...ports]).toEqual([['ui', 41001]]);
  });
});

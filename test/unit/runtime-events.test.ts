import { describe, expect, it } from 'vitest';
import type { OwnedContainerEvent } from '../../runtime/docker-observer.js';
import { ChangeSignal, containerExitDetail, processExitDetail, readContainerEvent } from '../../runtime/events.js';
import type { Instance } from '../../runtime/instance.js';

function container(state: Instance['state'], over: Partial<Instance> = {}): Instance {
  return { service: 'ui', kind: 'compose', state, check: { kind: 'http-any' }, containerId: 'c1', port: 41000, ...over };
}

function event(action: string, over: Partial<OwnedContainerEvent> = {}): OwnedContainerEvent {
  return { action, containerId: 'c1', worktreePath: '/w', service: 'ui', ...over };
}

describe('readContainerEvent', () => {
  it.each([
    { name: 'an OOM kill is remembered for the die that follows', inst: container('healthy'), ev: event('oom'), reading: 'oom' },
    { name: 'a running container that dies failed', inst: container('healthy'), ev: event('die', { exitCode: 1 }), reading: 'died' },
    { name: 'a starting container that dies failed', inst: container('starting'), ev: event('die'), reading: 'died' },
    { name: 'a die while stopping is the stop itself', inst: container('stopping'), ev: event('die'), reading: 'ignore' },
    { name: 'a failed container started by its restart policy is watched again', inst: container('failed'), ev: event('start'), reading: 'restarted' },
    { name: 'a start of a running one changes nothing', inst: container('starting'), ev: event('start'), reading: 'ignore' },
    { name: 'its own health check turns a healthy one unhealthy', inst: container('healthy'), ev: event('health_status', { health: 'unhealthy' }), reading: 'unhealthy' },
    { name: 'and an unhealthy one with a port healthy again', inst: container('unhealthy'), ev: event('health_status', { health: 'healthy' }), reading: 'healthy' },
    { name: 'but not one without a port', inst: container('unhealthy', { port: undefined }), ev: event('health_status', { health: 'healthy' }), reading: 'ignore' },
    { name: 'health "starting" changes nothing', inst: container('healthy'), ev: event('health_status', { health: 'starting' }), reading: 'ignore' },
    { name: 'an event of another container of the service (an old one) is ignored', inst: container('healthy'), ev: event('die', { containerId: 'old' }), reading: 'ignore' },
    { name: 'a process instance is not a container', inst: container('healthy', { kind: 'command' }), ev: event('die'), reading: 'ignore' },
    { name: 'an untracked service is ignored', inst: undefined, ev: event('die'), reading: 'ignore' },
  ])('$name', ({ inst, ev, reading }) => {
    expect(readContainerEvent(inst, ev)).toBe(reading);
  });
});

describe('exit details', () => {
  it('says how a process ended', () => {
    expect(processExitDetail('npm run dev', 3, null)).toBe('`npm run dev` exited with code 3');
    expect(processExitDetail('npm run dev', null, 'SIGKILL')).toBe('`npm run dev` was killed by SIGKILL');
    expect(processExitDetail('npm run dev', null, null)).toBe('`npm run dev` exited');
  });

  it('says how a container ended, with the fix for an OOM kill', () => {
    expect(containerExitDetail(2, false)).toBe('container exited with code 2');
    expect(containerExitDetail(undefined, false)).toBe('container exited');
    expect(containerExitDetail(137, true)).toBe('container exited with code 137 (out of memory: raise `memory:` of the service in devproxy.yaml)');
  });
});

describe('ChangeSignal', () => {
  it('calls the listener until closed', () => {
    let calls = 0;
    const signal = new ChangeSignal(() => calls++, undefined);
    signal.emit();
    signal.emit();
    signal.close();
    signal.emit();
    expect(calls).toBe(2);
  });

  it('logs a throwing listener instead of throwing into the runtime', () => {
    const errors: string[] = [];
    const signal = new ChangeSignal(
      () => {
        throw new Error('table rebuild failed');
      },
      { info: () => undefined, warn: () => undefined, error: (m: string) => void errors.push(m) },
    );
    expect(() => signal.emit()).not.toThrow();
    expect(errors).toEqual(['runtime: onChange failed: table rebuild failed']);
  });
});

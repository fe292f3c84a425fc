import { describe, expect, it } from 'vitest';
import { describeCheck, healthCheckFor, unhealthyDetail } from '../../runtime/health.js';

describe('health checks in messages', () => {
  it('names the probe', () => {
    expect(describeCheck(healthCheckFor('healthz'))).toBe('GET /healthz');
    expect(describeCheck(healthCheckFor(undefined, 'http-any'))).toBe('any HTTP answer');
    expect(describeCheck(healthCheckFor(undefined))).toBe('TCP connect');
  });

  it('says what was probed, for how long, and how to allow more time', () => {
    expect(unhealthyDetail({ port: 41000, timeoutMs: 60_000, check: { kind: 'http', path: '/healthz' }, isProcess: false })).toBe(
      'no healthy answer on 127.0.0.1:41000 within 60 s (GET /healthz): raise `health: { timeout: … }` if it starts slowly',
    );
  });

  it('adds, for a process, that it listens on no TCP port (a mismatch would have been named instead)', () => {
    expect(unhealthyDetail({ port: 41000, timeoutMs: 1_400, check: { kind: 'tcp' }, isProcess: true })).toBe(
      'no healthy answer on 127.0.0.1:41000 within 1 s (TCP connect), and it listens on no TCP port: raise `health: { timeout: … }` if it starts slowly',
    );
  });

  it('says a container has no host port yet', () => {
    expect(unhealthyDetail({ port: undefined, timeoutMs: 60_000, check: { kind: 'http-any' }, isProcess: false })).toBe('no host port yet');
  });
});

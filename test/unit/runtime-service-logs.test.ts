import { describe, expect, it } from 'vitest';
import type { Instance } from '../../runtime/instance.js';
import type { ProcessRecord } from '../../runtime/processes.js';
import { logSourceOf } from '../../runtime/service-logs.js';

const logFile = (slug: string, service: string): string => `/home/logs/${slug}-${service}.log`;
const record = { slug: 'feat', logFile: '/home/logs/feat-api.log', pid: 9 } as ProcessRecord;

function inst(over: Partial<Instance>): Instance {
  return { service: 'api', kind: 'command', state: 'healthy', check: { kind: 'tcp' }, ...over };
}

describe('logSourceOf', () => {
  it('reads a running process from its own log file', () => {
    expect(logSourceOf({ worktreePath: '/w', service: 'api', inst: inst({ process: record }) }, logFile)).toEqual({ kind: 'file', file: '/home/logs/feat-api.log' });
  });

  it('reads a command service that is not running from the file it wrote', () => {
    expect(logSourceOf({ worktreePath: '/w', service: 'api', local: { kind: 'command', command: 'run' }, slug: 'feat' }, logFile)).toEqual({ kind: 'file', file: '/home/logs/feat-api.log' });
  });

  it('reads a container instance from its container', () => {
    expect(logSourceOf({ worktreePath: '/w', service: 'ui', inst: inst({ kind: 'compose', containerId: 'c1' }) }, logFile)).toEqual({ kind: 'container', containerId: 'c1' });
  });

  it('leaves a compose service without an instance to the engine', () => {
    expect(logSourceOf({ worktreePath: '/w', service: 'ui', local: { kind: 'compose', compose: 'ui', port: 80 }, slug: 'feat' }, logFile)).toBeUndefined();
  });

  it('says a user-run port service has no logs here', () => {
    expect(() => logSourceOf({ worktreePath: '/w', service: 'db', local: { kind: 'port', port: 5432 }, slug: 'feat' }, logFile)).toThrow('db runs outside devproxy (local port 5432); it has no logs here');
  });

  it('names an unknown worktree for a command service', () => {
    expect(() => logSourceOf({ worktreePath: '/nowhere', service: 'api', local: { kind: 'command', command: 'run' } }, logFile)).toThrow(expect.objectContaining({ code: 'DEVPROXY_ERR_UNKNOWN_WORKTREE' }));
  });
});

import { describe, expect, it } from 'vitest';
import { foldLines, renderStatus } from '../../cli/format.js';
import type { ServiceStatus, StatusReport } from '../../workspace/status.js';

const FAILURE = 'the local process of "api" failed: `node api.js` exited with code 1\nlast output:\nError: listen EADDRINUSE\n    at Server.listen (node:net:1)';

function service(name: string, problem: ServiceStatus['problem']): ServiceStatus {
  return { name, host: `${name}.x.localhost`, url: `http://${name}.x.localhost:7080`, httpsUrl: null, route: 'remote', desired: 'local', target: problem ? null : 'https://dev.example', health: 'not-checked', problem, insecure: false, state: 'starting' };
}

const report: StatusReport = {
  daemon: { running: true, pid: 1, httpPort: 7080, httpsPort: null, version: '0.0.0' },
  worktrees: [{ name: 'x', path: '/r/x', repo: '/r', branch: 'x', main: false, profile: 'standard', profiles: ['standard'], down: false, reconciling: false, services: [service('api', { message: FAILURE, hint: 'read the logs' }), service('ui', null)], diagnostics: [], memory: { usedBytes: null, profileBytes: 0, fullBytes: 0 } }],
  diagnostics: [{ file: '/r/devproxy.yaml', line: 3, column: 1, field: 'services', message: 'bad\nsecond line', hint: 'fix it', text: '/r/devproxy.yaml:3:1 services: bad\nsecond line — fix it' }],
};

describe('status folding', () => {
  it.each([
    { text: 'one line', folded: 'one line' },
    { text: 'first\nsecond', folded: 'first [+1 line: status --verbose]' },
    { text: '\nfirst\r\n\nsecond\nthird\n', folded: 'first [+2 lines: status --verbose]' },
    { text: '', folded: '' },
  ])('folds $text', ({ text, folded }) => {
    expect(foldLines(text)).toBe(folded);
  });

  it('keeps one table line per service and one line per problem', () => {
    const lines = renderStatus(report).split('\n');
    const api = lines.filter((l) => l.includes(' api '));
    expect(api).toHaveLength(1);
    expect(api[0]).toContain('(the local process of "api" failed: `node api.js` exited with code 1 [+3 lines: status --verbose])');
    expect(lines.some((l) => l.includes('EADDRINUSE'))).toBe(false);
    expect(lines.some((l) => l.trim() === 'second line — fix it')).toBe(false);
    expect(lines).toContain('  error: /r/devproxy.yaml:3:1 services: bad [+1 line: status --verbose]');
  });

  it('--verbose prints the full text under the table', () => {
    const text = renderStatus(report, { verbose: true });
    expect(text).toContain('Details:\n  api in x:\n    the local process of "api" failed: `node api.js` exited with code 1\n    last output:\n    Error: listen EADDRINUSE\n        at Server.listen (node:net:1)');
    expect(text).toContain('  error: /r/devproxy.yaml:3:1 services: bad\n    second line — fix it');
  });
});

import { describe, expect, it } from 'vitest';
import { causeLines } from '../../runtime/failure-cause.js';

describe('causeLines', () => {
  it('keeps npm\'s error and drops its usage text (the regression: "last output" was the option list)', () => {
    // Real output of `npm ci` (npm 11) in a folder without a lock file.
    const npm = [
      'npm error code EUSAGE',
      'npm error',
      'npm error The `npm ci` command can only install with an existing package-lock.json or',
      'npm error npm-shrinkwrap.json with lockfileVersion >= 1. Run an install with npm@5 or',
      'npm error later to generate a package-lock.json file, then try again.',
      'npm error',
      'npm error Clean install a project',
      'npm error',
      'npm error Usage:',
      'npm error npm ci',
      'npm error',
      'npm error Options:',
      'npm error [--install-strategy <hoisted|nested|shallow|linked>] [--legacy-bundling]',
      'npm error [--no-bin-links] [--no-fund] [--dry-run]',
      'npm error',
      'npm error Run "npm help ci" for more info',
      'npm error A complete log of this run can be found in: /root/.npm/_logs/x-debug-0.log',
    ];
    expect(causeLines(npm)).toEqual([
      'npm error code EUSAGE',
      'npm error The `npm ci` command can only install with an existing package-lock.json or',
      'npm error npm-shrinkwrap.json with lockfileVersion >= 1. Run an install with npm@5 or',
      'npm error later to generate a package-lock.json file, then try again.',
      'npm error Clean install a project',
    ]);
  });

  it('finds the error line of a Node crash without its stack frames', () => {
    const node = [
      '> api@1.0.0 dev',
      '> node server.js',
      'node:events:497',
      '      throw er; // Unhandled \'error\' event',
      '      ^',
      '',
      'Error: listen EADDRINUSE: address already in use :::3000',
      '    at Server.setupListenHandle [as _listen2] (node:net:1908:16)',
      '    at listenInCluster (node:net:1965:12)',
      'Node.js v20.20.2',
    ];
    const cause = causeLines(node);
    expect(cause).toContain('Error: listen EADDRINUSE: address already in use :::3000');
    expect(cause.some((line) => line.includes(' at '))).toBe(false);
    expect(cause).not.toContain('> node server.js');
  });

  it('is the shell\'s own message for a missing command', () => {
    expect(causeLines(['sh: 1: vite: not found'])).toEqual(['sh: 1: vite: not found']);
  });

  it('falls back to the last lines when nothing names an error', () => {
    const lines = Array.from({ length: 30 }, (_, i) => `line ${i}`);
    expect(causeLines(lines, 3)).toEqual(['line 27', 'line 28', 'line 29']);
  });

  it('shows at most max lines from the first error line on', () => {
    expect(causeLines(['ok', 'Error: boom', 'a', 'b', 'c'], 2)).toEqual(['Error: boom', 'a']);
  });
});

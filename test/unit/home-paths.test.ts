import { homedir } from 'node:os';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import { composeFilePath, devproxyHome, homePaths, serviceLogPath, setupLogPath } from '../../home-paths.js';

const HOME = '/h/.devproxy';

describe('homePaths', () => {
  it('names the files the README documents, relative to the home', () => {
    const rel = Object.fromEntries(Object.entries(homePaths(HOME)).map(([key, path]) => [key, relative(HOME, path)]));
    expect(rel).toEqual({
      home: '',
      daemon: 'daemon.json',
      daemonLock: 'daemon.json.lock',
      admin: 'admin.json',
      open: 'open',
      dashboardRedirect: join('open', 'dashboard.html'),
      repos: 'repos.json',
      reposLock: 'repos.json.lock',
      down: 'down.json',
      downLock: 'down.json.lock',
      ports: 'ports.json',
      processes: 'processes.json',
      logs: 'logs',
      daemonLog: join('logs', 'daemon.log'),
      compose: 'compose',
      certs: 'certs',
      caCert: join('certs', 'ca.pem'),
      caKey: join('certs', 'ca-key.pem'),
      caLock: join('certs', '.ca.lock'),
      leaves: join('certs', 'leaves'),
    });
  });

  it('gives every file its own path', () => {
    const paths = Object.values(homePaths(HOME));
    expect(new Set(paths).size).toBe(paths.length);
  });

  it('puts per-service, set-up and Compose files in their folders', () => {
    expect(serviceLogPath(HOME, 'feature-x', 'api')).toBe(join(HOME, 'logs', 'feature-x-api.log'));
    expect(setupLogPath(HOME, 'feature-x')).toBe(join(HOME, 'logs', 'feature-x-setup.log'));
    expect(composeFilePath(HOME, 'contoso-feature-x')).toBe(join(HOME, 'compose', 'contoso-feature-x.compose.yaml'));
  });
});

describe('devproxyHome', () => {
  it('is $DEVPROXY_HOME when set, else ~/.devproxy', () => {
    expect(devproxyHome({ DEVPROXY_HOME: '/tmp/dp' })).toBe('/tmp/dp');
    expect(devproxyHome({ DEVPROXY_HOME: '' })).toBe(join(homedir(), '.devproxy'));
    expect(devproxyHome({})).toBe(join(homedir(), '.devproxy'));
  });
});

import { describe, expect, it } from 'vitest';
import { nextProfile, planProfileChange } from '../../workspace/profile-change.js';
import type { ProfileFile } from '../../profiles/schema.js';
import { validateConfig } from '../../profiles/validate-config.js';

const config = validateConfig(
  `name: shop
services:
  ui: { local: { port: 3000 }, remote: https://ui-dev.example.com }
  api: { local: { port: 8080 }, remote: https://api-dev.example.com }
  pipeline: { local: { port: 7000 }, remote: https://pipeline-dev.example.com }
profiles:
  minimal: [ui]
  standard: [ui, api]
default: minimal
`,
  '/repo/devproxy.yaml',
).config!;

const current: ProfileFile = { profile: 'minimal', name: 'renamed', services: new Map([['pipeline', 'local']]) };

describe('nextProfile', () => {
  it('a new profile clears earlier overrides (name: stays in the file: only profile and services change)', () => {
    const { next, validated } = nextProfile(config, current, { profile: 'standard' }, '/wt', 'profile: minimal\nname: renamed\nservices: { pipeline: local }\n');
    expect(next).toEqual({ profile: 'standard', services: new Map() });
    expect(validated.profile).toBe('standard');
  });

  it('overrides alone keep the profile and the earlier overrides', () => {
    const { next } = nextProfile(config, current, { services: [['api', 'local']] }, '/wt', null);
    expect(next.profile).toBe('minimal');
    expect([...next.services]).toEqual([['pipeline', 'local'], ['api', 'local']]);
  });

  it.each([
    [{}, 'DEVPROXY_ERR_USAGE', 'name a profile'],
    [{ profile: 'standrad' }, 'DEVPROXY_ERR_UNKNOWN_PROFILE', 'did you mean "standard"?'],
    [{ services: [['apii', 'local']] as const }, 'DEVPROXY_ERR_UNKNOWN_SERVICE', 'did you mean "api"?'],
  ])('%j is refused with %s', (request, code, text) => {
    let thrown: { code?: string; message: string; hint?: string } | undefined;
    try {
      nextProfile(config, current, request, '/wt', null);
    } catch (error) {
      thrown = error as typeof thrown;
    }
    expect(thrown?.code).toBe(code);
    expect(`${thrown?.message} ${thrown?.hint}`).toContain(text);
  });
});

describe('planProfileChange', () => {
  it('lists the instances to start, stop and keep and the routes that flip', () => {
    const { validated } = nextProfile(config, undefined, { profile: 'standard' }, '/wt', null);
    expect(planProfileChange(config, current, validated)).toEqual({
      local: ['ui', 'api'],
      start: ['api'],
      stop: ['pipeline'],
      keep: ['ui'],
      routes: [
        { service: 'api', from: 'remote', to: 'local' },
        { service: 'pipeline', from: 'local', to: 'remote' },
      ],
    });
  });

  it('plans from what runs when the daemon says so', () => {
    const { validated } = nextProfile(config, undefined, { profile: 'standard' }, '/wt', null);
    expect(planProfileChange(config, undefined, validated, ['ui', 'api'])).toMatchObject({ start: [], stop: [], keep: ['ui', 'api'] });
  });
});

import { describe, expect, it } from 'vitest';
import { formatDiagnostic } from '../../profiles/schema.js';
import { validateConfig } from '../../profiles/validate-config.js';
import { validateProfile } from '../../profiles/validate-profile.js';
import { localServices } from '../../router/profile-resolution.js';

const config = validateConfig(
  `name: contoso
services:
  ui: { local: { port: 3000 }, remote: https://ui-dev.example.com }
  api: { local: { port: 8080 }, remote: https://api-dev.example.com }
  pipeline: { local: { port: 7000 } }
  cosmos: { remote: https://cosmos-dev.example.com }
profiles:
  minimal: [ui]
  standard: [ui, api]
  full: [ui, api, pipeline]
default: minimal
`,
  '/repo/devproxy.yaml',
).config!;
const FILE = '/wt/.devproxy/profile.yaml';

describe('validateProfile', () => {
  it('reads profile, name and overrides', () => {
    const { profile, errors } = validateProfile('profile: standard\nname: feature-x\nservices:\n  api: remote\n  pipeline: local\n', FILE, config);
    expect(errors).toEqual([]);
    expect(profile).toEqual({ profile: 'standard', name: 'feature-x', services: new Map([['api', 'remote'], ['pipeline', 'local']]) });
  });

  it.each([
    ['an unknown profile', 'profile: standrd\n', `${FILE}:1:10 profile: unknown profile "standrd" — did you mean "standard"? profiles in devproxy.yaml: minimal, standard, full, remote`],
    ['no profile', 'name: x\n', `${FILE}:1:1 profile: the file names no profile — add \`profile: <name>\` (one of: minimal, standard, full, remote)`],
    ['an unknown service', 'profile: minimal\nservices:\n  apu: local\n', `${FILE}:3:3 services.apu: unknown service "apu" — did you mean "api"?`],
    ['a bad route', 'profile: minimal\nservices:\n  api: cloud\n', `${FILE}:3:8 services.api: "cloud" is not a route — write \`local\` or \`remote\``],
    ['local for a remote-only service', 'profile: minimal\nservices:\n  cosmos: local\n', `${FILE}:3:11 services.cosmos: service "cosmos" has no local definition — add \`local:\` to services.cosmos in devproxy.yaml, or route it remote`],
    ['remote for a local-only service', 'profile: minimal\nservices:\n  pipeline: remote\n', `${FILE}:3:13 services.pipeline: service "pipeline" has no remote endpoint — add \`remote: <url>\` to services.pipeline in devproxy.yaml, or route it local`],
    ['a bad name', 'profile: minimal\nname: Feature_X\n', `${FILE}:2:7 name: "Feature_X" cannot be used in a hostname — use lower-case letters, digits and hyphens, e.g. \`name: feature-x\``],
    ['truncated YAML', 'profile: [minimal\n', `${FILE}:2:1 YAML syntax error:`],
  ])('rejects %s', (_case, text, expected) => {
    const { profile, errors } = validateProfile(text, FILE, config);
    expect(profile).toBeUndefined();
    expect(formatDiagnostic(errors[0]!)).toContain(expected);
  });
});

describe('localServices', () => {
  it('uses the default profile without a file', () => {
    expect(localServices(config, undefined)).toEqual(['ui']);
  });
  it('applies overrides on top of the profile, in config order', () => {
    expect(localServices(config, { profile: 'standard', services: new Map([['ui', 'remote'], ['pipeline', 'local']]) })).toEqual(['api', 'pipeline']);
  });
  it('runs nothing locally under the built-in remote profile', () => {
    expect(localServices(config, { profile: 'remote', services: new Map() })).toEqual([]);
  });
});

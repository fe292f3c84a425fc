import { describe, expect, it } from 'vitest';
import { editProfileText } from '../../profiles/profile-edit.js';
import type { RouteMode } from '../../profiles/schema.js';
import { validateConfig } from '../../profiles/validate-config.js';
import { PROFILE_KEYS, validateProfile } from '../../profiles/validate-profile.js';

const config = validateConfig(
  `name: contoso
services:
  ui: { local: { port: 3000 }, remote: https://ui-dev.example.com }
  api: { local: { port: 8080 }, remote: https://api-dev.example.com }
  blob: { local: { port: 10000 }, remote: https://contosodev.blob.core.windows.net, writes: read-only }
profiles:
  minimal: [ui]
  standard: [ui, api]
default: minimal
`,
  '/repo/devproxy.yaml',
).config!;
const FILE = '/wt/.devproxy/profile.yaml';

/** A hand-written profile file with every key of the schema, comments and a key of a newer devproxy. */
const EVERY_KEY = `# my profile: keep blob writable, I own the test container
profile: minimal # switched by use
name: feature-x
services:
  api: remote # pinned while the local api is broken
writes:
  blob: read-write # uploads from this worktree
futureKey: { keep: me }
`;

const overrides = (entries: Array<[string, RouteMode]>) => new Map(entries);

describe('editProfileText (what `use` writes)', () => {
  it('the fixture covers every key of the profile schema', () => {
    const { profile, errors } = validateProfile(EVERY_KEY, FILE, config);
    expect(errors).toEqual([]);
    for (const key of PROFILE_KEYS) expect(EVERY_KEY).toMatch(new RegExp(`^${key}:`, 'm'));
    expect(profile?.writes).toEqual(new Map([['blob', 'read-write']]));
  });

  it.each([
    ['use <profile> (overrides cleared)', { profile: 'standard', services: overrides([]) }, { profile: 'standard', services: new Map() }],
    ['use --service ui=local (profile kept, override added)', { profile: 'minimal', services: overrides([['api', 'remote'], ['ui', 'local']]) }, { profile: 'minimal', services: new Map([['api', 'remote'], ['ui', 'local']]) }],
    ['use <profile> --service api=local (both)', { profile: 'standard', services: overrides([['api', 'local']]) }, { profile: 'standard', services: new Map([['api', 'local']]) }],
  ])('%s keeps every key it does not change, with comments', (_case, change, expected) => {
    const text = editProfileText(EVERY_KEY, change);
    const { profile, errors, warnings } = validateProfile(text, FILE, config);
    expect(errors).toEqual([]);
    expect(profile).toEqual({ ...expected, name: 'feature-x', writes: new Map([['blob', 'read-write']]) });
    expect(warnings.map((w) => w.field)).toEqual(['futureKey']);
    expect(text).toContain('# my profile: keep blob writable, I own the test container');
    expect(text).toContain('blob: read-write # uploads from this worktree');
    expect(text).toContain('futureKey: { keep: me }');
    expect(text).toContain('# switched by use');
    expect(text.indexOf('name:')).toBeLessThan(text.indexOf('writes:'));
  });

  it('keeps the comment of an override that stays, and drops an override that goes', () => {
    const kept = editProfileText(EVERY_KEY, { profile: 'minimal', services: overrides([['api', 'remote']]) });
    expect(kept).toContain('api: remote # pinned while the local api is broken');
    const changed = editProfileText(EVERY_KEY, { profile: 'minimal', services: overrides([['ui', 'local']]) });
    expect(changed).not.toContain('api:');
    expect(changed).toMatch(/^services:\n {2}ui: local$/m);
  });

  it('writes a fresh file with a header when there is none, or when the old one is not a mapping', () => {
    for (const current of [null, '', '- a list\n', 'profile: [broken\n']) {
      const text = editProfileText(current, { profile: 'standard', services: overrides([['api', 'remote']]) });
      expect(text).toBe('# devproxy live profile: edit by hand or with `devproxy use <profile>`; applied at once.\nprofile: standard\nservices:\n  api: remote\n');
    }
  });

  it('sets name only when asked', () => {
    expect(editProfileText('profile: minimal\n', { profile: 'minimal', name: 'x' })).toBe('profile: minimal\nname: x\n');
    expect(editProfileText('profile: minimal\nname: y\n', { profile: 'standard' })).toBe('profile: standard\nname: y\n');
  });
});

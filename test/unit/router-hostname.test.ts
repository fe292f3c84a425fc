import { describe, expect, it } from 'vitest';
import { isLocalhostName, isNameLabel, normaliseServername, parseHost, toSlug, type ParsedHost } from '../../hostname.js';

const cases: [string | undefined, ParsedHost][] = [
  ['api.feature-x.localhost', { ok: true, host: 'api.feature-x.localhost' }],
  ['API.Feature-X.LOCALHOST', { ok: true, host: 'api.feature-x.localhost' }],
  ['api.feature-x.localhost:8080', { ok: true, host: 'api.feature-x.localhost', port: 8080 }],
  ['api.feature-x.localhost.', { ok: true, host: 'api.feature-x.localhost' }],
  ['api.feature-x.localhost.:443', { ok: true, host: 'api.feature-x.localhost', port: 443 }],
  ['localhost', { ok: true, host: 'localhost' }],
  ['my_service.wt.localhost', { ok: true, host: 'my_service.wt.localhost' }],
  ['evil.com', { ok: true, host: 'evil.com' }],
  [undefined, { ok: false, reason: 'missing' }],
  ['', { ok: false, reason: 'missing' }],
  ['   ', { ok: false, reason: 'missing' }],
  ['127.0.0.1', { ok: false, reason: 'ip-literal' }],
  ['127.0.0.1:8080', { ok: false, reason: 'ip-literal' }],
  ['127.1', { ok: false, reason: 'ip-literal' }],
  ['0x7f000001', { ok: false, reason: 'ip-literal' }],
  ['[::1]', { ok: false, reason: 'ip-literal' }],
  ['[::1]:8080', { ok: false, reason: 'ip-literal' }],
  ['::1', { ok: false, reason: 'ip-literal' }],
  ['api.localhost:', { ok: false, reason: 'invalid' }],
  ['api.localhost:http', { ok: false, reason: 'invalid' }],
  ['api.localhost:70000', { ok: false, reason: 'invalid' }],
  ['api..localhost', { ok: false, reason: 'invalid' }],
  ['.localhost', { ok: false, reason: 'invalid' }],
  ['.', { ok: false, reason: 'invalid' }],
  ['api.localhost..', { ok: false, reason: 'invalid' }],
  ['-api.localhost', { ok: false, reason: 'invalid' }],
  ['api-.localhost', { ok: false, reason: 'invalid' }],
  ['a pi.localhost', { ok: false, reason: 'invalid' }],
  ['api.localhost/path', { ok: false, reason: 'invalid' }],
  ['user@api.localhost', { ok: false, reason: 'invalid' }],
  ['<script>.localhost', { ok: false, reason: 'invalid' }],
  [`${'a'.repeat(64)}.localhost`, { ok: false, reason: 'invalid' }],
  [`${'a.'.repeat(123)}localhost`, { ok: false, reason: 'invalid' }],
];

describe('parseHost', () => {
  it.each(cases)('%j → %j', (value, expected) => {
    expect(parseHost(value)).toEqual(expected);
  });

  it('accepts a 253-character name', () => {
    const name = `${'a'.repeat(63)}.${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(51)}.localhost`;
    expect(name.length).toBe(253);
    expect(parseHost(name)).toEqual({ ok: true, host: name });
  });
});

describe('isLocalhostName', () => {
  it.each([
    ['localhost', true],
    ['api.feature-x.localhost', true],
    ['API.Feature-X.LOCALHOST.', true],
    ['localhost.', true],
    ['localhost..', false],
    ['localhost.evil.com', false],
    ['localhost.example.com', false],
    ['evillocalhost', false],
    ['notlocalhost', false],
    ['evil.com', false],
    ['example.com', false],
    ['', false],
  ])('%s → %s', (host, expected) => {
    expect(isLocalhostName(host)).toBe(expected);
  });
});

describe('the `_` decision: names devproxy makes are RFC 1123 labels, names clients send may hold `_`', () => {
  it.each([
    ['api', true],
    ['feature-x', true],
    ['a', true],
    ['0', true],
    ['a1-b2', true],
    ['a--b', true],
    ['a'.repeat(63), true],
    ['a'.repeat(64), false],
    ['my_service', false],
    ['_dmarc', false],
    ['Api', false],
    ['-api', false],
    ['api-', false],
    ['api.x', false],
    ['', false],
    ['ap i', false],
  ])('isNameLabel(%j) → %s', (label, expected) => {
    expect(isNameLabel(label)).toBe(expected);
  });

  it('a slug never holds `_`: it folds it to a hyphen, so every slug is a name label', () => {
    expect(toSlug('feature/my_branch')).toBe('my-branch');
    for (const name of ['feature/My_Branch', 'x/__init__', 'a_b_c', 'fix/ISSUE_42', `long/${'a_'.repeat(40)}`]) {
      const slug = toSlug(name);
      expect(slug === '' || isNameLabel(slug), `${name} → ${slug}`).toBe(true);
    }
  });

  it('a Host with `_` parses (browsers send it) and so reaches the 404 listing the routes, not a 400', () => {
    expect(parseHost('my_service.feature-x.localhost')).toEqual({ ok: true, host: 'my_service.feature-x.localhost' });
    expect(normaliseServername('my_service.feature-x.localhost')).toBe('my_service.feature-x.localhost');
  });
});

describe('normaliseServername', () => {
  it.each([
    ['api.feature-x.localhost', 'api.feature-x.localhost'],
    ['API.Feature-X.localhost.', 'api.feature-x.localhost'],
    ['localhost', 'localhost'],
    ['../etc/passwd', undefined],
    ['a b.localhost', undefined],
    ['a..localhost', undefined],
    ['api.localhost..', undefined],
    ['-api.localhost', undefined],
    ['api-.localhost', undefined],
    ['api.x-.localhost', undefined],
    ['a-b.c--d.localhost', 'a-b.c--d.localhost'],
    ['_a_.localhost', '_a_.localhost'],
    ['api.localhost/x', undefined],
    ['api.loc@lhost', undefined],
    [`${'a'.repeat(64)}.localhost`, undefined],
    [`${'a.'.repeat(123)}localhost`, undefined],
    ['', undefined],
  ])('%j → %j', (servername, expected) => {
    expect(normaliseServername(servername)).toBe(expected);
  });
});

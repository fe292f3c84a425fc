import { describe, expect, it } from 'vitest';
import { isLocalhostName, parseHost, type ParsedHost } from '../../proxy/host-header.js';

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
    ['localhost.evil.com', false],
    ['evillocalhost', false],
    ['evil.com', false],
  ])('%s → %s', (host, expected) => {
    expect(isLocalhostName(host)).toBe(expected);
  });
});

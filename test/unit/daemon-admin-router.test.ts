import { describe, expect, it } from 'vitest';
import { errorReply, match, mediaType, parseTarget } from '../../daemon/admin-router.js';
import { DevproxyError } from '../../errors.js';

const ROUTES = [
  { method: 'GET', pattern: '/' },
  { method: 'GET', pattern: '/api/status' },
  { method: 'POST', pattern: '/api/stop' },
  { method: 'GET', pattern: '/api/requests' },
  { method: 'GET', pattern: '/api/requests/:seq' },
  { method: 'PUT', pattern: '/api/requests/recording' },
];

/** The pattern `target` reaches with `method`, or undefined. */
function routed(method: string, target: string): string | undefined {
  const { segments } = parseTarget(target);
  return segments === undefined ? undefined : match(ROUTES, method, segments)?.route.pattern;
}

describe('the admin router matches a path exactly, as find-my-way did', () => {
  it.each([
    ['/api/status', '/api/status'],
    ['/api/status?probe=0', '/api/status'],
    ['/api/status#x', '/api/status'],
    ['/%61pi/status', '/api/status'],
    ['/%61%70%69/%73tatus', '/api/status'],
    ['http://127.0.0.1:1/api/status', '/api/status'],
    ['HTTP://127.0.0.1:1/api/status', '/api/status'],
    ['http://evil.example/api/status', '/api/status'],
    ['http://user:pw@127.0.0.1:1/api/status', '/api/status'],
    ['https://x/api/status', '/api/status'],
    ['/', '/'],
    ['/?x=1', '/'],
    ['http://127.0.0.1:1/', '/'],
  ])('%s reaches %s', (target, pattern) => {
    expect(routed('GET', target)).toBe(pattern);
  });

  it.each([
    '/api%2fstatus',
    '/API/STATUS',
    '/Api/Status',
    '//api/status',
    '/api//status',
    '/./api/status',
    '/x/../api/status',
    '/x/%2e%2e/api/status',
    '/api/status/',
    '/api/status;x=1',
    '/api/status%23x',
    '//',
    '/%2F',
    '/;x',
    '/api',
    '/api/',
    '*',
    'http://127.0.0.1:1',
    'ftp://x/api/status',
    'api/status',
  ])('%s reaches no route', (target) => {
    expect(routed('GET', target)).toBeUndefined();
  });

  it('HEAD reaches GET routes only; other methods need their own route', () => {
    expect(routed('HEAD', '/api/status')).toBe('/api/status');
    expect(routed('HEAD', '/api/stop')).toBeUndefined();
    expect(routed('POST', '/api/status')).toBeUndefined();
    expect(routed('DELETE', '/api/status')).toBeUndefined();
    expect(routed('POST', '/api/stop')).toBe('/api/stop');
    expect(routed('PUT', '/api/requests/recording')).toBe('/api/requests/recording');
  });

  it('a `:param` takes one decoded segment, `%2F` included, and nothing across a `/`', () => {
    const params = (target: string) => match(ROUTES, 'GET', parseTarget(target).segments!)?.params;
    expect(params('/api/requests/12')).toEqual({ seq: '12' });
    expect(params('/api/requests/%31')).toEqual({ seq: '1' });
    expect(params('/api/requests/a%2Fb')).toEqual({ seq: 'a/b' });
    expect(params('/api/requests/')).toEqual({ seq: '' });
    expect(params('/api/requests/1;x')).toEqual({ seq: '1;x' });
    expect(params('/api/requests/1/')).toBeUndefined();
    expect(match(ROUTES, 'GET', parseTarget('/api/requests/recording').segments!)?.params).toEqual({ seq: 'recording' });
  });

  it('a malformed percent-escape is flagged (400), not matched or thrown', () => {
    expect(parseTarget('/%zz')).toEqual({ segments: undefined, malformed: true, query: '' });
    expect(parseTarget('/api/status%e0?x=1')).toEqual({ segments: undefined, malformed: true, query: 'x=1' });
    expect(parseTarget('/api/status?probe=%zz').malformed).toBe(false);
  });

  it('keeps the raw query after the first `?`', () => {
    expect(parseTarget('/api/logs?path=/w&service=a').query).toBe('path=/w&service=a');
    expect(parseTarget('/api/status?probe=0#x').query).toBe('probe=0#x');
    expect(parseTarget('/api/status#x?probe=0').query).toBe('');
    expect(parseTarget('/api/status').query).toBe('');
  });
});

describe('mediaType', () => {
  it.each([
    ['application/json', 'application/json'],
    ['application/json; charset=utf-8', 'application/json'],
    ['Application/JSON', 'application/json'],
    ['application/json ; charset=utf-8', 'application/json'],
    ['application/vnd.api+json', 'application/vnd.api+json'],
    ['', ''],
  ])('%j is %j', (header, type) => {
    expect(mediaType(header)).toBe(type);
  });

  it('is undefined without the header', () => {
    expect(mediaType(undefined)).toBeUndefined();
  });
});

describe('errorReply', () => {
  it('answers a devproxy error with its catalogue status, code and hint', () => {
    const [status, body] = errorReply(new DevproxyError('DEVPROXY_ERR_UNKNOWN_SERVICE', 'service "nope"'));
    expect(status).toBe(404);
    expect(body.error).toMatchObject({ code: 'DEVPROXY_ERR_UNKNOWN_SERVICE', message: 'service "nope"' });
    expect(body.error.hint).toContain('devproxy.yaml');
  });

  it('answers a profile changed by someone else meanwhile with 409, as a conflict the caller resolves, never a 500', () => {
    expect(errorReply(new DevproxyError('DEVPROXY_ERR_PROFILE_CHANGED', 'moved'))[0]).toBe(409);
  });

  it('keeps a 4xx status set on the error, and takes any other status from the catalogue', () => {
    expect(errorReply(Object.assign(new DevproxyError('DEVPROXY_ERR_PROFILE_CHANGED', 'moved'), { statusCode: 409 }))[0]).toBe(409);
    expect(errorReply(Object.assign(new DevproxyError('DEVPROXY_ERR_CONFIG_INVALID', 'no valid devproxy.yaml'), { statusCode: 409 }))[0]).toBe(409);
    expect(errorReply(Object.assign(new DevproxyError('DEVPROXY_ERR_USAGE', 'x'), { statusCode: 502 }))[0]).toBe(400);
    expect(errorReply(new DevproxyError('DEVPROXY_ERR_DOCKER_UNAVAILABLE', 'away'))[0]).toBe(503);
  });

  it('answers an unexpected error 500 with the internal code and no hint', () => {
    expect(errorReply(new Error('kaboom'))).toEqual([500, { error: { code: 'DEVPROXY_ERR_INTERNAL', message: 'kaboom', hint: null } }]);
  });
});

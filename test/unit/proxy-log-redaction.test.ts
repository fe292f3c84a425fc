import { describe, expect, it } from 'vitest';
import { isSecretHeader, isSecretParam, REDACTED, redactPath } from '../../proxy/log-redaction.js';

describe('isSecretHeader', () => {
  it.each([
    'Authorization', 'proxy-authorization', 'Cookie', 'set-cookie',
    'x-api-key', 'api-key', 'apikey', 'x-functions-key', 'Ocp-Apim-Subscription-Key',
    'x-ms-encryption-key', 'x-ms-copy-source-authorization', 'x-ms-token-aad-access-token', 'x-amz-security-token', 'x-goog-api-key', 'x-csrf-token', 'x_client_secret', 'x-upstream-password',
  ])('%s is secret', (name) => expect(isSecretHeader(name)).toBe(true));

  it.each(['host', 'accept', 'content-type', 'x-ms-version', 'x-ms-client-request-id', 'www-authenticate', 'sec-websocket-key', 'keep-alive', 'x-forwarded-for', 'monkey'])('%s is shown', (name) => expect(isSecretHeader(name)).toBe(false));
});

describe('isSecretParam', () => {
  it.each(['sig', 'SIG', 'code', 'token', 'access_token', 'id_token', 'refresh_token', 'api_key', 'apikey', 'key', 'secret', 'client_secret', 'password', 'pwd', 'subscription-key', 'sas_token', 'x-api-key', 'auth'])('%s is secret', (name) => expect(isSecretParam(name)).toBe(true));

  it.each(['sv', 'se', 'sp', 'sr', 'name', 'page', 'error_code', 'keyword', 'monkey', 'q'])('%s is shown', (name) => expect(isSecretParam(name)).toBe(false));
});

describe('redactPath', () => {
  it('replaces the value of each secret parameter and keeps names, order and every other parameter', () => {
    expect(redactPath('/api/HttpTrigger?code=abc%3D%3D&name=x')).toBe(`/api/HttpTrigger?code=${REDACTED}&name=x`);
    expect(redactPath('/c/b.txt?sv=2024-01-01&se=2030-01-01T00%3A00Z&sp=r&sig=AbC%2Bd%3D')).toBe(`/c/b.txt?sv=2024-01-01&se=2030-01-01T00%3A00Z&sp=r&sig=${REDACTED}`);
    expect(redactPath('/cb?state=s1&code=c1&access_token=t1&token=t2&api_key=k&password=p&secret=s')).toBe(
      `/cb?state=s1&code=${REDACTED}&access_token=${REDACTED}&token=${REDACTED}&api_key=${REDACTED}&password=${REDACTED}&secret=${REDACTED}`,
    );
  });

  it('reads names as the server decodes them: an escaped or differently cased name is still caught', () => {
    expect(redactPath('/x?%73ig=v1&SI%47=v2&Code=v3')).toBe(`/x?%73ig=${REDACTED}&SI%47=${REDACTED}&Code=${REDACTED}`);
    // A malformed escape is compared raw and does not throw.
    expect(redactPath('/x?%zz=v&sig=w')).toBe(`/x?%zz=v&sig=${REDACTED}`);
  });

  it('catches every repeat of a parameter, and leaves empty values and bare names as they are', () => {
    expect(redactPath('/x?sig=a&sig=b')).toBe(`/x?sig=${REDACTED}&sig=${REDACTED}`);
    expect(redactPath('/x?sig=&code&a=1')).toBe('/x?sig=&code&a=1');
  });

  it('answers a path without a query, or without a secret in it, unchanged (the same string)', () => {
    for (const path of ['/', '/api/users/42', '/x?', '/x?page=2&q=code', '/x?sig']) expect(redactPath(path)).toBe(path);
  });
});

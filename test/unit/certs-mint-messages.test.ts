import { describe, expect, it } from 'vitest';
import { fromWireError, toWireError } from '../../certs/mint-messages.js';
import { DevproxyError } from '../../errors.js';

/** What crossing the thread boundary does to a wire error: a structured clone. */
const acrossThreads = (error: unknown): Error => fromWireError(structuredClone(toWireError(error)));

describe('errors from the certificate worker', () => {
  it('come back as the same DevproxyError: code, message, hint', () => {
    const thrown = new DevproxyError('DEVPROXY_ERR_CA_CORRUPT', 'the devproxy CA in /h/certs is unusable: ca.pem expired', { hint: 'a custom hint' });
    const received = acrossThreads(thrown);
    expect(received).toBeInstanceOf(DevproxyError);
    expect(received).toMatchObject({ name: 'DevproxyError', code: 'DEVPROXY_ERR_CA_CORRUPT', message: thrown.message, hint: 'a custom hint' });
    expect(received.stack).toBe(thrown.stack);
  });

  it('keep the catalogue hint when the error used it', () => {
    const received = acrossThreads(new DevproxyError('DEVPROXY_ERR_CERT_UNKNOWN_HOST', 'no certificate for "x"'));
    expect(received).toMatchObject({ code: 'DEVPROXY_ERR_CERT_UNKNOWN_HOST', hint: new DevproxyError('DEVPROXY_ERR_CERT_UNKNOWN_HOST', '').hint });
  });

  it('come back as the same built-in class with the same message', () => {
    const received = acrossThreads(new TypeError('issueLeafCertificate needs at least one name'));
    expect(received).toBeInstanceOf(TypeError);
    expect(received.message).toBe('issueLeafCertificate needs at least one name');
  });

  it("keep a Node error's name and code (OpenSSL failures carry ERR_OSSL_…)", () => {
    const thrown = Object.assign(new Error('error:1E08010C:DECODER routines::unsupported'), { code: 'ERR_OSSL_UNSUPPORTED' });
    const received = acrossThreads(thrown);
    expect(received).toBeInstanceOf(Error);
    expect(received).toMatchObject({ name: 'Error', message: thrown.message, code: 'ERR_OSSL_UNSUPPORTED' });
  });

  it('keep an unknown class by name, and a code outside the catalogue as a plain code', () => {
    class OperationError extends Error {
      override name = 'OperationError';
    }
    const received = acrossThreads(Object.assign(new OperationError('bad key'), { code: 'DEVPROXY_ERR_NOT_IN_THE_CATALOGUE' }));
    expect(received).not.toBeInstanceOf(DevproxyError);
    expect(received).toMatchObject({ name: 'OperationError', message: 'bad key', code: 'DEVPROXY_ERR_NOT_IN_THE_CATALOGUE' });
  });

  it('turn a thrown non-error into an Error with its text', () => {
    expect(acrossThreads('plain string')).toMatchObject({ name: 'Error', message: 'plain string' });
  });
});

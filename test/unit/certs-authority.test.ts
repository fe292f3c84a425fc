import { X509Certificate } from 'node:crypto';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import * as tls from 'node:tls';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createCertificateAuthority, issueLeafCertificate, type PemPair } from '../../certs/authority.js';

let ca: PemPair;
const servers: tls.Server[] = [];

beforeAll(async () => {
  ca = await createCertificateAuthority({ commonName: 'devproxy local CA (tester@box)' });
});

afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => new Promise((r) => s.close(r))));
});

/** Handshakes with a tls server holding `leaf`; resolves to the client's verdict. */
async function handshake(leaf: PemPair, servername: string, trusted: string[]): Promise<string | null> {
  const server = tls.createServer({ cert: leaf.certPem, key: leaf.keyPem }, (socket) => socket.end('hi'));
  servers.push(server);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  return await new Promise((resolve) => {
    const socket = tls.connect({ host: '127.0.0.1', port, servername, ca: trusted }, () => {
      resolve(socket.authorized ? null : String(socket.authorizationError));
      socket.destroy();
    });
    socket.on('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? error.message));
  });
}

describe('createCertificateAuthority', () => {
  it('mints a CA that says devproxy, may sign, and is self-signed', () => {
    const cert = new X509Certificate(ca.certPem);
    expect(cert.ca).toBe(true);
    expect(cert.subject).toContain('CN=devproxy local CA (tester@box)');
    expect(cert.checkIssued(cert)).toBe(true);
    expect(cert.verify(cert.publicKey)).toBe(true);
    expect(ca.keyPem).toMatch(/^-----BEGIN PRIVATE KEY-----/);
  });
});

describe('issueLeafCertificate', () => {
  it('signs a wildcard leaf with DNS and IP SANs that node verifies against the CA', async () => {
    const leaf = await issueLeafCertificate(ca, ['*.feature-x.localhost', 'feature-x.localhost', '127.0.0.1']);
    const cert = new X509Certificate(leaf.certPem);
    const caCert = new X509Certificate(ca.certPem);
    expect(cert.verify(caCert.publicKey)).toBe(true);
    expect(cert.checkIssued(caCert)).toBe(true);
    expect(cert.ca).toBe(false);
    expect(cert.checkHost('api.feature-x.localhost')).toBe('*.feature-x.localhost');
    expect(cert.checkHost('feature-x.localhost')).toBe('feature-x.localhost');
    expect(cert.checkHost('a.b.feature-x.localhost')).toBeUndefined();
    expect(cert.checkHost('api.other.localhost')).toBeUndefined();
    expect(cert.checkIP('127.0.0.1')).toBe('127.0.0.1');
    expect(cert.keyUsage).toEqual(['1.3.6.1.5.5.7.3.1']);
  });

  it('is trusted by a tls client that is given the CA, and only then', async () => {
    const leaf = await issueLeafCertificate(ca, ['*.feature-x.localhost']);
    expect(await handshake(leaf, 'api.feature-x.localhost', [ca.certPem])).toBeNull();
    const stranger = await createCertificateAuthority({ commonName: 'someone else' });
    expect(await handshake(leaf, 'api.feature-x.localhost', [stranger.certPem])).toMatch(/UNABLE_TO_VERIFY|unable/i);
    expect(await handshake(leaf, 'api.other.localhost', [ca.certPem])).toMatch(/ERR_TLS_CERT_ALTNAME_INVALID|altname/i);
  });

  it('honours an explicit validity window (an expired leaf stays expired)', async () => {
    const notBefore = new Date('2020-01-01T00:00:00Z');
    const notAfter = new Date('2020-02-01T00:00:00Z');
    const leaf = await issueLeafCertificate(ca, ['localhost'], { notBefore, notAfter });
    const cert = new X509Certificate(leaf.certPem);
    expect(new Date(cert.validTo).getTime()).toBe(notAfter.getTime());
    expect(await handshake(leaf, 'localhost', [ca.certPem])).toMatch(/CERT_HAS_EXPIRED/);
  });
});

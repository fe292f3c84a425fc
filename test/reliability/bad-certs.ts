/**
 * Certificates that must fail verification, for the TLS fault tests: a leaf that expired
 * yesterday (signed by a CA the proxy trusts; devproxy's own minting) and a self-signed leaf
 * (no CA at all, which devproxy never mints, hence @peculiar/x509 directly).
 */
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { webcrypto } from 'node:crypto';
import { createCertificateAuthority, issueLeafCertificate } from '../../certs/authority.js';
import type { TestTls } from '../helpers/upstreams.js';

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

const ALGORITHM = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
const DAY_MS = 86_400_000;

async function keys(): Promise<webcrypto.CryptoKeyPair> {
  return (await webcrypto.subtle.generateKey(ALGORITHM, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
}

async function pkcs8Pem(key: webcrypto.CryptoKey): Promise<string> {
  return x509.PemConverter.encode(await webcrypto.subtle.exportKey('pkcs8', key), 'PRIVATE KEY');
}

/** A CA valid today and a leaf for `dnsName` signed by it that expired a day ago. */
export async function createExpiredTls(dnsName: string): Promise<TestTls> {
  const ca = await createCertificateAuthority({ commonName: 'devproxy expired-test CA', validityDays: 30 });
  const leaf = await issueLeafCertificate(ca, [dnsName], { notBefore: new Date(Date.now() - 10 * DAY_MS), notAfter: new Date(Date.now() - DAY_MS) });
  return { caPem: ca.certPem, certPem: leaf.certPem, keyPem: leaf.keyPem };
}

/** A self-signed leaf for `dnsName`; `caPem` is the leaf itself (trusting it is the user's choice). */
export async function createSelfSignedTls(dnsName: string): Promise<TestTls> {
  const leafKeys = await keys();
  const leaf = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: '21',
    name: `CN=${dnsName}`,
    notBefore: new Date(Date.now() - DAY_MS),
    notAfter: new Date(Date.now() + DAY_MS),
    keys: leafKeys,
    signingAlgorithm: ALGORITHM,
    extensions: [
      new x509.BasicConstraintsExtension(false),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
      new x509.SubjectAlternativeNameExtension([{ type: 'dns', value: dnsName }]),
    ],
  });
  return { caPem: leaf.toString('pem'), certPem: leaf.toString('pem'), keyPem: await pkcs8Pem(leafKeys.privateKey) };
}

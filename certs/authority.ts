/**
 * Certificate minting: a local certificate authority and the leaf certificates it signs.
 * Pure crypto, no files: `certs/store.ts` decides where they live and when to renew.
 *
 * ECDSA P-256 everywhere: a leaf takes about 11 ms to mint where RSA-2048 takes about 250 ms,
 * and every browser and node:tls accept it.
 */
// @peculiar/x509 decorates its ASN.1 classes at import time and throws without this polyfill.
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { createPrivateKey, KeyObject, webcrypto } from 'node:crypto';
import { isIP } from 'node:net';

x509.cryptoProvider.set(webcrypto);

/** A certificate and its private key, both PEM (`-----BEGIN CERTIFICATE-----`, PKCS#8 key). */
export interface PemPair {
  certPem: string;
  keyPem: string;
}

/**
 * What mints certificates: this module itself where the process is short-lived (the CLI, tests
 * run from the sources), or the worker process that runs it (`mint-worker-client.ts`) in the daemon,
 * whose main isolate must not keep this module's dependencies loaded.
 */
export interface Minter {
  createCertificateAuthority(opts: { commonName: string; validityDays?: number }): Promise<PemPair>;
  issueLeafCertificate(ca: PemPair, names: string[], opts?: { validityDays?: number; notBefore?: Date; notAfter?: Date }): Promise<PemPair>;
}

/** Default lifetime of the local CA: long, because re-trusting a new CA is a manual step. */
export const CA_VALIDITY_DAYS = 3650;
/** Default lifetime of a leaf: short, because leaves are re-minted silently. */
export const LEAF_VALIDITY_DAYS = 90;

const DAY_MS = 86_400_000;
/** Backdating covers clocks of other processes (VMs, containers) running slightly behind. */
const BACKDATE_MS = 3_600_000;

const EC_P256: webcrypto.EcKeyGenParams = { name: 'ECDSA', namedCurve: 'P-256' };
const SIGNING_ALGORITHM: webcrypto.EcdsaParams = { name: 'ECDSA', hash: 'SHA-256' };

/**
 * Mints a self-signed root CA that may only sign leaves (path length 0).
 * @param opts.commonName subject CN, e.g. `devproxy local CA (alice@laptop)`
 * @param opts.validityDays lifetime in days (default {@link CA_VALIDITY_DAYS})
 */
export async function createCertificateAuthority(opts: {
  commonName: string;
  validityDays?: number;
}): Promise<PemPair> {
  const keys = await generateKeyPair();
  const now = Date.now();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    name: [{ CN: [opts.commonName] }, { O: ['devproxy'] }],
    keys,
    notBefore: new Date(now - BACKDATE_MS),
    notAfter: new Date(now + (opts.validityDays ?? CA_VALIDITY_DAYS) * DAY_MS),
    signingAlgorithm: SIGNING_ALGORITHM,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(
        x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign | x509.KeyUsageFlags.digitalSignature,
        true,
      ),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { certPem: cert.toString('pem'), keyPem: exportKeyPem(keys.privateKey) };
}

/**
 * Mints a TLS server certificate for `names` signed by `ca`. Every name becomes a SAN (IP
 * literals as IP SANs, the rest as DNS names, `*.` wildcards included); the first is the CN.
 * @param opts.validityDays lifetime in days from now (default {@link LEAF_VALIDITY_DAYS})
 * @param opts.notBefore / opts.notAfter explicit validity window (tests mint expired leaves)
 */
export async function issueLeafCertificate(
  ca: PemPair,
  names: string[],
  opts: { validityDays?: number; notBefore?: Date; notAfter?: Date } = {},
): Promise<PemPair> {
  const first = names[0];
  if (first === undefined) throw new TypeError('issueLeafCertificate needs at least one name');
  const caCert = new x509.X509Certificate(ca.certPem);
  const caKey = await importSigningKey(ca.keyPem);
  const keys = await generateKeyPair();
  const now = Date.now();
  const cert = await x509.X509CertificateGenerator.create({
    subject: [{ CN: [first] }],
    issuer: caCert.subjectName,
    publicKey: keys.publicKey,
    signingKey: caKey,
    notBefore: opts.notBefore ?? new Date(now - BACKDATE_MS),
    notAfter: opts.notAfter ?? new Date(now + (opts.validityDays ?? LEAF_VALIDITY_DAYS) * DAY_MS),
    signingAlgorithm: SIGNING_ALGORITHM,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
      new x509.SubjectAlternativeNameExtension(
        names.map((name) => (isIP(name) ? { type: 'ip', value: name } : { type: 'dns', value: name })),
      ),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      await x509.AuthorityKeyIdentifierExtension.create(caCert.publicKey),
    ],
  });
  return { certPem: cert.toString('pem'), keyPem: exportKeyPem(keys.privateKey) };
}

async function generateKeyPair(): Promise<webcrypto.CryptoKeyPair> {
  return await webcrypto.subtle.generateKey(EC_P256, true, ['sign', 'verify']);
}

function exportKeyPem(key: webcrypto.CryptoKey): string {
  return KeyObject.from(key).export({ type: 'pkcs8', format: 'pem' }) as string;
}

/** Node's curve names for the curves WebCrypto can sign with. */
const WEBCRYPTO_CURVES: Record<string, string> = { prime256v1: 'P-256', secp384r1: 'P-384', secp521r1: 'P-521' };

/** Imports an EC CA key from any PEM encoding node:crypto reads (PKCS#8 or SEC1). */
async function importSigningKey(keyPem: string): Promise<webcrypto.CryptoKey> {
  const key = createPrivateKey(keyPem);
  const der = key.export({ type: 'pkcs8', format: 'der' });
  if (key.asymmetricKeyType === 'ec') {
    const namedCurve = WEBCRYPTO_CURVES[key.asymmetricKeyDetails?.namedCurve ?? ''];
    if (namedCurve !== undefined) {
      return await webcrypto.subtle.importKey('pkcs8', der, { name: 'ECDSA', namedCurve }, false, ['sign']);
    }
  }
  throw new TypeError(`unsupported CA key type ${key.asymmetricKeyType ?? 'unknown'}`);
}

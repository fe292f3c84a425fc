/**
 * The TLS policy of devproxy's HTTPS listener: Mozilla's "intermediate" configuration (v5.7),
 * without the DHE suites. TLS 1.2 offers only ECDHE key exchange with AEAD ciphers (no CBC, so no
 * LUCKY13 and no "average" cipher list in testssl.sh); TLS 1.3 offers its three standard suites.
 * Every secure context the listener uses (the default one and each SNI leaf's) is built with it:
 * a context handed out by SNICallback carries its own cipher list.
 */
import type { SecureContextOptions } from 'node:tls';

/** TLS 1.2 suites (OpenSSL names), in Mozilla intermediate's order; the leaves are ECDSA, RSA ones serve a user-supplied key. */
const TLS12_AEAD_SUITES = [
  'ECDHE-ECDSA-AES128-GCM-SHA256',
  'ECDHE-RSA-AES128-GCM-SHA256',
  'ECDHE-ECDSA-AES256-GCM-SHA384',
  'ECDHE-RSA-AES256-GCM-SHA384',
  'ECDHE-ECDSA-CHACHA20-POLY1305',
  'ECDHE-RSA-CHACHA20-POLY1305',
];

/** TLS 1.3 suites; OpenSSL takes them in the same `ciphers` string as Node passes it. */
const TLS13_SUITES = ['TLS_AES_128_GCM_SHA256', 'TLS_AES_256_GCM_SHA384', 'TLS_CHACHA20_POLY1305_SHA256'];

/** Options merged into every server-side secure context of the HTTPS listener. */
export const SERVER_TLS_POLICY: Readonly<Pick<SecureContextOptions, 'minVersion' | 'ciphers' | 'ecdhCurve' | 'honorCipherOrder'>> = {
  minVersion: 'TLSv1.2',
  ciphers: [...TLS13_SUITES, ...TLS12_AEAD_SUITES].join(':'),
  ecdhCurve: 'X25519:prime256v1:secp384r1',
  // The server's order (AES-GCM, then ChaCha20) decides: testssl.sh flags a server without one.
  honorCipherOrder: true,
};

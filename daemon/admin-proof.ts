/**
 * How the admin API proves to the dashboard page that it knows the admin token, without the
 * token crossing the wire. The page sends a fresh random nonce; the daemon answers
 * HMAC-SHA256(token, PROOF_CONTEXT + nonce + ":" + the port it listens on); the page computes the
 * same with WebCrypto for the port it was loaded from and sends its token only on a match.
 * Another local user who binds the port while the daemon is down cannot answer (no token), nor
 * relay the nonce to the real daemon on another port (its answer names that port). Pure.
 */
import { createHmac } from 'node:crypto';

/** The path of the proof route: public (no token), outside `/api/`, GET only. */
export const PROOF_PATH = '/proof';

/** Prefixed to every proved message, so a proof is never an HMAC of anything else devproxy signs. */
export const PROOF_CONTEXT = 'devproxy-admin-proof:';

/** A nonce is exactly 32 random bytes in lower-case hex: fixed length, so nonce and port cannot be shifted into each other. */
const NONCE = /^[0-9a-f]{64}$/;

/** True when `value` is a well-formed nonce (the proof route answers 400 to anything else). */
export function isProofNonce(value: string | undefined): value is string {
  return value !== undefined && NONCE.test(value);
}

/** The proof for `nonce` by a daemon holding `token` and listening on `port`: lower-case hex. */
export function adminProof(token: string, nonce: string, port: number): string {
  return createHmac('sha256', token).update(`${PROOF_CONTEXT}${nonce}:${port}`).digest('hex');
}

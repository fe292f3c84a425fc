import { runInNewContext } from 'node:vm';
import { describe, expect, it } from 'vitest';
import { adminProof, isProofNonce, PROOF_PATH } from '../../daemon/admin-proof.js';
import { DASHBOARD_HTML, PROOF_SCRIPT } from '../../daemon/dashboard.js';

const TOKEN = '0123456789abcdef0123456789abcdef0123456789abcdef';
const NONCE = 'ab'.repeat(32);

/** The page's own check, run as the page runs it (WebCrypto), outside a browser. */
const pageProof = runInNewContext(`${PROOF_SCRIPT}; expectedProof`, { crypto: globalThis.crypto, TextEncoder }) as (token: string, nonce: string, port: string) => Promise<string>;

describe('the admin proof (a squatter on the admin port learns nothing usable)', () => {
  it('is HMAC-SHA256 of the token over the context, the nonce and the port (vector from openssl)', () => {
    // printf 'devproxy-admin-proof:<NONCE>:7081' | openssl dgst -sha256 -hmac <TOKEN>
    expect(adminProof(TOKEN, NONCE, 7081)).toBe('385134400ebcb0823a42a8f4460e238ca2d8dd0ec6909f07a0bc5f85dab77489');
  });

  it("the page's WebCrypto check accepts the daemon's proof for the page's own port", async () => {
    expect(await pageProof(TOKEN, NONCE, '7081')).toBe(adminProof(TOKEN, NONCE, 7081));
  });

  it('a proof the real daemon gives on another port does not pass on the page\'s port (relaying the nonce is useless)', async () => {
    expect(await pageProof(TOKEN, NONCE, '7081')).not.toBe(adminProof(TOKEN, NONCE, 7082));
  });

  it('a proof by another token or for another nonce does not pass', async () => {
    const expected = await pageProof(TOKEN, NONCE, '7081');
    expect(adminProof('f'.repeat(48), NONCE, 7081)).not.toBe(expected);
    expect(adminProof(TOKEN, 'cd'.repeat(32), 7081)).not.toBe(expected);
  });

  it('takes only a nonce of exactly 64 lower-case hex digits, so no nonce can carry a port of its own', () => {
    expect(isProofNonce(NONCE)).toBe(true);
    for (const bad of [undefined, '', NONCE.slice(1), `${NONCE}0`, NONCE.toUpperCase(), `${NONCE.slice(2)}:1`, `${NONCE.slice(0, 60)}:708`, 'zz'.repeat(32)]) {
      expect(isProofNonce(bad), String(bad)).toBe(false);
    }
  });

  it('the dashboard page carries the check and asks the proof route', () => {
    expect(DASHBOARD_HTML).toContain(PROOF_SCRIPT);
    expect(DASHBOARD_HTML).toContain(JSON.stringify(PROOF_PATH));
  });
});

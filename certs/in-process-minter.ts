/**
 * Minting in the calling process, for short-lived ones (the CLI's `devproxy trust`, tests run
 * from the sources): no thread to start, and the process exits soon after, taking the minting
 * code with it. The minting code loads on the first mint, so a command that finds its CA on
 * disk never pays for it. The daemon mints in a worker instead (`mint-worker-client.ts`).
 */
import type { Minter } from './authority.js';

const loadAuthority = () => import('./authority.js');

/** `authority.ts` behind a lazy import. */
export const inProcessMinter: Minter = {
  createCertificateAuthority: async (opts) => (await loadAuthority()).createCertificateAuthority(opts),
  issueLeafCertificate: async (ca, names, opts) => (await loadAuthority()).issueLeafCertificate(ca, names, opts),
};

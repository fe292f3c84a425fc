import { access } from 'node:fs/promises';
import { inProcessMinter } from '../../certs/in-process-minter.js';
import { ensureCertificateAuthority, regenerateCertificateAuthority } from '../../certs/store.js';
import { homePaths } from '../../home-paths.js';
import { installTrust, printTrust, uninstallTrust, type TrustStep } from '../../certs/trust.js';

/** Options of `devproxy trust`. */
export interface TrustCommandOptions {
  /** `--uninstall`: remove the CA from every store instead. */
  uninstall?: boolean;
  /** `--print`: only show the CA path and the `NODE_EXTRA_CA_CERTS` line (creating the CA if needed). */
  print?: boolean;
  /** `--regenerate`: untrust the old CA, mint a new one, trust it. */
  regenerate?: boolean;
  /** `--json`: machine-readable output. */
  json?: boolean;
  /** commander's `--no-system` sets this to false: browsers' NSS databases only, the OS store untouched. */
  system?: boolean;
  /** `$DEVPROXY_HOME`. */
  home: string;
}

/**
 * `devproxy trust`: installs the devproxy CA (created on first use) in the OS store and the
 * NSS databases found, and returns what to print: every step done or not, with the command to
 * run where privileges were missing. Throws `DEVPROXY_ERR_CA_CORRUPT` for an unusable CA.
 */
export async function trust(opts: TrustCommandOptions): Promise<string> {
  const caPath = homePaths(opts.home).caCert;
  let created = false;
  let steps: TrustStep[] = [];
  const targets: Array<'system' | 'nss'> = opts.system === false ? ['nss'] : ['system', 'nss'];
  if (opts.uninstall) {
    steps = await uninstallTrust({ caPath, targets });
  } else if (opts.regenerate) {
    // Untrust first: once replaced, the old CA's file is gone and stores keyed by it cannot be cleaned.
    const hadCa = await access(caPath).then(
      () => true,
      () => false,
    );
    const untrusted = hadCa ? await uninstallTrust({ caPath, targets }) : [];
    await regenerateCertificateAuthority(opts.home, inProcessMinter);
    created = true;
    steps = [...untrusted, ...(await installTrust({ caPath, targets }))];
  } else {
    created = (await ensureCertificateAuthority(opts.home, inProcessMinter)).created;
    if (!opts.print) steps = await installTrust({ caPath, targets });
  }
  const { nodeExtraCaCerts } = printTrust({ caPath });
  if (opts.json) return JSON.stringify({ caPath, created, nodeExtraCaCerts, steps }, null, 2);

  const lines = [`devproxy CA: ${caPath}${created ? ' (new)' : ''}`];
  for (const step of steps) lines.push(`${step.done ? '✓' : '✗'} ${step.target}: ${step.detail}`);
  if (!opts.uninstall) lines.push('', 'Node apps trust it with:', `  ${nodeExtraCaCerts}`);
  // A running daemon holds the old CA and its leaves in memory.
  if (opts.regenerate) lines.push('', 'Restart a running proxy to serve certificates from the new CA: `devproxy proxy stop && devproxy proxy start`.');
  if (steps.some((step) => !step.done)) lines.push('', 'Some stores were not changed: run the commands shown above, then `devproxy trust` again.');
  return lines.join('\n');
}

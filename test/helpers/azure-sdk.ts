/**
 * The official Azure Storage clients as an app runs them behind devproxy: `*.localhost` resolved
 * to loopback by devproxy's own lookup (what its NODE_OPTIONS preload installs), and the test's
 * CAs trusted through an https.Agent the client sends every request through (what
 * NODE_EXTRA_CA_CERTS does for an app, which a running test process cannot set).
 */
import dns from 'node:dns';
import { Agent } from 'node:https';
import { installLocalhostLookup } from '../../environment/localhost-lookup.js';

let lookupInstalled = false;

/** Makes `*.localhost` resolve to loopback in this process, once. */
export function resolveLocalhostNames(): void {
  if (lookupInstalled) return;
  installLocalhostLookup(dns);
  lookupInstalled = true;
}

/** Options both Storage SDKs (blob, queue) accept, with the one extra this file needs. */
export interface TrustingOptions {
  agent: Agent;
  retryOptions: { maxTries: number };
}

/**
 * Options for a Storage client (`new BlobServiceClient(url, credential, options)`) whose requests
 * trust `caPems` only. `agent` is not in StoragePipelineOptions' type, but the SDK hands its
 * options to core-rest-pipeline's createPipelineFromOptions, which sends every request through
 * it (agentPolicy). No retries: a refusal must surface at once, and a retried PUT would hide
 * what was sent. Destroy `agent` when done.
 */
export function trustingOptions(caPems: string[]): TrustingOptions {
  return { agent: new Agent({ keepAlive: true, ca: caPems }), retryOptions: { maxTries: 1 } };
}

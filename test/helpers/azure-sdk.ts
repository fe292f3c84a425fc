/**
 * The official Azure Storage clients as an app runs them behind devproxy: `*.localhost` resolved
 * to loopback by devproxy's own lookup (what its NODE_OPTIONS preload installs), and the test's
 * CAs trusted through an https.Agent the client's pipeline hands to every request (what
 * NODE_EXTRA_CA_CERTS does for an app, which a running test process cannot set).
 */
import dns from 'node:dns';
import { Agent } from 'node:https';
import type { RequestPolicy, RequestPolicyFactory, WebResource } from '@azure/storage-blob';
import { installLocalhostLookup } from '../../environment/localhost-lookup.js';

let lookupInstalled = false;

/** Makes `*.localhost` resolve to loopback in this process, once. */
export function resolveLocalhostNames(): void {
  if (lookupInstalled) return;
  installLocalhostLookup(dns);
  lookupInstalled = true;
}

/** A keep-alive agent trusting `caPems` (PEM text) besides nothing else: every test server has a test CA. */
export function trustingAgent(caPems: string[]): Agent {
  return new Agent({ keepAlive: true, ca: caPems });
}

/**
 * A pipeline policy (the clients' `Pipeline` takes these first in its factories) that sends every
 * request through `agent`. Use: `new Pipeline([useAgent(agent), ...base.factories], base.options)`.
 */
export function useAgent(agent: Agent): RequestPolicyFactory {
  return {
    create: (next: RequestPolicy): RequestPolicy => ({
      sendRequest(request: WebResource) {
        request.agent ??= agent;
        return next.sendRequest(request);
      },
    }),
  };
}

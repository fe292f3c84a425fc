import { chmod, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { startRemote, startRemoteWorktree, type RemoteWorktree } from '../helpers/remote-worktree.js';
import { echoHandler, send, type Upstream } from '../helpers/upstreams.js';

/**
 * A stand-in `az` on PATH, so the real AzureCliCredential of @azure/identity runs: it logs its
 * arguments (one line per call), fails like a signed-out CLI when `fail` exists, and otherwise
 * prints what `az account get-access-token --output json` prints, with a lifetime in seconds read
 * from `lifetime`. It sleeps a little so concurrent requests overlap the fetch.
 */
const AZ_SCRIPT = `#!/bin/sh
dir="$(dirname "$0")"
echo "$*" >> "$dir/calls.log"
n=$(wc -l < "$dir/calls.log" | tr -d ' ')
sleep 0.2
if [ -f "$dir/fail" ]; then
  echo "ERROR: Please run 'az login' to setup account." >&2
  exit 1
fi
expires=$(( $(date +%s) + $(cat "$dir/lifetime") ))
printf '{"accessToken":"token-%s","expiresOn":"2030-01-01 00:00:00.000000","expires_on":%s,"subscription":"sub","tenant":"contoso.onmicrosoft.com","tokenType":"Bearer"}\\n' "$n" "$expires"
`;

const TENANT = 'contoso.onmicrosoft.com';
const SERVICES = `  api:
    remote: https://contoso-api-dev.localhost:\${port:api}
    auth: { azure: { scope: "api://contoso-api-dev/.default", tenant: ${TENANT} } }`;

let azDir = '';
let savedEnv: NodeJS.ProcessEnv = {};
const cleanups: (() => Promise<void>)[] = [];

beforeEach(async () => {
  azDir = await mkdtemp(join(tmpdir(), 'devproxy-az-'));
  await writeFile(join(azDir, 'az'), AZ_SCRIPT);
  await chmod(join(azDir, 'az'), 0o755);
  await writeFile(join(azDir, 'lifetime'), '3600');
  savedEnv = { ...process.env };
  // Only the stand-in CLI: no real az/azd, and no service principal (EnvironmentCredential would call Entra ID).
  process.env.PATH = `${azDir}:/usr/bin:/bin`;
  for (const name of Object.keys(process.env)) if (name.startsWith('AZURE_')) delete process.env[name];
});

afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  process.env = savedEnv;
  await rm(azDir, { recursive: true, force: true });
});

async function azCalls(): Promise<string[]> {
  try {
    return (await readFile(join(azDir, 'calls.log'), 'utf8')).trim().split('\n');
  } catch {
    return [];
  }
}

async function setup(): Promise<{ wt: RemoteWorktree; api: Upstream }> {
  const api = await startRemote((req, res) => {
    if (!/^Bearer token-\d+$/.test(req.headers.authorization ?? '')) {
      res.writeHead(401, { 'www-authenticate': 'Bearer' }).end();
      return;
    }
    echoHandler(req, res);
  });
  cleanups.push(() => api.close());
  // The default chain: EnvironmentCredential (unconfigured), AzureCliCredential (the stand-in), AzureDeveloperCliCredential.
  const wt = await startRemoteWorktree({ services: SERVICES, upstreams: { api } });
  cleanups.push(() => wt.close());
  return { wt, api };
}

describe('Entra ID tokens through the Azure CLI', () => {
  it('injects a bearer token, fetches it once for concurrent requests, reuses it, and refreshes one close to expiry', async () => {
    const { wt, api } = await setup();
    const host = `api.x.localhost:${wt.port}`;

    // A token that expires within the refresh margin is used once, then refreshed.
    await writeFile(join(azDir, 'lifetime'), '60');
    const first = await send(wt.port, host, { headers: { authorization: 'Bearer client-chosen' } });
    expect(first.status).toBe(200);
    expect(api.requests[0]?.headers.authorization).toBe('Bearer token-1');
    expect(await azCalls()).toEqual([`account get-access-token --output json --resource api://contoso-api-dev --tenant ${TENANT}`]);

    await writeFile(join(azDir, 'lifetime'), '3600');
    const concurrent = await Promise.all(Array.from({ length: 20 }, () => send(wt.port, host)));
    expect(concurrent.map((r) => r.status)).toEqual(Array(20).fill(200));
    expect(new Set(api.requests.slice(1).map((r) => r.headers.authorization))).toEqual(new Set(['Bearer token-2']));
    expect(await azCalls()).toHaveLength(2);

    const later = await send(wt.port, host);
    expect(later.status).toBe(200);
    expect(api.requests.at(-1)?.headers.authorization).toBe('Bearer token-2');
    expect(await azCalls()).toHaveLength(2);
    expect(wt.logs.join('\n')).not.toContain('token-');
  });

  it('answers a failed sign-in with a 502 naming the credentials tried and `az login --tenant`, without calling the remote', async () => {
    await writeFile(join(azDir, 'fail'), '');
    const { wt, api } = await setup();
    const json = await send(wt.port, `api.x.localhost:${wt.port}`, { headers: { accept: 'application/json' } });
    expect(json.status).toBe(502);
    const { error } = JSON.parse(json.body) as { error: { code: string; message: string; hint: string } };
    expect(error.code).toBe('DEVPROXY_ERR_REMOTE_AUTH');
    expect(error.message).toContain('EnvironmentCredential');
    expect(error.message).toContain("AzureCliCredential: Please run 'az login'");
    expect(error.message).toContain('AzureDeveloperCliCredential');
    expect(error.message).toContain('api://contoso-api-dev/.default');
    expect(error.hint).toContain(`az login --tenant ${TENANT}`);

    const html = await send(wt.port, `api.x.localhost:${wt.port}`, { headers: { accept: 'text/html' } });
    expect(html.status).toBe(502);
    expect(html.body).toContain(`<code>az login --tenant ${TENANT}</code>`);
    expect(api.requests).toHaveLength(0);
    expect(wt.logs.some((l) => l.includes('AzureCliCredential'))).toBe(true);

    // Failures are not cached: once signed in, the next request gets through.
    await rm(join(azDir, 'fail'));
    expect((await send(wt.port, `api.x.localhost:${wt.port}`)).status).toBe(200);
  });
});

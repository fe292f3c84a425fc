/**
 * Loaded with `node --import` (through NODE_OPTIONS) into every Node process `devproxy run`
 * starts: from here on, `*.localhost` resolves to loopback, so server-side `fetch` and
 * `http.request` to a worktree's stable URL reach the proxy on any OS.
 */
import dns from 'node:dns';
import { syncBuiltinESMExports } from 'node:module';
import { installLocalhostLookup } from './localhost-lookup.js';

installLocalhostLookup(dns);
// `import { lookup } from 'node:dns'` in the app is a separate binding; this refreshes it.
syncBuiltinESMExports();

/**
 * vitest set-up file of the integration projects: gives each worker (test files run side by side)
 * a local-port range of its own in `DEVPROXY_LOCAL_PORTS`, which every daemon a test spawns with
 * `{ ...process.env }` inherits. Without it two daemons of files running at once both hand out the
 * first free port of the default range and one of their services fails to bind. The ranges lie
 * below the default range (21000-28999) and the kernel's ephemeral ports (32768 and up), where no
 * port-0 listener or outgoing connection of another test lands. Tests that assert the default
 * range run their LocalRuntime without this setting.
 */
const FIRST_WORKER_PORT = 10_000;
const PORTS_PER_WORKER = 1_000;

const worker = Number(process.env.VITEST_POOL_ID ?? '1');
const start = FIRST_WORKER_PORT + ((worker - 1) % 10) * PORTS_PER_WORKER;
process.env.DEVPROXY_LOCAL_PORTS = `${start}-${start + PORTS_PER_WORKER - 1}`;

/** `devproxy mcp`: the MCP server over stdio; the SDK loads only here, never for other commands or the daemon. */
export async function mcp(opts: { dir?: string }): Promise<void> {
  const { serveStdio } = await import('../mcp-server.js');
  await serveStdio({ cwd: opts.dir ?? process.cwd() });
}

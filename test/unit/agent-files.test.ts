import { describe, expect, it } from 'vitest';
import { addMcpServer, agentsBlock, BLOCK_BEGIN, BLOCK_END, isUnedited, replaceBlock, withChecksum } from '../../agents/agent-files.js';

const FILE = '/repo/AGENTS.md';

describe('AGENTS.md block', () => {
  const block = agentsBlock('shop');

  it('is appended to a missing or existing file, separated by a blank line', () => {
    expect(replaceBlock('', block, FILE)).toBe(`${block}\n`);
    expect(replaceBlock('# Notes\nmine', block, FILE)).toBe(`# Notes\nmine\n\n${block}\n`);
    expect(replaceBlock('# Notes\n', block, FILE)).toBe(`# Notes\n\n${block}\n`);
  });

  it('is replaced in place, keeping the text before and after it', () => {
    const text = `# Notes\n\n${BLOCK_BEGIN}\nold text\n${BLOCK_END}\n\n## After\nkeep me\n`;
    expect(replaceBlock(text, block, FILE)).toBe(`# Notes\n\n${block}\n\n## After\nkeep me\n`);
    const once = replaceBlock('intro\n', block, FILE);
    expect(replaceBlock(once, block, FILE)).toBe(once);
  });

  it('refuses a begin without its end (or two blocks), naming the line, instead of eating text', () => {
    expect(() => replaceBlock(`a\n${BLOCK_BEGIN}\nb\n`, block, FILE)).toThrow(`${FILE}:2: devproxy's block is not one "devproxy:begin" line followed by one "${BLOCK_END}" line`);
    expect(() => replaceBlock(`a\n${BLOCK_END}\n${BLOCK_BEGIN}\n`, block, FILE)).toThrow(`${FILE}:3:`);
    expect(() => replaceBlock(`${BLOCK_BEGIN}\n${BLOCK_END}\n${BLOCK_BEGIN}\n${BLOCK_END}\n`, block, FILE)).toThrow(`${FILE}:3:`);
  });

  it('tells agents the commands, the desired-state file and to leave other worktrees alone', () => {
    for (const text of ['devproxy status --json', 'devproxy env', 'devproxy use <profile>', 'devproxy logs <service>', '.devproxy/profile.yaml', "never\n  edit or switch another worktree's profile", "the main checkout's is `shop`"]) expect(block).toContain(text);
  });
});

describe('.mcp.json', () => {
  const FILE_MCP = '/repo/.mcp.json';
  const devproxy = { type: 'stdio', command: 'devproxy', args: ['mcp'] };

  it('is created with a devproxy stdio server', () => {
    expect(JSON.parse(addMcpServer(undefined, FILE_MCP)!)).toEqual({ mcpServers: { devproxy } });
  });

  it("keeps the user's other servers and keys, and a devproxy server of their own", () => {
    const other = { mcpServers: { github: { command: 'gh-mcp' } }, note: 'mine' };
    expect(JSON.parse(addMcpServer(JSON.stringify(other), FILE_MCP)!)).toEqual({ mcpServers: { github: { command: 'gh-mcp' }, devproxy }, note: 'mine' });
    expect(addMcpServer(JSON.stringify({ mcpServers: { devproxy: { command: 'npx', args: ['devproxy', 'mcp'] } } }), FILE_MCP)).toBeUndefined();
  });

  it('refuses a file that is not JSON or not an object, naming it', () => {
    expect(() => addMcpServer('{ "mcpServers": ', FILE_MCP)).toThrow(`${FILE_MCP} is not valid JSON`);
    expect(() => addMcpServer('[]', FILE_MCP)).toThrow(`${FILE_MCP} must be an object whose "mcpServers" is an object`);
    expect(() => addMcpServer('{"mcpServers": []}', FILE_MCP)).toThrow('must be an object');
  });
});

describe('generated slash commands', () => {
  it('are recognised as unedited only while their text matches the checksum', () => {
    const text = withChecksum('---\ndescription: x\n---\nbody\n');
    expect(isUnedited(text)).toBe(true);
    expect(isUnedited(text.replace('body', 'my body'))).toBe(false);
    expect(isUnedited(`${text}more\n`)).toBe(false);
    expect(isUnedited('no marker\n')).toBe(false);
  });
});

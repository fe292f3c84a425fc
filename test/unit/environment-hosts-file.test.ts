import { describe, expect, it } from 'vitest';
import { defaultHostsPath, HOSTS_BLOCK_END, HOSTS_BLOCK_START, removeBlock, renderBlock, replaceBlock } from '../../environment/hosts-file.js';

const SYSTEM = '127.0.0.1\tlocalhost\n::1 localhost ip6-localhost\n# a comment the user wrote\n10.0.0.5 build-server  # keep me\n';
const HOSTS = ['ui.feature-x.localhost', 'api.feature-x.localhost'];

describe('renderBlock', () => {
  it('lists each name once per loopback address, sorted, between the markers', () => {
    expect(renderBlock([...HOSTS, 'API.feature-x.localhost'])).toBe(
      [HOSTS_BLOCK_START, '127.0.0.1 api.feature-x.localhost', '127.0.0.1 ui.feature-x.localhost', '::1 api.feature-x.localhost', '::1 ui.feature-x.localhost', HOSTS_BLOCK_END].join('\n'),
    );
  });
});

describe('replaceBlock', () => {
  it('appends a block to a file that has none, changing no byte before it', () => {
    const out = replaceBlock(SYSTEM, HOSTS);
    expect(out.startsWith(SYSTEM)).toBe(true);
    expect(out.slice(SYSTEM.length)).toBe(`${renderBlock(HOSTS)}\n`);
  });

  it('updates the block in place, keeping everything around it byte for byte', () => {
    const before = 'first line\n';
    const after = '# after the block\n10.0.0.7 other\n';
    const file = `${before}${renderBlock(['old.feature-x.localhost'])}\n${after}`;
    const out = replaceBlock(file, HOSTS);
    expect(out).toBe(`${before}${renderBlock(HOSTS)}\n${after}`);
    expect(replaceBlock(out, HOSTS)).toBe(out);
  });

  it('removes the block and gives back the original file exactly', () => {
    for (const original of [SYSTEM, '', 'no trailing newline', 'x\n\n\n', 'a\r\nb\r\n', 'a\r\nno final crlf']) {
      const withBlock = replaceBlock(original, HOSTS);
      expect(withBlock).toContain(HOSTS_BLOCK_START);
      expect(removeBlock(withBlock)).toBe(original);
      expect(replaceBlock(replaceBlock(withBlock, ['z.localhost']), [])).toBe(original);
    }
  });

  it('writes CRLF inside the block of a CRLF file', () => {
    const out = replaceBlock('127.0.0.1 localhost\r\n', HOSTS);
    expect(out).toBe(`127.0.0.1 localhost\r\n${renderBlock(HOSTS, '\r\n')}\r\n`);
    expect(out.replace(/\r\n/g, '')).not.toContain('\n');
  });

  it('puts a line break before the block of a file without a final newline, and none after', () => {
    expect(replaceBlock('127.0.0.1 localhost', HOSTS)).toBe(`127.0.0.1 localhost\n${renderBlock(HOSTS)}`);
  });

  it('leaves a file without a block alone when there is nothing to add', () => {
    expect(replaceBlock(SYSTEM, [])).toBe(SYSTEM);
  });

  it('ignores the markers when they are not whole lines', () => {
    const quoted = `# someone wrote: ${HOSTS_BLOCK_START} here\n`;
    expect(replaceBlock(quoted, HOSTS)).toBe(`${quoted}${renderBlock(HOSTS)}\n`);
  });

  it('refuses a block whose end marker is gone rather than eat the rest of the file', () => {
    const broken = `a\n${HOSTS_BLOCK_START}\n127.0.0.1 x.localhost\nuser line\n`;
    expect(() => replaceBlock(broken, HOSTS, '/etc/hosts')).toThrow(
      expect.objectContaining({ code: 'DEVPROXY_ERR_HOSTS_BLOCK_BROKEN', message: `/etc/hosts has the line "${HOSTS_BLOCK_START}" but no "${HOSTS_BLOCK_END}" after it` }),
    );
  });
});

describe('defaultHostsPath', () => {
  it('is /etc/hosts on POSIX and under SystemRoot on Windows', () => {
    expect(defaultHostsPath('linux', {})).toBe('/etc/hosts');
    expect(defaultHostsPath('darwin', {})).toBe('/etc/hosts');
    expect(defaultHostsPath('win32', { SystemRoot: 'D:\\Windows' }).replace(/\//g, '\\')).toBe('D:\\Windows\\System32\\drivers\\etc\\hosts');
  });
});

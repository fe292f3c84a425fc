import { describe, expect, it } from 'vitest';
import {
  DockerApiError,
  demuxDockerLog,
  engineMessage,
  enginePath,
  isEngineStatus,
  logDemuxer,
  splitLines,
  splitLogFrames,
} from '../../runtime/docker-engine-api.js';

const frame = (stream: number, text: string): Buffer => {
  const body = Buffer.from(text);
  const header = Buffer.alloc(8);
  header[0] = stream;
  header.writeUInt32BE(body.length, 4);
  return Buffer.concat([header, body]);
};

/** Feeds `bytes` to a fresh demuxer in the given chunk sizes, answers the text it gave out. */
const demuxInChunks = (bytes: Buffer, cuts: number[]): string => {
  const demux = logDemuxer();
  const out: Buffer[] = [];
  let from = 0;
  for (const to of [...cuts, bytes.length]) {
    out.push(...demux(bytes.subarray(from, to)));
    from = to;
  }
  return Buffer.concat(out).toString('utf8');
};

describe('enginePath', () => {
  it('sends filters as JSON and leaves undefined values out', () => {
    const path = enginePath('/containers/json', { all: true, filters: { label: ['a=b c'] }, since: undefined });
    const url = new URL(path, 'http://engine');
    expect(url.pathname).toBe('/containers/json');
    expect(url.searchParams.get('all')).toBe('true');
    expect(JSON.parse(url.searchParams.get('filters')!)).toEqual({ label: ['a=b c'] });
    expect(url.searchParams.has('since')).toBe(false);
  });

  it('keeps a path without query as it is', () => {
    expect(enginePath('/_ping')).toBe('/_ping');
    expect(enginePath('/networks/bridge', { since: undefined })).toBe('/networks/bridge');
  });

  it('writes numbers and booleans as the engine reads them', () => {
    expect(enginePath('/containers/x/stop', { t: 5 })).toBe('/containers/x/stop?t=5');
    expect(enginePath('/containers/x', { force: true, v: false })).toBe('/containers/x?force=true&v=false');
  });
});

describe('engine errors', () => {
  it('carry the status and the engine\'s own message', () => {
    const error = new DockerApiError('GET', '/containers/abc/json?size=false', 404, '{"message":"No such container: abc"}\n');
    expect(error.statusCode).toBe(404);
    expect(error.message).toBe('Docker engine answered 404 to GET /containers/abc/json: No such container: abc');
    expect(isEngineStatus(error, 404)).toBe(true);
    expect(isEngineStatus(error, 409)).toBe(false);
  });

  it('show a body that is not the engine\'s JSON as it is, and say when there is none', () => {
    expect(engineMessage('Bad Gateway\n')).toBe('Bad Gateway');
    expect(engineMessage('{"error":"x"}')).toBe('{"error":"x"}');
    expect(new DockerApiError('POST', '/containers/x/stop', 500, '').message).toBe('Docker engine answered 500 to POST /containers/x/stop: no message');
  });

  it('are not mistaken for other errors carrying a status', () => {
    expect(isEngineStatus(Object.assign(new Error('x'), { statusCode: 404 }), 404)).toBe(false);
    expect(isEngineStatus(undefined, 404)).toBe(false);
  });
});

describe('splitLogFrames', () => {
  it('cuts complete frames and keeps an unfinished one (header included) for the next chunk', () => {
    const bytes = Buffer.concat([frame(1, 'out\n'), frame(2, 'err\n')]);
    const cut = splitLogFrames(bytes.subarray(0, bytes.length - 2));
    expect(cut.payloads.map(String)).toEqual(['out\n']);
    expect(cut.rest).toEqual(bytes.subarray(frame(1, 'out\n').length, bytes.length - 2));
    expect(cut.raw).toBe(false);
  });

  it('keeps a partial header for later', () => {
    const cut = splitLogFrames(frame(1, 'x').subarray(0, 5));
    expect(cut.payloads).toEqual([]);
    expect(cut.rest.length).toBe(5);
  });

  it('gives the bytes from a bad header on as they are, and says the stream is raw', () => {
    const cut = splitLogFrames(Buffer.concat([frame(1, 'a'), Buffer.from('tty text, no frames\n')]));
    expect(cut.payloads.map(String)).toEqual(['a', 'tty text, no frames\n']);
    expect(cut.raw).toBe(true);
    expect(cut.rest.length).toBe(0);
  });

  it('takes empty frames', () => {
    expect(splitLogFrames(Buffer.concat([frame(1, ''), frame(2, 'e')])).payloads.map(String)).toEqual(['', 'e']);
  });
});

describe('logDemuxer', () => {
  const bytes = Buffer.concat([frame(1, 'out 1\n'), frame(2, 'err é\n'), frame(1, 'out 2\n')]);

  it('gives the same text wherever the chunks are cut (headers and payloads split)', () => {
    for (let a = 0; a <= bytes.length; a++) {
      for (let b = a; b <= bytes.length; b += 3) {
        expect(demuxInChunks(bytes, [a, b])).toBe('out 1\nerr é\nout 2\n');
      }
    }
  });

  it('takes a stream one byte at a time', () => {
    expect(demuxInChunks(bytes, Array.from({ length: bytes.length - 1 }, (_, i) => i + 1))).toBe('out 1\nerr é\nout 2\n');
  });

  it('passes a TTY stream (no frame headers) through untouched, also in later chunks', () => {
    const tty = Buffer.from('plain output from a tty\nmore\n');
    expect(demuxInChunks(tty, [3, 12])).toBe('plain output from a tty\nmore\n');
  });
});

describe('demuxDockerLog', () => {
  it('joins stdout and stderr frames in order', () => {
    expect(demuxDockerLog(Buffer.concat([frame(1, 'out 1\n'), frame(2, 'err 1\n'), frame(1, 'out 2\n')]))).toBe('out 1\nerr 1\nout 2\n');
  });

  it('keeps TTY logs (no frame headers) as they are', () => {
    expect(demuxDockerLog(Buffer.from('plain text\nmore\n'))).toBe('plain text\nmore\n');
  });

  it('shows what a last frame cut short has', () => {
    const bytes = Buffer.concat([frame(1, 'a\n'), frame(2, 'bcdef')]);
    expect(demuxDockerLog(bytes.subarray(0, bytes.length - 2))).toBe('a\nbcd');
  });
});

describe('splitLines', () => {
  it('cuts complete lines and keeps the unfinished one', () => {
    expect(splitLines('{"a":1}\n{"b":2}\n{"c"')).toEqual({ lines: ['{"a":1}', '{"b":2}'], rest: '{"c"' });
  });

  it('drops blank lines and CRs, and keeps everything when no line is complete', () => {
    expect(splitLines('\r\n  \n{"a":1}\r\n')).toEqual({ lines: ['{"a":1}'], rest: '' });
    expect(splitLines('{"a"')).toEqual({ lines: [], rest: '{"a"' });
  });

  it('joins a line split across chunks once its end arrives', () => {
    const first = splitLines('{"Action":"st');
    const second = splitLines(`${first.rest}art"}\n`);
    expect([...first.lines, ...second.lines]).toEqual(['{"Action":"start"}']);
  });
});

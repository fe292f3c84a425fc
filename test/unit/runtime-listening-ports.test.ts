import { describe, expect, it } from 'vitest';
import { parseLsofListen, parseProcNetTcp, portMismatchMessage } from '../../runtime/listening-ports.js';

describe('listening ports', () => {
  it('reads listening sockets (state 0A) of /proc/net/tcp and tcp6 with their inodes', () => {
    const tcp = `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1435 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 51234 1 0000000000000000 100 0 0 10 0
   1: 0100007F:A0F2 0100007F:1435 01 00000000:00000000 00:00000000 00000000  1000        0 51299 1 0000000000000000 20 4 30 10 -1
   2: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 777 1 0000000000000000 100 0 0 10 0
`;
    const tcp6 = `  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000001000000:1435 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 60001 1 0000000000000000 100 0 0 10 0
`;
    expect([...parseProcNetTcp(tcp)]).toEqual([
      [51234, 5173],
      [777, 8080],
    ]);
    expect([...parseProcNetTcp(tcp6)]).toEqual([[60001, 5173]]);
    expect(parseProcNetTcp('')).toEqual(new Map());
  });

  it('reads ports from lsof -F n output', () => {
    expect(parseLsofListen('p4242\nf23\nn127.0.0.1:5173\nf24\nn[::1]:5173\nf30\nn*:24678\n')).toEqual([5173, 24678]);
    expect(parseLsofListen('')).toEqual([]);
  });

  it('names both ports and how the recognised dev server takes $PORT', () => {
    expect(portMismatchMessage('ui', 'npx vite', [5173], 41002)).toBe('ui listens on 5173, not on PORT=41002: start it with $PORT (for Vite: --port $PORT --strictPort)');
    expect(portMismatchMessage('web', 'npx next dev', [3000], 41003)).toBe('web listens on 3000, not on PORT=41003: start it with $PORT (for Next.js: next dev -p $PORT)');
    expect(portMismatchMessage('fn', 'func start', [7071], 41004)).toContain('func start --port $PORT');
    expect(portMismatchMessage('api', 'dotnet run', [5000, 5001], 41005)).toBe('api listens on 5000, 5001, not on PORT=41005: start it with $PORT (for ASP.NET Core: ASPNETCORE_URLS=http://127.0.0.1:$PORT)');
    expect(portMismatchMessage('py', 'uvicorn main:app', [8000], 41006)).toContain('(for uvicorn: --port $PORT)');
    expect(portMismatchMessage('x', 'node server.js', [3000], 41007)).toBe('x listens on 3000, not on PORT=41007: start it with $PORT (for Vite: --port $PORT --strictPort; Node: process.env.PORT)');
  });
});

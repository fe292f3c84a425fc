import { describe, expect, it } from 'vitest';
import { ephemeralOverlapWarning, PORT_RANGE_END, PORT_RANGE_START } from '../../runtime/ports.js';

const DEFAULT_RANGE = { start: PORT_RANGE_START, end: PORT_RANGE_END };

describe('local ports against the kernel\'s ephemeral ports', () => {
  it('the default range lies below the default ephemeral ports of Linux, macOS and Windows', () => {
    for (const kernel of ['32768\t60999\n', '49152 65535', '1024\t4999']) {
      expect(ephemeralOverlapWarning(DEFAULT_RANGE, kernel)).toBeUndefined();
    }
  });

  it('names both ranges and the fix when a chosen range overlaps them, at either end', () => {
    expect(ephemeralOverlapWarning({ start: 41_000, end: 48_999 }, '32768\t60999\n')).toBe(
      "local ports 41000-48999 overlap the kernel's ephemeral ports 32768-60999: a service fails to start when an outgoing connection holds its port; set DEVPROXY_LOCAL_PORTS to a range below 32768",
    );
    expect(ephemeralOverlapWarning({ start: 30_000, end: 32_768 }, '32768\t60999')).toMatch(/^local ports 30000-32768 overlap/);
    expect(ephemeralOverlapWarning({ start: 60_999, end: 61_100 }, '32768\t60999')).toMatch(/^local ports 60999-61100 overlap/);
    expect(ephemeralOverlapWarning({ start: 61_000, end: 61_100 }, '32768\t60999')).toBeUndefined();
  });

  it('says nothing when the kernel\'s text is not a range', () => {
    for (const text of ['', 'garbage', '32768', '32768 60999 1']) expect(ephemeralOverlapWarning({ start: 41_000, end: 48_999 }, text)).toBeUndefined();
  });
});

import { describe, expect, it } from 'vitest';
import { isWithin } from '../../path-within.js';

describe('isWithin', () => {
  it('holds for the folder itself and what lies under it, not for a sibling sharing its prefix or a parent', () => {
    expect(isWithin('/w/app', '/w/app')).toBe(true);
    expect(isWithin('/w/app', '/w/app/.devproxy/profile.yaml')).toBe(true);
    expect(isWithin('/w/app', '/w/app/..data')).toBe(true);
    expect(isWithin('/w/app', '/w/app-2/devproxy.yaml')).toBe(false);
    expect(isWithin('/w/app', '/w')).toBe(false);
    expect(isWithin('/w/app', '/etc/passwd')).toBe(false);
  });
});

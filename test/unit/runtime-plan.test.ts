import { describe, expect, it } from 'vitest';
import { planReconcile } from '../../runtime/plan.js';

describe('planReconcile', () => {
  it.each([
    { desired: [], running: [], start: [], stop: [], keep: [] },
    { desired: ['ui'], running: [], start: ['ui'], stop: [], keep: [] },
    { desired: [], running: ['ui', 'api'], start: [], stop: ['ui', 'api'], keep: [] },
    { desired: ['ui', 'api'], running: ['ui'], start: ['api'], stop: [], keep: ['ui'] },
    { desired: ['ui', 'pipeline'], running: ['ui', 'api'], start: ['pipeline'], stop: ['api'], keep: ['ui'] },
    { desired: ['api', 'ui', 'api'], running: ['ui', 'ui'], start: ['api'], stop: [], keep: ['ui'] },
  ])('$desired over $running', ({ desired, running, start, stop, keep }) => {
    expect(planReconcile(desired, running)).toEqual({ start, stop, keep });
  });

  it('never starts or stops a service that stays local', () => {
    const plan = planReconcile(['a', 'b', 'c'], ['c', 'b', 'x']);
    expect(plan.keep.sort()).toEqual(['b', 'c']);
    expect(plan.start).toEqual(['a']);
    expect(plan.stop).toEqual(['x']);
    for (const s of plan.keep) {
      expect(plan.start).not.toContain(s);
      expect(plan.stop).not.toContain(s);
    }
  });
});

/** A run whose every step was skipped (non-finite) fails instead of reporting "training finished". */
import { describe, expect, it } from 'vitest';
import { checkLearned } from '../../cli/run-coordinator.js';
import { expectCode } from '../helpers/expect-code.js';

describe('checkLearned', () => {
  it('fails a run whose every step was skipped, naming the count', () => {
    expect(expectCode(() => checkLearned({ steps: 5, skippedSteps: 5 }), 'RUN_FAILED')).toMatch(
      /^every step \(5\) was skipped for a non-finite loss or gradient/,
    );
  });

  it('lets through a run that learned from some step, and a run of no steps', () => {
    expect(() => checkLearned({ steps: 5, skippedSteps: 4 })).not.toThrow();
    expect(() => checkLearned({ steps: 0, skippedSteps: 0 })).not.toThrow();
  });
});

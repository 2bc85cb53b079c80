import type { EvalResult, Evaluate, ShardResult, Work } from '../../shared/wire/protocol.js';

/** The losses and sample count a test's result reports. */
export type ResultSums = Pick<ShardResult, 'lossSum' | 'losses' | 'count'>;

/** A result header for `work`'s shard with the test's sums; its timings are small constants (its payload is the test's). */
export function resultFor(work: Pick<Work, 'step' | 'micro' | 'shard'>, sums: ResultSums): ShardResult {
  return {
    t: 'result',
    step: work.step,
    micro: work.micro,
    shard: work.shard,
    lossSum: sums.lossSum,
    losses: sums.losses,
    count: sums.count,
    computeMs: 1,
    decodeMs: 0,
    encodeMs: 0,
    busyMs: 1,
    shm: 0,
  };
}

/** A result header of `nodes` tree nodes for step 0's first shard (its payload is the test's). */
export function resultMsg(nodes = 1, count = 8): ShardResult {
  const losses = Array.from({ length: nodes }, () => 1 / nodes);
  return resultFor({ step: 0, micro: 0, shard: 0 }, { lossSum: 1, losses, count });
}

/** An evaluation result for `evaluate`'s rows that scored nothing: zero loss, none correct. */
export function evalResultFor(evaluate: Pick<Evaluate, 'round' | 'shard' | 'from' | 'to'>): EvalResult {
  return {
    t: 'evalResult',
    round: evaluate.round,
    shard: evaluate.shard,
    lossSum: 0,
    correct: 0,
    count: evaluate.to - evaluate.from,
    computeMs: 1,
  };
}

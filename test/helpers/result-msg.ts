import type { ShardResult } from '../../shared/wire/protocol.js';

/** A result header of `nodes` tree nodes for step 0's first shard (its payload is the test's). */
export function resultMsg(nodes = 1, count = 8): ShardResult {
  return {
    t: 'result',
    step: 0,
    micro: 0,
    shard: 0,
    lossSum: 1,
    losses: Array.from({ length: nodes }, () => 1 / nodes),
    count,
    computeMs: 1,
    decodeMs: 0,
    encodeMs: 0,
    busyMs: 1,
    shm: 0,
  };
}

/**
 * Bytes per host per step of a sharded update, counted frame by frame on the in-process
 * transport (coordinator/slices/local-cluster.ts): N hosts, each running one slice shard and
 * one worker, host 0 also the loop; one data shard per worker per step. Prints, per N, the
 * busiest host's bytes out and in, and what the unsharded coordinator's host carries with N
 * remote workers (N parameter frames out, N gradient frames in; their sizes from the codec).
 *
 *   node dist/scripts/slice-bytes.js [params=669706] [steps=5]
 */
import { hostTraffic, sliceCluster } from '../coordinator/slices/local-cluster.js';
import { treeNode } from '../shared/job/shard-tree.js';
import { encodeFrame } from '../shared/wire/codec.js';

const total = Number(process.argv[2] ?? 669706); // the reference MLP 784-512-512-10
const steps = Number(process.argv[3] ?? 5);
const hyper = { beta1: 0.9, beta2: 0.999, epsilon: 1e-7, weightDecay: 0 };
const mb = (b: number) => (b / 1e6).toFixed(2);

const params = new Float32Array(total).fill(0.01);
const paramsFrame = encodeFrame({ t: 'params', version: 1, shm: 0 }, params).byteLength;
const resultFrame = encodeFrame(
  {
    t: 'result',
    step: 1,
    micro: 0,
    shard: 0,
    lossSum: 1,
    losses: [1],
    count: 1,
    computeMs: 1,
    decodeMs: 1,
    encodeMs: 1,
    busyMs: 1,
    shm: 0,
  },
  params,
).byteLength;

console.log(`model ${total} float32 parameters = ${mb(4 * total)} MB; MB per step on one host's link`);
console.log('| N | sharded: busiest host out | in | 2·(N−1)/N model | unsharded coordinator host out | in |');
console.log('| --- | --- | --- | --- | --- | --- |');
for (const n of [2, 4]) {
  const t = hostTraffic(n);
  const c = await sliceCluster({ totalParams: total, shards: n, workers: n, hyper, onBytes: t.onBytes });
  await c.loop.assign(
    params,
    { m: new Float32Array(total), v: new Float32Array(total), accBeta1: 0.9, accBeta2: 0.999, step: 0 },
    0,
  );
  await Promise.all(c.workers.map((w) => w.params(0))); // count steps, not the start
  t.reset();
  let version = 0;
  for (let s = 0; s < steps; s++) {
    await Promise.all(
      c.workers.map(async (w, j) =>
        w.sendGradient(
          s,
          0,
          j,
          (await w.params(version)).map((p) => p * 1e-3),
        ),
      ),
    );
    for (let j = 0; j < n; j++) c.loop.commit(s, 0, j, n, [treeNode(0, j, n)], `w${j}`, false);
    if (!(await c.loop.update(s, n, n, 0, 1e-3, version + 1)).skipped) version++;
  }
  await Promise.all(c.workers.map((w) => w.params(version)));
  for (const l of c.loopLinks) l.close('done');
  for (const w of c.workers) w.close();
  const ideal = (2 * (n - 1) * 4 * total) / n;
  console.log(
    `| ${n} | ${mb(Math.max(...t.out) / steps)} | ${mb(Math.max(...t.in) / steps)} | ${mb(ideal)} | ` +
      `${mb(n * paramsFrame)} | ${mb(n * resultFrame)} |`,
  );
}

/**
 * The dashboard's parts in process: the session cookie rules, the live run's event stream and
 * routes over a real HTTP listener, and reading a run directory for a report.
 */
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { get, type IncomingMessage } from 'node:http';
import { EventEmitter } from 'node:events';
import { afterEach, describe, expect, it } from 'vitest';
import type { Coordinator } from '../../coordinator/coordinator.js';
import { Access, SESSION_MS, WRONG_TOKENS_PER_WINDOW, WrongTokenLimit } from '../../coordinator/dashboard/access.js';
import { LiveRun, WATCHED_MESSAGES } from '../../coordinator/dashboard/live.js';
import { readRunView } from '../../coordinator/dashboard/run-dir-view.js';
import { Dashboard } from '../../coordinator/dashboard/server.js';
import { breakdown, BREAKDOWN_KEYS, thin } from '../../coordinator/dashboard/view.js';
import { listenWs } from '../../coordinator/ws-listener.js';
import type { StepRecord } from '../../coordinator/summary.js';
import type { Listener } from '../../shared/transport/transport.js';
import { expectCode } from '../helpers/expect-code.js';

const TOKEN = 'a-job-token-of-enough-length-0123';
const withCookie = (cookie: string, host = '127.0.0.1:7070') =>
  ({ headers: { cookie, host } }) as unknown as IncomingMessage;
const cookieValue = (setCookie: string) => setCookie.split(';')[0];

function record(step: number, loss: number, extra: Partial<StepRecord> = {}): StepRecord {
  return {
    step,
    epoch: 0,
    loss,
    lr: 0.01,
    gradNorm: 1,
    samples: 64,
    stepMs: 20,
    samplesPerSec: 3200,
    workers: 2,
    members: 2,
    workerComputeMs: { w1: 10, w2: 12 },
    timeline: {
      encodeMs: 1,
      broadcastMs: 0.5,
      decodeMs: 1,
      slowestComputeMs: 12,
      workerEncodeMs: 0.5,
      wireMs: 2,
      reduceMs: 1,
      optimizerMs: 1,
      overheadMs: 8,
      idleMs: 1,
    },
    workerTimeline: {},
    wireBytes: 1000,
    flops: 1e6,
    cumulativeFlops: step * 1e6,
    hardwareFlops: step * 1e6,
    modelFlopsPerSec: 5e7,
    modelFlopsPerSecEma: 5e7,
    mfu: 0.5,
    budgetUsed: null,
    budgetEtaSec: null,
    workerFlopsPerSec: { w1: 2e7, w2: 3e7 },
    ...extra,
  };
}

describe('dashboard access', () => {
  it('is open on loopback and closed to everyone beyond it without a token', () => {
    const open = new Access({ requireLogin: false, token: null, secure: false });
    for (const host of ['127.0.0.1:7070', 'localhost:7070', '[::1]:7070', 'localhost'])
      expect(open.allowed(withCookie('', host))).toBe(true);
    // A page elsewhere that points its own name at 127.0.0.1 (DNS rebinding) is not this machine.
    for (const host of ['evil.example:7070', '', '10.0.0.5:7070'])
      expect(open.allowed(withCookie('', host))).toBe(false);
    const closed = new Access({ requireLogin: true, token: null, secure: false });
    expect(closed.login(TOKEN)).toBeNull();
    expect(closed.allowed(withCookie('dptrain_session=1.2.3'))).toBe(false);
  });

  it('a right token gives an HttpOnly cookie that opens the page until it expires; a wrong or forged one does not', () => {
    const a = new Access({ requireLogin: true, token: TOKEN, secure: false });
    expect(a.allowed(withCookie(''))).toBe(false);
    expect(a.login(TOKEN.slice(0, -1) + 'x')).toBeNull();
    expect(a.login('')).toBeNull();
    const now = Date.now();
    const set = a.login(` ${TOKEN}\n`, now)!;
    expect(set).toMatch(/^dptrain_session=\d+\.[\w-]+\.[\w-]+; HttpOnly; SameSite=Strict; Path=\/; Max-Age=43200$/);
    expect(set).not.toContain(TOKEN);
    const cookie = cookieValue(set);
    expect(a.allowed(withCookie(`other=1; ${cookie}`), now + 1000)).toBe(true);
    expect(a.allowed(withCookie(cookie), now + SESSION_MS + 1)).toBe(false);
    const [issued, nonce, mac] = cookie.split('=')[1].split('.');
    expect(a.allowed(withCookie(`dptrain_session=${Number(issued) + 1}.${nonce}.${mac}`), now + 1000)).toBe(false); // a longer session
    expect(a.allowed(withCookie(`dptrain_session=${issued}.${nonce}x.${mac}`), now + 1000)).toBe(false);
    // Another coordinator (another token) does not accept it.
    expect(
      new Access({ requireLogin: true, token: TOKEN + 'z', secure: false }).allowed(withCookie(cookie), now + 1000),
    ).toBe(false);
    expect(new Access({ requireLogin: true, token: TOKEN, secure: true }).login(TOKEN)).toMatch(/; Secure$/);
  });
});

describe('live run over HTTP', () => {
  let listener: Listener | null = null;
  afterEach(async () => {
    await listener?.close();
    listener = null;
  });

  async function serve(run: LiveRun) {
    const d = new Dashboard(run, { requireLogin: false, token: null, secure: false }, 'test');
    listener = await listenWs({ host: '127.0.0.1', port: 0, maxPayload: 1 << 16, http: d.handler });
    return listener.address.replace(/^ws/, 'http');
  }

  /** Read server-sent events from a stream until `until` says stop. */
  async function readEvents(res: Response, until: (events: Array<{ event: string; data: unknown }>) => boolean) {
    const reader = res.body!.getReader();
    const events: Array<{ event: string; data: unknown }> = [];
    let text = '';
    while (!until(events)) {
      const { value, done } = await reader.read();
      if (done) break;
      text += new TextDecoder().decode(value);
      for (let end = text.indexOf('\n\n'); end >= 0; end = text.indexOf('\n\n')) {
        const block = text.slice(0, end);
        text = text.slice(end + 2);
        const event = /^event: (.*)$/m.exec(block)?.[1];
        const data = /^data: (.*)$/m.exec(block)?.[1];
        if (event && data) events.push({ event, data: JSON.parse(data) });
      }
    }
    await reader.cancel();
    return events;
  }

  it('a page gets the snapshot, then the steps, evaluations and warnings as they come', async () => {
    const run = new LiveRun('r', { steps: 10 }, 10);
    run.onStep(record(1, 0.9));
    const base = await serve(run);
    const res = await fetch(`${base}/events`);
    expect(res.headers.get('content-type')).toBe('text/event-stream');
    setTimeout(() => {
      run.onStep(record(2, 0.8, { testLoss: 0.85, testAccuracy: 0.5 }));
      run.onLogLine(JSON.stringify({ level: 40, time: 1, msg: 'worker dropped', worker: 'w1', reason: 'heartbeat' }));
      run.onLogLine(JSON.stringify({ level: 20, msg: 'late or duplicate result ignored', worker: 'w9' })); // unknown worker: nothing
      run.onLogLine('not json');
    }, 50);
    const events = await readEvents(res, (e) => e.length >= 2);
    expect(events[0].event).toBe('snapshot');
    expect(
      (events[0].data as { steps: Array<{ step: number; loss: number }> }).steps.map((s) => [s.step, s.loss]),
    ).toEqual([[1, 0.9]]);
    expect(events[1].event).toBe('update');
    const u = events[1].data as {
      steps: Array<{ step: number; parts: number[] }>;
      evals: unknown[];
      warnings: Array<{ msg: string }>;
      state: string;
    };
    expect(u.steps.map((s) => s.step)).toEqual([2]);
    expect(u.evals).toEqual([{ step: 2, testLoss: 0.85, testAccuracy: 0.5 }]);
    expect(u.warnings.map((w) => w.msg)).toEqual(['worker dropped worker=w1 reason=heartbeat']);
    expect(u.state).toBe('training');
  });

  it('the page and its code are served; writes, unknown assets and paths are refused', async () => {
    const base = await serve(new LiveRun('r', {}, 1));
    const page = await fetch(`${base}/`);
    expect(page.status).toBe(200);
    expect(page.headers.get('content-security-policy')).toContain("script-src 'self'");
    const html = await page.text();
    expect(html).toContain('<script src="/assets/live.js">');
    // Every file the page loads is served (the chart code comes in more than one file).
    const loads = [...html.matchAll(/(?:src|href)="\/assets\/([^"]+)"/g)].map((m) => m[1]);
    expect(loads).toEqual(expect.arrayContaining(['widgets.js', 'charts.js', 'live.js', 'dashboard.css']));
    for (const name of loads) expect((await fetch(`${base}/assets/${name}`)).status, name).toBe(200);
    const lib = await fetch(`${base}/assets/uplot.js`);
    expect(lib.status).toBe(200);
    expect(await lib.text()).toContain('uPlot');
    expect((await fetch(`${base}/assets/../package.json`)).status).toBe(404);
    expect((await fetch(`${base}/assets/constructor`)).status).toBe(404);
    for (const method of ['POST', 'PUT', 'DELETE', 'PATCH'])
      expect((await fetch(`${base}/events`, { method })).status).toBe(405);
    expect((await fetch(`${base}/login`, { method: 'POST', redirect: 'manual' })).status).toBe(303); // open: nothing to log in to
    expect((await fetch(`${base}/nothing`)).status).toBe(404);
    const rebound = await new Promise<number>((done) => {
      const { port } = new URL(base);
      get(
        { host: '127.0.0.1', port: Number(port), path: '/events', headers: { host: `evil.example:${port}` } },
        (res) => {
          res.resume();
          done(res.statusCode ?? 0);
        },
      );
    });
    expect(rebound).toBe(403);
  });
});

describe('wrong dashboard tokens', () => {
  let listener: Listener | null = null;
  afterEach(async () => {
    await listener?.close();
    listener = null;
  });

  it('are limited per address and window; the window ends and other addresses are not affected', () => {
    const limit = new WrongTokenLimit(3, 1000);
    for (let i = 0; i < 3; i++) {
      expect(limit.allows('a', 100)).toBe(true);
      limit.wrong('a', 100 + i);
    }
    expect(limit.allows('a', 500)).toBe(false);
    expect(limit.allows('b', 500)).toBe(true);
    expect(limit.allows('a', 1100)).toBe(true);
  });

  it('sent many at once: past the limit even the right token waits (429), nothing is logged in', async () => {
    const d = new Dashboard(new LiveRun('r', {}, 1), { requireLogin: true, token: TOKEN, secure: false }, 'test');
    listener = await listenWs({ host: '127.0.0.1', port: 0, maxPayload: 1 << 16, http: d.handler });
    const base = listener.address.replace(/^ws/, 'http');
    const post = (token: string) =>
      fetch(`${base}/login`, {
        method: 'POST',
        redirect: 'manual',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ token }).toString(),
      });
    const wrong = await Promise.all(Array.from({ length: WRONG_TOKENS_PER_WINDOW }, (_, i) => post(`guess-${i}`)));
    expect(wrong.map((r) => r.status)).toEqual(Array(WRONG_TOKENS_PER_WINDOW).fill(401));
    const refused = await post(TOKEN);
    expect(refused.status).toBe(429);
    expect(refused.headers.get('retry-after')).toMatch(/^\d+$/);
    expect(refused.headers.get('set-cookie')).toBeNull();
  });
});

describe('log messages the worker table reads', () => {
  it('are still logged by the coordinator', () => {
    const source = ['membership', 'dispatcher', 'phase']
      .map((f) => readFileSync(join(__dirname, `../../coordinator/${f}.ts`), 'utf8'))
      .join('\n');
    for (const msg of Object.values(WATCHED_MESSAGES)) expect(source).toContain(`'${msg}'`);
  });

  it('count stale and recomputed shards per worker, and take the backend account logged before ready', () => {
    const run = new LiveRun('r', {}, 1);
    run.onLogLine(
      JSON.stringify({ level: 20, msg: WATCHED_MESSAGES.backend, worker: 'w1', why: 'WebGPU (Dawn) on some GPU' }),
    );
    const membership = new EventEmitter();
    run.attach({ meter: { budget: null }, membership } as unknown as Coordinator);
    const w = { id: 'w1', name: 'a', host: 'h', backend: 'webgpu', state: 'ready', peakFlops: 0, attainableFlops: 1e9 };
    membership.emit('ready', w);
    for (let i = 0; i < 5; i++) membership.emit('result', w);
    run.onLogLine(JSON.stringify({ level: 20, msg: WATCHED_MESSAGES.stale, worker: 'w1' }));
    run.onLogLine(
      JSON.stringify({ level: 40, msg: WATCHED_MESSAGES.reassigned, from: 'w1', why: WATCHED_MESSAGES.recomputeWhy }),
    );
    run.onLogLine(JSON.stringify({ level: 40, msg: WATCHED_MESSAGES.reassigned, from: 'w1', why: 'deadline' }));
    const [row] = run.snapshot().workers;
    expect(row).toMatchObject({
      adapter: 'WebGPU (Dawn) on some GPU',
      measuredFlops: 1e9,
      declaredFlops: null,
      staleShards: 1,
      recomputedShards: 1,
      shardsDone: 3,
    });
  });
});

describe('resumed run', () => {
  it('the page starts from the steps before the resume and goes on from there', () => {
    const dir = mkdtempSync(join(tmpdir(), 'dptrain-resume-'));
    writeFileSync(
      join(dir, 'metrics.jsonl'),
      [record(1, 0.9), record(2, 0.8, { testLoss: 0.8, testAccuracy: 0.4 })].map((r) => JSON.stringify(r)).join('\n') +
        '\n',
    );
    const run = new LiveRun('r', {}, 4);
    run.preload(readRunView(dir, 'r'));
    run.onStep(record(3, 0.7));
    const v = run.snapshot();
    expect(v.steps.map((s) => s.step)).toEqual([1, 2, 3]);
    expect(v.steps[2].t).toBeCloseTo(0.06, 12);
    expect(v.evals.map((e) => e.step)).toEqual([2]);
  });
});

describe('evaluations on the page', () => {
  it('each once: an evaluation comes on its own (onEval) and again with its step record', () => {
    const run = new LiveRun('r', {}, 4);
    for (const step of [1, 2, 3, 4]) {
      const ev = step % 2 === 0 ? { testLoss: 1 / step, testAccuracy: 0.5 } : {};
      if (step % 2 === 0) run.onEval({ step, testLoss: 1 / step, testAccuracy: 0.5, evalMs: 1 });
      run.onStep(record(step, 1, ev));
    }
    expect(run.snapshot().evals.map((e) => e.step)).toEqual([2, 4]);
  });
});

describe('page rows', () => {
  it("a step's breakdown adds up to its time", () => {
    const t = record(1, 1).timeline;
    const b = breakdown(t);
    expect(Object.keys(b)).toEqual([...BREAKDOWN_KEYS]);
    expect(Object.values(b).reduce((x, y) => x + y, 0)).toBeCloseTo(t.slowestComputeMs + t.overheadMs, 12);
  });

  it('thinning keeps the newest rows and every other older one', () => {
    const rows = Array.from({ length: 10 }, (_, i) => i);
    expect(thin(rows, 4)).toEqual([0, 2, 4, 6, 7, 8, 9]);
  });

  it('a run directory: torn lines skipped, the final evaluation from summary.json; a directory without metrics is one line', () => {
    const dir = mkdtempSync(join(tmpdir(), 'dptrain-view-'));
    writeFileSync(join(dir, 'config.json'), JSON.stringify({ steps: 3, compute: { budget: 1e9 } }));
    writeFileSync(
      join(dir, 'metrics.jsonl'),
      [record(1, 0.9), record(2, 0.8)].map((r) => JSON.stringify(r)).join('\n') + '\n{"step": 3, "lo',
    );
    writeFileSync(
      join(dir, 'summary.json'),
      JSON.stringify({ steps: 2, testLoss: 0.7, testAccuracy: 0.6, budget: 1e9 }),
    );
    writeFileSync(
      join(dir, 'log.jsonl'),
      [
        { level: 30, msg: 'fine' },
        { level: 40, msg: 'compute budget 50% used', budgetUsed: 0.5 },
      ]
        .map((r) => JSON.stringify(r))
        .join('\n'),
    );
    const v = readRunView(dir, 'x');
    expect(v.steps.map((s) => s.step)).toEqual([1, 2]);
    expect(v.steps[1].t).toBeCloseTo(0.04, 12);
    expect(v.evals).toEqual([{ step: 2, testLoss: 0.7, testAccuracy: 0.6 }]);
    expect(v.warnings.map((w) => w.msg)).toEqual(['compute budget 50% used budgetUsed=0.5']);
    expect(v.budget).toBe(1e9);
    expect(v.state).toBe('finished');
    expect(expectCode(() => readRunView(tmpdir(), 'y'), 'CONFIG_UNREADABLE')).toMatch(
      /no metrics\.jsonl there; give the directory of a dptrain run/,
    );
  });

  it('a run without a summary is stopped, not finished; one of --steps 0 (a summary, no steps) is read', () => {
    const stopped = mkdtempSync(join(tmpdir(), 'dptrain-view-'));
    writeFileSync(join(stopped, 'metrics.jsonl'), `${JSON.stringify(record(1, 0.9))}\n`);
    expect(readRunView(stopped, 's').state).toBe('stopped');
    const none = mkdtempSync(join(tmpdir(), 'dptrain-view-'));
    writeFileSync(join(none, 'summary.json'), JSON.stringify({ steps: 0, testLoss: 0.7, testAccuracy: 0.5 }));
    const v = readRunView(none, 'z');
    expect([v.state, v.steps.length, v.evals]).toEqual([
      'finished',
      0,
      [{ step: 0, testLoss: 0.7, testAccuracy: 0.5 }],
    ]);
    // Stopped before its first step (Ctrl-C while waiting for workers): a checkpoint, no metrics.
    const early = mkdtempSync(join(tmpdir(), 'dptrain-view-'));
    mkdirSync(join(early, 'checkpoints'));
    const e = readRunView(early, 'e');
    expect([e.state, e.steps]).toEqual(['stopped', []]);
  });
});

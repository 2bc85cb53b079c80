/**
 * The dashboard's browser code against pages served in process (no training): a live run that
 * stops before the end says so and keeps reconnecting, so a coordinator resumed on the same
 * address is picked up; a report's heading, a stopped run's summary column, the breakdown's
 * labels and the accuracy chart's axes.
 */
import { EventEmitter } from 'node:events';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, Page } from 'playwright-core';
import type { Coordinator } from '../../coordinator/coordinator.js';
import { LiveRun } from '../../coordinator/dashboard/live.js';
import { reportPage } from '../../coordinator/dashboard/page.js';
import { readRunView } from '../../coordinator/dashboard/run-dir-view.js';
import { Dashboard } from '../../coordinator/dashboard/server.js';
import type { StepRecord } from '../../coordinator/summary.js';
import { listenWs } from '../../coordinator/ws-listener.js';
import type { Listener } from '../../shared/transport/transport.js';
import { browserSkip, launchBrowser, pageErrors } from '../helpers/browser.js';
import { freePort, tempDir } from '../helpers/cli.js';

function rec(step: number, extra: Partial<StepRecord> = {}): StepRecord {
  return {
    step,
    epoch: step / 10,
    loss: 1 / step,
    lr: 1e-3,
    gradNorm: 1,
    samples: 64,
    stepMs: 10 + (step % 5),
    samplesPerSec: 5000,
    workers: 1,
    members: 1,
    workerComputeMs: { w1: 5 },
    timeline: {
      encodeMs: 1,
      broadcastMs: 0.5,
      decodeMs: 1,
      slowestComputeMs: 5 + (step % 3),
      workerEncodeMs: 0.5,
      wireMs: 1,
      reduceMs: 0.5,
      optimizerMs: 1 + (step % 2),
      overheadMs: 5,
      idleMs: 1,
    },
    workerTimeline: {},
    wireBytes: 100,
    flops: 1e6,
    cumulativeFlops: step * 1e6,
    hardwareFlops: step * 1e6,
    modelFlopsPerSec: 1e8,
    modelFlopsPerSecEma: 1e8,
    mfu: 0.1,
    budgetUsed: null,
    budgetEtaSec: null,
    workerFlopsPerSec: {},
    ...extra,
  };
}

const field = (page: Page, name: string) =>
  page.evaluate((n) => document.querySelector(`[data-field="${n}"]`)?.textContent ?? '', name);

async function until(what: string, check: () => Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const t0 = Date.now();
  while (!(await check())) {
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe.skipIf(browserSkip !== null)('dashboard browser code', () => {
  let browser: Browser;
  const listeners: Listener[] = [];
  beforeAll(async () => {
    browser = await launchBrowser();
  });
  afterAll(async () => {
    for (const l of listeners) await l.close().catch(() => {});
    await browser?.close();
  });

  async function serve(run: LiveRun, port: number): Promise<Listener> {
    const d = new Dashboard(run, { requireLogin: false, token: null, secure: false }, 'r');
    const l = await listenWs({ host: '127.0.0.1', port, maxPayload: 1 << 16, http: d.handler });
    listeners.push(l);
    return l;
  }

  it('a stopped run shows as stopped, and the page picks up the run resumed on the same address', async () => {
    const port = await freePort();
    const first = new LiveRun('r', {}, 10);
    const membership = new EventEmitter();
    first.attach({ meter: { budget: null }, membership } as unknown as Coordinator);
    const w = { id: 'w1', name: 'a', host: 'h', backend: 'cpu', state: 'ready', peakFlops: 0, attainableFlops: 1e9 };
    membership.emit('ready', w);
    for (const s of [1, 2, 3]) first.onStep(rec(s));
    const l1 = await serve(first, port);
    const page = await browser.newPage();
    const errors = pageErrors(page);
    await page.goto(`http://127.0.0.1:${port}/`);
    await until('step 3', async () => (await field(page, 'step')).startsWith('step 3 '));
    membership.emit('gone', w);
    first.finish(null); // a signal: no summary
    first.close();
    await l1.close();
    await until('the stopped state', async () => (await field(page, 'state')) === 'stopped before the end');
    expect(await page.textContent('#connection')).toMatch(/stopped before the end/);
    // A gone worker's "last seen" is a time of day and an age, not a frozen "0 s ago".
    const lastSeen = await page.$$eval('table.workers tbody td:nth-child(9)', (tds) => tds.map((td) => td.textContent));
    expect(lastSeen).toHaveLength(1);
    expect(lastSeen[0]).toMatch(/\d.*\(\d+ s ago\)$/);
    const resumed = new LiveRun('r', {}, 10);
    for (const s of [1, 2, 3, 4, 5]) resumed.onStep(rec(s));
    await serve(resumed, port);
    await until('the resumed run', async () => (await field(page, 'step')).startsWith('step 5 '));
    expect(await field(page, 'state')).toBe('training');
    expect(errors.filter((e) => !/ERR_CONNECTION_REFUSED|Failed to load resource/.test(e))).toEqual([]);
    await page.close();
  }, 60_000);

  it('a finished run says finished', async () => {
    const port = await freePort();
    const run = new LiveRun('r', {}, 2);
    run.onStep(rec(1));
    await serve(run, port);
    const page = await browser.newPage();
    await page.goto(`http://127.0.0.1:${port}/`);
    await until('step 1', async () => (await field(page, 'step')).startsWith('step 1 '));
    run.onStep(rec(2));
    run.finish({ steps: 2 } as never);
    await until('finished', async () => (await field(page, 'state')) === 'finished');
    await page.close();
  }, 60_000);

  it('a report: its --title as heading, a stopped run summarized from metrics.jsonl, honest breakdown labels and axes', async () => {
    const dir = join(tempDir('client-report'), 'stopped');
    mkdirSync(dir);
    const rows = Array.from({ length: 60 }, (_, i) =>
      rec(i + 1, i + 1 === 60 ? { testLoss: 0.2, testAccuracy: 0.98 } : {}),
    );
    writeFileSync(join(dir, 'metrics.jsonl'), rows.map((r) => `${JSON.stringify(r)}\n`).join(''));
    const html = join(dir, '..', 'report.html');
    writeFileSync(html, reportPage('tab', [readRunView(dir, 'stopped')], '', 'My sweep'));
    const page = await browser.newPage();
    const errors = pageErrors(page);
    await page.goto(`file://${html}`);
    expect(await page.textContent('h1')).toBe('My sweep');
    const summary = await page.$$eval('table.summary tbody tr', (trs) =>
      Object.fromEntries(trs.map((tr) => [...tr.querySelectorAll('td')].map((td) => td.textContent))),
    );
    expect(summary['stopped by']).toMatch(/^stopped before the end/);
    expect(summary.steps).toBe('60');
    expect(summary['samples/s (median)']).toBe('5.00 k');
    const labels = await page.$$eval('.bar-label', (ls) => ls.map((l) => l.textContent ?? ''));
    expect(labels).toHaveLength(1);
    expect(labels[0]).toMatch(/^per-part medians \(sum [\d.]+ ms\)$/);
    const scales = await page.evaluate(() => {
      const plot = (
        window as unknown as {
          dptrain: { charts: { accuracy: { plot: { scales: Record<string, { min: number; max: number }> } } } };
        }
      ).dptrain.charts.accuracy.plot;
      return { x: [plot.scales.x.min, plot.scales.x.max], y: [plot.scales.y.min, plot.scales.y.max] };
    });
    expect(scales.y[1]).toBeLessThanOrEqual(1);
    expect(scales.x[1]).toBeLessThan(70); // one evaluation at step 60: not an axis to 120
    expect(errors).toEqual([]);
    await page.close();
  }, 60_000);
});

/**
 * The dashboard and the report in a real browser (headless chromium): a live run's page loads,
 * its last point is the latest line of metrics.jsonl, it shows both workers and keeps updating;
 * beyond loopback it wants the job token (over TLS when the coordinator has a certificate);
 * `dptrain report` opens from a file, with no network, with every run's series.
 */
import { execFileSync, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, Page } from 'playwright-core';
import { exited, freePort, readMetrics, runCli, selfSignedCert, tempDir } from '../helpers/cli.js';
import { browserSkip, launchBrowser, pageErrors, screenshot, startWithDashboard } from '../helpers/browser.js';

const TOKEN = 'dashboard-test-token-0123456789abcdef';

/** The last [x, y] of a chart's first series, as drawn. */
const lastPoint = (page: Page, chart: string) =>
  page.evaluate((key) => {
    const plot = (window as unknown as { dptrain: { charts: Record<string, { plot: { data: number[][] } | null }> } })
      .dptrain.charts[key].plot;
    if (!plot) return null;
    const n = plot.data[0].length;
    return [plot.data[0][n - 1], plot.data[1][n - 1]] as [number, number];
  }, chart);

const lastStepShown = async (page: Page) => (await lastPoint(page, 'loss'))?.[0] ?? 0;

async function until(what: string, check: () => Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const t0 = Date.now();
  while (!(await check())) {
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const lastLine = (out: string) => readMetrics(out).pop()!;

describe.skipIf(browserSkip !== null)('dashboard in a browser', () => {
  let browser: Browser;
  const procs: ChildProcess[] = [];
  beforeAll(async () => {
    browser = await launchBrowser();
  });
  afterAll(async () => {
    for (const p of procs) if (p.exitCode === null) p.kill('SIGKILL');
    await browser?.close();
  });

  it('live: matches metrics.jsonl, shows both workers, updates, logs no console errors', async () => {
    const out = join(tempDir('dash'), 'run');
    // Worker-0 stops for 5 s when step 40 starts: the run stands still at step 39 meanwhile (at
    // 40, if the worker got its prefetched shard of step 40 done before the signal landed).
    const { proc, url } = await startWithDashboard([
      'train',
      '-c',
      'examples/spirals.json',
      '--steps',
      '70',
      '--workers',
      '2',
      '--backend',
      'cpu',
      '--budget',
      '5e8',
      '--step-timeout',
      '60',
      '--fault',
      'delay:worker-0@40:5000',
      '--out',
      out,
    ]);
    procs.push(proc);
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/$/);
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    const errors = pageErrors(page);
    const res = await page.goto(url);
    expect(res?.status()).toBe(200);
    await until('step 39 on the page', async () => (await lastStepShown(page)) >= 39);
    await page.waitForTimeout(800); // several update intervals, still inside the stall
    const shown = await lastPoint(page, 'loss');
    const latest = lastLine(out);
    expect([39, 40]).toContain(latest.step);
    expect(shown).toEqual([latest.step, latest.loss]);
    const throughput = await lastPoint(page, 'throughput');
    expect(throughput?.[1]).toBe(latest.samplesPerSec);
    const workers = await page.$$eval('table.workers tbody tr', (rows) =>
      rows.map((r) => [...r.querySelectorAll('td')].map((td) => td.textContent)),
    );
    expect(workers).toHaveLength(2);
    expect(workers.map((w) => w[0]).sort()).toEqual([
      expect.stringMatching(/^worker-0 /),
      expect.stringMatching(/^worker-1 /),
    ]);
    for (const w of workers) {
      expect(w[2]).toBe('cpu');
      expect(w[3]).toMatch(/plain JavaScript kernels/); // the backend's own account of itself
      expect(w[7]).toBe('ready');
      expect(Number(w[9])).toBeGreaterThan(0); // shards done
    }
    expect(await page.textContent('.warnings')).toMatch(/injecting fault .*worker=worker-0/);
    expect(await page.textContent('.budget')).toMatch(/used \(\d+\.\d%\); at the current rate it runs out in/);
    await screenshot(page, 'dashboard.png');
    await until('steps after the stall', async () => (await lastStepShown(page)) >= 50);
    expect(await exited(proc)).toBe(0);
    await until('the finished state', async () => (await page.textContent('[data-field=state]')) === 'finished');
    expect(await lastPoint(page, 'loss')).toEqual([70, lastLine(out).loss]);
    expect(errors).toEqual([]);
    await page.close();
  }, 90_000);

  it('beyond loopback: a login form over TLS, a wrong token refused, the right one gives an HttpOnly cookie', async (ctx) => {
    try {
      execFileSync('openssl', ['version'], { stdio: 'ignore' });
    } catch {
      ctx.skip('openssl is missing: it makes the test certificate');
    }
    const { dir, cert, key } = selfSignedCert('dash-tls');
    const port = await freePort();
    const { proc, url } = await startWithDashboard(
      [
        'coordinator',
        '-c',
        'examples/spirals.json',
        '--listen',
        `0.0.0.0:${port}`,
        '--tls-cert',
        cert,
        '--tls-key',
        key,
        '--out',
        join(dir, 'run'),
      ],
      { ...process.env, DPTRAIN_TOKEN: TOKEN },
    );
    procs.push(proc);
    expect(url).toMatch(/^https:\/\//);
    const base = `https://127.0.0.1:${port}`;
    const context = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 900, height: 600 } });
    const page = await context.newPage();
    const first = await page.goto(`${base}/`);
    expect(first?.status()).toBe(401);
    expect(await page.locator('input[name=token]').getAttribute('type')).toBe('password');
    expect((await context.request.get(`${base}/events`)).status()).toBe(401);
    await screenshot(page, 'dashboard-login.png');

    await page.fill('input[name=token]', TOKEN.replace(/.$/, 'x'));
    const [wrong] = await Promise.all([page.waitForNavigation(), page.click('button[type=submit]')]);
    expect(wrong?.status()).toBe(401);
    expect(await page.textContent('.error')).toMatch(/not the job token/);
    expect(await context.cookies()).toEqual([]);

    await page.fill('input[name=token]', TOKEN);
    const [right] = await Promise.all([page.waitForNavigation(), page.click('button[type=submit]')]);
    expect(right?.status()).toBe(200);
    expect(page.url()).toBe(`${base}/`); // never a token in a URL
    const [cookie] = await context.cookies();
    expect(cookie).toMatchObject({ name: 'dptrain_session', httpOnly: true, secure: true, sameSite: 'Strict' });
    expect(cookie.value).not.toContain(TOKEN);
    expect(await page.evaluate(() => document.cookie)).toBe(''); // page scripts cannot read it
    await until(
      'the page',
      async () => (await page.textContent('[data-field=state]').catch(() => null)) === 'waiting for workers',
    );
    // Read-only: nothing but GET (and the login form) is accepted.
    for (const method of ['POST', 'PUT', 'DELETE'])
      expect((await context.request.fetch(`${base}/`, { method })).status()).toBe(405);
    // A forged cookie does not pass.
    const forged = await browser.newContext({ ignoreHTTPSErrors: true });
    await forged.addCookies([{ ...cookie, value: `${Date.now()}.abc.${'A'.repeat(43)}` }]);
    expect((await forged.request.get(`${base}/events`)).status()).toBe(401);
    await forged.close();
    await context.close();
    proc.kill('SIGKILL');
  }, 60_000);

  it('dptrain report: one file, no network, every run overlaid, summaries side by side, config differences', async () => {
    const dir = tempDir('report');
    const runs = [join(dir, 'float32'), join(dir, 'float16')];
    for (const [i, dtype] of ['float32', 'float16'].entries()) {
      const r = await runCli([
        'train',
        '-c',
        'examples/spirals.json',
        '--steps',
        '40',
        '--workers',
        '2',
        '--backend',
        'cpu',
        '--wire-dtype',
        dtype,
        '--out',
        runs[i],
      ]);
      expect(r.code, r.stderr).toBe(0);
    }
    const html = join(dir, 'report.html');
    const r = await runCli(['report', ...runs, '--out', html]);
    expect(r.code, r.stderr).toBe(0);
    expect(existsSync(html)).toBe(true);
    expect(readFileSync(html, 'utf8')).not.toMatch(/<(script|link)[^>]+(src|href)="(?!data:)/); // everything inline

    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    const errors = pageErrors(page);
    const fetched: string[] = [];
    await page.route('**/*', (route) => {
      const u = route.request().url();
      if (u.startsWith('file:')) return route.continue();
      fetched.push(u);
      return route.abort();
    });
    await page.goto(`file://${html}`);
    const series = await page.evaluate(() => {
      const charts = (
        window as unknown as {
          dptrain: { charts: Record<string, { plot: { series: Array<{ label: string }>; data: unknown[][] } | null }> };
        }
      ).dptrain.charts;
      return Object.fromEntries(
        Object.entries(charts)
          .filter(([, c]) => c.plot)
          .map(([k, c]) => [k, c.plot!.series.slice(1).map((s) => s.label)]),
      );
    });
    expect(series.loss).toEqual(['float32 train', 'float32 test', 'float16 train', 'float16 test']);
    expect(series.accuracy).toEqual(['float32', 'float16']);
    expect(series.throughput).toEqual(['float32', 'float16']);
    expect(series.mfu).toEqual(['float32', 'float16']);
    const lossPoints = await page.evaluate(() =>
      (
        window as unknown as { dptrain: { charts: { loss: { plot: { data: Array<Array<number | null>> } } } } }
      ).dptrain.charts.loss.plot.data.map((s) => s.filter((v) => v !== null).length),
    );
    expect(lossPoints[1]).toBe(40);
    expect(lossPoints[3]).toBe(40);
    expect(await page.$$eval('table.summary thead th', (th) => th.map((t) => t.textContent))).toEqual([
      '',
      'float32',
      'float16',
    ]);
    const diff = await page.$$eval('table.config-diff tbody tr', (rows) =>
      rows.map((r) => [...r.querySelectorAll('td')].map((td) => td.textContent)),
    );
    expect(diff).toContainEqual(['wireDtype', '"float32"', '"float16"']);
    await screenshot(page, 'report.png');
    expect(fetched).toEqual([]);
    expect(errors).toEqual([]);
    await page.close();
  }, 120_000);
});

describe('dptrain report mistakes', () => {
  it('a directory that is not a run, or no --out, is one line', async () => {
    const dir = tempDir('not-a-run');
    const r = await runCli(['report', dir, '--out', join(dir, 'r.html')]);
    expect(r.code).toBe(2);
    expect(r.stderr.trim()).toBe(
      `dptrain: CONFIG_UNREADABLE: ${dir}: no metrics.jsonl there; give the directory of a dptrain run (its --out)`,
    );
    const noOut = await runCli(['report', dir]);
    expect(noOut.code).toBe(2);
    expect(noOut.stderr.trim()).toBe(
      "dptrain: CONFIG_INVALID: required option '--out <file>' not specified (see dptrain report --help)",
    );
  });
});

/**
 * `dptrain report RUN [RUN ...] --out report.html`: finished runs drawn as the live dashboard
 * draws them, overlaid in one self-contained HTML file (no network needed to open it).
 */
import { existsSync, readFileSync, realpathSync, statSync, writeFileSync } from 'node:fs';
import { basename, dirname, isAbsolute, join, relative, resolve } from 'node:path';
import { readRunView } from '../coordinator/dashboard/run-dir-view.js';
import { reportPage } from '../coordinator/dashboard/page.js';
import type { RunView } from '../coordinator/dashboard/view.js';
import { fail } from '../shared/util/errors.js';

/** Names for the runs: their directory names, or their paths where two share a name. */
export function runNames(dirs: string[]): string[] {
  const base = dirs.map((d) => basename(resolve(d)));
  return dirs.map((d, i) =>
    base.filter((b) => b === base[i]).length > 1 ? relative(process.cwd(), resolve(d)) || '.' : base[i],
  );
}

/** What a metrics.jsonl holds: its non-blank lines, and the (1-based) numbers of those that are no step record. */
export interface MetricsCheck {
  lines: number;
  bad: number[];
}

/** A line as the report reads it (coordinator/dashboard/run-dir-view.ts): a JSON object with a step and a timeline. */
function isStepRecord(line: string): boolean {
  try {
    const r = JSON.parse(line) as unknown;
    if (typeof r !== 'object' || r === null) return false;
    const rec = r as { step?: unknown; timeline?: unknown };
    return typeof rec.step === 'number' && typeof rec.timeline === 'object' && rec.timeline !== null;
  } catch {
    return false;
  }
}

export function checkMetrics(file: string): MetricsCheck {
  const bad: number[] = [];
  let lines = 0;
  readFileSync(file, 'utf8')
    .split('\n')
    .forEach((line, i) => {
      if (!line.trim()) return;
      lines++;
      if (!isStepRecord(line)) bad.push(i + 1);
    });
  return { lines, bad };
}

/** "3", "3, 7", "3, 7, 9, … (12 in all)": the first few of a list of line numbers. */
function lineList(nums: number[]): string {
  const head = nums.slice(0, 5).join(', ');
  return nums.length > 5 ? `${head}, … (${nums.length} in all)` : head;
}

/**
 * Lines of a metrics.jsonl that are no step record are reported, not dropped in silence: a file
 * with none usable is refused (it is not a run's metrics: overwritten, or another file), one with
 * some gets a warning naming the file and lines. A warning and not a refusal there, because the
 * good lines still draw the run (a crash can tear the last line) and the user sees what was left out.
 */
function metricsWarnings(dirs: string[], runs: RunView[]): string[] {
  const warnings: string[] = [];
  for (const [i, d] of dirs.entries()) {
    const file = join(resolve(d), 'metrics.jsonl');
    if (!existsSync(file)) continue; // readRunView says what is missing
    const { lines, bad } = checkMetrics(file);
    // Empty and no summary saying the run had no step (--steps 0): its charts would be blank.
    if (lines === 0 && (runs[i].summary?.steps ?? 1) > 0)
      warnings.push(`${file} is empty: the run has no step records to draw`);
    if (bad.length === 0) continue;
    if (bad.length === lines)
      fail(
        'CONFIG_UNREADABLE',
        `${file}: ${lines > 1 ? `none of its ${lines} lines is` : 'its one line is not'} a step record (JSON with step and timeline): is it a dptrain run's metrics?`,
      );
    warnings.push(
      `${file}: ${bad.length} of ${lines} lines are not step records (line${bad.length > 1 ? 's' : ''} ${lineList(bad)}); the report leaves them out`,
    );
  }
  return warnings;
}

/** A path with its symbolic links resolved as far as it exists (the rest kept as given). */
function realish(p: string): string {
  const abs = resolve(p);
  if (existsSync(abs)) return realpathSync(abs);
  const parent = dirname(abs);
  return parent === abs ? abs : join(realish(parent), basename(abs));
}

function inside(child: string, parent: string): boolean {
  const rel = relative(parent, child);
  return rel === '' || (!rel.startsWith('..') && !isAbsolute(rel));
}

/**
 * --out must name a file that can be written and that is no part of a run being reported: a
 * report written into a run directory can replace its metrics.jsonl (or any of its files), and
 * the run's record would be gone.
 */
export function checkReportOut(out: string, dirs: string[]): string {
  if (out.trim() === '') fail('CONFIG_INVALID', '--out is empty: name the HTML file to write, e.g. --out report.html');
  const path = realish(out);
  for (const d of dirs) {
    const run = realish(d);
    if (inside(path, run))
      fail(
        'CONFIG_INVALID',
        `--out ${out} is inside the run directory ${d}, which the report reads: write it elsewhere, e.g. --out ${basename(run)}-report.html`,
      );
  }
  if (existsSync(path) && statSync(path).isDirectory())
    fail(
      'CONFIG_INVALID',
      `--out ${out} is a directory: name the HTML file to write, e.g. --out ${join(out, 'report.html')}`,
    );
  const parent = dirname(path);
  if (!existsSync(parent)) fail('CONFIG_INVALID', `--out ${out}: its directory ${parent} does not exist`);
  if (!statSync(parent).isDirectory()) fail('CONFIG_INVALID', `--out ${out}: ${parent} is not a directory`);
  return path;
}

export function loadRuns(dirs: string[]): RunView[] {
  const names = runNames(dirs);
  return dirs.map((d, i) => readRunView(resolve(d), names[i]));
}

/** One directory given twice (however spelled) would be two runs of the same name: refused. */
function checkDistinct(dirs: string[]): void {
  const seen = new Map<string, string>();
  for (const d of dirs) {
    const real = realish(d);
    const before = seen.get(real);
    if (before !== undefined)
      fail(
        'CONFIG_INVALID',
        `dptrain report: ${before === d ? `${d} is given twice` : `${before} and ${d} are the same directory`}; name each run once`,
      );
    seen.set(real, d);
  }
}

export function reportCommand(dirs: string[], f: { out: string; title?: string }): number {
  if (dirs.length === 0) fail('CONFIG_INVALID', 'dptrain report: name at least one run directory');
  checkDistinct(dirs);
  // The inputs first: a directory that is no run is named as such before anything about --out.
  const runs = loadRuns(dirs);
  const warnings = metricsWarnings(dirs, runs);
  const out = checkReportOut(f.out, dirs);
  try {
    const title = f.title ?? `dptrain report: ${runs.map((r) => r.name).join(', ')}`;
    writeFileSync(out, reportPage(title, runs, '', f.title));
  } catch (e) {
    fail('CONFIG_INVALID', `--out ${f.out}: cannot write it (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
  }
  for (const w of warnings) process.stderr.write(`dptrain: warning: ${w}\n`);
  process.stdout.write(`report of ${runs.length} run${runs.length > 1 ? 's' : ''} written to ${out}\n`);
  return 0;
}

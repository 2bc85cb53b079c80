/**
 * Live progress: a redrawn status line on a terminal (step/total, loss, samples/s, ETA), or a
 * plain line every ~5% of the run when output is not a TTY (CI logs, files).
 */
import { setTerminalLine } from '../shared/util/log.js';
import type { EvalRecord, RunSummary, StepRecord } from '../coordinator/summary.js';
import { flopRateText, flopsText, percent } from '../shared/accounting/format.js';

function clock(sec: number): string {
  if (!Number.isFinite(sec)) return '--:--';
  const s = Math.max(0, Math.round(sec));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const r = String(s % 60).padStart(2, '0');
  return h ? `${h}:${String(m).padStart(2, '0')}:${r}` : `${m}:${r}`;
}

export class Progress {
  private line = '';
  private readonly tty: boolean;
  private rate = NaN; // EMA of samples/s
  private lastEval: EvalRecord | null = null;
  private first: { at: number; step: number } | null = null;

  constructor(
    private readonly total: number,
    private readonly out: NodeJS.WriteStream = process.stderr,
  ) {
    this.tty = Boolean(out.isTTY);
    if (this.tty) setTerminalLine(this);
  }

  clear(): void {
    if (this.tty && this.line) this.out.write('\r\x1b[2K');
  }

  redraw(): void {
    if (this.tty && this.line) this.out.write(this.line);
  }

  eval(r: EvalRecord): void {
    this.lastEval = r;
  }

  step(r: StepRecord): void {
    this.rate = Number.isNaN(this.rate) ? r.samplesPerSec : 0.9 * this.rate + 0.1 * r.samplesPerSec;
    // Timed from the first step seen, not from the start: joining and loading (or a resume's) are not steps.
    this.first ??= { at: Date.now(), step: r.step };
    const perStep =
      r.step > this.first.step ? (Date.now() - this.first.at) / 1000 / (r.step - this.first.step) : r.stepMs / 1000;
    const eta = perStep * (this.total - r.step);
    const acc = r.testLoss !== undefined ? r.testAccuracy : this.lastEval?.testAccuracy; // the row's own evaluation first
    const text =
      `step ${r.step}/${this.total}  loss ${r.loss.toFixed(4)}` +
      (acc != null ? `  test acc ${(acc * 100).toFixed(1)}%` : '') +
      `  ${Math.round(this.rate).toLocaleString('en-US')} samples/s  ${flopRateText(r.modelFlopsPerSec)}` +
      (r.mfu !== null ? ` (MFU ${percent(r.mfu)})` : '') +
      (r.budgetUsed !== null ? `  budget ${percent(r.budgetUsed)}` : '') +
      `  ${r.workers} worker${r.workers === 1 ? '' : 's'}  ETA ${clock(eta)}`;
    if (this.tty) {
      const width = Math.max(10, (this.out.columns ?? 100) - text.length - 4);
      const filled = Math.round((width * r.step) / this.total);
      this.clear();
      this.line = `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${text}`;
      this.redraw();
    } else {
      const every = Math.max(1, Math.round(this.total / 20));
      if (r.step % every === 0 || r.step === this.total) this.out.write(text + '\n');
    }
  }

  done(): void {
    if (this.tty) {
      this.clear();
      this.line = '';
      setTerminalLine(null);
    }
  }
}

/** "1 worker", "2 workers". */
const count = (n: number, what: string) => `${n} ${what}${n === 1 ? '' : 's'}`;

export function formatSummary(s: RunSummary, runDir: string | null): string {
  const rows: Array<[string, string]> = [
    [
      'steps',
      `${s.steps} (${s.epochs.toFixed(2)} epochs, batch ${s.batchSize}${s.accumulate > 1 ? ` × ${s.accumulate}` : ''})`,
    ],
    [
      'workers',
      `${s.workers} (${s.backend})${s.members < s.workers ? `, over ${s.members} link${s.members === 1 ? '' : 's'} to the coordinator` : ''}`,
    ],
    ['final train loss', s.finalLoss === null ? '-' : s.finalLoss.toFixed(4)],
    [
      'test loss',
      s.testLoss === null
        ? '-'
        : `${s.testLoss.toFixed(4)}${s.tokensPerSec !== null ? ` (${(s.testLoss / Math.LN2).toFixed(3)} bits per token)` : ''}`,
    ],
    ['test accuracy', s.testAccuracy === null ? '-' : `${(s.testAccuracy * 100).toFixed(2)}%`],
    [
      'samples/s',
      s.samplesPerSec === null ? '-' : `${Math.round(s.samplesPerSec).toLocaleString('en-US')} (median after warm-up)`,
    ],
    ...(s.tokensPerSec !== null
      ? [
          ['tokens/s', `${Math.round(s.tokensPerSec).toLocaleString('en-US')} (median after warm-up)`] as [
            string,
            string,
          ],
        ]
      : []),
    [
      'wall time',
      `${s.wallSeconds.toFixed(1)} s${s.resumedAt ? ` (this session only: steps ${s.resumedAt + 1}–${s.steps}, after the resume)` : ''}`,
    ],
  ];
  rows.push([
    'compute',
    `${flopsText(s.totalFlops)} model (${flopsText(s.hardwareFlops)} computed), ${s.modelFlopsPerSec === null ? '-' : `${flopRateText(s.modelFlopsPerSec)} (median after warm-up)`}`,
  ]);
  // MFU beside the peak it is measured against (not the final workers': some may have computed nothing).
  if (s.mfu !== null && s.mfuPeakFlops !== null) rows.push(['MFU', `${percent(s.mfu, 2)} of ${mfuBasis(s)}`]);
  if (s.budget !== null && s.budgetUsed !== null) {
    rows.push([
      'budget',
      `${percent(s.budgetUsed)} of ${flopsText(s.budget)} used${s.stoppedBy === 'budget' ? ' — stopped at the budget' : ''}`,
    ]);
  }
  if (s.skippedSteps) rows.push(['skipped steps', `${s.skippedSteps} (non-finite loss or gradient)`]);
  if (s.reassignedShards || s.droppedWorkers || s.staleResults) {
    rows.push([
      'faults',
      `${count(s.droppedWorkers, 'worker')} dropped, ${count(s.reassignedShards, 'shard')} reassigned, ${count(s.staleResults, 'late result')} ignored`,
    ]);
  }
  if (runDir) rows.push(['run directory', runDir]);
  const w = Math.max(...rows.map(([k]) => k.length));
  return rows.map(([k, v]) => `  ${k.padEnd(w)}  ${v}`).join('\n');
}

/** "47.2 GFLOP/s: the summed measured (matmul) peak of the workers computing each step (medians per step …)". */
function mfuBasis(s: RunSummary): string {
  const kind = { declared: 'declared ', measured: 'measured (matmul) ', mixed: 'declared (else measured) ', none: '' };
  const peak = flopRateText(s.mfuPeakFlops ?? 0);
  return `${peak}: the summed ${kind[s.peakSource]}peak of the workers computing each step (medians per step after warm-up)`;
}

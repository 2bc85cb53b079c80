/**
 * `dptrain report RUN [RUN ...] --out report.html`: finished runs drawn as the live dashboard
 * draws them, overlaid in one self-contained HTML file (no network needed to open it).
 */
import { writeFileSync } from 'node:fs';
import { basename, relative, resolve } from 'node:path';
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

export function loadRuns(dirs: string[]): RunView[] {
  const names = runNames(dirs);
  return dirs.map((d, i) => readRunView(resolve(d), names[i]));
}

export function reportCommand(dirs: string[], f: { out: string; title?: string }): number {
  if (dirs.length === 0) fail('CONFIG_INVALID', 'dptrain report: name at least one run directory');
  const runs = loadRuns(dirs);
  const out = resolve(f.out);
  try {
    writeFileSync(out, reportPage(f.title ?? `dptrain report: ${runs.map((r) => r.name).join(', ')}`, runs));
  } catch (e) {
    fail('CONFIG_INVALID', `--out ${f.out}: cannot write it (${(e as NodeJS.ErrnoException).code ?? String(e)})`);
  }
  process.stdout.write(`report of ${runs.length} run${runs.length > 1 ? 's' : ''} written to ${out}\n`);
  return 0;
}

/**
 * A benchmark script's own command line and output: `--name value` flags and switches taken
 * off argv, the results file with its table on stdout, and one line on stderr when it fails.
 */
import { writeFileSync } from 'node:fs';

export class ScriptArgs {
  private readonly left: string[];

  constructor(argv: readonly string[] = process.argv.slice(2)) {
    this.left = [...argv];
  }

  /** The value after flag `name`, taken off the line; `dflt` when the flag is absent. */
  value(name: string): string | null;
  value(name: string, dflt: string): string;
  value(name: string, dflt: string | null = null): string | null {
    const at = this.left.indexOf(name);
    if (at < 0) return dflt;
    const [, v] = this.left.splice(at, 2);
    if (v === undefined) throw new Error(`${name} needs a value`);
    return v;
  }

  /** A comma-separated flag value (`--rates 1gbit,100mbit`). */
  list(name: string, dflt: string): string[] {
    return this.value(name, dflt)
      .split(',')
      .map((x) => x.trim());
  }

  /** Whether switch `name` is on the line; taken off it. */
  has(name: string): boolean {
    const at = this.left.indexOf(name);
    if (at >= 0) this.left.splice(at, 1);
    return at >= 0;
  }

  /** What is left once the flags were taken: the positional arguments, in order. */
  positional(): string[] {
    return [...this.left];
  }
}

/** Writes the results as JSON to `file`, then the report's lines and where they went to stdout. */
export function writeResults(file: string, results: unknown, lines: string[]): void {
  writeFileSync(file, JSON.stringify(results, null, 2) + '\n');
  process.stdout.write([...lines, `written to ${file}`].join('\n') + '\n');
}

/** Runs a script's main: a failure is one line on stderr, named for the script, and exit status 1. */
export function runScript(name: string, main: () => Promise<void>): void {
  main().catch((e: Error) => {
    process.stderr.write(`${name}: ${e.message}\n`);
    process.exit(1);
  });
}

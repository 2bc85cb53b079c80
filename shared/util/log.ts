/**
 * pino logging: JSON lines into the run directory, short readable lines on the terminal.
 * The terminal stream goes through `terminal` so a live progress line can be cleared first.
 */
import { pino, type Logger, type DestinationStream } from 'pino';
import { createWriteStream } from 'node:fs';

export type { Logger };

const LEVELS: Record<number, string> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO', 40: 'WARN', 50: 'ERROR', 60: 'FATAL' };
const SKIP = new Set(['level', 'time', 'msg', 'pid', 'hostname', 'name']);

/** Something that owns the terminal line (a progress bar): cleared before a log line is printed. */
export interface TerminalLine {
  clear(): void;
  redraw(): void;
}

let owner: TerminalLine | null = null;
export function setTerminalLine(t: TerminalLine | null): void {
  owner = t;
}

/** Control characters (newlines, escape sequences) that would let a value forge terminal lines. */
// biome-ignore lint/suspicious/noControlCharactersInRegex: matching control characters is the point
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/;

/** A string as is, unless it holds control characters: then JSON-escaped, so it stays on its line. */
const safe = (v: string): string => (CONTROL.test(v) ? JSON.stringify(v) : v);

/** Format one pino JSON record as "12:00:01 INFO  message key=value". */
export function formatRecord(line: string): string {
  let rec: Record<string, unknown>;
  try {
    rec = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return line.trimEnd();
  }
  const t = new Date(typeof rec.time === 'number' ? rec.time : Date.now()).toISOString().slice(11, 19);
  const lvl = (LEVELS[rec.level as number] ?? String(rec.level)).padEnd(5);
  const who = typeof rec.name === 'string' ? `[${rec.name}] ` : '';
  const extras = Object.entries(rec)
    .filter(([k]) => !SKIP.has(k))
    .map(([k, v]) => `${safe(k)}=${typeof v === 'string' ? safe(v) : JSON.stringify(v)}`)
    .join(' ');
  return `${t} ${lvl} ${who}${safe(String(rec.msg ?? ''))}${extras ? ' ' + extras : ''}`;
}

function readableFile(file: string): DestinationStream {
  const out = createWriteStream(file, { flags: 'a' });
  return { write: (line: string) => out.write(formatRecord(line) + '\n') };
}

function terminalStream(out: NodeJS.WriteStream): DestinationStream {
  return {
    write(line: string) {
      owner?.clear();
      out.write(formatRecord(line) + '\n');
      owner?.redraw();
    },
  };
}

export interface LogOptions {
  name: string;
  /** JSON lines go here when set (the run directory's log.jsonl). */
  file?: string;
  /** Readable lines on stderr (default true), or in this file instead (a worker log beside the coordinator's). */
  terminal?: boolean | { file: string };
  level?: string;
  /** Also hand every JSON line (debug and up) to this function (the live dashboard reads warnings here). */
  tap?: (line: string) => void;
}

export function createLogger(o: LogOptions): Logger {
  const streams: pino.StreamEntry[] = [];
  if (typeof o.terminal === 'object') streams.push({ level: 'info', stream: readableFile(o.terminal.file) });
  else if (o.terminal !== false) streams.push({ level: 'info', stream: terminalStream(process.stderr) });
  if (o.file) streams.push({ level: 'debug', stream: createWriteStream(o.file, { flags: 'a' }) });
  const tap = o.tap;
  if (tap) streams.push({ level: 'debug', stream: { write: (line: string) => tap(line) } });
  return pino({ name: o.name, level: o.level ?? 'debug', base: { name: o.name } }, pino.multistream(streams));
}

/** A logger that drops everything (tests, library use). */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}

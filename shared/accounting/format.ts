/** Human-readable FLOP figures with SI prefixes: 1.41e12 → "1.41 T". */
const PREFIXES: Array<[number, string]> = [
  [1e24, 'Y'],
  [1e21, 'Z'],
  [1e18, 'E'],
  [1e15, 'P'],
  [1e12, 'T'],
  [1e9, 'G'],
  [1e6, 'M'],
  [1e3, 'k'],
];

export function si(x: number, digits = 3): string {
  if (!Number.isFinite(x)) return String(x);
  const a = Math.abs(x);
  for (const [v, p] of PREFIXES) if (a >= v) return `${(x / v).toPrecision(digits)} ${p}`;
  return `${x.toPrecision(digits)} `;
}

export const flopsText = (x: number) => `${si(x)}FLOP`;
export const flopRateText = (x: number) => `${si(x)}FLOP/s`;
export const percent = (x: number, digits = 1) => `${(x * 100).toFixed(digits)}%`;

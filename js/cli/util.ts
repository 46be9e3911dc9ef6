/**
 * Shared by the zerocopy commands: usage errors, argument parsing with --help, sizes and rates,
 * and a progress bar that only draws on a terminal.
 */
import { parseArgs, type ParseArgsConfig } from 'node:util';

/** A mistake in how the command was called: exit code 2, with a hint to --help. */
export class UsageError extends Error {}

type Options = NonNullable<ParseArgsConfig['options']>;

/** Parsed command-line arguments: option values by name, and the positionals. */
export interface Parsed {
  values: Record<string, string | boolean | undefined>;
  positionals: string[];
}

/**
 * `parseArgs` with the options every command has (`--help`, `--verbose`); prints `help` and returns
 * undefined when asked for it. Unknown options and bad values are usage errors.
 */
export function parse(args: string[], options: Options, help: string, positionals = false): Parsed | undefined {
  let parsed: Parsed;
  try {
    parsed = parseArgs({
      args,
      allowPositionals: positionals,
      strict: true,
      options: { ...options, help: { type: 'boolean', short: 'h' }, verbose: { type: 'boolean' } },
    }) as Parsed;
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  if (parsed.values.help) {
    process.stdout.write(help);
    return undefined;
  }
  return parsed;
}

/** A string option's value (undefined when absent). */
export function str(parsed: Parsed, name: string): string | undefined {
  const v = parsed.values[name];
  return typeof v === 'string' ? v : undefined;
}

/** A whole number from an option value, or a usage error naming the option. */
export function intOption(value: string | undefined, name: string, fallback: number, min = 0): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < min) throw new UsageError(`--${name} must be an integer >= ${min}, got '${value}'`);
  return n;
}

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];

/** 1536 → "1.5 KiB". */
export function formatBytes(n: number): string {
  let i = 0;
  let v = n;
  while (v >= 1024 && i < UNITS.length - 1) {
    v /= 1024;
    i++;
  }
  return `${i === 0 ? v : v.toFixed(v >= 100 ? 0 : 1)} ${UNITS[i]}`;
}

/** A share of pages as a percentage, one decimal below 10%: 3 of 4096 → "0.1%", 4096 of 4096 → "100%". */
export function percent(part: number, whole: number): string {
  if (whole <= 0) return '–';
  const p = (100 * part) / whole;
  return `${p > 0 && p < 10 ? p.toFixed(1) : p.toFixed(0)}%`;
}

/** A progress bar on stderr, redrawn at most 10 times a second; silent when stderr is not a terminal. */
export class ProgressBar {
  private last = 0;
  private readonly tty = Boolean(process.stderr.isTTY);

  constructor(private readonly label: string) {}

  update(done: number, total: number): void {
    if (!this.tty) return;
    const now = Date.now();
    if (now - this.last < 100 && done < total) return;
    this.last = now;
    const width = 30;
    const fraction = total > 0 ? Math.min(1, done / total) : 1;
    const bar = '#'.repeat(Math.round(fraction * width)).padEnd(width, '.');
    process.stderr.write(`\r${this.label} [${bar}] ${(fraction * 100).toFixed(0).padStart(3)}% ${formatBytes(done)}`.padEnd(78));
  }

  /** Draws a plain status line (a terminal only). */
  status(text: string): void {
    if (this.tty) process.stderr.write(`\r${text}`.padEnd(78));
  }

  clear(): void {
    if (this.tty) process.stderr.write(`\r${''.padEnd(78)}\r`);
  }
}

/**
 * `zerocopy explain [PATH…]`: the bench's pictures in the terminal, drawn with box-drawing characters:
 * where one chunk's bytes go along a path, which hops the CPU copies and which DMA does, and the
 * user/kernel boundary with its switches. With `--results FILE` (the output of `zerocopy bench --json`)
 * each picture carries that run's figures; without, the model alone. Colour only on a terminal.
 */
import { readFileSync } from 'node:fs';

import type { BenchReport, PathResult } from './bench-report.js';
import { models } from './bench-measure.js';
import {
  BAND_LABEL,
  boundaryLabel,
  cacheLine,
  cacheShares,
  figureLines,
  hopLabel,
  KIND_LABEL,
  KIND_MEANING,
  LOOPBACK_NOTE,
  modelLine,
  placeOf,
  share,
  shownResidency,
  type Band,
  type CacheShares,
  type Hop,
  type HopKind,
  type Picture,
  type Place,
} from './pictures.js';
import { parse, str, UsageError } from './util.js';

const HELP = `Usage: zerocopy explain [PATH...] [--results FILE]

Draws, for each PATH (default: all), the seed's picture of one chunk's trip: the places the bytes pass
(disk, page cache, user buffer, pipe, socket buffer, NIC or peer), each hop marked CPU copy, DMA, by
ref (nothing copied) or mapped, and the user/kernel boundary with the switches per chunk.

PATH is a bench path: ${models()
  .map((p) => p.id)
  .join(', ')}.

Options:
  --results FILE  figures from a run: the output of 'zerocopy bench --json' ('-' reads stdin);
                  without it the pictures show the model alone
  --verbose       print stack traces on errors
  -h, --help      show this help
`;

/** The width of a picture: fits an 80-column terminal. */
export const TEXT_WIDTH = 78;
const COLUMN_X = [8, 34, 60] as const;
const BOX_W = 18;
const NARROW_W = 10;
/** The first row of each band's boxes; every box is four rows: top, label, sub, bottom. */
const BAND_ROW: Record<Band, number> = { user: 0, kernel: 7, device: 14 };
const BOUNDARY_ROW = 5;
const SEPARATOR_ROW = 12;
const ROWS = 18;

type Style = HopKind | 'boundary' | 'band' | 'title' | 'dim';
const ANSI: Record<Style, string> = { cpu: '1;31', dma: '1;34', reference: '90', mapped: '35', boundary: '33', band: '2', title: '1', dim: '2' };

/** Line characters per kind: [horizontal, vertical]. */
const STROKE: Record<HopKind, [string, string]> = { cpu: ['━', '┃'], dma: ['─', '│'], reference: ['╌', '╎'], mapped: ['┄', '┆'] };

/** A grid of characters, each with an optional style. */
class Canvas {
  readonly cells: string[][];
  readonly styles: (Style | undefined)[][];

  constructor(rows: number) {
    this.cells = Array.from({ length: rows }, () => Array<string>(TEXT_WIDTH).fill(' '));
    this.styles = Array.from({ length: rows }, () => Array<Style | undefined>(TEXT_WIDTH).fill(undefined));
  }

  put(x: number, y: number, s: string, style?: Style): void {
    const row = this.cells[y];
    const styles = this.styles[y];
    if (!row || !styles) return;
    [...s].forEach((ch, i) => {
      if (x + i < 0 || x + i >= TEXT_WIDTH) return;
      row[x + i] = ch;
      styles[x + i] = style;
    });
  }

  lines(colour: boolean): string[] {
    return this.cells.map((row, y) => {
      let out = '';
      let current: Style | undefined;
      row.forEach((ch, x) => {
        const style = this.styles[y]?.[x];
        if (colour && style !== current) {
          out += current ? '\x1b[0m' : '';
          out += style ? `\x1b[${ANSI[style]}m` : '';
          current = style;
        }
        out += ch;
      });
      if (colour && current) out += '\x1b[0m';
      return out.trimEnd();
    });
  }
}

interface Box {
  x: number;
  y: number;
  w: number;
}

function boxOf(place: Place): Box {
  const y = BAND_ROW[place.band];
  if (place.wide) return { x: COLUMN_X[0], y, w: COLUMN_X[2] + BOX_W - COLUMN_X[0] };
  const w = place.narrow ? NARROW_W : BOX_W;
  return { x: COLUMN_X[place.column] + (BOX_W - w) / 2, y, w };
}

const centreOf = (column: number): number => (COLUMN_X[column] ?? 0) + BOX_W / 2;
const centred = (s: string, width: number): string => {
  const pad = Math.max(0, width - [...s].length);
  return `${' '.repeat(pad >> 1)}${s}${' '.repeat(pad - (pad >> 1))}`;
};

/** The sub line of a box, with the page cache's residency after the run when there is one. */
function subOf(place: Place, cache: CacheShares | null): string {
  const shown = shownResidency(place, cache);
  if (shown === undefined) return place.sub ?? '';
  if (place.bypassed) return `${place.sub ?? ''} ${share(shown)}`.trim();
  return place.sub ? `${place.residency}: ${share(shown)}` : `${share(shown)} cached`;
}

function drawBox(c: Canvas, place: Place, cache: CacheShares | null): void {
  const { x, y, w } = boxOf(place);
  const [h, v] = place.bypassed ? ['╌', '╎'] : ['─', '│'];
  const inner = w - 2;
  c.put(x, y, `┌${h.repeat(inner)}┐`);
  c.put(x, y + 1, `${v}${centred(place.label, inner)}${v}`);
  c.put(x, y + 2, `${v}${centred(subOf(place, cache), inner)}${v}`);
  c.put(x, y + 3, `└${h.repeat(inner)}┘`);
  if (place.bypassed) c.put(x + 1, y + 1, centred(place.label, inner), 'dim');
}

function drawHop(c: Canvas, picture: Picture, hop: Hop): void {
  const from = placeOf(picture, hop.from);
  const to = placeOf(picture, hop.to);
  const a = boxOf(from);
  const b = boxOf(to);
  const [hLine, vLine] = STROKE[hop.kind];
  const arrow = hop.kind !== 'mapped';
  const style = hop.kind;
  if (from.band === to.band) {
    // Along the label row, from side to side; the kind above the line, what does it below (or
    // both above when the gap is wide).
    const right = b.x > a.x;
    const x0 = right ? a.x + a.w : b.x + b.w;
    const x1 = right ? b.x - 1 : a.x - 1;
    const y = a.y + 1;
    const line = hLine.repeat(x1 - x0 + 1).split('');
    if (arrow) line[right ? line.length - 1 : 0] = right ? '▶' : '◀';
    c.put(x0, y, line.join(''), style);
    const gap = x1 - x0 + 1;
    const label = hopLabel(hop);
    if ([...label].length <= gap - 2) c.put(x0 + Math.floor((gap - [...label].length) / 2), y - 1, label, style);
    else {
      c.put(x0 + Math.floor((gap - KIND_LABEL[hop.kind].length) / 2), y - 1, KIND_LABEL[hop.kind], style);
      if (hop.via) c.put(x0 + Math.floor((gap - hop.via.length) / 2), y + 1, hop.via, style);
    }
    return;
  }
  const down = b.y > a.y;
  if (from.wide || to.wide || from.column === to.column) {
    const x = centreOf(from.wide ? to.column : from.column);
    // From the row beyond the source's border to the row before the target's.
    const start = down ? a.y + 4 : a.y - 1;
    const end = down ? b.y - 1 : b.y + 4;
    for (let y = Math.min(start, end); y <= Math.max(start, end); y++) c.put(x, y, vLine, style);
    if (arrow) c.put(x, end, down ? '▼' : '▲', style);
    const junction = hop.kind === 'cpu' ? (down ? '┰' : '┸') : down ? '┬' : '┴';
    c.put(x, down ? a.y + 3 : a.y, junction, style);
    // The label beside the line, just under the upper box (or under the kernel for a line that
    // crosses it); on the right column, to the line's left.
    const y = from.band !== 'kernel' && to.band !== 'kernel' ? BAND_ROW.kernel + 4 : Math.min(a.y, b.y) + 4;
    const label = hopLabel(hop);
    c.put(x > TEXT_WIDTH / 2 + 10 ? x - 1 - [...label].length : x + 2, y, label, style);
    return;
  }
  // An elbow (sendfile's gathering DMA): out of the source's side on its sub row, along to the
  // middle column, down or up to the target's label row, and into its side.
  const right = to.column > from.column;
  const xMid = centreOf(1);
  const yA = a.y + 2;
  const yB = b.y + 1;
  const xA = right ? a.x + a.w : a.x - 1;
  const xB = right ? b.x - 1 : b.x + b.w;
  c.put(right ? a.x + a.w - 1 : a.x, yA, right ? '├' : '┤', style);
  for (let x = Math.min(xA, xMid); x <= Math.max(xA, xMid); x++) c.put(x, yA, hLine, style);
  for (let y = Math.min(yA, yB); y <= Math.max(yA, yB); y++) c.put(xMid, y, vLine, style);
  for (let x = Math.min(xMid, xB); x <= Math.max(xMid, xB); x++) c.put(x, yB, hLine, style);
  c.put(xMid, yA, right === down ? '┐' : '┘', style);
  c.put(xMid, yB, right === down ? '└' : '┌', style);
  if (arrow) c.put(xB, yB, right ? '▶' : '◀', style);
  c.put(xMid + 2, BAND_ROW.kernel + 4, hopLabel(hop), style);
}

/** One path's picture as lines of text: title, model, the drawing, figures (when measured), the note. */
export function explainPath(p: PathResult, measured: boolean, colour: boolean): string[] {
  const picture = p.model;
  const c = new Canvas(ROWS);
  for (const band of ['user', 'kernel', 'device'] as Band[]) c.put(0, BAND_ROW[band] + 1, BAND_LABEL[band], 'band');
  c.put(0, BOUNDARY_ROW, '═'.repeat(TEXT_WIDTH), 'boundary');
  const boundary = boundaryLabel(picture);
  c.put(Math.floor((TEXT_WIDTH - [...boundary].length) / 2) + 4, BOUNDARY_ROW + 1, boundary, 'boundary');
  c.put(COLUMN_X[0], SEPARATOR_ROW, '┈'.repeat(TEXT_WIDTH - COLUMN_X[0]), 'dim');
  if (!picture.places.some((q) => q.band === 'user')) c.put(30, 2, 'no bytes in user space', 'dim');
  const cache = measured ? cacheShares(p) : null;
  for (const place of picture.places) drawBox(c, place, cache);
  for (const hop of picture.hops) drawHop(c, picture, hop);
  const paint = (s: string, style: Style): string => (colour ? `\x1b[${ANSI[style]}m${s}\x1b[0m` : s);
  return [
    paint(`${p.name} — ${p.group}`, 'title'),
    modelLine(picture),
    '',
    ...c.lines(colour),
    '',
    ...(measured ? figureLines(p) : ['model only: no results given (see --results)']),
    '',
    ...wrap(p.model.note, TEXT_WIDTH).map((line) => paint(line, 'dim')),
  ];
}

/** Words to lines of at most `width` characters. */
export function wrap(text: string, width: number): string[] {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(/\s+/)) {
    if (line && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else line = line ? `${line} ${word}` : word;
  }
  if (line) lines.push(line);
  return lines;
}

/** The legend printed under the pictures. */
function legend(colour: boolean): string[] {
  const paint = (s: string, style: Style): string => (colour ? `\x1b[${ANSI[style]}m${s}\x1b[0m` : s);
  return [
    ...(Object.keys(KIND_LABEL) as HopKind[]).map((k) => `${paint(STROKE[k][0].repeat(4), k)} ${KIND_LABEL[k]}: ${KIND_MEANING[k]}`),
    `${paint('════', 'boundary')} the user/kernel boundary: each system call crosses it twice`,
    ...wrap(LOOPBACK_NOTE, TEXT_WIDTH),
  ];
}

function readResults(file: string): BenchReport {
  let text: string;
  try {
    text = readFileSync(file === '-' ? 0 : file, 'utf8');
  } catch (err) {
    throw Object.assign(new Error(`cannot read --results: ${(err as Error).message}`), { code: (err as NodeJS.ErrnoException).code });
  }
  let report: BenchReport;
  try {
    report = JSON.parse(text) as BenchReport;
  } catch {
    throw new UsageError(`--results ${file} is not JSON: give it the output of 'zerocopy bench --json'`);
  }
  const schema = (report as { schema?: unknown }).schema;
  if (schema !== 'zerocopy-bench/1' && schema !== 'zerocopy-bench/2') {
    throw new UsageError(`--results ${file} is not 'zerocopy bench --json' output (schema ${JSON.stringify(schema)}, expected zerocopy-bench/1 or /2)`);
  }
  return report;
}

export async function explain(args: string[]): Promise<void> {
  const parsed = parse(args, { results: { type: 'string' } }, HELP, true);
  if (!parsed) return;
  const all = models();
  const ids = parsed.positionals.filter((id) => id !== 'all');
  const unknown = ids.filter((id) => !all.some((p) => p.id === id));
  if (unknown.length) throw new UsageError(`unknown path '${unknown[0]}': one of ${all.map((p) => p.id).join(', ')}`);
  const file = str(parsed, 'results');
  if (file === '') throw new UsageError('--results needs a FILE');
  const report = file === undefined ? undefined : readResults(file);
  const colour = Boolean(process.stdout.isTTY && process.stdout.hasColors?.());
  const chosen = ids.length ? all.filter((p) => ids.includes(p.id)) : all;
  const out: string[] = [];
  if (report) {
    const m = report.machine;
    out.push(
      `results: ${m.cores} cores, Linux ${m.kernel}, ${m.filesystem}; ${(report.workload.bytes / 1048576).toFixed(0)} MiB per path, median of ${report.workload.runs} run(s)`,
      `${cacheLine(report)}.`,
      '',
    );
  }
  for (const model of chosen) {
    // The figures come from the run, the picture from this version's model.
    const result = report?.paths.find((q) => q.id === model.id);
    out.push(...explainPath(result ? { ...result, model: model.model } : model, result !== undefined, colour), '');
  }
  out.push(...legend(colour));
  process.stdout.write(`${out.join('\n')}\n`);
}

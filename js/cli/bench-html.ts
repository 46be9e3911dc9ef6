/**
 * The `zerocopy bench --html FILE` report: one self-contained page (inline CSS and SVG, no scripts,
 * nothing fetched). First the seed's pictures, one per path, side by side: where the bytes go, which
 * hops the CPU copies and which DMA does, the user/kernel boundary with its switches, and this
 * machine's figures under each. Then bar charts of throughput and CPU per GiB, and the full table.
 */
import type { BenchReport, Group, PathResult } from './bench-report.js';
import {
  BAND_LABEL,
  boundaryLabel,
  cacheLine,
  cacheShares,
  describe,
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

function escape(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] as string);
}

// The pictures: one SVG per path, laid out as pictures.ts describes (bands top to bottom, columns left to right).

const WIDTH = 390;
const HEIGHT = 370;
const COLUMN_X = [22, 159, 296] as const;
const BOX_W = 90;
const NARROW_W = 56;
const BANDS: Record<Band, { y: number; h: number; label: number }> = {
  user: { y: 56, h: 40, label: 82 },
  kernel: { y: 150, h: 44, label: 172 },
  device: { y: 238, h: 40, label: 258 },
};
const BOUNDARY_Y = 124;
const SEPARATOR_Y = 222;
const FIGURES_Y = 304;
const LINE = 17;

const KIND_STYLE: Record<HopKind, { colour: string; width: number; dash?: string; text: string }> = {
  cpu: { colour: '#dc2626', width: 2.5, text: '#b91c1c' },
  dma: { colour: '#2563eb', width: 2, text: '#1d4ed8' },
  reference: { colour: '#6b7280', width: 2, dash: '5 3', text: '#4b5563' },
  mapped: { colour: '#7c3aed', width: 2, dash: '2 3', text: '#6d28d9' },
};
const BAND_FILL: Record<Band, string> = { user: '#fef3c7', kernel: '#e0e7ff', device: '#e5e7eb' };

interface Rect {
  x: number;
  y: number;
  w: number;
  h: number;
}
interface Point {
  x: number;
  y: number;
}

function rectOf(place: Place): Rect {
  const band = BANDS[place.band];
  if (place.wide) return { x: COLUMN_X[0], y: band.y, w: COLUMN_X[2] + BOX_W - COLUMN_X[0], h: band.h };
  const w = place.narrow ? NARROW_W : BOX_W;
  return { x: COLUMN_X[place.column] + (BOX_W - w) / 2, y: band.y, w, h: band.h };
}

const centreOf = (column: number): number => (COLUMN_X[column] ?? 0) + BOX_W / 2;
const n1 = (v: number): string => (Number.isInteger(v) ? String(v) : v.toFixed(1));

/** Where a hop's line starts and ends: on the facing sides of the two boxes. */
function endsOf(from: Place, to: Place): [Point, Point] {
  const a = rectOf(from);
  const b = rectOf(to);
  if (from.band === to.band) {
    const y = a.y + a.h / 2;
    return b.x > a.x ? [{ x: a.x + a.w, y }, { x: b.x, y }] : [{ x: a.x, y }, { x: b.x + b.w, y }];
  }
  const down = b.y > a.y;
  const yA = down ? a.y + a.h : a.y;
  const yB = down ? b.y : b.y + b.h;
  if (from.wide || to.wide || from.column === to.column) {
    const x = centreOf(from.wide ? to.column : from.column);
    return [{ x, y: yA }, { x, y: yB }];
  }
  // A diagonal (sendfile's gathering DMA): from near the source's corner to near the target's.
  const sign = to.column > from.column ? 1 : -1;
  return [
    { x: centreOf(from.column) + sign * (a.w / 2 - 12), y: yA },
    { x: centreOf(to.column) - sign * (b.w / 2 - 12), y: yB },
  ];
}

/** Each kind of text's look, as attributes, so that an SVG copied out of the page looks the same. */
const TEXT_STYLE: Record<string, string> = {
  name: 'font-size="14" font-weight="700" fill="#111827"',
  model: 'font-size="12" fill="#374151"',
  band: 'font-size="11" fill="#6b7280"',
  empty: 'font-size="12" font-style="italic" fill="#6b7280"',
  boundary: 'font-size="11.5" fill="#92400e"',
  'place-label': 'font-size="12" fill="#111827"',
  'place-sub': 'font-size="11" fill="#374151"',
  'hop-label': 'font-size="11.5"',
  figure: 'font-size="12" fill="#111827"',
  lead: 'font-size="12.5" font-weight="700" fill="#111827"',
};

function text(x: number, y: number, body: string, kind: keyof typeof TEXT_STYLE, attrs = ''): string {
  return `<text class="${kind}" x="${n1(x)}" y="${n1(y)}" ${TEXT_STYLE[kind]}${attrs ? ` ${attrs}` : ''}>${escape(body)}</text>`;
}

function hopSvg(picture: Picture, hop: Hop): string {
  const from = placeOf(picture, hop.from);
  const to = placeOf(picture, hop.to);
  const [a, b] = endsOf(from, to);
  const style = KIND_STYLE[hop.kind];
  const len = Math.hypot(b.x - a.x, b.y - a.y);
  const d = { x: (b.x - a.x) / len, y: (b.y - a.y) / len };
  const arrow = hop.kind !== 'mapped';
  const end = arrow ? { x: b.x - d.x * 9, y: b.y - d.y * 9 } : b;
  const parts = [
    `<line x1="${n1(a.x)}" y1="${n1(a.y)}" x2="${n1(end.x)}" y2="${n1(end.y)}" stroke="${style.colour}" stroke-width="${style.width}"${style.dash ? ` stroke-dasharray="${style.dash}"` : ''}/>`,
  ];
  if (arrow) {
    const side = { x: -d.y * 4.5, y: d.x * 4.5 };
    const points = [b, { x: end.x + side.x, y: end.y + side.y }, { x: end.x - side.x, y: end.y - side.y }];
    parts.push(`<polygon points="${points.map((p) => `${n1(p.x)},${n1(p.y)}`).join(' ')}" fill="${style.colour}"/>`);
  }
  const label = `fill="${style.text}"`;
  if (a.y === b.y) {
    // Horizontal: the kind above the line, what makes it happen below.
    const x = (a.x + b.x) / 2;
    parts.push(text(x, a.y - 6, KIND_LABEL[hop.kind], 'hop-label', `${label} text-anchor="middle" font-weight="600"`));
    if (hop.via) parts.push(text(x, a.y + 15, hop.via, 'hop-label', `${label} text-anchor="middle"`));
  } else if (a.x === b.x) {
    // Vertical: beside the line, just under the upper box, or, for a line crossing the kernel
    // without stopping (O_DIRECT's disk → user buffer), just under the kernel; on the right
    // column, to the line's left.
    const y = (from.band !== 'kernel' && to.band !== 'kernel' ? BANDS.kernel.y + BANDS.kernel.h : Math.min(a.y, b.y)) + 14;
    const left = a.x > WIDTH / 2 + 40;
    parts.push(text(left ? a.x - 6 : a.x + 6, y, hopLabel(hop), 'hop-label', `${label}${left ? ' text-anchor="end"' : ''} font-weight="600"`));
  } else {
    parts.push(text((a.x + b.x) / 2 - 10, (a.y + b.y) / 2 - 8, hopLabel(hop), 'hop-label', `${label} font-weight="600"`));
  }
  return `<g class="hop" data-kind="${hop.kind}" data-from="${escape(hop.from)}" data-to="${escape(hop.to)}">${parts.join('')}</g>`;
}

function placeSvg(place: Place, cache: CacheShares | null): string {
  const r = rectOf(place);
  const cx = r.x + r.w / 2;
  const parts = [
    `<rect x="${n1(r.x)}" y="${r.y}" width="${n1(r.w)}" height="${r.h}" rx="6" fill="${place.bypassed ? '#fff' : BAND_FILL[place.band]}" stroke="${place.bypassed ? '#9ca3af' : '#475569'}"${place.bypassed ? ' stroke-dasharray="4 3"' : ''}/>`,
  ];
  if (place.sub) {
    parts.push(text(cx, r.y + 17, place.label, 'place-label', 'text-anchor="middle"'));
    parts.push(text(cx, r.y + 31, place.sub, 'place-sub', 'text-anchor="middle"'));
  } else {
    parts.push(text(cx, r.y + r.h / 2 + 4, place.label, 'place-label', 'text-anchor="middle"'));
  }
  const shown = shownResidency(place, cache);
  if (place.residency && shown !== undefined) {
    // How much of the file the page cache holds after the run, as a meter along the box's foot.
    const w = r.w - 16;
    parts.push(
      `<g class="meter"><title>${escape(`${share(shown)} of the ${place.residency} in the page cache after the run`)}</title>` +
        `<rect x="${n1(r.x + 8)}" y="${r.y + r.h - 8}" width="${n1(w)}" height="4" fill="#cbd5e1"/>` +
        `<rect x="${n1(r.x + 8)}" y="${r.y + r.h - 8}" width="${n1(w * shown)}" height="4" fill="#0f766e"/></g>`,
    );
  }
  return `<g class="place" data-place="${escape(place.id)}">${parts.join('')}</g>`;
}

/** One path's picture, with its figures when it was measured. */
export function diagram(p: PathResult, measured: boolean): string {
  const picture = p.model;
  const id = `picture-${p.id.replace(/[^a-z0-9-]/gi, '-')}`;
  const cache = cacheShares(p);
  const figures = measured ? figureLines(p) : ['the model alone: not measured'];
  const bands = (['user', 'kernel', 'device'] as Band[])
    .map((band) => text(10, BANDS[band].label, BAND_LABEL[band], 'band', `text-anchor="middle" transform="rotate(-90 10 ${BANDS[band].label})"`))
    .join('');
  const empty = picture.places.some((q) => q.band === 'user')
    ? ''
    : text(WIDTH / 2 + 8, 83, 'no bytes in user space', 'empty', 'text-anchor="middle"');
  return `<svg class="diagram${p.available ? '' : ' absent'}" data-path="${escape(p.id)}" xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${HEIGHT}" viewBox="0 0 ${WIDTH} ${HEIGHT}" font-family="system-ui, sans-serif" role="img" aria-labelledby="${id}-title ${id}-desc">
<title id="${id}-title">${escape(`${p.group}: ${p.name}`)}</title>
<desc id="${id}-desc">${escape(`${describe(picture)}. ${boundaryLabel(picture)}. ${figures.join('; ')}.`)}</desc>
${text(4, 19, p.name, 'name')}
${text(4, 38, modelLine(picture), 'model')}
${bands}${empty}
<line x1="0" y1="${BOUNDARY_Y}" x2="${WIDTH}" y2="${BOUNDARY_Y}" stroke="#b45309" stroke-width="2" stroke-dasharray="7 4"/>
${text(WIDTH / 2 + 10, BOUNDARY_Y + 15, boundaryLabel(picture), 'boundary', 'text-anchor="middle"')}
<line x1="20" y1="${SEPARATOR_Y}" x2="${WIDTH}" y2="${SEPARATOR_Y}" stroke="#9ca3af" stroke-dasharray="1 3"/>
${picture.places.map((q) => placeSvg(q, measured ? cache : null)).join('\n')}
${picture.hops.map((h) => hopSvg(picture, h)).join('\n')}
${figures.map((line, i) => text(4, FIGURES_Y + i * LINE, line, i === 0 && measured && p.available ? 'lead' : 'figure')).join('\n')}
</svg>`;
}

const GROUP_COLOURS: Record<string, string> = {
  'file → socket': '#2563eb',
  'file → file': '#059669',
  'socket → socket': '#d97706',
};

/** A horizontal bar chart of one metric over the paths that ran. */
function chart(title: string, unit: string, paths: PathResult[], value: (p: PathResult) => number, id: string): string {
  const rows = paths.filter((p) => p.available && Number.isFinite(value(p)));
  const max = Math.max(...rows.map(value), 1e-9);
  const labelWidth = 300;
  const barWidth = 420;
  const rowHeight = 26;
  const height = rows.length * rowHeight + 40;
  const bars = rows
    .map((p, i) => {
      const y = 30 + i * rowHeight;
      const w = Math.max(1, (value(p) / max) * barWidth);
      const colour = GROUP_COLOURS[p.group] ?? '#6b7280';
      return [
        `<text x="${labelWidth - 8}" y="${y + 15}" text-anchor="end" class="label">${escape(`${p.group}: ${p.name}`)}</text>`,
        `<rect class="bar" data-path="${escape(p.id)}" x="${labelWidth}" y="${y}" width="${w.toFixed(1)}" height="${rowHeight - 8}" fill="${colour}"><title>${escape(`${p.name}: ${value(p).toFixed(3)} ${unit}`)}</title></rect>`,
        `<text x="${labelWidth + w + 6}" y="${y + 15}" class="value">${value(p) >= 100 ? value(p).toFixed(0) : value(p).toFixed(3)}</text>`,
      ].join('');
    })
    .join('\n');
  return `<figure><svg id="${id}" class="chart" xmlns="http://www.w3.org/2000/svg" width="${labelWidth + barWidth + 90}" height="${height}" role="img" aria-label="${escape(title)}">
<text x="0" y="16" class="title">${escape(`${title} (${unit})`)}</text>
${bars}
</svg></figure>`;
}

function cached(c: CacheShares | null): string {
  return c ? `${share(c.before)} → ${share(c.after)}${c.copyAfter === undefined ? '' : `; copy ${share(c.copyAfter)}`}` : '–';
}

function cell(v: number | null, digits = 0): string {
  return v === null ? '–' : v.toFixed(digits);
}

/** The legend of the pictures: what each kind of hop and the boundary mean. */
function legend(): string {
  const kinds = (Object.keys(KIND_LABEL) as HopKind[])
    .map((kind) => {
      const style = KIND_STYLE[kind];
      const sample = `<svg width="34" height="10" aria-hidden="true"><line x1="1" y1="5" x2="33" y2="5" stroke="${style.colour}" stroke-width="${style.width}"${style.dash ? ` stroke-dasharray="${style.dash}"` : ''}/></svg>`;
      return `<li>${sample} <b style="color:${style.text}">${escape(KIND_LABEL[kind])}</b>: ${escape(KIND_MEANING[kind])}</li>`;
    })
    .join('');
  const boundary = '<svg width="34" height="10" aria-hidden="true"><line x1="1" y1="5" x2="33" y2="5" stroke="#b45309" stroke-width="2" stroke-dasharray="7 4"/></svg>';
  return `<ul class="legend">${kinds}<li>${boundary} <b style="color:#92400e">user/kernel boundary</b>: each system call crosses it twice (into the kernel and back), the seed's switches per chunk</li>
<li><span class="meter-sample" aria-hidden="true"><span></span></span> <b>in a page cache box</b>: how much of the file (or of the copy) the page cache holds after the run</li></ul>`;
}

/** A path's picture with its text alternative and the seed's caveat under it. */
function card(p: PathResult): string {
  return `<figure class="card${p.available ? '' : ' absent'}" id="path-${escape(p.id)}">
${diagram(p, true)}
<figcaption><span class="trip">${escape(describe(p.model))}.</span> ${escape(p.model.note)}</figcaption>
</figure>`;
}

function pictures(report: BenchReport): string {
  const groups: Group[] = ['file → socket', 'file → file', 'socket → socket'];
  return groups
    .map((group) => {
      const members = report.paths.filter((p) => p.group === group);
      if (members.length === 0) return '';
      const loopback = group === 'file → file' ? '' : `<p class="note">${escape(LOOPBACK_NOTE)}</p>`;
      return `<section class="group"><h3>${escape(group)}</h3>${loopback}<div class="cards">
${members.map(card).join('\n')}
</div></section>`;
    })
    .join('\n');
}

/** The report page. */

export function renderHtml(report: BenchReport): string {
  const m = report.machine;
  const rows = report.paths
    .map(
      (p) => `<tr class="${p.available ? '' : 'absent'}"><td>${escape(p.group)}</td><td>${escape(p.name)}</td><td>${escape(p.mechanism)}</td>` +
        (p.available
          ? `<td>${cell(p.mibPerSecond)}</td><td>${cell(p.cpuSecondsPerGiB, 3)}</td><td>${p.syscallsEstimated ? '≈' : ''}${cell(p.syscalls)}</td>` +
            `<td>${cell(p.voluntaryContextSwitches)}</td><td>${cell(p.involuntaryContextSwitches)}</td><td>${cached(cacheShares(p))}</td>`
          : `<td colspan="6">not here: ${escape(p.reason ?? '')}</td>`) +
        `<td>${p.model.cpuCopies}</td><td>${p.model.userKernelSwitchesPerChunk}</td><td>${p.baseline ? 'baseline' : p.speedup === null ? '–' : `${p.speedup.toFixed(2)}×`}</td></tr>`,
    )
    .join('\n');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>zerocopy bench — ${escape(m.kernel)}</title>
<style>
body{font:14px/1.45 system-ui,sans-serif;margin:1.25rem;color:#111;max-width:1240px}
h1{font-size:1.4rem}h2{font-size:1.15rem;margin-top:2rem}h3{font-size:1rem;margin:1.2rem 0 .3rem}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(392px,1fr));gap:14px 12px}
.card{margin:0;border:1px solid #e5e7eb;border-radius:8px;padding:6px 4px 8px}
.card svg{display:block;max-width:100%;height:auto}.card.absent svg{opacity:.6}
figcaption{font-size:12.5px;color:#374151;padding:0 4px}.trip{color:#111}
.note{font-size:13px;color:#4b5563;margin:.2rem 0 .6rem;max-width:60rem}
.legend{list-style:none;padding:0;font-size:13px;columns:2;column-gap:2rem}.legend li{margin:.15rem 0;break-inside:avoid}
.meter-sample{display:inline-block;width:34px;height:4px;background:#cbd5e1;vertical-align:middle}.meter-sample span{display:block;width:60%;height:4px;background:#0f766e}
.cache{font-weight:600}table{border-collapse:collapse;margin:1rem 0}td,th{border-bottom:1px solid #ddd;padding:.3rem .6rem;text-align:right}
td:nth-child(-n+3),th:nth-child(-n+3){text-align:left}tr.absent{color:#888}
.chart .label{font-size:12px}.chart .value{font-size:12px;fill:#333}.chart .title{font-weight:600;font-size:14px}
figure{margin:1.5rem 0}.winners li{margin:.3rem 0}
</style></head><body>
<h1>zerocopy bench</h1>
<p>${escape(m.cores.toString())} cores (${escape(m.cpu)}), Linux ${escape(m.kernel)}, Node ${escape(m.node)}; ${escape(m.filesystem)} at ${escape(m.dir)}.
${(report.workload.bytes / 1048576).toFixed(0)} MiB per path, median of ${report.workload.runs} run(s). zerocopy ${escape(report.version)}.</p>
<p class="cache">${escape(cacheLine(report))}.</p>
<ul class="winners">${report.winners.map((w) => `<li>${escape(w.line)}</li>`).join('')}</ul>
<h2>Where the bytes go: the seed's pictures, with this machine's figures</h2>
${legend()}
${pictures(report)}
<h2>Throughput and CPU</h2>
${chart('Throughput', 'MiB/s', report.paths, (p) => p.mibPerSecond ?? NaN, 'throughput')}
${chart('CPU per GiB', 'CPU s/GiB', report.paths, (p) => p.cpuSecondsPerGiB ?? NaN, 'cpu')}
<table><thead><tr><th>group</th><th>path</th><th>mechanism</th><th>MiB/s</th><th>CPU s/GiB</th><th>syscalls</th><th>vol cs</th><th>invol cs</th><th>file cached before → after</th><th>CPU copies</th><th>switches/chunk</th><th>vs baseline</th></tr></thead>
<tbody>
${rows}
</tbody></table>
<p>CPU copies and user/kernel switches per chunk are the seed article's model of each path; syscalls are counted by
zerocopy's native layer (≈: Node's own reads and writes estimated from its chunks); cs are context switches of the
measuring process; cached is the workload file's page-cache residency (mincore) before the run (the worst run) and
after it (the median). Throughput and CPU are measured here, now.</p>
</body></html>
`;
}

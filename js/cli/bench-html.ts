/**
 * The `zerocopy bench --html FILE` report: one self-contained page (inline CSS and SVG, no scripts,
 * nothing fetched) with bar charts of throughput and CPU per GiB, and the full table.
 */
import type { BenchReport, PathResult } from './bench.js';

function escape(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] as string);
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

function cell(v: number | null, digits = 0): string {
  return v === null ? '–' : v.toFixed(digits);
}

/** The report page. */
export function renderHtml(report: BenchReport): string {
  const m = report.machine;
  const rows = report.paths
    .map(
      (p) => `<tr class="${p.available ? '' : 'absent'}"><td>${escape(p.group)}</td><td>${escape(p.name)}</td><td>${escape(p.mechanism)}</td>` +
        (p.available
          ? `<td>${cell(p.mibPerSecond)}</td><td>${cell(p.cpuSecondsPerGiB, 3)}</td><td>${p.syscallsEstimated ? '≈' : ''}${cell(p.syscalls)}</td>` +
            `<td>${cell(p.voluntaryContextSwitches)}</td><td>${cell(p.involuntaryContextSwitches)}</td>`
          : `<td colspan="5">not here: ${escape(p.reason ?? '')}</td>`) +
        `<td>${p.model.cpuCopies}</td><td>${p.model.userKernelSwitchesPerChunk}</td><td>${p.baseline ? 'baseline' : p.speedup === null ? '–' : `${p.speedup.toFixed(2)}×`}</td></tr>`,
    )
    .join('\n');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>zerocopy bench — ${escape(m.kernel)}</title>
<style>
body{font:14px/1.45 system-ui,sans-serif;margin:2rem;color:#111;max-width:1100px}
h1{font-size:1.4rem}table{border-collapse:collapse;margin:1rem 0}td,th{border-bottom:1px solid #ddd;padding:.3rem .6rem;text-align:right}
td:nth-child(-n+3),th:nth-child(-n+3){text-align:left}tr.absent{color:#888}
.chart .label{font-size:12px}.chart .value{font-size:12px;fill:#333}.chart .title{font-weight:600;font-size:14px}
figure{margin:1.5rem 0}.winners li{margin:.3rem 0}
</style></head><body>
<h1>zerocopy bench</h1>
<p>${escape(m.cores.toString())} cores (${escape(m.cpu)}), Linux ${escape(m.kernel)}, Node ${escape(m.node)}; ${escape(m.filesystem)} at ${escape(m.dir)}.
${(report.workload.bytes / 1048576).toFixed(0)} MiB per path, median of ${report.workload.runs} run(s). zerocopy ${escape(report.version)}.</p>
<ul class="winners">${report.winners.map((w) => `<li>${escape(w.line)}</li>`).join('')}</ul>
${chart('Throughput', 'MiB/s', report.paths, (p) => p.mibPerSecond ?? NaN, 'throughput')}
${chart('CPU per GiB', 'CPU s/GiB', report.paths, (p) => p.cpuSecondsPerGiB ?? NaN, 'cpu')}
<table><thead><tr><th>group</th><th>path</th><th>mechanism</th><th>MiB/s</th><th>CPU s/GiB</th><th>syscalls</th><th>vol cs</th><th>invol cs</th><th>CPU copies</th><th>switches/chunk</th><th>vs baseline</th></tr></thead>
<tbody>
${rows}
</tbody></table>
<p>CPU copies and user/kernel switches per chunk are the seed article's model of each path; syscalls are counted by
zerocopy's native layer (≈: Node's own reads and writes estimated from its chunks); cs are context switches of the
measuring process. Throughput and CPU are measured here, now.</p>
</body></html>
`;
}

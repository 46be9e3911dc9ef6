// The bench tells the seed's story in pictures: the JSON schema's hops and residency, the SVG picture
// of every path in a --quick report, the report in headless Chromium at 1280 px (every picture there,
// its labels and figures legible: big enough, inside the picture, not on top of each other), the same
// pictures in the terminal (`zerocopy explain`), and `--cold` on a filesystem that evicts and on tmpfs,
// which cannot. No assertion here is about speed: figures are checked for being shown, not for values.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync, execFileSync } from 'node:child_process';
import { closeSync, existsSync, fsyncSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { residency, sys } from 'zerocopy';

import { scratch, MiB } from './helpers.mjs';

const bin = fileURLToPath(new URL('../bin/zerocopy.mjs', import.meta.url));
const s = scratch();
test.after(() => s.cleanup());

function run(args, env = {}) {
  const r = spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8', timeout: 120_000, env: { ...process.env, ...env } });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

/** One `bench --quick --json --html` run, shared by the tests that read its results. */
let quick;
function quickRun() {
  if (!quick) {
    const html = s.path('report.html');
    const r = run(['bench', '--quick', '--json', '--html', html, '--dir', s.dir]);
    assert.is(r.code, 0, r.err);
    writeFileSync(s.path('results.json'), r.out);
    quick = { report: JSON.parse(r.out), html, page: readFileSync(html, 'utf8'), json: s.path('results.json') };
  }
  return quick;
}

// The seed's counts per chunk (schema 1's fields): syscalls, user/kernel switches, CPU copies, DMA copies.
const SEED = {
  'node-streams': [2, 4, 2, 2],
  readwrite: [2, 4, 2, 2],
  'mmap-write': [2, 4, 1, 2],
  sendfile: [1, 2, 0, 2],
  splice: [2, 4, 0, 2],
  direct: [2, 4, 1, 2],
  'copy-readwrite': [2, 4, 2, 2],
  copy_file_range: [1, 2, 1, 2],
  reflink: [1, 2, 0, 0],
  'node-pipe': [2, 4, 2, 2],
  'splice-relay': [2, 4, 0, 2],
};
const KINDS = { cpu: 'CPU copy', dma: 'DMA', reference: 'by ref', mapped: 'mapped' };
const ofKind = (model, kind) => model.hops.filter((h) => h.kind === kind).length;
const escape = (t) => t.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&#39;');
/** As the bench prints a share of pages: one decimal below 10%. */
const pct = (part, whole) => {
  const v = (100 * part) / whole;
  return `${v > 0 && v < 10 ? v.toFixed(1) : v.toFixed(0)}%`;
};
const unescape = (t) => t.replace(/&#39;/g, "'").replace(/&quot;/g, '"').replace(/&gt;/g, '>').replace(/&lt;/g, '<').replace(/&amp;/g, '&');
const boundary = (model) => `${model.calls.join(' + ')}: ${2 * model.calls.length} switches per chunk`;

test("schema 2: each path's model is its picture (places, hops with their kind, calls); schema 1's counts keep their values", () => {
  const { report } = quickRun();
  assert.is(report.schema, 'zerocopy-bench/2');
  assert.equal(report.paths.map((p) => p.id).sort(), Object.keys(SEED).sort());
  for (const p of report.paths) {
    const m = p.model;
    assert.equal([m.syscallsPerChunk, m.userKernelSwitchesPerChunk, m.cpuCopies, m.dmaCopies], SEED[p.id], p.id);
    // The counts are read off the picture.
    assert.is(m.calls.length, m.syscallsPerChunk, p.id);
    assert.is(ofKind(m, 'cpu'), m.cpuCopies, p.id);
    assert.is(ofKind(m, 'dma'), m.dmaCopies, p.id);
    const places = new Set(m.places.map((q) => q.id));
    assert.is(places.size, m.places.length, `${p.id}: place ids unique`);
    for (const q of m.places) {
      assert.ok(['user', 'kernel', 'device'].includes(q.band) && [0, 1, 2].includes(q.column), `${p.id}.${q.id}`);
      assert.ok(q.bypassed || m.hops.some((h) => h.from === q.id || h.to === q.id), `${p.id}: ${q.id} is on the trip`);
    }
    for (const h of m.hops) {
      assert.ok(h.kind in KINDS, `${p.id}: kind ${h.kind}`);
      assert.ok(places.has(h.from) && places.has(h.to), `${p.id}: ${h.from} → ${h.to}`);
    }
    assert.ok(m.note.length > 40, p.id);
  }
  // Where the seed draws bytes through user space, the picture has a user buffer; where it does not, none.
  const user = (id) => report.paths.find((p) => p.id === id).model.places.some((q) => q.band === 'user');
  for (const id of ['node-streams', 'readwrite', 'mmap-write', 'direct', 'copy-readwrite', 'node-pipe']) assert.ok(user(id), id);
  for (const id of ['sendfile', 'splice', 'copy_file_range', 'reflink', 'splice-relay']) assert.not.ok(user(id), id);
  const direct = report.paths.find((p) => p.id === 'direct').model;
  assert.ok(direct.places.find((q) => q.id === 'page-cache').bypassed, 'O_DIRECT bypasses the page cache');
  assert.ok(direct.hops.some((h) => h.from === 'disk' && h.to === 'user-buffer' && h.kind === 'dma'), 'the disk DMAs into the user buffer');
});

test('residency: a warm run starts with the whole file cached; every run reports before and after, file → file also the copy', () => {
  const { report } = quickRun();
  for (const p of report.paths) {
    if (!p.available) {
      assert.is(p.residency, null, p.id);
      continue;
    }
    const r = p.residency;
    assert.is(r.pages, (16 * MiB) / 4096, p.id);
    assert.is(r.before.length, 1, p.id);
    assert.is(r.after.length, 1, p.id);
    assert.is(r.before[0], r.pages, `${p.id} starts warm`);
    assert.ok(r.after[0] >= 0 && r.after[0] <= r.pages, p.id);
    assert.is(p.group === 'file → file', Array.isArray(r.copyAfter), `${p.id}: copyAfter only for copies`);
  }
});

test("the --quick report has every path's picture as inline SVG: places, hops by kind, the boundary, the figures, a text alternative", () => {
  const { report, page } = quickRun();
  assert.equal(page.match(/<script|<link|<img|@import|@font-face|url\(|\ssrc=|\shref=/g), null, 'nothing fetched, nothing run');
  assert.match(page, /warm: the file was read into the page cache before each run/);
  for (const p of report.paths) {
    const svg = new RegExp(`<svg class="diagram[^"]*" data-path="${p.id}"[\\s\\S]*?</svg>`).exec(page)?.[0];
    assert.ok(svg, `${p.id} has a picture`);
    const id = `picture-${p.id.replace(/_/g, '-')}`;
    assert.ok(svg.includes(`role="img" aria-labelledby="${id}-title ${id}-desc"`), `${p.id}: labelled by its title and description`);
    assert.ok(svg.includes(`<title id="${id}-title">${escape(`${p.group}: ${p.name}`)}</title>`), `${p.id} title`);
    const desc = unescape(/<desc [^>]*>([^<]+)<\/desc>/.exec(svg)?.[1] ?? '');
    const m = p.model;
    for (const q of m.places) {
      assert.ok(svg.includes(`data-place="${q.id}"`) && svg.includes(`>${escape(q.label)}</text>`), `${p.id}: ${q.id} drawn and labelled`);
      if (q.sub) assert.ok(svg.includes(`>${escape(q.sub)}</text>`), `${p.id}: ${q.sub}`);
    }
    for (const kind of Object.keys(KINDS)) {
      assert.is((svg.match(new RegExp(`<g class="hop" data-kind="${kind}"`, 'g')) ?? []).length, ofKind(m, kind), `${p.id}: ${kind} hops`);
    }
    for (const h of m.hops) {
      assert.ok(svg.includes(`data-kind="${h.kind}" data-from="${h.from}" data-to="${h.to}"`), `${p.id}: ${h.from} → ${h.to}`);
      assert.ok(svg.includes(`>${escape(KINDS[h.kind])}`), `${p.id}: ${h.kind} labelled`);
      if (h.via) assert.ok(svg.includes(escape(h.via)), `${p.id}: ${h.via}`);
    }
    assert.ok(svg.includes(`>${escape(boundary(m))}</text>`), `${p.id}: the boundary says ${boundary(m)}`);
    assert.ok(svg.includes(`${m.cpuCopies} CPU cop`) && svg.includes(`${m.dmaCopies} DMA`), `${p.id}: the model line`);
    const figures = [...svg.matchAll(/<text class="(?:figure|lead)"[^>]*>([^<]*)<\/text>/g)].map((x) => unescape(x[1])).join('\n');
    if (p.available) {
      const c = p.residency;
      for (const want of [
        `${p.mibPerSecond.toFixed(0)} MiB/s`,
        `${p.cpuSecondsPerGiB.toFixed(3)} CPU s/GiB`,
        `${p.syscallsEstimated ? '≈' : ''}${p.syscalls} syscall`,
        `context switches: ${p.voluntaryContextSwitches} vol, ${p.involuntaryContextSwitches} invol`,
        `${p.group === 'socket → socket' ? "source's " : ''}file cached: 100% before → ${pct(c.after[0], c.pages)} after`,
        p.baseline ? 'baseline' : `${p.speedup.toFixed(2)}× baseline`,
      ]) {
        assert.ok(figures.includes(want), `${p.id}: "${want}" in\n${figures}`);
        assert.ok(desc.includes(want), `${p.id}: the text alternative has "${want}"`);
      }
      if (p.group === 'file → file') assert.ok(figures.includes('copy cached: '), p.id);
      // The page cache's meter shows the same share.
      if (m.places.some((q) => q.residency === 'file')) assert.match(svg, /<g class="meter"><title>\d+(\.\d)?% of the file in the page cache after the run<\/title>/);
    } else {
      assert.ok(figures.includes('not measured here:') && figures.includes(p.reason), `${p.id}: says why it did not run`);
    }
    // Under the picture, the trip in words and the seed's caveat.
    const caption = new RegExp(`id="path-${p.id}">[\\s\\S]*?<figcaption>([\\s\\S]*?)</figcaption>`).exec(page)?.[1] ?? '';
    for (const h of m.hops) assert.ok(caption.includes(escape(KINDS[h.kind])), `${p.id}: caption names ${h.kind}`);
    assert.ok(caption.includes(escape(m.note)), `${p.id}: caption has the note`);
  }
});

// Measures, in the page as Chromium lays it out, each picture and each text in it (in CSS px).
const MEASURE = `<script>
const out = { width: innerWidth, height: document.documentElement.scrollHeight, diagrams: [], bars: document.querySelectorAll('rect.bar').length };
for (const svg of document.querySelectorAll('svg.diagram')) {
  const box = svg.getBoundingClientRect();
  const scale = box.width / svg.viewBox.baseVal.width;
  const texts = [...svg.querySelectorAll('text')].map((t) => {
    const r = t.getBoundingClientRect();
    return { text: t.textContent, x: r.left, y: r.top, w: r.width, h: r.height, px: parseFloat(getComputedStyle(t).fontSize) * scale };
  });
  out.diagrams.push({ path: svg.dataset.path, x: box.left, y: box.top, w: box.width, h: box.height, texts });
}
const pre = document.createElement('pre');
pre.id = 'measured';
pre.textContent = JSON.stringify(out);
document.body.append(pre);
</script>`;

const chromium = ['/usr/bin/chromium', '/usr/bin/chromium-browser'].find((p) => existsSync(p));
(chromium ? test : test.skip)('in headless Chromium at 1280 px: every picture side by side, labels and figures ≥ 11 px, none clipped or overlapping; charts drawn; a screenshot', () => {
  const { report, html, page } = quickRun();
  const flags = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync', `--user-data-dir=${s.path('chrome-profile')}`];
  const measuring = s.path('measure.html');
  writeFileSync(measuring, page.replace('</body>', `${MEASURE}</body>`));
  const dom = execFileSync(chromium, [...flags, '--window-size=1280,1000', '--dump-dom', `file://${measuring}`], { encoding: 'utf8', timeout: 60_000, stdio: ['ignore', 'pipe', 'ignore'] });
  const json = /<pre id="measured">([^<]*)<\/pre>/.exec(dom)?.[1];
  assert.ok(json, 'the page rendered and was measured');
  const m = JSON.parse(unescape(json));
  assert.is(m.width, 1280);
  assert.ok(m.bars >= 12, `${m.bars} chart bars`);
  assert.equal(m.diagrams.map((d) => d.path), report.paths.map((p) => p.id), 'one picture per path, in order');
  for (const d of m.diagrams) {
    const p = report.paths.find((q) => q.id === d.path);
    assert.ok(d.w >= 380 && d.x >= 0 && d.x + d.w <= 1280, `${d.path}: ${d.w} px wide at x ${d.x}, not squeezed, inside the window`);
    for (const t of d.texts) {
      assert.ok(t.px >= 11, `${d.path}: "${t.text}" is ${t.px} px`);
      assert.ok(t.w > 0 && t.x >= d.x - 0.5 && t.x + t.w <= d.x + d.w + 0.5 && t.y >= d.y - 0.5 && t.y + t.h <= d.y + d.h + 0.5, `${d.path}: "${t.text}" inside its picture`);
    }
    for (let i = 0; i < d.texts.length; i++) {
      for (let j = i + 1; j < d.texts.length; j++) {
        const [a, b] = [d.texts[i], d.texts[j]];
        const w = Math.min(a.x + a.w, b.x + b.w) - Math.max(a.x, b.x);
        const h = Math.min(a.y + a.h, b.y + b.h) - Math.max(a.y, b.y);
        assert.ok(w <= 1 || h <= 1, `${d.path}: "${a.text}" and "${b.text}" overlap`);
      }
    }
    const drawn = d.texts.map((t) => t.text);
    for (const q of p.model.places) assert.ok(drawn.includes(q.label), `${d.path}: ${q.label}`);
    if (p.available) assert.ok(drawn.some((t) => t.includes(`${p.mibPerSecond.toFixed(0)} MiB/s`)), `${d.path}: its figures`);
  }
  // Side by side: the file → socket pictures take three columns at 1280 px.
  const columns = new Set(m.diagrams.filter((d) => report.paths.find((p) => p.id === d.path).group === 'file → socket').map((d) => Math.round(d.x)));
  assert.ok(columns.size >= 3, `${columns.size} columns`);
  // The whole page as a picture (looked at by people; not kept).
  const shot = s.path('report.png');
  execFileSync(chromium, [...flags, `--screenshot=${shot}`, `--window-size=1280,${m.height}`, `file://${html}`], { timeout: 60_000, stdio: 'ignore' });
  const png = readFileSync(shot);
  assert.is(png.subarray(1, 4).toString(), 'PNG');
  assert.is(png.readUInt32BE(16), 1280, 'screenshot width');
  assert.ok(png.length > 100_000, `screenshot of ${png.length} bytes`);
});
if (!chromium) console.log('  Chromium tests skipped: Chromium is not installed (apt-get install chromium)');

/** `explain` output cut into one section per path, each from its title line (`name — group`) to the next. */
function sections(out, report) {
  const lines = out.split('\n');
  const starts = report.paths.map((p) => lines.indexOf(`${p.name} — ${p.group}`));
  return report.paths.map((p, i) => {
    const start = starts[i];
    assert.ok(start >= 0, `${p.id} has a section`);
    const next = Math.min(...starts.filter((x) => x > start), lines.findIndex((l) => l.startsWith('━━━━ CPU copy')));
    // Title, model line, a blank line, then the 18 rows of the drawing.
    return { p, lines: lines.slice(start, next), drawing: lines.slice(start + 3, start + 21).join('\n') };
  });
}

function checkDrawing({ p, lines, drawing }) {
  const m = p.model;
  assert.is(lines[1], `per chunk: ${m.syscallsPerChunk} syscall${m.syscallsPerChunk === 1 ? '' : 's'} · ${m.userKernelSwitchesPerChunk} switches · ${m.cpuCopies} CPU cop${m.cpuCopies === 1 ? 'y' : 'ies'} · ${m.dmaCopies} DMA`);
  assert.ok(drawing.includes('═'.repeat(20)) && drawing.includes(boundary(m)), `${p.id}: the boundary`);
  for (const q of m.places) assert.ok(drawing.includes(q.label), `${p.id}: ${q.label}`);
  for (const [kind, label] of Object.entries(KINDS)) {
    assert.is(drawing.split(label).length - 1, ofKind(m, kind), `${p.id}: ${ofKind(m, kind)} × ${label}\n${drawing}`);
  }
  for (const h of m.hops) if (h.via) assert.ok(drawing.includes(h.via), `${p.id}: ${h.via}`);
  const arrows = (drawing.match(/[▲▼◀▶]/g) ?? []).length;
  assert.is(arrows, m.hops.filter((h) => h.kind !== 'mapped').length, `${p.id}: one arrowhead per hop that moves bytes`);
  if (!m.places.some((q) => q.band === 'user')) assert.ok(drawing.includes('no bytes in user space'), p.id);
}

test('explain draws every path from the model alone: places, each hop by kind, the boundary; 78 columns, no colour when piped', () => {
  const { report } = quickRun();
  const r = run(['explain']);
  assert.is(r.code, 0, r.err);
  assert.not.ok(r.out.includes('\x1b'), 'no escape codes when stdout is not a terminal');
  for (const line of r.out.split('\n')) assert.ok([...line].length <= 78, `too wide: ${line}`);
  for (const section of sections(r.out, report)) {
    checkDrawing(section);
    assert.ok(section.lines.includes('model only: no results given (see --results)'), section.p.id);
  }
  assert.match(r.out, /^━━━━ CPU copy: the CPU copies the bytes$/m);
  const one = run(['explain', 'sendfile']);
  assert.is(one.code, 0, one.err);
  assert.is(one.out.split('\n').filter((l) => / — (file|socket) → /.test(l)).length, 1, 'one path asked, one drawn');
});

test("explain --results draws a run's figures (schema 2, and schema 1 without residency); colour only on a terminal", () => {
  const { report, json } = quickRun();
  const r = run(['explain', '--results', json]);
  assert.is(r.code, 0, r.err);
  assert.match(r.out, /^warm: the file was read into the page cache before each run\.$/m);
  for (const section of sections(r.out, report)) {
    checkDrawing(section);
    const { p, lines } = section;
    const text = lines.join('\n');
    if (!p.available) {
      assert.ok(text.includes(`not measured here:\n${p.reason}`), p.id);
      continue;
    }
    assert.ok(text.includes(`${p.mibPerSecond.toFixed(0)} MiB/s`) && text.includes(`${p.cpuSecondsPerGiB.toFixed(3)} CPU s/GiB`), p.id);
    assert.ok(text.includes(`context switches: ${p.voluntaryContextSwitches} vol, ${p.involuntaryContextSwitches} invol`), p.id);
    assert.ok(text.includes('file cached: 100% before → '), p.id);
    if (p.model.places.some((q) => q.residency === 'file' && !q.bypassed && !q.sub)) assert.match(section.drawing, /│ *\d+(\.\d)?% cached *[│├]/, p.id);
  }
  // A schema 1 document (before hops and residency) still gives its figures.
  const old = { ...report, schema: 'zerocopy-bench/1', paths: report.paths.map(({ residency, ...p }) => ({ ...p, model: { syscallsPerChunk: p.model.syscallsPerChunk } })) };
  delete old.eviction;
  writeFileSync(s.path('v1.json'), JSON.stringify(old));
  const v1 = run(['explain', 'sendfile', '--results', s.path('v1.json')]);
  assert.is(v1.code, 0, v1.err);
  const sendfile = report.paths.find((p) => p.id === 'sendfile');
  assert.ok(v1.out.includes(`${sendfile.mibPerSecond.toFixed(0)} MiB/s`), v1.out);
  assert.not.ok(v1.out.includes('file cached:'));
  assert.ok(v1.out.includes('by ref · descriptors'), 'drawn from the model of this version');
  // Stdin, and on a terminal (script(1) gives it a pty): colour, unless NO_COLOR.
  const piped = spawnSync(process.execPath, [bin, 'explain', 'splice', '--results', '-'], { input: readFileSync(json), encoding: 'utf8' });
  assert.is(piped.status, 0, piped.stderr);
  assert.ok(piped.stdout.includes(`${report.paths.find((p) => p.id === 'splice').mibPerSecond.toFixed(0)} MiB/s`));
  if (existsSync('/usr/bin/script')) {
    // Without uvu's FORCE_COLOR, which Node lets win over NO_COLOR, and without CI, which makes Node's
    // hasColors() answer false on any terminal (.ci/run exports CI=true).
    const { FORCE_COLOR, CI, ...base } = process.env;
    const tty = (env) => spawnSync('script', ['-qec', `${process.execPath} ${bin} explain readwrite`, '/dev/null'], { encoding: 'utf8', env: { ...base, TERM: 'xterm-256color', ...env } });
    const coloured = tty({});
    assert.is(coloured.status, 0, coloured.stderr);
    assert.ok(coloured.stdout.includes('\x1b[1;31m'), 'CPU copies in red on a terminal');
    assert.ok(coloured.stdout.includes('\x1b[1;34m'), 'DMA in blue');
    const plain = tty({ NO_COLOR: '1' });
    assert.not.ok(plain.stdout.includes('\x1b['), 'NO_COLOR');
  } else console.log('  explain colour check skipped: no script(1)');
});

test('explain refuses unknown paths (2), files that are not bench output (2) and missing files (1)', () => {
  const unknown = run(['explain', 'teleport']);
  assert.is(unknown.code, 2);
  assert.match(unknown.err, /unknown path 'teleport': one of node-streams, readwrite, .*splice-relay\n/);
  writeFileSync(s.path('other.json'), '{"schema":"something-else"}');
  const other = run(['explain', '--results', s.path('other.json')]);
  assert.is(other.code, 2);
  assert.match(other.err, /is not 'zerocopy bench --json' output/);
  writeFileSync(s.path('broken.json'), '{');
  assert.is(run(['explain', '--results', s.path('broken.json')]).code, 2);
  const missing = run(['explain', '--results', s.path('absent.json')]);
  assert.is(missing.code, 1);
  assert.match(missing.err, /^zerocopy: cannot read --results: ENOENT/);
});

/** A directory on a filesystem where fsync + DONTNEED empties the page cache of a file (not tmpfs). */
function evictingDir() {
  for (const base of [tmpdir(), '/var/tmp', fileURLToPath(new URL('..', import.meta.url))]) {
    let dir;
    try {
      dir = mkdtempSync(join(base, 'zerocopy-cold-'));
      const file = join(dir, 'probe');
      writeFileSync(file, Buffer.alloc(MiB, 7));
      const fd = openSync(file, 'r');
      fsyncSync(fd);
      sys.fadviseSync(fd, 'dontneed');
      const left = residency(fd).resident;
      closeSync(fd);
      rmSync(file);
      if (left === 0) return dir;
    } catch {
      // Not here: try the next.
    }
    if (dir) rmSync(dir, { recursive: true, force: true });
  }
  return undefined;
}

const coldDir = evictingDir();
(coldDir ? test : test.skip)('--cold where eviction works: residency near 0 before every run; O_DIRECT leaves the cache empty, buffered reads fill it', () => {
  const html = join(coldDir, 'cold.html');
  try {
    const r = run(['bench', '--quick', '--cold', '--json', '--html', html, '--dir', coldDir]);
    assert.is(r.code, 0, r.err);
    const report = JSON.parse(r.out);
    assert.is(report.workload.cold, true);
    const e = report.eviction;
    assert.is(e.method, 'fsync + posix_fadvise(DONTNEED)');
    assert.is(e.evicted, true, JSON.stringify(e));
    assert.is(e.pages, (16 * MiB) / 4096);
    assert.ok(e.worstResident <= e.pages / 100, `${e.worstResident} of ${e.pages} pages left`);
    const ran = report.paths.filter((p) => p.available);
    assert.ok(ran.length >= 8);
    for (const p of ran) for (const left of p.residency.before) assert.ok(left <= p.residency.pages / 100, `${p.id} started with ${left} pages cached`);
    const after = (id) => {
      const p = report.paths.find((q) => q.id === id);
      return p.available ? p.residency.after[0] / p.residency.pages : undefined;
    };
    for (const id of ['readwrite', 'sendfile', 'copy_file_range']) assert.ok(after(id) > 0.5, `${id} read through the page cache: ${after(id)}`);
    if (after('direct') !== undefined) assert.ok(after('direct') <= 0.01, `O_DIRECT left ${after('direct')} of the file cached`);
    const page = readFileSync(html, 'utf8');
    assert.match(page, /cold: the file was evicted before each run \(fsync \+ posix_fadvise\(DONTNEED\)\); at most 0(\.\d)?% \(\d+ of 4096 pages\) was left in the page cache/);
    assert.match(page, /file cached: 0(\.\d)?% before → \d+(\.\d)?% after/);
  } finally {
    rmSync(coldDir, { recursive: true, force: true });
  }
});
if (!coldDir) console.log('  --cold eviction test skipped: no filesystem here drops a file from the page cache');

(existsSync('/dev/shm') ? test : test.skip)('--cold on tmpfs says the file could not be evicted, and does not call the runs cold', () => {
  const r = run(['bench', '--quick', '--cold', '--dir', '/dev/shm']);
  assert.is(r.code, 0, r.err);
  assert.match(r.out, /^cold was asked for, but the file could NOT be evicted \(fsync \+ posix_fadvise\(DONTNEED\)\): up to 100% \(4096 of 4096 pages\) stayed in the page cache, so these runs were not cold \(on tmpfs the page cache is where the file lives\)$/m);
  assert.not.match(r.out, /^cold: /m);
  assert.match(r.out, /^ {2}sendfile .* 100%→100% /m);
});

test.run();

/**
 * The seed's pictures as data: for each bench path, the places its bytes pass (disk, page cache, user
 * buffer, pipe, socket buffer, NIC or peer), the hops between them (CPU copy, DMA, or nothing copied),
 * and the system calls each chunk makes. `zerocopy bench --html` draws them as SVG and `zerocopy explain`
 * as box-drawing text; both use the same layout: three bands (user space on top, then the kernel, then
 * the devices) and three columns (the source's side, the middle, the destination's side).
 */

import type { Band, BenchReport, Hop, HopKind, PathResult, Picture, Place } from './bench-report.js';

export type { Band, Hop, HopKind, Picture, Place } from './bench-report.js';
import { percent } from './util.js';

export const KIND_LABEL: Record<HopKind, string> = { cpu: 'CPU copy', dma: 'DMA', reference: 'by ref', mapped: 'mapped' };

/** What each kind means, for legends. */
export const KIND_MEANING: Record<HopKind, string> = {
  cpu: 'the CPU copies the bytes',
  dma: 'a device copies them (direct memory access); the CPU only sets it up',
  reference: 'nothing is copied: page references or descriptors move',
  mapped: 'nothing moves: user space sees the page cache pages themselves',
};

/** Said once under the pictures of paths that end at a socket. */
export const LOOPBACK_NOTE =
  'The bench sends over loopback, so "NIC / peer" is the sink process on this machine: no device DMA happens there, the kernel hands the packets over and the sink copies them out with its own CPU (not counted).';

export const BAND_LABEL: Record<Band, string> = { user: 'user', kernel: 'kernel', device: 'device' };

const disk: Place = { id: 'disk', label: 'disk', band: 'device', column: 0 };
const cache: Place = { id: 'page-cache', label: 'page cache', band: 'kernel', column: 0, residency: 'file' };
const socketBuffer: Place = { id: 'socket-buffer', label: 'socket buffer', band: 'kernel', column: 2 };
const nic: Place = { id: 'nic', label: 'NIC / peer', sub: '(loopback)', band: 'device', column: 2 };
const pipe: Place = { id: 'pipe', label: 'pipe', band: 'kernel', column: 1, narrow: true };
const user = (sub: string): Place => ({ id: 'user-buffer', label: 'user buffer', sub, band: 'user', column: 0, wide: true });
/** disk → page cache → … → socket buffer → NIC; `last` is the hop to the NIC (sendfile's comes from the page cache). */
const fileToSocket = (middle: Place[], hops: Hop[], calls: string[], note: string, last: Hop = { from: 'socket-buffer', to: 'nic', kind: 'dma' }): Picture => ({
  places: [disk, cache, ...middle, socketBuffer, nic],
  hops: [{ from: 'disk', to: 'page-cache', kind: 'dma' }, ...hops, last],
  calls,
  note,
});

const copyCache: Place = { id: 'copy-cache', label: 'page cache', sub: 'of the copy', band: 'kernel', column: 2, residency: 'copy' };
const copyDisk: Place = { id: 'copy-disk', label: 'disk', sub: 'the copy', band: 'device', column: 2 };
const fileToFile = (middle: Place[], hops: Hop[], calls: string[], note: string): Picture => ({
  places: [disk, { ...cache, sub: 'of the file' }, ...middle, copyCache, copyDisk],
  hops: [{ from: 'disk', to: 'page-cache', kind: 'dma' }, ...hops, { from: 'copy-cache', to: 'copy-disk', kind: 'dma', via: 'writeback' }],
  calls,
  note,
});

const relayPlaces = (middle: Place): Place[] => [
  { id: 'nic-in', label: 'NIC / peer', sub: 'the source', band: 'device', column: 0 },
  { id: 'socket-in', label: 'socket buffer', sub: 'receiving', band: 'kernel', column: 0 },
  middle,
  { id: 'socket-out', label: 'socket buffer', sub: 'sending', band: 'kernel', column: 2 },
  { id: 'nic-out', label: 'NIC / peer', sub: 'the sink', band: 'device', column: 2 },
];
const relay = (middle: Place, hops: Hop[], calls: string[], note: string): Picture => ({
  places: relayPlaces(middle),
  hops: [{ from: 'nic-in', to: 'socket-in', kind: 'dma' }, ...hops, { from: 'socket-out', to: 'nic-out', kind: 'dma' }],
  calls,
  note,
});

const upDown = (from: string, to: string): Hop[] => [
  { from, to: 'user-buffer', kind: 'cpu', via: 'read()' },
  { from: 'user-buffer', to, kind: 'cpu', via: 'write()' },
];
const throughPipe = (from: string, to: string): Hop[] => [
  { from, to: 'pipe', kind: 'reference', via: 'splice()' },
  { from: 'pipe', to, kind: 'reference', via: 'splice()' },
];
const READ_WRITE = ['read()', 'write()'];
const SPLICES = ['splice()', 'splice()'];

/** Each bench path's picture, by the path's id. */
export const PICTURES: Record<string, Picture> = {
  'node-streams': fileToSocket(
    [user('Node Buffers')],
    upDown('page-cache', 'socket-buffer'),
    READ_WRITE,
    "The seed's traditional path as Node runs it: libuv reads 64 KiB chunks into new Buffers, JavaScript sees each one, and writes it to the socket.",
  ),
  readwrite: fileToSocket(
    [user('one 64 KiB buffer')],
    upDown('page-cache', 'socket-buffer'),
    READ_WRITE,
    "The seed's traditional path in native code: the same two CPU copies, without JavaScript between them.",
  ),
  'mmap-write': fileToSocket(
    [{ id: 'mapping', label: 'mapping', sub: '= page cache', band: 'user', column: 0 }],
    [
      { from: 'page-cache', to: 'mapping', kind: 'mapped', via: 'mmap()' },
      { from: 'page-cache', to: 'socket-buffer', kind: 'cpu', via: 'write()' },
    ],
    ['mmap()', 'write()'],
    'The mapping is the page cache: write() copies those pages into the socket buffer once. If another process shrinks the file, touching the lost pages raises SIGBUS (zerocopy maps zeros there instead). Here one mmap() and one write() cover the whole file.',
  ),
  sendfile: fileToSocket(
    [],
    [{ from: 'page-cache', to: 'socket-buffer', kind: 'reference', via: 'descriptors' }],
    ['sendfile()'],
    'Only descriptors (page, offset, length) reach the socket buffer; the NIC gathers the bytes from the page cache by scatter-gather DMA. Without scatter-gather the kernel copies once.',
    { from: 'page-cache', to: 'nic', kind: 'dma', via: 'gathered' },
  ),
  splice: fileToSocket(
    [pipe],
    throughPipe('page-cache', 'socket-buffer'),
    SPLICES,
    'One end of each splice() must be a pipe: the page cache pages move into the pipe and on to the socket by reference (file → pipe → socket).',
  ),
  direct: {
    places: [
      disk,
      { ...cache, column: 1, sub: 'bypassed', bypassed: true },
      user('aligned, 8 MiB'),
      socketBuffer,
      nic,
    ],
    hops: [
      { from: 'disk', to: 'user-buffer', kind: 'dma', via: 'O_DIRECT read()' },
      { from: 'user-buffer', to: 'socket-buffer', kind: 'cpu', via: 'write()' },
      { from: 'socket-buffer', to: 'nic', kind: 'dma' },
    ],
    calls: READ_WRITE,
    note: "The disk DMAs straight into the user buffer and the page cache is left as it was. The seed's zero copy is the disk side only: write() still copies into the socket buffer.",
  },
  'copy-readwrite': fileToFile(
    [user('64 KiB chunks')],
    upDown('page-cache', 'copy-cache'),
    READ_WRITE,
    'Both files pass the page cache, and every byte goes up to user space and back down: two CPU copies. The copy reaches its disk later, by writeback.',
  ),
  copy_file_range: fileToFile(
    [],
    [{ from: 'page-cache', to: 'copy-cache', kind: 'cpu', via: 'copy_file_range()' }],
    ['copy_file_range()'],
    'The kernel copies page to page without user space. Where the filesystem can (XFS, btrfs, NFS), copy_file_range shares blocks or offloads the copy instead.',
  ),
  reflink: {
    places: [disk, copyDisk],
    hops: [{ from: 'disk', to: 'copy-disk', kind: 'reference', via: 'extents shared' }],
    calls: ['ioctl(FICLONE)'],
    note: "The copy shares the file's blocks: only metadata is written and no byte moves, once for the whole file. A later write to either file copies the block it touches.",
  },
  'node-pipe': relay(
    user('Node Buffers'),
    upDown('socket-in', 'socket-out'),
    READ_WRITE,
    'Every byte comes up into Node Buffers and goes back down: two CPU copies per chunk.',
  ),
  'splice-relay': relay(
    pipe,
    throughPipe('socket-in', 'socket-out'),
    SPLICES,
    "The received packets' pages move socket → pipe → socket by reference; no byte reaches user space.",
  ),
};

/** The seed's counts per chunk, read off a picture. */
export function counts(picture: Picture): { syscallsPerChunk: number; userKernelSwitchesPerChunk: number; cpuCopies: number; dmaCopies: number } {
  const of = (kind: HopKind): number => picture.hops.filter((h) => h.kind === kind).length;
  return {
    syscallsPerChunk: picture.calls.length,
    userKernelSwitchesPerChunk: 2 * picture.calls.length,
    cpuCopies: of('cpu'),
    dmaCopies: of('dma'),
  };
}

/** "read() + write(): 4 switches per chunk", the label on the user/kernel boundary. */
export function boundaryLabel(picture: Picture): string {
  const switches = 2 * picture.calls.length;
  return `${picture.calls.join(' + ')}: ${switches} switch${switches === 1 ? '' : 'es'} per chunk`;
}

/** "1 syscall · 2 switches · 0 CPU copies · 2 DMA per chunk". */
export function modelLine(picture: Picture): string {
  const c = counts(picture);
  const plural = (n: number, one: string, many = `${one}s`): string => `${n} ${n === 1 ? one : many}`;
  return `per chunk: ${plural(c.syscallsPerChunk, 'syscall')} · ${plural(c.userKernelSwitchesPerChunk, 'switch', 'switches')} · ${plural(c.cpuCopies, 'CPU copy', 'CPU copies')} · ${c.dmaCopies} DMA`;
}

/** A hop's label as drawn: "CPU copy · read()". */
export function hopLabel(hop: Hop): string {
  return hop.via ? `${KIND_LABEL[hop.kind]} · ${hop.via}` : KIND_LABEL[hop.kind];
}

/** The trip in words, the pictures' text alternative: "disk → page cache: DMA; …". */
export function describe(picture: Picture): string {
  const name = (id: string): string => {
    const p = picture.places.find((q) => q.id === id);
    return p ? (p.sub && !p.sub.startsWith('(') ? `${p.label} (${p.sub})` : p.label) : id;
  };
  return picture.hops.map((h) => `${name(h.from)} → ${name(h.to)}: ${hopLabel(h)}`).join('; ');
}

/** The place a hop starts or ends at (the pictures are checked by the tests, so a miss is a bug here). */
export function placeOf(picture: Picture, id: string): Place {
  const place = picture.places.find((p) => p.id === id);
  if (!place) throw new Error(`picture has no place '${id}'`);
  return place;
}

// The measured figures drawn beside each picture, the same in the HTML report and in `explain`.

/** The page cache around a path's runs, as shares of the file: the worst `before`, the median `after`. */
export interface CacheShares {
  before: number;
  after: number;
  copyAfter?: number;
}

const medianOf = (xs: number[]): number => [...xs].sort((a, b) => a - b)[xs.length >> 1] ?? 0;

export function cacheShares(p: PathResult): CacheShares | null {
  const r = p.residency;
  if (!r || r.pages === 0 || r.before.length === 0) return null;
  const shares: CacheShares = { before: Math.max(...r.before) / r.pages, after: medianOf(r.after) / r.pages };
  if (r.copyAfter?.length) shares.copyAfter = medianOf(r.copyAfter) / r.pages;
  return shares;
}

/** The share a page cache place shows: of the file, or of the copy, left cached after the run. */
export function shownResidency(place: Place, cache: CacheShares | null): number | undefined {
  return place.residency === 'file' ? cache?.after : place.residency === 'copy' ? cache?.copyAfter : undefined;
}

/** A share of the file, as `percent` prints pages. */
export const share = (fraction: number): string => percent(fraction, 1);

/** The lines under a picture: throughput and CPU, calls and switches, the page cache. */
export function figureLines(p: PathResult): string[] {
  if (!p.available) return ['not measured here:', p.reason ?? 'this machine cannot take this path'];
  const n = (v: number | null, digits = 0): string => (v === null ? '–' : v.toFixed(digits));
  const vs = p.baseline ? 'baseline' : p.speedup === null ? '' : `${p.speedup.toFixed(2)}× baseline`;
  const lines = [
    [`${n(p.mibPerSecond)} MiB/s`, vs, `${n(p.cpuSecondsPerGiB, 3)} CPU s/GiB`].filter(Boolean).join(' · '),
    `${p.syscallsEstimated ? '≈' : ''}${n(p.syscalls)} syscall${p.syscalls === 1 ? '' : 's'} · context switches: ${n(p.voluntaryContextSwitches)} vol, ${n(p.involuntaryContextSwitches)} invol`,
  ];
  const cache = cacheShares(p);
  if (cache) {
    // A relay's file is the one its source process sends: not in the picture, but read all the same.
    const file = p.group === 'socket → socket' ? "source's file" : 'file';
    lines.push(`${file} cached: ${share(cache.before)} before → ${share(cache.after)} after`);
    if (cache.copyAfter !== undefined) lines.push(`copy cached: ${share(cache.copyAfter)} after`);
  }
  return lines;
}

/** What a run did to the page cache before each run: one line for the report's head. */
export function cacheLine(report: BenchReport): string {
  const e = report.eviction;
  if (!e) return 'warm: the file was read into the page cache before each run';
  const left = `${percent(e.worstResident, e.pages)} (${e.worstResident} of ${e.pages} pages)`;
  return e.evicted
    ? `cold: the file was evicted before each run (${e.method}); at most ${left} was left in the page cache`
    : `cold was asked for, but the file could NOT be evicted (${e.method}): up to ${left} stayed in the page cache, so these runs were not cold` +
        (report.machine.filesystem === 'tmpfs' ? ' (on tmpfs the page cache is where the file lives)' : '');
}

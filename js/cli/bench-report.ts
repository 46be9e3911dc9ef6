/**
 * The types of the bench's JSON document (`zerocopy bench --json`, schema zerocopy-bench/2), read by
 * `--html` (bench-html.ts), `explain` (explain.ts) and the pictures (pictures.ts): what each path's
 * picture is made of, and what the bench measured.
 */

/** Where a place lives: the user/kernel boundary lies between 'user' and 'kernel'. */
export type Band = 'user' | 'kernel' | 'device';

/**
 * What a hop does to the bytes:
 * - `cpu`: the CPU copies them (the cost zero copy saves);
 * - `dma`: a device copies them, the CPU only sets it up;
 * - `reference`: nothing is copied, page references or descriptors move;
 * - `mapped`: nothing moves, user space sees the same pages (mmap).
 */
export type HopKind = 'cpu' | 'dma' | 'reference' | 'mapped';

/** A place the bytes pass. */
export interface Place {
  id: string;
  label: string;
  /** A second line under the label. */
  sub?: string;
  band: Band;
  /** 0: the source's side, 1: the middle, 2: the destination's side. */
  column: 0 | 1 | 2;
  /** Drawn across all three columns (the user buffer the bytes go up to and come down from). */
  wide?: boolean;
  /** A small place (the pipe), so the labels of the hops beside it fit. */
  narrow?: boolean;
  /** The path skips it (O_DIRECT's page cache): drawn dashed, no hop touches it. */
  bypassed?: boolean;
  /** This place is the page cache of the workload file or of its copy: its residency is drawn in it. */
  residency?: 'file' | 'copy';
}

/** One hop of a chunk's trip. */
export interface Hop {
  from: string;
  to: string;
  kind: HopKind;
  /** What makes it happen or how (a system call, "writeback", "descriptors"). */
  via?: string;
}

/** One path's picture. */
export interface Picture {
  places: Place[];
  hops: Hop[];
  /** The system calls each chunk makes; each costs two user/kernel switches. */
  calls: string[];
  /** Where the seed's model simplifies, or what this path does on this machine. */
  note: string;
}

export type Group = 'file → socket' | 'file → file' | 'socket → socket';

/**
 * The seed's model of one chunk's trip along a path: the counts (schema 1), and since schema 2 the
 * picture they are read off: the places the bytes pass, the hops between them with their kind, the
 * system calls per chunk.
 */
export interface Model extends Picture {
  syscallsPerChunk: number;
  userKernelSwitchesPerChunk: number;
  cpuCopies: number;
  dmaCopies: number;
}

/**
 * How much of the workload file was in the page cache, in pages, before and right after each run (the
 * `before` of a `--cold` run is what eviction left). File → file paths add the copy's pages after.
 */
export interface PathResidency {
  pages: number;
  before: number[];
  after: number[];
  copyAfter?: number[];
}

/** One path's results: the `paths[]` entries of the JSON output. */
export interface PathResult {
  id: string;
  group: Group;
  name: string;
  mechanism: string;
  baseline: boolean;
  available: boolean;
  reason?: string;
  model: Model;
  runs: number[];
  medianSeconds: number | null;
  bestSeconds: number | null;
  mibPerSecond: number | null;
  cpuSecondsPerGiB: number | null;
  syscalls: number | null;
  syscallsEstimated: boolean;
  voluntaryContextSwitches: number | null;
  involuntaryContextSwitches: number | null;
  /** Throughput against the group's baseline (Node streams, read/write, Node pipe). */
  speedup: number | null;
  /** Null when the path did not run. */
  residency: PathResidency | null;
}

/** What `--cold` did before each run; null for a warm run. */
export interface Eviction {
  method: 'fsync + posix_fadvise(DONTNEED)';
  /** False when some run started with more than 1% of the file still cached: those runs were not cold. */
  evicted: boolean;
  pages: number;
  /** The most pages left in the cache before any run. */
  worstResident: number;
}

/** The whole JSON document `--json` prints. */
export interface BenchReport {
  schema: 'zerocopy-bench/2';
  version: string;
  machine: { cores: number; cpu: string; kernel: string; node: string; filesystem: string; dir: string };
  workload: { bytes: number; runs: number; quick: boolean; cold: boolean };
  eviction: Eviction | null;
  paths: PathResult[];
  winners: { group: Group; id: string; line: string }[];
}

/**
 * Range requests (RFC 9110 §14): which bytes a GET answers with, single or multipart/byteranges.
 * Parsing is range-parser's; this module adds what RFC 9110 asks beyond it.
 */
import parseRange from 'range-parser';

/** One inclusive byte range. */
export interface ByteRange {
  start: number;
  end: number;
}

export type RangePlan =
  /** No Range (or one to ignore): the whole representation, 200. */
  | { kind: 'full' }
  /** 206 with one Content-Range. */
  | { kind: 'single'; range: ByteRange }
  /** 206 multipart/byteranges: at least two disjoint, non-adjacent ranges, in the order asked. */
  | { kind: 'multi'; ranges: ByteRange[] }
  /** 416 with `Content-Range: bytes *\/size`. */
  | { kind: 'unsatisfiable' };

/** Default cap on the parts of a multipart/byteranges response (after coalescing). */
export const DEFAULT_MAX_RANGES = 50;

/**
 * A suffix range longer than the representation selects all of it (§14.1.2: "bytes=-500" of a
 * 100-byte file is bytes 0-99); range-parser calls it unsatisfiable, so it gets "0-" instead.
 */
function clampSuffixes(header: string, size: number): string {
  const eq = header.indexOf('=');
  if (eq < 0) return header;
  const specs = header
    .slice(eq + 1)
    .split(',')
    .map((spec) => {
      const m = /^\s*-\s*(\d+)\s*$/.exec(spec);
      return m && Number(m[1]) > size && size > 0 ? '0-' : spec;
    });
  return `${header.slice(0, eq)}=${specs.join(',')}`;
}

/**
 * The plan for a Range header over `size` bytes.
 *
 * - Overlapping and adjacent ranges are coalesced (range-parser's `combine`), so no byte is sent
 *   twice: `bytes=0-,0-,0-` is the file once, as a single range ("Apache Killer" requests get no
 *   more than the file).
 * - More than `maxRanges` parts after coalescing: the Range header is ignored (200 with the file,
 *   once), as §14.2 allows. `maxRanges: 1` serves single ranges only.
 * - A malformed header or another unit than bytes is ignored (200).
 */
export function planRange(header: string | undefined, size: number, maxRanges: number): RangePlan {
  if (!header) return { kind: 'full' };
  const parsed = parseRange(size, clampSuffixes(header, size), { combine: true });
  if (parsed === -2) return { kind: 'full' };
  if (parsed === -1) return { kind: 'unsatisfiable' };
  if (parsed.type !== 'bytes') return { kind: 'full' };
  if (parsed.length > maxRanges) return { kind: 'full' };
  const ranges = parsed.map((r) => ({ start: r.start, end: r.end }));
  if (ranges.length === 1) {
    const [range] = ranges as [ByteRange];
    return { kind: 'single', range };
  }
  return { kind: 'multi', ranges };
}

/** The framing of a multipart/byteranges body: each part's head, the closing delimiter, and the total length. */
export interface Multipart {
  boundary: string;
  contentType: string;
  heads: Buffer[];
  tail: Buffer;
  length: number;
}

export function multipart(ranges: ByteRange[], size: number, type: string, boundary: string): Multipart {
  const heads = ranges.map((r, i) =>
    Buffer.from(`${i === 0 ? '' : '\r\n'}--${boundary}\r\nContent-Type: ${type}\r\nContent-Range: bytes ${r.start}-${r.end}/${size}\r\n\r\n`, 'latin1'),
  );
  const tail = Buffer.from(`\r\n--${boundary}--\r\n`, 'latin1');
  let length = tail.length;
  for (let i = 0; i < ranges.length; i++) length += (heads[i] as Buffer).length + (ranges[i] as ByteRange).end - (ranges[i] as ByteRange).start + 1;
  return { boundary, contentType: `multipart/byteranges; boundary=${boundary}`, heads, tail, length };
}

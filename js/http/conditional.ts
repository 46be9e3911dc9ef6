/**
 * Validators and preconditions (RFC 9110 §8.8, §13): ETags, Last-Modified, the evaluation order of
 * §13.2.2, and If-Range (§13.1.5).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';

import type { FileStat } from './target.js';

export type EtagMode = 'weak' | 'strong' | false;

/**
 * The entity tag of a file (or of one precompressed variant, told apart by `coding`).
 *
 * - weak (default, the `etag` package's form that `send` sends): `W/"size-mtime_ms"` in hex — equal
 *   for files of equal size and mtime in ms.
 * - strong: `"dev-ino-size-mtime_ns"` — it changes whenever the file is replaced or its mtime moves,
 *   so it can back If-Match and If-Range, which take strong validators only.
 */
export function entityTag(st: FileStat, mode: 'weak' | 'strong', coding?: string): string {
  const tag =
    mode === 'strong'
      ? `"${st.dev.toString(16)}-${st.ino.toString(16)}-${st.size.toString(16)}-${BigInt(st.mtimeNs).toString(16)}"`
      : `W/"${st.size.toString(16)}-${st.mtime.getTime().toString(16)}"`;
  return coding ? `${tag.slice(0, -1)}-${coding}"` : tag;
}

/** The entity tags of an If-Match / If-None-Match list, or '*' (RFC 9110 §8.8.3: an ETag may hold commas). */
function tagList(value: string): string[] | '*' {
  if (value.trim() === '*') return '*';
  return value.match(/(?:W\/)?"[^"]*"/g) ?? [];
}

const isWeak = (tag: string): boolean => tag.startsWith('W/');
const opaque = (tag: string): string => (isWeak(tag) ? tag.slice(2) : tag);

/** §8.8.3.2 strong comparison: both strong and identical. */
export function strongMatch(a: string, b: string): boolean {
  return !isWeak(a) && !isWeak(b) && a === b;
}

/** §8.8.3.2 weak comparison: identical opaque tags. */
function weakMatch(a: string, b: string): boolean {
  return opaque(a) === opaque(b);
}

function one(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value.join(', ') : value;
}

/** An HTTP-date in ms, or NaN. */
function httpDate(value: string | undefined): number {
  return value ? Date.parse(value) : NaN;
}

/** The representation's validators as the response will carry them (set by us or by the user). */
export interface Validators {
  etag: string | undefined;
  /** Last-Modified in ms (whole seconds, as the header has it), or NaN without one. */
  lastModified: number;
  /** The file's mtime in ms, when Last-Modified is ours: how strong the date is (§8.8.2.2). */
  modifiedMs: number;
}

export function validators(res: ServerResponse, mtimeMs: number): Validators {
  const tag = res.getHeader('ETag');
  const lastModified = httpDate(res.getHeader('Last-Modified') as string | undefined);
  return { etag: tag === undefined ? undefined : String(tag), lastModified, modifiedMs: Math.max(lastModified, mtimeMs) };
}

/**
 * RFC 9110 §13.2.2, steps 1–4: 412, 304, or undefined to go on (to Range, then 200).
 *
 * 1. If-Match (strong comparison; `*` matches a file that exists) fails → 412.
 * 2. Only without If-Match: If-Unmodified-Since earlier than Last-Modified → 412.
 * 3. If-None-Match (weak comparison) matches → 304 for GET/HEAD (412 otherwise).
 * 4. Only without If-None-Match, and only for GET/HEAD: If-Modified-Since not earlier than Last-Modified → 304.
 *
 * A date condition without a Last-Modified to compare (lastModified: false) is ignored, as is an
 * unparsable date (§13.1.3, §13.1.4).
 */
export function evaluatePreconditions(req: IncomingMessage, v: Validators): 304 | 412 | undefined {
  const getOrHead = req.method === 'GET' || req.method === 'HEAD';
  const ifMatch = one(req.headers['if-match']);
  if (ifMatch !== undefined) {
    const tags = tagList(ifMatch);
    if (tags !== '*' && !(v.etag !== undefined && tags.some((t) => strongMatch(t, v.etag as string)))) return 412;
  } else {
    const since = httpDate(one(req.headers['if-unmodified-since']));
    if (!Number.isNaN(since) && !Number.isNaN(v.lastModified) && v.lastModified > since) return 412;
  }
  const ifNoneMatch = one(req.headers['if-none-match']);
  if (ifNoneMatch !== undefined) {
    const tags = tagList(ifNoneMatch);
    if (tags === '*' || (v.etag !== undefined && tags.some((t) => weakMatch(t, v.etag as string)))) return getOrHead ? 304 : 412;
  } else if (getOrHead) {
    const since = httpDate(one(req.headers['if-modified-since']));
    if (!Number.isNaN(since) && !Number.isNaN(v.lastModified) && v.lastModified <= since) return 304;
  }
  return undefined;
}

/**
 * RFC 9110 §13.1.5: whether the Range header applies. The header holds exactly one validator:
 *
 * - an entity tag: it must strongly match the current one (a weak tag never matches);
 * - a date: it must equal Last-Modified exactly, and Last-Modified must be strong — at least one
 *   second older than the response's Date (§8.8.2.2).
 *
 * Anything else (two tags, garbage) fails, and the whole representation is sent.
 */
export function ifRangeAllows(req: IncomingMessage, v: Validators, now: number): boolean {
  const raw = req.headers['if-range'];
  if (raw === undefined) return true;
  const value = String(raw).trim();
  if (value.startsWith('"') || value.startsWith('W/')) {
    if (!/^(?:W\/)?"[^"]*"$/.test(value)) return false;
    return v.etag !== undefined && strongMatch(value, v.etag);
  }
  const date = httpDate(value);
  if (Number.isNaN(date) || Number.isNaN(v.lastModified)) return false;
  const dateHeader = Math.floor(now / 1000) * 1000;
  return date === v.lastModified && v.modifiedMs + 1000 <= dateHeader;
}

/**
 * Content negotiation for precompressed files: `file.br`, `file.zst`, `file.gz` beside `file`,
 * chosen by Accept-Encoding (negotiator: q-values, `q=0`, `*`, identity).
 */
import type { IncomingMessage } from 'node:http';

import Negotiator from 'negotiator';

import { invalidArgValue } from '../errors.js';

/** The content codings zerocopy looks for, and the suffix of their files. */
export const CODING_SUFFIX = { br: '.br', zstd: '.zst', gzip: '.gz' } as const;
export type Coding = keyof typeof CODING_SUFFIX;
/** The default preference: smallest first. */
export const DEFAULT_CODINGS: readonly Coding[] = ['br', 'zstd', 'gzip'];

/** Normalises the `precompressed` option to the codings to look for, in order of preference. */
export function precompressedOption(value: unknown, name: string): Coding[] {
  if (value === undefined || value === false) return [];
  if (value === true) return [...DEFAULT_CODINGS];
  if (Array.isArray(value) && value.every((c) => typeof c === 'string' && Object.hasOwn(CODING_SUFFIX, c))) {
    return [...new Set(value as Coding[])];
  }
  throw invalidArgValue(name, value, "must be a boolean or an array of 'br', 'zstd', 'gzip'");
}

/**
 * The codings the client accepts among `offered`, best first, with 'identity' where it stands (it
 * is last unless the client ranks it, and absent when it says `identity;q=0` or `*;q=0`). Equal
 * q-values follow the order of `offered`.
 */
export function acceptable(req: IncomingMessage, offered: readonly Coding[]): string[] {
  const available = [...offered, 'identity'];
  // negotiator 1.0's `preferred` (tie-break order) is missing from @types/negotiator 0.6.
  const negotiator = new Negotiator(req) as unknown as { encodings(available: string[], options: { preferred: string[] }): string[] };
  return negotiator.encodings(available, { preferred: available });
}

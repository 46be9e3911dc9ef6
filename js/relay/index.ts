/**
 * Relaying sockets through kernel pipes: `pipe`, `proxy` and `teeTo`.
 *
 * The bytes move with `splice(2)` — socket → pipe → socket — and never enter JavaScript. Node's own
 * sockets are handed over for the relay's length: Node stops reading the source (bytes it had
 * already read are forwarded first) and holds its writes to each sink behind the relay (bytes written
 * before the call go first). TLS sockets, and sockets of runtimes that lack what splicing needs
 * (js/internals.ts), fall back to Node streams.
 *
 * This file is the API. The rest of js/relay/: handover.ts (taking Node's sockets over and giving
 * them back, choosing the driver), splice.ts (the native driver), stream.ts (the stream fallback),
 * plan.ts (what they share).
 */
import { failure, invalidArgType, invalidArgValue, type ErrnoError } from '../errors.js';
import { isNetSocket } from '../internals.js';
import * as check from '../validate.js';
import { relay } from './handover.js';
import { Failed, type Plan, type RelayEnd, type RelayMechanism } from './plan.js';

export type { RelayEnd, RelayMechanism } from './plan.js';

/** Options shared by {@link pipe}, {@link proxy} and {@link teeTo}. */
export interface RelayOptions {
  /** Stops the relay; the promise rejects with an `AbortError` and Node sockets are destroyed. */
  signal?: AbortSignal;
  /**
   * Capacity of each kernel pipe, in bytes (default 1 MiB, capped at `/proc/sys/fs/pipe-max-size`).
   * A relay holds at most this much per direction (per sink for `teeTo`) besides the sockets' buffers.
   */
  pipeSize?: number;
}

/** Options of {@link pipe}. */
export interface PipeOptions extends RelayOptions {
  /** At the source's end of stream, end `dst` (Node sockets: `end()`; socket fds: `shutdown(SHUT_WR)`). Default `true`. */
  end?: boolean;
  /** Called as bytes reach `dst`, with the bytes so far. */
  onProgress?: (bytes: number) => void;
}

/** What {@link pipe} did. */
export interface PipeResult {
  /** Bytes that reached `dst`, including those Node had already read from `src`. */
  bytes: number;
  mechanism: RelayMechanism;
}

/** Options of {@link proxy}. */
export interface ProxyOptions extends RelayOptions {
  /** Called as bytes are relayed, with the bytes so far in each direction. */
  onProgress?: (aToB: number, bToA: number) => void;
}

/** What {@link proxy} did. */
export interface ProxyResult {
  /** Bytes relayed from `a` to `b`. */
  aToB: number;
  /** Bytes relayed from `b` to `a`. */
  bToA: number;
  mechanism: RelayMechanism;
}

/** Options of {@link teeTo}. */
export interface TeeOptions extends RelayOptions {
  /** At the source's end of stream, end every sink (as {@link PipeOptions.end}). Default `true`. */
  end?: boolean;
  /** Called as bytes reach the sinks, with the bytes every sink has received. */
  onProgress?: (bytes: number) => void;
}

/** What {@link teeTo} did. */
export interface TeeResult {
  /** Bytes each sink received (all the same on success). */
  bytes: number;
  mechanism: RelayMechanism;
}

/**
 * A relay failure: the error of the peer or syscall that ended it, with what had moved.
 * `bytesTransferred` is the total; {@link proxy} adds `aToB` and `bToA`, {@link teeTo} `bytesPerSink`.
 */
export interface RelayError extends ErrnoError {
  aToB?: number;
  bToA?: number;
  bytesPerSink?: number[];
}

/** Largest pipe size F_SETPIPE_SZ takes. */
const MAX_PIPE_SIZE = 0x7fffffff;

function resolveEnd(value: unknown, name: string): RelayEnd {
  if (typeof value === 'number') return check.fd(value, name);
  // Other streams are refused rather than piped with Node streams: stream.pipeline does that, and an
  // fs.WriteStream's fd can be passed as a number (spliced, no byte in JavaScript).
  if (isNetSocket(value)) return value;
  throw invalidArgType(name, 'an instance of net.Socket or an fd number', value);
}

function relayOptions<T extends RelayOptions>(options: unknown): { o: Partial<T>; signal: AbortSignal | undefined; pipeSize: number | undefined } {
  const o = check.options<T>(options);
  return {
    o,
    signal: check.optionalSignal(o.signal, 'options.signal'),
    pipeSize: check.optionalInteger(o.pipeSize, 'options.pipeSize', 1, MAX_PIPE_SIZE),
  };
}

/**
 * Moves everything from `src` to `dst` until `src` reaches end of stream, through a kernel pipe with
 * `splice(2)`: no byte passes through JavaScript, and waiting for a slow side holds no thread.
 *
 * `src` and `dst` are `net.Socket`s (TCP or Unix domain; connected or still connecting) or fds
 * (sockets, pipes, FIFOs, files); other streams are a TypeError (`ERR_INVALID_ARG_TYPE`: use
 * `stream.pipeline`, or pass a file stream's fd). With Node sockets:
 * - bytes Node had already read from `src` and not delivered are forwarded first — with those a
 *   `setEncoding()` decoder held, and also when Node had read the end of stream as well; from the call
 *   on Node stops reading `src` (no `'data'` events meanwhile);
 * - everything written to `dst` before the call reaches it first; writes (and `end()`) made during the
 *   relay are held and follow the relayed bytes;
 * - afterwards `src` has ended as if Node had read its end of stream itself (`'end'` is emitted, as
 *   after `src.pipe(dst)`; with `allowHalfOpen: false`, net's default, Node then ends its writable side
 *   as usual), and `dst` is ended (`options.end`, default true) after any writes made meanwhile.
 * - on failure or abort both sockets are destroyed (as `stream.pipeline` does), without an `'error'`
 *   event: the promise carries the error. A relay refused before any byte moved (a closed fd, a file
 *   opened with O_APPEND, a read-only destination) leaves them as they were. fds are never closed.
 *
 * - an idle timeout (`socket.setTimeout(ms)`) on either socket sees every byte relayed on it: it fires
 *   only once none has moved for `ms` (within a quarter of `ms` more), as for Node's own reads and
 *   writes; a stalled peer still times out.
 *
 * The bytes go through Node streams instead (`mechanism: 'stream'`) for TLS sockets and where the
 * runtime's sockets lack an internal splicing relies on (Deno's have no fd, Bun's no `readStop`; see
 * "Node internals" in the README) — decided before any byte moves. Streams need sockets at both ends: with an fd such a
 * relay is refused (`ERR_INVALID_ARG_VALUE` for TLS, else `ERR_FEATURE_UNAVAILABLE_ON_PLATFORM`).
 *
 * Rejects with the socket's error (`ECONNRESET`, `EPIPE`, …), `ERR_STREAM_DESTROYED` if a socket is
 * destroyed meanwhile, a connecting socket's error (`ECONNREFUSED`, or
 * `ERR_SOCKET_CLOSED_BEFORE_CONNECTION` when it is destroyed first), or `AbortError`, each with
 * `bytesTransferred`.
 *
 * @example
 * net.createServer(async (client) => {
 *   const upstream = net.connect(9000, 'backend');
 *   await pipe(client, upstream); // the request body; upstream ends when client does
 * });
 */
export async function pipe(src: RelayEnd, dst: RelayEnd, options?: PipeOptions): Promise<PipeResult> {
  const { o, signal, pipeSize } = relayOptions<PipeOptions>(options);
  const ends = [resolveEnd(src, 'src'), resolveEnd(dst, 'dst')];
  const onProgress = check.optionalFunction<(bytes: number) => void>(o.onProgress, 'options.onProgress');
  const end = check.optionalBoolean(o.end, 'options.end') ?? true;
  const plan: Plan = { ends, chains: [{ src: 0, sinks: [1], end }], signal, pipeSize, onProgress: onProgress && ((b) => onProgress(b[0]?.[0] ?? 0)) };
  try {
    const { bytes, mechanism } = await relay(plan);
    return { bytes: bytes[0]?.[0] ?? 0, mechanism };
  } catch (err) {
    throw annotated(err, signal, (bytes, e) => {
      e.bytesTransferred = bytes[0]?.[0] ?? 0;
    });
  }
}

/**
 * Relays both directions between `a` and `b` — a TCP proxy — until each side has reached end of
 * stream. A FIN from one side is forwarded as a shutdown of the other (`end()` on a Node socket), and
 * the other direction goes on: half-closed connections work as they would without the proxy.
 * Resolves with the bytes relayed each way.
 *
 * Sockets are handed over as in {@link pipe}: bytes Node had read from either side go first, writes
 * made before the call precede the relayed bytes; streams and idle timeouts are handled as there.
 * When the proxy settles successfully both sockets have seen end of stream and been ended, so Node
 * closes them (`'end'`, `'finish'`, `'close'`; a socket's `'end'` comes after its bytes were
 * delivered). On failure (a reset of either peer, a destroyed socket) or abort both are destroyed;
 * the error carries `aToB`, `bToA` and `bytesTransferred` (their sum).
 *
 * @example
 * net.createServer((client) => {
 *   const backend = net.connect(5432, 'db.internal');
 *   proxy(client, backend).catch((err) => log(err.code, err.aToB, err.bToA));
 * }).listen(6432);
 */
export async function proxy(a: RelayEnd, b: RelayEnd, options?: ProxyOptions): Promise<ProxyResult> {
  const { o, signal, pipeSize } = relayOptions<ProxyOptions>(options);
  const ends = [resolveEnd(a, 'a'), resolveEnd(b, 'b')];
  const onProgress = check.optionalFunction<(aToB: number, bToA: number) => void>(o.onProgress, 'options.onProgress');
  const plan: Plan = {
    ends,
    chains: [
      { src: 0, sinks: [1], end: true },
      { src: 1, sinks: [0], end: true },
    ],
    signal,
    pipeSize,
    onProgress: onProgress && ((b) => onProgress(b[0]?.[0] ?? 0, b[1]?.[0] ?? 0)),
  };
  try {
    const { bytes, mechanism } = await relay(plan);
    return { aToB: bytes[0]?.[0] ?? 0, bToA: bytes[1]?.[0] ?? 0, mechanism };
  } catch (err) {
    throw annotated(err, signal, (bytes, e) => {
      e.aToB = bytes[0]?.[0] ?? 0;
      e.bToA = bytes[1]?.[0] ?? 0;
      e.bytesTransferred = e.aToB + e.bToA;
    });
  }
}

/**
 * Duplicates `src` into every sink until end of stream, with `tee(2)`: each sink gets the same bytes,
 * none passes through JavaScript, and the slowest sink sets the pace (memory stays bounded by one
 * pipe per sink). Sockets are handed over and left as in {@link pipe}; sinks must be distinct.
 * Resolves with the bytes each sink received; errors carry `bytesPerSink` and `bytesTransferred`
 * (what every sink received).
 *
 * @example
 * await teeTo(upload, [storageSocket, auditSocket]);
 */
export async function teeTo(src: RelayEnd, sinks: readonly RelayEnd[], options?: TeeOptions): Promise<TeeResult> {
  const { o, signal, pipeSize } = relayOptions<TeeOptions>(options);
  const source = resolveEnd(src, 'src');
  if (!Array.isArray(sinks)) throw invalidArgType('sinks', 'an array of net.Socket instances or fd numbers', sinks);
  if (sinks.length === 0) throw invalidArgValue('sinks', sinks, 'must hold at least one sink');
  const resolved = sinks.map((s, i) => resolveEnd(s, `sinks[${i}]`));
  if (new Set(resolved).size !== resolved.length) throw invalidArgValue('sinks', sinks, 'must not name the same socket or fd twice');
  const onProgress = check.optionalFunction<(bytes: number) => void>(o.onProgress, 'options.onProgress');
  const end = check.optionalBoolean(o.end, 'options.end') ?? true;
  const least = (bytes: number[][]): number => Math.min(...(bytes[0] ?? [0]));
  const plan: Plan = {
    ends: [source, ...resolved],
    chains: [{ src: 0, sinks: resolved.map((_, i) => i + 1), end }],
    signal,
    pipeSize,
    onProgress: onProgress && ((b) => onProgress(least(b))),
  };
  try {
    const { bytes, mechanism } = await relay(plan);
    return { bytes: least(bytes), mechanism };
  } catch (err) {
    throw annotated(err, signal, (bytes, e) => {
      e.bytesPerSink = [...(bytes[0] ?? [])];
      e.bytesTransferred = least(bytes);
    });
  }
}

/** The documented error for a failed relay: the signal's AbortError for aborts, with byte counts. */
function annotated(err: unknown, signal: AbortSignal | undefined, add: (bytes: number[][], e: RelayError) => void): unknown {
  const { error, bytes } = err instanceof Failed ? err : { error: err, bytes: [] as number[][] };
  const out = failure(error, 0, signal);
  if (out instanceof Error) {
    delete (out as RelayError).bytesTransferred;
    add(bytes, out as RelayError);
  }
  return out;
}

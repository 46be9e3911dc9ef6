/**
 * Relaying sockets through kernel pipes: `pipe`, `proxy` and `teeTo`.
 *
 * The bytes move with `splice(2)` — socket → pipe → socket — and never enter JavaScript. Node's own
 * sockets are handed over for the relay's length: Node stops reading the source (bytes it had
 * already read are forwarded first) and holds its writes to each sink behind the relay (bytes written
 * before the call go first). TLS sockets, and sockets of runtimes that lack what splicing needs
 * (internals.ts), fall back to Node streams.
 */
import type { Socket } from 'node:net';

import { abortError, codedError, failure, invalidArgType, invalidArgValue, type CodedError, type ErrnoError } from './errors.js';
import { linuxPaths, native, type RelayProgress } from './native.js';
import { unavailable } from './portable.js';
import { onAbort } from './signal.js';
import { isNetSocket, missingInternal, socketFd, type Roles } from './internals.js';
import { cancelOnEnd, connected, destroyedError, holdReading, idlePace, noteActivity, takeOver, type Hold, type ReadHold } from './takeover.js';
import * as check from './validate.js';

/** How the bytes travelled: `'splice'` (kernel pipes, no byte in JavaScript) or `'stream'` (Node streams: TLS). */
export type RelayMechanism = 'splice' | 'stream';

/** One end of a relay: a connected (or connecting) `net.Socket`, or an fd (socket, pipe, FIFO or file). */
export type RelayEnd = Socket | number;

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

/** Bytes per step when someone is watching (signal or progress). */
const WATCHED_STEP = 8 * 1024 * 1024;

/** Largest pipe size F_SETPIPE_SZ takes. */
const MAX_PIPE_SIZE = 0x7fffffff;

interface ChainPlan {
  src: number;
  sinks: number[];
  /** End the sinks at end of stream. */
  end: boolean;
}

interface Plan {
  ends: RelayEnd[];
  chains: ChainPlan[];
  signal: AbortSignal | undefined;
  pipeSize: number | undefined;
  onProgress: ((bytes: number[][]) => void) | undefined;
}

/** What a relay moved: bytes per chain, per sink. */
interface Outcome {
  bytes: number[][];
  mechanism: RelayMechanism;
}

/**
 * A failure, with the bytes per chain and sink it happened after. `untouched`: it happened before
 * anything moved (the native relay refused an end), so the sockets are handed back as they were.
 */
class Failed extends Error {
  constructor(
    readonly error: unknown,
    readonly bytes: number[][],
    readonly untouched = false,
  ) {
    super('relay failed');
  }
}

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

let spliceWorks: boolean | undefined;

/** Whether this build and the kernel let this process splice (not elsewhere, not blocked by seccomp); probed once. */
function spliceAvailable(): boolean {
  spliceWorks ??= linuxPaths && native.capabilitiesSync(undefined).splice;
  return spliceWorks;
}

const zeros = (plan: Plan): number[][] => plan.chains.map((c) => c.sinks.map(() => 0));

/** End `i` of the plan if it is a Node socket. */
function socketAt(plan: Plan, i: number): Socket | undefined {
  const e = plan.ends[i];
  return typeof e === 'number' ? undefined : e;
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

/** The documented error for a failed relay: converted, AbortError for aborts, with byte counts. */
function annotated(err: unknown, signal: AbortSignal | undefined, add: (bytes: number[][], e: RelayError) => void): unknown {
  const { error, bytes } = err instanceof Failed ? err : { error: err, bytes: [] as number[][] };
  const out = failure(error, 0, signal);
  if (out instanceof Error) {
    delete (out as RelayError).bytesTransferred;
    add(bytes, out as RelayError);
  }
  return out;
}

function unusable(socket: Socket, writing: boolean): CodedError | undefined {
  if (socket.destroyed) return destroyedError('Cannot relay a socket that has been destroyed');
  if (writing && socket.writableEnded) return codedError('ERR_STREAM_WRITE_AFTER_END', 'Cannot relay into a socket that has been ended');
  return undefined;
}

/** Node sockets of the relay, each once, with how the relay uses them. */
interface Held {
  socket: Socket;
  read?: ReadHold;
  /** The reserved place in the socket's write order; resolves once earlier writes are in the kernel. */
  reserved?: Promise<Hold>;
  write?: Hold;
  /** The relay has written its last byte to this socket: its writes flow again. */
  released?: boolean;
}

const swallow = (): void => {};

/** Why a relay must go through Node streams, given how it uses each socket; undefined: it can splice. */
function streamsReason(held: Map<Socket, Held>, roles: (s: Socket) => Roles): string | undefined {
  if ([...held.keys()].some((s) => (s as { encrypted?: boolean }).encrypted)) return 'tls';
  if (!spliceAvailable()) return 'splice';
  for (const s of held.keys()) {
    const missing = missingInternal(s, roles(s));
    if (missing) return `internal ${missing}`;
  }
  return undefined;
}

/** The error for a relay with an fd that must go through streams (which need sockets at both ends). */
function fdNeedsSplice(plan: Plan, reason: string): Error {
  if (reason === 'tls') {
    return invalidArgValue('src', plan.ends[0], 'cannot be relayed with an fd: TLS sockets are relayed through Node streams, which need sockets at both ends');
  }
  if (reason === 'splice' && !linuxPaths) return unavailable('Relaying an fd number');
  const why =
    reason === 'splice'
      ? 'Relaying an fd needs splice(2), which this process may not use (seccomp?)'
      : `Relaying an fd with a socket needs the socket's ${reason.slice('internal '.length)}, which this runtime does not provide: such sockets are relayed through Node streams, which need sockets at both ends`;
  return codedError('ERR_FEATURE_UNAVAILABLE_ON_PLATFORM', why);
}

/**
 * Runs a plan: takes the sockets over (synchronously, at call time), relays, and hands them back.
 * Rejects with a {@link Failed} carrying the bytes moved.
 */
async function relay(plan: Plan): Promise<Outcome> {
  const { signal } = plan;
  if (signal?.aborted) throw new Failed(abortError(signal), zeros(plan));
  const held = new Map<Socket, Held>();
  const entry = (socket: Socket): Held => {
    let h = held.get(socket);
    if (!h) held.set(socket, (h = { socket }));
    return h;
  };
  const sourceSockets = new Set(plan.chains.map((c) => socketAt(plan, c.src)).filter((e): e is Socket => e !== undefined));
  const sinkSockets = new Set(plan.chains.flatMap((c) => c.sinks.map((i) => socketAt(plan, i))).filter((e): e is Socket => e !== undefined));
  for (const socket of [...sourceSockets, ...sinkSockets]) entry(socket);
  for (const h of held.values()) {
    const err = unusable(h.socket, sinkSockets.has(h.socket));
    if (err) throw new Failed(err, zeros(plan));
  }
  const roles = (s: Socket): Roles => ({ read: sourceSockets.has(s), write: sinkSockets.has(s) });
  const reason = streamsReason(held, roles);
  const hasFd = plan.ends.some((e) => typeof e === 'number');
  // Node streams need sockets at both ends; an fd can only be spliced.
  if (reason && hasFd) throw new Failed(fdNeedsSplice(plan, reason), zeros(plan));
  // Everything up to here is synchronous: the relay takes its place in each socket's byte order now.
  for (const h of held.values()) h.socket.on('error', swallow);
  try {
    if (!reason) for (const socket of sourceSockets) entry(socket).read ??= holdReading(socket);
    for (const socket of sinkSockets) {
      const h = entry(socket);
      h.reserved = takeOver(socket, signal);
      // A rejection is handled below, once every reservation has settled.
      h.reserved.catch(swallow);
    }
  } catch (err) {
    giveBack(held, 'untouched');
    throw new Failed(err, zeros(plan));
  }
  let ok = false;
  let untouched = false;
  try {
    for (const h of held.values()) {
      if (h.reserved) h.write = await h.reserved;
    }
    for (const h of held.values()) await connected(h.socket, signal);
    let streams = reason !== undefined;
    // A runtime may give a socket its handle only once connected: if that one lacks what splicing
    // needs, the relay still goes through streams, before any byte moved; the bytes taken from Node
    // are forwarded first.
    const late = streams ? undefined : [...held.keys()].map((s) => missingInternal(s, roles(s))).find(Boolean);
    if (late) {
      if (hasFd) throw new Failed(fdNeedsSplice(plan, `internal ${late}`), zeros(plan), true);
      streams = true;
    }
    const outcome = streams ? await relayStreams(plan, held) : await relayNative(plan, held);
    ok = true;
    return outcome;
  } catch (err) {
    untouched = err instanceof Failed && err.untouched;
    throw err instanceof Failed ? err : new Failed(err, zeros(plan));
  } finally {
    const how = ok ? 'ok' : untouched ? 'untouched' : 'failed';
    if (how === 'failed') for (const h of held.values()) h.socket.destroy();
    giveBack(held, how);
  }
}

/** Releases every hold; with `ok`, reading sources saw their end of stream. */
function giveBack(held: Map<Socket, Held>, how: 'ok' | 'failed' | 'untouched'): void {
  for (const h of held.values()) {
    if (h.write) h.write.release();
    // A place reserved but not reached yet (the relay failed first) is given up when it is reached.
    else h.reserved?.then((hold) => hold.release(), swallow);
    if (how === 'untouched') h.read?.restore();
    else h.read?.release(how === 'ok');
    // After a failure the sockets are destroyed; a late 'error' from Node must not crash the process.
    if (how !== 'failed') h.socket.off('error', swallow);
  }
}

/** A chain has ended: its Node sinks get their writes back, and are ended if asked. */
function chainEnded(plan: Plan, chain: ChainPlan, held: Map<Socket, Held>): void {
  for (const i of chain.sinks) {
    const sink = plan.ends[i];
    if (typeof sink === 'number' || !sink) continue;
    const h = held.get(sink);
    if (!h || h.released) continue;
    h.released = true;
    h.write?.release();
    if (chain.end) sink.end();
  }
}

async function relayNative(plan: Plan, held: Map<Socket, Held>): Promise<Outcome> {
  const { signal } = plan;
  const readHold = (c: ChainPlan): ReadHold | undefined => {
    const src = socketAt(plan, c.src);
    return src && held.get(src)?.read;
  };
  // A source whose end of stream Node had already read gives only the bytes it held: its chain reads
  // nothing, and its fd is needed only if the relay also writes to it (a proxy's other direction).
  const drained = (c: ChainPlan): boolean => readHold(c)?.ended === true;
  const used = [...new Set(plan.chains.flatMap((c) => (drained(c) ? c.sinks : [c.src, ...c.sinks])))].sort((x, y) => x - y);
  const index = new Map(used.map((end, i) => [end, i]));
  const at = (end: number): number => index.get(end) as number;
  const fds = used.map((i) => {
    const e = plan.ends[i] as RelayEnd;
    if (typeof e === 'number') return e;
    const fd = socketFd(e);
    if (fd === undefined || fd < 0) throw new Failed(destroyedError(), zeros(plan));
    return fd;
  });
  // Bytes Node had read from each chain's Node source before the relay: forwarded first.
  const heads = plan.chains.map((c) => {
    const head = readHold(c)?.head;
    return head && head.length > 0 ? head : undefined;
  });
  let job: InstanceType<typeof native.RelayJob>;
  try {
    job = new native.RelayJob({
      fds,
      chains: plan.chains.map((c, i) => {
        // Node sockets are ended by Node (after the writes it held); fds are shut down natively.
        const natively = c.end && c.sinks.every((e) => typeof plan.ends[e] === 'number');
        return { src: drained(c) ? undefined : at(c.src), sinks: c.sinks.map(at), head: heads[i], shutdown: natively };
      }),
      pipeSize: plan.pipeSize,
    });
  } catch (err) {
    // Refused before any byte moved (a closed fd, an end it could not deliver to): nothing to undo.
    throw new Failed(err, zeros(plan), true);
  }
  const sockets = [...held.keys()];
  // A drained source that is not written is no longer needed: its close changes nothing. Every other
  // socket's close ends the relay.
  const needed = sockets.filter((s) => plan.chains.some((c) => c.sinks.some((e) => plan.ends[e] === s) || (plan.ends[c.src] === s && !drained(c))));
  const unsubscribe = cancelOnEnd(job, needed, signal);
  const budget = signal || plan.onProgress ? WATCHED_STEP : Infinity;
  // With an idle timeout armed, steps also return in time for the timers to hear of every byte.
  const pace = idlePace(sockets);
  const seen = plan.chains.map(() => false);
  const told = zeros(plan);
  const toldRead = plan.chains.map(() => 0);
  /**
   * Node hears of the bytes each sink socket received and each source socket gave (besides the head
   * it had read itself): each count, and each socket's idle timer, for the bytes that moved on it.
   */
  const tell = (bytes: number[][], read: number[]): void => {
    plan.chains.forEach((chain, c) => {
      chain.sinks.forEach((end, k) => {
        const now = bytes[c]?.[k] ?? 0;
        const before = told[c]?.[k] ?? 0;
        const sink = socketAt(plan, end);
        if (now <= before || !sink) return;
        (told[c] as number[])[k] = now;
        noteActivity(sink, now - before);
      });
      const src = socketAt(plan, chain.src);
      const now = read[c] ?? 0;
      if (src && now > (toldRead[c] ?? 0)) {
        noteActivity(src, 0, now - (toldRead[c] ?? 0));
        toldRead[c] = now;
      }
    });
  };
  try {
    let p: RelayProgress;
    do {
      p = await job.step(budget, pace);
      tell(p.bytes, p.read);
      p.chainsDone.forEach((done, i) => {
        const chain = plan.chains[i];
        if (done && !seen[i] && chain) {
          seen[i] = true;
          chainEnded(plan, chain, held);
        }
      });
      plan.onProgress?.(p.bytes);
    } while (!p.done);
    return { bytes: p.bytes, mechanism: 'splice' };
  } catch (err) {
    tell(job.bytes, job.read);
    throw new Failed(err, job.bytes);
  } finally {
    unsubscribe();
    job.close();
  }
}

/**
 * TLS (or no splice): each chain reads its source as a stream and writes every chunk to its sinks
 * through their holds, with backpressure. Abort and a socket's close stop everything.
 */
async function relayStreams(plan: Plan, held: Map<Socket, Held>): Promise<Outcome> {
  const { signal } = plan;
  const bytes = zeros(plan);
  const sockets = [...held.keys()];
  let stop: unknown;
  const halt = (err: unknown): void => {
    stop ??= err;
    for (const s of sockets) s.destroy();
  };
  const unsubscribe = onAbort(signal, () => halt(abortError(signal as AbortSignal)));
  // A socket closing is a failure only while a chain still needs it: as a sink, or as a source that
  // has not delivered its end of stream. One whose both sides have ended closes normally, even while
  // the chain that read it is still writing its last chunk elsewhere.
  const done = plan.chains.map(() => false);
  const inUse = (s: Socket): boolean =>
    plan.chains.some((c, i) => !done[i] && ((plan.ends[c.src] === s && !s.readableEnded) || c.sinks.some((e) => plan.ends[e] === s)));
  const closers = sockets.map((s) => {
    const onClose = (): void => {
      if (inUse(s)) halt(destroyedError('A socket was destroyed while the relay was running'));
    };
    s.once('close', onClose);
    return () => s.off('close', onClose);
  });
  const run = async (chain: ChainPlan, c: number): Promise<void> => {
    const src = plan.ends[chain.src] as Socket;
    const holds = chain.sinks.map((i) => held.get(plan.ends[i] as Socket)?.write);
    const deliver = async (chunk: Buffer): Promise<void> => {
      await Promise.all(holds.map((h) => h?.write(chunk)));
      const row = bytes[c] as number[];
      for (let i = 0; i < row.length; i++) row[i] = (row[i] ?? 0) + chunk.length;
      plan.onProgress?.(bytes);
    };
    // Bytes already taken from Node for a native relay that turned out impossible go first.
    const head = held.get(src)?.read?.resume();
    if (head && head.length > 0) await deliver(head);
    // Not destroyed at its end: a proxied socket's other direction may still be writing into it.
    for await (const data of src.iterator({ destroyOnReturn: false })) {
      await deliver(Buffer.isBuffer(data) ? data : Buffer.from(data as string, src.readableEncoding ?? 'utf8'));
    }
    done[c] = true;
    chainEnded(plan, chain, held);
  };
  try {
    await Promise.all(plan.chains.map((chain, c) => run(chain, c).catch((err) => halt(err))));
    if (stop !== undefined) throw stop;
    return { bytes, mechanism: 'stream' };
  } catch (err) {
    throw new Failed(stop ?? err, bytes);
  } finally {
    unsubscribe();
    for (const off of closers) off();
  }
}


/**
 * Handing Node's sockets over to a relay and back: {@link relay} takes each socket's reads and its
 * place in the write order (synchronously, at call time), picks the splice driver or the stream
 * fallback, and gives the sockets back as the outcome asks (ended, destroyed, or as they were).
 */
import type { Socket } from 'node:net';

import { abortError, codedError, invalidArgValue, type CodedError } from '../errors.js';
import { missingInternal, type Roles } from '../internals.js';
import { linuxPaths, native } from '../native.js';
import { unavailable } from '../platform.js';
import { connected, destroyedError, holdReading, takeOver } from '../takeover.js';
import { Failed, socketAt, zeros, type Held, type Outcome, type Plan } from './plan.js';
import { relaySplice } from './splice.js';
import { relayStreams } from './stream.js';

let spliceWorks: boolean | undefined;

/** Whether this build and the kernel let this process splice (not elsewhere, not blocked by seccomp); probed once. */
function spliceAvailable(): boolean {
  spliceWorks ??= linuxPaths && native.capabilitiesSync(undefined).splice;
  return spliceWorks;
}

function unusable(socket: Socket, writing: boolean): CodedError | undefined {
  if (socket.destroyed) return destroyedError('Cannot relay a socket that has been destroyed');
  if (writing && socket.writableEnded) return codedError('ERR_STREAM_WRITE_AFTER_END', 'Cannot relay into a socket that has been ended');
  return undefined;
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
export async function relay(plan: Plan): Promise<Outcome> {
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
    const outcome = streams ? await relayStreams(plan, held) : await relaySplice(plan, held);
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

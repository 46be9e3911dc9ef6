/**
 * What every part of a relay shares: the plan (its ends and chains), the Node sockets it holds, and
 * the failure that carries the bytes moved.
 */
import type { Socket } from 'node:net';

import type { Hold, ReadHold } from '../takeover.js';

/** How the bytes travelled: `'splice'` (kernel pipes, no byte in JavaScript) or `'stream'` (Node streams: TLS). */
export type RelayMechanism = 'splice' | 'stream';

/** One end of a relay: a connected (or connecting) `net.Socket`, or an fd (socket, pipe, FIFO or file). */
export type RelayEnd = Socket | number;

/** One source and the sinks it is copied to; ends are indexes into {@link Plan.ends}. */
export interface ChainPlan {
  src: number;
  sinks: number[];
  /** End the sinks at end of stream. */
  end: boolean;
}

/** A validated relay: what `pipe`, `proxy` and `teeTo` (index.ts) ask for. */
export interface Plan {
  ends: RelayEnd[];
  chains: ChainPlan[];
  signal: AbortSignal | undefined;
  pipeSize: number | undefined;
  onProgress: ((bytes: number[][]) => void) | undefined;
}

/** What a relay moved: bytes per chain, per sink. */
export interface Outcome {
  bytes: number[][];
  mechanism: RelayMechanism;
}

/**
 * A failure, with the bytes per chain and sink it happened after. `untouched`: it happened before
 * anything moved (the native relay refused an end), so the sockets are handed back as they were.
 */
export class Failed extends Error {
  constructor(
    readonly error: unknown,
    readonly bytes: number[][],
    readonly untouched = false,
  ) {
    super('relay failed');
  }
}

export const zeros = (plan: Plan): number[][] => plan.chains.map((c) => c.sinks.map(() => 0));

/** End `i` of the plan if it is a Node socket. */
export function socketAt(plan: Plan, i: number): Socket | undefined {
  const e = plan.ends[i];
  return typeof e === 'number' ? undefined : e;
}

/** Node sockets of the relay, each once, with how the relay uses them. */
export interface Held {
  socket: Socket;
  read?: ReadHold;
  /** The reserved place in the socket's write order; resolves once earlier writes are in the kernel. */
  reserved?: Promise<Hold>;
  write?: Hold;
  /** The relay has written its last byte to this socket: its writes flow again. */
  released?: boolean;
}

/** A chain has ended: its Node sinks get their writes back, and are ended if asked. */
export function chainEnded(plan: Plan, chain: ChainPlan, held: Map<Socket, Held>): void {
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

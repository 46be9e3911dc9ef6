/**
 * The stream fallback: TLS sockets, and runtimes whose sockets cannot be spliced. Bytes pass through
 * JavaScript, with backpressure, through the write holds the hand-over took.
 */
import type { Socket } from 'node:net';

import { abortError } from '../errors.js';
import { onAbort } from '../signal.js';
import { destroyedError } from '../takeover.js';
import { chainEnded, Failed, zeros, type ChainPlan, type Held, type Outcome, type Plan } from './plan.js';

/**
 * TLS (or no splice): each chain reads its source as a stream and writes every chunk to its sinks
 * through their holds, with backpressure. Abort and a socket's close stop everything.
 */
export async function relayStreams(plan: Plan, held: Map<Socket, Held>): Promise<Outcome> {
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

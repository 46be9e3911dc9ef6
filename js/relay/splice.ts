/**
 * The splice driver: one native RelayJob (socket → kernel pipe → socket, `tee(2)` for several sinks)
 * stepped on the tokio runtime, with Node told of every byte that moved on its sockets.
 */
import type { Socket } from 'node:net';

import { native, type RelayProgress } from '../native.js';
import { socketFd } from '../internals.js';
import { cancelOnEnd, destroyedError, idlePace, noteActivity, type ReadHold } from '../takeover.js';
import { chainEnded, Failed, socketAt, zeros, type ChainPlan, type Held, type Outcome, type Plan, type RelayEnd } from './plan.js';

/** Bytes per step when someone is watching (signal or progress). */
const WATCHED_STEP = 8 * 1024 * 1024;

/** Runs the plan with a native RelayJob; rejects with a {@link Failed} carrying the bytes moved. */
export async function relaySplice(plan: Plan, held: Map<Socket, Held>): Promise<Outcome> {
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

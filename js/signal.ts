/**
 * One 'abort' listener per AbortSignal, however many operations share it: services pass one signal
 * to thousands of sends, and a listener each would trip EventTarget's leak warning.
 */
const listeners = new WeakMap<AbortSignal, Set<() => void>>();

/** Calls `fn` once when `signal` aborts. Returns the function that unsubscribes. */
export function onAbort(signal: AbortSignal | undefined, fn: () => void): () => void {
  if (!signal) return () => {};
  let set = listeners.get(signal);
  if (!set) {
    const fns = new Set<() => void>();
    set = fns;
    listeners.set(signal, fns);
    signal.addEventListener(
      'abort',
      () => {
        listeners.delete(signal);
        for (const f of fns) f();
      },
      { once: true },
    );
  }
  const fns = set;
  fns.add(fn);
  return () => {
    fns.delete(fn);
  };
}

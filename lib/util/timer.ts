/**
 * Timers for code on the downstream path. Deno 2.9's global setTimeout/clearTimeout are Node's
 * timers, loaded the first time either name is touched: ~7.5 ms, a fifth of a warm downstream
 * command. AbortSignal.timeout uses the runtime's own timer (~0.5 ms) and keeps the process alive
 * only while it has a listener, so a cancelled timer holds nothing up.
 */

/** Calls `fn` once after `ms` milliseconds; the returned function cancels it. */
export function after(ms: number, fn: () => void): () => void {
  const signal = AbortSignal.timeout(ms);
  const fire = () => fn();
  signal.addEventListener("abort", fire, { once: true });
  return () => signal.removeEventListener("abort", fire);
}

/** Resolves after `ms` milliseconds. */
export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => after(ms, resolve));
}

/**
 * after() for a time limit on a read or write that is under way: it does not keep the process
 * alive by itself, so it is only for waits that something else (that read or write) keeps open.
 * Atomics.waitAsync's time-out costs ~0.1 ms where after() costs ~1.3 ms the first time in a
 * process; a warm downstream command arms two (its greeting, its closing flush).
 */
export function watchdog(ms: number, fn: () => void): () => void {
  const cell = new Int32Array(new SharedArrayBuffer(4));
  let cancelled = false;
  const wait = Atomics.waitAsync(cell, 0, 0, Math.max(ms, 1));
  if (wait.async) wait.value.then(() => cancelled || fn());
  return () => {
    cancelled = true;
    Atomics.notify(cell, 0);
  };
}

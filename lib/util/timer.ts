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

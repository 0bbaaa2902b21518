/**
 * The accepting side of an upstream's listening socket, hardened against clients on the same
 * account: accept() errors (out of descriptors, ...) are waited out and accepting goes on;
 * connections that have not finished their greeting are capped in number and dropped after a
 * time limit, so idle connections cannot pile up. Protocol-agnostic: the sharing socket and any
 * other listener of the upstream use it alike.
 */

import { errorText } from "../util/error_text.ts";
import { after, delay } from "../util/timer.ts";

export interface AcceptLimits {
  /** How long a new connection may take to complete its greeting. */
  greetingMs: number;
  /** Connections still greeting at once; more are closed on arrival. */
  maxPending: number;
}

/** Read from the environment, so tests can use short limits: PK_SHARE_GREETING_MS, PK_SHARE_MAX_PENDING. */
export function acceptLimits(): AcceptLimits {
  return {
    greetingMs: envNumber("PK_SHARE_GREETING_MS", 10000),
    maxPending: envNumber("PK_SHARE_MAX_PENDING", 64),
  };
}

/** How long a downstream waits for the upstream's greeting (PK_SHARE_GREETING_MS). */
export function greetingTimeoutMs(): number {
  return envNumber("PK_SHARE_GREETING_MS", 10000);
}

/** A positive number from the environment, else `fallback` (also without env permission). */
export function envNumber(name: string, fallback: number): number {
  try {
    const v = Number(Deno.env.get(name));
    return Number.isFinite(v) && v > 0 ? v : fallback;
  } catch {
    return fallback;
  }
}

/** What the owner of the listener makes of an accepted connection. */
export interface Greeted {
  /** Settles when the peer has greeted (resolves) or gone (rejects). */
  greeting: Promise<unknown>;
  /** Drops the connection (it never finished greeting in time). */
  close(): void;
}

/** Shortest and longest wait after an accept() error, doubling in between. */
const BACKOFF_MIN_MS = 10;
const BACKOFF_MAX_MS = 1000;

export class AcceptGuard {
  private stopped = false;
  private pending = 0;
  private refusedSinceLog = 0;

  /**
   * Accepts from `listener` until stop() or the listener is closed, handing each connection to
   * `handle`, which starts the protocol on it.
   */
  constructor(
    private readonly listener: Deno.Listener,
    private readonly handle: (conn: Deno.Conn) => Greeted,
    private readonly log: (text: string) => void,
    private readonly limits: AcceptLimits = acceptLimits(),
    private readonly what = "connection",
  ) {
    this.loop();
  }

  /** Connections that have not yet completed their greeting. */
  get pendingCount(): number {
    return this.pending;
  }

  stop(): void {
    this.stopped = true;
  }

  private async loop(): Promise<void> {
    let backoff = 0;
    while (!this.stopped) {
      let conn: Deno.Conn;
      try {
        conn = await this.listener.accept();
      } catch (e) {
        if (this.stopped || e instanceof Deno.errors.BadResource) return;
        // EMFILE, ENFILE, ENOBUFS, ...: the connection stays queued in the kernel; try again
        // shortly rather than spinning or giving up.
        backoff = Math.min(BACKOFF_MAX_MS, backoff ? backoff * 2 : BACKOFF_MIN_MS);
        if (backoff === BACKOFF_MIN_MS) {
          this.log(`accepting a ${this.what} failed: ${errorText(e)}; retrying`);
        }
        await delay(backoff);
        continue;
      }
      backoff = 0;
      if (this.stopped) {
        closeQuietly(conn);
        return;
      }
      this.admit(conn);
    }
  }

  private admit(conn: Deno.Conn): void {
    if (this.pending >= this.limits.maxPending) {
      closeQuietly(conn);
      if (this.refusedSinceLog++ === 0) {
        this.log(`${this.limits.maxPending} ${this.what}s still greeting; refusing more`);
      }
      return;
    }
    this.refusedSinceLog = 0;
    this.pending++;
    let greeted: Greeted;
    try {
      greeted = this.handle(conn);
    } catch {
      this.pending--;
      closeQuietly(conn);
      return;
    }
    // close() makes the greeting reject, which releases the slot.
    const cancel = after(this.limits.greetingMs, () => {
      this.log(`a ${this.what} sent no greeting in ${this.limits.greetingMs / 1000} s; dropped`);
      greeted.close();
    });
    const done = () => {
      cancel();
      this.pending--;
    };
    greeted.greeting.then(done, done);
  }
}

function closeQuietly(conn: Deno.Conn): void {
  try {
    conn.close();
  } catch { /* already closed */ }
}

/**
 * From the tools' own errors to the library API's classes (./errors.ts), keeping the message.
 * Loaded with the connection, not by mod.ts, so that its imports stay off the tools' start-up.
 */

import { ConfigError } from "../config/types.ts";
import { RemoteRefusedError } from "../session/main_channel.ts";
import { ConnectionClosedError } from "../ssh/channel.ts";
import { ChannelOpenError } from "../ssh/connection.ts";
import {
  AuthenticationError,
  ConfigurationError,
  ConnectionError,
  HostKeyError,
  PuttykitError,
  RefusedError,
} from "./errors.ts";

/** The library's error class for an error from the tools' code; the message is kept. */
export function apiError(e: unknown): Error {
  if (e instanceof PuttykitError || (e instanceof DOMException && e.name === "AbortError")) {
    return e;
  }
  if (!(e instanceof Error)) return new PuttykitError(String(e));
  if (e instanceof ConfigError) return new ConfigurationError(e.message, { cause: e });
  if (e instanceof ChannelOpenError || e instanceof RemoteRefusedError) {
    return new RefusedError(e.message, { cause: e });
  }
  if (e instanceof ConnectionClosedError) return new ConnectionError(e.message, { cause: e });
  // The transport's errors carry a kind; their class lives beside ssh2, which is not loaded here.
  const kind = (e as { kind?: unknown }).kind;
  if (kind === "hostkey") return new HostKeyError(e.message, { cause: e });
  if (kind === "auth") return new AuthenticationError(e.message, { cause: e });
  if (kind === "network" || kind === "protocol") {
    return new ConnectionError(e.message, { cause: e });
  }
  return new PuttykitError(e.message, { cause: e });
}

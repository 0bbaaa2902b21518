/**
 * Reaching the SSH server through a proxy, as PuTTY's proxy/ code does: a local command
 * (-proxycmd, ProxyMethod 5) whose stdin/stdout carry the connection, SOCKS 4/4A/5, HTTP CONNECT
 * or a "telnet" proxy (a command line sent to the proxy, then the connection). The result is a
 * stream ssh2 runs its transport over.
 *
 * Which connections are proxied follows proxy_for_destination(): never the local host itself
 * (unless ProxyLocalhost is set), nor a host on ProxyExcludeList; the proxy is asked to look the
 * host name up (ProxyDNS "auto" or "yes"), so %host is the name as given.
 *
 * Messages are PuTTY's: "Starting local proxy command: ...", "proxy: <a line of the command's
 * stderr>" (both -v only), "Proxy error: ..." for a proxy that refuses.
 */

import { Buffer } from "node:buffer";
import { spawn } from "node:child_process";
import { Socket } from "node:net";
import { Duplex } from "node:stream";
import type { PuttyConfig } from "../config/types.ts";

export class ProxyError extends Error {}

export type ProxyConfig = Pick<
  PuttyConfig,
  | "proxyType"
  | "proxyCommand"
  | "proxyHost"
  | "proxyPort"
  | "proxyUsername"
  | "proxyPassword"
  | "proxyExcludeList"
  | "proxyLocalhost"
>;

/** sk_hostname_is_local(): the names that always mean this machine. */
function hostnameIsLocal(name: string): boolean {
  return name === "localhost" || name === "::1" || name.startsWith("127.");
}

/** Whether a connection to `host` goes through the configured proxy (proxy_for_destination). */
export function proxyFor(cfg: ProxyConfig, host: string): boolean {
  if (cfg.proxyType === "none") return false;
  if (!cfg.proxyLocalhost && hostnameIsLocal(host)) return false;
  const name = host.toLowerCase();
  for (const entry of cfg.proxyExcludeList.split(/[\s,]+/)) {
    if (!entry) continue;
    const e = entry.toLowerCase();
    // "*.example.com" matches a suffix, "192.168.*" a prefix, anything else the whole name.
    if (
      e.startsWith("*")
        ? name.endsWith(e.slice(1))
        : e.endsWith("*")
        ? name.startsWith(e.slice(0, -1))
        : name === e
    ) return false;
  }
  return true;
}

/**
 * format_connection_setup_command(): \\ \% \r \n \t \xHH escapes and %host, %port, %user,
 * %pass, %proxyhost, %proxyport, %% (case-insensitive); anything else is left as written.
 */
export function formatProxyCommand(
  fmt: string,
  host: string,
  port: number,
  cfg: Pick<ProxyConfig, "proxyHost" | "proxyPort" | "proxyUsername" | "proxyPassword">,
): string {
  let out = "";
  let i = 0;
  while (i < fmt.length) {
    const c = fmt[i];
    if ((c !== "\\" && c !== "%") || i + 1 >= fmt.length) {
      out += c;
      i++;
      continue;
    }
    const rest = fmt.slice(i + 1);
    if (c === "\\") {
      const simple: Record<string, string> = { "\\": "\\", "%": "%", r: "\r", n: "\n", t: "\t" };
      const hex = /^[xX]([0-9a-fA-F]{2})/.exec(rest);
      if (rest[0] in simple) {
        out += simple[rest[0]];
        i += 2;
      } else if (hex) {
        out += String.fromCharCode(parseInt(hex[1], 16));
        i += 4;
      } else {
        out += fmt.slice(i, i + 2);
        i += 2;
      }
      continue;
    }
    const words: [string, () => string][] = [
      ["%", () => "%"],
      ["host", () => host],
      ["port", () => String(port)],
      ["user", () => cfg.proxyUsername],
      ["pass", () => cfg.proxyPassword],
      ["proxyhost", () => cfg.proxyHost],
      ["proxyport", () => String(cfg.proxyPort)],
    ];
    const hit = words.find(([w]) => rest.slice(0, w.length).toLowerCase() === w);
    if (hit) {
      out += hit[1]();
      i += 1 + hit[0].length;
    } else {
      out += "%";
      i++;
    }
  }
  return out;
}

export interface ProxyUi {
  log(text: string): void;
}

/** Opens the proxied connection to host:port; the stream is connected when this resolves. */
export function openProxied(
  cfg: ProxyConfig,
  host: string,
  port: number,
  ui: ProxyUi,
): Promise<Duplex> {
  ui.log(`Leaving host lookup to proxy of "${host}" (for SSH connection)`);
  switch (cfg.proxyType) {
    case "cmd":
      return Promise.resolve(localCommand(cfg, host, port, ui));
    case "socks4":
    case "socks5":
    case "http":
    case "telnet":
      return throughProxyServer(cfg, host, port, ui);
    default:
      return Promise.reject(
        new ProxyError(`Proxy error: proxy type ${cfg.proxyType} is not supported by puttykit`),
      );
  }
}

/** The local proxy command, run with /bin/sh -c; its stderr lines go to the event log. */
function localCommand(cfg: ProxyConfig, host: string, port: number, ui: ProxyUi): Duplex {
  const command = formatProxyCommand(cfg.proxyCommand ?? "", host, port, cfg);
  ui.log(`Starting local proxy command: ${command}`);
  const child = spawn("/bin/sh", ["-c", command], { stdio: ["pipe", "pipe", "pipe"] });
  let partial = "";
  child.stderr.setEncoding("utf8");
  child.stderr.on("data", (text: string) => {
    const lines = (partial + text).split("\n");
    partial = lines.pop() ?? "";
    for (const line of lines) ui.log(`proxy: ${line.replace(/\r$/, "")}`);
  });
  child.stderr.on("end", () => partial && ui.log(`proxy: ${partial}`));
  const stream = Duplex.from({ readable: child.stdout, writable: child.stdin });
  // The command failing to start is reported like a connection that ends at once.
  child.on("error", () => stream.destroy());
  stream.on("close", () => {
    if (child.exitCode === null) child.kill();
  });
  return stream;
}

/** A connection to the proxy server, then its handshake for host:port. */
function throughProxyServer(
  cfg: ProxyConfig,
  host: string,
  port: number,
  ui: ProxyUi,
): Promise<Duplex> {
  ui.log(`Connecting to ${proxyName(cfg)} proxy at ${cfg.proxyHost} port ${cfg.proxyPort}`);
  return new Promise((resolve, reject) => {
    const sock = new Socket();
    let buffered = Buffer.alloc(0);
    let waiter: (() => void) | undefined;
    let failed: Error | undefined;
    const onData = (d: Buffer) => {
      buffered = Buffer.concat([buffered, d]);
      waiter?.();
    };
    const onEnd = (e?: Error) => {
      failed ??= e ?? new ProxyError("Proxy error: proxy closed the connection");
      waiter?.();
    };
    sock.on("data", onData);
    sock.on("end", () => onEnd());
    let connected = false;
    sock.on("error", (e) => {
      const err = new ProxyError(`Proxy error: ${socketError(e)}`);
      if (connected) onEnd(err);
      else reject(err);
    });
    /** Waits until `n` bytes (or, for n = -1, a blank line) have arrived; takes them. */
    const read = async (n: number): Promise<Buffer> => {
      for (;;) {
        const end = n >= 0 ? (buffered.length >= n ? n : -1) : headerEnd(buffered);
        if (end >= 0) {
          const out = buffered.subarray(0, end);
          buffered = buffered.subarray(end);
          return out;
        }
        if (failed) throw failed;
        await new Promise<void>((r) => waiter = r);
        waiter = undefined;
      }
    };
    const write = (b: Uint8Array | string) => sock.write(b);
    sock.connect({ host: cfg.proxyHost, port: cfg.proxyPort }, () => {
      connected = true;
      handshake(cfg, host, port, read, write).then(() => {
        sock.off("data", onData);
        // Whatever the proxy sent after its answer belongs to the SSH server.
        if (buffered.length) sock.unshift(buffered);
        ui.log(`Proxy connection to ${host} port ${port} established`);
        resolve(sock);
      }, (e) => {
        sock.destroy();
        reject(e);
      });
    });
  });
}

function proxyName(cfg: ProxyConfig): string {
  return { socks4: "SOCKS 4", socks5: "SOCKS 5", http: "HTTP", telnet: "Telnet" }[
    cfg.proxyType as "socks4"
  ] ?? cfg.proxyType;
}

function headerEnd(b: Buffer): number {
  const i = b.indexOf("\r\n\r\n");
  if (i >= 0) return i + 4;
  const j = b.indexOf("\n\n");
  return j >= 0 ? j + 2 : -1;
}

function socketError(e: Error & { code?: string }): string {
  const words: Record<string, string> = {
    ECONNREFUSED: "Connection refused",
    ETIMEDOUT: "Connection timed out",
    ECONNRESET: "Connection reset by peer",
    EHOSTUNREACH: "No route to host",
    ENOTFOUND: "Host does not exist",
  };
  return words[e.code ?? ""] ?? e.message;
}

async function handshake(
  cfg: ProxyConfig,
  host: string,
  port: number,
  read: (n: number) => Promise<Buffer>,
  write: (b: Uint8Array | string) => void,
): Promise<void> {
  const enc = new TextEncoder();
  if (cfg.proxyType === "http") {
    let req = `CONNECT ${host.includes(":") ? `[${host}]` : host}:${port} HTTP/1.1\r\n` +
      `Host: ${host.includes(":") ? `[${host}]` : host}:${port}\r\n`;
    if (cfg.proxyUsername || cfg.proxyPassword) {
      const token = btoa(
        String.fromCharCode(...enc.encode(`${cfg.proxyUsername}:${cfg.proxyPassword}`)),
      );
      req += `Proxy-Authorization: Basic ${token}\r\n`;
    }
    write(req + "\r\n");
    const head = new TextDecoder().decode(await read(-1));
    const status = /^HTTP\/\d\.\d (\d{3})(.*)/.exec(head);
    if (!status) throw new ProxyError("Proxy error: HTTP response was absent");
    if (status[1][0] !== "2") {
      throw new ProxyError(`Proxy error: ${status[1]}${status[2].trimEnd()}`);
    }
    return;
  }
  if (cfg.proxyType === "telnet") {
    write(formatProxyCommand(cfg.proxyCommand ?? "connect %host %port\\n", host, port, cfg));
    return;
  }
  if (cfg.proxyType === "socks4") {
    // SOCKS 4A: the proxy looks the name up (address 0.0.0.1, name after the user id).
    const ip = /^(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(host);
    const user = enc.encode(cfg.proxyUsername);
    const name = ip ? new Uint8Array(0) : enc.encode(host);
    const req = new Uint8Array(8 + user.length + 1 + (ip ? 0 : name.length + 1));
    req[0] = 4;
    req[1] = 1;
    req[2] = port >> 8;
    req[3] = port & 0xff;
    req.set(ip ? ip.slice(1).map(Number) : [0, 0, 0, 1], 4);
    req.set(user, 8);
    if (!ip) req.set(name, 9 + user.length);
    write(req);
    const reply = await read(8);
    if (reply[1] !== 90) {
      const why: Record<number, string> = {
        91: "request rejected or failed",
        92: "request rejected because SOCKS server cannot connect to identd on the client",
        93: "request rejected because the client program and identd report different user-ids",
      };
      throw new ProxyError(`Proxy error: SOCKS server reported ${why[reply[1]] ?? "an error"}`);
    }
    return;
  }
  // SOCKS 5: no authentication, or user name and password (RFC 1929) when configured.
  const withPassword = cfg.proxyUsername !== "" || cfg.proxyPassword !== "";
  write(new Uint8Array(withPassword ? [5, 2, 0, 2] : [5, 1, 0]));
  const choice = await read(2);
  if (choice[0] !== 5) {
    throw new ProxyError("Proxy error: SOCKS proxy returned wrong version number");
  }
  if (choice[1] === 2) {
    const u = enc.encode(cfg.proxyUsername);
    const p = enc.encode(cfg.proxyPassword);
    write(new Uint8Array([1, u.length, ...u, p.length, ...p]));
    const ok = await read(2);
    if (ok[1] !== 0) {
      throw new ProxyError("Proxy error: SOCKS 5 authentication failed");
    }
  } else if (choice[1] !== 0) {
    throw new ProxyError("Proxy error: SOCKS 5 server wanted no authentication we support");
  }
  const name = enc.encode(host);
  write(new Uint8Array([5, 1, 0, 3, name.length, ...name, port >> 8, port & 0xff]));
  const head = await read(5);
  if (head[1] !== 0) {
    const why = [
      "",
      "general server failure",
      "connection not allowed by ruleset",
      "network unreachable",
      "host unreachable",
      "connection refused",
      "TTL expired",
      "command not supported",
      "address type not supported",
    ];
    throw new ProxyError(
      `Proxy error: SOCKS error: ${why[head[1]] ?? "unrecognised SOCKS error code"}`,
    );
  }
  // The bound address: IPv4, a name, or IPv6; then the port.
  const rest = head[3] === 1 ? 3 + 2 : head[3] === 4 ? 15 + 2 : head[3] === 3 ? head[4] + 2 : 0;
  await read(rest);
}

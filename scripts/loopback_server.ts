/**
 * A small SSH server on 127.0.0.1, built on npm:ssh2's Server, for the demo and for fault
 * injection in tests. It runs commands with `sh -c` as the current user, serves the sftp
 * subsystem in this process (scripts/loopback_sftp.ts: no OpenSSH needed), and counts
 * authentications.
 *
 * Not a general-purpose server: loopback only, one password, one optional public key.
 */

// Before "ssh2": working zlib packet classes for compressed connections (lib/transport/ssh2_zlib.ts).
import "../lib/transport/ssh2_zlib.ts";
// @ts-types="npm:@types/ssh2@1.15.5"
import ssh2 from "npm:ssh2@1.17.0";
import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { Buffer } from "node:buffer";
import { serveSftp } from "./loopback_sftp.ts";

export interface LoopbackServerOptions {
  user?: string;
  password?: string;
  /** OpenSSH public key line ("ssh-ed25519 AAAA...") also accepted for `user`. */
  authorizedKey?: string;
  /**
   * Offer keyboard-interactive (a "Password: " prompt without echo, then "Token: " with echo,
   * expecting `password` and "42") instead of password authentication.
   */
  keyboardInteractive?: boolean;
  /** Let `user` in without any authentication ("none"): a trivially authenticating server. */
  trivialAuth?: boolean;
  /** Called on every new TCP connection (fault injection: drop, delay...). */
  onConnection?: (client: ssh2.Connection) => void;
  /** Called for each exec request before it runs; return false to refuse it. */
  onExec?: (command: string) => boolean | void;
}

export interface LoopbackServer {
  host: string;
  port: number;
  user: string;
  password: string;
  /** "SHA256:..." of the host key, for plink -hostkey. */
  hostKeyFingerprint: string;
  /** Successful authentications so far. */
  readonly authCount: number;
  /** Live client connections. */
  readonly clients: Set<ssh2.Connection>;
  /** Drops every client connection at once (a server that dies under its clients). */
  dropAll(): void;
  close(): Promise<void>;
}

export function startLoopbackServer(opts: LoopbackServerOptions = {}): Promise<LoopbackServer> {
  const user = opts.user ?? "demo";
  const password = opts.password ?? "demo";
  // About 1 in 200 Ed25519 keys Deno's node:crypto generates comes out with a 31-byte public key
  // (a leading zero byte lost) that ssh2 rejects as malformed: draw again.
  let hostKey: { private: string; public: string };
  let hostPub: ssh2.ParsedKey | Error;
  do {
    hostKey = ssh2.utils.generateKeyPairSync("ed25519");
    hostPub = ssh2.utils.parseKey(hostKey.public) as ssh2.ParsedKey | Error;
  } while (hostPub instanceof Error);
  const fingerprint = "SHA256:" +
    createHash("sha256").update(hostPub.getPublicSSH()).digest("base64").replace(/=+$/, "");
  const allowedKey = opts.authorizedKey
    ? ssh2.utils.parseKey(opts.authorizedKey) as ssh2.ParsedKey
    : undefined;
  const clients = new Set<ssh2.Connection>();
  let authCount = 0;

  const server = new ssh2.Server({ hostKeys: [hostKey.private] }, (client) => {
    clients.add(client);
    client.on("close", () => clients.delete(client));
    client.on("error", () => {});
    opts.onConnection?.(client);
    client.on("authentication", (ctx) => {
      const okUser = ctx.username === user;
      const methods: ssh2.AuthenticationType[] = [
        opts.keyboardInteractive ? "keyboard-interactive" : "password",
      ];
      if (allowedKey) methods.push("publickey");
      if (okUser && ctx.method === "none" && opts.trivialAuth) {
        authCount++;
        return ctx.accept();
      }
      if (okUser && ctx.method === "keyboard-interactive" && opts.keyboardInteractive) {
        return ctx.prompt(
          [{ prompt: "Password: ", echo: false }, { prompt: "Token: ", echo: true }],
          "Loopback login",
          "Answer both questions.",
          (answers) => {
            if (answers[0] === password && answers[1] === "42") {
              authCount++;
              return ctx.accept();
            }
            ctx.reject(methods);
          },
        );
      }
      if (
        okUser && ctx.method === "password" && !opts.keyboardInteractive &&
        ctx.password === password
      ) {
        authCount++;
        return ctx.accept();
      }
      if (okUser && ctx.method === "publickey" && allowedKey) {
        const sameKey = Buffer.compare(ctx.key.data, allowedKey.getPublicSSH()) === 0;
        if (sameKey && !ctx.signature) return ctx.accept();
        if (sameKey && ctx.signature && ctx.blob) {
          if (allowedKey.verify(ctx.blob, ctx.signature, ctx.hashAlgo) === true) {
            authCount++;
            return ctx.accept();
          }
        }
      }
      ctx.reject(methods);
    });
    client.on("ready", () => {
      client.on("session", (accept) => {
        const session = accept();
        const env: Record<string, string> = {};
        session.on("env", (acceptEnv, _reject, info) => {
          env[info.key] = info.val;
          acceptEnv?.();
        });
        session.on("pty", (acceptPty) => acceptPty?.());
        session.on("exec", (acceptExec, reject, info) => {
          if (opts.onExec?.(info.command) === false) return reject?.();
          run(acceptExec(), "sh", ["-c", info.command], env);
        });
        session.on("shell", (acceptShell) => run(acceptShell(), "sh", ["-i"], env));
        // ssh2 hands "sftp" to the sftp listener; any other subsystem is refused.
        session.on("sftp", (acceptSftp) => serveSftp(acceptSftp()));
        session.on("subsystem", (_accept, reject) => reject?.());
      });
    });
  });

  return new Promise((resolve) => {
    server.listen(0, "127.0.0.1", () => {
      const port = (server.address() as { port: number }).port;
      resolve({
        host: "127.0.0.1",
        port,
        user,
        password,
        hostKeyFingerprint: fingerprint,
        get authCount() {
          return authCount;
        },
        clients,
        dropAll: () => {
          for (const c of clients) {
            // deno-lint-ignore no-explicit-any
            (c as any)._sock?.destroy();
          }
        },
        close: () =>
          new Promise<void>((done) => {
            for (const c of clients) c.end();
            server.close(() => done());
          }),
      });
    });
  });
}

/** Runs a local process behind an accepted channel, relaying data, EOF and exit status. */
function run(
  stream: ssh2.ServerChannel,
  cmd: string,
  args: string[],
  env: Record<string, string>,
): void {
  const child = spawn(cmd, args, { env: { ...Deno.env.toObject(), ...env } });
  stream.pipe(child.stdin);
  child.stdin.on("error", () => {});
  child.stdout.pipe(stream, { end: false });
  child.stderr.pipe(stream.stderr, { end: false });
  child.on("close", (code, signal) => {
    if (signal) stream.exit(signal.replace(/^SIG/, ""), false, "");
    else stream.exit(code ?? 0);
    stream.end();
  });
  stream.on("close", () => {
    if (child.exitCode === null) child.kill("SIGHUP");
  });
}

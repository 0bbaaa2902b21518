/**
 * What a direct connection needs before and during the handshake: the user name (asked for as
 * PuTTY's "login as:" when not given), the -i key (passphrase asked for if needed), the agent
 * socket, and the host-key decision (-hostkey list, else the host-key cache, else ask).
 *
 * Loaded only on the direct-connection path.
 */

import type { PuttyConfig } from "../config/types.ts";
import {
  checkHostKey,
  hostKeyFingerprint,
  hostKeyMatchesManual,
  parseHostKeyBlob,
  storedHostKeyTypes,
  storeHostKey,
} from "../config/hostkeys.ts";
import { type Interaction, keyHost } from "./interaction.ts";
import {
  isPpk,
  KeyFileError,
  type LoadedKey,
  loadPrivateKey,
  needsPassphrase,
} from "../keys/private_key.ts";
import { parsePrivateKey } from "../transport/ssh2_internals.ts";
import { type Credentials, TransportError } from "../transport/transport.ts";
import { errorText } from "../util/error_text.ts";

/**
 * `interactive` (psftp, putty, plink without a command): the user name is announced on stderr,
 * as PuTTY does for interactive sessions; otherwise it is an event-log (-v) line.
 */
export async function prepareAuth(
  cfg: PuttyConfig,
  ui: Interaction,
  interactive = false,
): Promise<Credentials> {
  // As in PuTTY, the key file is looked at before the user name is settled, and its private
  // part (with any passphrase) after.
  const keyText = cfg.keyFile ? await readKeyFile(cfg.keyFile, ui) : undefined;
  let user = cfg.user;
  if (!user) {
    if (cfg.batch) {
      throw new TransportError("Cannot answer interactive prompts in batch mode", "auth");
    }
    user = await ui.prompt("login as: ", true);
    if (!user) throw new TransportError("No user name given", "auth");
  }
  // PuTTY writes this line with "\r\n" (warn adds the "\n").
  if (interactive) ui.warn(`Using username "${user}".\r`);
  else ui.log(`Using username "${user}".`);
  if (cfg.certFile) {
    ui.warn(`Certificates are not supported by puttykit; not using "${cfg.certFile}"`);
  }
  const key = keyText === undefined
    ? undefined
    : await decodeKeyFile(cfg.keyFile!, keyText, cfg.batch, ui);
  const sock = Deno.env.get("SSH_AUTH_SOCK");
  return { user, key, agentSocket: cfg.tryAgent && sock ? sock : undefined };
}

/*
 * An unusable -i key file (missing, unreadable, not a key, corrupt) is, as in PuTTY, said in one
 * line and authentication carries on without it (agent, -pw, keyboard-interactive). A
 * passphrase that cannot be asked for, or is wrong, stays fatal.
 */

/** The text of a private key file, or undefined when it cannot be one. */
async function readKeyFile(path: string, ui: Interaction): Promise<string | undefined> {
  ui.log(`Reading key file "${path}"`);
  // PuTTY writes these lines with "\r\n" (warn adds the "\n").
  const unusable = (why: string) => {
    ui.log(`Unable to use this key file (${why})`);
    ui.warn(`Unable to use key file "${path}" (${why})\r`);
    return undefined;
  };
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch {
    return unusable("unable to open file");
  }
  if (!isPpk(text) && !text.includes("PRIVATE KEY")) {
    // A public key alone: PuTTY only uses it to choose among the agent's keys, which we all try.
    if (/^(ssh-|ecdsa-|---- BEGIN SSH2 PUBLIC KEY)/.test(text)) {
      ui.log("Key file contains public key only");
      return undefined;
    }
    return unusable("not a recognised key file format");
  }
  return text;
}

/** The key from its file's text, decrypted; undefined when it is unusable after all. */
async function decodeKeyFile(
  path: string,
  text: string,
  batch: boolean,
  ui: Interaction,
): Promise<LoadedKey | undefined> {
  let passphrase: string | undefined;
  if (needsPassphrase(text)) {
    if (batch) {
      throw new KeyFileError(
        `Key file "${path}" needs a passphrase, which cannot be asked for in batch mode`,
      );
    }
    passphrase = await ui.prompt(`Passphrase for key "${path}": `, false);
  }
  try {
    const key = await loadPrivateKey(path, text, passphrase);
    parsePrivateKey(key.key, key.passphrase);
    return key;
  } catch (e) {
    const why = errorText(e);
    if (passphrase !== undefined) {
      throw new KeyFileError(`Unable to load key file "${path}" (${why})`);
    }
    ui.log(`Unable to load private key (${why})`);
    ui.warn(`Unable to load private key (${why})\r`);
    return undefined;
  }
}

/**
 * ssh2 host-key algorithm names in our preference order, with the types already cached for
 * this host first (PuTTY's PreferKnownHostKeys), so a cached key is what the server shows us.
 */
export function hostKeyAlgorithms(cfg: PuttyConfig): string[] {
  const all = [
    "ssh-ed25519",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "rsa-sha2-512",
    "rsa-sha2-256",
    "ssh-rsa",
  ];
  if (!cfg.preferKnownHostKeys) return all;
  const cached = storedHostKeyTypes(keyHost(cfg), cfg.port);
  const known = (alg: string) =>
    cached.includes(alg) || (alg.includes("rsa") && cached.includes("rsa2"));
  return [...all.filter(known), ...all.filter((a) => !known(a))];
}

/**
 * The host-key decision for one connection, as PuTTY makes it: a -hostkey list, if given, is
 * the only thing that counts; otherwise the cache must match, an unknown key is asked about
 * (refused in batch mode) and a changed key is refused outright.
 */
export function verifierFor(
  cfg: PuttyConfig,
  ui: Interaction,
): (blob: Uint8Array) => Promise<void> {
  return async (blob) => {
    const host = keyHost(cfg);
    const info = parseHostKeyBlob(blob);
    const fingerprint = hostKeyFingerprint(blob);
    ui.log(`Host key fingerprint is:\n${fingerprint}`);
    if (cfg.hostKeys.length) {
      if (hostKeyMatchesManual(cfg.hostKeys, blob)) return;
      throw new TransportError(
        `Host key ${fingerprint} for ${host} port ${cfg.port} does not match any -hostkey given`,
        "hostkey",
      );
    }
    const status = checkHostKey(host, cfg.port, blob);
    if (status === "match") return;
    if (status === "mismatch") {
      throw new TransportError(
        `WARNING - POTENTIAL SECURITY BREACH! The host key for ${host} (port ${cfg.port}) does ` +
          `not match the one in the cache (server's key: ${fingerprint}); connection abandoned`,
        "hostkey",
      );
    }
    if (cfg.batch) {
      throw new TransportError(
        `The host key is not cached for ${host} (port ${cfg.port}): ${fingerprint}; ` +
          "cannot confirm a host key in batch mode",
        "hostkey",
      );
    }
    const answer = await ui.confirmHostKey({
      host,
      port: cfg.port,
      keyType: info.algorithm,
      fingerprint,
      changed: false,
    });
    if (answer === "no") throw new TransportError("Connection abandoned", "hostkey");
    if (answer === "store") storeHostKey(host, cfg.port, blob);
  };
}

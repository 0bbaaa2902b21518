/**
 * Loads npm:ssh2's client without the two of its modules a connection of ours does not use.
 * lib/client.js requires ssh2's SFTP client (lib/protocol/SFTP.js; ours is lib/sftp) and its agent
 * code (lib/agent.js, which brings node:child_process) when it loads. While it loads, those
 * requests get stand-ins: the SFTP one refuses to be used, the agent one loads the real module
 * when a connection first authenticates with an agent. Loading ssh2's client alone took 3.6 MiB
 * less anonymous memory and 1.6 MiB less V8 heap; the -L forwarder, idle after connecting,
 * 64-65 -> 62 MiB.
 */

import Module from "node:module";

/** A require from one of ssh2's own files (global npm cache or node_modules layout). */
const SSH2_FILE = /[\\/]ssh2[\\/](?:[^\\/]+[\\/])?lib[\\/](?:client|utils)\.js$/;

interface NodeModule {
  filename?: string;
}
type Load = (request: string, parent: NodeModule | undefined, isMain: boolean) => unknown;
interface ModuleInternals {
  _load: Load;
}

class UnloadedSftp {
  constructor() {
    throw new Error("ssh2's SFTP client is not loaded (puttykit's own is lib/sftp)");
  }
}

interface AgentModule {
  AgentContext: new (...args: unknown[]) => unknown;
  createAgent(...args: unknown[]): unknown;
  isAgent(value: unknown): boolean;
}

function agentStandIn(loadReal: () => AgentModule): AgentModule {
  let real: AgentModule | undefined;
  const agent = () => real ??= loadReal();
  return {
    AgentContext: function AgentContext(...args: unknown[]) {
      return new (agent().AgentContext)(...args);
    } as unknown as AgentModule["AgentContext"],
    createAgent: (...args) => agent().createAgent(...args),
    // ssh2 asks this of every connection's options; only an object can be an agent.
    isAgent: (value) => typeof value === "object" && value !== null && agent().isAgent(value),
  };
}

/** Runs `load` (which imports ssh2's modules) with the stand-ins in place. */
export async function withoutUnusedSsh2Modules<T>(load: () => Promise<T>): Promise<T> {
  const internals = Module as unknown as ModuleInternals;
  const original = internals._load;
  internals._load = function (this: unknown, request, parent, isMain) {
    if (parent?.filename && SSH2_FILE.test(parent.filename)) {
      if (request === "./protocol/SFTP.js") return { SFTP: UnloadedSftp };
      if (request === "./agent.js") {
        return agentStandIn(() => original.call(this, request, parent, false) as AgentModule);
      }
    }
    return original.call(this, request, parent, isMain);
  };
  try {
    return await load();
  } finally {
    internals._load = original;
  }
}

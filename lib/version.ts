/** puttykit's version, as reported by -V and in protocol version strings. */
export const VERSION = "0.1.0";

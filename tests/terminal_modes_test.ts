/** Terminal modes for the pty request, read from `stty -a` (GNU, busybox, BSD layouts). */

import assert from "node:assert/strict";
import {
  decodeTerminalModes,
  encodeTerminalModes,
  parseSttyAll,
  puttyDefaultSettings,
  sttyCharValue,
} from "../lib/terminal/modes.ts";

const GNU = `speed 38400 baud; rows 30; columns 100; line = 0;
intr = ^C; quit = ^\\; erase = ^H; kill = ^U; eof = ^D; eol = <undef>; eol2 = <undef>; swtch = <undef>; start = ^Q;
stop = ^S; susp = ^Z; rprnt = ^R; werase = ^W; lnext = ^V; discard = ^O; min = 1; time = 0;
-parenb -parodd -cmspar cs8 -hupcl -cstopb cread -clocal -crtscts
-ignbrk -brkint -ignpar -parmrk -inpck -istrip -inlcr -igncr icrnl ixon -ixoff -iuclc -ixany -imaxbel iutf8
opost -olcuc -ocrnl onlcr -onocr -onlret -ofill -ofdel nl0 cr0 tab0 bs0 vt0 ff0
isig icanon iexten echo echoe echok -echonl -noflsh -xcase -tostop -echoprt echoctl echoke -flusho -extproc
`;

const BSD = `speed 9600 baud; 24 rows; 80 columns;
lflags: icanon isig iexten echo echoe -echok echoke -echonl echoctl
\t-echoprt -altwerase -noflsh -tostop -flusho pendin -nokerninfo
\t-extproc
iflags: -istrip icrnl -inlcr -igncr ixon -ixoff ixany imaxbel -iutf8
\t-ignbrk brkint -inpck -ignpar -parmrk
oflags: opost onlcr -oxtabs -onocr -onlret
cflags: cread cs8 -parenb -parodd hupcl -clocal -cstopb -crtscts -dsrflow
cchars: discard = ^O; dsusp = ^Y; eof = ^D; eol = <undef>;
\teol2 = <undef>; erase = ^?; intr = ^C; kill = ^U; lnext = ^V;
\tmin = 1; quit = ^\\; reprint = ^R; start = ^Q; status = ^T;
\tstop = ^S; susp = ^Z; time = 0; werase = ^W;
`;

// RFC 4254 opcodes used below.
const VINTR = 1, VQUIT = 2, VERASE = 3, VEOL = 6, VDSUSP = 11, VREPRINT = 12, VSTATUS = 17;
const VDISCARD = 18, IXANY = 39, IUTF8 = 42, ICANON = 51, ECHO = 53, ECHOK = 55, ONLCR = 72;

Deno.test("stty character notation", () => {
  assert.equal(sttyCharValue("^C"), 3);
  assert.equal(sttyCharValue("^?"), 127);
  assert.equal(sttyCharValue("^\\"), 28);
  assert.equal(sttyCharValue("^@"), 0);
  assert.equal(sttyCharValue("<undef>"), 255);
  assert.equal(sttyCharValue("undef"), 255);
  assert.equal(sttyCharValue("x"), 120);
  assert.equal(sttyCharValue("M-a"), 0xe1);
  assert.equal(sttyCharValue("0x7f"), undefined);
});

Deno.test("GNU stty -a: characters, flags and speed", () => {
  const s = parseSttyAll(GNU);
  assert.equal(s.ispeed, 38400);
  assert.equal(s.ospeed, 38400);
  assert.equal(s.modes.get(VINTR), 3);
  assert.equal(s.modes.get(VQUIT), 28);
  assert.equal(s.modes.get(VERASE), 8);
  assert.equal(s.modes.get(VEOL), 255);
  assert.equal(s.modes.get(VREPRINT), 18);
  assert.equal(s.modes.get(VDISCARD), 15);
  assert.equal(s.modes.get(ICANON), 1);
  assert.equal(s.modes.get(ECHO), 1);
  assert.equal(s.modes.get(IUTF8), 1);
  assert.equal(s.modes.get(IXANY), 0);
  assert.equal(s.modes.get(ONLCR), 1);
  // Not propagated (as in plink): min/time, parity, iexten, icrnl.
  assert.equal(s.modes.get(90 /* CS7 */), undefined);
  assert.equal(s.modes.get(59 /* IEXTEN */), undefined);
  assert.equal(s.modes.get(36 /* ICRNL */), undefined);
  assert.equal(s.modes.size, 15 + 19); // no dsusp/status on Linux
});

Deno.test("BSD stty -a layout", () => {
  const s = parseSttyAll(BSD);
  assert.equal(s.ispeed, 9600);
  assert.equal(s.modes.get(VERASE), 127);
  assert.equal(s.modes.get(VDSUSP), 25);
  assert.equal(s.modes.get(VSTATUS), 20);
  assert.equal(s.modes.get(VREPRINT), 18);
  assert.equal(s.modes.get(ECHOK), 0);
  assert.equal(s.modes.get(IXANY), 1);
  assert.equal(s.modes.get(IUTF8), 0);
  assert.equal(s.modes.get(ICANON), 1);
});

Deno.test("encoded modes: opcode + uint32 pairs, speeds, TTY_OP_END", () => {
  const bytes = encodeTerminalModes({ modes: new Map([[VERASE, 8], [ECHO, 1]]), ispeed: 9600 });
  assert.deepEqual([...bytes], [
    ...[VERASE, 0, 0, 0, 8],
    ...[ECHO, 0, 0, 0, 1],
    ...[128, 0, 0, 0x25, 0x80], // ISPEED 9600
    ...[129, 0, 0, 0x96, 0x00], // OSPEED 38400 (PuTTY's default)
    0,
  ]);
  const round = decodeTerminalModes(encodeTerminalModes(parseSttyAll(GNU)));
  assert.equal(round.get(VERASE), 8);
  assert.equal(round.get(128), 38400);
  assert.equal(round.size, 34 + 2);
});

Deno.test("without a readable terminal: PuTTY's own ERASE and IUTF8 from the locale", () => {
  const utf8 = puttyDefaultSettings((n) => (n === "LANG" ? "en_GB.UTF-8" : undefined));
  assert.equal(utf8.modes.get(VERASE), 127);
  assert.equal(utf8.modes.get(IUTF8), 1);
  const c = puttyDefaultSettings((n) => (n === "LC_ALL" ? "C" : "en_GB.UTF-8"));
  assert.equal(c.modes.get(IUTF8), 0);
});

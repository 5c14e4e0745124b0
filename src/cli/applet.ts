/**
 * The contract between the dispatcher and each applet.
 *
 * An applet never exits the process and never prints outside `ctx.stdout`/`ctx.stderr`, so it
 * can run inside a test process (BusyBox's NOFORK rules).
 *
 * @module
 */
import type { Syscalls } from '../kernel/syscalls.js';
import type { AppletSpec } from './options.js';

/** Where an applet writes; `process.stdout` or a collecting buffer in tests. */
export interface Output {
  write(text: string): unknown;
  /**
   * false when the descriptor behind it was closed when the process started (kmod's modprobe then
   * logs to syslog); absent: open
   */
  isOpen?(): boolean;
}

/** Everything an applet may touch. */
export interface AppletContext {
  /** the name as invoked (`insmod`, or `kmod-ts insmod` → `insmod`) — the prefix of every message */
  readonly prog: string;
  /** the arguments after the applet name */
  readonly args: readonly string[];
  readonly stdout: Output;
  readonly stderr: Output;
  /** the system root: `/` in production, a fixture tree in tests; /proc, /sys, /lib/modules are read under it */
  readonly root: string;
  /** the syscall layer; a recording fake in tests */
  readonly sys: Syscalls;
  /**
   * the working directory relative paths are taken from, as kmod's `get_current_dir_name()`
   * gives it: `$PWD` when it names the same directory as `.`, else `getcwd()` (default
   * `process.cwd()`)
   */
  readonly cwd?: string;
  /** environment (KMOD_TS_PATH, ...) */
  readonly env: Readonly<Record<string, string | undefined>>;
}

/**
 * One command of the multi-call binary: its table (name, summary, usage, options; see
 * options.ts) and `run`.
 */
export interface Applet extends AppletSpec {
  /** run it; resolves to the exit status */
  run(ctx: AppletContext): Promise<number>;
}

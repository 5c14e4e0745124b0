/**
 * What the module applets share: kmod's message format `<prog>: ERROR: <message>`, on stderr or
 * under `-s` in syslog.
 */
import type { AppletContext } from '../src/cli/applet.js';
import type { XzOptions } from '../src/file/compression/index.js';
import { LOAD_PATHS, type LoadOptions, type LoadPath } from '../src/ops/load-module.js';

/** Messages an applet prints: to stderr, or to syslog under `-s`. */
export interface Reporter {
  error(message: string): void;
  info(message: string): void;
}

/**
 * kmod's message format on stderr, or syslog under `-s`.
 * @param ctx the applet's context
 * @param flags `-s` and the `-v` count
 * @returns the reporter; `info` prints only under `-v`
 */
export function reporter(ctx: AppletContext, flags: { syslog: boolean; verbose: number }): Reporter {
  const say = (level: 'ERROR' | 'INFO', priority: number, message: string) => {
    if (flags.syslog) ctx.sys.syslog(ctx.prog, priority, `${level}: ${message}`);
    else ctx.stderr.write(`${ctx.prog}: ${level}: ${message}\n`);
  };
  return {
    error: (m) => say('ERROR', 3, m),
    info: (m) => {
      if (flags.verbose > 0) say('INFO', 6, m);
    },
  };
}

/**
 * `KMOD_TS_MAX_SIZE` (the cap on decompressed size) as a byte count: unset or empty is the
 * default; digits only, any length (a cap past what a buffer can hold is no cap beyond that
 * limit, not an internal error); anything else is the user's error, worded by the applet.
 */
export function maxSizeFromEnv(ctx: AppletContext): { maxSize: number | undefined } | { error: string } {
  const text = ctx.env.KMOD_TS_MAX_SIZE;
  if (text === undefined || text === '') return { maxSize: undefined };
  if (!/^\d+$/.test(text)) return { error: `KMOD_TS_MAX_SIZE must be a number of bytes, not '${text}'` };
  return { maxSize: Math.min(Number(text), Number.MAX_SAFE_INTEGER) };
}

/**
 * `--json` output (a kmod-ts extension): the library's objects, indented, with arrays of plain
 * values on one line (`["alias", "fs-vfat"]`) and absent values as `null`, so every object of a
 * kind has the same keys.
 */
export function toJson(value: unknown): string {
  const text = JSON.stringify(value, (_k, v: unknown) => (v === undefined ? null : v), 2);
  const scalar = String.raw`(?:"(?:[^"\\]|\\.)*"|-?[\d.eE+-]+|true|false|null)`;
  return `${text.replace(new RegExp(String.raw`\[\s+(${scalar}(?:,\s+${scalar})*)\s+\]`, 'g'), (_m, items: string) => `[${items.split(/,\n\s+/).join(', ')}]`)}\n`;
}

/**
 * `KMOD_TS_XZ=liblzma|stream` (xz's decoder) and `KMOD_TS_LIBLZMA=lzma-native` (skip the
 * system's liblzma.so.5) for userspace decompression; anything else is the default.
 * @param env the applet's environment
 * @returns the choices made, if any
 */
export function xzFromEnv(env: AppletContext['env']): XzOptions | undefined {
  const decoder = env.KMOD_TS_XZ === 'liblzma' || env.KMOD_TS_XZ === 'stream' ? env.KMOD_TS_XZ : undefined;
  const library = env.KMOD_TS_LIBLZMA === 'lzma-native' ? 'lzma-native' : undefined;
  return decoder || library ? { decoder, library } : undefined;
}

/**
 * The loading choices the environment makes for insmod and for modprobe's insertions:
 * `KMOD_TS_PATH=finit|mmap|read`, `KMOD_TS_MAX_SIZE=BYTES`, `KMOD_TS_XZ`, `KMOD_TS_LIBLZMA`.
 * @param ctx the applet's context (its environment)
 * @returns the valid choices, and the first invalid one in insmod's words
 * @example loadOptionsFromEnv(ctx).options.path // 'read' under KMOD_TS_PATH=read
 */
export function loadOptionsFromEnv(ctx: AppletContext): { options: Pick<LoadOptions, 'path' | 'maxSize' | 'xz'>; error?: string } {
  const options: { path?: LoadPath; maxSize?: number; xz?: XzOptions } = { xz: xzFromEnv(ctx.env) };
  let error: string | undefined;
  const forced = ctx.env.KMOD_TS_PATH;
  if (forced !== undefined && forced !== '') {
    if (LOAD_PATHS.includes(forced as LoadPath)) options.path = forced as LoadPath;
    else error = `KMOD_TS_PATH must be one of ${LOAD_PATHS.join(', ')}, not '${forced}'`;
  }
  const cap = maxSizeFromEnv(ctx);
  if ('error' in cap) error ??= cap.error;
  else options.maxSize = cap.maxSize;
  return { options, error };
}

/**
 * What the module applets share: kmod's message format `<prog>: ERROR: <message>`, on stderr or
 * under `-s` in syslog.
 */
import type { AppletContext } from '../src/cli/applet.js';

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

/**
 * What every applet shares: argument parsing, `-h`/`-V`, and kmod's message format
 * `<prog>: ERROR: <message>`.
 *
 * Arguments go through yargs-parser, the parser inside yargs, configured for GNU-style
 * permutation and `--`. The yargs builder on top of it costs about 70 ms of start-up (its
 * locale, layout and validation layers, which we do not use: applets print their own usage, in
 * kmod's layout) against about 5 ms for the parser, and a module loader runs at boot, often.
 */
import parse from 'yargs-parser';
import type { AppletContext } from '../src/cli/applet.js';
import { FEATURES, VERSION } from '../src/cli/version.js';

/** Options every applet takes. */
export interface CommonFlags {
  help?: boolean;
  version?: boolean;
  verbose?: number;
  syslog?: boolean;
  _: (string | number)[];
  '--'?: (string | number)[];
}

/** One option of an applet: long name, short alias, kind. */
export interface OptionSpec {
  readonly long: string;
  readonly short?: string;
  readonly type: 'boolean' | 'count' | 'string';
}

/** Options every applet has. */
const COMMON: readonly OptionSpec[] = [
  { long: 'help', short: 'h', type: 'boolean' },
  { long: 'version', short: 'V', type: 'boolean' },
];

/** -s/-v, which insmod, rmmod and lsmod share. */
export const LOG_OPTIONS: readonly OptionSpec[] = [
  { long: 'syslog', short: 's', type: 'boolean' },
  { long: 'verbose', short: 'v', type: 'count' },
];

/** Messages an applet prints: to stderr, or to syslog under `-s`. */
export interface Reporter {
  error(message: string): void;
  info(message: string): void;
}

/**
 * Parse an applet's arguments. Returns the flags, or an exit status when parsing already
 * answered (help, version, an unknown option).
 */
export function parseArgs<T extends CommonFlags>(ctx: AppletContext, usage: string, options: readonly OptionSpec[]): { flags: T } | { exit: number } {
  const all = [...COMMON, ...options];
  const byType = (type: OptionSpec['type']) => all.filter((o) => o.type === type).map((o) => o.long);
  const alias: Record<string, string> = {};
  for (const o of all) if (o.short) alias[o.long] = o.short;
  const flags = parse([...ctx.args], {
    alias,
    boolean: byType('boolean'),
    count: byType('count'),
    string: byType('string'),
    configuration: {
      'camel-case-expansion': false,
      'dot-notation': false,
      'parse-numbers': false,
      'parse-positional-numbers': false,
      'boolean-negation': false,
      'duplicate-arguments-array': false,
      'populate--': true,
      'halt-at-non-option': false,
      'short-option-groups': true,
      'strip-aliased': true,
    },
  }) as unknown as T & Record<string, unknown>;
  const known = new Set(['_', '--', ...all.map((o) => o.long)]);
  const unknown = Object.keys(flags).find((k) => !known.has(k));
  if (unknown !== undefined) {
    ctx.stderr.write(`${ctx.prog}: ERROR: unrecognized option '${unknown.length === 1 ? '-' : '--'}${unknown}'\n`);
    return { exit: 1 };
  }
  if (flags.help) {
    ctx.stdout.write(usage.replaceAll('PROG', ctx.prog));
    return { exit: 0 };
  }
  if (flags.version) {
    ctx.stdout.write(`kmod-ts version ${VERSION}\n${FEATURES}\n`);
    return { exit: 0 };
  }
  return { flags };
}

/** The positional arguments as strings, then everything after `--`. */
export function positionals(flags: CommonFlags): string[] {
  return [...flags._, ...(flags['--'] ?? [])].map(String);
}

/** kmod's message format on stderr, or syslog under `-s`. */
export function reporter(ctx: AppletContext, flags: CommonFlags): Reporter {
  const verbose = flags.verbose ?? 0;
  const say = (level: 'ERROR' | 'INFO', priority: number, message: string) => {
    if (flags.syslog) ctx.sys.syslog(ctx.prog, priority, `${level}: ${message}`);
    else ctx.stderr.write(`${ctx.prog}: ${level}: ${message}\n`);
  };
  return {
    error: (m) => say('ERROR', 3, m),
    info: (m) => {
      if (verbose > 0) say('INFO', 6, m);
    },
  };
}

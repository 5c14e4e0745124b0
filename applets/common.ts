/**
 * What every applet shares: argument parsing with yargs in its non-exiting mode, `-h`/`-V`, and
 * kmod's message format `<prog>: ERROR: <message>`.
 */
import yargs, { type Argv } from 'yargs';
import type { AppletContext } from '../src/applet.js';
import { FEATURES, VERSION } from '../src/version.js';

/** Options every applet takes. */
export interface CommonFlags {
  help?: boolean;
  version?: boolean;
  verbose?: number;
  syslog?: boolean;
  _: (string | number)[];
  '--'?: (string | number)[];
}

/** Messages an applet prints: to stderr, or to syslog under `-s`. */
export interface Reporter {
  error(message: string): void;
  warn(message: string): void;
  info(message: string): void;
}

/**
 * Parse an applet's arguments. Returns the flags, or an exit status when parsing already
 * answered (help, version, a usage error).
 */
export async function parseArgs<T extends CommonFlags>(
  ctx: AppletContext,
  usage: string,
  spec: (y: Argv) => Argv,
): Promise<{ flags: T } | { exit: number }> {
  const y = spec(
    yargs()
      .exitProcess(false)
      .help(false)
      .version(false)
      .showHelpOnFail(false)
      .strictOptions()
      .parserConfiguration({
        'parse-positional-numbers': false,
        'parse-numbers': false,
        'camel-case-expansion': false,
        'dot-notation': false,
        'boolean-negation': false,
        'duplicate-arguments-array': false,
        'populate--': true,
        'halt-at-non-option': false,
      })
      .option('help', { alias: 'h', type: 'boolean' })
      .option('version', { alias: 'V', type: 'boolean' }),
  );
  let failure: string | undefined;
  y.fail((msg, err) => {
    failure = msg ?? err?.message ?? 'invalid arguments';
  });
  let flags: T;
  try {
    flags = (await y.parseAsync([...ctx.args])) as unknown as T;
  } catch (err) {
    failure ??= (err as Error).message;
    flags = undefined as unknown as T;
  }
  if (failure !== undefined) {
    ctx.stderr.write(`${ctx.prog}: ERROR: ${failure.replace(/^Unknown arguments?: /, 'unrecognized option: ')}\n`);
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
  const say = (level: 'ERROR' | 'WARNING' | 'INFO', priority: number, message: string) => {
    if (flags.syslog) ctx.sys.syslog(ctx.prog, priority, `${level}: ${message}`);
    else ctx.stderr.write(`${ctx.prog}: ${level}: ${message}\n`);
  };
  return {
    error: (m) => say('ERROR', 3, m),
    warn: (m) => say('WARNING', 4, m),
    info: (m) => {
      if (verbose > 0) say('INFO', 6, m);
    },
  };
}

/** The options -s/-v that insmod, rmmod and lsmod share. */
export function logOptions(y: Argv): Argv {
  return y.option('syslog', { alias: 's', type: 'boolean' }).option('verbose', { alias: 'v', type: 'count' });
}

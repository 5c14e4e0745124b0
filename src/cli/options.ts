/**
 * The option system: every applet declares one table ({@link AppletSpec}); parsing, the usage
 * text, `-h` and `-V` all come from it, and so do the help, completion and man pages of the
 * `kmod-ts` command. Importing this file (or an applet's table) has no side effects.
 *
 * Parsing is GNU `getopt_long` as kmod's tools get it from glibc, done once here:
 * - options and operands may be mixed (permutation); `--` ends the options; `-` is an operand;
 * - short options cluster, and one that takes an argument takes the rest of its word or the
 *   next word: `-0F field`, `-0Ffield`, `-F field`;
 * - `--long=value` or `--long value`; a unique prefix of a long name is that name (`--fiel`);
 * - the first `-h` or `-V` answers at once, as kmod's `case 'h': help(); return` does, so what
 *   follows is never looked at;
 * - errors are glibc's words (`invalid option -- 'x'`, `option requires an argument -- 'F'`,
 *   `unrecognized option '--foo'`, `option '--f' is ambiguous; possibilities: ...`,
 *   `option '--author' doesn't allow an argument`), printed as `PROG: TEXT`, exit status 1.
 *
 * The words getopt finds are rewritten to one spelling per option (`--key=value`, `--key`) and
 * handed to yargs-parser, configured from the table, which builds the result: counts, arrays,
 * last-one-wins for a value given twice.
 *
 * @module
 */
import parse from 'yargs-parser';
import type { AppletContext } from './applet.js';
import { versionText } from './version.js';

/**
 * One option of an applet.
 * @example { key: 'field', short: 'F', long: 'field', arg: 'FIELD', help: 'Print only provided FIELD' }
 */
export interface OptionSpec {
  /** property in the parsed result (camelCase); `help` and `version` answer `-h` and `-V` */
  readonly key: string;
  /** one character */
  readonly short?: string;
  /** without dashes */
  readonly long?: string;
  /** placeholder if it takes an argument (`FIELD`); absent = a flag */
  readonly arg?: string;
  /** `count`: `-vv` is 2; `array`: `-C a -C b` collects `['a', 'b']` */
  readonly repeat?: 'count' | 'array';
  /**
   * a flag that stores this string under `key` instead of `true`: kmod's `-a` is `-F author`,
   * so `{ key: 'field', short: 'a', long: 'author', value: 'author' }`; the last one given wins
   */
  readonly value?: string;
  /**
   * one sentence, for usage, completion and man pages; a `\n` marks where the usage text
   * breaks the line (kmod's own breaks), elsewhere it reads as a space
   */
  readonly help: string;
  /**
   * a kmod-ts extension (`--json`): the usage text lists it after kmod's own options, under
   * `kmod-ts extensions:`, so that the lines kmod prints stay kmod's, byte for byte
   */
  readonly extension?: boolean;
}

/** An environment variable an applet reads, for its usage text and man page. */
export interface EnvironmentSpec {
  /** the variable and its values, `KMOD_TS_PATH=finit|mmap|read` */
  readonly name: string;
  readonly help: string;
}

/**
 * An applet's command line: what the dispatcher, `--list`, `-h`, completion and man pages read.
 * @example
 * export const spec = {
 *   name: 'lsmod', summary: 'show the loaded modules', usage: '[options]',
 *   options: [SYSLOG, VERBOSE, VERSION, HELP],
 * } as const satisfies AppletSpec;
 */
export interface AppletSpec {
  /** the applet's name: the link name and `kmod-ts NAME` */
  readonly name: string;
  /** one line for `kmod-ts --help` and the man page's NAME section */
  readonly summary: string;
  /** the operands after the name in the usage line: `[options] filename [args]` */
  readonly usage: string;
  /** the options, in the order the usage text lists them */
  readonly options: readonly OptionSpec[];
  /** environment variables it reads */
  readonly environment?: readonly EnvironmentSpec[];
}

/** `-h, --help` (kmod's words for insmod, rmmod and lsmod; modinfo capitalises). */
export const HELP = { key: 'help', short: 'h', long: 'help', help: 'show this help' } as const satisfies OptionSpec;
/** `-V, --version`. */
export const VERSION = { key: 'version', short: 'V', long: 'version', help: 'show version' } as const satisfies OptionSpec;
/** `-s, --syslog`: messages to syslog instead of stderr. */
export const SYSLOG = { key: 'syslog', short: 's', long: 'syslog', help: 'print to syslog, not stderr' } as const satisfies OptionSpec;
/** `-v, --verbose`, counted. */
export const VERBOSE = { key: 'verbose', short: 'v', long: 'verbose', repeat: 'count', help: 'enables more messages' } as const satisfies OptionSpec;

type ValueOf<O extends OptionSpec> = O['repeat'] extends 'count'
  ? number
  : O['repeat'] extends 'array'
    ? string[]
    : O extends { readonly arg: string }
      ? string | undefined
      : O extends { readonly value: string }
        ? string | undefined
        : boolean;

/**
 * The parsed options of a table: flags are booleans, counts numbers, arrays `string[]`, options
 * with an argument `string | undefined`; options sharing a key share a property.
 */
export type ParsedOptions<T extends readonly OptionSpec[]> = { -readonly [O in T[number] as O['key']]: ValueOf<O> };

/** The outcome of {@link parseOptions}. */
export type ParseResult<T extends readonly OptionSpec[]> =
  | { readonly kind: 'options'; readonly options: ParsedOptions<T>; readonly operands: string[] }
  /** `-h` or `-V` came first */
  | { readonly kind: 'help' | 'version' }
  /** getopt refused the command line; `message` is glibc's text, without the program name */
  | { readonly kind: 'error'; readonly message: string };

const takesArg = (o: OptionSpec): boolean => o.arg !== undefined;

/**
 * Parse a command line against a table, with GNU getopt's rules (see the module comment).
 * @param options the applet's table
 * @param args the arguments after the applet name
 * @returns the options and operands, `help`/`version` when one of those came first, or glibc's error text
 * @example parseOptions(spec.options, ['-0F', 'license', 'vfat']) // { kind: 'options', options: { null: true, field: 'license', ... }, operands: ['vfat'] }
 */
export function parseOptions<const T extends readonly OptionSpec[]>(options: T, args: readonly string[]): ParseResult<T> {
  const tokens: string[] = [];
  const operands: string[] = [];
  // Returns 'help' or 'version' when that option answers at once.
  const take = (o: OptionSpec, value?: string): 'help' | 'version' | undefined => {
    if (o.key === 'help' || o.key === 'version') return o.key;
    if (value !== undefined) tokens.push(`--${o.key}=${value}`);
    else if (o.value !== undefined) tokens.push(`--${o.key}=${o.value}`);
    else tokens.push(`--${o.key}`);
    return undefined;
  };
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === '--') {
      operands.push(...args.slice(i + 1));
      break;
    }
    if (a.startsWith('--')) {
      const eq = a.indexOf('=');
      const name = a.slice(2, eq === -1 ? undefined : eq);
      const exact = options.find((o) => o.long === name);
      const found = exact ? [exact] : options.filter((o) => o.long?.startsWith(name));
      if (found.length === 0) return { kind: 'error', message: `unrecognized option '${a}'` };
      // glibc: prefixes of several names for the same option (modprobe's --remove-dependencies and
      // --remove-holders) are that option; the list names the first and those that differ from it
      const same = (x: OptionSpec, y: OptionSpec) => x.key === y.key && takesArg(x) === takesArg(y) && x.value === y.value;
      const differ = found.filter((o) => !same(o, found[0]));
      if (differ.length > 0) return { kind: 'error', message: `option '${a}' is ambiguous; possibilities:${[found[0], ...differ].map((o) => ` '--${o.long}'`).join('')}` };
      const o = found[0];
      let value: string | undefined;
      if (!takesArg(o)) {
        if (eq !== -1) return { kind: 'error', message: `option '--${o.long}' doesn't allow an argument` };
      } else if (eq !== -1) value = a.slice(eq + 1);
      else if (i + 1 < args.length) value = args[++i];
      else return { kind: 'error', message: `option '--${o.long}' requires an argument` };
      const answer = take(o, value);
      if (answer) return { kind: answer };
      continue;
    }
    if (a.startsWith('-') && a.length > 1) {
      for (let j = 1; j < a.length; j++) {
        const o = options.find((x) => x.short === a[j]);
        if (!o) return { kind: 'error', message: `invalid option -- '${a[j]}'` };
        let value: string | undefined;
        if (takesArg(o)) {
          if (j + 1 < a.length) value = a.slice(j + 1);
          else if (i + 1 < args.length) value = args[++i];
          else return { kind: 'error', message: `option requires an argument -- '${a[j]}'` };
        }
        const answer = take(o, value);
        if (answer) return { kind: answer };
        if (value !== undefined) break;
      }
      continue;
    }
    operands.push(a);
  }
  return { kind: 'options', options: build(options, tokens), operands };
}

/** yargs-parser over the one-spelling tokens, configured from the table. */
function build<T extends readonly OptionSpec[]>(options: T, tokens: string[]): ParsedOptions<T> {
  const keys = (pick: (o: OptionSpec) => boolean) => [...new Set(options.filter(pick).map((o) => o.key))];
  const isCount = (o: OptionSpec) => o.repeat === 'count';
  const isArray = (o: OptionSpec) => o.repeat === 'array';
  const isString = (o: OptionSpec) => !isCount(o) && (takesArg(o) || o.value !== undefined);
  const argv = parse(tokens, {
    boolean: keys((o) => !isCount(o) && !isString(o)),
    count: keys(isCount),
    string: keys(isString),
    array: keys(isArray),
    configuration: {
      'camel-case-expansion': false,
      'dot-notation': false,
      'parse-numbers': false,
      'parse-positional-numbers': false,
      'boolean-negation': false,
      'duplicate-arguments-array': true,
      'flatten-duplicate-arrays': true,
      'short-option-groups': false,
    },
  }) as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  for (const o of options) {
    if (o.key in out) continue;
    const v = argv[o.key];
    if (isCount(o)) out[o.key] = typeof v === 'number' ? v : 0;
    else if (isArray(o)) out[o.key] = v === undefined ? [] : ([] as unknown[]).concat(v).map(String);
    // a value given twice: the last one wins, as each getopt case overwrites the previous
    else if (isString(o)) out[o.key] = Array.isArray(v) ? String(v[v.length - 1]) : (v as string | undefined);
    else out[o.key] = v === true || (Array.isArray(v) && v.includes(true));
  }
  return out as ParsedOptions<T>;
}

/** kmod's help column: at least 18 wide, else 3 past the longest option. */
function column(rows: readonly string[]): number {
  return Math.max(18, ...rows.map((r) => r.length + 3));
}

function optionLabel(o: OptionSpec): string {
  const short = o.short === undefined ? '' : `-${o.short}`;
  if (o.long === undefined) return o.arg === undefined ? short : `${short} ${o.arg}`;
  return `${short ? `${short}, ` : '    '}--${o.long}${o.arg === undefined ? '' : `=${o.arg}`}`;
}

function block(rows: ReadonlyArray<readonly [label: string, help: string]>, minWidth = 0): string {
  const width = Math.max(minWidth, column(rows.map(([l]) => l)));
  return rows
    .map(([label, help]) =>
      help
        .split('\n')
        .map((line, i) => `\t${(i === 0 ? label : '').padEnd(width)}${line}\n`)
        .join(''),
    )
    .join('');
}

/**
 * The usage text `-h` prints, in kmod's layout.
 * @param spec the applet's table
 * @param prog the name it runs as
 * @returns the text, ending in a newline
 * @example usageText(lsmodSpec, 'lsmod') // 'Usage:\n\tlsmod [options]\nOptions:\n\t-s, --syslog      print to syslog, not stderr\n...'
 */
export function usageText(spec: AppletSpec, prog: string): string {
  const rows = (ext: boolean) => spec.options.filter((o) => !o.extension === !ext).map((o) => [optionLabel(o), o.help] as const);
  let text = `Usage:\n\t${prog} ${spec.usage}\nOptions:\n${block(rows(false))}`;
  // kmod's own rows set the column (their layout is kmod's); the extensions line up with them
  if (spec.options.some((o) => o.extension)) text += `kmod-ts extensions:\n${block(rows(true), column(rows(false).map(([l]) => l)))}`;
  if (spec.environment?.length) text += `Environment:\n${block(spec.environment.map((e) => [e.name, e.help]))}`;
  return text;
}

/**
 * Parse an applet's command line and answer what getopt answers itself: `-h` (usage on stdout),
 * `-V` (the version), a bad option (glibc's words on stderr, exit 1).
 * @param ctx the applet's context (its `args`, `prog`, `stdout`, `stderr`)
 * @param spec the applet's table
 * @returns the options and operands, or the exit status when parsing already answered
 * @example
 * const cl = parseCommandLine(ctx, spec);
 * if ('exit' in cl) return cl.exit;
 * cl.options.verbose // 0, 1, 2 ...
 */
export function parseCommandLine<const S extends AppletSpec>(
  ctx: Pick<AppletContext, 'args' | 'prog' | 'stdout' | 'stderr'>,
  spec: S,
): { options: ParsedOptions<S['options']>; operands: string[] } | { exit: number } {
  const r = parseOptions(spec.options, ctx.args);
  switch (r.kind) {
    case 'help':
      ctx.stdout.write(usageText(spec, ctx.prog));
      return { exit: 0 };
    case 'version':
      ctx.stdout.write(versionText());
      return { exit: 0 };
    case 'error':
      ctx.stderr.write(`${ctx.prog}: ${r.message}\n`);
      return { exit: 1 };
    default:
      return { options: r.options, operands: r.operands };
  }
}

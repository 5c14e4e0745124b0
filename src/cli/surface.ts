/**
 * What a person at a terminal sees of `kmod-ts` itself, through yargs: `kmod-ts --help` (the
 * applets and the multi-call rules), unknown commands and options with suggestions, and bash/zsh
 * completion (`kmod-ts completion` prints the script; the script asks
 * `kmod-ts --get-yargs-completions WORDS...`).
 *
 * The dispatcher imports this file dynamically, only for those paths: no applet run loads yargs
 * (about 40 ms of start-up). Everything here is built from the applets' option tables and
 * {@link MULTICALL_OPTIONS}; there is no second list of options.
 *
 * @module
 */
import { basename } from 'node:path';
import yargs, { type Argv, type Options } from 'yargs';
import type { Applet, Output } from './applet.js';
import { MULTICALL_OPTIONS } from './multicall.js';
import type { OptionSpec } from './options.js';
import { VERSION } from './version.js';
import { completeOperand, type OperandKind } from '../ops/complete.js';

/** The program name in help and in the completion script. */
const NAME = 'kmod-ts';

/** What the surface needs of the dispatcher. */
export interface SurfaceContext {
  /** the arguments after `kmod-ts` */
  readonly args: readonly string[];
  /** the applets, sorted by name */
  readonly applets: readonly Applet[];
  readonly stdout: Output;
  readonly stderr: Output;
  readonly env: Readonly<Record<string, string | undefined>>;
  /** system root: /proc/modules and /lib/modules are read under it when completing */
  readonly root: string;
}

/** What each applet's operands are, for completion. */
const OPERANDS: Readonly<Record<string, OperandKind>> = {
  insmod: 'module-file',
  rmmod: 'loaded-module',
  modprobe: 'module',
  modinfo: 'module',
  depmod: 'kernel-version',
};

const EPILOGUE = `Multi-call rules:
  Started through a link named after an applet (insmod, rmmod, lsmod, modinfo, ...), kmod-ts runs
  that applet with the link's arguments; \`kmod-ts --install DIR\` makes those links.
  \`kmod-ts APPLET --help\` shows the applet's options.

Completion: \`kmod-ts completion bash|zsh\` prints the script (see kmod-ts(8)).`;

/** yargs's declaration of one option of a table. */
function yargsOption(o: OptionSpec): Options {
  return {
    alias: o.long && o.short ? o.short : undefined,
    describe: o.help.replaceAll('\n', ' '),
    type: o.arg ? 'string' : o.repeat === 'count' ? 'count' : 'boolean',
    requiresArg: o.arg !== undefined,
    array: o.repeat === 'array' ? true : undefined,
    global: false,
  };
}

/** Declare a table's options on a yargs instance, under the name users type. */
function declare(y: Argv, options: readonly OptionSpec[], skip: readonly string[] = []): Argv {
  for (const o of options) {
    if (skip.includes(o.key)) continue;
    y = y.option((o.long ?? o.short)!, yargsOption(o));
  }
  return y;
}

/** The word the user is completing is the last one the script passes (yargs's protocol). */
function isZsh(env: SurfaceContext['env']): boolean {
  return Boolean(env.SHELL?.includes('zsh') || env.ZSH_NAME?.includes('zsh'));
}

/**
 * The yargs program for `kmod-ts`: a command per applet, the multi-call options of
 * {@link MULTICALL_OPTIONS}, help, suggestions and completion.
 */
function program(ctx: SurfaceContext, processArgs: string[], words: readonly string[], strict = true): Argv {
  // yargs's own --help and --version are off: both are rows of the table like any other (so
  // completion offers -h and -V too); surface() answers --help with yargs's help text, and the
  // dispatcher answers -V before yargs is loaded
  let y = yargs(processArgs)
    .scriptName(NAME)
    .usage(
      [
        `kmod-ts version ${VERSION} - Linux kernel module tools as one multi-call binary`,
        '',
        // (yargs trims the lines' leading spaces, so each form gets its own "Usage:")
        'Usage: $0 APPLET [ARGS...]',
        'Usage: APPLET [ARGS...]   (started through a link named APPLET)',
        'Usage: $0 --install DIR [--force] [--target PATH]',
        'Usage: $0 --list | --version | --help | completion [bash|zsh]',
      ].join('\n'),
    )
    .parserConfiguration({ 'boolean-negation': false, 'camel-case-expansion': false, 'dot-notation': false })
    .wrap(Math.min(100, Number(ctx.env.COLUMNS) || 100))
    .help(false)
    .version(false)
    .exitProcess(false);
  for (const applet of ctx.applets) y = y.command(applet.name, applet.summary);
  return declare(y, MULTICALL_OPTIONS)
    .completion('completion', 'print the completion script: completion [bash|zsh]', (current: string, _argv: unknown, fallback: Fallback, done: (c: string[]) => void) => {
      void complete(ctx, words, current, fallback, done);
    })
    .recommendCommands()
    .strict(strict)
    .showHelpOnFail(false, `Run '${NAME} --help' for the applets and options.`)
    .epilogue(EPILOGUE);
}

/** Short and long spellings of a table's options as they appear on a command line. */
function takesArgument(options: readonly OptionSpec[], word: string): OptionSpec | undefined {
  if (word.startsWith('--')) {
    const o = options.find((x) => x.long === word.slice(2));
    return o?.arg ? o : undefined;
  }
  if (word.startsWith('-') && word.length > 1) {
    // a cluster like -vd: the option that takes an argument must be its last letter
    for (let i = 1; i < word.length; i++) {
      const o = options.find((x) => x.short === word[i]);
      if (o?.arg) return i === word.length - 1 ? o : undefined;
    }
  }
  return undefined;
}

/** The value given to an option in the words before the one being completed, if any. */
function valueOf(options: readonly OptionSpec[], words: readonly string[], test: (o: OptionSpec) => boolean): string | undefined {
  let value: string | undefined;
  for (let i = 0; i < words.length - 1; i++) {
    const w = words[i];
    if (w === '--') break;
    const eq = w.indexOf('=');
    if (w.startsWith('--') && eq > 0) {
      const o = options.find((x) => x.long === w.slice(2, eq));
      if (o && test(o)) value = w.slice(eq + 1);
      continue;
    }
    const o = takesArgument(options, w);
    if (o && test(o) && i + 1 < words.length - 1) value = words[i + 1];
    else if (!o && w.startsWith('-') && !w.startsWith('--') && w.length > 2) {
      // -Sversion: the value glued to its letter
      const j = [...w.slice(1)].findIndex((c) => options.find((x) => x.short === c)?.arg);
      const g = j === -1 ? undefined : options.find((x) => x.short === w[j + 1]);
      if (g && test(g)) value = w.slice(j + 2);
    }
  }
  return value;
}

/** Whether a flag of the table is among the words before the one being completed. */
function given(options: readonly OptionSpec[], words: readonly string[], key: string): boolean {
  const o = options.find((x) => x.key === key);
  if (!o) return false;
  for (const w of words.slice(0, -1)) {
    if (w === '--') return false;
    if (o.long && w === `--${o.long}`) return true;
    if (o.short && /^-[^-]/.test(w)) {
      for (const c of w.slice(1)) {
        if (c === o.short) return true;
        if (options.find((x) => x.short === c)?.arg) break; // the rest is that option's value
      }
    }
  }
  return false;
}

type Fallback = (onCompleted?: (err: Error | null, completions: string[] | undefined) => void) => unknown;

/**
 * The completion request: yargs completes commands and options from the tables; operands
 * (module names, loaded modules, module files, kernel versions) and option values come from the
 * system under `ctx.root`.
 */
async function complete(ctx: SurfaceContext, words: readonly string[], current: string, fallback: Fallback, done: (c: string[]) => void): Promise<void> {
  const applet = ctx.applets.find((a) => a.name === words[0]) ?? (words.length > 2 ? ctx.applets.find((a) => a.name === words[1]) : undefined);
  if (!applet || words.length < 2) {
    fallback(); // kmod-ts's own commands and options: yargs's completion
    return;
  }
  const zsh = isZsh(ctx.env);
  const escape = zsh ? (w: string) => w.replaceAll(':', '\\:') : (w: string) => w;
  const rest = words.slice(words.indexOf(applet.name) + 1);
  const options = applet.options;
  const afterDashes = rest.slice(0, -1).includes('--');
  const prev = rest.length >= 2 ? rest[rest.length - 2] : undefined;
  const opt = prev !== undefined && !afterDashes ? takesArgument(options, prev) : undefined;
  const kind0 = OPERANDS[applet.name];
  if (!opt && !afterDashes && (current.startsWith('-') || (current === '' && kind0 === undefined))) {
    // the applet's options, from its table; zsh shows each with its help, as yargs does for its own
    const offered = options.flatMap((o) => spellings(o).map((s) => (zsh ? `${escape(s)}:${o.help.replaceAll('\n', ' ')}` : s)));
    done(offered.filter((w) => w.startsWith(current)));
    return;
  }
  // the module database: of -b/-d's root and -S/-k's version when given (modinfo, modprobe, depmod)
  const dir = valueOf(options, rest, (o) => o.key === 'basedir' || o.key === 'dirname');
  const kver = valueOf(options, rest, (o) => /VERSION$/.test(o.arg ?? ''));
  let kind: OperandKind | undefined;
  if (opt) kind = /VERSION$/.test(opt.arg ?? '') ? 'kernel-version' : undefined;
  else {
    kind = kind0;
    // modprobe -r takes loaded modules, as rmmod does
    if (kind === 'module' && given(options, rest, 'remove')) kind = 'loaded-module';
    // insmod's and modprobe's later operands are module parameters
    if ((applet.name === 'insmod' || (applet.name === 'modprobe' && kind === 'module')) && operandIndex(options, rest) > 0) kind = undefined;
  }
  if (kind === undefined) {
    done([]); // an option's value or a parameter: the shell's own file completion
    return;
  }
  done(completeOperand(kind, current, { root: ctx.root, baseDir: dir, kernelVersion: kver }).map(escape));
}

/** `-s` and `--long`, as typed. */
function spellings(o: OptionSpec): string[] {
  return [o.long && `--${o.long}`, o.short && `-${o.short}`].filter((s): s is string => Boolean(s));
}

/** How many operands come before the word being completed. */
function operandIndex(options: readonly OptionSpec[], words: readonly string[]): number {
  let n = 0;
  for (let i = 0; i < words.length - 1; i++) {
    const w = words[i];
    if (w === '--') return n + words.length - 2 - i;
    if (w.startsWith('-') && w.length > 1) {
      if (takesArgument(options, w) && !w.includes('=')) i++;
      continue;
    }
    n++;
  }
  return n;
}

/** Links named after applets: the completion script registers for these names too. */
function withLinkNames(script: string, names: readonly string[], zsh: boolean): string {
  const fn = `_${NAME}_yargs_completions`;
  const list = names.join(' ');
  const edits: Array<[string, string]> = zsh
    ? [
        [`#compdef ${NAME}\n`, `#compdef ${NAME} ${list}\n`],
        [`compdef ${fn} ${NAME}\n`, `compdef ${fn} ${NAME} ${list}\n`],
        // directories (insmod drivers/<TAB>) continue without a space, as in bash
        ["    _describe 'values' reply\n", "    local -a dirs=(${(M)reply:#*/}) cands=(${reply:#*/})\n    (( ${#cands} )) && _describe 'values' cands\n    (( ${#dirs} )) && _describe 'values' dirs -S ''\n"],
        // autoloaded from $fpath, the file is the body of _kmod-ts, run on every completion: it
        // must complete each time, not only the first (yargs's test sees "loadautofunc" once and
        // then re-registers the commands, so every second Tab did nothing)
        ['if [[ "${zsh_eval_context[-1]}" == "loadautofunc" ]]; then\n', `if [[ "\${zsh_eval_context[-1]}" == "loadautofunc" || "\${funcstack[1]}" == "_${NAME}" ]]; then\n`],
      ]
    : [
        [`-F ${fn} ${NAME}\n`, `-F ${fn} ${NAME} ${list}\n`],
        // a lone directory candidate (insmod drivers/<TAB>) continues without a space
        ['    return 0\n', '    if [ ${#COMPREPLY[@]} -eq 1 ] && [[ ${COMPREPLY[0]} == */ ]]; then compopt -o nospace 2>/dev/null; fi\n    return 0\n'],
      ];
  for (const [from, to] of edits) {
    if (!script.includes(from)) throw new Error(`yargs's ${zsh ? 'zsh' : 'bash'} completion script changed: no '${from.trim()}'`);
    script = script.replace(from, to);
  }
  return script;
}

/** The closest of `candidates` to `word` (Levenshtein ≤ 2), for "did you mean" on options. */
function closest(word: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestD = 3;
  for (const c of candidates) {
    const d = distance(word, c);
    if (d < bestD) [best, bestD] = [c, d];
  }
  return best;
}

function distance(a: string, b: string): number {
  let row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const next = [i];
    for (let j = 1; j <= b.length; j++) next[j] = Math.min(row[j] + 1, next[j - 1] + 1, row[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    row = next;
  }
  return row[b.length];
}

/** yargs's parse with the output collected instead of printed. */
function parse(y: Argv, args: readonly string[]): Promise<{ err?: Error; output: string; argv?: Record<string, unknown> }> {
  return new Promise((resolve) => {
    void y.parse([...args], {}, (err, argv, output) => resolve({ err: err ?? undefined, output, argv: argv as Record<string, unknown> }));
  });
}

/**
 * Run `kmod-ts` without an applet: help, the completion script, a completion request, or an
 * unknown command or option.
 * @param ctx the arguments after `kmod-ts`, the applets, output and environment
 * @returns the exit status (0 help and completion, 1 usage errors)
 * @example await surface({ args: ['--help'], applets, stdout, stderr, env: process.env, root: '/' })
 */
export async function surface(ctx: SurfaceContext): Promise<number> {
  const names = ctx.applets.map((a) => a.name);
  const [first, ...rest] = ctx.args;
  if (first === '--get-yargs-completions') {
    // the script passes every word of the line; a link name or a path to one means its applet
    const words = rest.map((w, i) => (i === 0 && names.includes(basename(w)) ? basename(w) : w));
    // yargs prints the candidates itself, one per line, through console.log
    await program(ctx, ['--get-yargs-completions', ...words], words).parse();
    return 0;
  }
  if (first === 'completion') {
    const shell = rest[0];
    if (shell === '-h' || shell === '--help') {
      ctx.stdout.write(`Usage: ${NAME} completion [bash|zsh]\n\nPrints the shell completion script (for $SHELL without an argument); see ${NAME}(8).\n`);
      return 0;
    }
    if (shell !== undefined && shell !== 'bash' && shell !== 'zsh') {
      ctx.stderr.write(`${NAME}: ERROR: completion: unknown shell '${shell}' (bash or zsh)\n`);
      return 1;
    }
    const zsh = shell === 'zsh' || (shell === undefined && isZsh(ctx.env));
    // yargs picks its template from $SHELL when the program is built
    const saved = process.env.SHELL;
    process.env.SHELL = zsh ? '/bin/zsh' : '/bin/bash';
    try {
      const { output } = await parse(program(ctx, [], [], false), ['completion']);
      ctx.stdout.write(withLinkNames(output.endsWith("\n") ? output : `${output}\n`, names, zsh));
    } finally {
      if (saved === undefined) delete process.env.SHELL;
      else process.env.SHELL = saved;
    }
    return 0;
  }
  const y = program(ctx, [], []);
  if (first === undefined) {
    // `kmod-ts` alone is a usage error, as BusyBox's bare `busybox` is
    ctx.stderr.write(`${await y.getHelp()}\n`);
    return 1;
  }
  const { err, output, argv } = await parse(y, ctx.args);
  if (!err && argv?.help === true) {
    ctx.stdout.write(`${await y.getHelp()}\n`);
    return 0;
  }
  if (!err && output !== '') {
    ctx.stdout.write(`${output}\n`);
    return 0;
  }
  if (!err) {
    // options of --install alone (`kmod-ts -f`): nothing to do
    ctx.stderr.write(`${await y.getHelp()}\n`);
    return 1;
  }
  // yargs words it "Unknown argument: insmd" and adds "Did you mean insmod?" for commands;
  // say which kind of word it was, kmod's way, and suggest options too
  const unknown = /^Unknown arguments?: (.*)$/.exec(err.message)?.[1]?.split(', ')[0];
  const asOption = unknown === undefined ? undefined : ctx.args.find((a) => /^-/.test(a) && a.replace(/^-+/, '').split('=')[0] === unknown);
  const lines = output.split('\n').filter((l) => l !== '' && !/^Unknown arguments?: /.test(l));
  let message = err.message;
  if (asOption !== undefined) {
    message = `unrecognized option '${asOption.split('=')[0]}'`;
    const best = closest(unknown!, MULTICALL_OPTIONS.flatMap((o) => (o.long ? [o.long] : [])));
    if (best) lines.unshift(`Did you mean --${best}?`);
  } else if (unknown !== undefined) message = `unknown command '${unknown}'`;
  ctx.stderr.write(`${NAME}: ERROR: ${message}\n${lines.map((l) => `${l}\n`).join('')}`);
  return 1;
}

/**
 * modinfo — module information in kmod 30's exact layout (tools/modinfo.c).
 */
import os from 'node:os';
import parse from 'yargs-parser';
import type { Applet, AppletContext } from '../src/cli/applet.js';
import { strerror } from '../src/kernel/errno.js';
import { infoList, ModinfoError, ModinfoReader, modulesDir, resolveModules, type ModuleInfo, type ModuleRef } from '../src/ops/modinfo.js';
import { ModuleIndex } from '../src/db/module-db.js';
import { FEATURES, VERSION } from '../src/cli/version.js';

const USAGE = `Usage:
\tPROG [options] <modulename|filename> [args]
Options:
\t-a, --author                Print only 'author'
\t-d, --description           Print only 'description'
\t-l, --license               Print only 'license'
\t-p, --parameters            Print only 'parm'
\t-n, --filename              Print only 'filename'
\t-0, --null                  Use \\0 instead of \\n
\t-m, --modname               Handle argument as module name instead of alias or filename
\t-F, --field=FIELD           Print only provided FIELD
\t-k, --set-version=VERSION   Use VERSION instead of \`uname -r\`
\t-b, --basedir=DIR           Use DIR as filesystem root for /lib/modules
\t-V, --version               Show version
\t-h, --help                  Show this help
`;

/** kmod's option table: short letter, long name, takes an argument. Order as in modinfo.c. */
const OPTIONS: ReadonlyArray<readonly [short: string, long: string, arg: boolean]> = [
  ['a', 'author', false],
  ['d', 'description', false],
  ['l', 'license', false],
  ['p', 'parameters', false],
  ['n', 'filename', false],
  ['0', 'null', false],
  ['m', 'modname', false],
  ['F', 'field', true],
  ['k', 'set-version', true],
  ['b', 'basedir', true],
  ['V', 'version', false],
  ['h', 'help', false],
];

/** `-a` and friends are shorthands for `-F FIELD`; the last one given wins, as in kmod. */
const FIELD_OF: Readonly<Record<string, string>> = { author: 'author', description: 'description', license: 'license', parameters: 'parm', filename: 'filename' };

/**
 * GNU getopt_long's view of the command line (permutation, `--`, clustered short options,
 * `-Fvalue`, `--opt=value`, unique prefixes of long options), reduced to `--long[=value]`
 * tokens in order plus the operands, so yargs sees one unambiguous spelling. Errors are worded
 * as glibc's getopt words them.
 */
function getopt(args: readonly string[]): { tokens: string[]; operands: string[] } | { error: string } {
  const tokens: string[] = [];
  const operands: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === '--') {
      operands.push(...args.slice(i + 1));
      break;
    }
    if (a.startsWith('--')) {
      const eq = a.indexOf('=');
      const name = a.slice(2, eq === -1 ? undefined : eq);
      const exact = OPTIONS.find((o) => o[1] === name);
      const cands = exact ? [exact] : OPTIONS.filter((o) => o[1].startsWith(name));
      if (cands.length === 0) return { error: `unrecognized option '${eq === -1 ? a : a.slice(0, eq)}'` };
      if (cands.length > 1) return { error: `option '${a}' is ambiguous; possibilities:${cands.map((o) => ` '--${o[1]}'`).join('')}` };
      const [, long, takes] = cands[0];
      if (!takes && eq !== -1) return { error: `option '--${long}' doesn't allow an argument` };
      if (takes && eq === -1) {
        if (i + 1 >= args.length) return { error: `option '--${long}' requires an argument` };
        tokens.push(`--${long}=${args[++i]}`);
      } else tokens.push(eq === -1 ? `--${long}` : `--${long}=${a.slice(eq + 1)}`);
      continue;
    }
    if (a.startsWith('-') && a.length > 1) {
      for (let j = 1; j < a.length; j++) {
        const o = OPTIONS.find((x) => x[0] === a[j]);
        if (!o) return { error: `invalid option -- '${a[j]}'` };
        if (!o[2]) {
          tokens.push(`--${o[1]}`);
          continue;
        }
        if (j + 1 < a.length) tokens.push(`--${o[1]}=${a.slice(j + 1)}`);
        else if (i + 1 < args.length) tokens.push(`--${o[1]}=${args[++i]}`);
        else return { error: `option requires an argument -- '${o[0]}'` };
        break;
      }
      continue;
    }
    operands.push(a);
  }
  return { tokens, operands };
}

interface Flags {
  field: string | undefined;
  nul: boolean;
  asName: boolean;
  kver: string | undefined;
  basedir: string | undefined;
  help: boolean;
  version: boolean;
}

/** Options in command-line order through yargs-parser; the last of `-a/-d/-l/-p/-n/-F` wins. */
function parseFlags(tokens: string[]): Flags {
  const argv = parse(tokens, {
    boolean: OPTIONS.filter((o) => !o[2]).map((o) => o[1]),
    string: OPTIONS.filter((o) => o[2]).map((o) => o[1]),
    configuration: { 'camel-case-expansion': false, 'dot-notation': false, 'parse-numbers': false, 'parse-positional-numbers': false, 'boolean-negation': false, 'duplicate-arguments-array': false },
  }) as Record<string, unknown>;
  let field: string | undefined;
  for (const t of tokens) {
    const name = t.slice(2).split('=', 1)[0];
    if (name === 'field') field = t.slice('--field='.length);
    else if (name in FIELD_OF) field = FIELD_OF[name];
    else if (name === 'help' || name === 'version') break; // kmod acts on these as soon as it sees them
  }
  return {
    field,
    nul: argv.null === true,
    asName: argv.modname === true,
    kver: argv['set-version'] as string | undefined,
    basedir: argv.basedir as string | undefined,
    help: argv.help === true,
    version: argv.version === true,
  };
}

/** A JS string (argv, paths) as a byte string, to sit beside the module's latin1 strings. */
function bytes(s: string): string {
  return Buffer.from(s, 'utf8').toString('latin1');
}

/** printf's `%-*s` with kmod's width `15 - keylen`: a negative width pads to its magnitude. */
function pad(keyLength: number): string {
  return ' '.repeat(Math.abs(15 - keyLength));
}

/** Formats modinfo_do's output for one module; stderr lines go through `err`. */
function format(ref: ModuleRef, info: ModuleInfo | ModinfoError, flags: Flags, err: (m: string) => void): { text: string; ok: boolean } {
  const sep = flags.nul ? '\0' : '\n';
  const field = flags.field;
  let out = '';
  let filename = ref.path === undefined ? undefined : bytes(ref.path);
  if (filename === undefined) {
    if (field === undefined) out += `${'name:'.padEnd(16)}${bytes(ref.name)}${sep}`;
    else if (field === 'name') out += `${bytes(ref.name)}${sep}`;
    filename = '(builtin)';
  }
  if (field === 'filename') return { text: out + filename + sep, ok: true };
  if (field === undefined) out += `${'filename:'.padEnd(16)}${filename}${sep}`;
  if (info instanceof ModinfoError) {
    err(`could not get modinfo from '${bytes(ref.name)}': ${strerror(info.errno)}`);
    return { text: out, ok: false };
  }
  const list = infoList(info, 'latin1');
  const params: Array<{ name: string; desc?: string; type?: string }> = [];
  const parm = (k: string, v: string) => {
    const colon = v.indexOf(':');
    if (colon === -1) {
      err(`Found invalid "${k}=${v}": missing ':'`);
      return;
    }
    const name = v.slice(0, colon);
    let p = params.find((x) => x.name === name);
    if (!p) {
      p = { name };
      params.unshift(p);
    }
    if (k === 'parm') p.desc = v.slice(colon + 1);
    else p.type = v.slice(colon + 1);
  };
  if (field === 'parm') {
    for (const [k, v] of list) if (k === 'parm' || k === 'parmtype') parm(k, v);
    for (const p of params) {
      if (p.desc === undefined) out += `${p.name}: (${p.type})${sep}`;
      else if (p.type !== undefined) out += `${p.name}:${p.desc} (${p.type})${sep}`;
      else out += `${p.name}:${p.desc}${sep}`;
    }
    return { text: out, ok: true };
  }
  for (const [k, v] of list) {
    if (field !== undefined) {
      if (field === k) out += v + sep;
      continue;
    }
    if (k === 'parm' || k === 'parmtype') {
      parm(k, v);
      continue;
    }
    out += flags.nul ? `${k}=${v}\0` : `${k}:${pad(k.length)}${v}\n`;
  }
  if (field !== undefined) return { text: out, ok: true };
  for (const p of params) {
    if (p.desc === undefined) out += `parm:           ${p.name}:${p.type}${sep}`;
    else if (p.type !== undefined) out += `parm:           ${p.name}:${p.desc} (${p.type})${sep}`;
    else out += `parm:           ${p.name}:${p.desc}${sep}`;
  }
  return { text: out, ok: true };
}

async function run(ctx: AppletContext): Promise<number> {
  const error = (m: string) => ctx.stderr.write(`${ctx.prog}: ERROR: ${m}\n`);
  const opt = getopt(ctx.args);
  if ('error' in opt) {
    ctx.stderr.write(`${ctx.prog}: ${opt.error}\n`);
    return 1;
  }
  const flags = parseFlags(opt.tokens);
  const firstOf = opt.tokens.find((t) => t === '--help' || t === '--version');
  if (firstOf === '--help') {
    ctx.stdout.write(USAGE.replace('PROG', ctx.prog));
    return 0;
  }
  if (firstOf === '--version') {
    ctx.stdout.write(`kmod-ts version ${VERSION}\n${FEATURES}\n`);
    return 0;
  }
  if (opt.operands.length === 0) {
    error('missing module or filename.');
    return 1;
  }
  const root = flags.basedir ?? (ctx.root === '/' ? undefined : ctx.root);
  const dir = root !== undefined || flags.kver !== undefined ? modulesDir({ root: root ?? '', kernelVersion: flags.kver ?? os.release() }) : modulesDir({});
  const index = new ModuleIndex(dir);

  // resolve every argument first, then read them all at once so that compressed files are
  // decompressed in parallel; print strictly in argument order
  type Item = { arg: string; refs: ModuleRef[] } | { arg: string; error: ModinfoError };
  const items: Item[] = opt.operands.map((arg) => {
    try {
      return { arg, refs: resolveModules(arg, index, { asName: flags.asName }) };
    } catch (e) {
      if (e instanceof ModinfoError) return { arg, error: e };
      throw e;
    }
  });
  const compressed = items.reduce((n, it) => n + ('refs' in it ? it.refs.filter((r) => r.path !== undefined && !r.path.endsWith('.ko')).length : 0), 0);
  const cores = typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length;
  const reader = new ModinfoReader(index, { encoding: 'latin1', parallel: compressed >= 4 ? Math.min(cores, compressed) : 0 });
  const needInfo = flags.field !== 'filename';
  const settle = (ref: ModuleRef): Promise<ModuleInfo | ModinfoError> => {
    if (!needInfo) return Promise.resolve(new ModinfoError('no-info', ref.name));
    return reader.read(ref).catch((e: unknown) => {
      if (e instanceof ModinfoError) return e;
      throw e;
    });
  };
  const pending = items.map((it) => ('refs' in it ? it.refs.map((r) => [r, settle(r)] as const) : undefined));

  let status = 0;
  let buffered: string[] = [];
  let size = 0;
  const flush = () => {
    if (buffered.length === 0) return;
    // latin1 strings carry the module's bytes one per char: write them back as those bytes
    ctx.stdout.write(Buffer.from(buffered.join(''), 'latin1') as unknown as string);
    buffered = [];
    size = 0;
  };
  const err = (m: string) => {
    flush();
    ctx.stderr.write(Buffer.from(`${ctx.prog}: ERROR: ${m}\n`, 'latin1') as unknown as string);
  };
  try {
    for (let i = 0; i < items.length; i++) {
      const it = items[i];
      if ('error' in it) {
        const e = it.error;
        const arg = bytes(it.arg);
        err(e.kind === 'name-not-found' ? `Module name ${arg} not found.` : e.kind === 'bad-alias' ? `Module alias ${arg} not found.` : `Module ${arg} not found.`);
        status = 1;
        continue;
      }
      for (const [ref, p] of pending[i]!) {
        const r = format(ref, await p, flags, err);
        buffered.push(r.text);
        size += r.text.length;
        if (!r.ok) status = 1;
        if (size > 1 << 16) flush();
      }
    }
    flush();
  } finally {
    reader.close();
  }
  return status;
}

/** The modinfo applet. */
const modinfo: Applet = { name: 'modinfo', summary: 'show information about kernel modules', run };
export default modinfo;

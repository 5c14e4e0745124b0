/**
 * modinfo — module information in kmod 30's exact layout (tools/modinfo.c).
 */
import type { Applet, AppletContext } from '../src/cli/applet.js';
import { strerror } from '../src/kernel/errno.js';
import { infoList, ModinfoReader, type ModuleInfo } from '../src/ops/modinfo.js';
import { ModulePool } from '../src/ops/module-pool.js';
import { ModuleDb, type ModuleRef } from '../src/db/module-db.js';
import { compressedByName } from '../src/db/names.js';
import { LookupError, ModuleFileError } from '../src/errors.js';
import { maxSizeFromEnv, toJson, xzFromEnv } from './common.js';
import { HELP, parseCommandLine, VERSION, type AppletSpec, type ParsedOptions } from '../src/cli/options.js';

/** modinfo's command line, in kmod's order (tools/modinfo.c); `-a` and friends are `-F FIELD`. */
export const spec = {
  name: 'modinfo',
  summary: 'show information about kernel modules',
  usage: '[options] <modulename|filename> [args]',
  options: [
    { key: 'field', short: 'a', long: 'author', value: 'author', help: "Print only 'author'" },
    { key: 'field', short: 'd', long: 'description', value: 'description', help: "Print only 'description'" },
    { key: 'field', short: 'l', long: 'license', value: 'license', help: "Print only 'license'" },
    { key: 'field', short: 'p', long: 'parameters', value: 'parm', help: "Print only 'parm'" },
    { key: 'field', short: 'n', long: 'filename', value: 'filename', help: "Print only 'filename'" },
    { key: 'nul', short: '0', long: 'null', help: 'Use \\0 instead of \\n' },
    { key: 'modname', short: 'm', long: 'modname', help: 'Handle argument as module name instead of alias or filename' },
    { key: 'field', short: 'F', long: 'field', arg: 'FIELD', help: 'Print only provided FIELD' },
    { key: 'kernelVersion', short: 'k', long: 'set-version', arg: 'VERSION', help: 'Use VERSION instead of `uname -r`' },
    { key: 'basedir', short: 'b', long: 'basedir', arg: 'DIR', help: 'Use DIR as filesystem root for /lib/modules' },
    { key: 'json', long: 'json', help: 'Print the modules as JSON', extension: true },
    { ...VERSION, help: 'Show version' },
    { ...HELP, help: 'Show this help' },
  ],
  environment: [{ name: 'KMOD_TS_MAX_SIZE=BYTES', help: 'cap on the decompressed size (default 1 GiB)' }],
} as const satisfies AppletSpec;

type Flags = ParsedOptions<(typeof spec)['options']>;

/**
 * `--json`: the library's {@link ModuleInfo} as JSON. Bytes become text: the signer's name as
 * UTF-8, the key id and the signature as lowercase hex.
 * @param info one module's information
 * @returns a JSON-ready object with the same keys
 * @example toJson([moduleInfoJson(info)])
 */
export function moduleInfoJson(info: ModuleInfo): unknown {
  const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
  const s = info.signature;
  return { ...info, signature: s && { ...s, signer: Buffer.from(s.signer).toString('utf8'), keyId: hex(s.keyId), signature: hex(s.signature) } };
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
function format(ref: ModuleRef, info: ModuleInfo | ModuleFileError | null, flags: Flags, err: (m: string) => void): { text: string; ok: boolean } {
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
  if (info === null) return { text: out, ok: true };
  if (info instanceof ModuleFileError) {
    err(`could not get modinfo from '${bytes(ref.name)}': ${strerror(info.errno)}`);
    return { text: out, ok: false };
  }
  const list = infoList(info, 'latin1');
  // kmod complains about a parm without ':' where it lists parameters: the default output and -F parm
  if (field === undefined || field === 'parm') for (const bad of info.invalidParams) err(`Found invalid "${bad}": missing ':'`);
  if (field === 'parm') {
    for (const p of info.params) {
      if (p.description === undefined) out += `${p.name}: (${p.type})${sep}`;
      else if (p.type !== undefined) out += `${p.name}:${p.description} (${p.type})${sep}`;
      else out += `${p.name}:${p.description}${sep}`;
    }
    return { text: out, ok: true };
  }
  for (const [k, v] of list) {
    if (field !== undefined) {
      if (field === k) out += v + sep;
      continue;
    }
    if (k === 'parm' || k === 'parmtype') continue;
    out += flags.nul ? `${k}=${v}\0` : `${k}:${pad(k.length)}${v}\n`;
  }
  if (field !== undefined) return { text: out, ok: true };
  for (const p of info.params) {
    if (p.description === undefined) out += `parm:           ${p.name}:${p.type}${sep}`;
    else if (p.type !== undefined) out += `parm:           ${p.name}:${p.description} (${p.type})${sep}`;
    else out += `parm:           ${p.name}:${p.description}${sep}`;
  }
  return { text: out, ok: true };
}

async function run(ctx: AppletContext): Promise<number> {
  const error = (m: string) => ctx.stderr.write(`${ctx.prog}: ERROR: ${m}\n`);
  const cl = parseCommandLine(ctx, spec);
  if ('exit' in cl) return cl.exit;
  const flags = cl.options;
  if (cl.operands.length === 0) {
    error('missing module or filename.');
    return 1;
  }
  const cap = maxSizeFromEnv(ctx);
  if ('error' in cap) {
    error(cap.error);
    return 1;
  }
  const cwd = ctx.cwd;
  const db = ModuleDb.open({ root: flags.basedir ?? ctx.root, kernelVersion: flags.kernelVersion, cwd });
  const needInfo = flags.json || flags.field !== 'filename';
  const cores = ModulePool.defaultSize();
  // Many compressed files named: the workers start now, while the arguments are looked up (their
  // names only decide when; each file's format still comes from its magic).
  // --json is text: module strings decoded as UTF-8; kmod's layout keeps their bytes (latin1)
  const readerOptions = { encoding: flags.json ? ('utf8' as const) : ('latin1' as const), maxSize: cap.maxSize, xz: xzFromEnv(ctx.env) };
  const named = cl.operands.reduce((n, a) => n + (compressedByName(a) ? 1 : 0), 0);
  const early = needInfo && named >= 4 ? new ModinfoReader(db, { ...readerOptions, parallel: Math.min(cores, named) }).start() : undefined;

  // resolve every argument first, then read them all at once so that compressed files are
  // decompressed in parallel; print strictly in argument order
  type Item = { arg: string; refs: ModuleRef[] } | { arg: string; error: LookupError };
  const items: Item[] = cl.operands.map((arg) => {
    try {
      return { arg, refs: db.lookup(arg, { asName: flags.modname, cwd }) };
    } catch (e) {
      if (e instanceof LookupError) return { arg, error: e };
      throw e;
    }
  });
  const compressed = items.reduce((n, it) => n + ('refs' in it ? it.refs.filter((r) => r.path !== undefined && compressedByName(r.path)).length : 0), 0);
  const reader = early ?? new ModinfoReader(db, { ...readerOptions, parallel: compressed >= 4 ? Math.min(cores, compressed) : 0 });
  const settle = (ref: ModuleRef): Promise<ModuleInfo | ModuleFileError | null> => {
    if (!needInfo) return Promise.resolve(null);
    return reader.read(ref).catch((e: unknown) => {
      if (e instanceof ModuleFileError) return e;
      throw e;
    });
  };
  const pending = items.map((it) => ('refs' in it ? it.refs.map((r) => [r, settle(r)] as const) : undefined));

  let status = 0;
  const json: unknown[] = [];
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
        if (flags.json) {
          const info = await p;
          if (info instanceof ModuleFileError) {
            err(`could not get modinfo from '${bytes(ref.name)}': ${strerror(info.errno)}`);
            status = 1;
          } else if (info !== null) json.push(moduleInfoJson(info));
          continue;
        }
        const r = format(ref, await p, flags, err);
        buffered.push(r.text);
        size += r.text.length;
        if (!r.ok) status = 1;
        if (size > 1 << 16) flush();
      }
    }
    flush();
    if (flags.json) ctx.stdout.write(toJson(json));
  } finally {
    reader.close();
  }
  return status;
}

/** The modinfo applet. */
const modinfo: Applet = { ...spec, run };
export default modinfo;

/**
 * Module information as kmod 30's `modinfo` finds it: argument resolution (file, name, alias,
 * built-in), the `.modinfo` pairs, the signature fields, and the parameter list.
 *
 * @module
 */
import { statSync } from 'node:fs';
import os from 'node:os';
import { decodeModinfo } from '../file/elf/sections.js';
import { Errno } from '../kernel/errno.js';
import { ImageError, readImageParts, type ImageParts } from '../file/modinfo-image.js';
import { ModulePool } from './module-pool.js';
import { aliasNormalize, ModuleIndex, modnameNormalize, pathToModname } from '../db/module-db.js';
import { describeSignature, hexColumns, loadSignatureSupport, type SignatureDescription } from '../file/signature.js';

/** One module an argument resolved to. */
export interface ModuleRef {
  /** the module name (normalized) */
  readonly name: string;
  /** absolute file path; undefined when the module has no file (built-in, or not in modules.dep) */
  readonly path: string | undefined;
  /** the argument was a file name */
  readonly fromPath: boolean;
}

/** Why an argument resolved to nothing; the applet words it as kmod does. */
export type ModinfoErrorKind =
  /** `-m NAME` found no module (`Module name X not found.`) */
  | 'name-not-found'
  /** no file, name or alias matched (`Module X not found.`) */
  | 'not-found'
  /** the alias is not well formed (`Module alias X not found.`) */
  | 'bad-alias'
  /** the module's information could not be read (`could not get modinfo from 'NAME': ...`) */
  | 'no-info';

/**
 * An argument could not be resolved or its information could not be read.
 * @example
 * try { await modinfo('nosuch') } catch (e) { if (e instanceof ModinfoError) e.kind } // 'not-found'
 */
export class ModinfoError extends Error {
  /**
   * @param kind the fault
   * @param target the argument, or the module name for `no-info`
   * @param errno for `no-info`: kmod's errno for the fault
   */
  constructor(readonly kind: ModinfoErrorKind, readonly target: string, readonly errno: number = Errno.ENOENT, message?: string) {
    super(message ?? `${kind}: ${target}`);
    this.name = 'ModinfoError';
  }
}

/** Where to look and how to decode. */
export interface ModinfoOptions {
  /** system root for `/lib/modules` (default `/`); kmod's `-b` */
  readonly root?: string;
  /** kernel release (default: the running kernel's, `uname -r`); kmod's `-k` */
  readonly kernelVersion?: string;
  /** treat the argument as a module name, never a file or alias; kmod's `-m` */
  readonly asName?: boolean;
  /** `utf8` (default) or `latin1` for byte-exact strings (`Buffer.from(s, 'latin1')`) */
  readonly encoding?: 'utf8' | 'latin1';
  /** cap on decompressed size */
  readonly maxSize?: number;
}

/** A parameter as kmod's modinfo lists it. */
export interface ModuleParam {
  readonly name: string;
  /** from `parm=name:description` */
  readonly description: string | undefined;
  /** from `parmtype=name:type` */
  readonly type: string | undefined;
}

/** Everything `modinfo` shows about one module. */
export interface ModuleInfo {
  readonly name: string;
  /** absolute path; undefined for a built-in module */
  readonly filename: string | undefined;
  readonly builtin: boolean;
  /** `.modinfo` pairs in file order (for a built-in: from modules.builtin.modinfo) */
  readonly fields: ReadonlyArray<readonly [key: string, value: string]>;
  /** the appended signature, when present and readable */
  readonly signature: SignatureDescription | undefined;
  /** parameters in kmod's order (reverse order of first appearance) */
  readonly params: readonly ModuleParam[];
}

/** Module file names kmod's modinfo takes as files (`path_ends_with_kmod_ext`). */
const MODULE_EXTENSIONS = ['.ko', '.ko.gz', '.ko.xz', '.ko.zst'];

/**
 * The modules directory for a root and kernel release: `ROOT/lib/modules/KVER`.
 * @param opts root and kernel version
 * @returns the directory
 * @example
 * modulesDir({ root: '/mnt', kernelVersion: '6.1.0-18-amd64' }); // '/mnt/lib/modules/6.1.0-18-amd64'
 */
export function modulesDir(opts: Pick<ModinfoOptions, 'root' | 'kernelVersion'> = {}): string {
  // kmod joins the strings as they are ("%s/lib/modules/%s") and then makes the result absolute
  // against the working directory (get_kernel_release → path_make_absolute_cwd)
  const root = opts.root === undefined || opts.root === '/' ? '' : opts.root;
  return absolute(`${root}/lib/modules/${opts.kernelVersion ?? os.release()}`);
}

/**
 * kmod's `path_make_absolute_cwd`: absolute paths unchanged, others appended to the working
 * directory as `get_current_dir_name()` gives it ($PWD when it names the same directory).
 */
function absolute(p: string): string {
  if (p.startsWith('/')) return p;
  return `${currentDir()}/${p}`;
}

let cwdCache: string | undefined;
function currentDir(): string {
  if (cwdCache !== undefined) return cwdCache;
  const cwd = process.cwd();
  const pwd = process.env.PWD;
  cwdCache = cwd;
  if (pwd && pwd.startsWith('/')) {
    try {
      const a = statSync(pwd);
      const b = statSync('.');
      if (a.dev === b.dev && a.ino === b.ino) cwdCache = pwd;
    } catch {
      // keep getcwd's answer
    }
  }
  return cwdCache;
}

function isModuleFilename(arg: string): boolean {
  if (!MODULE_EXTENSIONS.some((ext) => arg.length > ext.length && arg.endsWith(ext))) return false;
  try {
    return statSync(arg).isFile();
  } catch {
    return false;
  }
}

/**
 * Resolves one `modinfo` argument as kmod 30 does: an existing regular file with a module
 * extension is a file; with `asName` a module name (modules.dep, then modules.builtin, then
 * built-in aliases); otherwise an alias (modules.dep name, modules.symbols, modules.alias,
 * modules.builtin, built-in aliases — the first that matches).
 * @param arg the argument
 * @param index the modules directory's index
 * @param opts `asName` for `-m`
 * @returns the modules, in kmod's order (an alias may match several, or one module several times)
 * @throws {ModinfoError} `not-found`, `name-not-found` or `bad-alias`
 * @example
 * resolveModules('dummy', new ModuleIndex(modulesDir()));
 */
export function resolveModules(arg: string, index: ModuleIndex, opts: { asName?: boolean } = {}): ModuleRef[] {
  const named = (name: string): ModuleRef => ({ name, path: index.modulePath(name), fromPath: false });
  if (opts.asName) {
    const name = modnameNormalize(arg);
    if (index.modulePath(name) !== undefined || index.isBuiltin(name)) return [named(name)];
    const b = index.lookupBuiltinAlias(name);
    if (b.length > 0) return [named(b[0])];
    throw new ModinfoError('name-not-found', arg);
  }
  if (isModuleFilename(arg)) {
    const name = pathToModname(arg);
    if (name !== undefined) return [{ name, path: absolute(arg), fromPath: true }];
  }
  const alias = aliasNormalize(arg);
  if (alias === undefined) throw new ModinfoError('bad-alias', arg, Errno.EINVAL);
  // kmod_module_new_from_lookup's order; the first look-up with a result wins
  if (!alias.includes(':') && index.modulePath(alias) !== undefined) return [named(alias)];
  for (const found of [index.lookupSymbol(alias), index.lookupAlias(alias)]) {
    if (found.length > 0) return found.map(named);
  }
  if (index.isBuiltin(alias)) return [named(alias)];
  const builtinAliases = index.lookupBuiltinAlias(alias);
  if (builtinAliases.length > 0) return builtinAliases.map(named);
  throw new ModinfoError('not-found', arg);
}

/**
 * Reads the information of resolved modules, decompressing compressed files on worker threads
 * (one per core) when there are several; results come back in argument order. Close it to end
 * the workers.
 * @example
 * const r = new ModinfoReader(index, {}); try { for (const p of refs.map((x) => r.read(x))) await p } finally { r.close() }
 */
export class ModinfoReader {
  #pool: Promise<ModulePool | undefined> | undefined;
  #sigLoad: Promise<void> | undefined;

  /**
   * @param index the modules directory's index (for built-ins)
   * @param opts decoding options; `parallel` is the number of worker threads to use for
   *   compressed files (0: decompress on this thread)
   */
  constructor(readonly index: ModuleIndex, readonly opts: ModinfoOptions & { parallel?: number } = {}) {}

  #readParts(file: string, compressed: boolean): Promise<ImageParts> {
    if (!compressed || (this.opts.parallel ?? 0) <= 0) {
      try {
        return Promise.resolve(readImageParts(file, { maxSize: this.opts.maxSize }));
      } catch (e) {
        return Promise.reject(e);
      }
    }
    return (this.#pool ??= ModulePool.start(this.opts.parallel ?? 0)).then(async (pool) => {
      if (!pool) return readImageParts(file, { maxSize: this.opts.maxSize });
      const m = (await pool.request({ kind: 'modinfo', file, maxSize: this.opts.maxSize })) as { parts?: ImageParts; error?: { errno: number; message: string; format?: string } };
      if (m.error) throw new ImageError(m.error.errno, m.error.message, m.error.format);
      return m.parts!;
    });
  }

  /**
   * Reads one module's information.
   * @param ref from {@link resolveModules}
   * @returns the record
   * @throws {ModinfoError} `no-info` with kmod's errno (ENOENT for a module without `.modinfo`,
   *   ENOEXEC for non-ELF data, EINVAL for a malformed or corrupt file, ENOSYS for a built-in
   *   missing from modules.builtin.modinfo)
   */
  async read(ref: ModuleRef): Promise<ModuleInfo> {
    const enc = this.opts.encoding ?? 'utf8';
    if (ref.path === undefined) return this.#builtin(ref, enc);
    let parts: ImageParts;
    try {
      parts = await this.#readParts(ref.path, !ref.path.endsWith('.ko'));
    } catch (e) {
      if (e instanceof ImageError) throw new ModinfoError('no-info', ref.name, e.errno, e.message);
      throw e;
    }
    const fields = decodeModinfo(parts.modinfo, enc);
    let signature: SignatureDescription | undefined;
    if (parts.signature) {
      if (parts.signature.idType === 2) await (this.#sigLoad ??= loadSignatureSupport());
      signature = describeSignature(parts.signature);
    }
    return { name: ref.name, filename: ref.path, builtin: false, fields, signature, params: moduleParams(fields).params };
  }

  #builtin(ref: ModuleRef, enc: 'utf8' | 'latin1'): ModuleInfo {
    const empty: ModuleInfo = { name: ref.name, filename: undefined, builtin: true, fields: [], signature: undefined, params: [] };
    // kmod: a module without a file that modules.builtin does not list has nothing more to show
    if (!this.index.isBuiltin(ref.name)) return empty;
    const raw = this.index.builtinModinfo(ref.name);
    if (raw === null) return empty; // an old kernel without modules.builtin.modinfo
    if (raw === undefined) throw new ModinfoError('no-info', ref.name, Errno.ENOSYS);
    const fields = enc === 'latin1' ? raw : raw.map(([k, v]): [string, string] => [utf8(k), utf8(v)]);
    return { ...empty, fields, params: moduleParams(fields).params };
  }

  /** Ends the worker threads. */
  close(): void {
    void this.#pool?.then((p) => p?.close());
  }
}

function utf8(latin1: string): string {
  return Buffer.from(latin1, 'latin1').toString('utf8');
}

/**
 * The list kmod's `kmod_module_get_info` returns: `.modinfo` pairs, then `sig_id`, `signer`,
 * `sig_key`, `sig_hashalgo`, `signature` (hex as kmod lays it out).
 * @param info a record
 * @param encoding how to decode the signer (match the record's)
 * @returns key/value pairs
 * @example
 * infoList(await modinfoOne('dummy')).find(([k]) => k === 'sig_hashalgo');
 */
export function infoList(info: ModuleInfo, encoding: 'utf8' | 'latin1' = 'utf8'): Array<[string, string]> {
  const out = info.fields.map(([k, v]): [string, string] => [k, v]);
  const s = info.signature;
  if (s) {
    out.push(
      ['sig_id', s.idType],
      ['signer', Buffer.from(s.signer).toString(encoding)],
      ['sig_key', hexColumns(s.keyId)],
      ['sig_hashalgo', s.hashAlgo],
      ['signature', hexColumns(s.signature)],
    );
  }
  return out;
}

/**
 * kmod's parameter list: `parm=name:desc` and `parmtype=name:type` merged by name, newest name
 * first (kmod prepends each new name to its list).
 * @param fields `.modinfo` pairs
 * @returns the parameters and the `key=value` strings kmod complains about (no `:`)
 * @example
 * moduleParams([['parm', 'x:X'], ['parmtype', 'x:int']]).params; // [{ name: 'x', description: 'X', type: 'int' }]
 */
export function moduleParams(fields: ReadonlyArray<readonly [string, string]>): { params: ModuleParam[]; invalid: string[] } {
  const byName = new Map<string, { name: string; description: string | undefined; type: string | undefined }>();
  const invalid: string[] = [];
  for (const [k, v] of fields) {
    if (k !== 'parm' && k !== 'parmtype') continue;
    const colon = v.indexOf(':');
    if (colon === -1) {
      invalid.push(`${k}=${v}`);
      continue;
    }
    const name = v.slice(0, colon);
    let p = byName.get(name);
    if (!p) {
      p = { name, description: undefined, type: undefined };
      byName.set(name, p);
    }
    if (k === 'parm') p.description = v.slice(colon + 1);
    else p.type = v.slice(colon + 1);
  }
  return { params: [...byName.values()].reverse(), invalid };
}

/**
 * Everything `modinfo` shows about a module file, name or alias.
 * @param target a module file (any compression), a module name or an alias
 * @param opts root, kernel version, `asName`, encoding
 * @returns one record per module the target resolves to (an alias may match several)
 * @throws {ModinfoError} when nothing matches or a module's information cannot be read
 * @example
 * const [info] = await modinfo('/lib/modules/6.1.0-18-amd64/kernel/drivers/net/dummy.ko');
 * info.fields.find(([k]) => k === 'license'); // ['license', 'GPL']
 */
export async function modinfo(target: string, opts: ModinfoOptions = {}): Promise<ModuleInfo[]> {
  const index = new ModuleIndex(modulesDir(opts));
  const reader = new ModinfoReader(index, opts);
  try {
    const out: ModuleInfo[] = [];
    for (const ref of resolveModules(target, index, opts)) out.push(await reader.read(ref));
    return out;
  } finally {
    reader.close();
  }
}

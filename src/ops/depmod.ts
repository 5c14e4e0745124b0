/**
 * depmod: the module database of `/lib/modules/KVER` (`modules.dep`, the alias, symbol, softdep,
 * weakdep and devname lists, and their `.bin` indexes) computed from the module files, in kmod
 * 34.2's order and bytes (`tools/depmod.c`).
 *
 * The steps, as kmod takes them:
 * 1. scan the module directory (then each depmod.d `external` directory) in readdir order; a name
 *    seen twice keeps the copy depmod.d ranks higher (`override`, then `search`);
 * 2. order the modules: those listed in `modules.order` first, in its order, the rest in the
 *    iteration order of kmod's 512-bucket name hash;
 * 3. read each module's exports, `.modinfo` and needed symbols; the later of two exporters owns a
 *    symbol;
 * 4. turn needed symbols into dependencies, sort topologically (a cycle is fatal);
 * 5. write the eleven files — here all computed first, then each written to a temporary file in
 *    the output directory and renamed over the old one, so that an error or a kill leaves every
 *    file either complete-old or complete-new.
 *
 * The library never prints: kmod's messages go to `onMessage` (levels as syslog's), `-v` lines to
 * `onShow`, and a fatal condition is a thrown {@link DepmodError}.
 *
 * @module
 */
import { closeSync, existsSync, mkdirSync, openSync, opendirSync, readdirSync, renameSync, statSync, unlinkSync, writeSync, type Dirent, type Stats } from 'node:fs';
import os from 'node:os';
import { IndexWriter, type IndexLayout } from '../db/index-trie.js';
import { KmodHash } from '../db/kmod-hash.js';
import { absolutePath } from '../db/module-db.js';
import { emptyDepmodConfig, loadDepmodConfig, LOG_LEVEL, type DepmodConfig, type DepmodMessage } from '../db/depmod-config.js';
import { aliasNormalize, compressedByName, hasModuleExtension, modnameNormalize } from '../db/names.js';
import { readDepmodParts, scratchBuffers, type DepmodReadFailure } from '../file/module-file.js';
import { ModulePool } from './module-pool.js';
import { symbolNames, type DepmodParts, type SymbolList } from '../file/elf/symbols.js';
import { KmodError } from '../errors.js';
import { errnoFromCode, strerror, Errno } from '../kernel/errno.js';
import { readBounded } from '../kernel/read-bounded.js';

export type { DepmodMessage } from '../db/depmod-config.js';

/** The files depmod writes, in the order kmod 34.2 writes them. */
export const DEPMOD_FILES: readonly string[] = [
  'modules.dep',
  'modules.dep.bin',
  'modules.alias',
  'modules.alias.bin',
  'modules.softdep',
  'modules.weakdep',
  'modules.symbols',
  'modules.symbols.bin',
  'modules.builtin.bin',
  'modules.builtin.alias.bin',
  'modules.devname',
];

/** The text files among {@link DEPMOD_FILES}: what `depmod -n` prints, in this order. */
export const DEPMOD_TEXT_FILES: readonly string[] = DEPMOD_FILES.filter((f) => !f.endsWith('.bin'));

/** What {@link depmod} does. Every field is optional; the defaults are `depmod -a` for `uname -r`. */
export interface DepmodOptions {
  /** kernel version (default: `os.release()`); must start `N.N` */
  kernelVersion?: string;
  /** `-b`: root under which `MODULEDIR/KVER` lies (default: none, i.e. `/`) */
  basedir?: string;
  /** `-m`: module directory (default `/lib/modules`) */
  moduledir?: string;
  /** `-o`: root to write under instead of `basedir` */
  outdir?: string;
  /** explicit module files (absolute paths); turns off `all` and depmod.d */
  files?: readonly string[];
  /** `-A`: do nothing when no module is newer than `modules.dep` */
  quick?: boolean;
  /** `-C`: configuration files or directories instead of the depmod.d defaults */
  config?: readonly string[];
  /** `-E`: Module.symvers (kernel symbols with CRCs) */
  symvers?: string;
  /** `-F`: System.map (kernel symbols) */
  systemMap?: string;
  /** `-e`: warn about needed symbols nobody provides (needs `symvers` or `systemMap`) */
  errsyms?: boolean;
  /** `-P`: one character to skip at the start of symbol names */
  symbolPrefix?: string;
  /** `-w`: warn about duplicate index values */
  warnDuplicates?: boolean;
  /** do not write: return the contents (`-n` computes the same) */
  dryRun?: boolean;
  /** `.bin` node layout (default pre-order, as kmod 34) */
  layout?: IndexLayout;
  /** worker threads reading modules besides this thread, which reads too (default: one per core less one when many modules are compressed, else none; 0: this thread only) */
  parallel?: number;
  /** directory relative `basedir`/`outdir` are taken from (default `process.cwd()`) */
  cwd?: string;
  /** receives kmod's messages (`onMessage({ level: 3, text: 'Cycle detected: a -> b -> a\n' })`) */
  onMessage?: (m: DepmodMessage) => void;
  /** receives `-v` lines (`PATH needs "SYM": OWNER\n`), which kmod prints to stdout */
  onShow?: (line: string) => void;
}

/** One output file. */
export interface DepmodFile {
  name: string;
  data: Buffer;
}

/** What {@link depmod} did. */
export interface DepmodResult {
  /** where the files are (or would be) written: `OUTDIR/MODULEDIR/KVER` */
  dir: string;
  /** the scanned module directory: `BASEDIR/MODULEDIR/KVER` */
  modulesDir: string;
  /** `quick` found nothing newer than modules.dep: nothing computed or written */
  upToDate: boolean;
  /** whether the files were written (false for a dry run or when up to date) */
  written: boolean;
  /** the eleven files in kmod's order (empty when up to date) */
  files: DepmodFile[];
  /** number of modules */
  modules: number;
}

/** Why depmod stopped; `level` says whether kmod calls it FATAL (`crit`) or ERROR (`err`). */
export class DepmodError extends KmodError {
  declare readonly kind: 'crit' | 'err';
  /**
   * @param level `crit` or `err`
   * @param message kmod's words, without the trailing newline
   * @param code errno name, when there is one (else EINVAL)
   */
  constructor(readonly level: 'crit' | 'err', message: string, code?: string) {
    super(level, (code && errnoFromCode(code)) || Errno.EINVAL, message);
  }
}

interface Mod {
  path: string;
  relpath: string | undefined;
  uncrelpath: string | undefined;
  /** index of the last '/' in path */
  baselen: number;
  name: string;
  sortIdx: number;
  depSortIdx: number;
  idx: number;
  users: number;
  deps: Mod[];
  depSet: Set<Mod>;
  aliases: string[];
  softdeps: string[];
  weakdeps: string[];
  needs: SymbolList | undefined;
  visited: boolean;
}

interface Sym {
  name: string;
  owner: Mod | undefined;
  crc: number;
}

interface Cfg {
  kver: string;
  dirname: string;
  outdirname: string;
  symPrefix: string;
  checkSymvers: boolean;
  printUnknown: boolean;
  warnDups: boolean;
  conf: DepmodConfig;
}

/** kmod's `is_version_number`: `sscanf("%u.%u") == 2`. */
export function isVersionNumber(v: string): boolean {
  return /^\s*[+-]?\d+\.\s*[+-]?\d+/.test(v);
}


function errnoOf(e: unknown): number {
  return errnoFromCode((e as NodeJS.ErrnoException)?.code ?? '') ?? Errno.EIO;
}

/**
 * Runs depmod: scans the module tree, computes kmod 34.2's eleven files and (unless `dryRun`)
 * writes them atomically.
 * @param opts what to do; see {@link DepmodOptions}
 * @returns the files and where they went
 * @throws {DepmodError} on kmod's fatal conditions (bad version, missing module directory, a
 *   relative module file, a dependency cycle, an unwritable output directory); nothing is written then
 * @example
 * const r = await depmod({ basedir: '/mnt/image', kernelVersion: '6.12.48+deb13-cloud-amd64' });
 * r.files.map((f) => f.name); // ['modules.dep', 'modules.dep.bin', ...]
 * const dry = await depmod({ dryRun: true }); // contents only, nothing written
 */
export async function depmod(opts: DepmodOptions = {}): Promise<DepmodResult> {
  const log = opts.onMessage ?? (() => {});
  const msg = (level: number, text: string) => log({ level, text });
  const cwd = opts.cwd ?? process.cwd();
  const kver = opts.kernelVersion ?? os.release();
  if (opts.kernelVersion !== undefined && !isVersionNumber(kver)) throw new DepmodError('err', `Bad version passed ${kver}`);
  if (opts.symbolPrefix !== undefined && opts.symbolPrefix.length !== 1) throw new DepmodError('crit', '-P only takes a single char');
  const root = opts.basedir !== undefined ? absolutePath(opts.basedir, cwd) : '';
  const outRoot = opts.outdir !== undefined ? absolutePath(opts.outdir, cwd) : root;
  const moduledir = (opts.moduledir ?? '/lib/modules').replace(/^\/+/, '');
  const dirname = `${root}/${moduledir}/${kver}`;
  const outdirname = `${outRoot}/${moduledir}/${kver}`;
  const files = opts.files ?? [];
  let all = files.length === 0;
  const result: DepmodResult = { dir: outdirname, modulesDir: dirname, upToDate: false, written: false, files: [], modules: 0 };

  if (opts.quick) {
    if (opts.dryRun) return { ...result, upToDate: true };
    if (upToDate(dirname, msg) === 1) return { ...result, upToDate: true };
    // kmod: an out-of-date tree is scanned whole, module files on the command line or not
    all = true;
  }

  // Workers start while the tree is scanned: at once when asked for, else once the scan has found
  // enough compressed modules to use them (see below for when they are worth it).
  let pool = all && opts.parallel !== undefined ? ModulePool.start(workerCount(opts.parallel)) : undefined;
  try {
    const cfg: Cfg = {
      kver,
      dirname,
      outdirname,
      symPrefix: opts.symbolPrefix ?? '\0',
      checkSymvers: opts.symvers !== undefined,
      printUnknown: !!opts.errsyms,
      warnDups: !!opts.warnDuplicates,
      conf: emptyDepmodConfig(),
    };
    const symbols = new KmodHash<Sym>(2048);
    const addSymbol = (name: string, prefixSkipped: boolean, crc: number, owner: Mod | undefined) => {
      if (!prefixSkipped && name[0] === cfg.symPrefix) name = name.slice(1);
      symbols.add(name, { name, owner, crc });
    };
    const findSymbol = (name: string) => {
      if (name[0] === '.') name = name.slice(1);
      if (name[0] === cfg.symPrefix) name = name.slice(1);
      return symbols.get(name);
    };
    const addFakeSymbols = () => {
      addSymbol('__this_module', true, 0, undefined);
      addSymbol('_GLOBAL_OFFSET_TABLE_', true, 0, undefined);
      if (findSymbol('TOC.') === undefined) addSymbol('TOC.', true, 0, undefined);
    };
    if (opts.symvers !== undefined) {
      loadSymvers(opts.symvers, addSymbol, msg);
      addFakeSymbols();
    } else if (opts.systemMap !== undefined) {
      loadSystemMap(opts.systemMap, cfg.symPrefix, addSymbol, msg);
      addFakeSymbols();
    } else if (cfg.printUnknown) {
      msg(LOG_LEVEL.warning, '-e needs -E or -F\n');
      cfg.printUnknown = false;
    }

    const byName = new KmodHash<Mod>(512);
    const byUncrelpath = new KmodHash<Mod>(512);
    const newMod = (found: string): Mod => {
      // libkmod keeps the path absolute (kmod_module_new_from_path): a module found under a
      // relative `external` directory is listed with the working directory before it
      const path = absolutePath(found, cwd);
      const slash = path.lastIndexOf('/');
      const name = modnameNormalize(path.slice(slash + 1));
      const relpath = path.startsWith(dirname) && path[dirname.length] === '/' ? path.slice(dirname.length + 1) : undefined;
      let uncrelpath: string | undefined;
      if (relpath !== undefined) {
        // kmod: the relative path cut after the basename's first strlen(modname)+3 bytes ("xfs.ko")
        const relSlash = slash - dirname.length - 1;
        uncrelpath = relpath.slice(0, relSlash + 1 + name.length + 3);
      }
      return {
        path, relpath, uncrelpath, baselen: slash, name, sortIdx: 1, depSortIdx: 0x7fffffff, idx: 0, users: 0,
        deps: [], depSet: new Set(), aliases: [], softdeps: [], weakdeps: [], needs: undefined, visited: false,
      };
    };
    const addMod = (m: Mod): boolean => {
      if (!byName.addUnique(m.name, m)) {
        msg(LOG_LEVEL.err, `hash_add_unique ${m.name}: File exists\n`);
        return false;
      }
      if (m.uncrelpath !== undefined && !byUncrelpath.addUnique(m.uncrelpath, m)) {
        msg(LOG_LEVEL.err, `hash_add_unique ${m.uncrelpath}: File exists\n`);
        byName.delete(m.name);
        return false;
      }
      return true;
    };

    if (all) {
      cfg.conf = loadDepmodConfig({ paths: opts.config, kernelVersion: kver, log });
      let compressedSeen = 0;
      const searchFile = (path: string, baselen: number, name: string) => {
        if (!hasModuleExtension(name)) return;
        // as many compressed modules as the read below needs to use workers: start them now
        if (pool === undefined && compressedByName(name) && ++compressedSeen === 2 * BATCH) pool = ModulePool.start(workerCount(opts.parallel));
        const modname = modnameNormalize(name);
        const old = byName.get(modname);
        if (old !== undefined) {
          if (isHigherPriority(cfg, old, baselen, modname.length, path)) return;
          if (old.uncrelpath !== undefined) byUncrelpath.delete(old.uncrelpath);
          byName.delete(old.name);
        }
        // kmod stats the file again here (kmod_module_new_from_path), which fails only if it went
        // away since the directory was read; it is then reported when it is opened
        if (!addMod(newMod(path))) {
          msg(LOG_LEVEL.err, `could not add module ${path}: File exists\n`);
          msg(LOG_LEVEL.err, `failed ${path}: File exists\n`);
        }
      };
      const excluded = new Set(['.', '..', 'build', 'source', ...cfg.conf.excludes]);
      const err = searchPath(dirname, cwd, excluded, searchFile, msg);
      if (err !== 0) throw new DepmodError('crit', `could not search modules: ${strerror(err)}`, 'ENOENT');
      for (const ext of cfg.conf.externals) searchPath(ext, cwd, excluded, searchFile, msg);
    } else {
      for (const path of files) {
        if (!path.startsWith('/')) throw new DepmodError('crit', `${path}: not absolute path.`);
        try {
          statSync(path);
        } catch (e) {
          throw new DepmodError('crit', `could not create module ${path}: ${strerror(errnoOf(e))}`);
        }
        if (!addMod(newMod(path))) throw new DepmodError('crit', `could not add module ${path}: File exists`);
      }
    }

    // the module array: kmod's hash order, then modules.order first
    const modules: Mod[] = [...byName.values()];
    modules.forEach((m, i) => (m.idx = i));
    if (modules.length >= 0xffff) throw new DepmodError('crit', 'could not build module array: Numerical result out of range');
    sortByModulesOrder(modules, dirname, byUncrelpath, msg);
    result.modules = modules.length;

    // Read every module, on worker threads too when they are worth it: uncompressed modules are
    // read and parsed faster than a worker starts and warms up (Debian 12's tree: 393 ms on this
    // thread alone, 434 ms with a worker), so unless workers were asked for, they take part only
    // when many modules are compressed (their names say so; each file's format still comes from
    // its magic).
    const paths = modules.map((m) => m.path);
    const compressed = paths.reduce((n, p) => n + (compressedByName(p) ? 1 : 0), 0);
    const useWorkers = paths.length >= 2 * BATCH && (opts.parallel !== undefined ? opts.parallel > 0 : compressed >= 2 * BATCH);
    if (useWorkers) pool ??= ModulePool.start(workerCount(opts.parallel));
    // each module's symbols and aliases are taken in module order as soon as its parts are in,
    // while later modules are still being read
    const take = (i: number, p: DepmodParts | DepmodReadFailure): void => {
      const m = modules[i];
      if ('errno' in p) {
        if (p.codecMessage) msg(LOG_LEVEL.err, `${p.codecMessage}\n`);
        msg(LOG_LEVEL.err, `failed to load symbols from ${m.path}: ${strerror(p.errno)}\n`);
        // libkmod opens the file again for the .modinfo and for the needed symbols
        if (p.codecMessage) {
          msg(LOG_LEVEL.err, `${p.codecMessage}\n`);
          msg(LOG_LEVEL.err, `${p.codecMessage}\n`);
        }
        return;
      }
      const ok = p;
      if (ok.exportsErrno !== undefined) msg(LOG_LEVEL.err, `failed to load symbols from ${m.path}: ${strerror(ok.exportsErrno)}\n`);
      if (ok.exports !== undefined) {
        const names = symbolNames(ok.exports);
        for (let k = 0; k < names.length; k++) addSymbol(names[k], false, ok.exports.crcs[k], m);
      }
      for (const s of ok.modinfo) {
        const eq = s.indexOf('=');
        const key = eq === -1 ? s : s.slice(0, eq);
        const value = eq === -1 ? '' : s.slice(eq + 1);
        if (key === 'alias') m.aliases.push(value);
        else if (key === 'softdep') m.softdeps.push(value);
        else if (key === 'weakdep') m.weakdeps.push(value);
      }
      m.needs = ok.needs;
    };
    await readModules(paths, useWorkers ? pool : undefined, take);

    // dependencies
    for (const m of modules) {
      if (m.needs === undefined) continue;
      const names = symbolNames(m.needs);
      const { crcs, weak } = m.needs;
      for (let k = 0; k < names.length; k++) {
        const name = names[k];
        const isWeak = weak![k] === 1;
        const sym = findSymbol(name);
        if (sym === undefined) {
          if (cfg.printUnknown && !isWeak) msg(LOG_LEVEL.warning, `${m.path} needs unknown symbol ${name}\n`);
          continue;
        }
        if (cfg.checkSymvers && sym.crc !== crcs[k] && !isWeak && cfg.printUnknown) {
          msg(LOG_LEVEL.warning, `${m.path} disagrees about version of symbol ${name}\n`);
        }
        const owner = sym.owner;
        if (owner === undefined || m.depSet.has(owner)) continue;
        m.depSet.add(owner);
        m.deps.push(owner);
        owner.users++;
        opts.onShow?.(`${m.path} needs "${sym.name}": ${owner.path}\n`);
      }
    }
    topoSort(modules, msg);

    const out = output(modules, symbols, cfg, opts, msg);
    result.files = out;
    if (opts.dryRun) return result;
    writeAtomically(outdirname, out, msg);
    return { ...result, written: true };
  } finally {
    void pool?.then((p) => p?.close());
  }
}

/** `depmod_module_is_higher_priority`: whether the module already found beats `newpath`. */
function isHigherPriority(cfg: Cfg, old: Mod, baselen: number, modnamelen: number, newpath: string): boolean {
  const { dirname } = cfg;
  const newlen = baselen + modnamelen;
  const oldlen = old.baselen + old.name.length + 1;
  const oldpath = old.path;
  let relnew: string | undefined;
  let relold: string | undefined;
  if (newpath.startsWith(dirname)) relnew = newpath.slice(dirname.length + 1, newlen);
  if (oldpath.startsWith(dirname)) relold = oldpath.slice(dirname.length + 1, oldlen);
  for (const ov of cfg.conf.overrides) {
    if (relnew !== undefined && relnew === ov) return false;
    if (relold !== undefined && relold === ov) return true;
  }
  const startsWith = (p: string, plen: number, prefix: string) => plen > prefix.length && p[prefix.length] === '/' && p.startsWith(prefix);
  let bprio = -1;
  let oldprio = -1;
  let newprio = -1;
  let i = 0;
  for (const se of cfg.conf.searches) {
    if (se.type === 'built-in') bprio = i;
    else if (se.type === 'external') {
      for (const ext of cfg.conf.externals) {
        if (startsWith(newpath, newlen, ext)) newprio = i;
        if (startsWith(oldpath, oldlen, ext)) oldprio = i;
        i++;
      }
    } else if (relnew !== undefined && relnew.length > se.path.length && relnew[se.path.length] === '/' && relnew.startsWith(se.path)) newprio = i;
    else if (relold !== undefined && relold.length > se.path.length && relold[se.path.length] === '/' && relold.startsWith(se.path)) oldprio = i;
    i++;
  }
  if (newprio < 0) newprio = bprio;
  if (oldprio < 0) oldprio = bprio;
  return newprio <= oldprio;
}

/**
 * `fstatat` of a directory entry as both of depmod's walks do it: a regular file or a directory,
 * else kmod's error line and `undefined` (the walk goes on).
 */
function statEntry(file: string, path: string, name: string, msg: (l: number, t: string) => void): Stats | undefined {
  let st;
  try {
    st = statSync(file);
  } catch (err) {
    msg(LOG_LEVEL.err, `fstatat(${name}): ${strerror(errnoOf(err))}\n`);
    return undefined;
  }
  if (st.isFile() || st.isDirectory()) return st;
  msg(LOG_LEVEL.err, `unsupported file type ${path}: ${(st.mode & 0o170000).toString(8)}\n`);
  return undefined;
}

/**
 * `depmod_modules_search_path`: walks a tree in readdir order; returns 0 or the errno of opening
 * it. A relative `dir` (an `external` line) is read from `cwd`, and its files are reported with
 * the paths as kmod has them (relative).
 */
function searchPath(dir: string, cwd: string, excluded: Set<string>, onFile: (path: string, baselen: number, name: string) => void, msg: (l: number, t: string) => void): number {
  let top: Dirent[];
  try {
    top = readdirSync(absolutePath(dir, cwd), { withFileTypes: true });
  } catch (e) {
    const errno = errnoOf(e);
    msg(LOG_LEVEL.err, `could not open directory ${dir}: ${strerror(errno)}\n`);
    return errno;
  }
  // each directory read whole (getdents order, as kmod's readdir loop sees it)
  const walk = (entries: Dirent[], base: string) => {
    for (const e of entries) {
      const name = e.name;
      if (excluded.has(name)) continue;
      const path = base + name;
      let isDir: boolean;
      if (e.isFile()) isDir = false;
      else if (e.isDirectory()) isDir = true;
      else {
        // no d_type: kmod falls back to fstatat, which follows links
        const st = statEntry(absolutePath(path, cwd), path, name, msg);
        if (st === undefined) continue;
        isDir = st.isDirectory();
      }
      if (isDir) {
        let sub;
        try {
          sub = readdirSync(absolutePath(path, cwd), { withFileTypes: true });
        } catch (err) {
          msg(LOG_LEVEL.err, `openat(${name}, O_RDONLY): ${strerror(errnoOf(err))}\n`);
          continue;
        }
        walk(sub, path + '/');
      } else onFile(path, base.length, name);
    }
  };
  walk(top, dir + '/');
  return 0;
}

/** `depmod_modules_sort`: modules listed in modules.order first, in its order (first listing wins). */
function sortByModulesOrder(modules: Mod[], dirname: string, byUncrelpath: KmodHash<Mod>, msg: (l: number, t: string) => void): void {
  let text: string;
  try {
    text = readBounded(`${dirname}/modules.order`).toString('latin1');
  } catch (e) {
    msg(LOG_LEVEL.warning, `could not open modules.order at ${dirname}: ${strerror(errnoOf(e))}\n`);
    return;
  }
  let i = -modules.length;
  let lineNo = 0;
  let pos = 0;
  while (pos < text.length) {
    // fgets with kmod's PATH_MAX buffer
    let nl = text.indexOf('\n', pos);
    let end = nl === -1 ? text.length : nl + 1;
    if (end - pos > 4095) {
      end = pos + 4095;
      nl = -1;
    }
    const line = text.slice(pos, end);
    pos = end;
    lineNo++;
    if (!line.endsWith('\n')) {
      msg(LOG_LEVEL.err, `${dirname}/modules.order:${lineNo} corrupted line misses '\\n'\n`);
      return;
    }
    const m = byUncrelpath.get(line.slice(0, -1));
    if (m === undefined || m.sortIdx < 0) continue;
    m.sortIdx = i++;
  }
  if (modules.length > 1) {
    // Array.prototype.sort is stable, as glibc's qsort (a merge sort) is here
    modules.sort((a, b) => a.sortIdx - b.sortIdx);
    modules.forEach((m, k) => (m.idx = k));
  }
}

/** `depmod_calculate_dependencies`: Kahn's sort with a LIFO of roots; a cycle is fatal. */
function topoSort(modules: Mod[], msg: (l: number, t: string) => void): void {
  const n = modules.length;
  const users = modules.map((m) => m.users);
  const roots: number[] = [];
  for (let i = 0; i < n; i++) if (users[i] === 0) roots.push(i);
  let sorted = 0;
  while (roots.length > 0) {
    const src = modules[roots.pop()!];
    src.depSortIdx = sorted++;
    for (const dst of src.deps) {
      if (--users[dst.idx] === 0) roots.push(dst.idx);
    }
  }
  if (sorted < n) {
    const count = reportCycles(modules, users, msg);
    throw new DepmodError('err', `Found ${count} modules in dependency cycles!`);
  }
  for (const m of modules) if (m.deps.length > 1) m.deps.sort((a, b) => a.depSortIdx - b.depSortIdx);
}

/** `depmod_report_cycles`: one "Cycle detected" line per cycle found from each remaining root. */
function reportCycles(modules: Mod[], users: number[], msg: (l: number, t: string) => void): number {
  interface Vertex { parent: Vertex | undefined; mod: Mod }
  const roots: Mod[] = [];
  for (let i = 0; i < modules.length; i++) if (users[i] > 0) roots.push(modules[i]);
  const removeRoot = (m: Mod) => {
    const k = roots.indexOf(m);
    if (k !== -1) roots.splice(k, 1);
  };
  const loopSet = new Set<string>();
  let budget = 1_000_000; // kmod can walk a branch after a loop forever; we stop
  while (roots.length > 0) {
    const root = roots.shift()!;
    const stack: Vertex[] = [{ parent: undefined, mod: root }];
    while (stack.length > 0 && budget-- > 0) {
      const v = stack.pop()!;
      const m = v.mod;
      if (m.visited && m === root) {
        const names: string[] = [];
        for (let p = v.parent; p !== undefined; p = p.parent) {
          names.unshift(p.mod.name);
          loopSet.add(p.mod.name);
        }
        for (let p = v.parent; p !== undefined; p = p.parent) removeRoot(p.mod);
        msg(LOG_LEVEL.err, `Cycle detected: ${[...names, m.name].join(' -> ')}\n`);
        continue;
      }
      m.visited = true;
      if (m.deps.length === 0) {
        removeRoot(m);
        continue;
      }
      for (const d of m.deps) stack.push({ parent: v, mod: d });
    }
  }
  return loopSet.size;
}

/** The path a module is listed under: relative inside the module directory, absolute outside. */
function listedPath(m: Mod): string {
  return m.relpath ?? m.path;
}

/** All dependencies of a module, users first (`mod_get_all_sorted_dependencies`). */
function allDependencies(m: Mod): Mod[] {
  const seen = new Set<Mod>();
  const fill = (x: Mod) => {
    for (const d of x.deps) {
      if (seen.has(d)) continue;
      seen.add(d);
      fill(d);
    }
  };
  fill(m);
  return [...seen].sort((a, b) => a.depSortIdx - b.depSortIdx);
}

/** kmod's `%u` of a sscanf'd number: digits, wrapping at 2^32 as the C conversion does. */
function devnameMatch(value: string, kind: 'char' | 'block'): [number, number] | undefined {
  const m = new RegExp(`^${kind}-major-\\s*\\+?(\\d+)-\\s*\\+?(\\d+)`).exec(value);
  if (!m) return undefined;
  const u = (s: string) => {
    const n = BigInt(s);
    return n > 0xffffffffffffffffn ? 0xffffffff : Number(n & 0xffffffffn);
  };
  return [u(m[1]), u(m[2])];
}

/** The eleven files' contents, in kmod's order. */
function output(modules: Mod[], symbols: KmodHash<Sym>, cfg: Cfg, opts: DepmodOptions, msg: (l: number, t: string) => void): DepmodFile[] {
  const layout = opts.layout;
  const stdoutMode = !!opts.dryRun;
  const files: DepmodFile[] = [];
  const text = (name: string, s: string) => files.push({ name, data: Buffer.from(s, 'latin1') });
  const bin = (name: string, t: IndexWriter | undefined) => files.push({ name, data: t === undefined ? Buffer.alloc(0) : t.toBuffer({ layout }) });
  const insert = (t: IndexWriter, key: string, value: string, prio: number, what: string) => {
    let dup: boolean;
    try {
      dup = t.add(key, value, prio);
    } catch (e) {
      if (e instanceof RangeError) throw new DepmodError('crit', e.message.replace(/\n$/, ''));
      throw e;
    }
    if (dup) msg(LOG_LEVEL.warning, `duplicate module ${what}:\n${what === 'deps' ? value : `${key} ${value}`}\n`);
  };

  // modules.dep and modules.dep.bin
  const depLines: string[] = [];
  let dep = '';
  for (const m of modules) {
    let line = `${listedPath(m)}:`;
    if (m.deps.length > 0) for (const d of allDependencies(m)) line += ` ${listedPath(d)}`;
    depLines.push(line);
    dep += `${line}\n`;
  }
  text('modules.dep', dep);
  const depBin = new IndexWriter({ duplicates: cfg.warnDups });
  modules.forEach((m, i) => insert(depBin, m.name, depLines[i], m.idx, 'deps'));
  bin('modules.dep.bin', depBin);

  let alias = '# Aliases extracted from modules themselves.\n';
  for (const m of modules) for (const a of m.aliases) alias += `alias ${a} ${m.name}\n`;
  text('modules.alias', alias);
  const aliasBin = new IndexWriter({ duplicates: cfg.warnDups });
  for (const m of modules) {
    for (const a of m.aliases) {
      const norm = aliasNormalize(a);
      if (norm === undefined) {
        if (!stdoutMode) msg(LOG_LEVEL.warning, `Unmatched bracket in ${a}\n`);
        continue;
      }
      insert(aliasBin, norm, m.name, m.idx, 'alias');
    }
  }
  bin('modules.alias.bin', aliasBin);

  let softdep = '# Soft dependencies extracted from modules themselves.\n';
  for (const m of modules) for (const v of m.softdeps) softdep += `softdep ${m.name} ${v}\n`;
  text('modules.softdep', softdep);
  let weakdep = '# Weak dependencies extracted from modules themselves.\n';
  for (const m of modules) for (const v of m.weakdeps) weakdep += `weakdep ${m.name} ${v}\n`;
  text('modules.weakdep', weakdep);

  let syms = '# Aliases for symbols, used by symbol_request().\n';
  const symBin = new IndexWriter({ duplicates: cfg.warnDups });
  for (const s of symbols.values()) {
    if (s.owner === undefined) continue;
    syms += `alias symbol:${s.name} ${s.owner.name}\n`;
    insert(symBin, `symbol:${s.name}`, s.owner.name, s.owner.idx, 'syms');
  }
  text('modules.symbols', syms);
  bin('modules.symbols.bin', symBin);

  bin('modules.builtin.bin', stdoutMode ? undefined : builtinIndex(cfg.dirname, msg));
  bin('modules.builtin.alias.bin', stdoutMode ? undefined : builtinAliasIndex(cfg.dirname, msg));

  let devname = '';
  for (const m of modules) {
    let name: string | undefined;
    let type = '';
    let major = 0;
    let minor = 0;
    for (const a of m.aliases) {
      let mm: [number, number] | undefined;
      if (a.startsWith('devname:')) name = a.slice(8);
      else if ((mm = devnameMatch(a, 'char')) !== undefined) [type, major, minor] = ['c', ...mm];
      else if ((mm = devnameMatch(a, 'block')) !== undefined) [type, major, minor] = ['b', ...mm];
      if (type !== '' && name !== undefined) break;
    }
    if (name === undefined) continue;
    if (type === '') {
      msg(LOG_LEVEL.err, `Module '${m.name}' has devname (${name}) but lacks major and minor information. Ignoring.\n`);
      continue;
    }
    if (devname === '') devname = '# Device nodes to trigger on-demand module loading.\n';
    devname += `${m.name} ${name} ${type}${major}:${minor}\n`;
  }
  text('modules.devname', devname);
  return files;
}

/** `output_builtin_bin`: modules.builtin names (no file: a warning and an empty index file). */
function builtinIndex(dirname: string, msg: (l: number, t: string) => void): IndexWriter | undefined {
  let text: string;
  try {
    text = readBounded(`${dirname}/modules.builtin`).toString('latin1');
  } catch (e) {
    msg(LOG_LEVEL.warning, `could not open modules.builtin at ${dirname}: ${strerror(errnoOf(e))}\n`);
    return undefined;
  }
  const t = new IndexWriter();
  for (const line of fgetsLines(text)) {
    if (!/^[A-Za-z]/.test(line)) {
      msg(LOG_LEVEL.err, `Invalid modules.builtin line: ${line}\n`);
      continue;
    }
    t.add(modnameNormalize(line.slice(line.lastIndexOf('/') + 1)), '', 0);
  }
  return t;
}

/** Lines as fgets with a PATH_MAX buffer returns them (newline kept). */
function fgetsLines(text: string): string[] {
  const out: string[] = [];
  let pos = 0;
  while (pos < text.length) {
    const nl = text.indexOf('\n', pos);
    let end = nl === -1 ? text.length : nl + 1;
    if (end - pos > 4095) end = pos + 4095;
    out.push(text.slice(pos, end));
    pos = end;
  }
  return out;
}

/** `output_builtin_alias_bin`: `alias` records of modules.builtin.modinfo, read as kmod's byte loop reads them. */
function builtinAliasIndex(dirname: string, msg: (l: number, t: string) => void): IndexWriter | undefined {
  let buf: Buffer;
  try {
    buf = readBounded(`${dirname}/modules.builtin.modinfo`);
  } catch (e) {
    msg(LOG_LEVEL.warning, `could not open modules.builtin.modinfo at ${dirname}: ${strerror(errnoOf(e))}\n`);
    return undefined;
  }
  const t = new IndexWriter();
  let pos = 0;
  const n = buf.length;
  // flush_stream_to: bytes up to `end` (or NUL, or EOF); the length when it stopped at `end`, else 0
  const until = (end: number): [string, number] => {
    const start = pos;
    while (pos < n && buf[pos] !== end && buf[pos] !== 0) pos++;
    const s = buf.toString('latin1', start, pos);
    const hit = pos < n && buf[pos] === end;
    if (pos < n) pos++;
    return [s, hit ? s.length : 0];
  };
  while (pos < n) {
    const [modname, mlen] = until(0x2e);
    if (mlen === 0) continue;
    const [key] = until(0x3d);
    if (key !== 'alias') {
      while (pos < n && buf[pos++] !== 0);
      continue;
    }
    const [value, vlen] = until(0);
    if (vlen === 0) continue;
    const norm = aliasNormalize(value);
    if (norm === undefined) {
      msg(LOG_LEVEL.warning, `Unmatched bracket in ${value}\n`);
      continue;
    }
    t.add(norm, modname, 0);
  }
  return t;
}

/**
 * Writes every file to `NAME.PID.USEC.SEC` in the output directory, then renames each over its
 * old version. Nothing is renamed until every temporary file is complete, and a failure removes
 * the temporary files and leaves the old ones.
 */
function writeAtomically(dir: string, files: DepmodFile[], msg: (l: number, t: string) => void): void {
  try {
    mkdirSync(dir, { recursive: true, mode: 0o755 });
  } catch (e) {
    throw new DepmodError('crit', `could not create directory ${dir}: ${strerror(errnoOf(e))}`);
  }
  const now = Date.now();
  const usec = (now % 1000) * 1000 + Math.floor((performance.now() % 1) * 1000);
  const stamp = `${process.pid}.${usec}.${Math.floor(now / 1000)}`;
  const temps: Array<[string, string]> = [];
  try {
    for (const f of files) {
      const tmp = `${dir}/${f.name}.${stamp}`;
      let fd: number;
      try {
        fd = openSync(tmp, 'wx', 0o644);
      } catch (e) {
        throw new DepmodError('err', `openat(${dir}, ${f.name}.${stamp}): ${strerror(errnoOf(e))}`);
      }
      temps.push([tmp, `${dir}/${f.name}`]);
      try {
        let off = 0;
        while (off < f.data.length) off += writeSync(fd, f.data, off, f.data.length - off);
      } catch (e) {
        throw new DepmodError('err', `Could not create index '${f.name}'. Output is truncated: ${strerror(errnoOf(e))}`);
      } finally {
        closeSync(fd);
      }
    }
  } catch (e) {
    for (const [tmp] of temps) {
      try {
        unlinkSync(tmp);
      } catch {
        msg(LOG_LEVEL.err, `unlinkat(${dir}, ${tmp.slice(dir.length + 1)}): could not remove\n`);
      }
    }
    throw e;
  }
  for (const [tmp, final] of temps) {
    try {
      renameSync(tmp, final);
    } catch (e) {
      throw new DepmodError('crit', `renameat(${dir}, ${tmp.slice(dir.length + 1)}, ${dir}, ${final.slice(dir.length + 1)}): ${strerror(errnoOf(e))}`);
    }
  }
}

/** `depfile_up_to_date`: 1 when no module file is newer (whole seconds) than modules.dep, 0 when one is, < 0 on error. */
function upToDate(dirname: string, msg: (l: number, t: string) => void): number {
  let mtime: number;
  try {
    mtime = Math.floor(statSync(`${dirname}/modules.dep`).mtimeMs / 1000);
  } catch (e) {
    const errno = errnoOf(e);
    try {
      statSync(dirname);
      msg(LOG_LEVEL.err, `could not fstatat(${dirname}, modules.dep): ${strerror(errno)}\n`);
    } catch (e2) {
      msg(LOG_LEVEL.err, `could not open directory ${dirname}: ${strerror(errnoOf(e2))}\n`);
    }
    return -errno;
  }
  const walk = (dir: string): number => {
    let d;
    try {
      d = opendirSync(dir, { bufferSize: 256 });
    } catch (e) {
      msg(LOG_LEVEL.err, `openat(${dir}, O_RDONLY): ${strerror(errnoOf(e))}\n`);
      return 1;
    }
    try {
      for (let e: Dirent | null = d.readSync(); e !== null; e = d.readSync()) {
        const name = e.name;
        if (name === '.' || name === '..' || name === 'build' || name === 'source') continue;
        const path = `${dir}/${name}`;
        const st = statEntry(path, path, name, msg);
        if (st === undefined) continue;
        let r = 1;
        if (st.isDirectory()) r = walk(path);
        else {
          if (!hasModuleExtension(name)) continue;
          r = Math.floor(st.mtimeMs / 1000) <= mtime ? 1 : 0;
        }
        if (r === 0) return 0;
      }
    } finally {
      d.closeSync();
    }
    return 1;
  };
  return walk(dirname);
}

/** strtok(" \t") tokens of a line, as kmod splits Module.symvers lines (the newline stays in the last). */
function strtok(line: string, delims: string): string[] {
  const out: string[] = [];
  let i = 0;
  while (i < line.length) {
    while (i < line.length && delims.includes(line[i])) i++;
    if (i >= line.length) break;
    const start = i;
    while (i < line.length && !delims.includes(line[i])) i++;
    out.push(line.slice(start, i));
  }
  return out;
}

function readOrFatal(file: string): string {
  try {
    return readBounded(file).toString('latin1');
  } catch (e) {
    throw new DepmodError('crit', `could not load ${file}: ${strerror(errnoOf(e))}`);
  }
}

/** `depmod_load_symvers`: `CRC SYMBOL vmlinux ...` lines of Module.symvers. */
function loadSymvers(file: string, add: (name: string, skipped: boolean, crc: number, owner: undefined) => void, msg: (l: number, t: string) => void): void {
  const text = readOrFatal(file);
  let linenum = 0;
  for (const line of fgetsLines(text)) {
    linenum++;
    const [ver, sym, where] = strtok(line, ' \t');
    if (where === undefined || where !== 'vmlinux') continue;
    // strtoull(ver, &end, 16) must consume the whole token
    const m = /^\s*([+-]?)(?:0[xX](?=[0-9a-fA-F]))?([0-9a-fA-F]*)/.exec(ver)!;
    if (m[0].length !== ver.length || m[2] === '') {
      msg(LOG_LEVEL.err, `${file}:${linenum} Invalid symbol version ${ver}: ${leftoverErrno()}\n`);
      continue;
    }
    let crc = BigInt(`0x${m[2]}`);
    if (crc > 0xffffffffffffffffn) crc = 0xffffffffffffffffn;
    else if (m[1] === '-') crc = (0x10000000000000000n - crc) & 0xffffffffffffffffn;
    add(sym, false, Number(crc), undefined);
  }
}

/**
 * kmod prints this error with `%m` although nothing failed: errno is whatever an earlier call
 * left, in practice kmod_new's open of /sys/module/compression (absent on kernels without
 * module decompression, and in containers).
 */
function leftoverErrno(): string {
  return existsSync('/sys/module/compression') ? 'Success' : strerror(Errno.ENOENT);
}

/** `depmod_load_system_map`: `ADDR TYPE __ksymtab_SYMBOL` lines of System.map. */
function loadSystemMap(file: string, prefix: string, add: (name: string, skipped: boolean, crc: number, owner: undefined) => void, msg: (l: number, t: string) => void): void {
  const text = readOrFatal(file);
  let linenum = 0;
  for (const line of fgetsLines(text)) {
    linenum++;
    const a = line.indexOf(' ');
    const b = a === -1 ? -1 : line.indexOf(' ', a + 1);
    if (b === -1) {
      msg(LOG_LEVEL.err, `${file}:${linenum}: invalid line: ${line}\n`);
      continue;
    }
    let p = line.slice(b + 1);
    if (p[0] === prefix) p = p.slice(1);
    if (!p.startsWith('__ksymtab_')) continue;
    const nl = p.indexOf('\n');
    if (nl !== -1) p = p.slice(0, nl);
    add(p.slice(10), true, 0, undefined);
  }
}

/** Most files per batch: big enough to make messages cheap; batches shrink towards the end so that the threads finish together. */
const BATCH = 24;
/** Most files this thread reads before it looks for the workers' answers. */
const OWN_BATCH = 4;

/** Worker threads beside this one: `parallel`, else one per core less this thread. */
function workerCount(parallel: number | undefined): number {
  return parallel ?? ModulePool.defaultSize() - 1;
}

/**
 * Reads every module's parts and hands each to `take` in module order, as soon as it and all
 * before it are in. This thread reads batches itself and the pool's worker threads (if any) take
 * batches too; whoever is free takes the next. This thread starts at once, and a worker joins
 * when it has started. The caller closes the pool.
 */
async function readModules(paths: string[], starting: Promise<ModulePool | undefined> | undefined, take: (i: number, parts: DepmodParts | DepmodReadFailure) => void): Promise<void> {
  const scratch = scratchBuffers();
  const pool = await starting;
  if (pool === undefined) {
    paths.forEach((p, i) => take(i, readDepmodParts(p, { scratch })));
    return;
  }
  const threads = pool.size + 1;
  const out: Array<DepmodParts | DepmodReadFailure | undefined> = new Array(paths.length);
  let next = 0;
  let taken = 0;
  const advance = (): void => {
    while (taken < paths.length && out[taken] !== undefined) {
      take(taken, out[taken]!);
      out[taken++] = undefined; // nothing of it is needed any more
    }
  };
  const claim = (most: number): [number, number] => {
    const start = next;
    next = Math.min(paths.length, start + Math.max(1, Math.min(most, Math.floor((paths.length - start) / (3 * threads)))));
    return [start, next];
  };
  // three batches in flight per worker, so that none waits for this thread between batches
  const workerLane = async (): Promise<void> => {
    while (next < paths.length) {
      const [start, end] = claim(BATCH);
      const m = (await pool.request({ kind: 'depmod', files: paths.slice(start, end) })) as { results: Array<DepmodParts | DepmodReadFailure> };
      for (let i = 0; i < m.results.length; i++) out[start + i] = m.results[i];
      advance();
    }
  };
  // this thread's batches are small: a worker's answer waits until this thread looks up, and it
  // is given its next batch only then (with 24-file batches here, the worker idled a third of
  // the time)
  const ownLane = async (): Promise<void> => {
    while (next < paths.length) {
      const [start, end] = claim(OWN_BATCH);
      for (let i = start; i < end; i++) out[i] = readDepmodParts(paths[i], { scratch });
      advance();
      await new Promise<void>((resolve) => setImmediate(resolve)); // let the workers' answers in
    }
  };
  // the workers' first batches are asked for before this thread reads its own (ownLane reads
  // synchronously until its first await)
  const lanes = Array.from({ length: pool.size * 3 }, workerLane);
  await Promise.all([...lanes, ownLane()]);
}

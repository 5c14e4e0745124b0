/**
 * The module database of one `ROOT/lib/modules/KVER` directory, as libkmod keeps it: the
 * directory (`/lib/modules`, or `/usr/lib/modules` where only that exists), modules.dep (name →
 * file and dependencies), modules.builtin (built-in names), modules.builtin.modinfo (built-in
 * `.modinfo` and aliases), modules.alias and modules.symbols (wildcard aliases → names), and
 * `lookup`, kmod's `kmod_module_new_from_lookup` over all of them.
 *
 * kmod reads depmod's binary tries (`*.bin`); we read the text files depmod writes beside them,
 * which carry the same keys and values. Each file is read once, when first needed.
 *
 * @module
 */
import { readBounded } from '../kernel/read-bounded.js';
import { existsSync, statSync } from 'node:fs';
import { release } from 'node:os';
import path from 'node:path';
import { IndexTrie } from './index-trie.js';
import { LookupError } from '../errors.js';
import { aliasNormalize, fnmatch, hasModuleExtension, modnameNormalize, pathToModname } from './names.js';

interface AliasEntry {
  pattern: string;
  module: string;
  /** depmod's priority: the module's position in depmod's order (0 for built-in aliases) */
  rank: number;
  /** line order, to break ties */
  order: number;
}

/** Where to find the database. */
export interface ModuleDbOptions {
  /** system root (default `/`); kmod's `-b`/`-d` */
  readonly root?: string;
  /** kernel release (default: the running kernel's, `uname -r`); kmod's `-k`/`-S` */
  readonly kernelVersion?: string;
  /** the directory a relative root is taken from (default `process.cwd()`; kmod uses `$PWD` when it names the same directory) */
  readonly cwd?: string;
}

/**
 * The modules directory for a root and kernel release: `ROOT/lib/modules/KVER`, or
 * `ROOT/usr/lib/modules/KVER` when only that one exists (distributions that moved modules to
 * /usr without a /lib link). kmod joins the strings as they are (`"%s/lib/modules/%s"`) and then
 * makes the result absolute against the working directory (`path_make_absolute_cwd`).
 * @param opts root, kernel version, working directory
 * @returns the directory (absolute)
 * @example modulesDir({ root: '/mnt', kernelVersion: '6.1.0-18-amd64' }) // '/mnt/lib/modules/6.1.0-18-amd64'
 */
export function modulesDir(opts: ModuleDbOptions = {}): string {
  const kver = opts.kernelVersion ?? release();
  const [lib, usr] = moduleDirectories(opts.root).map((d) => absolutePath(`${d}/${kver}`, opts.cwd));
  if (existsSync(lib)) return lib;
  return existsSync(usr) ? usr : lib;
}

/**
 * Where module trees live under a root, in the order they are tried: `ROOT/lib/modules`, then
 * `ROOT/usr/lib/modules` (merged-/usr systems may keep only the second).
 * @param root the system root (default `/`)
 * @returns the two directories (relative when `root` is)
 * @example moduleDirectories('/mnt') // ['/mnt/lib/modules', '/mnt/usr/lib/modules']
 */
export function moduleDirectories(root?: string): [string, string] {
  const r = root === undefined || root === '/' ? '' : root;
  return [`${r}/lib/modules`, `${r}/usr/lib/modules`];
}

/**
 * kmod's `path_make_absolute_cwd`: an absolute path unchanged, another one appended to the
 * working directory.
 * @param p the path
 * @param cwd the working directory (default `process.cwd()`)
 * @returns the absolute path
 * @example absolutePath('x.ko', '/tmp') // '/tmp/x.ko'
 */
export function absolutePath(p: string, cwd?: string): string {
  if (p.startsWith('/')) return p;
  return `${cwd ?? process.cwd()}/${p}`;
}

/**
 * One modules.dep line: `kernel/fs/fat/vfat.ko: kernel/fs/fat/fat.ko`.
 * @param line the line
 * @returns the module's name, its file and its dependencies' files (as written, relative to the
 *   modules directory unless absolute), or undefined for a line that is not an entry
 * @example parseDepLine('kernel/fs/fat/vfat.ko: kernel/fs/fat/fat.ko') // { name: 'vfat', file: 'kernel/fs/fat/vfat.ko', deps: ['kernel/fs/fat/fat.ko'] }
 */
export function parseDepLine(line: string): { name: string; file: string; deps: string[] } | undefined {
  const colon = line.indexOf(':');
  if (colon <= 0) return undefined;
  const file = line.slice(0, colon);
  const name = pathToModname(file);
  if (name === undefined) return undefined;
  const deps = line.slice(colon + 1).split(/[ \t]+/).filter((d) => d !== '');
  return { name, file, deps };
}

/** One module a name, alias or path resolved to. */
export interface ModuleRef {
  /** the module name (normalized) */
  readonly name: string;
  /** absolute file path; undefined when the module has no file (built-in, or not in modules.dep) */
  readonly path: string | undefined;
  /** the argument was a file name */
  readonly fromPath: boolean;
}

function isModuleFilename(arg: string): boolean {
  if (!hasModuleExtension(arg)) return false;
  try {
    return statSync(arg).isFile();
  } catch {
    return false;
  }
}

/**
 * Read-only view of one `/lib/modules/KVER` directory. Missing files read as empty, as kmod
 * treats a missing index as "not found there".
 * @example
 * const db = new ModuleDb(modulesDir({ kernelVersion: '6.1.0-18-amd64' }));
 * db.modulePath('dummy'); // '/lib/modules/6.1.0-18-amd64/kernel/drivers/net/dummy.ko'
 */
export class ModuleDb {
  /** module name → its modules.dep line */
  #dep: Map<string, string> | undefined;
  #aliases: AliasTrie | undefined;
  #symbols: AliasTrie | undefined;
  #builtin: Set<string> | undefined;
  #builtinModinfo: Map<string, Array<[string, string]>> | null | undefined;
  #builtinAliases: AliasTrie | undefined;

  /** the `.bin` indexes read so far (null: missing or unreadable, the text file is used) */
  #bins = new Map<string, IndexTrie | null>();

  /**
   * @param dir the modules directory, e.g. `/lib/modules/$(uname -r)`
   * @param opts `bin`: look up through depmod's `.bin` indexes as kmod does (read lazily, a
   *   node when first visited), each falling back to its text file when missing (kmod then fails)
   */
  constructor(
    readonly dir: string,
    readonly opts: { bin?: boolean } = {},
  ) {}

  #bin(file: string): IndexTrie | undefined {
    if (!this.opts.bin) return undefined;
    let t = this.#bins.get(file);
    if (t === undefined) {
      try {
        t = IndexTrie.read(path.join(this.dir, `${file}.bin`));
      } catch {
        t = null;
      }
      this.#bins.set(file, t);
    }
    return t ?? undefined;
  }

  /**
   * The database of a root and kernel release.
   * @param opts root, kernel version, working directory
   * @returns the database of {@link modulesDir}`(opts)`
   * @example ModuleDb.open({ root: '/mnt' }).isBuiltin('ext4')
   */
  static open(opts: ModuleDbOptions = {}): ModuleDb {
    return new ModuleDb(modulesDir(opts));
  }

  #read(name: string, encoding: 'utf8' | 'latin1' = 'utf8'): string | undefined {
    try {
      return readBounded(path.join(this.dir, name)).toString(encoding);
    } catch {
      return undefined;
    }
  }

  #absolute(file: string): string {
    return file.startsWith('/') ? file : `${this.dir}/${file}`;
  }

  /**
   * The file of a module, from modules.dep (relative paths are taken under `dir`).
   * @param name a normalized module name
   * @returns the path, or undefined when modules.dep does not list it
   */
  modulePath(name: string): string | undefined {
    const e = this.#entry(name);
    return e && this.#absolute(e.file);
  }

  /**
   * The files a module depends on, from modules.dep, in depmod's order (the one to load last
   * first).
   * @param name a normalized module name
   * @returns absolute paths, or undefined when modules.dep does not list the module
   * @example db.dependencies('vfat') // ['/lib/modules/6.1.0-18-amd64/kernel/fs/fat/fat.ko']
   */
  dependencies(name: string): string[] | undefined {
    return this.#entry(name)?.deps.map((d) => this.#absolute(d));
  }

  #entry(name: string): ReturnType<typeof parseDepLine> {
    const line = this.depLine(name);
    return line === undefined ? undefined : parseDepLine(line);
  }

  /**
   * A module's modules.dep line as written (`kernel/fs/fat/vfat.ko: kernel/fs/fat/fat.ko`),
   * which is also the value `modules.dep.bin` holds for its name.
   * @param name a normalized module name
   * @returns the line, or undefined when modules.dep does not list the module
   * @example idx.depLine('vfat') // 'kernel/fs/fat/vfat.ko: kernel/fs/fat/fat.ko'
   */
  depLine(name: string): string | undefined {
    const bin = this.#bin('modules.dep');
    if (bin) return bin.lookup(name);
    if (this.#dep === undefined) {
      this.#dep = new Map();
      for (const line of (this.#read('modules.dep') ?? '').split('\n')) {
        const colon = line.indexOf(':');
        if (colon <= 0) continue;
        const mod = pathToModname(line.slice(0, colon));
        if (mod !== undefined && !this.#dep.has(mod)) this.#dep.set(mod, line);
      }
    }
    return this.#dep.get(name);
  }


  /**
   * The `alias KEY VALUE` lines of an alias-style index as kmod's `-c` dumps its `.bin`: keys in
   * byte order, each key's values by priority (depmod's module order).
   * @param file `modules.alias` or `modules.symbols`
   * @returns the lines, without newlines
   * @example idx.dumpIndex('modules.alias')[0] // 'alias acpi*:ACPI0001:* acpi_...'
   */
  dumpIndex(file: 'modules.alias' | 'modules.symbols'): string[] {
    const bin = this.#bin(file);
    if (bin) return Array.from(bin.entries(), ([k, v]) => `alias ${k} ${v}`);
    const entries = this.#parseAliasFile(file, 'alias ');
    entries.sort((a, b) => (a.pattern < b.pattern ? -1 : a.pattern > b.pattern ? 1 : a.rank - b.rank || b.order - a.order));
    return entries.map((e) => `alias ${e.pattern} ${e.module}`);
  }

  /**
   * Whether modules.builtin lists the module.
   * @param name a normalized module name
   */
  isBuiltin(name: string): boolean {
    const bin = this.#bin('modules.builtin');
    if (bin) return bin.lookup(name) !== undefined;
    if (this.#builtin === undefined) {
      this.#builtin = new Set();
      for (const line of (this.#read('modules.builtin') ?? '').split('\n')) {
        const m = line.trim() === '' ? undefined : pathToModname(line.trim());
        if (m !== undefined) this.#builtin.add(m);
      }
    }
    return this.#builtin.has(name);
  }

  /**
   * The `.modinfo` of a built-in module, from modules.builtin.modinfo (`name.key=value`
   * strings): the first run of strings for that name, as kmod's builtin iterator finds it.
   * Keys and values are latin1 byte strings (`Buffer.from(v, 'latin1')` gives the bytes).
   * @param name a normalized module name
   * @returns the pairs; `undefined` when the module is not in the file; `null` when there is no
   *   file (an old kernel: kmod then prints nothing more)
   */
  builtinModinfo(name: string): Array<[string, string]> | undefined | null {
    if (this.#builtinModinfo === undefined) this.#loadBuiltinModinfo();
    if (this.#builtinModinfo === null) return null;
    return this.#builtinModinfo!.get(name);
  }

  #loadBuiltinModinfo(): void {
    // latin1: the values are module text, kept byte for byte
    const text = this.#read('modules.builtin.modinfo', 'latin1');
    if (text === undefined) {
      this.#builtinModinfo = null;
      this.#builtinAliases = trieOf([]);
      return;
    }
    const map = new Map<string, Array<[string, string]>>();
    const aliases: AliasEntry[] = [];
    let current: string | undefined;
    let list: Array<[string, string]> | undefined;
    for (const s of text.split('\0')) {
      if (s === '') continue;
      const dot = s.indexOf('.');
      if (dot <= 0) continue;
      const mod = s.slice(0, dot);
      const kv = s.slice(dot + 1);
      const eq = kv.indexOf('=');
      const pair: [string, string] = eq === -1 ? [kv, ''] : [kv.slice(0, eq), kv.slice(eq + 1)];
      if (mod !== current) {
        current = mod;
        // only the first run of a name counts (kmod stops at the first match)
        list = map.has(mod) ? undefined : [];
        if (list) map.set(mod, list);
      }
      list?.push(pair);
      if (pair[0] === 'alias') {
        const norm = aliasNormalize(pair[1]);
        if (norm !== undefined) aliases.push({ pattern: norm, module: mod, rank: 0, order: aliases.length });
      }
    }
    this.#builtinModinfo = map;
    this.#builtinAliases = trieOf(aliases);
  }

  /**
   * Every module name modules.dep and modules.builtin list (for completion), sorted.
   * @returns normalized names
   * @example new ModuleDb('/lib/modules/6.1.0-18-amd64').names().includes('vfat') // true
   */
  names(): string[] {
    this.modulePath('');
    this.isBuiltin('');
    return [...new Set([...this.#dep!.keys(), ...this.#builtin!])].sort();
  }

  /**
   * The aliases of modules.alias that a person types as they are, without wildcards
   * (`fs-vfat`, `char-major-10-229`), spelled as the file has them, sorted (for completion).
   * @returns the aliases
   * @example new ModuleDb('/lib/modules/6.1.0-18-amd64').plainAliases().includes('fs-vfat') // true
   */
  plainAliases(): string[] {
    const out = new Set<string>();
    for (const line of (this.#read('modules.alias') ?? '').split('\n')) {
      const f = line.split(' ');
      if (f.length === 3 && f[0] === 'alias' && !/[*?[\]]/.test(f[1])) out.add(f[1]);
    }
    return [...out].sort();
  }

  /**
   * Modules whose modules.alias pattern matches, in depmod's module order (kmod's priority), one
   * entry per matching alias line (kmod lists a module once per match, too).
   * @param alias a normalized alias
   */
  lookupAlias(alias: string): string[] {
    const bin = this.#bin('modules.alias');
    if (bin) return bin.searchWild(alias).map((v) => v.value);
    if (this.#aliases === undefined) this.#aliases = trieOf(this.#parseAliasFile('modules.alias', 'alias '));
    return this.#aliases.search(alias).map((e) => e.module);
  }

  /**
   * Modules exporting a symbol, from modules.symbols (keys look like `symbol:NAME`).
   * @param key e.g. `symbol:printk`
   */
  lookupSymbol(key: string): string[] {
    const bin = this.#bin('modules.symbols');
    if (bin) return bin.searchWild(key).map((v) => v.value);
    if (this.#symbols === undefined) this.#symbols = trieOf(this.#parseAliasFile('modules.symbols', 'alias '));
    return this.#symbols.search(key).map((e) => e.module);
  }

  /**
   * Built-in modules with a matching alias (modules.builtin.modinfo `alias=` entries).
   * @param alias a normalized alias
   */
  lookupBuiltinAlias(alias: string): string[] {
    const bin = this.#bin('modules.builtin.alias');
    if (bin) return bin.searchWild(alias).map((v) => v.value);
    if (this.#builtinAliases === undefined) this.#loadBuiltinModinfo();
    return this.#builtinAliases!.search(alias).map((e) => e.module);
  }

  /**
   * kmod's `kmod_module_new_from_lookup` (without modprobe.d's aliases and commands): an existing
   * regular file with a module extension is that file; with `asName` a module name (modules.dep,
   * then modules.builtin, then built-in aliases); otherwise an alias, tried against a
   * modules.dep name, modules.symbols, modules.alias, modules.builtin and built-in aliases, and
   * the first that matches wins.
   * @param arg a module file, name or alias
   * @param opts `asName` (modinfo `-m`), `cwd` for a relative file name (default `process.cwd()`)
   * @returns the modules, in kmod's order (an alias may match several, or one module several times)
   * @throws {LookupError} `not-found`, `name-not-found` or `bad-alias`
   * @example db.lookup('pci:v00008086d00001234sv*sd*bc*sc*i*') // [{ name: 'e1000e', path: '/lib/modules/.../e1000e.ko', fromPath: false }]
   */
  lookup(arg: string, opts: { asName?: boolean; cwd?: string } = {}): ModuleRef[] {
    const named = (name: string): ModuleRef => ({ name, path: this.modulePath(name), fromPath: false });
    if (opts.asName) {
      const name = modnameNormalize(arg);
      if (this.modulePath(name) !== undefined || this.isBuiltin(name)) return [named(name)];
      const b = this.lookupBuiltinAlias(name);
      if (b.length > 0) return [named(b[0])];
      throw new LookupError('name-not-found', arg);
    }
    if (isModuleFilename(arg)) {
      const name = pathToModname(arg);
      if (name !== undefined) return [{ name, path: absolutePath(arg, opts.cwd), fromPath: true }];
    }
    const alias = aliasNormalize(arg);
    if (alias === undefined) throw new LookupError('bad-alias', arg);
    if (!alias.includes(':') && this.modulePath(alias) !== undefined) return [named(alias)];
    for (const found of [this.lookupSymbol(alias), this.lookupAlias(alias)]) {
      if (found.length > 0) return found.map(named);
    }
    if (this.isBuiltin(alias)) return [named(alias)];
    const builtinAliases = this.lookupBuiltinAlias(alias);
    if (builtinAliases.length > 0) return builtinAliases.map(named);
    throw new LookupError('not-found', arg);
  }

  #parseAliasFile(file: string, prefix: string): AliasEntry[] {
    const out: AliasEntry[] = [];
    const ranks = new Map<string, number>();
    for (const line of (this.#read(file) ?? '').split('\n')) {
      if (!line.startsWith(prefix)) continue;
      const rest = line.slice(prefix.length);
      const sp = rest.lastIndexOf(' ');
      if (sp <= 0) continue;
      const module = rest.slice(sp + 1);
      const pattern = aliasNormalize(rest.slice(0, sp));
      if (pattern === undefined) continue;
      let rank = ranks.get(module);
      if (rank === undefined) {
        rank = ranks.size;
        ranks.set(module, rank);
      }
      out.push({ pattern, module, rank, order: out.length });
    }
    return out;
  }
}

/** A node of depmod's index: a radix tree whose edges are single characters. */
interface TrieNode {
  prefix: string;
  children: Map<string, TrieNode>;
  values: AliasEntry[];
}

/**
 * depmod's alias index (`modules.alias.bin`) rebuilt from the text file, and libkmod's
 * `index_searchwild` run over it. The walk is reproduced rather than a plain "every pattern that
 * fnmatches" because its quirks show in modinfo's output: a key that itself contains `*`, `?` or
 * `[` reaches a module both through the wildcard branch and literally, and kmod then lists that
 * module twice.
 */
class AliasTrie {
  readonly root: TrieNode = { prefix: '', children: new Map(), values: [] };

  /** depmod's `index_insert`: split a node where the key leaves its prefix. */
  insert(key: string, v: AliasEntry): void {
    let node = this.root;
    let i = 0;
    for (;;) {
      let j = 0;
      while (j < node.prefix.length && node.prefix[j] === key[i + j]) j++;
      if (j < node.prefix.length) {
        const tail: TrieNode = { prefix: node.prefix.slice(j + 1), children: node.children, values: node.values };
        node.children = new Map([[node.prefix[j], tail]]);
        node.values = [];
        node.prefix = node.prefix.slice(0, j);
      }
      i += j;
      if (i >= key.length) {
        addValue(node.values, v);
        return;
      }
      const child = node.children.get(key[i]);
      if (!child) {
        node.children.set(key[i], { prefix: key.slice(i + 1), children: new Map(), values: [v] });
        return;
      }
      node = child;
      i++;
    }
  }

  /** libkmod's `index_searchwild`. */
  search(key: string): AliasEntry[] {
    const out: AliasEntry[] = [];
    const all = (node: TrieNode, j: number, buf: string, subkey: string) => {
      buf += node.prefix.slice(j);
      for (const ch of [...node.children.keys()].sort()) all(node.children.get(ch)!, 0, buf + ch, subkey);
      if (node.values.length > 0 && fnmatch(buf, subkey)) for (const v of node.values) addValue(out, v);
    };
    let node: TrieNode | undefined = this.root;
    let i = 0;
    while (node) {
      let j = 0;
      for (; j < node.prefix.length; j++) {
        const ch = node.prefix[j];
        if (ch === '*' || ch === '?' || ch === '[') {
          all(node, j, '', key.slice(i + j));
          return out;
        }
        if (ch !== key[i + j]) return out;
      }
      i += j;
      for (const w of ['*', '?', '[']) {
        const child = node.children.get(w);
        if (child) all(child, 0, w, key.slice(i));
      }
      if (i >= key.length) {
        for (const v of node.values) addValue(out, v);
        return out;
      }
      node = node.children.get(key[i]);
      i++;
    }
    return out;
  }
}

/** libkmod's `add_value`: keep ascending priority; an equal priority goes before its peers. */
function addValue(list: AliasEntry[], v: AliasEntry): void {
  let i = 0;
  while (i < list.length && list[i].rank < v.rank) i++;
  list.splice(i, 0, v);
}

function trieOf(entries: readonly AliasEntry[]): AliasTrie {
  const t = new AliasTrie();
  for (const e of entries) t.insert(e.pattern, e);
  // depmod writes each node's values as add_value left them and libkmod reads them back through
  // add_value again, so equal priorities end up in insertion order: restore that
  const fix = (n: TrieNode) => {
    n.values = [...n.values].sort((a, b) => a.rank - b.rank || a.order - b.order);
    for (const c of n.children.values()) fix(c);
  };
  fix(t.root);
  return t;
}

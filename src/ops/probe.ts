/**
 * modprobe's engine: kmod 34.2's name resolution (`kmod_module_new_from_lookup`), probe list
 * (`kmod_module_probe_insert_module`) and removal (`rmmod_do_module`), reproduced with their
 * quirks, over one module directory and one modprobe.d configuration.
 *
 * Module objects are pooled by key like libkmod's: `name` for a module found by name or path,
 * `name\alias` for one found through an alias. The split shows in the output (an alias object and
 * a name object for the same module are both printed), so it is kept.
 *
 * Nothing here prints or exits: what kmod would show goes to {@link ProbeHooks.onAction}, what it
 * would report to {@link ProbeHooks.onEvent} (the caller words it; modprobe's FATAL reports may
 * throw from there to stop, as kmod exits).
 *
 * @module
 */
import { createRequire } from 'node:module';
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { Errno } from '../kernel/errno.js';
import { ModuleDb } from '../db/module-db.js';
import { aliasNormalize, fnmatch, modnameNormalize, pathToModname } from '../db/names.js';
import { readdirInOrder, readModuleInitstate, readModuleSysfs } from '../kernel/sysfs.js';
import { O_NONBLOCK, O_TRUNC, type Syscalls } from '../kernel/syscalls.js';
import type { ModprobeConfig } from '../db/modprobe-config.js';

/**
 * One module object, libkmod's `struct kmod_module` as modprobe uses it: lazily filled path,
 * dependencies, commands and options, and the probe list's marks.
 * @example new ModprobeContext({ dirname, config }).fromName('vfat').name // 'vfat'
 */
export class ProbeModule {
  path: string | undefined;
  depInit = false;
  deps: ProbeModule[] = [];
  builtin: boolean | undefined;
  installInit = false;
  install: string | undefined;
  removeInit = false;
  remove: string | undefined;
  optionsInit = false;
  options: string | undefined;
  visited = false;
  required = false;
  ignorecmd = false;
  /**
   * @param name the module name
   * @param alias the alias it was found through (config pattern, or the looked-up alias)
   */
  constructor(
    readonly name: string,
    readonly alias: string | undefined,
  ) {}
}

/** A line `--show-depends`, `-n -v` or `-v` prints. */
export type ProbeAction =
  | { readonly kind: 'insmod'; readonly module: string; readonly path: string; readonly options: string }
  | { readonly kind: 'install'; readonly module: string; readonly command: string; readonly options: string }
  | { readonly kind: 'builtin'; readonly module: string }
  | { readonly kind: 'rmmod'; readonly module: string }
  | { readonly kind: 'remove'; readonly module: string; readonly command: string };

/**
 * What kmod reports along the way. `level` is kmod's: `fatal` is modprobe's own `LOG()` (FATAL,
 * or WARNING under `-a`, and then processing goes on), `error` libkmod's or modprobe's ERR,
 * `info` libkmod's INFO.
 */
export type ProbeEvent =
  | { readonly level: 'error'; readonly kind: 'dep-missing'; readonly path: string; readonly errno: number }
  | { readonly level: 'error'; readonly kind: 'dep-lookup-failed'; readonly name: string }
  | { readonly level: 'error'; readonly kind: 'no-path'; readonly module: string }
  | { readonly level: 'error'; readonly kind: 'command-failed'; readonly type: 'install'; readonly module: string; readonly command: string; readonly status: number }
  | { readonly level: 'error'; readonly kind: 'command-not-run'; readonly type: 'install'; readonly module: string; readonly command: string; readonly errno: number }
  | { readonly level: 'info'; readonly kind: 'insert-failed'; readonly path: string; readonly errno: number }
  | { readonly level: 'error'; readonly kind: 'decompress-failed'; readonly path: string; readonly format: string; readonly message: string }
  | { readonly level: 'error'; readonly kind: 'remove-failed'; readonly module: string; readonly errno: number }
  | { readonly level: 'error'; readonly kind: 'remove-wait-failed'; readonly module: string; readonly errno: number }
  | { readonly level: 'fatal'; readonly kind: 'remove-command-failed'; readonly module: string }
  | { readonly level: 'fatal'; readonly kind: 'not-in-kernel'; readonly module: string }
  | { readonly level: 'fatal'; readonly kind: 'is-builtin'; readonly module: string }
  | { readonly level: 'fatal'; readonly kind: 'in-use'; readonly module: string };

/** How to insert one module file: resolves to 0 or a negative errno. */
export type Inserter = (path: string, options: string, force: { modversion: boolean; vermagic: boolean }) => Promise<number>;

/** Runs an install/remove command; returns its exit status (kmod: `WEXITSTATUS(system(cmd))`), or a negative errno when it could not run. */
export type CommandRunner = (command: string, module: string) => number;

/** Callbacks of the engine. */
export interface ProbeHooks {
  /** a line to show (`--show-depends`, `-v`); absent = show nothing */
  onAction?: (action: ProbeAction) => void;
  /** a report; may throw to stop everything (modprobe's FATAL exits) */
  onEvent?: (event: ProbeEvent) => void;
  /** insert a file (default: nothing; the caller supplies the loader) */
  insert?: Inserter;
  /** run a command (default: `/bin/sh -c` with `MODPROBE_MODULE`) */
  runCommand?: CommandRunner;
}

/** modprobe's switches that shape probing and removal. */
export interface ProbeFlags {
  /** `-i`: ignore install/remove commands and the named module's softdeps */
  ignoreCommands?: boolean;
  /** `-D`: do not look at what is loaded */
  ignoreLoaded?: boolean;
  /** `-n`/`-D`: change nothing */
  dryRun?: boolean;
  /** `-b`: the blacklist applies to names too */
  useBlacklist?: boolean;
  /** `--first-time`: fail when already loaded / not loaded */
  firstTime?: boolean;
  /** `-f`/`--force-modversion` */
  forceModversion?: boolean;
  /** `-f`/`--force-vermagic` */
  forceVermagic?: boolean;
  /** `-f` with `-r`: `O_TRUNC` */
  force?: boolean;
  /** `--remove-holders` */
  removeHolders?: boolean;
  /** `-w MSEC` */
  waitMsec?: number;
}

/** Where a {@link ModprobeContext} reads. */
export interface ModprobeContextOptions {
  /** the module directory exactly as kmod forms it (absolute, not normalized): paths are printed from it */
  readonly dirname: string;
  /** the module database of that directory (default one over `dirname`) */
  readonly index?: ModuleDb;
  readonly config: ModprobeConfig;
  /** system root for `/sys/module` (default `/`) */
  readonly root?: string;
  /** syscall layer for removal */
  readonly sys?: Syscalls;
  /** environment for commands (default: the process's own, inherited) */
  readonly env?: Readonly<Record<string, string | undefined>>;
}

/** kmod's return of a probe stopped by the blacklist: a positive flag value, which modprobe maps to success. */
export const BLACKLISTED = 0x10000;

/**
 * The default command runner: `system(cmd)` with `MODPROBE_MODULE` set.
 * @param env the commands' environment; without one they inherit the process's own
 * @returns the runner
 */
export function shellRunner(env?: Readonly<Record<string, string | undefined>>): CommandRunner {
  return (command, module) => {
    // loaded on first use: node:child_process and the streams under it cost a dry run ~10 ms
    const { spawnSync } = createRequire(import.meta.url)('node:child_process') as typeof import('node:child_process');
    // without an environment of our own, the shell adds MODPROBE_MODULE to the one it inherits
    const r = env
      ? spawnSync('/bin/sh', ['-c', command], { stdio: 'inherit', env: { ...env, MODPROBE_MODULE: module } })
      : spawnSync('/bin/sh', ['-c', 'MODPROBE_MODULE=$1 exec /bin/sh -c "$2"', 'sh', module, command], { stdio: 'inherit' });
    if (r.error) return -(errnoOf(r.error) ?? Errno.ENOENT);
    // system() of a command killed by a signal has WEXITSTATUS 0
    return r.status ?? 0;
  };
}

/** glibc `$CMDLINE_OPTS` substitution as libkmod and modprobe do it (every occurrence, left to right). */
function substituteOpts(command: string, options: string): string {
  return command.split('$CMDLINE_OPTS').join(options);
}

/**
 * One modprobe run's view of a module directory and configuration: the module pool, look-ups,
 * probe lists, insertion and removal.
 * @example
 * const ctx = new ModprobeContext({ dirname: '/lib/modules/6.12.0', config });
 * for (const m of ctx.lookup('vfat')) ctx.probeList(m, false).map((x) => x.name); // ['fat', 'vfat']
 */
export class ModprobeContext {
  readonly dirname: string;
  readonly index: ModuleDb;
  readonly config: ModprobeConfig;
  readonly root: string;
  readonly sys: Syscalls | undefined;
  #pool = new Map<string, ProbeModule>();
  hooks: ProbeHooks = {};

  constructor(opts: ModprobeContextOptions) {
    this.dirname = opts.dirname;
    this.index = opts.index ?? new ModuleDb(opts.dirname, { bin: true });
    this.config = opts.config;
    this.root = opts.root ?? '/';
    this.sys = opts.sys;
  }

  #event(e: ProbeEvent): void {
    this.hooks.onEvent?.(e);
  }

  #get(key: string, name: string, alias: string | undefined): ProbeModule {
    let m = this.#pool.get(key);
    if (m === undefined) {
      m = new ProbeModule(name, alias);
      this.#pool.set(key, m);
    }
    return m;
  }

  /** `kmod_module_new_from_name` */
  fromName(name: string): ProbeModule {
    const n = modnameNormalize(name);
    return this.#get(n, n, undefined);
  }

  /** `kmod_module_new_from_alias` */
  fromAlias(alias: string, name: string): ProbeModule {
    return this.#get(`${name}\\${alias}`, name, alias);
  }

  /**
   * `kmod_module_new_from_path`: the file must exist.
   * @returns the module, or a negative errno
   */
  fromPath(path: string): ProbeModule | number {
    const abs = path.startsWith('/') ? path : `${process.cwd()}/${path}`;
    // existsSync is access(2), without a Stats object: the common case; stat for the errno
    if (!existsSync(abs)) {
      try {
        statSync(abs);
      } catch (e) {
        return -(errnoOf(e) ?? Errno.ENOENT);
      }
    }
    const name = pathToModname(path);
    if (name === undefined) return -Errno.ENOENT;
    const m = this.#get(name, name, undefined);
    if (m.path === undefined) m.path = abs;
    else if (m.path !== abs) return -Errno.EEXIST;
    m.builtin = false;
    return m;
  }

  /**
   * A context over the same directory, configuration and hooks with its own module pool (for
   * arguments worked on at the same time).
   */
  fork(): ModprobeContext {
    const c = new ModprobeContext({ dirname: this.dirname, index: this.index, config: this.config, root: this.root, sys: this.sys });
    c.hooks = this.hooks;
    return c;
  }

  /** Forget every module object (kmod frees them when a top-level argument is done). */
  reset(): void {
    this.#pool.clear();
  }

  /** `kmod_module_parse_depline`: the path, then the dependencies in reverse order. */
  #parseDepline(m: ProbeModule, line: string): void {
    if (m.depInit) return;
    m.depInit = true;
    const colon = line.indexOf(':');
    if (colon === -1) return;
    const prefix = `${this.dirname}/`;
    const join = (p: string) => (p.startsWith('/') ? p : prefix + p);
    if (m.path === undefined) m.path = join(line.slice(0, colon));
    const deps: ProbeModule[] = [];
    for (const word of line.slice(colon + 1).split(/[ \t]+/)) {
      if (word === '') continue;
      const path = join(word);
      const d = this.fromPath(path);
      if (typeof d === 'number') {
        this.#event({ level: 'error', kind: 'dep-missing', path, errno: -d });
        m.depInit = false;
        return;
      }
      deps.unshift(d);
    }
    m.deps = deps;
  }

  /** `kmod_module_get_dependencies`: modules.dep order reversed (the parse prepends). */
  dependencies(m: ProbeModule): ProbeModule[] {
    if (!m.depInit) {
      const line = this.index.depLine(m.name);
      if (line !== undefined) this.#parseDepline(m, line);
    }
    return m.deps;
  }

  /** `kmod_module_get_path` */
  path(m: ProbeModule): string | undefined {
    if (m.path !== undefined) return m.path;
    if (m.depInit) return undefined;
    this.dependencies(m);
    return m.path;
  }

  /** `kmod_module_is_builtin`, per the directory's modules.builtin. */
  isBuiltin(m: ProbeModule): boolean {
    if (m.builtin === undefined) m.builtin = this.index.isBuiltin(m.name);
    return m.builtin;
  }

  /** `kmod_module_get_initstate`: `builtin`, `live`, `coming`, `going`, or undefined (not loaded). */
  initstate(m: ProbeModule): 'builtin' | 'live' | 'coming' | 'going' | undefined {
    if (this.isBuiltin(m)) return 'builtin';
    // most modules a probe considers are not loaded: access(2) answers that without the thrown
    // (and collected) error of a failed open, which cost a 5,000-name batch most of its time
    const dir = join(this.root, 'sys/module', m.name);
    if (!existsSync(dir)) return undefined;
    const s = readModuleInitstate(m.name, this.root);
    if (s === 'live' || s === 'coming' || s === 'going') return s;
    if (s !== undefined) return undefined;
    // a directory without initstate: a module still coming (kmod's reading)
    return statSync(dir, { throwIfNoEntry: false })?.isDirectory() ? 'coming' : undefined;
  }

  #inKernel(m: ProbeModule): boolean {
    const s = this.initstate(m);
    return s === 'live' || s === 'builtin';
  }

  /**
   * `kmod_module_new_from_lookup`: the seven look-ups, the first that finds anything wins.
   * @param given a module name, alias, `symbol:NAME` or modalias
   * @returns the modules, or undefined for an invalid alias (unbalanced brackets)
   */
  lookup(given: string): ProbeModule[] | undefined {
    const name = aliasNormalize(given);
    if (name === undefined) return undefined;
    const found: ProbeModule[] = [];
    for (const a of this.config.aliases) if (fnmatch(a.pattern, name)) found.push(this.fromAlias(a.pattern, a.module));
    if (found.length) return found;
    if (!name.includes(':')) {
      const line = this.index.depLine(name);
      if (line !== undefined) {
        const m = this.fromName(name);
        this.#parseDepline(m, line);
        return [m];
      }
    }
    if (name.startsWith('symbol:')) {
      for (const real of this.index.lookupSymbol(name)) found.push(this.fromAlias(name, real));
      if (found.length) return found;
    }
    const install = this.config.install.find((c) => c.module === name);
    if (install) {
      const m = this.fromName(install.module);
      m.installInit = true;
      m.install = install.command;
      return [m];
    }
    const remove = this.config.remove.find((c) => c.module === name);
    if (remove) {
      const m = this.fromName(remove.module);
      m.removeInit = true;
      m.remove = remove.command;
      return [m];
    }
    for (const real of this.index.lookupAlias(name)) found.push(this.fromAlias(name, real));
    if (found.length) return found;
    if (this.index.isBuiltin(name)) {
      const m = this.fromName(name);
      m.builtin = true;
      return [m];
    }
    for (const real of this.index.lookupBuiltinAlias(name)) {
      const m = this.fromAlias(name, real);
      m.builtin = true;
      found.push(m);
    }
    return found;
  }

  /** `lookup_dep`: every result of every name, unresolvable ones skipped. */
  #lookupDeps(names: readonly string[]): ProbeModule[] {
    const out: ProbeModule[] = [];
    for (const n of names) {
      const r = this.lookup(n);
      if (r === undefined) this.#event({ level: 'error', kind: 'dep-lookup-failed', name: n });
      else out.push(...r);
    }
    return out;
  }

  /** `kmod_module_get_softdeps`: the first matching `softdep` line only. */
  softdeps(m: ProbeModule): { pre: ProbeModule[]; post: ProbeModule[] } {
    const s = this.config.softdeps.find((d) => fnmatch(d.module, m.name));
    if (s === undefined) return { pre: [], post: [] };
    return { pre: this.#lookupDeps(s.pre), post: this.#lookupDeps(s.post) };
  }

  /** `kmod_module_get_install_commands`: the first `install` whose glob matches the name. */
  installCommand(m: ProbeModule): string | undefined {
    if (!m.installInit) {
      m.install = this.config.install.find((c) => fnmatch(c.module, m.name))?.command;
      m.installInit = true;
    }
    return m.install;
  }

  /** `kmod_module_get_remove_commands` */
  removeCommand(m: ProbeModule): string | undefined {
    if (!m.removeInit) {
      m.remove = this.config.remove.find((c) => fnmatch(c.module, m.name))?.command;
      m.removeInit = true;
    }
    return m.remove;
  }

  /** `kmod_module_get_options`: every `options` line for the name or the alias, joined. */
  options(m: ProbeModule): string | undefined {
    if (!m.optionsInit) {
      const parts = this.config.options.filter((o) => (o.module === m.name || (m.alias !== undefined && o.module === m.alias)) && o.options !== '');
      m.options = parts.length ? parts.map((o) => o.options).join(' ') : undefined;
      m.optionsInit = true;
    }
    return m.options;
  }

  /** Whether `blacklist` names the module. */
  isBlacklisted(m: ProbeModule): boolean {
    return this.config.blacklist.includes(m.name);
  }

  #fillSoftdep(m: ProbeModule, list: ProbeModule[]): void {
    const { pre, post } = this.softdeps(m);
    for (const p of pre) this.#probeList(p, false, false, list);
    list.push(m);
    m.ignorecmd = pre.length > 0 || post.length > 0;
    for (const p of post) this.#probeList(p, false, false, list);
  }

  #probeList(m: ProbeModule, required: boolean, ignorecmd: boolean, list: ProbeModule[]): void {
    if (m.visited) return;
    m.visited = true;
    const deps = this.dependencies(m);
    if (required) {
      m.required = true;
      for (const d of deps) d.required = true;
    }
    for (const d of deps) this.#fillSoftdep(d, list);
    if (ignorecmd) {
      list.push(m);
      m.ignorecmd = true;
    } else this.#fillSoftdep(m, list);
  }

  /**
   * `kmod_module_get_probe_list`: dependencies (reversed), softdeps around each, the module; the
   * same module may appear more than once.
   * @param m the module asked for
   * @param ignoreCommands `-i`
   * @returns the list to insert in order
   */
  probeList(m: ProbeModule, ignoreCommands: boolean): ProbeModule[] {
    for (const x of this.#pool.values()) {
      x.visited = false;
      x.required = false;
    }
    const list: ProbeModule[] = [];
    this.#probeList(m, true, ignoreCommands, list);
    return list;
  }

  /** The action an item of a probe list stands for, as kmod's `print_action` shows it (or nothing). */
  action(m: ProbeModule, top: ProbeModule, extra: string | undefined): ProbeAction | undefined {
    const options = concatOptions(this.options(m), m === top ? extra : undefined) ?? '';
    const cmd = this.installCommand(m);
    if (cmd !== undefined && !m.ignorecmd) return { kind: 'install', module: m.name, command: cmd, options };
    const path = this.path(m);
    if (path !== undefined) return { kind: 'insmod', module: m.name, path, options };
    if (this.initstate(m) === 'builtin') return { kind: 'builtin', module: m.name };
    return undefined;
  }

  /**
   * `kmod_module_probe_insert_module` as modprobe calls it.
   * @param m the module (one look-up result)
   * @param flags modprobe's switches
   * @param extra the command line's module parameters (for `m` only)
   * @returns 0, {@link BLACKLISTED}, or a negative errno (kmod's `err`)
   */
  async probe(m: ProbeModule, flags: ProbeFlags, extra?: string): Promise<number> {
    if (!flags.ignoreLoaded && this.#inKernel(m)) return flags.firstTime ? -Errno.EEXIST : 0;
    if (this.isBlacklisted(m) && (m.alias !== undefined || flags.useBlacklist)) return BLACKLISTED;
    const list = this.probeList(m, Boolean(flags.ignoreCommands));
    let err = 0;
    for (const item of list) {
      err = await this.#insertItem(item, m, flags, extra);
      if (err === -Errno.EEXIST && item === m && flags.firstTime) break;
      if (err === -Errno.EEXIST || !item.required) err = 0;
      else if (err < 0) break;
    }
    return err;
  }

  async #insertItem(item: ProbeModule, top: ProbeModule, flags: ProbeFlags, extra: string | undefined): Promise<number> {
    if (!flags.ignoreLoaded && this.#inKernel(item)) return -Errno.EEXIST;
    const options = concatOptions(this.options(item), item === top ? extra : undefined);
    const cmd = this.installCommand(item);
    if (cmd !== undefined && !item.ignorecmd) {
      this.hooks.onAction?.({ kind: 'install', module: item.name, command: cmd, options: options ?? '' });
      if (flags.dryRun) return 0;
      return this.#runInstall(item, substituteOpts(cmd, options ?? ''));
    }
    const path = this.path(item);
    if (this.hooks.onAction) {
      if (path !== undefined) this.hooks.onAction({ kind: 'insmod', module: item.name, path, options: options ?? '' });
      else if (this.initstate(item) === 'builtin') this.hooks.onAction({ kind: 'builtin', module: item.name });
    }
    if (flags.dryRun) return 0;
    if (path === undefined) {
      this.#event({ level: 'error', kind: 'no-path', module: item.name });
      return -Errno.ENOENT;
    }
    const insert = this.hooks.insert;
    if (insert === undefined) return -Errno.ENOSYS;
    const err = await insert(path, options ?? '', { modversion: Boolean(flags.forceModversion), vermagic: Boolean(flags.forceVermagic) });
    if (err < 0) this.#event({ level: 'info', kind: 'insert-failed', path, errno: -err });
    return err;
  }

  #runInstall(m: ProbeModule, command: string): number {
    const run = this.hooks.runCommand ?? shellRunner();
    const status = run(command, m.name);
    if (status < 0) {
      this.#event({ level: 'error', kind: 'command-not-run', type: 'install', module: m.name, command, errno: -status });
      return -Errno.EINVAL;
    }
    if (status !== 0) {
      this.#event({ level: 'error', kind: 'command-failed', type: 'install', module: m.name, command, status });
      return -Errno.EINVAL;
    }
    return 0;
  }

  /** `kmod_module_get_refcnt` (negative errno when unreadable) */
  #refcnt(m: ProbeModule): number {
    return readModuleSysfs(m.name, this.root).refcnt ?? -Errno.ENOENT;
  }

  /** `kmod_module_get_holders` */
  #holders(m: ProbeModule): ProbeModule[] {
    return (readdirInOrder(join(this.root, 'sys/module', m.name, 'holders')) ?? []).map((h) => this.fromName(h));
  }

  #removeList(list: readonly ProbeModule[], flags: ProbeFlags, stopOnErrors: boolean): number {
    for (let i = list.length - 1; i >= 0; i--) {
      const r = this.remove(list[i], flags, { ignoreBuiltin: true });
      if (r < 0 && stopOnErrors) return r;
    }
    return 0;
  }

  /** modprobe's `rmmod_do_remove_module`: `delete_module`, with `-w`'s backoff on EAGAIN. */
  #deleteModule(m: ProbeModule, flags: ProbeFlags): number {
    this.hooks.onAction?.({ kind: 'rmmod', module: m.name });
    if (flags.dryRun) return 0;
    const sys = this.sys;
    if (sys === undefined) return -Errno.ENOSYS;
    const wait = flags.waitMsec ?? 0;
    let t0 = 0;
    let tend = 0;
    let interval = 0;
    let err: number;
    for (;;) {
      err = 0;
      try {
        sys.deleteModule(m.name, O_NONBLOCK | (flags.force ? O_TRUNC : 0));
      } catch (e) {
        err = -(errnoOf(e) ?? Errno.EIO);
        if (!wait) this.#event({ level: 'error', kind: 'remove-failed', module: m.name, errno: -err });
      }
      // kmod maps a vanished module (ENOENT from the kernel) through EEXIST checks on its side
      if (err === -Errno.EEXIST) {
        if (!flags.firstTime) err = 0;
        else this.#event({ level: 'fatal', kind: 'not-in-kernel', module: m.name });
        break;
      }
      if (err === -Errno.EAGAIN && wait) {
        const now = Date.now();
        if (!t0) {
          t0 = now;
          tend = t0 + wait;
          interval = 0;
        }
        interval = interval ? interval * 2 : 1;
        while (now + interval > tend && interval > 0) interval >>= 1;
        if (!interval && tend > now) interval = tend - now;
        if (!interval) break;
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, interval);
        continue;
      }
      break;
    }
    if (err < 0 && wait) this.#event({ level: 'error', kind: 'remove-wait-failed', module: m.name, errno: -err });
    return err;
  }

  /**
   * modprobe's `rmmod_do_module`: post-softdeps, holders (`--remove-holders`), the module (or its
   * `remove` command), dependencies left unused, pre-softdeps.
   * @param m the module
   * @param flags modprobe's switches
   * @param opts `ignoreBuiltin` for dependencies and holders (a builtin is then not an error)
   * @returns 0 or a negative errno
   */
  remove(m: ProbeModule, flags: ProbeFlags, opts: { ignoreBuiltin?: boolean } = {}): number {
    let pre: ProbeModule[] = [];
    let post: ProbeModule[] = [];
    let cmd: string | undefined;
    if (!flags.ignoreCommands) {
      ({ pre, post } = this.softdeps(m));
      cmd = this.removeCommand(m);
    }
    if (cmd === undefined && !flags.ignoreLoaded) {
      const state = this.initstate(m);
      if (state === undefined) {
        if (flags.firstTime) {
          this.#event({ level: 'fatal', kind: 'not-in-kernel', module: m.name });
          return -Errno.ENOENT;
        }
        return 0;
      }
      if (state === 'builtin') {
        if (opts.ignoreBuiltin) return 0;
        this.#event({ level: 'fatal', kind: 'is-builtin', module: m.name });
        return -Errno.ENOENT;
      }
    }
    this.#removeList(post, flags, false);
    if (flags.removeHolders) {
      const err = this.#removeList(this.#holders(m), flags, true);
      if (err < 0) return err;
    }
    if (cmd === undefined && !flags.ignoreLoaded && !flags.waitMsec) {
      if (this.#refcnt(m) > 0) {
        this.#event({ level: 'fatal', kind: 'in-use', module: m.name });
        return -Errno.EBUSY;
      }
    }
    let err: number;
    if (cmd === undefined) err = this.#deleteModule(m, flags);
    else {
      const command = substituteOpts(cmd, '');
      this.hooks.onAction?.({ kind: 'remove', module: m.name, command });
      err = 0;
      if (!flags.dryRun) {
        const status = (this.hooks.runCommand ?? shellRunner())(command, m.name);
        if (status !== 0) {
          this.#event({ level: 'fatal', kind: 'remove-command-failed', module: m.name });
          err = status < 0 ? status : -status;
        }
      }
    }
    if (err < 0) return err;
    if (cmd === undefined) {
      for (const d of [...this.dependencies(m)]) if (this.#refcnt(d) === 0) this.#deleteModule(d, flags);
    }
    this.#removeList(pre, flags, false);
    return err;
  }
}

/**
 * libkmod's `module_options_concat`: undefined when both are empty, else `opt + ' ' + xopt` (a
 * trailing space when only config options exist).
 * @param opt the configuration's options
 * @param xopt the command line's parameters
 * @returns the parameter string
 * @example concatOptions('utf8=1', undefined) // 'utf8=1 '
 */
export function concatOptions(opt: string | undefined, xopt: string | undefined): string | undefined {
  if (!opt && !xopt) return undefined;
  return `${opt !== undefined ? `${opt} ` : ''}${xopt ?? ''}`;
}

function errnoOf(e: unknown): number | undefined {
  const x = e as { errno?: unknown; code?: unknown };
  if (typeof x?.errno === 'number') return Math.abs(x.errno);
  return undefined;
}

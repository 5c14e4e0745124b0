/**
 * Running probes: the library's `probeModule` / `removeProbed` / `resolveModule`, the insmod core
 * as modprobe's inserter, and `-a -j N` (a kmod-ts extension): several arguments' probe lists
 * worked on at once, each list in kmod's order.
 *
 * @module
 */
import { statSync } from 'node:fs';
import { ModuleFileError, ProbeError, type ProbeErrorKind } from '../errors.js';
import { readModprobeConfig } from '../db/modprobe-config.js';
import { absolutePath, modulesDir } from '../db/module-db.js';
import { KmodElf, type ExportedSymbol } from '../file/elf/symbols.js';
import { Errno } from '../kernel/errno.js';
import { nativeSyscalls, type Syscalls } from '../kernel/syscalls.js';
import type { LoadOptions } from './load-module.js';
import { joinModuleArgs } from './params.js';
import {
  BLACKLISTED,
  ModprobeContext,
  shellRunner,
  type CommandRunner,
  type Inserter,
  type ProbeAction,
  type ProbeEvent,
  type ProbeFlags,
  type ProbeHooks,
  type ProbeModule,
} from './probe.js';

/**
 * The insmod core (`loadModule`: in-kernel decompression, mmap, userspace decompression) as a
 * probe inserter, loaded on first use so that dry runs never pay for it.
 * @param opts root (for `/sys/module/compression`), syscall layer, and the loading choices
 *   (`path`, `maxSize`, `xz`: the CLI's `KMOD_TS_*` variables)
 * @returns an inserter resolving to 0 or a negative errno
 * @example const insert = moduleInserter({ root: '/', sys: nativeSyscalls() });
 */
export function moduleInserter(opts: {
  root: string;
  sys: Syscalls;
  /** the loader's choices (`path`, `maxSize`, `xz`: the CLI's `KMOD_TS_*` variables) */
  load?: Pick<LoadOptions, 'path' | 'maxSize' | 'xz'>;
  /** receives the codec's words when a file does not decompress (kmod's `xz: File is corrupt`) */
  report?: (e: ProbeEvent) => void;
  /**
   * make the module syscalls on libuv's thread pool (`-j N`): this thread looks up and starts
   * other insertions while the kernel works ({@link LoadOptions.concurrent})
   */
  concurrent?: boolean;
}): Inserter {
  return async (path, options, force) => {
    const { loadModule } = await import('./load-module.js');
    try {
      await loadModule(path, {
        ...opts.load,
        params: options,
        forceModversion: force.modversion,
        forceVermagic: force.vermagic,
        root: opts.root,
        sys: opts.sys,
        concurrent: opts.concurrent,
      });
      return 0;
    } catch (e) {
      return -kmodFileErrno(e, path, opts.report);
    }
  };
}

/**
 * The errno libkmod's `kmod_file` gives for a file it cannot take: EINVAL for one shorter than
 * its 6 magic bytes and for a compressed file that does not decompress (after reporting the
 * codec's words); otherwise the error's own errno.
 */
function kmodFileErrno(e: unknown, path: string, report: ((e: ProbeEvent) => void) | undefined): number {
  if (e instanceof ModuleFileError) {
    if (e.kind === 'decompress') {
      report?.({ level: 'error', kind: 'decompress-failed', path, format: e.format ?? '', message: e.message });
      return Errno.EINVAL;
    }
    if (e.kind === 'too-short' || ((e.kind === 'bad-format' || e.kind === 'bad-elf') && (statSync(path, { throwIfNoEntry: false })?.size ?? 0) < 6)) return Errno.EINVAL;
  }
  const errno = (e as { errno?: unknown }).errno;
  if (typeof errno === 'number' && errno > 0) return errno;
  throw e;
}

/** What {@link runJobs} reports. */
export interface JobReports {
  /** a name that resolves to nothing (modprobe: WARNING under -a) */
  notFound(name: string): void;
  /** a path (`/…`, `./…`) that cannot be had (kmod: `Failed to get module from path`) */
  pathFailed(path: string, errno: number): void;
  /** a failed probe (modprobe's `could not insert`) */
  insertError(module: string, err: number): void;
}

/**
 * `modprobe -a -j N`: every argument looked up and probed as kmod does, up to `jobs` arguments
 * at a time. A module file already being inserted for another argument is waited for instead
 * of inserted twice, so a shared dependency is loaded once and before its users.
 * @param mp the modprobe context (its hooks insert and show)
 * @param names the arguments
 * @param flags modprobe's switches
 * @param jobs how many arguments at once
 * @param report the reports
 * @returns 0, or the last negative errno of a failed argument
 */
export async function runJobs(mp: ModprobeContext, names: readonly string[], flags: ProbeFlags, jobs: number, report: JobReports): Promise<number> {
  const insert = mp.hooks.insert;
  const inflight = new Map<string, Promise<number>>();
  if (insert) {
    mp.hooks.insert = (path, options, force) => {
      const running = inflight.get(path);
      // the other argument's insert decides; for this one the module is then "already loaded"
      if (running) return running.then((e) => (e === 0 ? -Errno.EEXIST : e));
      const p = insert(path, options, force);
      inflight.set(path, p);
      return p;
    };
  }
  let status = 0;
  let next = 0;
  const worker = async () => {
    while (next < names.length) {
      const name = names[next++];
      // each argument gets its own module pool, as kmod frees them between arguments
      const view = mp.fork();
      let list: ProbeModule[] | undefined;
      if (name.startsWith('/') || name.startsWith('./')) {
        // kmod 34: a path is that file (its dependencies still from modules.dep)
        const m = view.fromPath(name);
        if (typeof m === 'number') {
          report.pathFailed(name, -m);
          status = -Errno.ENOENT;
          continue;
        }
        list = [m];
      } else list = view.lookup(name);
      if (list === undefined || list.length === 0) {
        report.notFound(name);
        status = -Errno.ENOENT;
        continue;
      }
      let e = 0;
      for (const m of list) {
        e = await view.probe(m, flags);
        if (e === BLACKLISTED || e >= 0) e = 0;
        else report.insertError(m.name, e);
      }
      if (e < 0) status = e;
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(jobs, names.length)) }, worker));
  return status;
}

/** Options of {@link probeModule}, {@link removeProbed} and {@link resolveModule}. */
export interface ProbeOptions extends ProbeFlags {
  /** system root: `/sys/module`, `/proc/cmdline`, the default configuration directories (default `/`) */
  root?: string;
  /** kernel release (default the running kernel's) */
  kernelVersion?: string;
  /** the module directory (default `ROOT/lib/modules/KVER`) */
  moduleDir?: string;
  /** modprobe.d files or directories in place of kmod's default directories (`-C`) */
  config?: readonly string[];
  /** the kernel command line (default `ROOT/proc/cmdline`) */
  cmdline?: string;
  /** module parameters for the module asked for, added after the configuration's options */
  params?: string | readonly string[];
  /** syscall layer (default the real one) */
  sys?: Syscalls;
  /** environment for install/remove commands (default: the process's own, inherited) */
  env?: Readonly<Record<string, string | undefined>>;
  /** the loader's choices (`path`, `maxSize`, `xz`), as {@link loadModule} takes them */
  load?: Pick<LoadOptions, 'path' | 'maxSize' | 'xz'>;
  /** each action as it happens (what `modprobe -v` prints) */
  onAction?: (action: ProbeAction) => void;
  /** each report that is not an error (kmod's ERROR/INFO lines); errors are thrown */
  onEvent?: (event: ProbeEvent) => void;
  /** run install/remove commands (default `/bin/sh -c` with `MODPROBE_MODULE`) */
  runCommand?: CommandRunner;
}

/** One look-up result and what loading it takes. */
export interface ProbePlan {
  /** the module */
  readonly module: string;
  /** the alias it was found through, if any */
  readonly alias: string | undefined;
  /** the blacklist stops it (it was found through an alias, or `useBlacklist`) */
  readonly blacklisted: boolean;
  /** in order: what `modprobe --show-depends` prints for it */
  readonly actions: readonly ProbeAction[];
}

/** What {@link probeModule} did for one look-up result. */
export interface ProbeOutcome {
  readonly module: string;
  /** `loaded` (actions ran), `already-loaded` (live or built in; nothing ran), `blacklisted` */
  readonly status: 'loaded' | 'already-loaded' | 'blacklisted';
  /** what ran, in order */
  readonly actions: readonly ProbeAction[];
}

function contextOf(opts: ProbeOptions): ModprobeContext {
  const root = opts.root ?? '/';
  const abs = opts.moduleDir !== undefined ? absolutePath(opts.moduleDir) : modulesDir({ root, kernelVersion: opts.kernelVersion });
  const { config } = readModprobeConfig({ dirname: abs, paths: opts.config, root, cmdline: opts.cmdline });
  return new ModprobeContext({ dirname: abs, config, root, sys: opts.sys });
}

function paramsOf(p: ProbeOptions['params']): string | undefined {
  if (p === undefined) return undefined;
  const s = typeof p === 'string' ? p : joinModuleArgs(p);
  return s === '' ? undefined : s;
}

function lookupOrThrow(mp: ModprobeContext, name: string): ProbeModule[] {
  const list = mp.lookup(name);
  if (list === undefined || list.length === 0) throw new ProbeError('not-found', name);
  return list;
}

/**
 * Resolve a name, alias, `symbol:NAME` or modalias as `modprobe --show-depends` does, without
 * loading anything: one plan per module it resolves to.
 * @param nameOrAlias what to resolve
 * @param opts module directory, configuration, flags (`ignoreCommands`, `useBlacklist`), params
 * @returns the plans
 * @throws {ProbeError} `not-found`
 * @example resolveModule('vfat')[0].actions.map((a) => a.kind === 'insmod' && a.path)
 * // ['/lib/modules/6.12.0/kernel/fs/fat/fat.ko.xz', '/lib/modules/6.12.0/kernel/fs/fat/vfat.ko.xz']
 */
export function resolveModule(nameOrAlias: string, opts: ProbeOptions = {}): ProbePlan[] {
  const mp = contextOf(opts);
  const extra = paramsOf(opts.params);
  return lookupOrThrow(mp, nameOrAlias).map((m) => {
    const blacklisted = mp.isBlacklisted(m) && (m.alias !== undefined || Boolean(opts.useBlacklist));
    const actions = blacklisted ? [] : mp.probeList(m, Boolean(opts.ignoreCommands)).flatMap((x) => mp.action(x, m, extra) ?? []);
    return { module: m.name, alias: m.alias, blacklisted, actions };
  });
}

const REMOVAL_KINDS: Readonly<Record<string, ProbeErrorKind>> = {
  'not-in-kernel': 'not-in-kernel',
  'is-builtin': 'is-builtin',
  'in-use': 'in-use',
  'remove-command-failed': 'remove-command-failed',
};

function hooksOf(opts: ProbeOptions, actions: ProbeAction[]): ProbeHooks {
  const sys = opts.sys ?? nativeSyscalls();
  return {
    onAction: (a) => {
      actions.push(a);
      opts.onAction?.(a);
    },
    onEvent: (e) => {
      // modprobe's FATAL reports end the run; the library throws them
      if (e.level === 'fatal') throw new ProbeError(REMOVAL_KINDS[e.kind] ?? 'remove-failed', 'module' in e ? e.module : '');
      opts.onEvent?.(e);
    },
    insert: moduleInserter({ root: opts.root ?? '/', sys, load: opts.load, report: (e) => opts.onEvent?.(e) }),
    runCommand: opts.runCommand ?? shellRunner(opts.env),
  };
}

/**
 * Load a module by name, alias, `symbol:NAME` or modalias with its dependencies and softdeps,
 * modprobe.d's options, install commands and blacklist: what `modprobe NAME [params]` does.
 * @param nameOrAlias what to load
 * @param opts parameters, flags (`firstTime`, `force*`, `ignoreCommands`, `useBlacklist`,
 *   `dryRun`), module directory, configuration, root, syscall layer, callbacks
 * @returns one outcome per module the name resolves to
 * @throws {ProbeError} `not-found`; `insert-failed` with the errno of the module that failed
 * @example
 * await probeModule('dummy', { params: ['numdummies=3'] });
 * await probeModule('pci:v00001AF4d00001041sv00001AF4sd00001100bc02sc00i00'); // virtio_pci's chain
 */
export async function probeModule(nameOrAlias: string, opts: ProbeOptions = {}): Promise<ProbeOutcome[]> {
  const mp = contextOf(opts);
  const extra = paramsOf(opts.params);
  const out: ProbeOutcome[] = [];
  for (const m of lookupOrThrow(mp, nameOrAlias)) {
    const actions: ProbeAction[] = [];
    mp.hooks = hooksOf(opts, actions);
    const e = await mp.probe(m, opts, extra);
    if (e < 0) throw new ProbeError('insert-failed', m.name, -e);
    out.push({ module: m.name, status: e === BLACKLISTED ? 'blacklisted' : actions.length === 0 ? 'already-loaded' : 'loaded', actions });
  }
  return out;
}

/**
 * Remove a module by name or alias as `modprobe -r` does: post-softdeps, holders
 * (`removeHolders`), the module or its `remove` command, the dependencies it leaves unused,
 * pre-softdeps.
 * @param nameOrAlias what to remove
 * @param opts flags (`firstTime`, `force`, `removeHolders`, `waitMsec`, `ignoreCommands`,
 *   `dryRun`), module directory, configuration, root, syscall layer, callbacks
 * @returns what was done, in order (`rmmod`/`remove` actions)
 * @throws {ProbeError} `not-found`, `not-in-kernel` (with `firstTime`), `is-builtin`, `in-use`,
 *   `remove-failed` (with the errno), `remove-command-failed`
 * @example await removeProbed('vfat'); // rmmod vfat, then fat once unused
 */
export async function removeProbed(nameOrAlias: string, opts: ProbeOptions = {}): Promise<ProbeAction[]> {
  const mp = contextOf(opts);
  const actions: ProbeAction[] = [];
  let failure: ProbeError | undefined;
  mp.hooks = hooksOf(opts, actions);
  const onEvent = mp.hooks.onEvent!;
  mp.hooks.onEvent = (e) => {
    // the top module's delete_module failure is the error; its dependencies' are reported only
    if (e.kind === 'remove-failed' && failure === undefined) failure = new ProbeError('remove-failed', e.module, e.errno);
    onEvent(e);
  };
  for (const m of lookupOrThrow(mp, nameOrAlias)) {
    failure = undefined;
    const e = mp.remove(m, opts);
    if (e < 0) throw failure ?? new ProbeError('remove-failed', m.name, -e);
  }
  return actions;
}

/**
 * The symbol versions a module file needs (`__versions`, `which: 'modversions'`) or the symbols it
 * exports with their CRCs (`'exports'`), as `modprobe --show-modversions` / `--show-exports` read
 * them: the whole file, decompressed.
 * @param file the module file (any compression)
 * @param which which list
 * @returns the entries, in the file's order
 * @param report receives the codec's words when the file does not decompress
 * @returns the entries, in the file's order
 * @throws {{ errno: number }} libkmod's errno: the file's (open), EINVAL (shorter than 6 bytes, not
 *   decompressible), ENOEXEC (not ELF), ENODATA (no such section)
 * @example (await moduleSymbolVersions('./vfat.ko', 'modversions'))[0] // { name: 'module_layout', crc: 0x...n }
 */
export async function moduleSymbolVersions(file: string, which: 'modversions' | 'exports', report?: (e: ProbeEvent) => void): Promise<ExportedSymbol[]> {
  const [{ openModuleFile }, { DEFAULT_MAX_SIZE }] = await Promise.all([import('../file/module-file.js'), import('../file/compression/index.js')]);
  let image: Buffer;
  try {
    // libkmod reads 6 magic bytes before anything else
    const mf = openModuleFile(file, { magicLength: 6 });
    try {
      image = await mf.readImage(DEFAULT_MAX_SIZE);
    } finally {
      mf.close();
    }
  } catch (e) {
    throw { errno: kmodFileErrno(e, file, report) };
  }
  const elf = new KmodElf(image);
  if (which === 'modversions') return elf.modversions();
  const exported = elf.exportedSymbols();
  if (typeof exported === 'number') throw { errno: exported };
  return exported;
}


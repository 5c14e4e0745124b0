/**
 * Unloading a module: rmmod's checks, then `delete_module`.
 *
 * @module
 */
import { statSync } from 'node:fs';
import { ModuleDb } from '../db/module-db.js';
import { modnameNormalize, pathToModname } from '../db/names.js';
import { ModuleStateError } from '../errors.js';
import { readModuleSysfs } from '../kernel/sysfs.js';
import { nativeSyscalls, O_NONBLOCK, O_TRUNC, type Syscalls } from '../kernel/syscalls.js';

/**
 * The module name rmmod uses for an argument: a path's basename when the file exists, cut at the
 * first `.`, with `-` turned into `_` (the kernel's own spelling).
 * @param arg a module name or a path to a module file
 * @returns the kernel's name for it
 * @example moduleNameFromArg('snd-hda-intel') // 'snd_hda_intel'
 */
export function moduleNameFromArg(arg: string): string {
  try {
    if (statSync(arg).isFile()) return pathToModname(arg) ?? modnameNormalize(arg);
  } catch {
    // not a file: a plain module name
  }
  return modnameNormalize(arg);
}

/** Options of {@link removeModule}. */
export interface RemoveOptions {
  /** skip the checks and pass O_TRUNC (kmod's `rmmod -f`) */
  force?: boolean;
  /** system root (default `/`) */
  root?: string;
  /** kernel release for modules.builtin (default the running kernel) */
  kernelVersion?: string;
  /** syscall layer (default the real one) */
  sys?: Syscalls;
}

/**
 * Check that a module can be removed, without removing it.
 * @param name the module name (underscores)
 * @param opts root and kernelVersion
 * @throws {ModuleStateError} `builtin`, `not-loaded`, `in-use-by` (with holders), `in-use`, `no-unload`
 * @example checkRemovable('fat') // throws in-use-by ['vfat'] while vfat is loaded
 */
export function checkRemovable(name: string, opts: RemoveOptions = {}): void {
  const root = opts.root ?? '/';
  if (ModuleDb.open(opts).isBuiltin(name)) throw new ModuleStateError('builtin', name);
  const s = readModuleSysfs(name, root);
  if (s.initstate === undefined) throw new ModuleStateError('not-loaded', name);
  if (s.holders !== undefined && s.holders.length > 0) throw new ModuleStateError('in-use-by', name, s.holders);
  if (s.refcnt === undefined) throw new ModuleStateError('no-unload', name);
  if (s.refcnt > 0) throw new ModuleStateError('in-use', name);
}

/**
 * Unload a module: rmmod's checks (unless forced), then `delete_module(name, O_NONBLOCK[|O_TRUNC])`.
 * @param nameOrPath a module name or the path of its file
 * @param opts force, root, kernelVersion, sys
 * @returns the kernel name that was removed
 * @throws {ModuleStateError} when a check fails
 * @throws {SyscallError} when the kernel refuses (EAGAIN in use, EBUSY not live, EPERM)
 * @example await removeModule('dummy')
 */
export async function removeModule(nameOrPath: string, opts: RemoveOptions = {}): Promise<string> {
  const name = moduleNameFromArg(nameOrPath);
  if (!opts.force) checkRemovable(name, opts);
  (opts.sys ?? nativeSyscalls()).deleteModule(name, O_NONBLOCK | (opts.force ? O_TRUNC : 0));
  return name;
}

/**
 * The loaded modules as lsmod shows them.
 *
 * @module
 */
import { readProcModules } from '../kernel/proc-modules.js';
import { readModuleUsage } from '../kernel/sysfs.js';

/** A loaded module. */
export interface LoadedModule {
  readonly name: string;
  /** core size in bytes (sysfs `coresize`, else `/proc/modules`) */
  readonly size: number;
  /** use count (sysfs `refcnt`, else `/proc/modules`) */
  readonly refcnt: number;
  /** modules that use this one, in sysfs directory order */
  readonly holders: readonly string[];
  /** `Live`, `Loading` or `Unloading` */
  readonly state: string;
  readonly address: string;
  readonly taint: string;
}

/**
 * List the loaded modules in `/proc/modules` order, completed from sysfs. A module that vanishes
 * between the two reads is reported from its `/proc/modules` fields (kmod prints `-2  -2` and an
 * error for that race).
 * @param opts `root`: system root (default `/`)
 * @returns the modules
 * @throws {NodeJS.ErrnoException} when `/proc/modules` cannot be read
 * @example for (const m of listModules()) console.log(m.name, m.size, m.holders.join(','))
 */
export function listModules(opts: { root?: string } = {}): LoadedModule[] {
  const root = opts.root ?? '/';
  return readProcModules(root).map((p) => {
    const s = readModuleUsage(p.name, root);
    const gone = s.refcnt === undefined && s.coresize === undefined && s.holders === undefined;
    return {
      name: p.name,
      size: s.coresize ?? p.size,
      refcnt: gone ? p.refcnt : s.refcnt ?? p.refcnt,
      holders: gone ? p.holders : s.holders ?? p.holders,
      state: p.state,
      address: p.address,
      taint: p.taint,
    };
  });
}

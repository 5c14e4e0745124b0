/**
 * `/sys/module/NAME/*` and `/sys/module/compression`.
 *
 * @module
 */
import { opendirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

function readTrimmed(path: string): string | undefined {
  try {
    return readFileSync(path, 'latin1').trim();
  } catch {
    return undefined;
  }
}

function readNumber(path: string): number | undefined {
  const text = readTrimmed(path);
  if (text === undefined || !/^-?\d+$/.test(text)) return undefined;
  return Number(text);
}

/**
 * Entries of a directory in the order the kernel returns them. `fs.readdirSync` sorts its result
 * (libuv's scandir), but kmod prints holders in readdir order, so read with opendir.
 * @param dir the directory
 * @returns the names, without `.` entries; undefined when the directory cannot be opened
 * @example readdirInOrder('/sys/module/fat/holders') // ['vfat']
 */
export function readdirInOrder(dir: string): string[] | undefined {
  let d;
  try {
    d = opendirSync(dir);
  } catch {
    return undefined;
  }
  const names: string[] = [];
  try {
    for (let e = d.readSync(); e !== null; e = d.readSync()) {
      if (!e.name.startsWith('.')) names.push(e.name);
    }
  } finally {
    d.closeSync();
  }
  return names;
}

/** What sysfs says about one module; a field is undefined when its file is absent. */
export interface ModuleSysfs {
  /** `live`, `coming`, `going`; undefined when `/sys/module/NAME` has no initstate (not loaded, or builtin) */
  readonly initstate: string | undefined;
  /** `refcnt`; undefined without CONFIG_MODULE_UNLOAD; -1 while unloading */
  readonly refcnt: number | undefined;
  /** `holders/` entries in directory order; undefined when the directory is absent */
  readonly holders: readonly string[] | undefined;
  /** `coresize` in bytes */
  readonly coresize: number | undefined;
}

/**
 * Read a module's state from `/sys/module/NAME`.
 * @param name the module name (underscores)
 * @param root system root (default `/`)
 * @returns the fields found
 * @example readModuleSysfs('fat').holders // ['vfat']
 */
export function readModuleSysfs(name: string, root = '/'): ModuleSysfs {
  const dir = join(root, 'sys/module', name);
  return {
    initstate: readTrimmed(join(dir, 'initstate')),
    refcnt: readNumber(join(dir, 'refcnt')),
    holders: readdirInOrder(join(dir, 'holders')),
    coresize: readNumber(join(dir, 'coresize')),
  };
}

/**
 * The format the kernel decompresses modules in, from `/sys/module/compression`.
 * @param root system root (default `/`)
 * @returns `gzip`, `xz` or `zstd`, or undefined when the kernel cannot decompress modules
 * @example readKernelCompression('/') // 'xz' on Debian 13
 */
export function readKernelCompression(root = '/'): string | undefined {
  const text = readTrimmed(join(root, 'sys/module/compression'));
  return text === undefined || text === '' ? undefined : text;
}

/**
 * `/sys/module/NAME/*` and `/sys/module/compression`.
 *
 * @module
 */
import { closeSync, constants, opendirSync, openSync, readSync } from 'node:fs';
import { join } from 'node:path';

/** One buffer for every sysfs attribute read: an attribute is at most a page. */
const ATTRIBUTE = Buffer.alloc(4096);

// open + one bounded read + close, without readFileSync's fstat: lsmod reads three attributes per
// module. Non-blocking, so that a FIFO in a system root cannot hang the open or the read.
const READ_NONBLOCK = constants.O_RDONLY | constants.O_NONBLOCK;
function readTrimmed(path: string): string | undefined {
  let fd: number;
  try {
    fd = openSync(path, READ_NONBLOCK);
  } catch {
    return undefined;
  }
  try {
    const n = readSync(fd, ATTRIBUTE, 0, ATTRIBUTE.length, null);
    return ATTRIBUTE.toString('latin1', 0, n).trim();
  } catch {
    return undefined;
  } finally {
    closeSync(fd);
  }
}

/**
 * `ROOT/sys/module/NAME`. Attribute paths are built on it by concatenation: path.join's
 * normalizing per attribute was a visible part of lsmod's run time, and the kernel's module
 * names never contain '/'.
 */
function moduleDir(name: string, root: string): string {
  return `${join(root, 'sys/module')}/${name}`;
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
  return { initstate: readTrimmed(`${moduleDir(name, root)}/initstate`), ...readModuleUsage(name, root) };
}

/**
 * A module's `initstate` alone (modprobe asks it of every module it considers).
 * @param name the module name (underscores)
 * @param root system root (default `/`)
 * @returns `live`, `coming`, `going`, or undefined when the file is absent
 * @example readModuleInitstate('fat') // 'live'
 */
export function readModuleInitstate(name: string, root = '/'): string | undefined {
  return readTrimmed(`${moduleDir(name, root)}/initstate`);
}

/**
 * What lsmod shows of a module: its size, use count and holders (no initstate).
 * @param name the module name (underscores)
 * @param root system root (default `/`)
 * @returns refcnt, holders and coresize; each undefined when absent
 * @example readModuleUsage('fat').refcnt // 1
 */
export function readModuleUsage(name: string, root = '/'): Omit<ModuleSysfs, 'initstate'> {
  const dir = moduleDir(name, root);
  const refcnt = readNumber(`${dir}/refcnt`);
  return {
    refcnt,
    // Every holder holds a reference (the kernel's ref_module takes one), so a module whose
    // count is 0 has none: most modules on a system, and their directory need not be opened.
    holders: refcnt === 0 ? [] : readdirInOrder(`${dir}/holders`),
    coresize: readNumber(`${dir}/coresize`),
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

/**
 * `/proc/modules`, the kernel's list of loaded modules.
 *
 * @module
 */
import { join } from 'node:path';
import { readBounded } from './read-bounded.js';

/** One line of `/proc/modules`: `NAME SIZE REFCNT DEPS STATE ADDR [TAINT]`. */
export interface ProcModule {
  readonly name: string;
  readonly size: number;
  /** the use count, or -1 when the kernel printed `-` (no CONFIG_MODULE_UNLOAD) */
  readonly refcnt: number;
  /** modules that use this one (the DEPS column, `[permanent]` removed) */
  readonly holders: readonly string[];
  /** true when DEPS has `[permanent]` (module without exit function) */
  readonly permanent: boolean;
  readonly state: string;
  readonly address: string;
  readonly taint: string;
}

/**
 * Parse the text of `/proc/modules`, keeping the kernel's order.
 * @param text the file's contents
 * @returns one record per well-formed line
 * @example parseProcModules('fat 73728 1 vfat, Live 0x0\n')[0].holders // ['vfat']
 */
export function parseProcModules(text: string): ProcModule[] {
  const out: ProcModule[] = [];
  for (const line of text.split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f.length < 6 || f[0] === '') continue;
    const deps = f[3] === '-' ? [] : f[3].split(',').filter((d) => d !== '');
    out.push({
      name: f[0],
      size: Number(f[1]),
      refcnt: f[2] === '-' ? -1 : Number(f[2]),
      holders: deps.filter((d) => d !== '[permanent]'),
      permanent: deps.includes('[permanent]'),
      state: f[4],
      address: f[5],
      taint: f.slice(6).join(' ').replace(/^\(|\)$/g, ''),
    });
  }
  return out;
}

/**
 * Read `/proc/modules` under a root.
 * @param root system root (default `/`)
 * @returns the loaded modules in the kernel's order
 * @throws {NodeJS.ErrnoException} when the file cannot be read (`ENOENT` on machines without modules;
 *   `EINVAL` when it is not a regular file, `EFBIG` past the cap of read-bounded.ts)
 * @example readProcModules('/').map((m) => m.name)
 */
export function readProcModules(root = '/'): ProcModule[] {
  return parseProcModules(readBounded(join(root, 'proc/modules')).toString('latin1'));
}

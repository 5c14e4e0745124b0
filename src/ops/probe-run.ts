/**
 * Running probes: the insmod core as modprobe's inserter, and `-a -j N` (a kmod-ts extension):
 * several arguments' probe lists worked on at once, each list in kmod's order.
 *
 * @module
 */
import { Errno } from '../kernel/errno.js';
import type { Syscalls } from '../kernel/syscalls.js';
import { BLACKLISTED, type Inserter, type ModprobeContext, type ProbeFlags } from './probe.js';

/**
 * The insmod core (`loadModule`: in-kernel decompression, mmap, userspace decompression) as a
 * probe inserter, loaded on first use so that dry runs never pay for it.
 * @param opts root (for `/sys/module/compression`), syscall layer, environment (`KMOD_TS_PATH`, `KMOD_TS_MAX_SIZE`)
 * @returns an inserter resolving to 0 or a negative errno
 * @example const insert = moduleInserter({ root: '/', sys: nativeSyscalls(), env: process.env });
 */
export function moduleInserter(opts: { root: string; sys: Syscalls; env: Readonly<Record<string, string | undefined>> }): Inserter {
  return async (path, options, force) => {
    const { loadModule } = await import('./load-module.js');
    const forced = opts.env.KMOD_TS_PATH;
    const maxSize = opts.env.KMOD_TS_MAX_SIZE;
    try {
      await loadModule(path, {
        params: options,
        forceModversion: force.modversion,
        forceVermagic: force.vermagic,
        path: forced === 'finit' || forced === 'mmap' || forced === 'read' ? forced : undefined,
        maxSize: maxSize && /^\d+$/.test(maxSize) ? Number(maxSize) : undefined,
        root: opts.root,
        sys: opts.sys,
      });
      return 0;
    } catch (e) {
      const errno = (e as { errno?: unknown }).errno;
      if (typeof errno === 'number' && errno > 0) return -errno;
      throw e;
    }
  };
}

/** What {@link runJobs} reports. */
export interface JobReports {
  /** a name that resolves to nothing (modprobe: WARNING under -a) */
  notFound(name: string): void;
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
      const list = view.lookup(name);
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

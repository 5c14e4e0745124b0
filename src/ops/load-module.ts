/**
 * Loading a module: BusyBox's `bb_init_module` order, plus in-kernel decompression.
 *
 * 1. compressed, and `/sys/module/compression` names the same format: `finit_module` with
 *    MODULE_INIT_COMPRESSED_FILE; if the kernel's decompressor rejects the file (EINVAL, e.g. a
 *    plain `xz` file with CRC64 that XZ Embedded cannot read; ENOEXEC, e.g. several xz streams, of
 *    which the kernel reads only the first), fall back to 3 — kmod fails there;
 * 2. uncompressed ELF: `mmap` + `init_module` (read when mapping is impossible), with one
 *    `finit_module` retry when `init_module` is refused with EPERM (LoadPin-style policies);
 * 3. read, decompress in userspace, `init_module`.
 *
 * @module
 */
import { DEFAULT_MAX_SIZE, type Format, type XzOptions } from '../file/compression/index.js';
import { prepareForced } from '../file/elf/sections.js';
import { Errno } from '../kernel/errno.js';
import { ElfError, ModuleFileError, SyscallError, UsageError } from '../errors.js';
import { openModuleFile, type ModuleFile } from '../file/module-file.js';
import { joinModuleArgs } from './params.js';
import { readKernelCompression } from '../kernel/sysfs.js';
import {
  MODULE_INIT_COMPRESSED_FILE,
  MODULE_INIT_IGNORE_MODVERSIONS,
  MODULE_INIT_IGNORE_VERMAGIC,
  nativeSyscalls,
  type Mapping,
  type Syscalls,
} from '../kernel/syscalls.js';

/** The three loading paths. */
export type LoadPath = 'finit' | 'mmap' | 'read';

/** The loading paths, for validating a forced choice. */
export const LOAD_PATHS: readonly LoadPath[] = ['finit', 'mmap', 'read'];

/** Options of {@link loadModule}. */
export interface LoadOptions {
  /** module parameters: a ready string, or arguments joined by kmod's quoting rule */
  params?: string | readonly string[];
  /** ignore both symbol versions and vermagic (`insmod -f`) */
  force?: boolean;
  /** ignore symbol versions only (`--force-modversion`) */
  forceModversion?: boolean;
  /** ignore vermagic only (`--force-vermagic`) */
  forceVermagic?: boolean;
  /** take this path instead of choosing one (tests, benchmarks; `KMOD_TS_PATH` in the CLI) */
  path?: LoadPath;
  /** system root for `/sys/module/compression` (default `/`) */
  root?: string;
  /** syscall layer (default the real one) */
  sys?: Syscalls;
  /** cap on the decompressed size in bytes (default 1 GiB) */
  maxSize?: number;
  /** xz's decoder in userspace: `liblzma` (direct) or `stream` (`KMOD_TS_XZ` in the CLI); default liblzma when it loads */
  xz?: XzOptions;
  /** receives progress notes (fallbacks), for `-v` */
  onInfo?: (message: string) => void;
  /**
   * make the module syscalls on libuv's thread pool when the syscall layer can
   * ({@link Syscalls.finitModuleAsync}): this thread goes on meanwhile (`modprobe -j N`)
   */
  concurrent?: boolean;
}

/** What {@link loadModule} did. */
export interface LoadResult {
  /** the path that loaded the module */
  readonly path: LoadPath;
  /** the file's format */
  readonly format: Format;
  /** how, for `-v`: `finit_module (in-kernel xz)`, `mmap+init_module`, `read+xz+init_module`, ... */
  readonly via: string;
  /** the parameter string given to the kernel */
  readonly params: string;
}

function forceFlags(opts: LoadOptions): { modversions: boolean; vermagic: boolean; flags: number } {
  const modversions = Boolean(opts.force || opts.forceModversion);
  const vermagic = Boolean(opts.force || opts.forceVermagic);
  return {
    modversions,
    vermagic,
    flags: (modversions ? MODULE_INIT_IGNORE_MODVERSIONS : 0) | (vermagic ? MODULE_INIT_IGNORE_VERMAGIC : 0),
  };
}

/**
 * Load a kernel module from a file (any of ELF, gzip, xz, zstd).
 * @param file path to the module file
 * @param opts parameters, force, forced path, root, syscall layer, size cap
 * @returns the path taken
 * @throws {ModuleFileError} the file cannot be opened, read, decompressed or prepared
 * @throws {SyscallError} the kernel refused the module (EEXIST, ENOENT unknown symbol, EINVAL, ...)
 * @throws {UsageError} a forced path that cannot apply (mmap of a compressed file)
 * @example const r = await loadModule('/lib/modules/6.12.0/kernel/drivers/net/dummy.ko.xz', { params: ['numdummies=2'] }); r.via
 */
export async function loadModule(file: string, opts: LoadOptions = {}): Promise<LoadResult> {
  const params = typeof opts.params === 'string' ? opts.params : joinModuleArgs(opts.params ?? []);
  const sys = opts.sys ?? nativeSyscalls();
  const force = forceFlags(opts);
  const maxSize = opts.maxSize ?? DEFAULT_MAX_SIZE;
  const info = opts.onInfo ?? (() => {});
  const concurrent = Boolean(opts.concurrent);
  const finit = (fd: number, flags: number): Promise<void> | void =>
    concurrent && sys.finitModuleAsync ? sys.finitModuleAsync(fd, params, flags) : sys.finitModule(fd, params, flags);
  const init = (image: Uint8Array | Mapping): Promise<void> | void =>
    concurrent && sys.initModuleAsync ? sys.initModuleAsync(image, params) : sys.initModule(image, params);
  const mf = openModuleFile(file);
  try {
    const compressed = mf.format !== 'elf';
    if (opts.path === 'mmap' && compressed) {
      throw new UsageError(`cannot map ${mf.format}-compressed ${file}: the mmap path takes uncompressed modules`);
    }
    const kernelFormat = readKernelCompression(opts.root);
    const useFinit = opts.path === 'finit' || (opts.path === undefined && compressed && mf.regular && kernelFormat === mf.format);
    if (useFinit) {
      const flags = force.flags | (compressed ? MODULE_INIT_COMPRESSED_FILE : 0);
      try {
        await finit(mf.fd, flags);
        return { path: 'finit', format: mf.format, via: compressed ? `finit_module (in-kernel ${mf.format})` : 'finit_module', params };
      } catch (err) {
        // Fall back only when we chose this path and the kernel's decompressor may be the cause:
        // EINVAL (XZ Embedded refuses CRC64 or a large dictionary), EOPNOTSUPP/ENOSYS (no flag 4,
        // no finit_module), ENOEXEC (it stops after the first xz stream / gzip member / zstd
        // frame and so hands the loader half a module).
        const fallback: number[] = [Errno.EINVAL, Errno.EOPNOTSUPP, Errno.ENOSYS, Errno.ENOEXEC];
        if (opts.path === 'finit' || !(err instanceof SyscallError) || !fallback.includes(err.errno)) throw err;
        info(`finit_module of ${file} refused (${err.code}); decompressing in userspace`);
      }
    }
    if (!compressed && opts.path !== 'read' && mf.regular && mf.stat.size > 0 && !force.modversions && !force.vermagic) {
      const mapping = tryMap(sys, mf, info);
      if (mapping) {
        try {
          return await withFinitRetry(mf, params, force.flags, info, finit, async () => {
            await init(mapping);
            return { path: 'mmap', format: mf.format, via: 'mmap+init_module', params };
          });
        } finally {
          sys.munmap(mapping);
        }
      }
    }
    let image = await mf.readImage(maxSize, opts.xz);
    if (force.modversions || force.vermagic) image = stripForForce(mf, image, force);
    const via = compressed ? `read+${mf.format}+init_module` : 'read+init_module';
    const loaded = image;
    const run = async () => {
      await init(loaded);
      return { path: 'read' as const, format: mf.format, via, params };
    };
    return await (compressed ? run() : withFinitRetry(mf, params, force.flags, info, finit, run));
  } finally {
    mf.close();
  }
}

function tryMap(sys: Syscalls, mf: ModuleFile, info: (m: string) => void): Mapping | undefined {
  try {
    return sys.mmap(mf.fd, mf.stat.size);
  } catch (err) {
    if (!(err instanceof SyscallError)) throw err;
    info(`cannot map ${mf.path} (${err.code}); reading it`);
    return undefined;
  }
}

/** One `finit_module` retry when `init_module` is refused with EPERM while the file is on disk. */
async function withFinitRetry(
  mf: ModuleFile,
  params: string,
  flags: number,
  info: (m: string) => void,
  finit: (fd: number, flags: number) => Promise<void> | void,
  attempt: () => Promise<LoadResult>,
): Promise<LoadResult> {
  try {
    return await attempt();
  } catch (err) {
    if (!(err instanceof SyscallError) || err.errno !== Errno.EPERM || !mf.regular) throw err;
    info(`init_module of ${mf.path} refused (EPERM); retrying with finit_module`);
    try {
      await finit(mf.fd, flags);
    } catch (retryErr) {
      // No finit_module at all: the original refusal is the answer.
      if (retryErr instanceof SyscallError && retryErr.errno === Errno.ENOSYS) throw err;
      throw retryErr;
    }
    return { path: 'finit', format: mf.format, via: 'finit_module (after init_module EPERM)', params };
  }
}

/** Strip the image for `-f` in place: it is ours (read or decompressed here), so no second copy. */
function stripForForce(mf: ModuleFile, image: Buffer, force: { modversions: boolean; vermagic: boolean }): Buffer {
  try {
    return prepareForced(image, force, { inPlace: true });
  } catch (err) {
    if (!(err instanceof ElfError)) throw err;
    if (err.kind === 'no-vermagic') {
      throw new ModuleFileError('no-vermagic', mf.path, 'Failed to strip version information', { errno: Errno.ENODATA, cause: err });
    }
    throw new ModuleFileError('bad-elf', mf.path, err.message, { errno: Errno.ENOEXEC, cause: err });
  }
}

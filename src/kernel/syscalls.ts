/**
 * The system-call layer: the module syscalls, mmap and syslog, through the FFI (ffi.ts).
 *
 * glibc has no wrappers for the module syscalls, so they go through `syscall(2)` with the
 * architecture's numbers from the kernel's syscall tables. libc (whichever the running Node uses:
 * glibc or musl) is bound on the first call, so
 * `lsmod` never pays for the FFI.
 *
 * @module
 */
import { SyscallError } from '../errors.js';
import { Errno } from './errno.js';
import { lastErrno, loadNativeLibrary, pointerAddress } from './ffi.js';

/** `finit_module` flag: ignore symbol version hashes (kernel `MODULE_INIT_IGNORE_MODVERSIONS`). */
export const MODULE_INIT_IGNORE_MODVERSIONS = 1;
/** `finit_module` flag: ignore the vermagic string (kernel `MODULE_INIT_IGNORE_VERMAGIC`). */
export const MODULE_INIT_IGNORE_VERMAGIC = 2;
/** `finit_module` flag: the file is compressed, the kernel decompresses it (Linux ≥ 5.17). */
export const MODULE_INIT_COMPRESSED_FILE = 4;
/** `delete_module` flag O_NONBLOCK (generic and x86 value). */
export const O_NONBLOCK = 0o4000;
/** `delete_module` flag O_TRUNC, kmod's force (generic and x86 value). */
export const O_TRUNC = 0o1000;

/** A read-only private mapping of a module file. */
export interface Mapping {
  /** opaque address for `initModule` */
  readonly address: unknown;
  readonly length: number;
}

/**
 * What the loader needs from the kernel. Production uses {@link nativeSyscalls}; tests pass a
 * recording fake. Every method throws {@link SyscallError} on failure.
 */
export interface Syscalls {
  /** `init_module(image, len, params)` from a buffer or a mapping. */
  initModule(image: Uint8Array | Mapping, params: string): void;
  /** `finit_module(fd, params, flags)`. */
  finitModule(fd: number, params: string, flags: number): void;
  /**
   * `init_module` made on libuv's thread pool: this thread goes on while the kernel loads the
   * module (`modprobe -j N`). Optional; a layer without it is called synchronously. The image
   * must stay untouched until the promise settles.
   */
  initModuleAsync?(image: Uint8Array | Mapping, params: string): Promise<void>;
  /** `finit_module` made on libuv's thread pool (see {@link initModuleAsync}). */
  finitModuleAsync?(fd: number, params: string, flags: number): Promise<void>;
  /** `delete_module(name, flags)`. */
  deleteModule(name: string, flags: number): void;
  /** `mmap(NULL, length, PROT_READ, MAP_PRIVATE, fd, 0)`. */
  mmap(fd: number, length: number): Mapping;
  /** `munmap(address, length)`; never throws. */
  munmap(mapping: Mapping): void;
  /** one syslog(3) record under `ident` (for `-s`); never throws. */
  syslog(ident: string, priority: number, message: string): void;
}

/** Module syscall numbers per architecture, from the kernel's syscall tables. */
export const SYSCALL_NUMBERS: Readonly<Record<string, { init: number; delete: number; finit: number }>> = {
  // arch/x86/entry/syscalls/syscall_64.tbl
  x64: { init: 175, delete: 176, finit: 313 },
  // include/uapi/asm-generic/unistd.h (arm64 and riscv64 use the generic table)
  arm64: { init: 105, delete: 106, finit: 273 },
  riscv64: { init: 105, delete: 106, finit: 273 },
};

/**
 * The syscall numbers for an architecture as Node names it (`process.arch`).
 * @param arch `x64`, `arm64` or `riscv64`
 * @returns the numbers
 * @throws {SyscallError} ENOSYS for any other architecture (a guessed number could call anything),
 *   its `why` one line naming the architecture
 * @example syscallNumbers('x64').finit // 313
 */
export function syscallNumbers(arch: string = process.arch): { init: number; delete: number; finit: number } {
  const n = SYSCALL_NUMBERS[arch];
  if (!n) {
    throw new SyscallError('syscall', Errno.ENOSYS,
      `kmod-ts does not know the module syscall numbers of architecture ${arch} (it knows ${Object.keys(SYSCALL_NUMBERS).join(', ')})`);
  }
  return n;
}

type AsyncCall = (...argsThenCallback: unknown[]) => void;

interface Native {
  syscall: (...args: unknown[]) => number | bigint;
  /** `syscall` bound with fixed parameters (koffi cannot call a variadic function asynchronously) */
  initAsync: AsyncCall;
  finitAsync: AsyncCall;
  mmap: (addr: null, len: number, prot: number, flags: number, fd: number, off: number) => unknown;
  munmap: (addr: unknown, len: number) => number;
  openlog: (ident: Buffer, option: number, facility: number) => void;
  syslog: (priority: number, format: string, ...args: unknown[]) => void;
  closelog: () => void;
}

let native: Native | undefined;

function load(): Native {
  if (native) return native;
  // libc as the running process already has it (dlopen's default scope), not by soname: glibc's
  // libc.so.6 and musl's libc.so (Alpine, Buildroot musl images) alike.
  const libc = loadNativeLibrary(null);
  native = {
    syscall: libc.func('long syscall(long number, ...)'),
    // The same syscall(2) bound as a fixed-argument function, which koffi can run on libuv's
    // thread pool: on Linux's x86-64 and AArch64 calling conventions integer and pointer arguments
    // travel in the same registers whether a call is variadic or not, and syscall(2) reads them
    // from there. koffi hands the call's errno to the callback's thread.
    initAsync: libc.funcAsync('long syscall(long number, void *image, unsigned long len, const char *params)'),
    finitAsync: libc.funcAsync('long syscall(long number, int fd, const char *params, int flags)'),
    mmap: libc.func('void *mmap(void *addr, size_t length, int prot, int flags, int fd, long offset)'),
    munmap: libc.func('int munmap(void *addr, size_t length)'),
    openlog: libc.func('void openlog(void *ident, int option, int facility)'),
    syslog: libc.func('void syslog(int priority, const char *format, ...)'),
    closelog: libc.func('void closelog(void)'),
  };
  return native;
}

let syslogIdent: Buffer | undefined;

const PROT_READ = 1;
const MAP_PRIVATE = 2;
const MAP_FAILED = 0xffffffffffffffffn;

function check(name: string, ret: number | bigint): void {
  // errno is read straight after the call, before anything else can touch it.
  if (Number(ret) === -1) throw new SyscallError(name, lastErrno());
}

/** Run one thread-pool call and settle as {@link check} does. */
function callAsync(name: string, call: AsyncCall, args: unknown[]): Promise<void> {
  return new Promise((resolve, reject) => {
    call(...args, (err: unknown, ret: number | bigint) => {
      // koffi restores the call's errno on this thread for the callback: read it first
      const errno = lastErrno();
      if (err) reject(err);
      else if (Number(ret) === -1) reject(new SyscallError(name, errno));
      else resolve();
    });
  });
}

function isMapping(image: Uint8Array | Mapping): image is Mapping {
  return !(image instanceof Uint8Array);
}

/**
 * The real syscalls through the FFI and libc's `syscall(2)`.
 * @param arch the architecture (default `process.arch`)
 * @returns a {@link Syscalls} implementation
 * @throws {SyscallError} ENOSYS on an architecture without known numbers (at call time)
 * @example nativeSyscalls().deleteModule('dummy', O_NONBLOCK)
 */
export function nativeSyscalls(arch: string = process.arch): Syscalls {
  const sys: Syscalls = {
    initModule(image, params) {
      const nr = syscallNumbers(arch).init;
      const n = load();
      const ret = isMapping(image)
        ? n.syscall(nr, 'void *', image.address, 'unsigned long', image.length, 'const char *', params)
        : n.syscall(nr, 'void *', image, 'unsigned long', image.byteLength, 'const char *', params);
      check('init_module', ret);
    },
    finitModule(fd, params, flags) {
      const nr = syscallNumbers(arch).finit;
      const n = load();
      check('finit_module', n.syscall(nr, 'int', fd, 'const char *', params, 'int', flags));
    },
    async initModuleAsync(image, params) {
      const nr = syscallNumbers(arch).init;
      const n = load();
      return isMapping(image)
        ? callAsync('init_module', n.initAsync, [nr, image.address, image.length, params])
        : callAsync('init_module', n.initAsync, [nr, image, image.byteLength, params]);
    },
    async finitModuleAsync(fd, params, flags) {
      const nr = syscallNumbers(arch).finit;
      return callAsync('finit_module', load().finitAsync, [nr, fd, params, flags]);
    },
    deleteModule(name, flags) {
      const nr = syscallNumbers(arch).delete;
      const n = load();
      check('delete_module', n.syscall(nr, 'const char *', name, 'unsigned int', flags));
    },
    mmap(fd, length) {
      const n = load();
      const address = n.mmap(null, length, PROT_READ, MAP_PRIVATE, fd, 0);
      const errno = lastErrno();
      if (address === null || pointerAddress(address) === MAP_FAILED) throw new SyscallError('mmap', errno);
      return { address, length };
    },
    munmap(mapping) {
      load().munmap(mapping.address, mapping.length);
    },
    syslog(ident, priority, message) {
      const n = load();
      // openlog keeps the ident pointer, so the buffer must outlive the call: hold it here.
      syslogIdent = Buffer.from(`${ident}\0`);
      // LOG_USER (1 << 3); the message goes through "%s" so that a '%' in it is not a format.
      n.openlog(syslogIdent, 0, 1 << 3);
      n.syslog(priority, '%s', 'const char *', message);
      n.closelog();
    },
  };
  return sys;
}

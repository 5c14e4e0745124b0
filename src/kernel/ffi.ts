/**
 * The foreign-function interface: the only file that imports koffi.
 *
 * Everything that calls C — the module syscalls and syslog in syscalls.ts, lzma-native's own
 * liblzma in file/compression/ — binds its functions through {@link loadNativeLibrary}, so koffi
 * can be faked or swapped here alone. koffi itself is loaded on the first call, so `lsmod` never
 * pays for it.
 *
 * @module
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';

let koffiModule: any;

function koffi(): any {
  return (koffiModule ??= loadKoffi());
}

/**
 * koffi's native module, required straight from koffi's package for this platform on Linux.
 * koffi's own loader (its index.cjs) first works out the C library by reading node's ELF program
 * headers (twice) and wraps the module in deprecation shims. That JavaScript is most of koffi's
 * load time: in the QEMU TCG guests, `require('koffi')` took 95–160 ms and the module alone
 * 29–37 ms, paid by every modprobe the kernel starts. The C library is told by the dynamic
 * loader this process runs under (`/proc/self/maps`). Anything else (no /proc, another OS, a
 * layout without the platform package, a failed load) goes through koffi's loader.
 */
function loadKoffi(): any {
  const require = createRequire(import.meta.url);
  if (process.platform === 'linux') {
    let maps: string | undefined;
    try {
      maps = readFileSync('/proc/self/maps', 'latin1');
    } catch {
      // no /proc (early boot): koffi's loader finds out itself
    }
    if (maps !== undefined) {
      const libc = maps.includes('/ld-musl-') ? 'musl' : 'linux';
      try {
        const native = require(`@koromix/koffi-linux-${process.arch}/${libc}_${process.arch}/koffi.node`);
        if (typeof native?.load === 'function') return native;
      } catch {
        // not installed that way: koffi's loader below
      }
    }
  }
  return require('koffi');
}

/** A shared library opened through the FFI. */
export interface NativeLibrary {
  /**
   * Bind one of its C functions from a prototype, e.g. `int lzma_code(void *strm, int action)`.
   * A Buffer passed for a pointer parameter is passed in place (its own memory, no copy).
   */
  func(prototype: string): (...args: any[]) => any;
  /**
   * The same, called on libuv's thread pool: the returned function takes the C arguments and
   * then a callback `(err, result)`, which runs on this thread once the call has returned.
   */
  funcAsync(prototype: string): (...argsThenCallback: any[]) => void;
}

/**
 * Open a shared library (`dlopen`) for calls through the FFI.
 *
 * @param file the library's path (or a soname such as `libz.so.1`); `null`: the running process's
 *   own symbols (the executable and every library already loaded, libc among them)
 * @returns the library, whose functions are bound with `func`
 * @throws {Error} the FFI cannot be loaded or the library cannot be opened
 * @example loadNativeLibrary('/usr/lib/x86_64-linux-gnu/liblzma.so.5').func('const char *lzma_version_string(void)')()
 */
export function loadNativeLibrary(file: string | null): NativeLibrary {
  const lib = koffi().load(file);
  return {
    func: (prototype) => lib.func(prototype),
    funcAsync: (prototype) => {
      const fn = lib.func(prototype);
      return (...argsThenCallback) => fn.async(...argsThenCallback);
    },
  };
}

/**
 * The address of a buffer's first byte, for C structures that hold pointers.
 *
 * The memory of a Node Buffer (and of a typed array over more than 64 bytes) lives outside V8's
 * heap and never moves; the caller keeps the buffer referenced while C code can use the address.
 *
 * @param buf the buffer (a view's own first byte, offset included)
 * @returns its address
 * @throws {Error} the FFI cannot be loaded
 * @example bufferAddress(Buffer.alloc(4096)) // 94652481312768n
 */
export function bufferAddress(buf: Uint8Array): bigint {
  return BigInt(koffi().address(buf));
}

/**
 * The numeric value of a pointer a C function returned (to compare with `MAP_FAILED`).
 * @param pointer the opaque pointer koffi returned
 * @returns its address
 * @example pointerAddress(mmap(null, 4096, 1, 2, fd, 0)) === 0xffffffffffffffffn // MAP_FAILED
 */
export function pointerAddress(pointer: unknown): bigint {
  return BigInt(koffi().address(pointer));
}

/**
 * The calling thread's `errno`, as the last C call through the FFI left it. Read it straight
 * after the call, before anything else can touch it.
 * @returns the errno number
 * @example if (syscall(...) === -1) throw new SyscallError('init_module', lastErrno())
 */
export function lastErrno(): number {
  return koffi().errno();
}

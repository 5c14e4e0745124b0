/**
 * A recording fake of the syscall layer: every call is kept with its arguments and the bytes the
 * kernel would have received; errors are scripted per syscall, one per call in order.
 */
import { readlinkSync, readSync } from 'node:fs';
import { SyscallError } from '../../src/errors.js';
import type { Mapping, Syscalls } from '../../src/kernel/syscalls.js';

/** One recorded call. */
export interface Call {
  syscall: 'init_module' | 'finit_module' | 'delete_module' | 'mmap' | 'munmap' | 'syslog';
  params?: string;
  flags?: number;
  name?: string;
  /** for init_module: `buffer` (a userspace copy) or `mapping` (the mmap'd file) */
  source?: 'buffer' | 'mapping';
  /** for init_module: the image bytes; for finit_module: the file the fd refers to */
  image?: Buffer;
  file?: string;
  message?: string;
}

/** A scripted error list per syscall; `0` means "succeed this time". */
export type Script = Partial<Record<'init_module' | 'finit_module' | 'delete_module' | 'mmap', number[]>>;

/** The fake plus what it saw. */
export interface FakeSys extends Syscalls {
  calls: Call[];
  /** mappings made and not unmapped */
  liveMappings(): number;
  /** the calls that reach the kernel (init/finit/delete), without mmap bookkeeping */
  kernelCalls(): Call[];
}

/** Make a fake; `script` lists errnos to return, in call order. */
export function fakeSys(script: Script = {}): FakeSys {
  const calls: Call[] = [];
  const queue = structuredClone(script);
  let live = 0;
  const fail = (syscall: keyof Script) => {
    const errno = queue[syscall]?.shift();
    if (errno) throw new SyscallError(syscall, errno);
  };
  return {
    calls,
    liveMappings: () => live,
    kernelCalls: () => calls.filter((c) => ['init_module', 'finit_module', 'delete_module'].includes(c.syscall)),
    initModule(image, params) {
      const mapped = !(image instanceof Uint8Array);
      const bytes = mapped ? ((image as Mapping).address as Buffer) : Buffer.from(image);
      calls.push({ syscall: 'init_module', params, source: mapped ? 'mapping' : 'buffer', image: Buffer.from(bytes) });
      fail('init_module');
    },
    finitModule(fd, params, flags) {
      calls.push({ syscall: 'finit_module', params, flags, file: readlinkSync(`/proc/self/fd/${fd}`) });
      fail('finit_module');
    },
    deleteModule(name, flags) {
      calls.push({ syscall: 'delete_module', name, flags });
      fail('delete_module');
    },
    mmap(fd, length) {
      calls.push({ syscall: 'mmap' });
      fail('mmap');
      const address = Buffer.alloc(length);
      readSync(fd, address, 0, length, 0);
      live++;
      return { address, length };
    },
    munmap() {
      calls.push({ syscall: 'munmap' });
      live--;
    },
    syslog(ident, priority, message) {
      calls.push({ syscall: 'syslog', name: ident, flags: priority, message });
    },
  };
}

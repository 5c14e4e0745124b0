import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { execFileSync } from 'node:child_process';
import { closeSync, openSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { SyscallError } from '../src/errors.js';
import { nativeSyscalls, syscallNumbers } from '../src/kernel/syscalls.js';
import { fixtureModule, tempDir } from './helpers/modules.js';
import { runMain } from './helpers/run.js';

describe('syscall numbers come from the kernel tables', () => {
  const cases: [string, number, number, number][] = [
    ['x64', 175, 176, 313],
    ['arm64', 105, 106, 273],
    ['riscv64', 105, 106, 273],
  ];
  for (const [arch, init, del, finit] of cases) {
    it(`${arch}: init ${init}, delete ${del}, finit ${finit}`, () => assert.deepEqual(syscallNumbers(arch), { init, delete: del, finit }));
  }
  for (const arch of ['ia32', 'arm', 'ppc64', 's390x', 'loong64', 'mips']) {
    it(`${arch} is refused, not guessed`, () => {
      assert.throws(() => syscallNumbers(arch), (e: unknown) => e instanceof SyscallError && e.code === 'ENOSYS' &&
        e.why === `kmod-ts does not know the module syscall numbers of architecture ${arch} (it knows x64, arm64, riscv64)`);
      assert.throws(() => nativeSyscalls(arch).deleteModule('x', 0), SyscallError);
    });
  }
});

describe('an architecture without known syscall numbers', () => {
  it('insmod and rmmod say so in one line', async () => {
    const file = join(tempDir(), 'm.ko');
    writeFileSync(file, fixtureModule());
    const why = 'kmod-ts does not know the module syscall numbers of architecture s390x (it knows x64, arm64, riscv64)';
    const ins = await runMain(['insmod', file], { sys: nativeSyscalls('s390x') });
    assert.deepEqual([ins.status, ins.stdout, ins.stderr], [1, '', `insmod: ERROR: could not insert module ${file}: ${why}\n`]);
    const rm = await runMain(['rmmod', '-f', 'm'], { sys: nativeSyscalls('s390x') });
    assert.deepEqual([rm.status, rm.stdout, rm.stderr], [1, '', `rmmod: ERROR: could not remove module m: ${why}\n`]);
  });
});

describe('loading the FFI', () => {
  it("takes koffi's native module straight from its platform package on glibc Linux, without koffi's loader", () => {
    // a fresh process: this one may have loaded koffi already
    const script = `import('${new URL('../src/kernel/ffi.js', import.meta.url).href}').then((m) => {
      const pid = m.loadNativeLibrary(null).func('int getpid(void)')();
      const loaded = Object.keys(require.cache).filter((k) => k.includes('koffi'));
      console.log(JSON.stringify({ pid, me: process.pid, loaded }));
    })`;
    const out = JSON.parse(execFileSync(process.execPath, ['-e', script], { encoding: 'utf8' }));
    assert.equal(out.pid, out.me, 'getpid() through the FFI');
    assert.deepEqual(out.loaded.map((k: string) => k.replace(/^.*node_modules\//, '')), [`@koromix/koffi-linux-${process.arch}/linux_${process.arch}/koffi.node`]);
  });
});

describe('mmap through the FFI', () => {
  it('maps a file read-only and unmaps it', () => {
    const path = join(tempDir(), 'f');
    writeFileSync(path, Buffer.alloc(10000, 7));
    const fd = openSync(path, 'r');
    try {
      const sys = nativeSyscalls();
      const m = sys.mmap(fd, 10000);
      assert.equal(m.length, 10000);
      sys.munmap(m);
    } finally {
      closeSync(fd);
    }
  });
  it('a directory cannot be mapped and the errno says why', () => {
    const fd = openSync(tempDir(), 'r');
    try {
      assert.throws(() => nativeSyscalls().mmap(fd, 4096), (e: unknown) => e instanceof SyscallError && e.syscall === 'mmap' && e.errno === 19);
    } finally {
      closeSync(fd);
    }
  });
});

describe('the module syscalls on the thread pool (modprobe -j)', () => {
  it('fail with the errno the direct calls give, whatever this thread does meanwhile (no module can load: fd -1, a zeroed image)', async () => {
    const sys = nativeSyscalls();
    const errnoOf = (f: () => void) => {
      try {
        f();
      } catch (e) {
        assert.ok(e instanceof SyscallError);
        return e.errno;
      }
      assert.fail('the call succeeded');
    };
    const finit = errnoOf(() => sys.finitModule(-1, '', 0));
    const init = errnoOf(() => sys.initModule(Buffer.alloc(64), 'x=1'));
    const pending = [sys.finitModuleAsync!(-1, '', 0), sys.initModuleAsync!(Buffer.alloc(64), 'x=1')];
    // another errno on this thread while the calls run elsewhere (mmap of a directory: ENODEV)
    const dir = openSync(tempDir(), 'r');
    try {
      assert.throws(() => sys.mmap(dir, 4096), (e: unknown) => e instanceof SyscallError && e.errno === 19);
    } finally {
      closeSync(dir);
    }
    const [a, b] = await Promise.allSettled(pending);
    assert.ok(a.status === 'rejected' && a.reason instanceof SyscallError && a.reason.syscall === 'finit_module', String(a.status));
    assert.equal(a.reason.errno, finit);
    assert.ok(b.status === 'rejected' && b.reason instanceof SyscallError && b.reason.syscall === 'init_module', String(b.status));
    assert.equal(b.reason.errno, init);
  });
});

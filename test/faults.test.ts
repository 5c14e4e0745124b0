/**
 * Faults while a module is being loaded (issue 14): a signal during a long decompression, and a
 * module file truncated while it is read or mapped. (Two insmods of one module at once are in
 * the real-kernel suite: test/vm/cells.ts, "concurrency: ...".)
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, openSync, closeSync, readFileSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { SyscallError } from '../src/errors.js';
import { openModuleFile } from '../src/file/module-file.js';
import { lastErrno, loadNativeLibrary } from '../src/kernel/ffi.js';
import { nativeSyscalls, type Syscalls } from '../src/kernel/syscalls.js';
import { fakeSys } from './helpers/fake-sys.js';
import { bigGzipModule } from './helpers/hostile.js';
import { compress, fixtureModule, tempDir } from './helpers/modules.js';
import { runMain } from './helpers/run.js';

const dir = tempDir('kmod-ts-faults-');

describe('insmod interrupted during a long decompression', () => {
  // 256 MiB of module: gunzip takes seconds here (fresh pages are costly on these VMs)
  const file = join(dir, 'big.ko.gz');
  writeFileSync(file, bigGzipModule(256 << 20));
  const main = new URL('../src/cli/main.js', import.meta.url).href;

  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    it(`${signal} ends it within seconds, by the signal, with no module syscall made`, async () => {
      const marker = join(dir, `syscalls-${signal}`);
      // The real program with a syscall layer that records any kernel call in a file (a process
      // killed by a signal runs no exit handlers, so each call is written as it happens).
      const code = `
        import { appendFileSync } from 'node:fs';
        const { main } = await import(${JSON.stringify(main)});
        const record = (name) => () => appendFileSync(${JSON.stringify(marker)}, name + '\\n');
        const sys = { initModule: record('init_module'), finitModule: record('finit_module'), deleteModule: record('delete_module'),
          mmap() { throw new Error('not mapped'); }, munmap() {}, syslog() {} };
        const out = { write: (s) => process.stderr.write(s) };
        process.exitCode = await main(['insmod', ${JSON.stringify(file)}], { stdout: out, stderr: out, env: { KMOD_TS_PATH: 'read' }, root: ${JSON.stringify(dir)}, sys });`;
      const child = spawn(process.execPath, ['--input-type=module', '-e', code], { stdio: ['ignore', 'ignore', 'pipe'] });
      let stderr = '';
      child.stderr.on('data', (d) => (stderr += d));
      const exited = new Promise<[number | null, NodeJS.Signals | null]>((resolve) => child.on('exit', (c, s) => resolve([c, s])));
      // Wait until the decompression is under way: output pages are being written.
      const rss = () => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'))?.[1] ?? 0) * 1024;
      const deadline = Date.now() + 30_000;
      while (child.exitCode === null && rss() < 96 << 20 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
      assert.equal(child.exitCode, null, `insmod ended before it was interrupted: ${stderr}`);
      const sent = performance.now();
      child.kill(signal);
      const [status, got] = await exited;
      assert.equal(got, signal, `ended with status ${status}, signal ${got}: ${stderr}`);
      assert.ok(performance.now() - sent < 5000, 'it took more than 5 s to stop');
      assert.equal(existsSync(marker), false, `a module syscall was made: ${existsSync(marker) ? readFileSync(marker, 'utf8') : ''}`);
      assert.equal(stderr, '');
    });
  }
});

describe('a module file truncated while it is read or mapped', () => {
  const module = fixtureModule({ signed: false });

  it('truncated between open and read: an invalid module, nothing loaded', async () => {
    for (const [name, data] of [['plain.ko', module], ['packed.ko.xz', compress('xz', module)]] as const) {
      const file = join(dir, `read-${name}`);
      writeFileSync(file, data);
      const mf = openModuleFile(file);
      try {
        truncateSync(file, data.length >> 1); // another process cuts it after the open and fstat
        assert.throws(() => mf.readImageSync(1 << 30), (e: Error) => e.name === 'ModuleFileError', name);
      } finally {
        mf.close();
      }
    }
  });

  it('truncated after it was mapped: init_module\'s Bad address (EFAULT), never SIGBUS, since no JS code reads the mapping', async () => {
    const file = join(dir, 'mapped.ko');
    writeFileSync(file, Buffer.concat([module, Buffer.alloc(64 << 10)]));
    const real = nativeSyscalls();
    const write = loadNativeLibrary(null).func('long write(int fd, void *buf, size_t count)');
    const sink = openSync(join(dir, 'copy'), 'w');
    let copied: number | undefined;
    const sys: Syscalls = {
      ...fakeSys(),
      mmap: (fd, length) => real.mmap(fd, length),
      munmap: (m) => real.munmap(m),
      initModule(image) {
        if (image instanceof Uint8Array) throw new Error('expected the mapping');
        truncateSync(file, 0); // another process empties the file now
        // The kernel copies the image from user memory (copy_from_user); write(2) from the mapping
        // into a file does the same copy, and a page past the end of the file is EFAULT there.
        copied = Number(write(sink, image.address, image.length));
        if (copied < 0) throw new SyscallError('init_module', lastErrno());
      },
    };
    try {
      const r = await runMain(['insmod', file], { sys, root: dir, env: { KMOD_TS_PATH: 'mmap' } });
      assert.equal(copied, -1, 'the copy should have failed');
      assert.equal(r.stderr, `insmod: ERROR: could not insert module ${file}: Bad address\n`);
      assert.equal(r.status, 1);
    } finally {
      closeSync(sink);
    }
  });
});

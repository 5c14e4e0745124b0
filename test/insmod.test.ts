import assert from 'node:assert/strict';
import { describe, it, before } from 'node:test';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { bufferSource, findSection, parseElfSections, readModinfo, readSignature } from '../src/file/elf/sections.js';
import { fakeSys, type Call, type Script } from './helpers/fake-sys.js';
import { compress, fixtureModule, SHF_ALLOC, tempDir, writeTree } from './helpers/modules.js';
import { openFds, runMain } from './helpers/run.js';

const dir = tempDir();
const plain = fixtureModule();
const FILES: Record<string, string> = {};

before(() => {
  FILES.ko = join(dir, 'fixture.ko');
  writeFileSync(FILES.ko, plain);
  for (const kind of ['gz', 'xz', 'zst']) {
    FILES[kind] = join(dir, `fixture.ko.${kind}`);
    writeFileSync(FILES[kind], compress(kind, plain));
  }
});

/** A fixture root whose kernel decompresses `compression` (or nothing). */
function root(compression: string | undefined): string {
  const r = tempDir('kmod-ts-root-');
  return compression ? writeTree(r, { 'sys/module/compression': `${compression}\n` }) : r;
}

function versionsAllocated(image: Buffer): boolean {
  const layout = parseElfSections(bufferSource(image));
  return (findSection(layout, '__versions')!.flags & BigInt(SHF_ALLOC)) !== 0n;
}

function vermagic(image: Buffer): string | undefined {
  return readModinfo(bufferSource(image))?.find(([k]) => k === 'vermagic')?.[1];
}

const FORMAT_OF: Record<string, string> = { gz: 'gzip', xz: 'xz', zst: 'zstd' };

describe('insmod chooses the loading path from the magic bytes and the kernel', () => {
  for (const file of ['ko', 'gz', 'xz', 'zst']) {
    for (const kernel of [undefined, 'xz', 'zstd']) {
      for (const force of [false, true]) {
        const inKernel = file !== 'ko' && FORMAT_OF[file] === kernel;
        const want = inKernel ? 'finit_module' : 'init_module';
        it(`${file} file, kernel compression ${kernel ?? 'none'}, ${force ? '-f' : 'plain'} → ${want}`, async () => {
          const sys = fakeSys();
          const fds = openFds();
          const args = ['insmod', ...(force ? ['-f'] : []), '-v', FILES[file], 'a=1', 'b=x y'];
          const r = await runMain(args, { root: root(kernel), sys });
          assert.equal(r.stderr.includes('ERROR'), false, `stderr: ${r.stderr}`);
          assert.equal(r.status, 0);
          const calls = sys.kernelCalls();
          assert.equal(calls.length, 1, `one kernel call, got ${JSON.stringify(calls.map((c) => c.syscall))}`);
          const [call] = calls;
          assert.equal(call.syscall, want);
          assert.equal(call.params, 'a=1 b="x y"');
          assert.equal(sys.liveMappings(), 0, 'every mapping unmapped');
          assert.equal(openFds(), fds, 'no descriptor left open');
          if (inKernel) {
            assert.equal(call.flags, 4 | (force ? 3 : 0));
            assert.equal(call.file, FILES[file]);
            assert.match(r.stderr, new RegExp(`INFO: loaded .* via finit_module \\(in-kernel ${kernel}\\)`));
            return;
          }
          const image = call.image!;
          if (!force) {
            assert.deepEqual(image, plain, 'the kernel gets the module unchanged, signature included');
            assert.equal(call.source, file === 'ko' ? 'mapping' : 'buffer');
            assert.match(r.stderr, file === 'ko' ? /via mmap\+init_module/ : new RegExp(`via read\\+${FORMAT_OF[file]}\\+init_module`));
            return;
          }
          assert.equal(call.source, 'buffer', 'force works on a private copy');
          assert.equal(versionsAllocated(image), false, '__versions lost SHF_ALLOC');
          assert.equal(vermagic(image), undefined, 'vermagic zeroed');
          assert.equal(image.includes('vermagic='), false, 'no vermagic byte left');
          assert.equal(vermagic(plain) !== undefined, true, 'the fixture has one');
          assert.equal(readSignature(bufferSource(image)), undefined, 'signature dropped');
          assert.equal(versionsAllocated(plain), true, 'the input is untouched');
        });
      }
    }
  }
});

describe('insmod falls back where the kernel refuses a path', () => {
  const cases: { name: string; file: string; kernel?: string; script: Script; want: Call['syscall'][]; flags?: number[]; via: RegExp }[] = [
    { name: 'in-kernel xz rejected with EINVAL → read+xz+init_module', file: 'xz', kernel: 'xz', script: { finit_module: [22] }, want: ['finit_module', 'init_module'], via: /via read\+xz\+init_module/ },
    { name: 'in-kernel zstd unsupported (EOPNOTSUPP) → read+zstd+init_module', file: 'zst', kernel: 'zstd', script: { finit_module: [95] }, want: ['finit_module', 'init_module'], via: /via read\+zstd\+init_module/ },
    { name: 'in-kernel xz reads one stream of several (ENOEXEC) → read+xz+init_module', file: 'xz', kernel: 'xz', script: { finit_module: [8] }, want: ['finit_module', 'init_module'], via: /via read\+xz\+init_module/ },
    { name: 'no finit_module (ENOSYS) → read+xz+init_module', file: 'xz', kernel: 'xz', script: { finit_module: [38] }, want: ['finit_module', 'init_module'], via: /via read\+xz\+init_module/ },
    { name: 'init_module refused with EPERM → one finit_module retry', file: 'ko', script: { init_module: [1] }, want: ['init_module', 'finit_module'], flags: [0], via: /via finit_module \(after init_module EPERM\)/ },
    { name: 'mmap impossible → read+init_module', file: 'ko', script: { mmap: [19] }, want: ['init_module'], via: /via read\+init_module/ },
  ];
  for (const c of cases) {
    it(c.name, async () => {
      const sys = fakeSys(c.script);
      const r = await runMain(['insmod', '-v', FILES[c.file]], { root: root(c.kernel), sys });
      assert.equal(r.status, 0, r.stderr);
      assert.deepEqual(sys.kernelCalls().map((x) => x.syscall), c.want);
      if (c.flags) assert.deepEqual(sys.kernelCalls().filter((x) => x.syscall === 'finit_module').map((x) => x.flags), c.flags);
      assert.match(r.stderr, c.via);
      assert.equal(sys.liveMappings(), 0);
    });
  }

  it('EPERM from init_module and from the finit_module retry is reported as EPERM', async () => {
    const sys = fakeSys({ init_module: [1], finit_module: [1] });
    const r = await runMain(['insmod', FILES.ko], { root: root(undefined), sys });
    assert.equal(r.status, 1);
    assert.equal(r.stderr, `insmod: ERROR: could not insert module ${FILES.ko}: Operation not permitted\n`);
  });

  it('EPERM from init_module with no finit_module at all keeps the EPERM', async () => {
    const sys = fakeSys({ init_module: [1], finit_module: [38] });
    const r = await runMain(['insmod', FILES.ko], { root: root(undefined), sys });
    assert.equal(r.stderr, `insmod: ERROR: could not insert module ${FILES.ko}: Operation not permitted\n`);
  });

  it('an EINVAL from the userspace path after a finit fallback is "Invalid parameters"', async () => {
    const sys = fakeSys({ finit_module: [22], init_module: [22] });
    const r = await runMain(['insmod', FILES.xz, 'x=bad'], { root: root('xz'), sys });
    assert.equal(r.stderr, `insmod: ERROR: could not insert module ${FILES.xz}: Invalid parameters\n`);
  });
});

describe('insmod can be told which path to take (KMOD_TS_PATH)', () => {
  const cases = [
    { path: 'finit', file: 'ko', kernel: undefined, want: 'finit_module', flags: 0 },
    { path: 'finit', file: 'xz', kernel: undefined, want: 'finit_module', flags: 4 },
    { path: 'mmap', file: 'ko', kernel: 'xz', want: 'init_module', source: 'mapping' },
    { path: 'read', file: 'ko', kernel: undefined, want: 'init_module', source: 'buffer' },
    { path: 'read', file: 'xz', kernel: 'xz', want: 'init_module', source: 'buffer' },
  ];
  for (const c of cases) {
    it(`KMOD_TS_PATH=${c.path} on a ${c.file} file uses ${c.want}${c.source ? ` from a ${c.source}` : ''}`, async () => {
      const sys = fakeSys();
      const r = await runMain(['insmod', FILES[c.file]], { root: root(c.kernel), sys, env: { KMOD_TS_PATH: c.path } });
      assert.equal(r.status, 0, r.stderr);
      const [call, ...more] = sys.kernelCalls();
      assert.equal(more.length, 0);
      assert.equal(call.syscall, c.want);
      if (c.flags !== undefined) assert.equal(call.flags, c.flags);
      if (c.source) assert.equal(call.source, c.source);
    });
  }

  it('a forced finit path does not fall back', async () => {
    const sys = fakeSys({ finit_module: [22] });
    const r = await runMain(['insmod', FILES.xz], { root: root('xz'), sys, env: { KMOD_TS_PATH: 'finit' } });
    assert.equal(r.status, 1);
    assert.equal(sys.kernelCalls().length, 1);
  });

  it('mmap of a compressed file is refused with one line', async () => {
    const r = await runMain(['insmod', FILES.gz], { root: root(undefined), sys: fakeSys(), env: { KMOD_TS_PATH: 'mmap' } });
    assert.equal(r.status, 1);
    assert.match(r.stderr, /^insmod: ERROR: cannot map gzip-compressed .* the mmap path takes uncompressed modules\n$/);
  });

  it('an unknown path name is an error', async () => {
    const r = await runMain(['insmod', FILES.ko], { sys: fakeSys(), env: { KMOD_TS_PATH: 'fast' } });
    assert.equal(r.stderr, "insmod: ERROR: KMOD_TS_PATH must be one of finit, mmap, read, not 'fast'\n");
  });
});

describe('insmod parses its arguments like kmod', () => {
  const cases: { args: string[]; params: string; flags?: number }[] = [
    { args: [], params: '' },
    { args: ['a=1', 'b=2'], params: 'a=1 b=2' },
    { args: ['b=x y'], params: 'b="x y"' },
    { args: ['f=x y=z'], params: 'f="x y=z"' },
    { args: ["c='q r'"], params: "c='q r'" },
    { args: ['d="q r"'], params: 'd="q r"' },
    { args: ['flag'], params: 'flag' },
    { args: ['n=007'], params: 'n=007' },
    { args: ['--', '-x=1'], params: '-x=1' },
    { args: ['a=1', '-f'], params: 'a=1', flags: 3 },
    { args: ['--force-vermagic', 'a=1'], params: 'a=1', flags: 2 },
    { args: ['--force-modversion'], params: '', flags: 1 },
  ];
  for (const c of cases) {
    it(`insmod FILE ${c.args.join(' ') || '(no arguments)'} gives the kernel ${JSON.stringify(c.params)}`, async () => {
      const sys = fakeSys();
      const r = await runMain(['insmod', FILES.xz, ...c.args], { root: root('xz'), sys });
      assert.equal(r.status, 0, r.stderr);
      const [call] = sys.kernelCalls();
      assert.equal(call.params, c.params);
      assert.equal(call.flags, 4 | (c.flags ?? 0));
    });
  }

  it('options before the file name work too', async () => {
    const sys = fakeSys();
    const r = await runMain(['insmod', '-f', '-v', FILES.xz, 'a=1'], { root: root('xz'), sys });
    assert.equal(r.status, 0);
    assert.equal(sys.kernelCalls()[0].flags, 7);
  });
});

describe('insmod reports kernel refusals in kmod words', () => {
  const cases: [number, string][] = [
    [17, 'File exists'],
    [8, 'Invalid module format'],
    [2, 'Unknown symbol in module'],
    [3, 'Module has wrong symbol version'],
    [22, 'Invalid parameters'],
    [1, 'Operation not permitted'],
    [129, 'Key was rejected by service'],
    [74, 'Bad message'],
    [16, 'Device or resource busy'],
  ];
  for (const [errno, text] of cases) {
    it(`errno ${errno} → "${text}"`, async () => {
      const sys = fakeSys({ finit_module: [errno], init_module: [errno, errno] });
      const r = await runMain(['insmod', FILES.ko], { root: root(undefined), sys });
      assert.equal(r.status, 1);
      assert.equal(r.stdout, '');
      assert.equal(r.stderr, `insmod: ERROR: could not insert module ${FILES.ko}: ${text}\n`);
    });
  }
});

describe('insmod usage', () => {
  it('no file name → missing filename.', async () => {
    const r = await runMain(['insmod'], { sys: fakeSys() });
    assert.deepEqual(r, { status: 1, stdout: '', stderr: 'insmod: ERROR: missing filename.\n' });
  });
  it('stdin is refused like kmod', async () => {
    const r = await runMain(['insmod', '-'], { sys: fakeSys() });
    assert.deepEqual(r, { status: 1, stdout: '', stderr: 'insmod: ERROR: this tool does not support loading from stdin!\n' });
  });
  it('-h prints usage on stdout and exits 0', async () => {
    const r = await runMain(['insmod', '-h'], { sys: fakeSys() });
    assert.equal(r.status, 0);
    assert.match(r.stdout, /^Usage:\n\tinsmod \[options\] filename \[args\]/);
    assert.equal(r.stderr, '');
  });
  it('-V prints the version and features', async () => {
    const r = await runMain(['insmod', '-V'], { sys: fakeSys() });
    assert.equal(r.status, 0);
    assert.match(r.stdout, /^kmod-ts version \d+\.\d+\.\d+\n\+ZSTD \+XZ \+GZIP \+FFI\n$/);
  });
  it('an unknown option is one error line, in glibc getopt\'s words as kmod prints them', async () => {
    const r = await runMain(['insmod', '--bogus', FILES.ko], { sys: fakeSys() });
    assert.deepEqual(r, { status: 1, stdout: '', stderr: "insmod: unrecognized option '--bogus'\n" });
  });
  it('-s sends messages to syslog instead of stderr', async () => {
    const sys = fakeSys({ init_module: [17] });
    const r = await runMain(['insmod', '-s', FILES.ko], { root: root(undefined), sys });
    assert.equal(r.status, 1);
    assert.equal(r.stderr, '');
    const log = sys.calls.find((c) => c.syscall === 'syslog');
    assert.equal(log?.message, `ERROR: could not insert module ${FILES.ko}: File exists`);
    assert.equal(log?.name, 'insmod');
  });
});

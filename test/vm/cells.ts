/**
 * The real-kernel matrix: every cell is shell steps run in the guest and a check on the host.
 * Files under /t come from harness.ts (`prepareFixtures`); `mod`, `sysparams`, `modnames`,
 * `reset` and `runas` are its helper commands; /opt/kmod/bin holds Debian's kmod for parity.
 *
 * @module
 */
import assert from 'node:assert/strict';
import { KERNEL_FACTS, type Cell, type KernelName, type Step } from './harness.js';
import { depmodCells } from './depmod-cells.js';

const KMOD = '/opt/kmod/bin';

export const show = (s: Step | undefined) =>
  s === undefined ? 'no result' : `rc=${s.rc}\n--- stdout ---\n${s.out}--- stderr ---\n${s.err}`;

export function ok(s: Step | undefined, what: string): asserts s is Step {
  assert.ok(s, `${what}: no result from the guest`);
}

/** The step exited 0 with exactly the given stderr lines. */
function succeeded(s: Step | undefined, errLines: string[], what = 'insmod'): void {
  ok(s, what);
  assert.equal(s.rc, 0, `${what} should succeed; got ${show(s)}`);
  assert.equal(s.err, errLines.map((l) => `${l}\n`).join(''), `${what} stderr; got ${show(s)}`);
}

/** The step exited 1 with exactly the given stderr. */
function failed(s: Step | undefined, err: string | RegExp, what = 'command'): void {
  ok(s, what);
  assert.equal(s.rc, 1, `${what} should exit 1; got ${show(s)}`);
  if (typeof err === 'string') assert.equal(s.err, err, `${what} stderr; got ${show(s)}`);
  else assert.match(s.err, err, `${what} stderr; got ${show(s)}`);
  assert.equal(s.out, '', `${what} stdout should be empty; got ${show(s)}`);
}

/** `modnames` printed exactly these modules. */
function loaded(s: Step | undefined, names: string[]): void {
  ok(s, 'modnames');
  assert.equal(s.out.trim(), [...names].sort().join(' '), `loaded modules; got ${show(s)}`);
}

const info = (file: string, via: string) => `insmod: INFO: loaded ${file} via ${via}`;

/** insmod -v FILE with an optional environment, then which modules are loaded. */
function loads(name: string, file: string, via: string | string[], opts: { env?: string; flags?: string; module?: string } = {}): Cell {
  const pre = opts.env ? `${opts.env} ` : '';
  return {
    name,
    steps: [`${pre}insmod -v ${opts.flags ? `${opts.flags} ` : ''}${file}`, 'modnames'],
    check: ([ins, names]) => {
      succeeded(ins, Array.isArray(via) ? via : [info(file, via)]);
      loaded(names, [opts.module ?? 'dummy']);
    },
  };
}

/**
 * kmod-ts and Debian's kmod given the same command: both exit 1 with exactly `want`. `setup`
 * commands run through kmod (they set the scene; kmod's C start-up is ~10x faster than Node's
 * under TCG, which keeps the suite inside its time budget).
 */
function parity(name: string, setupCmds: string[], cmd: string, want: string | RegExp): Cell {
  const setup = setupCmds.map((c) => `${KMOD}/${c}`);
  return {
    name,
    steps: [...setup, cmd, 'reset', ...setup, `${KMOD}/${cmd}`],
    check: (s) => {
      const ours = s[setup.length];
      const theirs = s[s.length - 1];
      failed(ours, want, `kmod-ts ${cmd}`);
      ok(theirs, 'kmod');
      assert.equal(ours.err, theirs.err, `kmod-ts and kmod differ on '${cmd}':\n kmod-ts: ${JSON.stringify(ours.err)}\n kmod:    ${JSON.stringify(theirs.err)}`);
      assert.equal(ours.rc, theirs.rc, `exit status: kmod-ts ${ours.rc}, kmod ${theirs.rc}`);
    },
  };
}

/** A bad input: exit 1, only `insmod: ERROR:` lines (matching `want`), nothing loaded. */
function rejects(name: string, file: string, want: RegExp, opts: { env?: string; maxMs?: number; timeout?: number } = {}): Cell {
  const t = opts.timeout ? `timeout ${opts.timeout} ` : '';
  return {
    name,
    steps: [`${opts.env ? `${opts.env} ` : ''}${t}insmod ${file}`, 'modnames', `${t}${KMOD}/insmod ${file}`],
    check: ([ins, names]) => {
      failed(ins, want, `insmod ${file}`);
      for (const line of ins.err.trimEnd().split('\n')) assert.match(line, /^insmod: ERROR: /, `every stderr line an ERROR line; got ${show(ins)}`);
      loaded(names, []);
      if (opts.maxMs) assert.ok(ins.ms <= opts.maxMs, `took ${ins.ms} ms, want ≤ ${opts.maxMs}`);
    },
  };
}

const insert = (file: string, why: string) => `insmod: ERROR: could not insert module ${file}: ${why}\n`;

/** param_printer's sysfs parameters as `sysparams` prints them (sorted by name). */
function params(p: { count?: string; greeting?: string; name?: string; values?: string; verbose?: string }): string {
  const v = { count: '1', greeting: 'hello', name: 'world', values: '', verbose: 'N', ...p };
  return `count=${v.count}\ngreeting=${v.greeting}\nname=${v.name}\nvalues=${v.values}\nverbose=${v.verbose}\n`;
}

/**
 * The cells for one kernel. Expectations depend only on facts fixed in KERNEL_FACTS, so the
 * names exist before anything is downloaded or booted.
 */
export function cellsFor(kernel: KernelName): Cell[] {
  const xzIn = KERNEL_FACTS[kernel].inKernel === 'xz';
  const GZ = 'read+gzip+init_module';
  const ZST = 'read+zstd+init_module';
  const XZ = xzIn ? 'finit_module (in-kernel xz)' : 'read+xz+init_module';
  const cells: Cell[] = [];
  const add = (c: Cell) => cells.push(c);

  // ---- parity: lsmod with nothing loaded first, while nothing is ----
  add({
    name: 'parity: lsmod with no module loaded is byte-identical to kmod lsmod',
    steps: ['lsmod', `${KMOD}/lsmod`],
    check: ([ours, theirs]) => {
      succeeded(ours, [], 'lsmod');
      ok(theirs, 'kmod lsmod');
      assert.equal(ours.out, 'Module                  Size  Used by\n');
      assert.equal(ours.out, theirs.out);
    },
  });

  // ---- paths ----
  add({
    name: `paths: the kernel's /sys/module/compression is ${xzIn ? "'xz'" : 'absent'}`,
    steps: ['cat /sys/module/compression'],
    check: ([s]) => {
      ok(s, 'cat');
      if (xzIn) assert.equal(s.out, 'xz\n', show(s));
      else assert.notEqual(s.rc, 0, `expected no /sys/module/compression; got ${show(s)}`);
    },
  });
  add(loads('paths: an uncompressed .ko takes mmap+init_module by default', '/t/dummy.ko', 'mmap+init_module'));
  add(loads('paths: KMOD_TS_PATH=mmap forces mmap+init_module', '/t/dummy.ko', 'mmap+init_module', { env: 'KMOD_TS_PATH=mmap' }));
  add(loads('paths: KMOD_TS_PATH=read forces read+init_module on a .ko', '/t/dummy.ko', 'read+init_module', { env: 'KMOD_TS_PATH=read' }));
  add(loads('paths: KMOD_TS_PATH=read forces read+xz+init_module on a .ko.xz', '/t/dummy.ko.xz', 'read+xz+init_module', { env: 'KMOD_TS_PATH=read' }));
  // The bundle's xz decoders: liblzma through the FFI (the default; forced here, so that a bundle
  // where it cannot load fails instead of falling back) and lzma-native's stream binding.
  add(loads('paths: read+xz with liblzma called directly (KMOD_TS_XZ=liblzma)', '/t/dummy.ko.xz', 'read+xz+init_module', { env: 'KMOD_TS_PATH=read KMOD_TS_XZ=liblzma' }));
  add(loads('paths: read+xz with the lzma-native stream binding (KMOD_TS_XZ=stream)', '/t/dummy.ko.xz', 'read+xz+init_module', { env: 'KMOD_TS_PATH=read KMOD_TS_XZ=stream' }));
  add(loads('paths: KMOD_TS_PATH=finit forces finit_module on a .ko', '/t/dummy.ko', 'finit_module', { env: 'KMOD_TS_PATH=finit' }));
  if (xzIn) {
    add(loads('paths: a kbuild .ko.xz takes finit_module (in-kernel xz) by default', '/t/dummy.ko.xz', XZ));
    add(loads('paths: KMOD_TS_PATH=finit forces finit_module (in-kernel xz) on a .ko.xz', '/t/dummy.ko.xz', XZ, { env: 'KMOD_TS_PATH=finit' }));
    add({
      name: "paths: Debian's own dummy.ko.xz from /lib/modules takes the in-kernel path by default",
      steps: ['f=$(mod drivers/net/dummy); insmod -v "$f"', 'modnames'],
      check: ([ins, names]) => {
        ok(ins, 'insmod');
        assert.equal(ins.rc, 0, show(ins));
        assert.match(ins.err, /^insmod: INFO: loaded \/lib\/modules\/[^ ]+\/dummy\.ko\.xz via finit_module \(in-kernel xz\)\n$/, show(ins));
        loaded(names, ['dummy']);
      },
    });
  } else {
    add(loads('paths: a .ko.xz is decompressed in userspace by default (the kernel cannot)', '/t/dummy.ko.xz', XZ));
    add({
      name: 'paths: KMOD_TS_PATH=finit on a .ko.xz fails cleanly where the kernel cannot decompress',
      steps: ['KMOD_TS_PATH=finit insmod /t/dummy.ko.xz', 'modnames'],
      check: ([ins, names]) => {
        failed(ins, insert('/t/dummy.ko.xz', 'Operation not supported'), 'insmod');
        loaded(names, []);
      },
    });
  }
  add({
    name: 'paths: KMOD_TS_PATH=mmap on a compressed file is refused, nothing loaded',
    steps: ['KMOD_TS_PATH=mmap insmod /t/dummy.ko.gz', 'modnames'],
    check: ([ins, names]) => {
      failed(ins, /^insmod: ERROR: .*mmap.*\n$/, 'insmod');
      loaded(names, []);
    },
  });

  // ---- formats ----
  add(loads('formats: gzip, one member', '/t/dummy.ko.gz', GZ));
  add(loads('formats: gzip, two members', '/t/dummy-members.ko.gz', GZ));
  add(loads('formats: xz as kbuild makes it (CRC32, 1 MiB dictionary)', '/t/dummy.ko.xz', XZ));
  add({
    name: `formats: xz as plain xz makes it (CRC64, 8 MiB dictionary)${xzIn ? ' loads, through the fallback if the kernel rejects it' : ''}`,
    steps: ['insmod -v /t/dummy-plain.ko.xz', 'modnames'],
    check: ([ins, names]) => {
      const f = '/t/dummy-plain.ko.xz';
      if (!xzIn) succeeded(ins, [info(f, 'read+xz+init_module')]);
      else {
        ok(ins, 'insmod');
        assert.equal(ins.rc, 0, show(ins));
        const fallback = `insmod: INFO: finit_module of ${f} refused (EINVAL); decompressing in userspace\n${info(f, 'read+xz+init_module')}\n`;
        const inKernel = `${info(f, XZ)}\n`;
        assert.ok(ins.err === fallback || ins.err === inKernel, `want the fallback or the in-kernel path; got ${show(ins)}`);
      }
      loaded(names, ['dummy']);
    },
  });
  if (xzIn) {
    // The kernel's decompressor stops after the first stream (kernel/module/decompress.c), so the
    // whole file must be decompressed in userspace: up front, or after the kernel's refusal.
    add({
      name: 'formats: xz, two streams (the kernel reads only the first: decompressed in userspace)',
      steps: ['insmod -v /t/dummy-streams.ko.xz', 'modnames'],
      check: ([ins, names]) => {
        ok(ins, 'insmod');
        assert.equal(ins.rc, 0, `insmod should succeed; got ${show(ins)}`);
        const lines = ins.err.trimEnd().split('\n');
        assert.equal(lines.at(-1), info('/t/dummy-streams.ko.xz', 'read+xz+init_module'), show(ins));
        for (const l of lines) assert.match(l, /^insmod: INFO: /, show(ins));
        loaded(names, ['dummy']);
      },
    });
  } else add(loads('formats: xz, two streams', '/t/dummy-streams.ko.xz', XZ));
  add(loads('formats: zstd with the content size in the frame header', '/t/dummy.ko.zst', ZST));
  add(loads('formats: zstd without the content size', '/t/dummy-nosize.ko.zst', ZST));
  add(loads('formats: zstd, two frames', '/t/dummy-frames.ko.zst', ZST));
  add(loads('formats: xz data named .ko.gz is loaded as xz', '/t/dummy-xz.ko.gz', XZ));
  add(loads('formats: gzip data named .ko is loaded as gzip', '/t/dummy-gz.ko', GZ));
  add(loads('formats: zstd data named .ko.xz is loaded as zstd', '/t/dummy-zst.ko.xz', ZST));

  // ---- parameters (param_printer) ----
  add({
    name: 'params: defaults read back from sysfs',
    steps: ['insmod /t/pp.ko', 'sysparams'],
    check: ([ins, sys]) => {
      succeeded(ins, []);
      ok(sys, 'sysparams');
      assert.equal(sys.out, params({}));
    },
  });
  add({
    name: 'params: int, bool, charp, int array and a charp with spaces, read back from sysfs and dmesg',
    steps: ["insmod /t/pp.ko count=42 verbose=1 name=kmod-ts values=1,-2,3 'greeting=hello big world'", 'sysparams',
      'dmesg | grep "param_printer: " | tail -4'],
    check: ([ins, sys, dm]) => {
      succeeded(ins, []);
      ok(sys, 'sysparams');
      assert.equal(sys.out, params({ count: '42', verbose: 'Y', name: 'kmod-ts', values: '1,-2,3', greeting: 'hello big world' }));
      ok(dm, 'dmesg');
      assert.match(dm.out, /param_printer: count=42 verbose=Y name=kmod-ts greeting=\[hello big world\] nvalues=3\n/, show(dm));
      assert.match(dm.out, /values\[1\]=-2\n/, show(dm));
    },
  });
  add({
    name: "params: a value with spaces and '=' is quoted whole (kmod's rule)",
    steps: ["insmod /t/pp.ko 'greeting=x y=z' 'name=a  b'", 'sysparams'],
    check: ([ins, sys]) => {
      succeeded(ins, []);
      ok(sys, 'sysparams');
      assert.equal(sys.out, params({ greeting: 'x y=z', name: 'a  b' }));
    },
  });
  add({
    name: "parity: parameters with spaces and quotes reach the kernel exactly as with kmod's insmod",
    steps: [
      `insmod /t/pp.ko "greeting='q r'" 'name="d e"' 'values=4,5' verbose=n`, 'sysparams', 'rmmod param_printer',
      `${KMOD}/insmod /t/pp.ko "greeting='q r'" 'name="d e"' 'values=4,5' verbose=n`, 'sysparams',
    ],
    check: ([a, as, , b, bs]) => {
      ok(a, 'kmod-ts');
      ok(b, 'kmod');
      assert.equal(a.rc, b.rc, `exit: kmod-ts ${show(a)}\nkmod ${show(b)}`);
      assert.equal(a.err, b.err);
      ok(as, 'sysparams');
      ok(bs, 'sysparams');
      assert.equal(as.out, bs.out, 'sysfs after kmod-ts vs after kmod');
      assert.match(as.out, /^name=d e$/m);
    },
  });
  add({
    name: 'params: an unknown parameter name is not an error (the kernel ignores it)',
    steps: ['insmod /t/pp.ko no_such_param=1 count=7', 'sysparams'],
    check: ([ins, sys]) => {
      succeeded(ins, []);
      ok(sys, 'sysparams');
      assert.equal(sys.out, params({ count: '7' }));
    },
  });

  // ---- errors, in kmod's words, side by side with kmod ----
  add(parity('errors: already loaded → File exists', ['insmod /t/dummy.ko'], 'insmod /t/dummy.ko', insert('/t/dummy.ko', 'File exists')));
  add(parity(`errors: already loaded, compressed (${XZ}) → File exists`, ['insmod /t/dummy.ko'], 'insmod /t/dummy.ko.xz', insert('/t/dummy.ko.xz', 'File exists')));
  add(parity('errors: unknown symbol (vfat without fat)', [], 'insmod $(mod fs/fat/vfat)',
    /^insmod: ERROR: could not insert module \/lib\/modules\/[^ ]+\/vfat\.ko(\.xz)?: Unknown symbol in module\n$/));
  add(parity('errors: bad parameter value (count=abc)', [], 'insmod /t/pp.ko count=abc', insert('/t/pp.ko', 'Invalid parameters')));
  add(parity('errors: too many array values', [], 'insmod /t/pp.ko values=1,2,3,4,5,6,7,8,9', insert('/t/pp.ko', 'Invalid parameters')));
  add(parity('errors: rmmod of a module not loaded', [], 'rmmod dummy', 'rmmod: ERROR: Module dummy is not currently loaded\n'));
  add(parity('errors: rmmod of a module in use by a holder', ['insmod $(mod fs/fat/fat)', 'insmod $(mod fs/fat/vfat)'], 'rmmod fat',
    'rmmod: ERROR: Module fat is in use by: vfat\n'));
  add(parity('errors: rmmod of a module in use by two holders', ['insmod $(mod fs/fat/fat)', 'insmod $(mod fs/fat/vfat)', 'insmod $(mod fs/fat/msdos)'],
    'rmmod fat', /^rmmod: ERROR: Module fat is in use by: (vfat msdos|msdos vfat)\n$/));
  add(parity('errors: rmmod of a builtin module', [], 'rmmod $(sed -n "1{s,.*/,,;s,\\.ko$,,;p}" /lib/modules/$(uname -r)/modules.builtin)',
    /^rmmod: ERROR: Module \S+ is builtin\.\n$/));
  add(parity('errors: missing file', [], 'insmod /t/no-such.ko', 'insmod: ERROR: could not load module /t/no-such.ko: No such file or directory\n'));
  add(parity('errors: insmod without a file name', [], 'insmod', 'insmod: ERROR: missing filename.\n'));
  add(parity('errors: rmmod without a module name', [], 'rmmod', 'rmmod: ERROR: missing module name.\n'));
  add(parity('errors: module built for the other kernel', [], 'insmod /t/other.ko', insert('/t/other.ko', 'Invalid module format')));
  add({
    name: 'errors: insmod as a non-root user → Operation not permitted, like kmod',
    steps: ['runas 65534 insmod /t/dummy.ko', `runas 65534 ${KMOD}/insmod /t/dummy.ko`, 'runas 65534 insmod /t/dummy.ko.xz', 'modnames'],
    check: ([ours, theirs, xz, names]) => {
      failed(ours, insert('/t/dummy.ko', 'Operation not permitted'), 'runas insmod');
      ok(theirs, 'kmod');
      assert.equal(ours.err, theirs.err);
      failed(xz, insert('/t/dummy.ko.xz', 'Operation not permitted'), 'runas insmod .ko.xz');
      loaded(names, []);
    },
  });
  add({
    name: 'errors: rmmod as a non-root user → Operation not permitted, like kmod',
    steps: [`${KMOD}/insmod /t/dummy.ko`, 'runas 65534 rmmod dummy', `runas 65534 ${KMOD}/rmmod dummy`, 'modnames'],
    check: ([, ours, theirs, names]) => {
      const want = 'rmmod: ERROR: could not remove module dummy: Operation not permitted\n';
      failed(ours, want, 'runas rmmod');
      ok(theirs, 'kmod');
      // kmod also logs libkmod's own line first ("rmmod: ERROR: ../libkmod/libkmod-module.c:856
      // kmod_module_remove_module() could not remove 'dummy': ..."); its own message is the last.
      assert.equal(theirs.err.split('\n').slice(-2).join('\n'), want, show(theirs));
      loaded(names, ['dummy']);
    },
  });
  add({
    name: 'errors: lsmod as a non-root user works, identical to kmod',
    steps: [`${KMOD}/insmod $(mod fs/fat/fat)`, `${KMOD}/insmod $(mod fs/fat/vfat)`, 'runas 65534 lsmod', `runas 65534 ${KMOD}/lsmod`],
    check: ([, , ours, theirs]) => {
      succeeded(ours, [], 'lsmod');
      ok(theirs, 'kmod lsmod');
      assert.equal(ours.out, theirs.out);
    },
  });

  // ---- bad inputs: a clean error and nothing loaded ----
  add(rejects('bad input: empty file', '/t/empty.ko', /could not insert module \/t\/empty\.ko: /));
  add(rejects('bad input: 1-byte file', '/t/tiny.ko', /could not insert module \/t\/tiny\.ko: /));
  add(rejects('bad input: not an ELF file', '/t/notelf.ko', /could not insert module \/t\/notelf\.ko: Invalid module format\n$/));
  add(rejects('bad input: a directory', '/t', /^insmod: ERROR: could not (load|insert) module \/t: /));
  add(rejects('bad input: /dev/zero ends promptly', '/dev/zero', /^insmod: ERROR: could not (load|insert) module \/dev\/zero: /, { maxMs: 30_000, timeout: 60 }));
  add(rejects('bad input: truncated ELF', '/t/trunc.ko', /could not insert module \/t\/trunc\.ko: Invalid module format\n$/));
  add(rejects('bad input: truncated gzip', '/t/trunc.ko.gz', /^insmod: ERROR: gzip: .*\ninsmod: ERROR: could not insert module \/t\/trunc\.ko\.gz: .*\n$/));
  add(rejects('bad input: truncated xz', '/t/trunc.ko.xz', /^insmod: ERROR: xz: .*\ninsmod: ERROR: could not insert module \/t\/trunc\.ko\.xz: .*\n$/));
  add(rejects('bad input: truncated zstd', '/t/trunc.ko.zst', /^insmod: ERROR: zstd: .*\ninsmod: ERROR: could not insert module \/t\/trunc\.ko\.zst: .*\n$/));
  add(rejects('bad input: corrupt gzip', '/t/corrupt.ko.gz', /^insmod: ERROR: gzip: .*\ninsmod: ERROR: could not insert module \/t\/corrupt\.ko\.gz: .*\n$/));
  add(rejects('bad input: corrupt xz', '/t/corrupt.ko.xz', /^insmod: ERROR: xz: .*\ninsmod: ERROR: could not insert module \/t\/corrupt\.ko\.xz: .*\n$/));
  add(rejects('bad input: corrupt zstd', '/t/corrupt.ko.zst', /^insmod: ERROR: zstd: .*\ninsmod: ERROR: could not insert module \/t\/corrupt\.ko\.zst: .*\n$/));

  // ---- parity: lsmod ----
  add({
    name: 'parity: lsmod with one module is byte-identical to kmod lsmod',
    steps: [`${KMOD}/insmod /t/dummy.ko`, 'lsmod', `${KMOD}/lsmod`],
    check: ([, ours, theirs]) => {
      succeeded(ours, [], 'lsmod');
      ok(theirs, 'kmod lsmod');
      assert.equal(ours.out, theirs.out);
      assert.match(ours.out, /^dummy {14} [ \d]{7}\d {2}0$/m);
    },
  });
  add({
    name: 'parity: lsmod with seven modules and holders is byte-identical to kmod lsmod',
    steps: [
      `for m in fs/fat/fat fs/fat/vfat fs/fat/msdos fs/nls/nls_utf8 fs/nls/nls_cp437; do ${KMOD}/insmod $(mod $m) || exit 1; done; ${KMOD}/insmod /t/dummy.ko && ${KMOD}/insmod /t/pp.ko`,
      'lsmod', `${KMOD}/lsmod`, 'modnames',
    ],
    check: ([ins, ours, theirs, names]) => {
      succeeded(ins, [], 'insmod x7');
      succeeded(ours, [], 'lsmod');
      ok(theirs, 'kmod lsmod');
      assert.equal(ours.out, theirs.out);
      loaded(names, ['dummy', 'fat', 'msdos', 'nls_cp437', 'nls_utf8', 'param_printer', 'vfat']);
      assert.match(ours.out, /^fat +\d+ {2}2 (msdos,vfat|vfat,msdos)$/m, ours.out);
    },
  });

  // ---- rmmod ----
  add({
    name: 'rmmod: names, file paths and dashes; several at once',
    steps: [`${KMOD}/insmod /t/dummy.ko && ${KMOD}/insmod $(mod fs/nls/nls_utf8) && ${KMOD}/insmod $(mod fs/fat/fat) && ${KMOD}/insmod $(mod fs/fat/vfat)`,
      'rmmod -v /t/dummy.ko nls-utf8', 'rmmod vfat fat', 'modnames'],
    check: ([ins, a, b, names]) => {
      succeeded(ins, [], 'insmod');
      ok(a, 'rmmod');
      assert.equal(a.rc, 0, show(a));
      ok(b, 'rmmod');
      succeeded(b, [], 'rmmod vfat fat');
      loaded(names, []);
    },
  });
  add({
    name: 'rmmod: one failure does not stop the others; exit 1',
    steps: [`${KMOD}/insmod /t/dummy.ko`, 'rmmod fat dummy', 'modnames'],
    check: ([, r, names]) => {
      failed(r, 'rmmod: ERROR: Module fat is not currently loaded\n', 'rmmod fat dummy');
      loaded(names, []);
    },
  });

  // ---- force ----
  add(loads("force: -f on Debian's signed uncompressed dummy.ko", '/t/dummy.ko', 'read+init_module', { flags: '-f' }));
  add(loads("force: -f on Debian's signed module, xz-compressed", '/t/dummy.ko.xz', XZ, { flags: '-f' }));
  add(loads("force: -f on Debian's signed module, zstd-compressed", '/t/dummy.ko.zst', ZST, { flags: '-f' }));
  add(loads('force: --force-vermagic on a .ko', '/t/dummy.ko', 'read+init_module', { flags: '--force-vermagic' }));
  if (xzIn) {
    add({
      name: "force: -f on Debian's own dummy.ko.xz from /lib/modules",
      steps: ['insmod -v -f $(mod drivers/net/dummy)', 'modnames'],
      check: ([ins, names]) => {
        ok(ins, 'insmod');
        assert.equal(ins.rc, 0, show(ins));
        assert.match(ins.err, /via finit_module \(in-kernel xz\)\n$/, show(ins));
        loaded(names, ['dummy']);
      },
    });
  }
  add({
    name: "force: reference — kmod's insmod -f of a compressed signed module is refused (kmod-ts loads it)",
    steps: [`${KMOD}/insmod -f /t/dummy.ko.xz`, 'modnames'],
    check: ([k, names]) => {
      ok(k, 'kmod');
      // Recorded, not required: the spec says kmod keeps the stale signature.
      assert.equal(k.rc, 1, `kmod loaded it after all: ${show(k)}`);
      assert.match(k.err, /Key was rejected by service/, show(k));
      loaded(names, []);
    },
  });

  // ---- concurrency ----
  const both = (f: string) => `insmod ${f} 2>/tmp/e1 & p1=$!; insmod ${f} 2>/tmp/e2 & p2=$!; wait $p1; r1=$?; wait $p2; r2=$?; echo $r1 $r2; cat /tmp/e1 /tmp/e2 >&2`;
  for (const f of xzIn ? ['/t/dummy.ko'] : ['/t/dummy.ko', '/t/dummy.ko.xz']) {
    add({
      name: `concurrency: two insmods of ${f.slice(3)} at once (init_module) → one loads, the other gets File exists`,
      steps: [both(f), 'modnames'],
      check: ([s, names]) => {
        ok(s, 'insmod x2');
        assert.deepEqual(s.out.trim().split(' ').sort(), ['0', '1'], `exit statuses; got ${show(s)}`);
        assert.equal(s.err, insert(f, 'File exists'), show(s));
        loaded(names, ['dummy']);
      },
    });
  }
  if (xzIn) {
    // Since Linus Torvalds' "modules: catch concurrent module loads, treat them as idempotent"
    // (2023), a finit_module of a file (inode) that another finit_module is already loading waits
    // for it and returns its result: both may exit 0. Later ones get EEXIST as usual.
    add({
      name: 'concurrency: two insmods of dummy.ko.xz at once (finit_module) → loaded once; the second gets File exists, or the first\'s success (the kernel makes concurrent finit_module of one file idempotent)',
      steps: [both('/t/dummy.ko.xz'), 'modnames'],
      check: ([s, names]) => {
        ok(s, 'insmod x2');
        const rcs = s.out.trim().split(' ').sort().join(' ');
        if (rcs === '0 0') assert.equal(s.err, '', show(s));
        else {
          assert.equal(rcs, '0 1', `exit statuses; got ${show(s)}`);
          assert.equal(s.err, insert('/t/dummy.ko.xz', 'File exists'), show(s));
        }
        loaded(names, ['dummy']);
      },
    });
  }
  cells.push(...depmodCells(kernel)); // last: they rewrite the guest's module database
  return cells;
}

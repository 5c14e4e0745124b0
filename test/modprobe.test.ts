/**
 * modprobe in-process over fixture roots (a small /lib/modules tree of fixture modules, /sys/module,
 * /proc/cmdline, /etc/modprobe.d) with a recording fake of the syscall layer standing in for a
 * kernel: what is inserted, in which order, with which parameter string; install and remove
 * commands; removal with holders, unused dependencies and -w; the library's probeModule,
 * removeProbed and resolveModule; the configuration and kernel command line parsers.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fakeSys, type FakeSys } from './helpers/fake-sys.js';
import { fixtureModule, tempDir, writeTree } from './helpers/modules.js';
import { runMain } from './helpers/run.js';
import { IndexTrie } from '../src/db/index-trie.js';
import { kernelCmdlineOptions, parseModprobeConfig, readModprobeConfig } from '../src/db/modprobe-config.js';
import { splitModprobeOptions } from '../applets/modprobe.js';
import { probeModule, removeProbed, resolveModule } from '../src/ops/probe-run.js';
import { ProbeError, SyscallError } from '../src/errors.js';
import { nativeSyscalls, O_NONBLOCK, O_TRUNC } from '../src/kernel/syscalls.js';

const KVER = '6.1.0-test';
const MODS = `lib/modules/${KVER}`;

/** The module tree: vfat → fat; dummy; tun; loop; xfs → libcrc32c; a softdep; builtins. */
const DEP = [
  'kernel/fs/fat/fat.ko:',
  'kernel/fs/fat/vfat.ko: kernel/fs/fat/fat.ko',
  'kernel/drivers/net/dummy.ko:',
  'kernel/drivers/net/tun.ko:',
  'kernel/drivers/block/loop.ko:',
  'kernel/lib/libcrc32c.ko:',
  'kernel/fs/xfs/xfs.ko: kernel/lib/libcrc32c.ko',
  'kernel/net/bridge/br-netfilter.ko: kernel/net/bridge/bridge.ko kernel/net/llc/llc.ko',
  'kernel/net/bridge/bridge.ko: kernel/net/llc/llc.ko',
  'kernel/net/llc/llc.ko:',
  '',
].join('\n');

function tree(extra: Record<string, string | Buffer> = {}): string {
  const root = tempDir('kmod-ts-modprobe-');
  const files: Record<string, string | Buffer> = {
    [`${MODS}/modules.dep`]: DEP,
    [`${MODS}/modules.alias`]: ['alias fs-vfat vfat', 'alias net-pf-*-dummy dummy', 'alias char-major-10-200 tun', 'alias devname:loop-control loop', ''].join('\n'),
    [`${MODS}/modules.symbols`]: ['alias symbol:fat_fill_super fat', 'alias symbol:crc32c libcrc32c', ''].join('\n'),
    [`${MODS}/modules.builtin`]: 'kernel/fs/ext4/ext4.ko\n',
    [`${MODS}/modules.builtin.modinfo`]: 'ext4.alias=fs-ext4\0ext4.license=GPL\0',
    [`${MODS}/modules.softdep`]: 'softdep xfs pre: crc32c-intel\n',
    'proc/cmdline': 'BOOT_IMAGE=/vmlinuz quiet tun.debug=1 modprobe.blacklist=loop\n',
    'etc/modprobe.d/options.conf': 'options dummy numdummies=3\noptions vfat utf8=1\n',
    ...extra,
  };
  for (const line of DEP.split('\n')) {
    const file = line.slice(0, line.indexOf(':'));
    if (file) files[`${MODS}/${file}`] = fixtureModule({ name: file.replace(/.*\//, '').replace('.ko', '') });
  }
  return writeTree(root, files);
}

/** A fake kernel over the fixture's /sys/module: insertions make modules live, removals take them away. */
function kernel(root: string, script: Parameters<typeof fakeSys>[0] = {}): FakeSys {
  const sys = fakeSys(script);
  const dep = new Map(DEP.split('\n').filter(Boolean).map((l) => {
    const [f, d] = l.split(':');
    const name = (p: string) => p.replace(/.*\//, '').replace('.ko', '').replaceAll('-', '_');
    return [name(f), d.trim() ? d.trim().split(' ').map(name) : []];
  }));
  const live = (name: string) => {
    const dir = join(root, 'sys/module', name);
    mkdirSync(join(dir, 'holders'), { recursive: true });
    writeFileSync(join(dir, 'initstate'), 'live\n');
    writeFileSync(join(dir, 'refcnt'), '0\n');
    for (const d of dep.get(name) ?? []) {
      const ref = join(root, 'sys/module', d, 'refcnt');
      if (existsSync(ref)) writeFileSync(ref, `${Number(readFileSync(ref, 'utf8')) + 1}\n`);
      mkdirSync(join(root, 'sys/module', d, 'holders'), { recursive: true });
      writeFileSync(join(root, 'sys/module', d, 'holders', name), '');
    }
  };
  const { initModule, deleteModule } = sys;
  sys.initModule = (image, params) => {
    initModule(image, params);
    const m = /name=([\w-]+)/.exec(Buffer.from(image instanceof Uint8Array ? image : (image.address as Buffer)).toString('latin1'));
    live(m![1].replaceAll('-', '_'));
  };
  sys.deleteModule = (name, flags) => {
    deleteModule(name, flags);
    if (!existsSync(join(root, 'sys/module', name))) throw new SyscallError('delete_module', 2);
    rmSync(join(root, 'sys/module', name), { recursive: true, force: true });
    for (const d of dep.get(name) ?? []) {
      const ref = join(root, 'sys/module', d, 'refcnt');
      if (existsSync(ref)) writeFileSync(ref, `${Number(readFileSync(ref, 'utf8')) - 1}\n`);
      rmSync(join(root, 'sys/module', d, 'holders', name), { force: true });
    }
  };
  return sys;
}

const inserted = (sys: FakeSys) => sys.kernelCalls().filter((c) => c.syscall === 'init_module').map((c) => [/name=([\w-]+)/.exec(c.image!.toString('latin1'))![1], c.params]);
const removed = (sys: FakeSys) => sys.kernelCalls().filter((c) => c.syscall === 'delete_module').map((c) => c.name);

async function modprobe(root: string, sys: FakeSys, ...args: string[]) {
  return runMain(['modprobe', '-S', KVER, ...args], { root, sys, env: {} });
}

describe('modprobe loads with dependencies, in kmod order, with kmod words', () => {
  it('loads fat then vfat, with the options of modprobe.d', async () => {
    const root = tree();
    const sys = kernel(root);
    const r = await modprobe(root, sys, 'vfat');
    assert.deepEqual(r, { status: 0, stdout: '', stderr: '' });
    assert.deepEqual(inserted(sys), [['fat', ''], ['vfat', 'utf8=1 ']]);
    assert.equal(sys.liveMappings(), 0);
  });

  it('prints each insmod under -v, and loads nothing already live', async () => {
    const root = tree();
    const sys = kernel(root);
    await modprobe(root, sys, 'fat');
    const r = await modprobe(root, sys, '-v', 'vfat', 'x=1');
    assert.equal(r.stdout, `insmod ${root}/${MODS}/kernel/fs/fat/vfat.ko utf8=1 x=1\n`);
    assert.deepEqual(inserted(sys), [['fat', ''], ['vfat', 'utf8=1 x=1']]);
  });

  it('resolves aliases, symbols and the kernel command line options', async () => {
    const root = tree();
    const sys = kernel(root);
    assert.equal((await modprobe(root, sys, 'net-pf-16-dummy')).status, 0);
    assert.equal((await modprobe(root, sys, 'symbol:crc32c')).status, 0);
    assert.equal((await modprobe(root, sys, 'char-major-10-200', 'a="b c"')).status, 0);
    assert.deepEqual(inserted(sys), [['dummy', 'numdummies=3 '], ['libcrc32c', ''], ['tun', 'debug=1 a="b c"']]);
  });

  it('takes the kernel’s own request (-q -- NAME) and is silent when nothing matches', async () => {
    const root = tree();
    const sys = kernel(root);
    assert.deepEqual(await modprobe(root, sys, '-q', '--', 'fs-vfat'), { status: 0, stdout: '', stderr: '' });
    assert.deepEqual(await modprobe(root, sys, '-q', '--', 'fs-nosuch'), { status: 1, stdout: '', stderr: '' });
    assert.deepEqual(inserted(sys).map(([n]) => n), ['fat', 'vfat']);
  });

  it('says FATAL for a name that resolves to nothing, WARNING under -a and goes on', async () => {
    const root = tree();
    const sys = kernel(root);
    const dir = `${root}/${MODS}`;
    assert.deepEqual(await modprobe(root, sys, 'nosuch'), { status: 1, stdout: '', stderr: `modprobe: FATAL: Module nosuch not found in directory ${dir}\n` });
    const r = await modprobe(root, sys, '-a', 'nosuch', 'dummy');
    assert.deepEqual(r, { status: 1, stdout: '', stderr: `modprobe: WARNING: Module nosuch not found in directory ${dir}\n` });
    assert.deepEqual(inserted(sys).map(([n]) => n), ['dummy']);
  });

  it('applies the blacklist to aliases (and names with -b), never to dependencies', async () => {
    const root = tree({ 'etc/modprobe.d/bl.conf': 'blacklist fat\nblacklist vfat\n' });
    const sys = kernel(root);
    assert.equal((await modprobe(root, sys, 'fs-vfat')).status, 0);
    assert.equal((await modprobe(root, sys, 'devname:loop-control')).status, 0); // modprobe.blacklist=loop
    assert.equal((await modprobe(root, sys, '-b', 'vfat')).status, 0);
    assert.deepEqual(inserted(sys), []);
    assert.equal((await modprobe(root, sys, 'vfat')).status, 0);
    assert.deepEqual(inserted(sys).map(([n]) => n), ['fat', 'vfat']);
  });

  it('says why an insertion failed, naming the module asked for, and stops there', async () => {
    const root = tree();
    const sys = kernel(root, { init_module: [22] });
    const r = await modprobe(root, sys, 'vfat');
    assert.deepEqual(r, { status: 1, stdout: '', stderr: "modprobe: ERROR: could not insert 'vfat': Invalid argument\n" });
    assert.equal(inserted(sys).length, 1);
    const unknown = kernel(tree(), { init_module: [2] });
    assert.equal((await modprobe(root, unknown, 'dummy')).stderr, "modprobe: ERROR: could not insert 'dummy': Unknown symbol in module, or unknown parameter (see dmesg)\n");
  });

  it('--first-time fails on a loaded or built-in module; otherwise they are success', async () => {
    const root = tree();
    const sys = kernel(root);
    await modprobe(root, sys, 'dummy');
    assert.deepEqual(await modprobe(root, sys, 'dummy'), { status: 0, stdout: '', stderr: '' });
    assert.deepEqual(await modprobe(root, sys, '--first-time', 'dummy'), { status: 1, stdout: '', stderr: "modprobe: ERROR: could not insert 'dummy': Module already in kernel\n" });
    assert.deepEqual(await modprobe(root, sys, 'fs-ext4'), { status: 0, stdout: '', stderr: '' });
    assert.equal((await modprobe(root, sys, '--first-time', 'ext4')).status, 1);
    assert.equal(inserted(sys).length, 1);
  });

  it('-f strips versions and vermagic of every module it inserts', async () => {
    const root = tree();
    const sys = kernel(root);
    assert.equal((await modprobe(root, sys, '-f', 'vfat')).status, 0);
    const images = sys.kernelCalls().filter((c) => c.syscall === 'init_module');
    assert.equal(images.length, 2);
    for (const c of images) {
      assert.equal(c.source, 'buffer');
      assert.doesNotMatch(c.image!.toString('latin1'), /vermagic=6/);
    }
  });

  it('runs install commands through /bin/sh with $CMDLINE_OPTS and MODPROBE_MODULE, and reports their failure', async () => {
    const out = join(tempDir(), 'out');
    const root = tree({
      'etc/modprobe.d/cmd.conf': `install dummy echo "$MODPROBE_MODULE [$CMDLINE_OPTS] $MODPROBE_OPTIONS" > ${out}\ninstall tun exit 3\n`,
    });
    const sys = kernel(root);
    assert.deepEqual(await modprobe(root, sys, '-s', 'dummy', 'x=1'), { status: 0, stdout: '', stderr: '' });
    assert.equal(readFileSync(out, 'utf8'), 'dummy [numdummies=3 x=1] -s\n');
    const r = await modprobe(root, sys, 'tun');
    assert.equal(r.status, 1);
    assert.deepEqual(sys.calls.filter((c) => c.syscall === 'syslog').map((c) => c.message), []);
    assert.equal(r.stderr, "modprobe: ERROR: Error running install command 'exit 3' for module tun: retcode 3\nmodprobe: ERROR: could not insert 'tun': Invalid argument\n");
    assert.deepEqual(inserted(sys), []);
    // -i: the command is ignored, the module inserted
    assert.equal((await modprobe(root, sys, '-i', 'tun')).status, 0);
    assert.deepEqual(inserted(sys).map(([n]) => n), ['tun']);
  });

  it('logs to syslog when stderr is closed (as the kernel runs it), without passing -s on', async () => {
    const out = join(tempDir(), 'out');
    const root = tree({ 'etc/modprobe.d/cmd.conf': `install dummy echo "[$MODPROBE_OPTIONS]" > ${out}\n` });
    const sys = kernel(root);
    const r = await runMain(['modprobe', '-S', KVER, '-q', '--', 'nosuchmodule'], { root, sys, env: {}, stderrClosed: true });
    assert.deepEqual(r, { status: 1, stdout: '', stderr: '' });
    const again = await runMain(['modprobe', '-S', KVER, 'nosuchmodule'], { root, sys, env: {}, stderrClosed: true });
    assert.equal(again.stderr, '');
    assert.deepEqual(sys.calls.filter((c) => c.syscall === 'syslog').map((c) => c.message), [`FATAL: Module nosuchmodule not found in directory ${root}/lib/modules/${KVER}`]);
    assert.equal((await runMain(['modprobe', '-S', KVER, 'dummy'], { root, sys, env: {}, stderrClosed: true })).status, 0);
    assert.equal(readFileSync(out, 'utf8'), '[]\n');
  });

  it('loads softdeps around the module: pre first, post after; a softdep beats an install command', async () => {
    const root = tree({ 'etc/modprobe.d/soft.conf': 'softdep vfat pre: dummy post: tun\ninstall vfat /bin/false\n' });
    const sys = kernel(root);
    assert.equal((await modprobe(root, sys, 'vfat')).status, 0);
    assert.deepEqual(inserted(sys).map(([n]) => n), ['fat', 'dummy', 'vfat', 'tun']);
  });

  it('-a -j 2 loads every argument once, each after its dependencies', async () => {
    const root = tree();
    const sys = kernel(root);
    const r = await modprobe(root, sys, '-a', '-j', '2', 'vfat', 'fat', 'br_netfilter', 'xfs', 'dummy', 'nosuch', `${root}/${MODS}/kernel/drivers/net/tun.ko`, './nosuch.ko');
    assert.equal(r.status, 1);
    assert.deepEqual(r.stderr.split('\n').filter(Boolean).sort(), [
      'modprobe: WARNING: Failed to get module from path ./nosuch.ko: No such file or directory',
      `modprobe: WARNING: Module nosuch not found in directory ${root}/${MODS}`,
    ]);
    const order = inserted(sys).map(([n]) => n);
    assert.deepEqual([...order].sort(), ['br-netfilter', 'bridge', 'dummy', 'fat', 'libcrc32c', 'llc', 'tun', 'vfat', 'xfs']);
    const before = (a: string, b: string) => assert.ok(order.indexOf(a) < order.indexOf(b), `${a} before ${b} in ${order}`);
    before('fat', 'vfat');
    before('llc', 'bridge');
    before('bridge', 'br-netfilter');
    before('libcrc32c', 'xfs');
  });

  it('-a -j 2 keeps two insertions in the kernel at once through the async syscalls, still each after its dependencies; without -j none is async', async () => {
    const root = tree();
    const sys = kernel(root);
    let inflight = 0;
    let most = 0;
    let asyncCalls = 0;
    sys.initModuleAsync = async (image, params) => {
      asyncCalls++;
      most = Math.max(most, ++inflight);
      // the kernel takes its time; the image is only read once the call is made
      await new Promise((resolve) => setTimeout(resolve, 20));
      inflight--;
      sys.initModule(image, params);
    };
    const names = ['vfat', 'br_netfilter', 'xfs', 'dummy', 'tun'];
    const r = await modprobe(root, sys, '-a', '-j', '2', ...names);
    assert.deepEqual(r, { status: 0, stdout: '', stderr: '' });
    const order = inserted(sys).map(([n]) => n);
    assert.deepEqual([...order].sort(), ['br-netfilter', 'bridge', 'dummy', 'fat', 'libcrc32c', 'llc', 'tun', 'vfat', 'xfs']);
    assert.equal(asyncCalls, order.length);
    assert.equal(most, 2);
    const before = (a: string, b: string) => assert.ok(order.indexOf(a) < order.indexOf(b), `${a} before ${b} in ${order}`);
    before('fat', 'vfat');
    before('llc', 'bridge');
    before('bridge', 'br-netfilter');
    before('libcrc32c', 'xfs');

    const root1 = tree();
    const sys1 = kernel(root1);
    let async1 = 0;
    sys1.initModuleAsync = async () => { async1++; };
    assert.equal((await modprobe(root1, sys1, '-a', ...names)).status, 0);
    assert.equal(async1, 0);
    assert.equal(inserted(sys1).length, order.length);
  });

  it('-j N with the real syscall layer: failures read as kmod words (no module reaches a syscall here)', async () => {
    // every file fails before any module syscall: missing, shorter than 6 bytes, corrupt xz
    const root = tempDir('kmod-ts-modprobe-j-');
    writeTree(root, {
      [`${MODS}/modules.dep`]: 'kernel/a.ko.xz:\nkernel/b.ko:\nkernel/c.ko.xz:\n',
      [`${MODS}/kernel/b.ko`]: 'abc',
      [`${MODS}/kernel/c.ko.xz`]: Buffer.concat([Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]), Buffer.alloc(64, 7)]),
    });
    const r = await runMain(['modprobe', '-S', KVER, '-a', '-j', '2', 'a', 'b', 'c'], { root, sys: nativeSyscalls(), env: {} });
    assert.equal(r.status, 1);
    assert.deepEqual(r.stderr.split('\n').filter(Boolean).sort(), [
      "modprobe: ERROR: could not insert 'a': Unknown symbol in module, or unknown parameter (see dmesg)",
      "modprobe: ERROR: could not insert 'b': Invalid argument",
      "modprobe: ERROR: could not insert 'c': Invalid argument",
      'modprobe: ERROR: xz: File is corrupt',
    ]);
  });

  it('rejects a bad -j and -w as kmod rejects -w', async () => {
    const root = tree();
    const sys = kernel(root);
    assert.deepEqual(await modprobe(root, sys, '-a', '-j', '0', 'vfat'), { status: 1, stdout: '', stderr: "modprobe: ERROR: unexpected jobs value '0'.\n" });
    assert.deepEqual(await modprobe(root, sys, '-r', '-w', '1x', 'vfat'), { status: 1, stdout: '', stderr: "modprobe: ERROR: unexpected wait value '1x'.\n" });
  });
});

describe('modprobe -r removes as kmod does', () => {
  async function loaded(...names: string[]) {
    const root = tree({ 'etc/modprobe.d/rm.conf': 'remove tun /bin/true\n' });
    const sys = kernel(root);
    for (const n of names) assert.equal((await modprobe(root, sys, n)).status, 0);
    sys.calls.length = 0;
    return { root, sys };
  }

  it('removes the module, then the dependencies it leaves unused (one pass, in reverse modules.dep order)', async () => {
    const { root, sys } = await loaded('br_netfilter', 'dummy');
    // llc is looked at first, still held by bridge; kmod does not come back to it
    assert.deepEqual(await modprobe(root, sys, '-r', '-v', 'br_netfilter'), { status: 0, stdout: 'rmmod br_netfilter\nrmmod bridge\n', stderr: '' });
    assert.deepEqual(removed(sys), ['br_netfilter', 'bridge']);
    assert.deepEqual(sys.kernelCalls().map((c) => c.flags), [O_NONBLOCK, O_NONBLOCK]);
    assert.equal((await modprobe(root, sys, '-r', 'llc')).status, 0);
  });

  it('keeps a dependency still used by another module', async () => {
    const { root, sys } = await loaded('vfat');
    writeFileSync(join(root, 'sys/module/fat/refcnt'), '2\n');
    assert.equal((await modprobe(root, sys, '-r', 'vfat')).status, 0);
    assert.deepEqual(removed(sys), ['vfat']);
  });

  it('refuses a module in use unless --remove-holders, which removes the holders first', async () => {
    const { root, sys } = await loaded('vfat');
    assert.deepEqual(await modprobe(root, sys, '-r', 'fat'), { status: 1, stdout: '', stderr: 'modprobe: FATAL: Module fat is in use.\n' });
    assert.deepEqual(removed(sys), []);
    // vfat goes, and with it fat, which vfat left unused; then kmod removes fat itself again
    assert.deepEqual(await modprobe(root, sys, '-r', '--remove-holders', 'fat'), { status: 1, stdout: '', stderr: "modprobe: ERROR: could not remove 'fat': No such file or directory\n" });
    assert.deepEqual(removed(sys), ['vfat', 'fat', 'fat']);
  });

  it('is silent for a module not loaded, FATAL with --first-time, FATAL for a builtin', async () => {
    const { root, sys } = await loaded();
    assert.deepEqual(await modprobe(root, sys, '-r', 'dummy'), { status: 0, stdout: '', stderr: '' });
    assert.deepEqual(await modprobe(root, sys, '-r', '--first-time', 'dummy'), { status: 1, stdout: '', stderr: 'modprobe: FATAL: Module dummy is not in kernel.\n' });
    assert.deepEqual(await modprobe(root, sys, '-r', 'ext4'), { status: 1, stdout: '', stderr: 'modprobe: FATAL: Module ext4 is builtin.\n' });
    assert.deepEqual(await modprobe(root, sys, '-r', 'nosuch'), { status: 1, stdout: '', stderr: 'modprobe: FATAL: Module nosuch not found.\n' });
    assert.deepEqual(await modprobe(root, sys, '-r', '-a', 'nosuch', 'ext4', 'dummy'), {
      status: 1,
      stdout: '',
      stderr: 'modprobe: WARNING: Module nosuch not found.\nmodprobe: WARNING: Module ext4 is builtin.\n',
    });
    assert.deepEqual(removed(sys), []);
  });

  it('runs remove commands instead of delete_module, and -f passes O_TRUNC', async () => {
    const { root, sys } = await loaded('dummy');
    assert.deepEqual(await modprobe(root, sys, '-r', '-v', 'tun'), { status: 0, stdout: 'remove /bin/true\n', stderr: '' });
    assert.equal((await modprobe(root, sys, '-r', '-f', 'dummy')).status, 0);
    assert.deepEqual(sys.kernelCalls().map((c) => [c.name, c.flags]), [['dummy', O_NONBLOCK | O_TRUNC]]);
  });

  it('says why delete_module failed, and -w retries EAGAIN until it succeeds', async () => {
    const { root, sys } = await loaded('dummy');
    const busy = kernel(root, { delete_module: [16] });
    assert.deepEqual(await modprobe(root, busy, '-r', 'dummy'), { status: 1, stdout: '', stderr: "modprobe: ERROR: could not remove 'dummy': Device or resource busy\n" });
    const again = kernel(root, { delete_module: [11, 11] });
    assert.deepEqual(await modprobe(root, again, '-r', '-w', '2000', 'dummy'), { status: 0, stdout: '', stderr: '' });
    assert.equal(removed(again).length, 3);
    void sys;
  });
});

describe('the modprobe library', () => {
  it('resolveModule gives what --show-depends prints, without loading', () => {
    const root = tree();
    const plans = resolveModule('fs-vfat', { root, kernelVersion: KVER, params: ['x=1'] });
    assert.deepEqual(plans.map((p) => [p.module, p.alias, p.blacklisted]), [['vfat', 'fs_vfat', false]]);
    assert.deepEqual(plans[0].actions, [
      { kind: 'insmod', module: 'fat', path: `${root}/${MODS}/kernel/fs/fat/fat.ko`, options: '' },
      { kind: 'insmod', module: 'vfat', path: `${root}/${MODS}/kernel/fs/fat/vfat.ko`, options: 'utf8=1 x=1' },
    ]);
    assert.deepEqual(resolveModule('fs-ext4', { root, kernelVersion: KVER })[0].actions, [{ kind: 'builtin', module: 'ext4' }]);
    assert.throws(() => resolveModule('nosuch', { root, kernelVersion: KVER }), (e) => e instanceof ProbeError && e.kind === 'not-found');
  });

  it('probeModule loads and says what it did; removeProbed undoes it', async () => {
    const root = tree();
    const sys = kernel(root);
    const r = await probeModule('vfat', { root, kernelVersion: KVER, sys });
    assert.deepEqual(r.map((o) => [o.module, o.status, o.actions.length]), [['vfat', 'loaded', 2]]);
    assert.deepEqual((await probeModule('vfat', { root, kernelVersion: KVER, sys }))[0].status, 'already-loaded');
    await assert.rejects(probeModule('vfat', { root, kernelVersion: KVER, sys, firstTime: true }), (e) => e instanceof ProbeError && e.kind === 'insert-failed' && e.code === 'EEXIST');
    await assert.rejects(removeProbed('fat', { root, kernelVersion: KVER, sys }), (e) => e instanceof ProbeError && e.kind === 'in-use');
    assert.deepEqual((await removeProbed('vfat', { root, kernelVersion: KVER, sys })).map((a) => a.kind === 'rmmod' && a.module), ['vfat', 'fat']);
    await assert.rejects(removeProbed('vfat', { root, kernelVersion: KVER, sys, firstTime: true }), (e) => e instanceof ProbeError && e.kind === 'not-in-kernel');
  });

  it('reads the .bin indexes when present, with the same answers as the text files', () => {
    const root = tree();
    const dir = join(root, MODS);
    writeFileSync(join(dir, 'modules.dep.bin'), IndexTrie.fromText(readFileSync(join(dir, 'modules.dep'), 'latin1'), 'dep').toBuffer());
    writeFileSync(join(dir, 'modules.alias.bin'), IndexTrie.fromText(readFileSync(join(dir, 'modules.alias'), 'latin1'), 'alias').toBuffer());
    // the .bin says vfat has no dependencies: it is what is read
    const t = IndexTrie.fromText('kernel/fs/fat/vfat.ko:\n', 'dep');
    writeFileSync(join(dir, 'modules.dep.bin'), t.toBuffer());
    assert.deepEqual(resolveModule('vfat', { root, kernelVersion: KVER })[0].actions.map((a) => a.module), ['vfat']);
    assert.deepEqual(resolveModule('fs-vfat', { root, kernelVersion: KVER })[0].actions.map((a) => a.module), ['vfat']);
    // a missing .bin falls back to its text file (kmod would say "not found")
    assert.deepEqual(resolveModule('symbol:fat_fill_super', { root, kernelVersion: KVER })[0].module, 'fat');
  });
});

describe('modprobe.d and the kernel command line as kmod reads them', () => {
  it('parses every keyword with kmod’s quirks', () => {
    const { config, diagnostics } = parseModprobeConfig(
      [
        'alias my-dev* dum-my',
        'options dummy  a=1\tb=2 ',
        'install foo\t/bin/true  x',
        'softdep m  pre: a b   post: c',
        'softdep n pre: a post: b c',
        'softdep cifs gcm',
        'weakdep x w1   w2 ',
        'blacklist a-b',
        'options x \\',
        '  y=1',
        '  # indented',
        'alias lonely',
        'alias bad]x y',
        'include /x',
        'bogus',
        '',
      ].join('\n'),
      'f.conf',
    );
    assert.deepEqual(config.aliases, [{ pattern: 'my_dev*', module: 'dum_my' }]);
    assert.deepEqual(config.options, [{ module: 'dummy', options: ' a=1 b=2 ' }, { module: 'x', options: '  y=1' }]);
    assert.deepEqual(config.install, [{ module: 'foo', command: '/bin/true  x' }]);
    assert.deepEqual(config.softdeps, [
      { module: 'm', pre: [], post: ['c'] },
      { module: 'n', pre: ['a'], post: ['b', 'c'] },
      { module: 'cifs', pre: [], post: [] },
    ]);
    assert.deepEqual(config.weakdeps, [{ module: 'x', deps: ['w1', 'w2'] }]);
    assert.deepEqual(config.blacklist, ['a_b']);
    assert.deepEqual(diagnostics, [
      { kind: 'bad-line', fn: 'kmod_config_parse', file: 'f.conf', line: 11, command: '#' },
      { kind: 'bad-line', fn: 'kmod_config_parse', file: 'f.conf', line: 12, command: 'alias' },
      { kind: 'bad-line', fn: 'kmod_config_parse', file: 'f.conf', line: 13, command: 'alias' },
      { kind: 'deprecated', fn: 'kmod_config_parse', file: 'f.conf', command: 'include' },
      { kind: 'bad-line', fn: 'kmod_config_parse', file: 'f.conf', line: 15, command: 'bogus' },
    ]);
  });

  it('sorts files by name across directories, the first directory providing a name winning', () => {
    const root = tempDir();
    writeTree(root, {
      'a/10-x.conf': 'alias a1 x\n',
      'a/30-z.conf': 'alias a3 x\n',
      'b/10-x.conf': 'alias shadowed x\n',
      'b/20-y.conf': 'alias b2 x\n',
      'b/.hidden.conf': 'alias hidden x\n',
      'b/short': 'alias short x\n',
      'm/modules.softdep': 'softdep x pre: y\n',
    });
    mkdirSync(join(root, 'b/sub.conf'));
    const { config, diagnostics } = readModprobeConfig({ dirname: join(root, 'm'), paths: [join(root, 'a'), join(root, 'b')], cmdline: '' });
    assert.deepEqual(config.aliases.map((a) => a.pattern), ['a1', 'b2', 'a3']);
    assert.deepEqual(config.softdeps.map((s) => s.module), ['x']);
    assert.deepEqual(diagnostics, [{ kind: 'subdirectory', fn: 'conf_files_filter_out', file: join(root, 'b/sub.conf') }]);
  });

  it('reads MODULE.PARAM options and modprobe.blacklist from the kernel command line', () => {
    const line = 'BOOT_IMAGE=/vmlinuz root=/dev/sda1 modprobe.blacklist=virtio_pci,loop,xfs foo-bar.baz=1 "parport.dyndbg=file drivers/x.c +p" quoted.val="a b" bad..x=1 a.b.c=2 noeq.flag ro quiet dm_mod.x="y" testmodule.testparam=1.5G ivrs_acpihid[14:00.5]=AMD0020:00\n';
    assert.deepEqual(kernelCmdlineOptions(line), [
      ['modprobe', 'blacklist=virtio_pci,loop,xfs'],
      ['foo-bar', 'baz=1'],
      ['parport', 'dyndbg="file drivers/x.c +p"'],
      ['quoted', 'val="a b"'],
      ['noeq', 'flag'],
      ['dm_mod', 'x="y"'],
      ['testmodule', 'testparam=1.5G'],
      ['ivrs_acpihid[14:00', '5]=AMD0020:00'],
    ]);
    const { config, diagnostics } = readModprobeConfig({ dirname: tempDir(), paths: [], cmdline: line });
    assert.deepEqual(diagnostics, [{ kind: 'bad-kcmdline-name', fn: 'kcmdline_parse_result', module: 'ivrs_acpihid[14:00' }]);
    assert.deepEqual(config.blacklist, ['virtio_pci', 'loop', 'xfs']);
    assert.deepEqual(config.options.map((o) => `${o.module} ${o.options}`), ['foo_bar baz=1', 'parport dyndbg="file drivers/x.c +p"', 'quoted val="a b"', 'noeq flag', 'dm_mod x="y"', 'testmodule testparam=1.5G']);
  });

  it('splits MODPROBE_OPTIONS as kmod does, quirks included', () => {
    assert.deepEqual(splitModprobeOptions('-C /etc/x -q'), ['-C', '/etc/x', '-q']);
    assert.deepEqual(splitModprobeOptions('-C "/dev/null" --show-depends'), ['-C', '/dev/null', '', '--show-depends']);
    assert.deepEqual(splitModprobeOptions('a="b c" d'), ['a=b c', 'd']);
    assert.deepEqual(splitModprobeOptions(''), []);
  });
});

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { release } from 'node:os';
import { join } from 'node:path';
import { writeFileSync } from 'node:fs';
import { fakeSys } from './helpers/fake-sys.js';
import { tempDir, writeTree } from './helpers/modules.js';
import { runMain } from './helpers/run.js';
import { moduleNameFromArg } from '../src/ops/remove-module.js';

/** A root where fat is held by vfat, dummy is free, busy has refcnt 2, nounload has no refcnt. */
function root(): string {
  const r = tempDir('kmod-ts-rmmod-');
  writeTree(r, {
    [`lib/modules/${release()}/modules.builtin`]: 'kernel/fs/ext4/ext4.ko\nkernel/drivers/usb/core/usb-common.ko\n',
    'sys/module/fat/initstate': 'live\n',
    'sys/module/fat/refcnt': '1\n',
    'sys/module/fat/holders/vfat': '',
    'sys/module/fat/holders/msdos': '',
    'sys/module/vfat/initstate': 'live\n',
    'sys/module/vfat/refcnt': '0\n',
    'sys/module/dummy/initstate': 'live\n',
    'sys/module/dummy/refcnt': '0\n',
    'sys/module/snd_hda_intel/initstate': 'live\n',
    'sys/module/snd_hda_intel/refcnt': '0\n',
    'sys/module/busy/initstate': 'live\n',
    'sys/module/busy/refcnt': '2\n',
    'sys/module/nounload/initstate': 'live\n',
    'sys/module/builtinonly/parameters/x': '1\n',
  });
  return r;
}

describe('rmmod checks a module before removing it, in kmod words', () => {
  const cases: { args: string[]; stderr: string; removed: string[]; status: number; flags?: number }[] = [
    { args: ['dummy'], stderr: '', removed: ['dummy'], status: 0 },
    { args: ['dummy', 'vfat'], stderr: '', removed: ['dummy', 'vfat'], status: 0 },
    { args: ['snd-hda-intel'], stderr: '', removed: ['snd_hda_intel'], status: 0 },
    { args: ['fat'], stderr: 'rmmod: ERROR: Module fat is in use by: vfat msdos\n', removed: [], status: 1 },
    { args: ['nothere'], stderr: 'rmmod: ERROR: Module nothere is not currently loaded\n', removed: [], status: 1 },
    { args: ['builtinonly'], stderr: 'rmmod: ERROR: Module builtinonly is not currently loaded\n', removed: [], status: 1 },
    { args: ['ext4'], stderr: 'rmmod: ERROR: Module ext4 is builtin.\n', removed: [], status: 1 },
    { args: ['usb_common'], stderr: 'rmmod: ERROR: Module usb_common is builtin.\n', removed: [], status: 1 },
    { args: ['busy'], stderr: 'rmmod: ERROR: Module busy is in use\n', removed: [], status: 1 },
    { args: ['nounload'], stderr: 'rmmod: ERROR: Module unloading is not supported\n', removed: [], status: 1 },
    { args: ['nothere', 'dummy'], stderr: 'rmmod: ERROR: Module nothere is not currently loaded\n', removed: ['dummy'], status: 1 },
    { args: ['-f', 'fat'], stderr: '', removed: ['fat'], status: 0, flags: 0o5000 },
    { args: [], stderr: 'rmmod: ERROR: missing module name.\n', removed: [], status: 1 },
  ];
  for (const c of cases) {
    it(`rmmod ${c.args.join(' ')} → ${c.stderr.trim() || 'removed ' + c.removed.join(', ')}`, async () => {
      const sys = fakeSys();
      const r = await runMain(['rmmod', ...c.args], { root: root(), sys });
      assert.equal(r.stderr, c.stderr);
      assert.equal(r.status, c.status);
      assert.deepEqual(sys.kernelCalls().map((x) => x.name), c.removed);
      for (const call of sys.kernelCalls()) assert.equal(call.flags, c.flags ?? 0o4000);
    });
  }

  const refusals: [number, string][] = [
    [11, 'Resource temporarily unavailable'],
    [16, 'Device or resource busy'],
    [1, 'Operation not permitted'],
    [2, 'No such file or directory'],
  ];
  for (const [errno, text] of refusals) {
    it(`a delete_module refusal with errno ${errno} → "could not remove module dummy: ${text}"`, async () => {
      const r = await runMain(['rmmod', 'dummy'], { root: root(), sys: fakeSys({ delete_module: [errno] }) });
      assert.equal(r.stderr, `rmmod: ERROR: could not remove module dummy: ${text}\n`);
      assert.equal(r.status, 1);
    });
  }

  it('a path to a module file means the module of that name', async () => {
    const dir = tempDir();
    const path = join(dir, 'dummy.ko.xz');
    writeFileSync(path, 'x');
    assert.equal(moduleNameFromArg(path), 'dummy');
    const sys = fakeSys();
    const r = await runMain(['rmmod', path], { root: root(), sys });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(sys.kernelCalls()[0].name, 'dummy');
  });

  it('-h prints usage on stdout', async () => {
    const r = await runMain(['rmmod', '--help'], { sys: fakeSys() });
    assert.equal(r.status, 0);
    assert.match(r.stdout, /^Usage:\n\trmmod \[options\] modulename \.\.\./);
  });
});

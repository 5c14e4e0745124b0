import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { fakeSys } from './helpers/fake-sys.js';
import { tempDir, writeTree } from './helpers/modules.js';
import { runMain } from './helpers/run.js';
import { parseProcModules } from '../src/kernel/proc-modules.js';

const HEADER = 'Module                  Size  Used by\n';

function root(files: Record<string, string>): string {
  return writeTree(tempDir('kmod-ts-lsmod-'), files);
}

describe('lsmod prints kmod format byte for byte', () => {
  it('with holders, sizes from sysfs and counts from refcnt', async () => {
    const r = await runMain(['lsmod'], {
      sys: fakeSys(),
      root: root({
        'proc/modules':
          'vfat 24576 0 - Live 0xffffffffc0a00000\n' +
          'fat 90112 1 vfat, Live 0xffffffffc09e0000\n' +
          'a_module_with_a_very_long_name 8192 0 - Live 0xffffffffc09d0000 (OE)\n' +
          'dummy 16384 0 - Live 0xffffffffc09c0000\n',
        'sys/module/vfat/coresize': '20480\n',
        'sys/module/vfat/refcnt': '0\n',
        'sys/module/vfat/initstate': 'live\n',
        'sys/module/fat/coresize': '73728\n',
        'sys/module/fat/refcnt': '1\n',
        'sys/module/fat/holders/vfat': '',
        'sys/module/a_module_with_a_very_long_name/coresize': '123456789\n',
        'sys/module/a_module_with_a_very_long_name/refcnt': '3\n',
        'sys/module/dummy/coresize': '12288\n',
        'sys/module/dummy/refcnt': '0\n',
      }),
    });
    assert.equal(r.status, 0);
    assert.equal(r.stderr, '');
    assert.equal(
      r.stdout,
      HEADER +
        'vfat                   20480  0\n' +
        'fat                    73728  1 vfat\n' +
        'a_module_with_a_very_long_name 123456789  3\n' +
        'dummy                  12288  0\n',
    );
  });

  it('with no modules loaded prints only the header', async () => {
    const r = await runMain(['lsmod'], { sys: fakeSys(), root: root({ 'proc/modules': '' }) });
    assert.deepEqual(r, { status: 0, stdout: HEADER, stderr: '' });
  });

  it('a module gone from sysfs is printed from /proc/modules, without error', async () => {
    const r = await runMain(['lsmod'], {
      sys: fakeSys(),
      root: root({ 'proc/modules': 'fat 73728 2 vfat,msdos, Live 0x0\n' }),
    });
    assert.deepEqual(r, { status: 0, stdout: HEADER + 'fat                    73728  2 vfat,msdos\n', stderr: '' });
  });

  it('several holders are comma-separated', async () => {
    const r = await runMain(['lsmod'], {
      sys: fakeSys(),
      root: root({
        'proc/modules': 'udp_tunnel 32768 2 vxlan,ip6_udp_tunnel, Live 0x0\n',
        'sys/module/udp_tunnel/coresize': '32768\n',
        'sys/module/udp_tunnel/refcnt': '2\n',
        'sys/module/udp_tunnel/holders/vxlan': '',
        'sys/module/udp_tunnel/holders/ip6_udp_tunnel': '',
      }),
    });
    assert.match(r.stdout, /^udp_tunnel {13}32768 {2}2 (vxlan,ip6_udp_tunnel|ip6_udp_tunnel,vxlan)\n$/m);
  });

  it('no /proc/modules → kmod error, no header, exit 1', async () => {
    const r = await runMain(['lsmod'], { sys: fakeSys(), root: root({}) });
    assert.deepEqual(r, { status: 1, stdout: '', stderr: 'lsmod: ERROR: could not open /proc/modules: No such file or directory\n' });
  });

  it('any argument is too many', async () => {
    const r = await runMain(['lsmod', 'foo'], { sys: fakeSys(), root: root({ 'proc/modules': '' }) });
    assert.deepEqual(r, { status: 1, stdout: '', stderr: 'lsmod: ERROR: too many arguments provided.\n' });
  });

  it('reads the live system only under its root (KMOD_TS_SYSROOT)', async () => {
    const r = await runMain(['lsmod'], { sys: fakeSys(), root: undefined, env: { KMOD_TS_SYSROOT: root({ 'proc/modules': 'x 1 0 - Live 0x0\n' }) } });
    assert.equal(r.stdout, HEADER + 'x                          1  0\n');
  });
});

describe('/proc/modules parsing', () => {
  it('reads every field, permanent modules and taint', () => {
    const [a, b] = parseProcModules('a 10 - [permanent], Live 0x1 (P)\nb 20 2 x,y, Unloading 0x2\n');
    assert.deepEqual(a, { name: 'a', size: 10, refcnt: -1, holders: [], permanent: true, state: 'Live', address: '0x1', taint: 'P' });
    assert.deepEqual(b.holders, ['x', 'y']);
    assert.equal(b.state, 'Unloading');
  });
});

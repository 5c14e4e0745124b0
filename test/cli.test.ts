import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { spawnSync } from 'node:child_process';
import { lstatSync, readdirSync, readFileSync, readlinkSync, symlinkSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import Module from 'node:module';
import { Script } from 'node:vm';
import { join, resolve } from 'node:path';
import { tempDir, writeTree } from './helpers/modules.js';
import { runMain } from './helpers/run.js';
import { VERSION } from '../src/cli/version.js';

const BIN = resolve('bin/kmod-ts.js');
const HEADER = 'Module                  Size  Used by\n';
const sysroot = writeTree(tempDir('kmod-ts-cli-'), {
  'proc/modules': 'fat 73728 1 vfat, Live 0x0\nvfat 20480 0 - Live 0x0\n',
  'sys/module/fat/holders/vfat': '',
  'sys/module/fat/refcnt': '1\n',
  'sys/module/fat/initstate': 'live\n',
});
const LSMOD = HEADER + 'fat                    73728  1 vfat\nvfat                   20480  0\n';

const links = tempDir('kmod-ts-links-');
for (const name of ['insmod', 'rmmod', 'lsmod', 'modfrob']) symlinkSync(BIN, join(links, name));

function run(cmd: string, args: string[], env: Record<string, string> = {}) {
  const r = spawnSync(process.execPath, [cmd, ...args], { encoding: 'utf8', env: { PATH: process.env.PATH ?? '', ...env } });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('the multi-call binary as a process', () => {
  const forms: [string, string, string[]][] = [
    ['through a symlink named lsmod', join(links, 'lsmod'), []],
    ['as kmod-ts lsmod', BIN, ['lsmod']],
  ];
  for (const [name, cmd, pre] of forms) {
    it(`lsmod ${name} prints the fixture root's modules`, () => {
      assert.deepEqual(run(cmd, pre, { KMOD_TS_SYSROOT: sysroot }), { status: 0, stdout: LSMOD, stderr: '' });
    });
  }

  it('insmod through a symlink reports a missing file in kmod words', () => {
    assert.deepEqual(run(join(links, 'insmod'), ['/nonexistent/x.ko']), {
      status: 1,
      stdout: '',
      stderr: 'insmod: ERROR: could not load module /nonexistent/x.ko: No such file or directory\n',
    });
  });

  it('insmod of an empty file is one line and exit 1, without reaching the kernel', () => {
    const empty = join(tempDir(), 'empty.ko');
    writeFileSync(empty, '');
    assert.deepEqual(run(BIN, ['insmod', empty]), { status: 1, stdout: '', stderr: `insmod: ERROR: could not insert module ${empty}: Invalid module format\n` });
  });

  it('insmod of /dev/zero does not read forever', () => {
    const r = run(join(links, 'insmod'), ['/dev/zero']);
    assert.deepEqual(r, { status: 1, stdout: '', stderr: 'insmod: ERROR: could not insert module /dev/zero: Invalid module format\n' });
  });

  it('rmmod through a symlink checks the fixture root', () => {
    assert.deepEqual(run(join(links, 'rmmod'), ['fat', 'nothere'], { KMOD_TS_SYSROOT: sysroot }), {
      status: 1,
      stdout: '',
      stderr: 'rmmod: ERROR: Module fat is in use by: vfat\nrmmod: ERROR: Module nothere is not currently loaded\n',
    });
  });

  it('an unknown applet name through a link exits 127', () => {
    assert.deepEqual(run(join(links, 'modfrob'), []), { status: 127, stdout: '', stderr: "kmod-ts: ERROR: unknown command 'modfrob'\n" });
  });

  it('an unknown applet as an argument exits 1', () => {
    assert.deepEqual(run(BIN, ['modfrob']), {
      status: 1,
      stdout: '',
      stderr: "kmod-ts: ERROR: unknown command 'modfrob'\nDid you mean modprobe?\nRun 'kmod-ts --help' for the applets and options.\n",
    });
  });

  it('no applet prints usage and exits 1', () => {
    const r = run(BIN, []);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /^kmod-ts version .*\n\nUsage: kmod-ts APPLET/);
  });

  it('--list prints the applets one per line', () => {
    assert.deepEqual(run(BIN, ['--list']), { status: 0, stdout: 'depmod\ninsmod\nlsmod\nmodinfo\nmodprobe\nrmmod\n', stderr: '' });
  });

  for (const applet of ['', 'insmod', 'rmmod', 'lsmod', 'modinfo']) {
    it(`${applet || 'kmod-ts'} -V and --version print the version and exit 0`, () => {
      for (const flag of ['-V', '--version']) {
        const r = run(BIN, [...(applet ? [applet] : []), flag]);
        assert.deepEqual(r, { status: 0, stdout: `kmod-ts version ${VERSION}\n+ZSTD +XZ +GZIP +FFI\n`, stderr: '' });
      }
    });
    it(`${applet || 'kmod-ts'} -h prints usage on stdout and exits 0`, () => {
      const r = run(BIN, [...(applet ? [applet] : []), '-h']);
      assert.equal(r.status, 0);
      assert.match(r.stdout, /Usage:/);
      assert.equal(r.stderr, '');
    });
  }

  it('a bug is one line, with no stack trace', () => {
    // lsmod with a sysroot whose /proc/modules is a directory: a read error, reported cleanly.
    const r = run(BIN, ['lsmod'], { KMOD_TS_SYSROOT: writeTree(tempDir(), { 'proc/modules/x': '' }) });
    assert.equal(r.status, 1);
    assert.equal(r.stderr, 'lsmod: ERROR: could not open /proc/modules: Is a directory\n');
  });
});

describe('kmod-ts --install', () => {
  it('creates a link per applet and keeps them on a second run', async () => {
    const dir = tempDir();
    for (let i = 0; i < 2; i++) {
      const r = await runMain([BIN, '--install', dir]);
      assert.equal(r.status, 0, r.stderr);
    }
    for (const n of ['insmod', 'lsmod', 'modinfo', 'modprobe', 'rmmod']) {
      assert.equal(lstatSync(join(dir, n)).isSymbolicLink(), true);
      assert.equal(readlinkSync(join(dir, n)), BIN);
    }
  });

  it('never overwrites a file that is not ours without --force', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'insmod'), 'busybox');
    const r = await runMain([BIN, '--install', dir]);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /insmod exists and is not a link to kmod-ts\.js/);
    assert.equal(readFileSync(join(dir, 'insmod'), 'utf8'), 'busybox');
    assert.equal(lstatSync(join(dir, 'lsmod')).isSymbolicLink(), true, 'the others are still made');
    const forced = await runMain([BIN, '--install', dir, '--force']);
    assert.equal(forced.status, 0);
    assert.equal(readlinkSync(join(dir, 'insmod')), BIN);
  });

  it('--target sets what the links point to (for images built elsewhere)', async () => {
    const dir = tempDir();
    const r = await runMain([BIN, '--install', dir, '--target', '/usr/bin/kmod-ts']);
    assert.equal(r.status, 0);
    assert.equal(readlinkSync(join(dir, 'rmmod')), '/usr/bin/kmod-ts');
  });

  it('a missing directory is an error line', async () => {
    const r = await runMain([BIN, '--install', '/nonexistent/dir']);
    assert.equal(r.status, 1);
    assert.equal(r.stderr, 'kmod-ts: ERROR: cannot install links in /nonexistent/dir: No such file or directory\n');
  });
});

describe('package metadata', () => {
  it('the version constant equals package.json', () => {
    assert.equal(VERSION, JSON.parse(readFileSync('package.json', 'utf8')).version);
  });
});

describe('the shipped entry point', () => {
  it('falls back to the compiled modules when the bundle was not built', () => {
    const top = tempDir('kmod-ts-nobundle-');
    writeTree(top, { 'bin/kmod-ts.js': readFileSync(BIN), 'bin/package.json': readFileSync(resolve('bin/package.json')) });
    // dist/ without bundle/: only the compiled modules
    writeTree(top, { 'dist/.keep': '' });
    symlinkSync(resolve('dist/src'), join(top, 'dist/src'));
    symlinkSync(resolve('dist/applets'), join(top, 'dist/applets'));
    const viaFallback = run(join(top, 'bin/kmod-ts.js'), ['lsmod'], { KMOD_TS_SYSROOT: sysroot });
    assert.deepEqual(viaFallback, { status: 0, stdout: LSMOD, stderr: '' });
    assert.deepEqual(run(BIN, ['lsmod'], { KMOD_TS_SYSROOT: sysroot }), viaFallback, 'the bundle prints the same');
  });
  it('the bundle loader compiles the main file with a code cache this node accepts, named after the main file', () => {
    const dir = resolve('dist/bundle');
    const main = join(dir, 'kmod-ts-main.cjs');
    const hash = createHash('sha256').update(readFileSync(main)).digest('hex').slice(0, 16);
    const caches = readdirSync(dir).filter((f) => f.endsWith('.v8cache'));
    assert.deepEqual(caches, [`kmod-ts-main.${hash}.v8cache`]);
    assert.match(readFileSync(join(dir, 'kmod-ts.cjs'), 'utf8'), new RegExp(caches[0].replaceAll('.', '\\.')));
    const script = new Script(Module.wrap(readFileSync(main, 'utf8')), { filename: main, cachedData: readFileSync(join(dir, caches[0])) });
    assert.equal(script.cachedDataRejected, false);
  });
});

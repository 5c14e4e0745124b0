/**
 * Hostile input never crashes, hangs or exhausts memory (issue 14): one regression per class the
 * outside fuzzing pass found, each from an input generated here.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { bufferSource, decodeModinfo, parseElfSections } from '../src/file/elf/sections.js';
import { longSectionNames, manyShortStrings, xzWithIndexSize } from './helpers/hostile.js';
import { compress, fixtureModule, tempDir } from './helpers/modules.js';

const dir = tempDir('kmod-ts-hostile-');
/** The shipped entry (the bundle when built): the crash of class 1 only showed in the bundle. */
const BIN = fileURLToPath(new URL('../../bin/kmod-ts.js', import.meta.url));

/** Run the real program in a fresh process; a bare root keeps it off the host's /sys. */
function cli(args: string[], env: Record<string, string> = {}) {
  const r = spawnSync(process.execPath, [BIN, ...args], {
    encoding: 'utf8',
    timeout: 60_000,
    env: { PATH: process.env.PATH ?? '', KMOD_TS_SYSROOT: dir, ...env },
  });
  return { status: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr };
}

describe('class 1: an xz whose index claims far more than its data holds', () => {
  const xz = compress('xz', fixtureModule());
  for (const mib of [100, 256, 512]) {
    const file = join(dir, `lie${mib}.ko.xz`);
    writeFileSync(file, xzWithIndexSize(xz, mib << 20));
    it(`modinfo and insmod fail with "File is corrupt", never a signal (index claims ${mib} MiB)`, () => {
      // The fault depended on the garbage collector's timing: repeat.
      for (let i = 0; i < 2; i++) {
        const m = cli(['modinfo', file]);
        assert.equal(m.signal, null, `modinfo died of ${m.signal}`);
        assert.equal(m.status, 1, m.stderr);
        assert.match(m.stderr, /^modinfo: ERROR: could not get modinfo from 'lie\d+': Invalid argument\n$/);
        const s = cli(['insmod', file], { KMOD_TS_PATH: 'read' });
        assert.equal(s.signal, null, `insmod died of ${s.signal}`);
        assert.equal(s.status, 1, s.stderr);
        assert.equal(s.stderr, `insmod: ERROR: xz: File is corrupt\ninsmod: ERROR: could not insert module ${file}: Invalid module format\n`);
      }
    });
  }
});

/** Milliseconds `fn` takes. */
function timed(fn: () => void): number {
  const t = performance.now();
  fn();
  return performance.now() - t;
}

describe('class 2: string tables are split in time linear in their size', () => {
  it('a .modinfo of 128 Ki strings without "=" (a\\0a\\0...) splits in well under a second (was 16 s)', () => {
    const small = manyShortStrings(32 << 10);
    const big = manyShortStrings(128 << 10);
    let pairs: Array<[string, string]> = [];
    const tSmall = timed(() => decodeModinfo(small));
    const tBig = timed(() => (pairs = decodeModinfo(big)));
    assert.equal(pairs.length, 128 << 10);
    assert.deepEqual(pairs[0], ['a', '']);
    assert.ok(tBig < 1500, `took ${tBig.toFixed(0)} ms`);
    // 4x the input: linear is ~4x the time, quadratic 16x (generous for a shared machine)
    assert.ok(tBig < Math.max(50, tSmall) * 10, `32 Ki strings ${tSmall.toFixed(0)} ms, 128 Ki ${tBig.toFixed(0)} ms`);
  });

  it('4,000 section names that all run to the end of a 1 MiB name table parse in well under a second (was 35 s, 4 GB)', () => {
    const image = longSectionNames(4000, 1 << 20);
    let names: string[] = [];
    const t = timed(() => (names = parseElfSections(bufferSource(image)).sections.map((s) => s.name)));
    assert.ok(t < 1500, `took ${t.toFixed(0)} ms`);
    assert.equal(names.length, 4004);
    assert.ok(names.every((n, i) => i === 0 || n.length === 257), 'long names are cut, not kept whole');
    assert.equal(names.includes('.modinfo'), false);
  });
});

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fakeSys } from './helpers/fake-sys.js';
import { compress, fixtureModule, tempDir } from './helpers/modules.js';
import { openFds, runMain } from './helpers/run.js';

const dir = tempDir();
const plain = fixtureModule();

function file(name: string, data: Buffer | string): string {
  const p = join(dir, name);
  writeFileSync(p, data);
  return p;
}

function corrupt(data: Buffer, at: number): Buffer {
  const out = Buffer.from(data);
  for (let i = at; i < Math.min(at + 16, out.length); i++) out[i] ^= 0x5a;
  return out;
}

const gz = compress('gz', plain);
const xz = compress('xz', plain);
const zst = compress('zst', plain);
const fifo = join(dir, 'fifo');
execFileSync('mkfifo', [fifo]);

/** [case, path, expected stderr lines after "insmod: ERROR: "] */
const CASES: [string, string, string[]][] = [
  ['a missing file', join(dir, 'nope.ko'), [`could not load module ${join(dir, 'nope.ko')}: No such file or directory`]],
  ['an empty file', file('empty.ko', ''), ['could not insert module PATH: Invalid module format']],
  ['a 1-byte file', file('one.ko', 'x'), ['could not insert module PATH: Invalid module format']],
  ['a 2-byte gzip magic', file('two.ko.gz', Buffer.from([0x1f, 0x8b])), ['could not insert module PATH: Invalid module format']],
  ['a directory', dir, ['could not insert module PATH: Is a directory']],
  ['a FIFO with no writer', fifo, ['could not insert module PATH: Invalid module format']],
  ['/dev/zero', '/dev/zero', ['could not insert module PATH: Invalid module format']],
  ['non-ELF data', file('text.ko', 'hello, this is not a module\n'), ['could not insert module PATH: Invalid module format']],
  ['a truncated gzip', file('trunc.ko.gz', gz.subarray(0, gz.length >> 1)), ['gzip: unexpected end of file', 'could not insert module PATH: Invalid module format']],
  ['a truncated xz', file('trunc.ko.xz', xz.subarray(0, xz.length >> 1)), ['xz: Unexpected end of input', 'could not insert module PATH: Invalid module format']],
  ['a corrupt xz', file('bad.ko.xz', corrupt(xz, 40)), ['xz: File is corrupt', 'could not insert module PATH: Invalid module format']],
  ['gzip of non-ELF data', file('text.gz', compress('gz', Buffer.from('plain text, not ELF\n'))), ['could not insert module PATH: Invalid module format']],
];

describe('insmod rejects bad input with a one-line error and no syscall', () => {
  for (const [name, path, lines] of CASES) {
    it(`${name} → ${lines.join(' / ')}`, async () => {
      const sys = fakeSys();
      const fds = openFds();
      const r = await runMain(['insmod', path], { sys, root: dir });
      assert.equal(r.status, 1);
      assert.equal(r.stdout, '');
      assert.equal(r.stderr, lines.map((l) => `insmod: ERROR: ${l.replace('PATH', path)}\n`).join(''));
      assert.deepEqual(sys.kernelCalls(), [], 'nothing reached the kernel');
      assert.equal(sys.liveMappings(), 0);
      assert.equal(openFds(), fds, 'no descriptor left open');
    });
  }

  for (const [name, data] of [
    ['truncated zstd', zst.subarray(0, zst.length >> 1)],
    ['corrupt zstd', corrupt(zst, 20)],
    ['corrupt gzip', corrupt(gz, 20)],
  ] as const) {
    it(`a ${name} is reported by its codec, then as an invalid module`, async () => {
      const path = file(`${name.replace(' ', '-')}.ko`, data);
      const sys = fakeSys();
      const r = await runMain(['insmod', path], { sys, root: dir });
      assert.equal(r.status, 1);
      const lines = r.stderr.split('\n');
      assert.equal(lines.length, 3, r.stderr);
      assert.match(lines[0], new RegExp(`^insmod: ERROR: ${name.split(' ')[1]}: .+`));
      assert.equal(lines[1], `insmod: ERROR: could not insert module ${path}: Invalid module format`);
      assert.deepEqual(sys.kernelCalls(), []);
    });
  }

  it('a decompressed size past the cap is "File too large"', async () => {
    const path = file('big.ko.xz', xz);
    const r = await runMain(['insmod', path], { sys: fakeSys(), root: dir, env: { KMOD_TS_MAX_SIZE: '1000' } });
    assert.equal(r.stderr, `insmod: ERROR: could not insert module ${path}: File too large\n`);
  });

  it('-f on a module without vermagic fails before the kernel', async () => {
    const path = file('novermagic.ko', fixtureModule({ vermagic: false }));
    const sys = fakeSys();
    const r = await runMain(['insmod', '-f', path], { sys, root: dir });
    assert.equal(r.status, 1);
    assert.equal(r.stderr, `insmod: ERROR: could not insert module ${path}: Failed to strip version information: No data available\n`);
    assert.deepEqual(sys.kernelCalls(), []);
  });

  it('a compressed module with a misleading extension is detected by its magic', async () => {
    const path = file('looks-plain.ko', xz);
    const sys = fakeSys();
    const r = await runMain(['insmod', '-v', path], { sys, root: dir });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, /via read\+xz\+init_module/);
    assert.deepEqual(sys.kernelCalls()[0].image, plain);
  });
});

/**
 * Tests for src/file/compression/. Fixtures are made at test time with the real xz, zstd and gzip
 * tools (and node:zlib), from a small deterministic ELF-looking payload. A missing tool fails
 * the tests that need it, with the package to install: these tests are the proof that files made
 * by the tools kbuild uses decode, so skipping them would hide exactly what they are for.
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { crc32, gzipSync } from 'node:zlib';
import {
  type CompressedFormat,
  DEFAULT_MAX_SIZE,
  decompress,
  decompressSync,
  detectFormat,
  type Format,
  xzDeclaredSize,
  xzDecoder,
} from '../src/file/compression/index.js';
import { DecompressError } from '../src/errors.js';

// ---------------------------------------------------------------------------------------------
// Fixtures

/** A deterministic payload that looks like a module: ELF magic, text, and hard-to-compress bytes. */
function payload(size: number, seed = 1): Buffer {
  const b = Buffer.alloc(size);
  b.set([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1]);
  let x = seed >>> 0;
  const text = Buffer.from('license=GPL\0vermagic=6.1.0 SMP preempt mod_unload modversions\0depends=\0');
  for (let i = 16; i < size; ) {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0;
    if (x & 0x100) {
      const n = Math.min(text.length, size - i);
      text.copy(b, i, 0, n);
      i += n;
    } else {
      for (let k = 0; k < 32 && i < size; k++, i++) {
        x = (Math.imul(x, 1103515245) + 12345) >>> 0;
        b[i] = x >>> 24;
      }
    }
  }
  return b;
}

const MODULE = payload(300 * 1024); // > 256 KiB: more than one zlib chunk and lzma slice
const SMALL = payload(3000, 7);
const EMPTY = Buffer.alloc(0);

const INSTALL: Record<string, string> = { xz: 'xz-utils', zstd: 'zstd', gzip: 'gzip' };

const work = mkdtempSync(join(tmpdir(), 'kmod-ts-compression-'));
after(() => rmSync(work, { recursive: true, force: true }));

let fileCount = 0;
const made = new WeakMap<Buffer, Map<string, Buffer>>();
/**
 * Run a compression tool on `data` written to a file (so zstd records the content size).
 * Outputs are cached per input and command line; each caller gets its own copy to damage.
 */
function tool(cmd: 'xz' | 'zstd' | 'gzip', args: string[], data: Buffer): Buffer {
  const key = [cmd, ...args].join(' ');
  const cache = made.get(data) ?? new Map<string, Buffer>();
  made.set(data, cache);
  const hit = cache.get(key);
  if (hit) return Buffer.from(hit);
  const file = join(work, `in-${fileCount++}`);
  writeFileSync(file, data);
  try {
    const out = execFileSync(cmd, [...args, '-c', file], { maxBuffer: 1 << 30, stdio: ['ignore', 'pipe', 'pipe'] });
    cache.set(key, out);
    return Buffer.from(out);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new Error(`the '${cmd}' command is not installed; these tests need it (apt-get install -y ${INSTALL[cmd]})`);
    }
    throw err;
  }
}

const xz = (data: Buffer, ...args: string[]) => tool('xz', ['-q', ...args], data);
const zstd = (data: Buffer, ...args: string[]) => tool('zstd', ['-q', ...args], data);
const gzip = (data: Buffer, ...args: string[]) => tool('gzip', ['-n', ...args], data);
const kbuildXz = (data: Buffer) => xz(data, '--check=crc32', '--lzma2=dict=1MiB'); // scripts/Makefile.modinst

/** A zstd skippable frame (magic 0x184D2A5n, little-endian size, opaque bytes). */
function skippable(content: Buffer, n = 0): Buffer {
  const head = Buffer.alloc(8);
  head.writeUInt32LE(0x184d2a50 + n, 0);
  head.writeUInt32LE(content.length, 4);
  return Buffer.concat([head, content]);
}

const cut = (b: Buffer, keep: number) => b.subarray(0, keep < 0 ? b.length + keep : keep);
function flip(b: Buffer, at: number): Buffer {
  const c = Buffer.from(b);
  const i = at < 0 ? c.length + at : at;
  c[i] ^= 0xff;
  return c;
}

/** Assert `fn` fails with a DecompressError of this format, kind and message. */
async function assertFails(
  fn: () => Promise<unknown>,
  want: { format: CompressedFormat; kind: DecompressError['kind']; message: string | RegExp },
): Promise<void> {
  await assert.rejects(fn, (err: unknown) => {
    assert.ok(err instanceof DecompressError, `got ${String(err)}, want a DecompressError`);
    assert.equal(err.format, want.format, `format: got ${err.format}, want ${want.format}`);
    assert.equal(err.kind, want.kind, `kind: got ${err.kind} (${err.message}), want ${want.kind}`);
    if (typeof want.message === 'string') assert.equal(err.message, want.message);
    else assert.match(err.message, want.message);
    return true;
  });
}

/**
 * xz decoded by lzma-native's stream binding (insmod's `KMOD_TS_XZ=stream`) instead of the
 * default, liblzma through the FFI. Every xz case runs both ways: the stream binding is what
 * decodes when the FFI is missing and when a file's index does not give its size.
 */
const STREAM = { xz: { decoder: 'stream' } } as const;

/**
 * A one-stream, one-block xz file whose index says the block holds `size` bytes, with the
 * index CRC32 recomputed, so only the comparison with the decoded data can tell.
 */
function withIndexSize(file: Buffer, size: number): Buffer {
  const b = Buffer.from(file);
  const footer = b.length - 12;
  const index = footer - (b.readUInt32LE(footer + 4) + 1) * 4;
  const vli = (at: number): [number, number] => {
    let v = 0;
    for (let i = 0; ; i++) {
      v += (b[at + i] & 0x7f) * 128 ** i;
      if (!(b[at + i] & 0x80)) return [v, i + 1];
    }
  };
  assert.equal(vli(index + 1)[0], 1, 'one block');
  const at = index + 2 + vli(index + 2)[1]; // past the indicator, the count and the unpadded size
  const [, len] = vli(at);
  const enc: number[] = [];
  for (let v = size; ; v = Math.floor(v / 128)) {
    enc.push((v % 128) | (v >= 128 ? 0x80 : 0));
    if (v < 128) break;
  }
  assert.equal(enc.length, len, 'same VLI length');
  b.set(enc, at);
  b.writeUInt32LE(crc32(b.subarray(index, footer - 4)), footer - 4);
  return b;
}

/** Equality of big buffers without a megabyte-long diff in the failure message. */
function assertSameBytes(got: Buffer, want: Buffer): void {
  assert.ok(Buffer.isBuffer(got), 'result is a Buffer');
  assert.equal(got.length, want.length, `length: got ${got.length}, want ${want.length}`);
  assert.ok(got.equals(want), 'bytes differ');
}

// ---------------------------------------------------------------------------------------------

describe('detectFormat', () => {
  const cases: Array<[string, number[], Format | undefined]> = [
    ['zstd magic 28 B5 2F FD is zstd', [0x28, 0xb5, 0x2f, 0xfd, 0x24, 0x00], 'zstd'],
    ['xz magic FD 37 7A 58 5A 00 is xz', [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00, 0x00, 0x01], 'xz'],
    ['gzip magic 1F 8B is gzip', [0x1f, 0x8b, 0x08, 0x00], 'gzip'],
    ['exactly the two gzip bytes are gzip', [0x1f, 0x8b], 'gzip'],
    ['ELF magic 7F 45 4C 46 is elf', [0x7f, 0x45, 0x4c, 0x46, 0x02, 0x01], 'elf'],
    ['exactly the four zstd bytes are zstd', [0x28, 0xb5, 0x2f, 0xfd], 'zstd'],
    ['an empty head is unknown', [], undefined],
    ['one byte is unknown, even a gzip one', [0x1f], undefined],
    ['two bytes of the zstd magic are unknown', [0x28, 0xb5], undefined],
    ['two bytes of the ELF magic are unknown', [0x7f, 0x45], undefined],
    ['three bytes of the ELF magic are unknown', [0x7f, 0x45, 0x4c], undefined],
    ['five bytes of the xz magic are unknown', [0xfd, 0x37, 0x7a, 0x58, 0x5a], undefined],
    ['the xz magic with a wrong sixth byte is unknown', [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x01], undefined],
    ['a zstd skippable frame alone is unknown', [0x50, 0x2a, 0x4d, 0x18, 0, 0, 0, 0], undefined],
    ['a shell script is unknown', [...Buffer.from('#!/bin/sh\n')], undefined],
    ['1F followed by something else is unknown', [0x1f, 0x9d, 0x90], undefined],
  ];
  for (const [name, bytes, want] of cases) {
    test(name, () => assert.equal(detectFormat(Uint8Array.from(bytes)), want));
  }

  test('the real tools’ output is recognised', () => {
    assert.equal(detectFormat(xz(SMALL)), 'xz');
    assert.equal(detectFormat(zstd(SMALL)), 'zstd');
    assert.equal(detectFormat(gzip(SMALL)), 'gzip');
    assert.equal(detectFormat(SMALL), 'elf');
  });

  test('a view into a larger buffer is read from its own offset', () => {
    const big = Buffer.concat([Buffer.from('junk'), Buffer.from([0x1f, 0x8b, 8])]);
    assert.equal(detectFormat(big.subarray(4)), 'gzip');
  });
});

describe('constants', () => {
  test('the default cap is 1 GiB', () => assert.equal(DEFAULT_MAX_SIZE, 1024 * 1024 * 1024));
});

describe('decompress round trips', () => {
  const cases: Array<[string, CompressedFormat, () => Buffer, Buffer]> = [
    // gzip
    ['gzip -n output decodes', 'gzip', () => gzip(MODULE), MODULE],
    ['gzip -9 output decodes', 'gzip', () => gzip(MODULE, '-9'), MODULE],
    ['node zlib output decodes', 'gzip', () => gzipSync(MODULE), MODULE],
    ['two concatenated gzip members decode to both parts', 'gzip', () => Buffer.concat([gzip(MODULE), gzip(SMALL)]), Buffer.concat([MODULE, SMALL])],
    ['a small member then a big one decode (ISIZE hint too small)', 'gzip', () => Buffer.concat([gzip(SMALL), gzip(MODULE)]), Buffer.concat([SMALL, MODULE])],
    ['gzip with trailing zero padding decodes (padding is ignored, like gzip -d)', 'gzip', () => Buffer.concat([gzip(SMALL), Buffer.alloc(512)]), SMALL],
    ['gzip of an empty file decodes to nothing', 'gzip', () => gzip(EMPTY), EMPTY],
    // xz
    ['kbuild-style xz (--check=crc32 --lzma2=dict=1MiB) decodes', 'xz', () => kbuildXz(MODULE), MODULE],
    ['plain xz (CRC64, 8 MiB dictionary) decodes', 'xz', () => xz(MODULE), MODULE],
    ['xz --check=none decodes', 'xz', () => xz(MODULE, '--check=none'), MODULE],
    ['xz --check=crc32 decodes', 'xz', () => xz(MODULE, '--check=crc32'), MODULE],
    ['xz --check=crc64 decodes', 'xz', () => xz(MODULE, '--check=crc64'), MODULE],
    ['xz --check=sha256 decodes', 'xz', () => xz(MODULE, '--check=sha256'), MODULE],
    ['xz with many blocks decodes', 'xz', () => xz(MODULE, '--block-size=32KiB'), MODULE],
    ['two concatenated xz streams decode to both parts', 'xz', () => Buffer.concat([kbuildXz(MODULE), xz(SMALL)]), Buffer.concat([MODULE, SMALL])],
    [
      'xz streams with stream padding between and after decode',
      'xz',
      () => Buffer.concat([xz(SMALL), Buffer.alloc(8), xz(MODULE, '--check=sha256'), Buffer.alloc(4)]),
      Buffer.concat([SMALL, MODULE]),
    ],
    ['xz of an empty file decodes to nothing', 'xz', () => xz(EMPTY), EMPTY],
    // zstd
    ['zstd output with the content size decodes', 'zstd', () => zstd(MODULE), MODULE],
    ['zstd --no-content-size output decodes', 'zstd', () => zstd(MODULE, '--no-content-size'), MODULE],
    ['zstd -19 --no-check output decodes', 'zstd', () => zstd(MODULE, '-19', '--no-check'), MODULE],
    ['two concatenated zstd frames decode to both parts', 'zstd', () => Buffer.concat([zstd(MODULE), zstd(SMALL)]), Buffer.concat([MODULE, SMALL])],
    [
      'zstd frames with and without content size mixed decode',
      'zstd',
      () => Buffer.concat([zstd(SMALL, '--no-content-size'), zstd(MODULE)]),
      Buffer.concat([SMALL, MODULE]),
    ],
    [
      'skippable zstd frames before, between and after data frames are skipped',
      'zstd',
      () => Buffer.concat([skippable(Buffer.from('kmod')), zstd(SMALL), skippable(Buffer.alloc(100), 15), zstd(MODULE), skippable(EMPTY)]),
      Buffer.concat([SMALL, MODULE]),
    ],
    ['a zstd file of only a skippable frame decodes to nothing', 'zstd', () => skippable(Buffer.from('x')), EMPTY],
    ['zstd of an empty file decodes to nothing', 'zstd', () => zstd(EMPTY), EMPTY],
    // Highly compressible without a size: the output buffer must grow well past its first guess.
    ['zstd --no-content-size of 8 MiB of zeros decodes', 'zstd', () => zstd(Buffer.alloc(8 << 20), '--no-content-size'), Buffer.alloc(8 << 20)],
  ];
  for (const [name, format, make, want] of cases) {
    test(name, async () => assertSameBytes(await decompress(format, make()), want));
    if (format === 'xz') test(`${name} (stream binding)`, async () => assertSameBytes(await decompress(format, make(), STREAM), want));
  }

  test('decompressSync gives the same bytes as decompress, for every format', async () => {
    for (const [format, data] of [['gzip', gzip(MODULE)], ['xz', kbuildXz(MODULE)], ['zstd', zstd(MODULE)]] as const) {
      assertSameBytes(decompressSync(format, data), MODULE);
      assertSameBytes(await decompress(format, data), MODULE);
    }
  });

  test('a plain Uint8Array view at an offset is accepted as input', async () => {
    for (const [format, data] of [['gzip', gzip(SMALL)], ['xz', xz(SMALL)], ['zstd', zstd(SMALL)]] as const) {
      const backing = new Uint8Array(data.length + 10);
      backing.set(data, 7);
      assertSameBytes(await decompress(format, backing.subarray(7, 7 + data.length)), SMALL);
    }
  });

  test('the input is not modified', async () => {
    for (const [format, data] of [['gzip', gzip(SMALL)], ['xz', xz(SMALL)], ['zstd', zstd(SMALL)]] as const) {
      const copy = Buffer.from(data);
      await decompress(format, data);
      assert.ok(data.equals(copy), `${format} input changed`);
    }
  });
});

describe('decompress faults', () => {
  type Case = [string, CompressedFormat, () => Buffer, DecompressError['kind'], string | RegExp];
  const cases: Case[] = [
    // gzip: gzip(1)'s words
    ['an empty gzip input is "unexpected end of file"', 'gzip', () => EMPTY, 'truncated', 'unexpected end of file'],
    ['a lone 1F byte as gzip is "unexpected end of file"', 'gzip', () => Buffer.from([0x1f]), 'truncated', 'unexpected end of file'],
    ['a gzip header alone is "unexpected end of file"', 'gzip', () => cut(gzip(MODULE), 10), 'truncated', 'unexpected end of file'],
    ['a gzip file cut in the middle is "unexpected end of file"', 'gzip', () => cut(gzip(MODULE), 20000), 'truncated', 'unexpected end of file'],
    ['a gzip file missing its last byte is "unexpected end of file"', 'gzip', () => cut(gzip(MODULE), -1), 'truncated', 'unexpected end of file'],
    [
      'a gzip second member cut short is "unexpected end of file"',
      'gzip',
      () => Buffer.concat([gzip(SMALL), cut(gzip(MODULE), 5000)]),
      'truncated',
      'unexpected end of file',
    ],
    ['a gzip file with a wrong CRC is a crc error', 'gzip', () => flip(gzip(MODULE), -6), 'corrupt', 'invalid compressed data--crc error'],
    ['a gzip file with a wrong ISIZE is a length error', 'gzip', () => flip(gzip(MODULE), -2), 'corrupt', 'invalid compressed data--length error'],
    ['a gzip file with damaged data is invalid compressed data', 'gzip', () => flip(gzip(MODULE), 5000), 'corrupt', /^invalid compressed data--(format violated|crc error)$/],
    [
      'trailing garbage after a gzip member is an error',
      'gzip',
      () => Buffer.concat([gzip(SMALL), Buffer.from('garbage!')]),
      'corrupt',
      'trailing garbage after compressed data',
    ],
    [
      'garbage after zero padding after a gzip member is an error',
      'gzip',
      () => Buffer.concat([gzip(SMALL), Buffer.alloc(16), Buffer.from('garbage!')]),
      'corrupt',
      'trailing garbage after compressed data',
    ],
    ['data that is not gzip is "not in gzip format"', 'gzip', () => SMALL, 'corrupt', 'not in gzip format'],
    ['a gzip header with an unknown method is unsupported', 'gzip', () => { const g = gzip(SMALL); g[2] = 7; return g; }, 'unsupported', 'unknown method 7 -- not supported'],
    // xz: kmod's words (libkmod-file.c), which follow xz(1)'s
    ['an empty xz input is "Unexpected end of input"', 'xz', () => EMPTY, 'truncated', 'Unexpected end of input'],
    ['an xz stream header alone is "Unexpected end of input"', 'xz', () => cut(xz(MODULE), 12), 'truncated', 'Unexpected end of input'],
    ['an xz file cut in the middle is "Unexpected end of input"', 'xz', () => cut(kbuildXz(MODULE), 20000), 'truncated', 'Unexpected end of input'],
    ['an xz file missing its last byte is "Unexpected end of input"', 'xz', () => cut(xz(MODULE), -1), 'truncated', 'Unexpected end of input'],
    ['an xz second stream cut short is "Unexpected end of input"', 'xz', () => Buffer.concat([xz(SMALL), cut(xz(MODULE), 3000)]), 'truncated', 'Unexpected end of input'],
    ['an xz file with damaged data is "File is corrupt"', 'xz', () => flip(kbuildXz(MODULE), 5000), 'corrupt', 'File is corrupt'],
    ['an xz stream header with a wrong CRC is "File is corrupt"', 'xz', () => flip(xz(MODULE), 9), 'corrupt', 'File is corrupt'],
    ['an xz file with a damaged index is "File is corrupt"', 'xz', () => flip(xz(MODULE), -16), 'corrupt', 'File is corrupt'],
    ['an xz SHA-256 mismatch is "File is corrupt"', 'xz', () => { const x = xz(SMALL, '--check=sha256'); return flip(x, x.length - 12 - 12 - 8); }, 'corrupt', 'File is corrupt'],
    ['stream padding that is not a multiple of four is "File is corrupt"', 'xz', () => Buffer.concat([xz(SMALL), Buffer.alloc(3)]), 'corrupt', 'File is corrupt'],
    ['trailing garbage after an xz stream is "File is corrupt"', 'xz', () => Buffer.concat([xz(SMALL), Buffer.from('garbage!garbage!')]), 'corrupt', 'File is corrupt'],
    ['data that is not xz is "File format not recognized"', 'xz', () => SMALL, 'corrupt', 'File format not recognized'],
    // zstd: zstd(1)'s words
    ['an empty zstd input is "unexpected end of file"', 'zstd', () => EMPTY, 'truncated', 'unexpected end of file'],
    ['two bytes of a zstd magic are a premature end', 'zstd', () => Buffer.from([0x28, 0xb5]), 'truncated', 'Read error (39) : premature end'],
    ['a zstd frame header alone is a premature end', 'zstd', () => cut(zstd(MODULE), 8), 'truncated', 'Read error (39) : premature end'],
    ['a zstd file cut in the middle is a premature end', 'zstd', () => cut(zstd(MODULE), 20000), 'truncated', 'Read error (39) : premature end'],
    ['a zstd file missing its last byte is a premature end', 'zstd', () => cut(zstd(MODULE), -1), 'truncated', 'Read error (39) : premature end'],
    ['a zstd file without content size cut short is a premature end', 'zstd', () => cut(zstd(MODULE, '--no-content-size'), -3), 'truncated', 'Read error (39) : premature end'],
    ['a zstd second frame cut short is a premature end', 'zstd', () => Buffer.concat([zstd(SMALL), cut(zstd(MODULE), 3000)]), 'truncated', 'Read error (39) : premature end'],
    ['a skippable zstd frame cut short is a premature end', 'zstd', () => cut(skippable(Buffer.alloc(50)), 20), 'truncated', 'Read error (39) : premature end'],
    ['a zstd checksum mismatch is a decoding error', 'zstd', () => flip(zstd(MODULE), -1), 'corrupt', "Decoding error (36) : Restored data doesn't match checksum"],
    ['a zstd file with damaged data is a decoding error', 'zstd', () => flip(zstd(MODULE), 5000), 'corrupt', /^Decoding error \(36\) : ./],
    [
      'a damaged zstd file without content size is a decoding error',
      'zstd',
      () => flip(zstd(MODULE, '--no-content-size'), 5000),
      'corrupt',
      /^Decoding error \(36\) : ./,
    ],
    ['trailing garbage after a zstd frame is "unsupported format"', 'zstd', () => Buffer.concat([zstd(SMALL), Buffer.from('garbage!')]), 'corrupt', 'unsupported format'],
    ['trailing zero bytes after a zstd frame are "unsupported format", like zstd -d', 'zstd', () => Buffer.concat([zstd(SMALL), Buffer.alloc(8)]), 'corrupt', 'unsupported format'],
    ['three trailing bytes after a zstd frame are "unsupported format"', 'zstd', () => Buffer.concat([zstd(SMALL), Buffer.from('abc')]), 'corrupt', 'unsupported format'],
    ['data that is not zstd is "unsupported format"', 'zstd', () => SMALL, 'corrupt', 'unsupported format'],
  ];
  for (const [name, format, make, kind, message] of cases) {
    test(name, () => assertFails(() => decompress(format, make()), { format, kind, message }));
    if (format === 'xz') test(`${name} (stream binding)`, () => assertFails(() => decompress(format, make(), STREAM), { format, kind, message }));
  }

  // The direct decoder sizes its one buffer from the index; liblzma checks the index only when it
  // reaches it, after the blocks. An index that lies (with a valid CRC32) must still fail.
  for (const [what, delta] of [['less', -1], ['more', 1]] as const) {
    test(`an xz index that declares ${what} than the data holds is "File is corrupt"`, async () => {
      const lying = withIndexSize(xz(SMALL), SMALL.length + delta);
      assert.equal(xzDeclaredSize(lying), SMALL.length + delta);
      await assertFails(() => decompress('xz', lying), { format: 'xz', kind: 'corrupt', message: 'File is corrupt' });
      await assertFails(() => decompress('xz', lying, STREAM), { format: 'xz', kind: 'corrupt', message: 'File is corrupt' });
    });
  }

  test('decompressSync throws the same DecompressError synchronously', () => {
    assert.throws(
      () => decompressSync('xz', cut(xz(SMALL), -1)),
      (err: unknown) => err instanceof DecompressError && err.kind === 'truncated' && err.message === 'Unexpected end of input',
    );
  });
});

describe('the size cap', () => {
  const makers: Array<[string, CompressedFormat, (b: Buffer) => Buffer]> = [
    ['gzip', 'gzip', (b) => gzip(b)],
    ['gzip, two members', 'gzip', (b) => Buffer.concat([gzip(b.subarray(0, 1000)), gzip(b.subarray(1000))])],
    ['xz', 'xz', (b) => kbuildXz(b)],
    ['xz, two streams', 'xz', (b) => Buffer.concat([xz(b.subarray(0, 1000)), xz(b.subarray(1000))])],
    ['zstd', 'zstd', (b) => zstd(b)],
    ['zstd without content size', 'zstd', (b) => zstd(b, '--no-content-size')],
  ];
  for (const [name, format, make] of makers) {
    for (const stream of format === 'xz' ? [false, true] : [false]) {
      const label = stream ? `${name} (stream binding)` : name;
      const how = stream ? STREAM : {};
      test(`${label}: output one byte over maxSize is "File too large"`, () =>
        assertFails(() => decompress(format, make(MODULE), { ...how, maxSize: MODULE.length - 1 }), { format, kind: 'too-large', message: 'File too large' }));
      test(`${label}: output of exactly maxSize is accepted`, async () =>
        assertSameBytes(await decompress(format, make(MODULE), { ...how, maxSize: MODULE.length }), MODULE));
      test(`${label}: a small maxSize stops a large output`, () =>
        assertFails(() => decompress(format, make(MODULE), { ...how, maxSize: 1000 }), { format, kind: 'too-large', message: 'File too large' }));
    }
  }

  // 64 MiB of zeros as eight 8 MiB members/streams/frames (cheap to make): refused at a 1 MiB cap
  // without buffering it. Buffers made while decoding stay counted in arrayBuffers until a GC,
  // so a decoder that buffered the whole output would show here (a GC can only hide, not add).
  const zeros = Buffer.alloc(8 << 20);
  const bombs: Array<[string, CompressedFormat, () => Buffer]> = [
    ['gzip bomb', 'gzip', () => Buffer.concat(Array(8).fill(gzipSync(zeros, { level: 1 })))],
    ['xz bomb', 'xz', () => Buffer.concat(Array(8).fill(xz(zeros, '-0')))],
    ['xz bomb with its index cut off (so the size is only found by decoding)', 'xz', () => cut(Buffer.concat(Array(8).fill(xz(zeros, '-0'))), -1)],
    ['zstd bomb with content sizes', 'zstd', () => Buffer.concat(Array(8).fill(zstd(zeros)))],
    ['zstd bomb without content sizes', 'zstd', () => Buffer.concat(Array(8).fill(zstd(zeros, '--no-content-size')))],
  ];
  for (const [name, format, make] of bombs) {
    test(`a ${name} is refused at a 1 MiB cap without buffering its output`, async () => {
      const data = make();
      const before = process.memoryUsage().arrayBuffers;
      await assertFails(() => decompress(format, data, { maxSize: 1 << 20 }), { format, kind: 'too-large', message: 'File too large' });
      const grew = process.memoryUsage().arrayBuffers - before;
      assert.ok(grew < 16 << 20, `ArrayBuffer memory grew by ${grew} bytes while refusing a 64 MiB output`);
    });
  }

  test('a maxSize of 0 accepts only empty output', async () => {
    assert.equal((await decompress('gzip', gzip(EMPTY), { maxSize: 0 })).length, 0);
    assert.equal((await decompress('xz', xz(EMPTY), { maxSize: 0 })).length, 0);
    assert.equal((await decompress('zstd', zstd(EMPTY), { maxSize: 0 })).length, 0);
    await assertFails(() => decompress('gzip', gzip(Buffer.from('x')), { maxSize: 0 }), { format: 'gzip', kind: 'too-large', message: 'File too large' });
  });

  for (const bad of [-1, 1.5, Number.NaN, Number.POSITIVE_INFINITY]) {
    test(`a maxSize of ${bad} is a RangeError`, () => assert.rejects(() => decompress('gzip', gzip(SMALL), { maxSize: bad }), RangeError));
  }
});

describe('xzDeclaredSize', () => {
  test('reads the uncompressed size from the index of a kbuild-style file', () => assert.equal(xzDeclaredSize(kbuildXz(MODULE)), MODULE.length));
  test('adds up several streams with stream padding', () =>
    assert.equal(xzDeclaredSize(Buffer.concat([xz(SMALL), Buffer.alloc(4), xz(MODULE, '--block-size=32KiB'), Buffer.alloc(8)])), SMALL.length + MODULE.length));
  test('is 0 for an xz file of nothing', () => assert.equal(xzDeclaredSize(xz(EMPTY)), 0));
  test('is undefined for a truncated file', () => assert.equal(xzDeclaredSize(cut(xz(MODULE), -1)), undefined));
  test('is undefined for data that is not xz', () => assert.equal(xzDeclaredSize(SMALL), undefined));
  test('is undefined for empty input', () => assert.equal(xzDeclaredSize(EMPTY), undefined));
});

describe('the xz decoder', () => {
  test('is liblzma through the FFI by default (lzma-native\'s own library, decoding into one buffer)', () => assert.equal(xzDecoder(), 'liblzma'));
  test('is the stream binding when that is asked for (insmod\'s KMOD_TS_XZ=stream)', () => assert.equal(xzDecoder({ decoder: 'stream' }), 'stream'));

  // In fresh processes, collected just before (so that no GC during the decode hides the chunk
  // copies). The figure is V8's count of ArrayBuffer memory around one decode, the codec loaded.
  const arrayBufferGrowth = (file: string, small: string, decoder: 'liblzma' | 'stream'): number => {
    const probe = `
      import fs from 'node:fs';
      const { decompressSync } = await import(${JSON.stringify(fileURLToPath(new URL('../src/file/compression/index.js', import.meta.url)))});
      decompressSync('xz', fs.readFileSync(${JSON.stringify(small)})); // loads the codec
      const data = fs.readFileSync(${JSON.stringify(file)});
      globalThis.gc();
      const before = process.memoryUsage().arrayBuffers;
      const out = decompressSync('xz', data, { xz: { decoder: ${JSON.stringify(decoder)} } });
      console.log(process.memoryUsage().arrayBuffers - before - out.length);`;
    const r = spawnSync(process.execPath, ['--expose-gc', '--input-type=module', '-e', probe], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    return Number(r.stdout);
  };
  test('liblzma decodes into the one output buffer; the stream binding holds chunk copies besides', () => {
    const big = payload(4 << 20, 3);
    const file = join(work, 'big.xz');
    writeFileSync(file, kbuildXz(big));
    const small = join(work, 'small.xz');
    writeFileSync(small, kbuildXz(SMALL));
    const direct = arrayBufferGrowth(file, small, 'liblzma');
    const stream = arrayBufferGrowth(file, small, 'stream');
    assert.ok(direct <= 4096, `liblzma: ${direct} bytes of ArrayBuffer memory besides the output, want ≤ 4096`);
    assert.ok(stream >= big.length / 2, `stream binding: ${stream} bytes besides the output; the probe should see its chunk copies`);
  });

  // Each large direct decode queues a page-warming read on the thread pool (compression.ts
  // warmPages); their callbacks cannot run during a synchronous loop, and koffi refuses more
  // than 256 queued async calls ("Too many asynchronous calls are running").
  test('300 large xz decodes in one synchronous loop all succeed', () => {
    const data = xz(Buffer.alloc(1 << 20), '--check=crc32');
    for (let i = 0; i < 300; i++) assert.equal(decompressSync('xz', data).length, 1 << 20, `decode ${i}`);
  });

  test('a file whose index is cut off is decoded by the stream binding, which reports the truncation', () =>
    assertFails(() => decompress('xz', cut(kbuildXz(MODULE), -1)), { format: 'xz', kind: 'truncated', message: 'Unexpected end of input' }));
});

describe('lazy loading', () => {
  // In a child process, so that this test process's own codec loads do not count.
  const modulePath = fileURLToPath(new URL('../src/file/compression/index.js', import.meta.url));
  const probe = `
    import { createRequire } from 'node:module';
    const { detectFormat, decompress } = await import(${JSON.stringify(modulePath)});
    const loaded = () => [...new Set(Object.keys(createRequire(import.meta.url).cache).flatMap((p) => p.match(/lzma-native|zstd-napi/g) ?? []))];
    detectFormat(new Uint8Array([0x28, 0xb5, 0x2f, 0xfd]));
    const before = loaded();
    await decompress('zstd', new Uint8Array([0x28, 0xb5, 0x2f, 0xfd, 0x20, 0x00, 0x01, 0x00, 0x00]));
    console.log(JSON.stringify({ before, after: loaded() }));
  `;
  test('importing the module and detecting a format loads no codec package; decoding zstd loads only zstd', () => {
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', probe], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), { before: [], after: ['zstd-napi'] });
  });
});

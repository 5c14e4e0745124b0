/**
 * Hostile inputs made at test time: xz files whose index lies, decompression bombs, `.modinfo`
 * sections built to be slow. Shared by the regression tests and the fuzzer's seeds.
 */
import { deflateRawSync, crc32 as zlibCrc32 } from 'node:zlib';
import { buildElf } from './elf-builder.js';

/** CRC-32 (IEEE), as xz and gzip use it. */
export function crc32(data: Uint8Array): number {
  if (typeof zlibCrc32 === 'function') return zlibCrc32(data) >>> 0;
  let c = ~0;
  for (const b of data) {
    c ^= b;
    for (let k = 0; k < 8; k++) c = (c >>> 1) ^ (0xedb88320 & -(c & 1));
  }
  return ~c >>> 0;
}

function vli(n: number): number[] {
  const out: number[] = [];
  while (n >= 0x80) {
    out.push((n % 0x80) | 0x80);
    n = Math.floor(n / 0x80);
  }
  out.push(n);
  return out;
}

function readVli(b: Uint8Array, p: number): [number, number] {
  let v = 0;
  for (let i = 0, mul = 1; ; i++, mul *= 128) {
    const byte = b[p++];
    v += (byte & 0x7f) * mul;
    if (!(byte & 0x80)) return [v, p];
  }
}

/**
 * A single-stream xz file with its index rewritten so that it declares `size` uncompressed
 * bytes (the last block's record), with every CRC and the footer's backward size fixed up: the
 * index is well formed, only the data does not decode to it.
 * @example xzWithIndexSize(compress('xz', module), 200 << 20)
 */
export function xzWithIndexSize(xz: Uint8Array, size: number): Buffer {
  const footer = xz.length - 12;
  const backward = (Buffer.from(xz.buffer, xz.byteOffset, xz.length).readUInt32LE(footer + 4) + 1) * 4;
  const index = footer - backward;
  let p = index + 1;
  let records: number;
  [records, p] = readVli(xz, p);
  const recs: Array<[number, number]> = [];
  for (let r = 0; r < records; r++) {
    let unpadded: number, uncompressed: number;
    [unpadded, p] = readVli(xz, p);
    [uncompressed, p] = readVli(xz, p);
    recs.push([unpadded, uncompressed]);
  }
  const others = recs.slice(0, -1).reduce((s, [, u]) => s + u, 0);
  recs[recs.length - 1][1] = Math.max(0, size - others);
  const body = [0, ...vli(recs.length), ...recs.flatMap(([a, b]) => [...vli(a), ...vli(b)])];
  while (body.length % 4) body.push(0);
  const idx = Buffer.from(body);
  const idxCrc = Buffer.alloc(4);
  idxCrc.writeUInt32LE(crc32(idx));
  const foot = Buffer.from(xz.subarray(footer));
  foot.writeUInt32LE((idx.length + 4) / 4 - 1, 4);
  foot.writeUInt32LE(crc32(foot.subarray(4, 10)), 0);
  return Buffer.concat([xz.subarray(0, index), idx, idxCrc, foot]);
}

/**
 * A gzip member of `size` zero bytes made without holding them: one deflate stream of a
 * repeated block (deflate's own back-references keep it at about size/1000 bytes).
 * `isize` overrides the trailer's size (mod 2^32) to make the hint lie.
 */
export function gzipBomb(size: number, opts: { isize?: number } = {}): Buffer {
  // stored blocks would not compress; a raw deflate of zeros, concatenated blocks via sync flush
  const unit = 16 << 20;
  const zeros = Buffer.alloc(Math.min(unit, size));
  const parts: Buffer[] = [Buffer.from([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3])];
  // each piece is a complete raw deflate stream without the final-block bit except the last
  let left = size;
  const pieces: Buffer[] = [];
  while (left > 0) {
    const n = Math.min(unit, left);
    left -= n;
    pieces.push(deflateRawSync(zeros.subarray(0, n), { level: 9, finishFlush: left > 0 ? 2 /* Z_SYNC_FLUSH */ : 4 }));
  }
  // A raw deflate stream ends with a final block; a sync-flushed one ends with an empty stored
  // block and no final bit, so the pieces concatenate into one stream.
  parts.push(...pieces);
  const trailer = Buffer.alloc(8);
  trailer.writeUInt32LE(0, 0); // CRC of the data: wrong, but a bomb is refused before the check
  trailer.writeUInt32LE((opts.isize ?? size) >>> 0, 4);
  parts.push(trailer);
  return Buffer.concat(parts);
}

/** A `.modinfo` of `count` one-letter strings without `=`: `a\0a\0...`. */
export function manyShortStrings(count: number): Buffer {
  return Buffer.from('a\0'.repeat(count), 'latin1');
}

/** A module whose `.modinfo` is {@link manyShortStrings}. */
export function slowModinfoModule(bytes: number): Buffer {
  return buildElf({ sections: [{ name: '.modinfo', data: manyShortStrings(bytes >> 1), flags: 2 }] }).image;
}

/**
 * An ELF whose section-name table is `tableBytes` of 'a' ending in one NUL, with `sections`
 * sections all named from its start: every name runs to the end of the table.
 */
export function longSectionNames(sections: number, tableBytes: number): Buffer {
  const table = Buffer.alloc(tableBytes, 0x61);
  table[tableBytes - 1] = 0;
  const specs = [
    { name: '.modinfo', data: 'license=GPL\0', flags: 2 },
    { name: '.names', data: table, type: 3 },
    ...Array.from({ length: sections }, () => ({ name: '.s', data: '' })),
  ];
  const { image, headers } = buildElf({ sections: specs });
  const dv = new DataView(image.buffer, image.byteOffset, image.byteLength);
  const shoff = Number(dv.getBigUint64(40, true));
  const shnum = dv.getUint16(60, true);
  dv.setUint16(62, 2, true); // shstrndx: '.names'
  for (let i = 1; i < shnum; i++) dv.setUint32(shoff + i * 64, 0, true);
  void headers;
  return image;
}

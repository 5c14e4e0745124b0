/**
 * Hostile inputs made at test time: xz files whose index lies, decompression bombs, `.modinfo`
 * sections built to be slow. Shared by the regression tests and the fuzzer's seeds.
 */
import { deflateRawSync, gzipSync, crc32 as zlibCrc32 } from 'node:zlib';
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
 * A gzip member of `size` zero bytes, made without holding them: one 16 MiB piece of raw deflate
 * (sync-flushed, so pieces concatenate into one stream) repeated, then a final piece. About
 * size/1000 bytes. The trailer's CRC and size are right unless `isize` overrides the size field.
 */
export function gzipBomb(size: number, opts: { isize?: number } = {}): Buffer {
  const unit = 16 << 20;
  const zeros = Buffer.alloc(Math.min(unit, size));
  const full = Math.floor(size / unit);
  const rest = size - full * unit;
  const piece = full > 0 ? deflateRawSync(zeros, { level: 9, finishFlush: 2 /* Z_SYNC_FLUSH */ }) : Buffer.alloc(0);
  const last = deflateRawSync(zeros.subarray(0, rest), { level: 9 });
  let crc = 0;
  if (typeof zlibCrc32 === 'function') {
    for (let i = 0; i < full; i++) crc = zlibCrc32(zeros, crc);
    crc = zlibCrc32(zeros.subarray(0, rest), crc);
  }
  const trailer = Buffer.alloc(8);
  trailer.writeUInt32LE(crc >>> 0, 0);
  trailer.writeUInt32LE((opts.isize ?? size) % 2 ** 32, 4);
  return Buffer.concat([Buffer.from([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3]), ...Array(full).fill(piece), last, trailer]);
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

/** One DER element: tag byte, definite length, contents. */
export function der(tag: number, ...contents: Uint8Array[]): Buffer {
  const body = Buffer.concat(contents);
  const n = body.length;
  const len = n < 0x80 ? [n] : n < 0x100 ? [0x81, n] : [0x82, n >> 8, n & 0xff];
  return Buffer.concat([Buffer.from([tag, ...len]), body]);
}

/** An OBJECT IDENTIFIER element from its dotted form. */
export function oid(dotted: string): Buffer {
  const arcs = dotted.split('.').map(Number);
  const out = [arcs[0] * 40 + arcs[1]];
  for (const a of arcs.slice(2)) {
    const b = [a & 0x7f];
    for (let v = Math.floor(a / 128); v > 0; v = Math.floor(v / 128)) b.unshift((v & 0x7f) | 0x80);
    out.push(...b);
  }
  return der(0x06, Buffer.from(out));
}

/** What {@link pkcs7Blob} puts in, each part replaceable to make a broken blob. */
export interface Pkcs7Parts {
  /** the issuer's commonName value element (default a UTF8String) */
  cn?: Buffer;
  /** the serial number INTEGER element */
  serial?: Buffer;
  /** the signer's digest algorithm OID */
  digest?: string;
  /** the tag of the SignedData's digestAlgorithms SET */
  digestSetTag?: number;
  /** elements appended to the SignerInfo */
  signerExtra?: Buffer[];
}

/**
 * A PKCS#7 SignedData shaped as the kernel's sign-file writes it (no certificates, no
 * attributes, issuer and serial as the signer identifier, RSA over SHA-256).
 */
export function pkcs7Blob(p: Pkcs7Parts = {}): Buffer {
  const sha = oid(p.digest ?? '2.16.840.1.101.3.4.2.1');
  const alg = (o: Buffer, nul = true) => der(0x30, o, ...(nul ? [der(0x05)] : []));
  const cn = p.cn ?? der(0x0c, Buffer.from('Build time autogenerated kernel key'));
  const issuer = der(0x30, der(0x31, der(0x30, oid('2.5.4.3'), cn)));
  const serial = p.serial ?? der(0x02, Buffer.from('255ea732118d4230c1cbfaf3540e3f2b5de65c32', 'hex'));
  const signerInfo = der(
    0x30,
    der(0x02, Buffer.from([1])),
    der(0x30, issuer, serial),
    alg(sha, false),
    alg(oid('1.2.840.113549.1.1.1')),
    der(0x04, Buffer.alloc(256, 0xa5)),
    ...(p.signerExtra ?? []),
  );
  const signed = der(
    0x30,
    der(0x02, Buffer.from([1])),
    der(p.digestSetTag ?? 0x31, alg(oid('2.16.840.1.101.3.4.2.1'), false)),
    der(0x30, oid('1.2.840.113549.1.7.1')),
    der(0x31, signerInfo),
  );
  return der(0x30, oid('1.2.840.113549.1.7.2'), der(0xa0, signed));
}

/**
 * An xz bomb of `copies` concatenated streams, each `unit` (a small xz file of zeros made once by
 * the caller): decodes to copies × its size, costs copies × its compressed size.
 */
export function xzConcat(unit: Uint8Array, copies: number): Buffer {
  return Buffer.concat(Array(copies).fill(Buffer.from(unit)));
}

/**
 * A gzip file (three members) of a valid ELF module whose `.big` section is `size` zero bytes
 * (a multiple of 8), made without holding the image: a module that decompresses for a long time.
 */
export function bigGzipModule(size: number): Buffer {
  const { image, offsets, headers } = buildElf({
    sections: [
      { name: '.modinfo', data: 'license=GPL\0name=big\0vermagic=6.1.0 SMP mod_unload \0', flags: 2 },
      { name: '.big', data: Buffer.alloc(8), flags: 3 },
    ],
  });
  const big = offsets['.big'];
  const shift = size - 8;
  const head = Buffer.from(image.subarray(0, big));
  const tail = Buffer.from(image.subarray(big + 8));
  const tailStart = big + 8;
  head.writeBigUInt64LE(head.readBigUInt64LE(40) + BigInt(shift), 40); // e_shoff
  tail.writeBigUInt64LE(BigInt(size), headers['.big'] - tailStart + 32); // .big sh_size
  const strtab = headers['.shstrtab'] - tailStart;
  tail.writeBigUInt64LE(tail.readBigUInt64LE(strtab + 24) + BigInt(shift), strtab + 24); // sh_offset
  return Buffer.concat([gzipSync(head), gzipBomb(size), gzipSync(tail)]);
}

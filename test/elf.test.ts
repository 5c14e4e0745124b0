import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, readFileSync, openSync, closeSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { bufferSource, fdSource, parseElfSections, readModinfo, readSignature, prepareForced, findSection } from '../src/file/elf/sections.js';
import { ElfError } from '../src/errors.js';
import { buildElf, appendSignature } from './helpers/elf-builder.js';

const MODINFO = '\0\0license=GPL\0vermagic=6.1.0 SMP mod_unload\0\0\0parm=x:int\0author=A B\0descr';
const pairs = [['license', 'GPL'], ['vermagic', '6.1.0 SMP mod_unload'], ['parm', 'x:int'], ['author', 'A B'], ['descr', '']];

const layouts = [
  { bits: 64 as const, littleEndian: true },
  { bits: 64 as const, littleEndian: false },
  { bits: 32 as const, littleEndian: true },
  { bits: 32 as const, littleEndian: false },
];

function module(l: { bits: 32 | 64; littleEndian: boolean }) {
  return buildElf({
    ...l,
    sections: [
      { name: '.text', data: 'code', flags: 6 },
      { name: '__versions', data: new Uint8Array(64), flags: 2 },
      { name: '.modinfo', data: MODINFO, flags: 2 },
    ],
  });
}

function elfErrorKind(kind: string) {
  return (e: unknown) => e instanceof ElfError && e.kind === kind;
}

describe('parseElfSections', () => {
  for (const l of layouts) {
    test(`reads the section headers of an ELF${l.bits} ${l.littleEndian ? 'little' : 'big'}-endian image`, () => {
      const { image, offsets } = module(l);
      const lay = parseElfSections(bufferSource(image));
      assert.equal(lay.bits, l.bits);
      assert.equal(lay.littleEndian, l.littleEndian);
      assert.deepEqual(lay.sections.map((s) => s.name), ['', '.text', '__versions', '.modinfo', '.shstrtab']);
      const mi = findSection(lay, '.modinfo');
      assert.equal(mi?.offset, offsets['.modinfo']);
      assert.equal(mi?.flags, 2n);
    });
  }

  const bad: Array<{ name: string; image: () => Uint8Array; kind: string }> = [
    { name: 'an empty file', image: () => new Uint8Array(0), kind: 'not-elf' },
    { name: 'a file of 16 bytes', image: () => module(layouts[0]).image.subarray(0, 16), kind: 'not-elf' },
    { name: 'bad magic', image: () => { const b = Buffer.from(module(layouts[0]).image); b[1] = 0x46; return b; }, kind: 'not-elf' },
    { name: 'gzip data', image: () => Buffer.from([0x1f, 0x8b, 8, 0, ...new Array(60).fill(0)]), kind: 'not-elf' },
    { name: 'a bad class byte', image: () => { const b = Buffer.from(module(layouts[0]).image); b[4] = 3; return b; }, kind: 'malformed' },
    { name: 'a bad data byte', image: () => { const b = Buffer.from(module(layouts[0]).image); b[5] = 0; return b; }, kind: 'malformed' },
    { name: 'a truncated header', image: () => module(layouts[0]).image.subarray(0, 40), kind: 'malformed' },
    { name: 'section headers past the end', image: () => buildElf({ sections: [], patch: { shoff: 1 << 20 } }).image, kind: 'malformed' },
    { name: 'a huge ELF64 e_shoff', image: () => buildElf({ sections: [], patch: { shoff: 2 ** 53 } }).image, kind: 'malformed' },
    { name: 'too many sections', image: () => buildElf({ bits: 32, sections: [], patch: { shnum: 500 } }).image, kind: 'malformed' },
    { name: 'a wrong e_shentsize', image: () => buildElf({ sections: [], patch: { shentsize: 40 } }).image, kind: 'malformed' },
    { name: 'shstrndx 0', image: () => buildElf({ sections: [], patch: { shstrndx: 0 } }).image, kind: 'malformed' },
    { name: 'shstrndx past the table', image: () => buildElf({ sections: [], patch: { shstrndx: 9 } }).image, kind: 'malformed' },
    { name: 'a truncated file (shstrtab cut)', image: () => { const b = module(layouts[0]); return b.image.subarray(0, b.headers['.modinfo']); }, kind: 'malformed' },
  ];
  for (const c of bad) {
    test(`rejects ${c.name} with ElfError '${c.kind}'`, () => {
      assert.throws(() => parseElfSections(bufferSource(c.image())), elfErrorKind(c.kind));
    });
  }

  test('skips a section whose offset points past the end, as kmod does', () => {
    const { image, headers } = module(layouts[0]);
    const b = Buffer.from(image);
    b.writeBigUInt64LE(BigInt(b.length + 100), headers['.modinfo'] + 24);
    const lay = parseElfSections(bufferSource(b));
    assert.equal(findSection(lay, '.modinfo'), undefined);
    assert.equal(readModinfo(bufferSource(b)), undefined);
  });
});

describe('readModinfo', () => {
  for (const l of layouts) {
    test(`returns the key=value pairs in file order from an ELF${l.bits} ${l.littleEndian ? 'LE' : 'BE'} image`, () => {
      assert.deepEqual(readModinfo(bufferSource(module(l).image)), pairs);
    });
  }

  test('returns undefined when there is no .modinfo section', () => {
    assert.equal(readModinfo(bufferSource(buildElf({ sections: [{ name: '.text', data: 'x' }] }).image)), undefined);
  });

  const cases: Array<{ name: string; data: string; want: Array<[string, string]> }> = [
    { name: 'an empty section', data: '', want: [] },
    { name: 'only padding', data: '\0\0\0\0', want: [] },
    { name: 'a single byte', data: 'a', want: [] },
    { name: 'a value with = in it', data: 'a=b=c\0', want: [['a', 'b=c']] },
    { name: 'an unterminated last string', data: 'a=1\0b=2', want: [['a', '1'], ['b', '2']] },
  ];
  for (const c of cases) {
    test(`handles ${c.name} like kmod_elf_get_strings`, () => {
      const img = buildElf({ sections: [{ name: '.modinfo', data: c.data }] }).image;
      assert.deepEqual(readModinfo(bufferSource(img)), c.want);
    });
  }

  test('keeps non-UTF-8 bytes with the latin1 encoding', () => {
    const img = buildElf({ sections: [{ name: '.modinfo', data: 'author=J\xf6rg\0' }] }).image;
    const [[, v]] = readModinfo(bufferSource(img), { encoding: 'latin1' })!;
    assert.deepEqual(Buffer.from(v, 'latin1'), Buffer.from([0x4a, 0xf6, 0x72, 0x67]));
  });

  test('reads through a file descriptor, touching only what it needs', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'elf-'));
    try {
      const file = path.join(dir, 'm.ko');
      writeFileSync(file, module(layouts[1]).image);
      const fd = openSync(file, 'r');
      try {
        assert.deepEqual(readModinfo(fdSource(fd)), pairs);
      } finally {
        closeSync(fd);
      }
    } finally {
      rmSync(dir, { recursive: true });
    }
  });

  test('reads an object file compiled by gcc (gcc is required)', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'elf-gcc-'));
    try {
      const c = path.join(dir, 'm.c');
      writeFileSync(c, [
        'static const char a[] __attribute__((used, section(".modinfo"), aligned(1))) = "license=GPL";',
        'static const char b[] __attribute__((used, section(".modinfo"), aligned(1))) = "vermagic=6.1.0 SMP";',
        'static const char v[64] __attribute__((used, section("__versions"))) = "x";',
        'int f(void) { return 1; }',
      ].join('\n'));
      execFileSync('gcc', ['-c', '-O0', '-o', path.join(dir, 'm.o'), c]);
      const img = readFileSync(path.join(dir, 'm.o'));
      const got = readModinfo(bufferSource(img))!;
      assert.deepEqual(got.map(([k]) => k).sort(), ['license', 'vermagic']);
      const forced = prepareForced(img, { modversions: true, vermagic: true });
      const lay = parseElfSections(bufferSource(forced));
      assert.equal(findSection(lay, '__versions')!.flags & 2n, 0n);
      assert.deepEqual(readModinfo(bufferSource(forced))!.map(([k]) => k), ['license']);
    } finally {
      rmSync(dir, { recursive: true });
    }
  });
});

describe('readSignature', () => {
  const body = module(layouts[0]).image;
  test('parses a PKCS#7 trailer', () => {
    const sig = Buffer.from([0x30, 0x03, 0x02, 0x01, 0x05]);
    const s = readSignature(bufferSource(appendSignature(body, { sig, hash: 4 })))!;
    assert.equal(s.bodyLength, body.length);
    assert.equal(s.sigLength, 5);
    assert.equal(s.idType, 2);
    assert.equal(s.hashAlgo, 4);
    assert.deepEqual(Buffer.from(s.signature), sig);
    assert.equal(s.signer.length, 0);
  });

  test('parses signer and key id of an old-style X509 trailer', () => {
    const s = readSignature(bufferSource(appendSignature(body, { sig: Buffer.from('SIG'), signer: Buffer.from('Me'), keyId: Buffer.from([1, 2]), idType: 1, algo: 1 })))!;
    assert.equal(Buffer.from(s.signer).toString(), 'Me');
    assert.deepEqual([...s.keyId], [1, 2]);
    assert.equal(Buffer.from(s.signature).toString(), 'SIG');
    assert.equal(s.bodyLength, body.length);
  });

  const none: Array<{ name: string; image: () => Uint8Array }> = [
    { name: 'an unsigned module', image: () => body },
    { name: 'a file shorter than the trailer', image: () => Buffer.from('~Module signature appended~\n') },
    { name: 'a zero sig_len', image: () => appendSignature(body, { sig: new Uint8Array(0) }) },
    { name: 'a sig_len larger than the file', image: () => { const b = appendSignature(body, { sig: Buffer.from([1]) }); b.writeUInt32BE(1 << 30, b.length - 28 - 4); return b; } },
  ];
  for (const c of none) {
    test(`returns undefined for ${c.name}`, () => {
      assert.equal(readSignature(bufferSource(c.image())), undefined);
    });
  }
});

describe('prepareForced', () => {
  for (const l of layouts) {
    test(`strips __versions SHF_ALLOC and zeroes vermagic in an ELF${l.bits} ${l.littleEndian ? 'LE' : 'BE'} image`, () => {
      const { image, offsets } = module(l);
      const before = Buffer.from(image);
      const out = prepareForced(image, { modversions: true, vermagic: true });
      assert.deepEqual(Buffer.from(image), before, 'input not mutated');
      const lay = parseElfSections(bufferSource(out));
      assert.equal(findSection(lay, '__versions')!.flags, 0n);
      assert.equal(findSection(lay, '.modinfo')!.flags, 2n);
      const at = offsets['.modinfo'] + MODINFO.indexOf('vermagic=');
      const len = 'vermagic=6.1.0 SMP mod_unload'.length;
      assert.ok(out.subarray(at, at + len).every((b) => b === 0), 'every byte of vermagic zeroed');
      assert.equal(out[at + len], 0);
      assert.deepEqual(readModinfo(bufferSource(out))!.map(([k]) => k), ['license', 'parm', 'author', 'descr']);
      // nothing else changed
      let diff = 0;
      for (let i = 0; i < out.length; i++) if (out[i] !== image[i]) diff++;
      assert.ok(diff <= len + 1, `changed ${diff} bytes`);
    });
  }

  test('changes only what was asked', () => {
    const { image } = module(layouts[0]);
    const onlyMv = prepareForced(image, { modversions: true, vermagic: false });
    assert.ok(readModinfo(bufferSource(onlyMv))!.some(([k]) => k === 'vermagic'));
    const onlyVm = prepareForced(image, { modversions: false, vermagic: true });
    assert.equal(findSection(parseElfSections(bufferSource(onlyVm)), '__versions')!.flags, 2n);
  });

  test('accepts a module without __versions', () => {
    const img = buildElf({ sections: [{ name: '.modinfo', data: 'vermagic=x\0' }] }).image;
    assert.doesNotThrow(() => prepareForced(img, { modversions: true, vermagic: false }));
  });

  for (const [name, data] of [['no vermagic', 'license=GPL\0'], ['no .modinfo', undefined]] as const) {
    test(`throws ElfError 'no-vermagic' for a module with ${name}`, () => {
      const img = buildElf({ sections: data === undefined ? [] : [{ name: '.modinfo', data }] }).image;
      assert.throws(() => prepareForced(img, { modversions: true, vermagic: true }), elfErrorKind('no-vermagic'));
    });
  }

  test('drops the appended signature and leaves the input intact', () => {
    const { image } = module(layouts[0]);
    const signed = appendSignature(image, { sig: Buffer.from([0x30, 0x00]) });
    const before = Buffer.from(signed);
    for (const opts of [{ modversions: true, vermagic: true }, { modversions: false, vermagic: false }]) {
      const out = prepareForced(signed, opts);
      assert.equal(out.length, image.length);
      assert.equal(readSignature(bufferSource(out)), undefined);
      assert.deepEqual(signed, before);
    }
  });

  test('with inPlace, strips the caller\'s buffer itself and returns a view of it without the signature', () => {
    const { image } = module(layouts[0]);
    const signed = appendSignature(image, { sig: Buffer.from([0x30, 0x00]) });
    const out = prepareForced(signed, { modversions: true, vermagic: true }, { inPlace: true });
    assert.equal(out.buffer, signed.buffer, 'same memory');
    assert.equal(out.byteOffset, signed.byteOffset);
    assert.equal(out.length, image.length, 'signature cut off');
    assert.equal(findSection(parseElfSections(bufferSource(signed)), '__versions')!.flags, 0n, 'the caller\'s buffer was stripped');
    assert.equal(readModinfo(bufferSource(out))!.some(([k]) => k === 'vermagic'), false);
  });

  test('with inPlace, a module without vermagic is refused before anything is written', () => {
    const img = buildElf({ sections: [{ name: '__versions', data: 'x'.repeat(64), flags: 2 }, { name: '.modinfo', data: 'license=GPL\0' }] }).image;
    const before = Buffer.from(img);
    assert.throws(() => prepareForced(img, { modversions: true, vermagic: true }, { inPlace: true }), elfErrorKind('no-vermagic'));
    assert.deepEqual(Buffer.from(img), before, 'untouched');
  });

  test('returns a copy even when nothing is stripped', () => {
    const { image } = module(layouts[0]);
    const out = prepareForced(image, { modversions: false, vermagic: false });
    out[0] = 0;
    assert.equal(image[0], 0x7f);
  });
});

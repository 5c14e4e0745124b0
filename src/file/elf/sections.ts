/**
 * ELF sections, `.modinfo`, the appended module signature, and the userspace half of
 * `insmod -f`.
 *
 * Everything reads through a {@link ByteSource}, so `modinfo` on an uncompressed module reads the
 * ELF header, the section header table, the section-name table, `.modinfo` and the signature
 * trailer, never the whole file. The validation mirrors kmod's libkmod-elf.c `kmod_elf_new`: a
 * bad header or section-name table makes the file unusable, a single section whose offsets
 * point outside the file is skipped when looking sections up (kmod's `elf_find_section`).
 *
 * @module
 */
import { fstatSync, readSync } from 'node:fs';
import { ElfError } from '../../errors.js';

/**
 * Random access to the bytes of a module image.
 * @example
 * const src = bufferSource(await readFile('dummy.ko'));
 * src.read(0, 4); // 7F 45 4C 46
 */
export interface ByteSource {
  /** total length in bytes */
  readonly size: number;
  /**
   * Bytes `[offset, offset+length)`; callers keep within `size`. The result may share memory
   * with the source and must not be written to.
   */
  read(offset: number, length: number): Uint8Array;
}

/**
 * A {@link ByteSource} over bytes already in memory (no copy).
 * @param buf the image
 * @returns a source reading from `buf`
 * @example
 * parseElfSections(bufferSource(buf));
 */
export function bufferSource(buf: Uint8Array): ByteSource {
  return {
    size: buf.length,
    read(offset, length) {
      return buf.subarray(offset, offset + length);
    },
  };
}

/**
 * A {@link ByteSource} over an open file descriptor: each `read` is one `pread`. The caller
 * owns (and closes) the fd.
 * @param fd an fd open for reading on a regular file
 * @param size the file's size; `fstat`ed when omitted
 * @returns a source reading from the file
 * @throws the `fs` error of `fstat`/`read`
 * @example
 * const fd = openSync(path, 'r');
 * try { readModinfo(fdSource(fd)) } finally { closeSync(fd) }
 */
export function fdSource(fd: number, size?: number): ByteSource {
  const total = size ?? fstatSync(fd).size;
  return {
    size: total,
    read(offset, length) {
      const out = Buffer.allocUnsafe(length);
      let done = 0;
      while (done < length) {
        const n = readSync(fd, out, done, length - done, offset + done);
        if (n === 0) break;
        done += n;
      }
      return done === length ? out : out.subarray(0, done);
    },
  };
}

/** One section header. */
export interface ElfSection {
  /** index in the section header table */
  readonly index: number;
  /** name from the section-name table (`''` if its offset is out of range) */
  readonly name: string;
  readonly type: number;
  /** `sh_flags` (SHF_ALLOC = 2) */
  readonly flags: bigint;
  /** file offset of the contents */
  readonly offset: number;
  /** size of the contents */
  readonly size: number;
  /** file offset of this section's header (where `sh_flags` lives) */
  readonly headerOffset: number;
  /** whether `[offset, offset+size)` lies inside the file; kmod skips sections where it does not */
  readonly inBounds: boolean;
}

/** What {@link parseElfSections} found. */
export interface ElfLayout {
  readonly bits: 32 | 64;
  readonly littleEndian: boolean;
  readonly machine: number;
  readonly sections: readonly ElfSection[];
}

const EI_NIDENT = 16;
const SHF_ALLOC = 2n;

/** Byte-order aware integer reads over a small buffer. */
function reader(bytes: Uint8Array, le: boolean) {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return {
    u16: (o: number) => dv.getUint16(o, le),
    u32: (o: number) => dv.getUint32(o, le),
    u64: (o: number) => dv.getBigUint64(o, le),
  };
}

function toSafe(v: bigint, what: string): number {
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new ElfError('malformed', `${what} out of range`);
  return Number(v);
}

/**
 * Longest section name kept whole. Real ones are short (`.rela.gnu.linkonce.this_module`); a
 * hostile table of one long string, named from by every one of 65,535 headers, would otherwise
 * cost headers × table bytes of scanning and strings (a 1 MiB table: 35 s, 4 GB). A longer name is
 * cut here, which no name we look up can equal.
 */
const MAX_SECTION_NAME = 256;

function cstring(bytes: Uint8Array, start: number, max = Infinity): Uint8Array {
  const window = bytes.subarray(start, Math.min(bytes.length, start + max));
  const nul = window.indexOf(0);
  return nul === -1 ? window : window.subarray(0, nul);
}

/**
 * Reads the ELF header and section headers, ELF32 or ELF64, either byte order.
 * @param src the image
 * @returns class, byte order, machine and every section header (index 0 included)
 * @throws {ElfError} `not-elf` when the magic is wrong or the file is too short for it;
 *   `malformed` for a bad class/data byte, a wrong `e_shentsize`, a section table or section-name
 *   table outside the file, or a section-name table that does not end in NUL
 * @example
 * const { sections } = parseElfSections(bufferSource(buf));
 * sections.find((s) => s.name === '.modinfo');
 */
export function parseElfSections(src: ByteSource): ElfLayout {
  // kmod's elf_identify: needs more than EI_NIDENT bytes and the magic, else ENOEXEC
  if (src.size <= EI_NIDENT) throw new ElfError('not-elf', 'file too short for an ELF header');
  const ident = src.read(0, EI_NIDENT);
  if (ident[0] !== 0x7f || ident[1] !== 0x45 || ident[2] !== 0x4c || ident[3] !== 0x46) {
    throw new ElfError('not-elf', 'bad ELF magic');
  }
  let bits: 32 | 64;
  if (ident[4] === 1) bits = 32;
  else if (ident[4] === 2) bits = 64;
  else throw new ElfError('malformed', `bad ELF class ${ident[4]}`);
  const ehsize = bits === 32 ? 52 : 64;
  if (src.size <= ehsize) throw new ElfError('malformed', 'file too short for the ELF header');
  let le: boolean;
  if (ident[5] === 1) le = true;
  else if (ident[5] === 2) le = false;
  else throw new ElfError('malformed', `bad ELF data encoding ${ident[5]}`);

  const eh = reader(src.read(0, ehsize), le);
  const machine = eh.u16(18);
  let shoff: number, shentsize: number, shnum: number, shstrndx: number;
  if (bits === 32) {
    shoff = eh.u32(32);
    shentsize = eh.u16(46);
    shnum = eh.u16(48);
    shstrndx = eh.u16(50);
  } else {
    shoff = toSafe(eh.u64(40), 'e_shoff');
    shentsize = eh.u16(58);
    shnum = eh.u16(60);
    shstrndx = eh.u16(62);
  }
  const want = bits === 32 ? 40 : 64;
  if (shentsize !== want) throw new ElfError('malformed', `unexpected section entry size ${shentsize}`);
  if (shoff + shnum * shentsize > src.size) throw new ElfError('malformed', 'file too short to hold the section headers');

  const table = src.read(shoff, shnum * shentsize);
  const t = reader(table, le);
  const raw: Array<{ nameoff: number; type: number; flags: bigint; offset: number; size: number; headerOffset: number; inBounds: boolean }> = [];
  for (let i = 0; i < shnum; i++) {
    const b = i * shentsize;
    let nameoff: number, type: number, flags: bigint, offset: number, size: number;
    if (bits === 32) {
      nameoff = t.u32(b);
      type = t.u32(b + 4);
      flags = BigInt(t.u32(b + 8));
      offset = t.u32(b + 16);
      size = t.u32(b + 20);
    } else {
      nameoff = t.u32(b);
      type = t.u32(b + 4);
      flags = t.u64(b + 8);
      const o = t.u64(b + 24);
      const s = t.u64(b + 32);
      // an absurd value just marks the section out of bounds, as kmod's overflow check does
      offset = o > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(o);
      size = s > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(s);
    }
    raw.push({ nameoff, type, flags, offset, size, headerOffset: shoff + b, inBounds: offset + size <= src.size });
  }

  // kmod_elf_new: the section-name table must exist (index 0 is SHN_UNDEF), fit, and end in NUL
  const strtab = raw[shstrndx];
  if (shstrndx === 0 || strtab === undefined || !strtab.inBounds) {
    throw new ElfError('malformed', 'no usable section-name table');
  }
  const names = src.read(strtab.offset, strtab.size);
  if (names.length === 0 || names[names.length - 1] !== 0) {
    throw new ElfError('malformed', 'section-name table does not end with NUL');
  }
  const nameAt = new Map<number, string>();
  const nameOf = (off: number): string => {
    let name = nameAt.get(off);
    if (name === undefined) nameAt.set(off, (name = Buffer.from(cstring(names, off, MAX_SECTION_NAME + 1)).toString('latin1')));
    return name;
  };
  const sections = raw.map((r, index): ElfSection => ({
    index,
    name: r.nameoff < names.length ? nameOf(r.nameoff) : '',
    type: r.type,
    flags: r.flags,
    offset: r.offset,
    size: r.size,
    headerOffset: r.headerOffset,
    inBounds: r.inBounds,
  }));
  return { bits, littleEndian: le, machine, sections };
}

/**
 * The first usable section of that name, as kmod's `kmod_elf_get_section` finds it (index 0 and
 * out-of-bounds sections are skipped).
 * @param layout from {@link parseElfSections}
 * @param name e.g. `.modinfo`
 * @returns the section, or undefined
 * @example
 * findSection(parseElfSections(src), '__versions');
 */
export function findSection(layout: ElfLayout, name: string): ElfSection | undefined {
  for (const s of layout.sections) {
    if (s.index !== 0 && s.inBounds && s.name === name) return s;
  }
  return undefined;
}

/**
 * Splits a string table as kmod's `kmod_elf_get_strings` does: leading NUL padding skipped, runs
 * of NULs separate strings, an unterminated last string still counts.
 */
function splitStrings(bytes: Uint8Array): Array<[start: number, end: number]> {
  let start = 0;
  let size = bytes.length;
  while (size > 1 && bytes[start] === 0) {
    start++;
    size--;
  }
  const out: Array<[number, number]> = [];
  if (size <= 1) return out;
  const end = start + size;
  let i = start;
  while (i < end) {
    const s = i;
    while (i < end && bytes[i] !== 0) i++;
    if (i > s) out.push([s, i]);
    while (i < end && bytes[i] === 0) i++;
  }
  return out;
}

/** How to turn `.modinfo` bytes into strings. */
export interface ModinfoReadOptions {
  /**
   * `utf8` (default) for display; `latin1` keeps every byte as one char so that
   * `Buffer.from(s, 'latin1')` gives the exact bytes back (what byte-exact output needs).
   */
  readonly encoding?: 'utf8' | 'latin1';
  /** a layout already parsed from the same source */
  readonly layout?: ElfLayout;
}

/**
 * The `.modinfo` section's `key=value` strings in file order. A string without `=` gives the
 * whole string as key and an empty value (kmod does the same).
 * @param src the image
 * @param opts encoding, or a layout already parsed
 * @returns the pairs; `undefined` when there is no `.modinfo` section
 * @throws {ElfError} as {@link parseElfSections}
 * @example
 * readModinfo(bufferSource(buf)); // [['license', 'GPL'], ['vermagic', '6.1.0 SMP ...'], ...]
 */
export function readModinfo(src: ByteSource, opts: ModinfoReadOptions = {}): Array<[key: string, value: string]> | undefined {
  const layout = opts.layout ?? parseElfSections(src);
  const sec = findSection(layout, '.modinfo');
  if (sec === undefined) return undefined;
  return decodeModinfo(src.read(sec.offset, sec.size), opts.encoding);
}

/**
 * Splits the bytes of a `.modinfo` section (or any `key=value` string table) into pairs, as
 * {@link readModinfo} does.
 * @param bytes the section contents
 * @param encoding `utf8` (default) or `latin1` (byte-exact, see {@link ModinfoReadOptions})
 * @returns the pairs in order
 * @example
 * decodeModinfo(Buffer.from('\0license=GPL\0')); // [['license', 'GPL']]
 */
export function decodeModinfo(bytes: Uint8Array, encoding: 'utf8' | 'latin1' = 'utf8'): Array<[key: string, value: string]> {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out: Array<[string, string]> = [];
  for (const [s, e] of splitStrings(bytes)) {
    // Searched within the string only: searching on to the end of the section made `a\0a\0...`
    // quadratic (256 KiB: 16 s; kmod 0.02 s).
    const eq = bytes.subarray(s, e).indexOf(0x3d) + s;
    if (eq < s) out.push([buf.toString(encoding, s, e), '']);
    else out.push([buf.toString(encoding, s, eq), buf.toString(encoding, eq + 1, e)]);
  }
  return out;
}

/** The magic that ends a signed module (kernel `MODULE_SIG_STRING`). */
export const SIGNATURE_MAGIC = '~Module signature appended~\n';
const MAGIC_LEN = 28;
const MODSIG_LEN = 12;

/** The appended signature of a module, as `struct module_signature` describes it. */
export interface ModuleSignature {
  /** bytes before the signature: the module proper */
  readonly bodyLength: number;
  /** length of the signature data (`sig_len`) */
  readonly sigLength: number;
  /** `module_signature.algo` (0 DSA, 1 RSA; unused since PKCS#7) */
  readonly algo: number;
  /** `module_signature.hash` (index into kmod's md4, md5, sha1, ... table) */
  readonly hashAlgo: number;
  /** `module_signature.id_type`: 0 PGP, 1 X509, 2 PKCS#7 */
  readonly idType: number;
  /** the signer's name (empty for PKCS#7, where it lives inside the blob) */
  readonly signer: Uint8Array;
  /** the key identifier (empty for PKCS#7) */
  readonly keyId: Uint8Array;
  /** the signature data: the PKCS#7 DER blob for id type 2 */
  readonly signature: Uint8Array;
}

/**
 * Parses the appended-signature trailer: `[module][signer][key id][sig][struct
 * module_signature][magic]`. Reads only the trailer and the signature data.
 * @param src the (decompressed) image
 * @returns the signature, or undefined when the file is not signed or the trailer does not add up
 * @example
 * const sig = readSignature(bufferSource(buf));
 * if (sig) buf.subarray(0, sig.bodyLength); // the module without its signature
 */
export function readSignature(src: ByteSource): ModuleSignature | undefined {
  const size = src.size;
  if (size < MAGIC_LEN + MODSIG_LEN) return undefined;
  const tail = src.read(size - MAGIC_LEN - MODSIG_LEN, MAGIC_LEN + MODSIG_LEN);
  if (Buffer.from(tail.buffer, tail.byteOffset + MODSIG_LEN, MAGIC_LEN).toString('latin1') !== SIGNATURE_MAGIC) return undefined;
  const algo = tail[0];
  const hashAlgo = tail[1];
  const idType = tail[2];
  const signerLen = tail[3];
  const keyIdLen = tail[4];
  const sigLength = new DataView(tail.buffer, tail.byteOffset + 8, 4).getUint32(0, false);
  const end = size - MAGIC_LEN - MODSIG_LEN;
  if (sigLength === 0 || end < signerLen + keyIdLen + sigLength) return undefined;
  const bodyLength = end - sigLength - keyIdLen - signerLen;
  const blob = src.read(bodyLength, end - bodyLength);
  return {
    bodyLength,
    sigLength,
    algo,
    hashAlgo,
    idType,
    signer: blob.subarray(0, signerLen),
    keyId: blob.subarray(signerLen, signerLen + keyIdLen),
    signature: blob.subarray(signerLen + keyIdLen),
  };
}

/** What {@link prepareForced} strips. */
export interface ForceOptions {
  /** clear SHF_ALLOC on `__versions` (`--force-modversion`) */
  readonly modversions: boolean;
  /** zero the `vermagic=` string in `.modinfo` (`--force-vermagic`) */
  readonly vermagic: boolean;
}

/**
 * A module image prepared for a forced `init_module`, as kmod's
 * `kmod_elf_strip_section("__versions")` and `kmod_elf_strip_vermagic` do, plus one fix: the
 * appended signature is dropped, because the stripped image no longer matches it and a kernel
 * that checks signatures rejects a bad one (EKEYREJECTED) where it would take an unsigned module.
 * By default this works on a private copy and the input is never written to; with `inPlace`
 * (for a buffer the caller owns, such as a freshly decompressed image) the input itself is
 * stripped and a view of it returned, so forcing costs no second module-sized buffer.
 * @param buf the uncompressed image
 * @param opts which strips to do
 * @param how `inPlace`: strip `buf` itself (default false: a copy)
 * @returns a new buffer, or with `inPlace` a view of `buf` without its signature
 * @throws {ElfError} `no-vermagic` when vermagic stripping is asked and `.modinfo` has no
 *   `vermagic=` string (or no `.modinfo`); `not-elf`/`malformed` as {@link parseElfSections}.
 *   Checked before anything is written, so a failing in-place call leaves `buf` as it was.
 * @example
 * const image = prepareForced(buf, { modversions: true, vermagic: true });
 */
export function prepareForced(buf: Uint8Array, opts: ForceOptions, how: { inPlace?: boolean } = {}): Buffer {
  const sig = readSignature(bufferSource(buf));
  const length = sig ? sig.bodyLength : buf.length;
  const out = how.inPlace ? Buffer.from(buf.buffer, buf.byteOffset, length) : Buffer.from(buf.subarray(0, length)); // copies unless inPlace
  if (!opts.modversions && !opts.vermagic) return out;
  const layout = parseElfSections(bufferSource(out));
  // Everything that can fail is found before the first write.
  let vermagic: Buffer | undefined;
  if (opts.vermagic) {
    const sec = findSection(layout, '.modinfo');
    const bytes = sec ? out.subarray(sec.offset, sec.offset + sec.size) : undefined;
    const hit = bytes ? splitStrings(bytes).find(([s, e]) => e - s >= 9 && s + 9 < bytes.length && Buffer.from(bytes.subarray(s, s + 9)).toString('latin1') === 'vermagic=') : undefined;
    if (bytes === undefined || hit === undefined) throw new ElfError('no-vermagic', 'no vermagic in .modinfo');
    vermagic = bytes.subarray(hit[0], hit[1]);
  }
  if (opts.modversions) {
    const sec = findSection(layout, '__versions');
    if (sec !== undefined) {
      const dv = new DataView(out.buffer, out.byteOffset, out.byteLength);
      if (layout.bits === 32) dv.setUint32(sec.headerOffset + 8, Number(sec.flags & ~SHF_ALLOC), layout.littleEndian);
      else dv.setBigUint64(sec.headerOffset + 8, sec.flags & ~SHF_ALLOC, layout.littleEndian);
    }
  }
  vermagic?.fill(0);
  return out;
}

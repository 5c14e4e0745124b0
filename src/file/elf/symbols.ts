/**
 * What depmod reads from a module image, read the way libkmod's `libkmod-elf.c` reads it, so
 * that malformed files fail (or silently yield nothing) exactly where kmod's do:
 * - exported symbols (`kmod_elf_get_symbols`): `.symtab` entries named `__crc_*` with their CRC,
 *   else the strings of `__ksymtab_strings` (kernels without MODVERSIONS);
 * - the `.modinfo` strings (`kmod_elf_get_modinfo_strings`);
 * - the symbols it needs (`kmod_elf_get_dependency_symbols`): undefined `.symtab` entries in
 *   order, then the `__versions` entries no symbol matched (`module_layout`).
 *
 * Only the first section of each of those names counts, as in `kmod_elf_save_sections`.
 *
 * @module
 */
import { KmodError } from '../../errors.js';
import { Errno } from '../../kernel/errno.js';

/** errno values libkmod returns here. */
const { ENOEXEC, EINVAL, ENODATA } = Errno;

/** A module image that libkmod's ELF reader rejects; `errno` is what kmod reports. */
export class ElfSymbolsError extends KmodError {
  declare readonly kind: 'not-elf' | 'no-symbols' | 'malformed';
  /** @param errno kmod's errno (ENOEXEC: not ELF; ENODATA: no symbols; EINVAL: malformed) @param message detail */
  constructor(errno: number, message: string) {
    super(errno === ENOEXEC ? 'not-elf' : errno === ENODATA ? 'no-symbols' : 'malformed', errno, message);
  }
}

/** Symbol binding as libkmod reports it. */
export type SymbolBind = 'local' | 'global' | 'weak' | 'undef' | 'none';

/**
 * Symbols of one module, packed so that a worker thread hands them over as one string and two
 * typed arrays (structured-cloning an object per symbol cost more than reading the module).
 * CRCs are numbers: kernel CRCs are 32-bit; an unreadable one is 2^64 as kmod's `(uint64_t)-1`.
 */
export interface SymbolList {
  /** number of symbols */
  count: number;
  /** the names, each followed by a NUL */
  names: string;
  /** each symbol's CRC (0 without MODVERSIONS) */
  crcs: Float64Array;
  /** for needed symbols: 1 where the reference is weak (weak ones still make dependencies; they only skip `-e` warnings) */
  weak?: Uint8Array;
}

/** An exported symbol (or a `__versions` entry) with its CRC as a 64-bit value. */
export interface ExportedSymbol {
  name: string;
  crc: bigint;
}

/** The names of a {@link SymbolList}, in order. */
export function symbolNames(list: SymbolList): string[] {
  if (list.count === 0) return [];
  const names = list.names.split('\0');
  names.length = list.count;
  return names;
}

/** Accumulates a {@link SymbolList}. */
class ListBuilder {
  names = '';
  crcs: number[] = [];
  weak: number[] = [];
  add(name: string, crc: number, weak = 0): void {
    this.names += `${name}\0`;
    this.crcs.push(crc);
    this.weak.push(weak);
  }
  done(withWeak: boolean): SymbolList {
    const out: SymbolList = { count: this.crcs.length, names: this.names, crcs: Float64Array.from(this.crcs) };
    if (withWeak) out.weak = Uint8Array.from(this.weak);
    return out;
  }
}

/** The parts of one module depmod uses. */
export interface DepmodParts {
  /** exported symbols; `undefined` when libkmod would answer ENODATA (no symbol table of either kind) */
  exports: SymbolList | undefined;
  /** errno of a failure to read the exports other than ENODATA (kmod: "failed to load symbols from") */
  exportsErrno?: number;
  /** the `alias=`, `softdep=` and `weakdep=` strings of `.modinfo`, in file order (latin1) */
  modinfo: string[];
  /** needed symbols; `undefined` when libkmod fails to read them (the module then gets no edges) */
  needs: SymbolList | undefined;
}

interface Section {
  offset: number;
  size: number;
}

const SECTION_NAMES = ['__ksymtab_strings', '.modinfo', '.strtab', '.symtab', '__versions'] as const;
const SHN_UNDEF = 0;
const SHN_ABS = 0xfff1;
const EM_SPARC = 2;
const EM_SPARCV9 = 43;
const STT_REGISTER = 13;

/**
 * libkmod's `struct kmod_elf` over an image in memory.
 * @example
 * const parts = new KmodElf(image).depmodParts();
 */
export class KmodElf {
  readonly #b: Buffer;
  readonly x32: boolean;
  readonly msb: boolean;
  readonly machine: number;
  readonly #shoff: number;
  readonly #shnum: number;
  readonly #shentsize: number;
  readonly #strings: Section;
  readonly #sections: Section[] = [];

  /**
   * `kmod_elf_new`: checks the identification, header, section header table and section-name
   * table, then finds the sections depmod reads.
   * @param image the whole (decompressed) module
   * @throws {ElfSymbolsError} ENOEXEC for data that is not ELF, EINVAL for a malformed header
   */
  constructor(image: Uint8Array) {
    const b = Buffer.isBuffer(image) ? image : Buffer.from(image.buffer, image.byteOffset, image.byteLength);
    this.#b = b;
    const size = b.length;
    if (size <= 16 || b[0] !== 0x7f || b[1] !== 0x45 || b[2] !== 0x4c || b[3] !== 0x46) throw new ElfSymbolsError(ENOEXEC, 'not an ELF file');
    if (b[4] === 1) {
      if (size <= 52) throw new ElfSymbolsError(EINVAL, 'ELF32 header truncated');
      this.x32 = true;
    } else if (b[4] === 2) {
      if (size <= 64) throw new ElfSymbolsError(EINVAL, 'ELF64 header truncated');
      this.x32 = false;
    } else throw new ElfSymbolsError(EINVAL, 'bad ELF class');
    if (b[5] === 1) this.msb = false;
    else if (b[5] === 2) this.msb = true;
    else throw new ElfSymbolsError(EINVAL, 'bad ELF data encoding');
    const x32 = this.x32;
    this.#shoff = this.uint(x32 ? 32 : 40, x32 ? 4 : 8);
    this.#shentsize = this.uint(x32 ? 46 : 58, 2);
    this.#shnum = this.uint(x32 ? 48 : 60, 2);
    const shstrndx = this.uint(x32 ? 50 : 62, 2);
    this.machine = this.uint(18, 2);
    const shdrSize = x32 ? 40 : 64;
    if (this.#shentsize !== shdrSize) throw new ElfSymbolsError(EINVAL, 'unexpected section entry size');
    if (!this.#valid(this.#shoff, shdrSize * this.#shnum)) throw new ElfSymbolsError(EINVAL, 'section headers out of bounds');
    const strs = this.#sectionInfo(shstrndx, undefined);
    if (strs === undefined) throw new ElfSymbolsError(EINVAL, 'could not get strings section');
    this.#strings = strs;
    if (strs.size === 0 || b[strs.offset + strs.size - 1] !== 0) throw new ElfSymbolsError(EINVAL, 'strings section does not end with \\0');
    let found = 0;
    const all = (1 << SECTION_NAMES.length) - 1;
    for (let i = 1; i < this.#shnum && found !== all; i++) {
      let name: string | undefined;
      const info = this.#sectionInfo(i, (n) => (name = n));
      if (info === undefined) continue;
      const k = SECTION_NAMES.indexOf(name as (typeof SECTION_NAMES)[number]);
      if (k === -1 || found & (1 << k)) continue;
      this.#sections[k] = info;
      found |= 1 << k;
    }
  }

  /**
   * `elf_get_uint`: an unsigned integer of 1, 2, 4 or 8 bytes in the file's byte order (as a
   * number). Plain byte arithmetic: Buffer's readUInt32LE checks its arguments on every call, and
   * this runs for every symbol of every module. Callers check offsets against the image first.
   */
  uint(off: number, size: number): number {
    const b = this.#b;
    if (this.msb) {
      switch (size) {
        case 1:
          return b[off];
        case 2:
          return (b[off] << 8) | b[off + 1];
        case 4:
          return ((b[off] << 24) | (b[off + 1] << 16) | (b[off + 2] << 8) | b[off + 3]) >>> 0;
        default:
          return this.uint(off, 4) * 0x100000000 + this.uint(off + 4, 4);
      }
    }
    switch (size) {
      case 1:
        return b[off];
      case 2:
        return b[off] | (b[off + 1] << 8);
      case 4:
        return (b[off] | (b[off + 1] << 8) | (b[off + 2] << 16) | (b[off + 3] << 24)) >>> 0;
      default:
        return this.uint(off + 4, 4) * 0x100000000 + this.uint(off, 4);
    }
  }

  #big(off: number, size: number): bigint {
    if (size !== 8) return BigInt(this.uint(off, size));
    return this.msb ? this.#b.readBigUInt64BE(off) : this.#b.readBigUInt64LE(off);
  }

  #valid(offset: number, size: number): boolean {
    return offset + size <= this.#b.length;
  }

  /** `elf_get_section_info`; `onName` gets the section's name. */
  #sectionInfo(idx: number, onName: ((n: string) => void) | undefined): Section | undefined {
    if (idx === SHN_UNDEF || idx >= this.#shnum) return undefined;
    const off = this.#shoff + idx * this.#shentsize;
    const hdr = this.x32 ? 40 : 64;
    if (!this.#valid(off, hdr)) return undefined;
    const size = this.x32 ? this.uint(off + 20, 4) : this.uint(off + 32, 8);
    const offset = this.x32 ? this.uint(off + 16, 4) : this.uint(off + 24, 8);
    const nameoff = this.uint(off, 4);
    if (!this.#valid(offset, size)) return undefined;
    if (this.#strings !== undefined) {
      if (nameoff >= this.#strings.size) return undefined;
      onName?.(this.#cstr(this.#strings.offset + nameoff));
    } else {
      // the section-name table itself: its own name is not needed
    }
    return { offset, size };
  }

  /** A NUL-terminated string at `off` (the file's end terminates it too). */
  #cstr(off: number, max = Infinity): string {
    const b = this.#b;
    let end = b.indexOf(0, off);
    if (end === -1) end = b.length;
    if (end - off > max) end = off + max;
    return b.toString('latin1', off, end);
  }

  #section(k: number): Section | undefined {
    const s = this.#sections[k];
    return s !== undefined && s.offset !== 0 ? s : undefined;
  }

  /**
   * `kmod_elf_get_modinfo_strings`: `.modinfo` split on runs of NULs.
   * @returns the strings, or undefined without `.modinfo` (ENODATA)
   */
  modinfoStrings(): string[] | undefined {
    const sec = this.#section(1);
    if (sec === undefined) return undefined;
    let start = sec.offset;
    let size = sec.size;
    const b = this.#b;
    while (size > 1 && b[start] === 0) {
      start++;
      size--;
    }
    if (size <= 1) return [];
    const out: string[] = [];
    const end = start + size;
    let i = start;
    while (i < end) {
      let z = b.indexOf(0, i);
      if (z === -1 || z > end) z = end;
      out.push(b.toString('latin1', i, z));
      i = z;
      while (i < end && b[i] === 0) i++;
    }
    return out;
  }

  /**
   * `kmod_elf_get_symbols`: `__crc_*` entries of `.symtab`, else `__ksymtab_strings`.
   * @returns the exports, or kmod's errno: ENODATA when there is neither, EINVAL for a malformed
   *   `__ksymtab_strings` (an errno, not a throw: most modules export nothing, and a thrown error
   *   costs a stack trace each)
   */
  exportedSymbolList(): SymbolList | number {
    const strtab = this.#section(2);
    const symtab = this.#section(3);
    const symlen = this.x32 ? 16 : 24;
    fromSymtab: if (strtab !== undefined && symtab !== undefined && symtab.size % symlen === 0) {
      const count = symtab.size / symlen;
      const out = new ListBuilder();
      const b = this.#b;
      for (let i = 1; i < count; i++) {
        const s = symtab.offset + i * symlen;
        const nameOff = this.uint(s, 4);
        if (nameOff >= strtab.size) break fromSymtab;
        const p = strtab.offset + nameOff;
        // "__crc_"
        if (b[p] !== 0x5f || b[p + 1] !== 0x5f || b[p + 2] !== 0x63 || b[p + 3] !== 0x72 || b[p + 4] !== 0x63 || b[p + 5] !== 0x5f) continue;
        const value = this.x32 ? this.uint(s + 4, 4) : this.uint(s + 8, 8);
        const shndx = this.uint(this.x32 ? s + 14 : s + 6, 2);
        out.add(this.#cstr(p + 6), this.#resolveCrc(value, shndx));
      }
      if (out.crcs.length > 0) return out.done(false);
    }
    return this.#ksymtabStrings();
  }

  #resolveCrc(crc: number, shndx: number): number {
    if (shndx === SHN_ABS || shndx === SHN_UNDEF) return crc;
    const sec = this.#sectionInfo(shndx, undefined);
    if (sec === undefined) return 2 ** 64;
    if (sec.size < 4 || crc > sec.size - 4) return 2 ** 64;
    return this.uint(sec.offset + crc, 4);
  }

  #ksymtabStrings(): SymbolList | number {
    const sec = this.#section(0);
    if (sec === undefined) return ENODATA;
    const b = this.#b;
    let start = sec.offset;
    let size = sec.size;
    while (size > 1 && b[start] === 0) {
      start++;
      size--;
    }
    const out = new ListBuilder();
    if (size <= 1) return out.done(false);
    if (b[start + size - 1] !== 0) return EINVAL;
    let last = start;
    for (let i = start; i < start + size; i++) {
      if (b[i] !== 0) continue;
      if (i !== last) out.add(b.toString('latin1', last, i), 0);
      last = i + 1;
    }
    return out.done(false);
  }

  /**
   * `kmod_elf_get_symbols` as a list of objects (what `modprobe --show-exports` prints).
   * @returns the exports with their CRCs
   * @throws {ElfSymbolsError} ENODATA when there is no symbol table of either kind, EINVAL for a
   *   malformed `__ksymtab_strings`
   */
  exportedSymbols(): ExportedSymbol[] {
    const list = this.exportedSymbolList();
    if (typeof list === 'number') throw new ElfSymbolsError(list, list === ENODATA ? 'no symbols' : 'malformed __ksymtab_strings');
    return symbolNames(list).map((name, i) => ({ name, crc: list.crcs[i] >= 2 ** 64 ? 0xffffffffffffffffn : BigInt(list.crcs[i]) }));
  }

  /**
   * `kmod_elf_get_modversions`: the `__versions` entries (CRC, name; a leading `.` dropped), as
   * `modprobe --show-modversions` prints them.
   * @returns the entries
   * @throws {ElfSymbolsError} ENODATA without `__versions`, EINVAL for a size that is not a
   *   multiple of an entry or a name that fills its field
   */
  modversions(): ExportedSymbol[] {
    const sec = this.#section(4);
    if (sec === undefined) throw new ElfSymbolsError(ENODATA, 'no __versions');
    const verlen = 64;
    const crclen = this.x32 ? 4 : 8;
    if (sec.size % verlen !== 0) throw new ElfSymbolsError(EINVAL, '__versions size is not a multiple of an entry');
    const out: ExportedSymbol[] = [];
    const b = this.#b;
    for (let off = sec.offset; off < sec.offset + sec.size; off += verlen) {
      const nameAt = off + crclen;
      const nul = b.indexOf(0, nameAt);
      if (nul === -1 || nul >= off + verlen) throw new ElfSymbolsError(EINVAL, 'symbol name too long');
      const name = b.toString('latin1', b[nameAt] === 0x2e ? nameAt + 1 : nameAt, nul);
      out.push({ name, crc: this.#big(off, crclen) });
    }
    return out;
  }

  /**
   * `kmod_elf_get_dependency_symbols`: undefined `.symtab` entries (weak ones marked), each with
   * its `__versions` CRC, then the `__versions` entries no symbol matched.
   * @returns the needed symbols, or EINVAL without `.strtab`/`.symtab` or for a malformed one
   */
  neededSymbols(): SymbolList | number {
    let ver = this.#section(4);
    const verlen = 64;
    const crclen = this.x32 ? 4 : 8;
    const namlen = verlen - crclen;
    if (ver !== undefined && ver.size % verlen !== 0) ver = undefined;
    const strtab = this.#section(2);
    const symtab = this.#section(3);
    if (strtab === undefined || symtab === undefined) return EINVAL;
    const symlen = this.x32 ? 16 : 24;
    if (symtab.size % symlen !== 0) return EINVAL;
    const b = this.#b;
    const vercount = ver === undefined ? 0 : ver.size / verlen;
    // __versions names, each at most namlen-1 chars (a full-length one is "too long" and never matches)
    const verNames: Array<string | undefined> = [];
    for (let i = 0; i < vercount; i++) {
      const p = ver!.offset + i * verlen + crclen;
      const z = b.indexOf(0, p);
      verNames.push(z === -1 || z - p >= namlen ? undefined : b.toString('latin1', p, z));
    }
    const visited = new Uint8Array(vercount);
    const register = this.machine === EM_SPARC || this.machine === EM_SPARCV9;
    const count = symtab.size / symlen;
    const out = new ListBuilder();
    let verIndex: Map<string, number> | undefined;
    for (let i = 1; i < count; i++) {
      const s = symtab.offset + i * symlen;
      const shndx = this.uint(this.x32 ? s + 14 : s + 6, 2);
      if (shndx !== SHN_UNDEF) continue;
      const info = b[this.x32 ? s + 12 : s + 4];
      if (register && (info & 0xf) === STT_REGISTER) continue;
      const nameOff = this.uint(s, 4);
      if (nameOff >= strtab.size) return EINVAL;
      const p = strtab.offset + nameOff;
      if (b[p] === 0) continue;
      const name = this.#cstr(p);
      let crc = 0;
      if (vercount > 0) {
        if (verIndex === undefined) {
          verIndex = new Map();
          for (let k = vercount - 1; k >= 0; k--) if (verNames[k] !== undefined) verIndex.set(verNames[k]!, k);
        }
        const k = verIndex.get(name);
        if (k !== undefined) {
          visited[k] = 1;
          crc = this.uint(ver!.offset + k * verlen, crclen);
        }
      }
      out.add(name, crc, info >> 4 === 2 ? 1 : 0);
    }
    for (let k = 0; k < vercount; k++) {
      if (visited[k]) continue;
      const name = verNames[k];
      if (name === undefined) return EINVAL;
      out.add(name, this.uint(ver!.offset + k * verlen, crclen));
    }
    return out.done(true);
  }

  /** Everything depmod reads, with libkmod's failures folded in as depmod sees them. */
  depmodParts(): DepmodParts {
    const exp = this.exportedSymbolList();
    const exports = typeof exp === 'number' ? undefined : exp;
    const exportsErrno = typeof exp === 'number' && exp !== ENODATA ? exp : undefined;
    const need = this.neededSymbols();
    const modinfo = (this.modinfoStrings() ?? []).filter((m) => m.startsWith('alias') || m.startsWith('softdep') || m.startsWith('weakdep'));
    return { exports, exportsErrno, modinfo, needs: typeof need === 'number' ? undefined : need };
  }
}

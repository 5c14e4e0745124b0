/**
 * Builds small relocatable ELF images for tests: any class, either byte order, any sections.
 * Layout: ELF header, section contents one after another, shstrtab, then the section headers.
 *
 * @module
 */

/** One section to put in the image. */
export interface SectionSpec {
  name: string;
  data: Uint8Array | string;
  /** sh_flags; SHF_ALLOC = 2 */
  flags?: number;
  /** sh_type; SHT_PROGBITS = 1 by default */
  type?: number;
}

/** Image-wide choices. */
export interface ElfSpec {
  bits?: 32 | 64;
  littleEndian?: boolean;
  sections: SectionSpec[];
  /** override header fields to make broken images */
  patch?: { shoff?: number; shentsize?: number; shnum?: number; shstrndx?: number };
}

/** The finished image and where things ended up, for assertions. */
export interface BuiltElf {
  image: Buffer;
  /** file offset of each section's contents, by name */
  offsets: Record<string, number>;
  /** file offset of each section's header, by name */
  headers: Record<string, number>;
}

/**
 * Builds an ELF relocatable object.
 * @example
 * buildElf({ sections: [{ name: '.modinfo', data: 'license=GPL\0' }] }).image
 */
export function buildElf(spec: ElfSpec): BuiltElf {
  const bits = spec.bits ?? 64;
  const le = spec.littleEndian ?? true;
  const ehsize = bits === 64 ? 64 : 52;
  const shentsize = bits === 64 ? 64 : 40;
  const all: SectionSpec[] = [{ name: '', data: new Uint8Array(0), type: 0 }, ...spec.sections, { name: '.shstrtab', data: '', type: 3 }];
  // section-name table
  const nameOff: number[] = [];
  let names = '\0';
  for (const s of all) {
    if (s.name === '') { nameOff.push(0); continue; }
    nameOff.push(names.length);
    names += s.name + '\0';
  }
  all[all.length - 1] = { ...all[all.length - 1], data: names };
  const datas = all.map((s) => (typeof s.data === 'string' ? Buffer.from(s.data, 'latin1') : Buffer.from(s.data)));
  const offsets: number[] = [];
  let pos = ehsize;
  for (const d of datas) {
    offsets.push(d.length === 0 ? 0 : pos);
    pos += d.length;
  }
  pos = (pos + 7) & ~7;
  const shoff = pos;
  const total = shoff + all.length * shentsize;
  const buf = Buffer.alloc(total);
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  buf.set([0x7f, 0x45, 0x4c, 0x46, bits === 64 ? 2 : 1, le ? 1 : 2, 1], 0);
  dv.setUint16(16, 1, le); // ET_REL
  dv.setUint16(18, bits === 64 ? 62 : 3, le);
  dv.setUint32(20, 1, le);
  const p = spec.patch ?? {};
  if (bits === 64) {
    dv.setBigUint64(40, BigInt(p.shoff ?? shoff), le);
    dv.setUint16(52, ehsize, le);
    dv.setUint16(58, p.shentsize ?? shentsize, le);
    dv.setUint16(60, p.shnum ?? all.length, le);
    dv.setUint16(62, p.shstrndx ?? all.length - 1, le);
  } else {
    dv.setUint32(32, p.shoff ?? shoff, le);
    dv.setUint16(40, ehsize, le);
    dv.setUint16(46, p.shentsize ?? shentsize, le);
    dv.setUint16(48, p.shnum ?? all.length, le);
    dv.setUint16(50, p.shstrndx ?? all.length - 1, le);
  }
  const res: BuiltElf = { image: buf, offsets: {}, headers: {} };
  all.forEach((s, i) => {
    datas[i].copy(buf, offsets[i] || 0);
    const h = shoff + i * shentsize;
    if (i === 0) return;
    res.offsets[s.name] = offsets[i];
    res.headers[s.name] = h;
    const type = s.type ?? 1;
    if (bits === 64) {
      dv.setUint32(h, nameOff[i], le);
      dv.setUint32(h + 4, type, le);
      dv.setBigUint64(h + 8, BigInt(s.flags ?? 0), le);
      dv.setBigUint64(h + 24, BigInt(offsets[i]), le);
      dv.setBigUint64(h + 32, BigInt(datas[i].length), le);
      dv.setBigUint64(h + 48, 1n, le);
    } else {
      dv.setUint32(h, nameOff[i], le);
      dv.setUint32(h + 4, type, le);
      dv.setUint32(h + 8, s.flags ?? 0, le);
      dv.setUint32(h + 16, offsets[i], le);
      dv.setUint32(h + 20, datas[i].length, le);
      dv.setUint32(h + 32, 1, le);
    }
  });
  return res;
}

/**
 * Appends a module signature trailer: `[signer][keyid][sig][struct module_signature][magic]`.
 * @example
 * appendSignature(image, { sig: Buffer.from([0x30, 0x00]) })
 */
export function appendSignature(
  image: Uint8Array,
  o: { sig: Uint8Array; signer?: Uint8Array; keyId?: Uint8Array; algo?: number; hash?: number; idType?: number },
): Buffer {
  const signer = Buffer.from(o.signer ?? []);
  const keyId = Buffer.from(o.keyId ?? []);
  const ms = Buffer.alloc(12);
  ms[0] = o.algo ?? 0;
  ms[1] = o.hash ?? 0;
  ms[2] = o.idType ?? 2;
  ms[3] = signer.length;
  ms[4] = keyId.length;
  ms.writeUInt32BE(o.sig.length, 8);
  return Buffer.concat([image, signer, keyId, o.sig, ms, Buffer.from('~Module signature appended~\n', 'latin1')]);
}

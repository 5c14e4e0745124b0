/**
 * What `modinfo` shows about a module's appended signature: `sig_id`, `signer`, `sig_key`,
 * `sig_hashalgo`, `signature`, as kmod 30's libkmod-signature.c (built with OpenSSL) finds them.
 *
 * The PKCS#7 blob is read by a small BER reader here (definite and indefinite lengths, as kernel
 * `sign-file` may write either). asn1js was tried first and gave identical output, but cost about
 * 40 ms to import and 0.4–0.6 ms per signature — over 0.5 s for a kernel's ~1,100 signed modules,
 * several times kmod's whole run — while only five fields of one fixed structure are needed.
 *
 * @module
 */
import type { ModuleSignature } from './elf/sections.js';

/** kmod's `pkey_hash_algo` table, indexed by `module_signature.hash`. */
const HASH_NAMES = ['md4', 'md5', 'sha1', 'rmd160', 'sha256', 'sha384', 'sha512', 'sha224', 'sm3'] as const;
/** kmod's `pkey_id_type` table, indexed by `module_signature.id_type`. */
const ID_TYPES = ['PGP', 'X509', 'PKCS#7'] as const;
/** PKCS#7 digest algorithm OIDs → kmod's names (`obj_to_hash_algo`). */
const DIGEST_OIDS: Record<string, string> = {
  '1.2.840.113549.2.4': 'md4',
  '1.2.840.113549.2.5': 'md5',
  '1.3.14.3.2.26': 'sha1',
  '1.3.36.3.2.1': 'rmd160',
  '2.16.840.1.101.3.4.2.1': 'sha256',
  '2.16.840.1.101.3.4.2.2': 'sha384',
  '2.16.840.1.101.3.4.2.3': 'sha512',
  '2.16.840.1.101.3.4.2.4': 'sha224',
  '1.2.156.10197.1.401': 'sm3',
};
const OID_SIGNED_DATA = '1.2.840.113549.1.7.2';
const OID_COMMON_NAME = '2.5.4.3';

/** The signature as `modinfo` describes it. */
export interface SignatureDescription {
  /** `PGP`, `X509` or `PKCS#7` */
  readonly idType: string;
  /** the signer: the issuer's common name for PKCS#7; raw bytes, as kmod prints them */
  readonly signer: Uint8Array;
  /** key identifier: the certificate serial number (leading zeros dropped) for PKCS#7 */
  readonly keyId: Uint8Array;
  /** digest name (`sha256`, ...) or `unknown` */
  readonly hashAlgo: string;
  /** the signature value (the signer info's encrypted digest for PKCS#7) */
  readonly signature: Uint8Array;
}

/**
 * Describes an appended signature the way kmod 30 does.
 * @param sig from `readSignature`
 * @returns the fields, or undefined where kmod shows none: a header with an unknown algorithm,
 *   hash or id type, or a PKCS#7 blob that does not decode
 * @example
 * const d = describeSignature(readSignature(src)!); d?.hashAlgo; // 'sha256'
 */
export function describeSignature(sig: ModuleSignature): SignatureDescription | undefined {
  // kmod_module_signature_info rejects these header values outright
  if (sig.algo >= 2 || sig.hashAlgo >= HASH_NAMES.length || sig.idType >= ID_TYPES.length) return undefined;
  const idType = ID_TYPES[sig.idType];
  if (sig.idType !== 2) {
    return { idType, signer: sig.signer, keyId: sig.keyId, hashAlgo: HASH_NAMES[sig.hashAlgo], signature: sig.signature };
  }
  const p = parsePkcs7(sig.signature);
  return p === undefined ? undefined : { idType, ...p };
}

/** One BER element. `cls`: 0 universal, 1 application, 2 context-specific, 3 private. */
interface Node {
  cls: number;
  tag: number;
  /** the constructed bit (children may still be empty) */
  constructed: boolean;
  /** for a constructed element, its elements */
  children: Node[] | undefined;
  /** contents octets of a primitive element */
  bytes: Uint8Array;
}

class BerError extends Error {}

/**
 * Reads one BER element at `pos` (definite or indefinite length, high tag numbers), as
 * OpenSSL's `d2i` accepts them. Returns the element and the offset after it.
 */
function readElement(b: Uint8Array, pos: number, end: number, depth = 0): [Node, number] {
  if (depth > 32 || pos + 2 > end) throw new BerError('truncated');
  const first = b[pos++];
  const cls = first >> 6;
  const constructed = (first & 0x20) !== 0;
  let tag = first & 0x1f;
  if (tag === 0x1f) {
    tag = 0;
    let c: number;
    do {
      if (pos >= end) throw new BerError('truncated tag');
      c = b[pos++];
      tag = tag * 128 + (c & 0x7f);
    } while (c & 0x80);
  }
  if (pos >= end) throw new BerError('truncated length');
  let len = b[pos++];
  if (len === 0x80) {
    // indefinite length: elements up to an end-of-contents (00 00)
    if (!constructed) throw new BerError('indefinite primitive');
    const children: Node[] = [];
    for (;;) {
      if (pos + 2 > end) throw new BerError('no end-of-contents');
      if (b[pos] === 0 && b[pos + 1] === 0) return [{ cls, tag, constructed, children, bytes: EMPTY }, pos + 2];
      const [child, next] = readElement(b, pos, end, depth + 1);
      children.push(child);
      pos = next;
    }
  }
  if (len & 0x80) {
    // OpenSSL's asn1_get_length: up to a long's worth of octets, leading zeros skipped
    let n = len & 0x7f;
    if (n > 8 || pos + n > end) throw new BerError('bad length');
    while (n > 0 && b[pos] === 0) {
      pos++;
      n--;
    }
    if (n > 6) throw new BerError('bad length');
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + b[pos++];
  }
  if (pos + len > end) throw new BerError('element past the end');
  const bytes = b.subarray(pos, pos + len);
  let children: Node[] | undefined;
  if (constructed) {
    children = [];
    for (let p = pos; p < pos + len; ) {
      const [child, next] = readElement(b, p, pos + len, depth + 1);
      children.push(child);
      p = next;
    }
  }
  return [{ cls, tag, constructed, children, bytes }, pos + len];
}
const EMPTY = new Uint8Array(0);

/** Dotted form of an OBJECT IDENTIFIER element, or undefined for anything else. */
function oidOf(n: Node | undefined): string | undefined {
  if (n === undefined || n.cls !== 0 || n.tag !== 6 || n.children) return undefined;
  const arcs: number[] = [];
  let v = 0;
  for (const c of n.bytes) {
    v = v * 128 + (c & 0x7f);
    if (!(c & 0x80)) {
      if (arcs.length === 0) arcs.push(v < 80 ? Math.floor(v / 40) : 2, v < 80 ? v % 40 : v - 80);
      else arcs.push(v);
      v = 0;
    }
  }
  return arcs.join('.');
}

/** Contents of a string-like element, joining the pieces of a BER constructed string. */
function content(n: Node): Uint8Array {
  if (!n.children) return n.bytes;
  return Buffer.concat(n.children.map(content));
}

// ---------------------------------------------------------------------------------------------
// What OpenSSL's d2i_PKCS7 accepts. kmod prints no signature fields when it refuses the blob, so
// a corrupted signature must be refused here too (a lenient reader printed a garbled signer).
// The PKCS7 templates (crypto/pkcs7/pk7_asn1.c) are walked field by field; primitives get the
// checks OpenSSL's c2i functions make; names get x509_name_canon's conversion to UTF-8.
// Certificates, CRLs and attributes (sign-file writes none) are checked for well-formed
// primitives only.

const OID_DATA = '1.2.840.113549.1.7.1';
const UTF8_FATAL = new TextDecoder('utf-8', { fatal: true });

const isUniversal = (n: Node | undefined, tag: number): n is Node => n !== undefined && n.cls === 0 && n.tag === tag;
const isSeq = (n: Node | undefined): n is Node & { children: Node[] } => isUniversal(n, 16) && n.constructed && n.children !== undefined;
const isContext = (n: Node | undefined, tag: number): n is Node & { children: Node[] } =>
  n !== undefined && n.cls === 2 && n.tag === tag && n.constructed && n.children !== undefined;

/**
 * The elements of a SET OF / SEQUENCE OF. OpenSSL does not check the constructed bit of these
 * (asn1_template_noexp_d2i), so a primitive-tagged one still holds elements; undefined when its
 * contents are not a run of elements.
 */
function ofChildren(n: Node | undefined, tag: number): Node[] | undefined {
  if (n === undefined || n.cls !== 0 || n.tag !== tag) return undefined;
  if (n.children) return n.children;
  const out: Node[] = [];
  try {
    for (let p = 0; p < n.bytes.length; ) {
      const [child, next] = readElement(n.bytes, p, n.bytes.length, 1);
      out.push(child);
      p = next;
    }
  } catch (e) {
    if (e instanceof BerError) return undefined;
    throw e;
  }
  n.children = out;
  return out;
}

/** c2i_ibuf: no empty INTEGER, no redundant leading 00 or FF octet. */
function integerOk(n: Node | undefined): boolean {
  if (!isUniversal(n, 2) || n.constructed) return false;
  const b = n.bytes;
  if (b.length === 0) return false;
  if (b.length === 1) return true;
  let pad = b[0] === 0;
  if (b[0] === 0xff) pad = b.subarray(1).some((x) => x !== 0);
  return !(pad && (b[0] & 0x80) === (b[1] & 0x80));
}

/** c2i_ASN1_OBJECT: non-empty, last octet ends a sub-identifier, no sub-identifier starts with 0x80. */
function oidOk(n: Node | undefined): boolean {
  if (!isUniversal(n, 6) || n.constructed) return false;
  const b = n.bytes;
  if (b.length === 0 || b[b.length - 1] & 0x80) return false;
  for (let i = 0; i < b.length; i++) if (b[i] === 0x80 && (i === 0 || !(b[i - 1] & 0x80))) return false;
  return true;
}

/** A universal element as OpenSSL's primitive decoder takes it (an ANY, a string, a CHOICE arm). */
function primitiveOk(n: Node, depth = 0): boolean {
  if (n.cls !== 0) return depth > 8 ? false : (n.children ?? []).every((c) => primitiveOk(c, depth + 1));
  switch (n.tag) {
    case 1: // BOOLEAN
      return !n.constructed && n.bytes.length === 1;
    case 2: // INTEGER
    case 10: // ENUMERATED
      return integerOk({ ...n, tag: 2 });
    case 3: // BIT STRING: unused-bits octet 0..7
      return n.constructed || (n.bytes.length >= 1 && n.bytes[0] <= 7);
    case 5: // NULL
      return !n.constructed && n.bytes.length === 0;
    case 6:
      return oidOk(n);
    case 16: // SEQUENCE
    case 17: // SET
      return n.constructed && depth <= 8 && (n.children ?? []).every((c) => primitiveOk(c, depth + 1));
    case 28: // UniversalString
      return content(n).length % 4 === 0;
    case 30: // BMPString
      return content(n).length % 2 === 0;
    case 0: // end-of-contents outside an indefinite length
      return false;
    default:
      return true;
  }
}

/** X509_ALGOR: SEQUENCE { algorithm OID, parameters ANY OPTIONAL }. */
function algorithmOk(n: Node | undefined): boolean {
  return isSeq(n) && n.children.length >= 1 && n.children.length <= 2 && oidOk(n.children[0]) && (n.children[1] === undefined || primitiveOk(n.children[1]));
}

// ASN1_PRINTABLE's universal tags (B_ASN1_PRINTABLE, with B_ASN1_UNKNOWN's tags).
const PRINTABLE_TAGS = new Set([7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 18, 19, 20, 21, 22, 25, 26, 27, 28, 29, 30]);

/** An X509_NAME_ENTRY value: a printable string type that x509_name_canon can turn into UTF-8. */
function nameValueOk(n: Node | undefined): boolean {
  if (n === undefined || n.cls !== 0 || !PRINTABLE_TAGS.has(n.tag) || !primitiveOk(n)) return false;
  if (n.tag === 16) return n.constructed;
  const bytes = content(n);
  try {
    if (n.tag === 12) UTF8_FATAL.decode(bytes);
    // BMPString: any even length converts (checked in primitiveOk)
    else if (n.tag === 28) {
      for (let i = 0; i < bytes.length; i += 4) {
        const cp = ((bytes[i] << 24) | (bytes[i + 1] << 16) | (bytes[i + 2] << 8) | bytes[i + 3]) >>> 0;
        if (cp > 0x10ffff) return false;
      }
    }
  } catch {
    return false;
  }
  return true;
}

/** X509_NAME: SEQUENCE OF SET OF SEQUENCE { type OID, value ASN1_PRINTABLE }. */
function nameOk(n: Node | undefined): boolean {
  const rdns = ofChildren(n, 16);
  return (
    rdns !== undefined &&
    rdns.every((rdn) => ofChildren(rdn, 17)?.every((e) => isSeq(e) && e.children.length === 2 && oidOk(e.children[0]) && nameValueOk(e.children[1])) ?? false)
  );
}

/** An OCTET STRING (primitive, or BER-constructed from pieces). */
const octetsOk = (n: Node | undefined): boolean => isUniversal(n, 4) && primitiveOk(n);

/** [tag] IMPLICIT SET/SEQUENCE OF something we only check for well-formed primitives. */
const implicitListOk = (n: Node): boolean => n.children !== undefined && n.children.every((c) => primitiveOk(c));
// (a context-tagged IMPLICIT list is recognised by its constructed bit only: without it the
// field does not match and the template moves on, as OpenSSL's optional fields do)

/** PKCS7_SIGNER_INFO. */
function signerInfoOk(n: Node | undefined): boolean {
  if (!isSeq(n)) return false;
  const f = [...n.children];
  if (!integerOk(f.shift())) return false;
  const ias = f.shift();
  if (!isSeq(ias) || ias.children.length !== 2 || !nameOk(ias.children[0]) || !integerOk(ias.children[1])) return false;
  if (!algorithmOk(f.shift())) return false;
  if (isContext(f[0], 0) && !implicitListOk(f.shift()!)) return false;
  if (!algorithmOk(f.shift())) return false;
  if (!octetsOk(f.shift())) return false;
  if (isContext(f[0], 1) && !implicitListOk(f.shift()!)) return false;
  return f.length === 0;
}

/** An inner ContentInfo: data as an OCTET STRING, any other type as ANY. */
function contentInfoOk(n: Node | undefined): boolean {
  if (!isSeq(n) || n.children.length < 1 || n.children.length > 2 || !oidOk(n.children[0])) return false;
  const explicit = n.children[1];
  if (explicit === undefined) return true;
  if (!isContext(explicit, 0) || explicit.children.length !== 1) return false;
  return oidOf(n.children[0]) === OID_DATA ? octetsOk(explicit.children[0]) : primitiveOk(explicit.children[0]);
}

/** The outer ContentInfo of a signedData, as d2i_PKCS7 would accept it. */
function signedDataAccepted(ci: Node): boolean {
  if (!isSeq(ci) || ci.children.length !== 2 || !oidOk(ci.children[0])) return false;
  const explicit = ci.children[1];
  if (!isContext(explicit, 0) || explicit.children.length !== 1) return false;
  const sd = explicit.children[0];
  if (!isSeq(sd)) return false;
  const f = [...sd.children];
  if (!integerOk(f.shift())) return false;
  if (!ofChildren(f.shift(), 17)?.every(algorithmOk)) return false;
  if (!contentInfoOk(f.shift())) return false;
  if (isContext(f[0], 0) && !implicitListOk(f.shift()!)) return false;
  if (isContext(f[0], 1) && !implicitListOk(f.shift()!)) return false;
  if (!ofChildren(f.shift(), 17)?.every(signerInfoOk)) return false;
  return f.length === 0;
}

/** SignedData per RFC 2315 §9.1; fields in the order OpenSSL's `d2i_PKCS7` reads them. */
function parsePkcs7(der: Uint8Array): Omit<SignatureDescription, 'idType'> | undefined {
  try {
    const [ci] = readElement(der, 0, der.length);
    // kmod shows nothing when OpenSSL's d2i_PKCS7 refuses the blob: check it as that would
    if (!signedDataAccepted(ci)) return undefined;
    const [type, explicit] = ci.children ?? [];
    if (oidOf(type) !== OID_SIGNED_DATA || explicit?.cls !== 2 || explicit.tag !== 0) return undefined;
    const sd = explicit.children?.[0]?.children;
    if (!sd) return undefined;
    // version, digestAlgorithms, contentInfo, [0] certificates?, [1] crls?, signerInfos (SET)
    const signerInfos = sd[sd.length - 1];
    const si = ofChildren(signerInfos, 17)?.[0]?.children;
    if (!si) return undefined;
    // version, issuerAndSerialNumber, digestAlgorithm, [0] authAttrs?, digestEncryptionAlgorithm,
    // encryptedDigest, [1] unauthAttrs?
    const ias = si[1]?.children;
    const digestOid = oidOf(si[2]?.children?.[0]);
    const rest = si.slice(3).filter((n) => n.cls !== 2);
    const encDigest = rest[1];
    // a digest kmod's table does not name: kmod 30 (with Debian's fix) shows no signature at all
    if (!ias || ias.length < 2 || digestOid === undefined || encDigest === undefined || !(digestOid in DIGEST_OIDS)) return undefined;
    const [issuer, serial] = ias;
    return {
      signer: commonName(issuer),
      keyId: magnitude(serial.bytes),
      hashAlgo: DIGEST_OIDS[digestOid],
      signature: content(encDigest),
    };
  } catch (e) {
    if (e instanceof BerError) return undefined;
    throw e;
  }
}

/**
 * kmod's `x509_name_to_str`: the first commonName entry; if there is none its loop leaves the
 * last entry selected, and that one is printed. The string's raw bytes up to the first NUL.
 */
function commonName(name: Node): Uint8Array {
  const entries = (ofChildren(name, 16) ?? []).flatMap((rdn) => ofChildren(rdn, 17) ?? []);
  if (entries.length === 0) return new Uint8Array(0);
  const hit = entries.find((e) => oidOf(e.children?.[0]) === OID_COMMON_NAME) ?? entries[entries.length - 1];
  const value = hit.children?.[1];
  if (!value) return new Uint8Array(0);
  const bytes = content(value);
  const nul = bytes.indexOf(0);
  return nul === -1 ? bytes : bytes.subarray(0, nul);
}

/** `ASN1_INTEGER_to_BN` + `BN_bn2bin`: the absolute value, big-endian, no leading zeros. */
function magnitude(twos: Uint8Array): Uint8Array {
  let bytes = Buffer.from(twos);
  if (bytes.length > 0 && bytes[0] & 0x80) {
    // negative: two's complement back to the magnitude
    let carry = 1;
    for (let i = bytes.length - 1; i >= 0; i--) {
      const v = (~bytes[i] & 0xff) + carry;
      bytes[i] = v & 0xff;
      carry = v >> 8;
    }
  }
  let i = 0;
  while (i < bytes.length && bytes[i] === 0) i++;
  bytes = bytes.subarray(i);
  return bytes;
}

/**
 * kmod's `kmod_module_hex_to_str`: `XX:` pairs, a line break plus two tabs after every 20 bytes.
 * @param bytes the data
 * @returns e.g. `1B:A0:DB` (empty for no bytes)
 * @example
 * hexColumns(Uint8Array.of(0x1b, 0xa0)); // '1B:A0'
 */
export function hexColumns(bytes: Uint8Array): string {
  let s = '';
  for (let i = 0; i < bytes.length; i++) {
    s += HEX[bytes[i]];
    if (i < bytes.length - 1) {
      s += ':';
      if ((i + 1) % 20 === 0) s += '\n\t\t';
    }
  }
  return s;
}
const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).toUpperCase().padStart(2, '0'));

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
 * Nothing to load: the PKCS#7 reader below is synchronous and self-contained. Kept so callers
 * need not change if a decoder has to be loaded lazily again.
 * @returns a resolved promise
 * @example
 * await loadSignatureSupport(); describeSignature(sig);
 */
export async function loadSignatureSupport(): Promise<void> {}

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
      if (b[pos] === 0 && b[pos + 1] === 0) return [{ cls, tag, children, bytes: EMPTY }, pos + 2];
      const [child, next] = readElement(b, pos, end, depth + 1);
      children.push(child);
      pos = next;
    }
  }
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n > 4 || pos + n > end) throw new BerError('bad length');
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
  return [{ cls, tag, children, bytes }, pos + len];
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

/** SignedData per RFC 2315 §9.1; fields in the order OpenSSL's `d2i_PKCS7` reads them. */
function parsePkcs7(der: Uint8Array): Omit<SignatureDescription, 'idType'> | undefined {
  try {
    const [ci] = readElement(der, 0, der.length);
    const [type, explicit] = ci.children ?? [];
    if (oidOf(type) !== OID_SIGNED_DATA || explicit?.cls !== 2 || explicit.tag !== 0) return undefined;
    const sd = explicit.children?.[0]?.children;
    if (!sd) return undefined;
    // version, digestAlgorithms, contentInfo, [0] certificates?, [1] crls?, signerInfos (SET)
    const signerInfos = sd.slice(3).find((n) => n.cls === 0 && n.tag === 17);
    const si = signerInfos?.children?.[0]?.children;
    if (!si) return undefined;
    // version, issuerAndSerialNumber, digestAlgorithm, [0] authAttrs?, digestEncryptionAlgorithm,
    // encryptedDigest, [1] unauthAttrs?
    const ias = si[1]?.children;
    const digestOid = oidOf(si[2]?.children?.[0]);
    const rest = si.slice(3).filter((n) => n.cls !== 2);
    const encDigest = rest[1];
    if (!ias || ias.length < 2 || digestOid === undefined || encDigest === undefined) return undefined;
    const [issuer, serial] = ias;
    return {
      signer: commonName(issuer),
      keyId: magnitude(serial.bytes),
      hashAlgo: DIGEST_OIDS[digestOid] ?? 'unknown',
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
  const entries = (name.children ?? []).flatMap((rdn) => rdn.children ?? []);
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

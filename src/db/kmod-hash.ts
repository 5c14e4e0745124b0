/**
 * kmod's hash table (`shared/hash.c`), kept because its iteration order is visible in depmod's
 * output: modules that `modules.order` does not list follow in `modules_by_name` order, and
 * `modules.symbols` is written in symbol-hash order. Buckets are a power of two; a key's bucket is
 * Paul Hsieh's SuperFastHash of its bytes; entries inside a bucket are kept sorted by `strcmp`;
 * iteration goes bucket by bucket.
 *
 * @module
 */

/**
 * kmod's `hash_superfast` over a byte string (a latin1 JS string: one char per byte), as on a
 * little-endian host (`le16` loads; kmod on a big-endian host would order differently).
 * @param key the key
 * @returns the 32-bit hash
 * @example
 * hashSuperfast('dummy') & 511; // dummy's bucket in depmod's modules_by_name
 */
export function hashSuperfast(key: string): number {
  let len = key.length;
  let hash = len >>> 0;
  const rem = len & 3;
  len >>>= 2;
  let k = 0;
  const u16 = (i: number) => (key.charCodeAt(i) & 0xff) | ((key.charCodeAt(i + 1) & 0xff) << 8);
  // C's `char` is signed on x86: bytes ≥ 0x80 sign-extend where kmod reads a single char
  const s8 = (i: number) => ((key.charCodeAt(i) & 0xff) << 24) >> 24;
  for (; len > 0; len--) {
    hash = (hash + u16(k)) >>> 0;
    const tmp = ((u16(k + 2) << 11) ^ hash) >>> 0;
    hash = ((hash << 16) ^ tmp) >>> 0;
    k += 4;
    hash = (hash + (hash >>> 11)) >>> 0;
  }
  switch (rem) {
    case 3:
      hash = (hash + u16(k)) >>> 0;
      hash = (hash ^ (hash << 16)) >>> 0;
      hash = (hash ^ (s8(k + 2) << 18)) >>> 0;
      hash = (hash + (hash >>> 11)) >>> 0;
      break;
    case 2:
      hash = (hash + u16(k)) >>> 0;
      hash = (hash ^ (hash << 11)) >>> 0;
      hash = (hash + (hash >>> 17)) >>> 0;
      break;
    case 1:
      hash = (hash + s8(k)) >>> 0;
      hash = (hash ^ (hash << 10)) >>> 0;
      hash = (hash + (hash >>> 1)) >>> 0;
      break;
  }
  hash = (hash ^ (hash << 3)) >>> 0;
  hash = (hash + (hash >>> 5)) >>> 0;
  hash = (hash ^ (hash << 4)) >>> 0;
  hash = (hash + (hash >>> 17)) >>> 0;
  hash = (hash ^ (hash << 25)) >>> 0;
  hash = (hash + (hash >>> 6)) >>> 0;
  return hash;
}

/**
 * kmod's `struct hash`: string keys in `nBuckets` buckets, iterated in kmod's order.
 * @example
 * const h = new KmodHash<number>(512); h.add('b', 1); h.add('a', 2); [...h.keys()];
 */
export class KmodHash<V> {
  readonly #buckets: Array<Array<[string, V]> | undefined>;
  #count = 0;

  /** @param nBuckets a power of two (depmod: 512 for modules, 2048 for symbols) */
  constructor(readonly nBuckets: number) {
    this.#buckets = new Array(nBuckets);
  }

  #bucket(key: string, create: boolean): Array<[string, V]> | undefined {
    const pos = hashSuperfast(key) & (this.nBuckets - 1);
    let b = this.#buckets[pos];
    if (b === undefined && create) b = this.#buckets[pos] = [];
    return b;
  }

  /** Number of entries. */
  get size(): number {
    return this.#count;
  }

  /**
   * `hash_add`: inserts, or replaces the value of an equal key (keeping its place).
   * @param key the key
   * @param value the value
   */
  add(key: string, value: V): void {
    const b = this.#bucket(key, true)!;
    let i = 0;
    for (; i < b.length; i++) {
      const k = b[i][0];
      if (k === key) {
        b[i] = [key, value];
        return;
      }
      if (key < k) break;
    }
    b.splice(i, 0, [key, value]);
    this.#count++;
  }

  /**
   * `hash_add_unique`: inserts unless the key is there.
   * @returns false when the key already existed (kmod: -EEXIST)
   */
  addUnique(key: string, value: V): boolean {
    if (this.has(key)) return false;
    this.add(key, value);
    return true;
  }

  /** `hash_find`. */
  get(key: string): V | undefined {
    const b = this.#bucket(key, false);
    if (b === undefined) return undefined;
    for (const [k, v] of b) if (k === key) return v;
    return undefined;
  }

  /** Whether the key is present. */
  has(key: string): boolean {
    const b = this.#bucket(key, false);
    return b !== undefined && b.some(([k]) => k === key);
  }

  /** `hash_del`. @returns whether it was there */
  delete(key: string): boolean {
    const b = this.#bucket(key, false);
    const i = b?.findIndex(([k]) => k === key) ?? -1;
    if (i === -1) return false;
    b!.splice(i, 1);
    this.#count--;
    return true;
  }

  /** Entries in kmod's iteration order (bucket 0…n−1, each bucket by `strcmp`). */
  *entries(): Generator<[string, V]> {
    for (const b of this.#buckets) if (b !== undefined) yield* b;
  }

  /** Values in kmod's iteration order. */
  *values(): Generator<V> {
    for (const [, v] of this.entries()) yield v;
  }
}

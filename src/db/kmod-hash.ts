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
  // int32 arithmetic throughout (same bits as C's uint32_t), reads inlined: it runs once per
  // symbol, mostly before V8 optimizes it
  const n = key.length;
  let hash = n | 0;
  const rem = n & 3;
  const end = n - rem;
  let k = 0;
  for (; k < end; k += 4) {
    hash = (hash + ((key.charCodeAt(k) & 0xff) | ((key.charCodeAt(k + 1) & 0xff) << 8))) | 0;
    const tmp = (((key.charCodeAt(k + 2) & 0xff) | ((key.charCodeAt(k + 3) & 0xff) << 8)) << 11) ^ hash;
    hash = (hash << 16) ^ tmp;
    hash = (hash + (hash >>> 11)) | 0;
  }
  // C's `char` is signed on x86: a byte ≥ 0x80 sign-extends where kmod reads a single char
  switch (rem) {
    case 3:
      hash = (hash + ((key.charCodeAt(k) & 0xff) | ((key.charCodeAt(k + 1) & 0xff) << 8))) | 0;
      hash ^= hash << 16;
      hash ^= ((key.charCodeAt(k + 2) & 0xff) << 24) >> 6; // (signed char) << 18
      hash = (hash + (hash >>> 11)) | 0;
      break;
    case 2:
      hash = (hash + ((key.charCodeAt(k) & 0xff) | ((key.charCodeAt(k + 1) & 0xff) << 8))) | 0;
      hash ^= hash << 11;
      hash = (hash + (hash >>> 17)) | 0;
      break;
    case 1:
      hash = (hash + (((key.charCodeAt(k) & 0xff) << 24) >> 24)) | 0;
      hash ^= hash << 10;
      hash = (hash + (hash >>> 1)) | 0;
      break;
  }
  hash ^= hash << 3;
  hash = (hash + (hash >>> 5)) | 0;
  hash ^= hash << 4;
  hash = (hash + (hash >>> 17)) | 0;
  hash ^= hash << 25;
  hash = (hash + (hash >>> 6)) | 0;
  return hash >>> 0;
}

/**
 * kmod's `struct hash`: string keys in `nBuckets` buckets, iterated in kmod's order. Look-ups go
 * through a Map; the bucket order (each key's hash) is worked out once, when the entries are
 * first iterated after a change (depmod looks up ~100,000 symbols and iterates twice).
 * @example
 * const h = new KmodHash<number>(512); h.add('b', 1); h.add('a', 2); [...h.keys()];
 */
export class KmodHash<V> {
  readonly #map = new Map<string, V>();
  #order: string[] | undefined;

  /** @param nBuckets a power of two (depmod: 512 for modules, 2048 for symbols) */
  constructor(readonly nBuckets: number) {}

  /** Number of entries. */
  get size(): number {
    return this.#map.size;
  }

  /**
   * `hash_add`: inserts, or replaces the value of an equal key (keeping its place).
   * @param key the key
   * @param value the value
   */
  add(key: string, value: V): void {
    if (this.#order !== undefined && !this.#map.has(key)) this.#order = undefined;
    this.#map.set(key, value);
  }

  /**
   * `hash_add_unique`: inserts unless the key is there.
   * @returns false when the key already existed (kmod: -EEXIST)
   */
  addUnique(key: string, value: V): boolean {
    if (this.#map.has(key)) return false;
    this.add(key, value);
    return true;
  }

  /** `hash_find`. */
  get(key: string): V | undefined {
    return this.#map.get(key);
  }

  /** Whether the key is present. */
  has(key: string): boolean {
    return this.#map.has(key);
  }

  /** `hash_del`. @returns whether it was there */
  delete(key: string): boolean {
    if (!this.#map.delete(key)) return false;
    this.#order = undefined;
    return true;
  }

  /** Keys in kmod's iteration order (bucket 0…n−1, each bucket by `strcmp`). */
  keys(): string[] {
    if (this.#order === undefined) {
      // a counting sort by bucket, then each (small) bucket by strcmp: JS compares UTF-16 units,
      // which for byte strings held as latin1 (one char per byte) is byte order
      const keys = [...this.#map.keys()];
      const mask = this.nBuckets - 1;
      const bucket = new Int32Array(keys.length);
      const start = new Int32Array(this.nBuckets + 1);
      for (let i = 0; i < keys.length; i++) start[(bucket[i] = hashSuperfast(keys[i]) & mask) + 1]++;
      for (let b = 0; b < this.nBuckets; b++) start[b + 1] += start[b];
      const order: string[] = new Array(keys.length);
      const fill = start.slice(0, this.nBuckets);
      for (let i = 0; i < keys.length; i++) order[fill[bucket[i]]++] = keys[i];
      for (let b = 0; b < this.nBuckets; b++) {
        for (let i = start[b] + 1; i < start[b + 1]; i++) {
          const k = order[i];
          let j = i - 1;
          for (; j >= start[b] && order[j] > k; j--) order[j + 1] = order[j];
          order[j + 1] = k;
        }
      }
      this.#order = order;
    }
    return this.#order;
  }

  /** Entries in kmod's iteration order. */
  entries(): Array<[string, V]> {
    return this.keys().map((k) => [k, this.#map.get(k)!]);
  }

  /** Values in kmod's iteration order. */
  values(): V[] {
    const keys = this.keys();
    const out: V[] = new Array(keys.length);
    for (let i = 0; i < keys.length; i++) out[i] = this.#map.get(keys[i])!;
    return out;
  }
}

/**
 * kmod's module index (`modules.*.bin`): one radix-trie node model that is built in memory,
 * written in either of kmod's two layouts (depmod writes through {@link IndexWriter}), read back from either layout lazily (a
 * lookup touches only the nodes on its path), and searched exactly as libkmod searches it.
 *
 * The format (libkmod-index.c): a 12-byte header (magic `0xB007F457`, version `0x00020001`, root
 * node reference), then nodes. A node reference is a big-endian u32 whose top nibble says which
 * parts the node has (PREFIX, CHILDS, VALUES) and whose low 28 bits are its file offset. A node is
 * `[prefix\0] [u8 first, u8 last, u32 child[last-first+1]] [u32 count, {u32 priority, value\0}*]`.
 * kmod ≤ 33 writes children before their parent (post-order, root last); kmod ≥ 34 writes the root
 * at offset 12 and children after it (pre-order). Both carry the same keys and values.
 *
 * Exports:
 * - {@link IndexTrie}: `insert` (depmod's `index_insert`), `lookup` (libkmod `index_search`),
 *   `searchWild` (libkmod `index_searchwild`), `dump` (`modprobe -c` / `index_dump`),
 *   `entries`, `toBuffer({ layout })`, and the readers `IndexTrie.fromBuffer` / `IndexTrie.read`
 *   (either layout) and `IndexTrie.fromText` (modules.dep / .alias / .symbols text).
 * - {@link IndexWriter}: depmod's way in: `add` entries, `toBuffer({ layout })`, without nodes.
 * - {@link IndexNode}: the node (prefix, values, children by character).
 * - {@link IndexFormatError}: a `.bin` file that is not an index.
 *
 * Keys and values are byte strings held as latin1 JS strings; kmod only accepts 7-bit ASCII when
 * writing (see {@link IndexTrie.insert}).
 *
 * @module
 */
import { KmodError } from '../errors.js';
import { Errno } from '../kernel/errno.js';
import { readBounded } from '../kernel/read-bounded.js';
import { aliasNormalize, fnmatch, pathToModname } from './names.js';

/** `modules.*.bin` magic number. */
export const INDEX_MAGIC = 0xb007f457;
/** Index format version 2.1; readers accept any 2.x. */
export const INDEX_VERSION = 0x00020001;
const CHILDMAX = 128;
const F_PREFIX = 0x80000000;
const F_VALUES = 0x40000000;
const F_CHILDS = 0x20000000;
const OFFSET_MASK = 0x0fffffff;

/** One value stored under a key: lower priority comes first. */
export interface IndexValue {
  /** depmod's priority (the module's position in `modules.dep`, 0 for built-ins) */
  priority: number;
  /** the value string (a `modules.dep` line, a module name, or empty) */
  value: string;
}

/** Node layout of a written index. */
export type IndexLayout = 'pre-order' | 'post-order';

/** A `.bin` file that is not a kmod index (too short, wrong magic or version, bad node). */
export class IndexFormatError extends KmodError {
  declare readonly kind: 'bad-index';
  /** @param message what is wrong (kmod reports EINVAL) */
  constructor(message: string) {
    super('bad-index', Errno.EINVAL, message);
  }
}

/** libkmod's `add_value`: ascending priority, a value goes before its equal-priority peers. */
function addValue(list: IndexValue[], v: IndexValue): void {
  let i = 0;
  while (i < list.length && list[i].priority < v.priority) i++;
  list.splice(i, 0, v);
}

/**
 * A trie node: `prefix` is the label after the arc character that leads here; children are
 * indexed by character code (0–127); `values` are in stored order (ascending priority).
 * A node read from a `.bin` file decodes its children only when they are asked for.
 * @example
 * const n = trie.root.child('a'.charCodeAt(0)); // the subtree of keys starting with 'a'
 */
export class IndexNode {
  /** characters of the key after the arc into this node */
  prefix: string;
  /** values stored under the key ending at this node, in stored order */
  values: IndexValue[];
  /** lowest child character, 128 when there are no children */
  first = CHILDMAX;
  /** highest child character (meaningless without children) */
  last = 0;
  /** children by character − `first` (a node's few children span a narrow range: indexing by
   * the character itself gave every node a 100-slot array, most of depmod's garbage) */
  #kids: Array<IndexNode | undefined> | undefined;
  #buf: Buffer | undefined;
  #refs = 0;

  /** @param prefix label after the arc @param values stored values */
  constructor(prefix = '', values: IndexValue[] = []) {
    this.prefix = prefix;
    this.values = values;
  }

  /** Whether the node has children. */
  get hasChildren(): boolean {
    return this.first < CHILDMAX;
  }

  /**
   * The child reached by character `ch`.
   * @param ch a character code
   * @returns the child, or undefined
   */
  child(ch: number): IndexNode | undefined {
    if (ch < this.first || ch > this.last) return undefined;
    if (this.#kids === undefined) {
      if (this.#buf === undefined) return undefined;
      this.#kids = [];
    }
    let kid = this.#kids[ch - this.first];
    if (kid === undefined && this.#buf !== undefined) {
      const at = this.#refs + 4 * (ch - this.first);
      if (at + 4 > this.#buf.length) throw new IndexFormatError(`child reference past the end at offset ${at}`);
      kid = readNode(this.#buf, this.#buf.readUInt32BE(at));
      this.#kids[ch - this.first] = kid;
    }
    return kid;
  }

  /** Sets the child for `ch`, widening first/last (depmod's trie). */
  setChild(ch: number, node: IndexNode): void {
    this.#materialize();
    if (this.#kids === undefined || !this.hasChildren) {
      this.#kids = [node];
      this.first = this.last = ch;
      return;
    }
    if (ch < this.first) {
      this.#kids.unshift(...new Array<undefined>(this.first - ch));
      this.first = ch;
    }
    this.#kids[ch - this.first] = node;
    if (ch > this.last) this.last = ch;
  }

  /** Children in character order, as [character code, node]. */
  children(): Array<[number, IndexNode]> {
    const out: Array<[number, IndexNode]> = [];
    for (let c = this.first; c <= this.last && c < CHILDMAX; c++) {
      const k = this.child(c);
      if (k !== undefined) out.push([c, k]);
    }
    return out;
  }

  /** Loads every child of a node read from a file, so it can be changed like a built one. */
  #materialize(): void {
    if (this.#buf === undefined) return;
    for (let c = this.first; c <= this.last && c < CHILDMAX; c++) {
      const k = this.child(c);
      if (k !== undefined) k.#materialize();
    }
    this.#buf = undefined;
  }

  /** Splits this node at prefix[j]: it keeps prefix[0..j), a new child at prefix[j] takes the rest. */
  split(j: number): void {
    this.#materialize();
    const n = new IndexNode(this.prefix.slice(j + 1), this.values);
    n.first = this.first;
    n.last = this.last;
    n.#kids = this.#kids;
    const ch = this.prefix.charCodeAt(j);
    this.prefix = this.prefix.slice(0, j);
    this.values = [];
    this.#kids = [n];
    this.first = ch;
    this.last = ch;
  }

  /** @internal a node decoded from `buf` whose child references start at `refs` */
  static fromFile(buf: Buffer, prefix: string, first: number, last: number, refs: number, values: IndexValue[]): IndexNode {
    const n = new IndexNode(prefix, values);
    n.first = first;
    n.last = last;
    n.#buf = buf;
    n.#refs = refs;
    return n;
  }
}

function readCString(buf: Buffer, off: number): [string, number] {
  const end = buf.indexOf(0, off);
  if (end === -1) throw new IndexFormatError(`unterminated string at offset ${off}`);
  return [buf.toString('latin1', off, end), end + 1];
}

/** Deepest key a walk follows: real keys are a few hundred characters, and a chain of nodes made
 * deeper would overflow the stack of the recursive walks. */
const MAX_KEY_DEPTH = 8192;

/**
 * libkmod's `index_mm_read_node`; undefined for a null or out-of-range reference. A node whose
 * fields run past the end of the file is an {@link IndexFormatError} (found by fuzzing: a
 * RangeError from the Buffer read escaped as a bug).
 */
function readNode(buf: Buffer, ref: number): IndexNode | undefined {
  try {
    return readNodeAt(buf, ref);
  } catch (e) {
    if (e instanceof RangeError) throw new IndexFormatError(`node at offset ${ref & OFFSET_MASK} runs past the end of the file`);
    throw e;
  }
}

function readNodeAt(buf: Buffer, ref: number): IndexNode | undefined {
  let p = ref & OFFSET_MASK;
  if (p === 0 || p >= buf.length) return undefined;
  let prefix = '';
  if (ref & F_PREFIX) [prefix, p] = readCString(buf, p);
  let first = CHILDMAX;
  let last = 0;
  let refs = 0;
  if (ref & F_CHILDS) {
    first = buf[p];
    last = buf[p + 1];
    if (first > last || first >= CHILDMAX || last >= CHILDMAX) throw new IndexFormatError(`bad child range at offset ${p}`);
    refs = p + 2;
    p = refs + 4 * (last - first + 1);
    if (p > buf.length) throw new IndexFormatError(`child references past the end at offset ${refs}`);
  }
  const values: IndexValue[] = [];
  if (ref & F_VALUES) {
    const count = buf.readUInt32BE(p);
    p += 4;
    for (let i = 0; i < count; i++) {
      const priority = buf.readUInt32BE(p);
      let value: string;
      [value, p] = readCString(buf, p + 4);
      values.push({ priority, value });
    }
  }
  return IndexNode.fromFile(buf, prefix, first, last, refs, values);
}

/** What {@link IndexTrie.fromText} reads. */
export type IndexTextKind = 'dep' | 'alias' | 'symbols';

/**
 * kmod's module index. Build it with `insert` (as depmod does), or read one with
 * `IndexTrie.read(file)`; query it with `lookup`, `searchWild` and `dump`.
 * @example
 * const t = new IndexTrie();
 * t.insert('dummy', 'kernel/drivers/net/dummy.ko:', 0);
 * t.toBuffer();                                   // kmod 34's bytes (pre-order)
 * IndexTrie.read('/lib/modules/6.1.0/modules.dep.bin').lookup('dummy'); // 'kernel/...: ...'
 */
export class IndexTrie {
  /** the root node (empty prefix) */
  root: IndexNode;
  /**
   * Most nodes a walk may visit: for a file, one per 4 bytes (every node but the root is reached
   * by a 4-byte reference). A file whose references form a cycle, or share nodes so that a walk
   * multiplies them, is refused rather than walked forever.
   */
  #visitLimit = Infinity;

  /** @param root an existing root node (defaults to an empty trie) */
  constructor(root: IndexNode = new IndexNode()) {
    this.root = root;
  }

  /**
   * depmod's `index_insert`: adds `value` under `key`, splitting nodes where keys diverge, and
   * keeps the node's values in ascending priority with a new value before its equal-priority peers.
   * @param key 7-bit ASCII key
   * @param value 7-bit ASCII value
   * @param priority depmod's priority
   * @returns true when the same value string was already stored under the key (depmod's `-w`)
   * @throws {RangeError} for a byte ≥ 128 in key or value (kmod: `Module index: bad character`)
   */
  insert(key: string, value: string, priority: number): boolean {
    checkString(key);
    checkString(value);
    let node = this.root;
    let i = 0;
    for (;;) {
      const prefix = node.prefix;
      let j = 0;
      for (; j < prefix.length; j++) {
        if (prefix.charCodeAt(j) !== key.charCodeAt(i + j)) {
          node.split(j);
          break;
        }
      }
      i += j;
      if (i >= key.length) {
        const values = node.values;
        const duplicate = values.some((v) => v.value === value);
        let k = 0;
        while (k < values.length && values[k].priority < priority) k++;
        values.splice(k, 0, { priority, value });
        return duplicate;
      }
      const ch = key.charCodeAt(i);
      const next = node.child(ch);
      if (next === undefined) {
        node.setChild(ch, new IndexNode(key.slice(i + 1), [{ priority, value }]));
        return false;
      }
      node = next;
      i++;
    }
  }

  /**
   * libkmod's `index_search`: the first (lowest-priority) value stored under exactly `key`.
   * @param key the key
   * @returns the value, or undefined
   */
  lookup(key: string): string | undefined {
    let node: IndexNode | undefined = this.root;
    let i = 0;
    while (node) {
      const prefix = node.prefix;
      for (let j = 0; j < prefix.length; j++) if (prefix.charCodeAt(j) !== key.charCodeAt(i + j)) return undefined;
      i += prefix.length;
      if (i >= key.length) return node.values[0]?.value;
      node = node.child(key.charCodeAt(i));
      i++;
    }
    return undefined;
  }

  /**
   * libkmod's `index_searchwild`: every value whose stored key, read as an `fnmatch` pattern,
   * matches `key`, merged by priority (equal priorities in reverse order of finding, as libkmod's
   * `add_value` leaves them). Descends along the literal key; at each node it first enumerates the
   * `*`, `?` and `[` children, and a wildcard inside a prefix enumerates that whole subtree.
   * @param key a normalized alias or `symbol:NAME`
   * @returns the matching values
   */
  searchWild(key: string): IndexValue[] {
    const out: IndexValue[] = [];
    let visits = 0;
    const all = (node: IndexNode, j: number, buf: string, subkey: string): void => {
      if (++visits > this.#visitLimit) throw new IndexFormatError('index nodes form a cycle or are shared');
      if (buf.length > MAX_KEY_DEPTH) throw new IndexFormatError('index key deeper than any module alias');
      const pat = buf + node.prefix.slice(j);
      for (const [c, kid] of node.children()) all(kid, 0, pat + String.fromCharCode(c), subkey);
      if (node.values.length > 0 && fnmatch(pat, subkey)) for (const v of node.values) addValue(out, v);
    };
    let node: IndexNode | undefined = this.root;
    let i = 0;
    while (node) {
      const prefix = node.prefix;
      let j = 0;
      for (; j < prefix.length; j++) {
        const ch = prefix[j];
        if (ch === '*' || ch === '?' || ch === '[') {
          all(node, j, '', key.slice(i + j));
          return out;
        }
        if (ch !== key[i + j]) return out;
      }
      i += j;
      const rest = key.slice(i);
      for (const w of [42, 63, 91]) { // '*', '?', '['
        const kid = node.child(w);
        if (kid !== undefined) all(kid, 0, String.fromCharCode(w), rest);
      }
      if (i >= key.length) {
        for (const v of node.values) addValue(out, v);
        return out;
      }
      node = node.child(key.charCodeAt(i));
      i++;
    }
    return out;
  }

  /**
   * Every key and value in libkmod's dump order (`index_dump`: a node's values, then its children
   * by character), each as `[key, value, priority]`.
   */
  *entries(): Generator<[key: string, value: string, priority: number]> {
    const limit = this.#visitLimit;
    let visits = 0;
    const walk = function* (node: IndexNode, key: string): Generator<[string, string, number]> {
      if (++visits > limit) throw new IndexFormatError('index nodes form a cycle or are shared');
      if (key.length > MAX_KEY_DEPTH) throw new IndexFormatError('index key deeper than any module alias');
      const k = key + node.prefix;
      for (const v of node.values) yield [k, v.value, v.priority];
      for (const [c, kid] of node.children()) yield* walk(kid, k + String.fromCharCode(c));
    };
    yield* walk(this.root, '');
  }

  /**
   * libkmod's `index_dump` as `modprobe -c` prints it: `PREFIXkey value\n` per entry.
   * @param prefix put before every key (`'alias '` for the alias and symbol indexes)
   * @returns the text
   */
  dump(prefix = ''): string {
    let s = '';
    for (const [k, v] of this.entries()) s += `${prefix}${k} ${v}\n`;
    return s;
  }

  /**
   * The index file's bytes in kmod's layout: pre-order (kmod ≥ 34, the default) or post-order
   * (kmod ≤ 33), written by {@link IndexWriter} from this trie's entries.
   * @param opts `layout`
   * @returns the file contents
   * @example writeFileSync('modules.alias.bin', trie.toBuffer());
   */
  toBuffer(opts: { layout?: IndexLayout } = {}): Buffer {
    const w = new IndexWriter();
    // in reverse: the writer puts a later value before its equal-priority peers, so a key's
    // values come out in their stored order
    const all = [...this.entries()];
    for (let i = all.length - 1; i >= 0; i--) w.add(all[i][0], all[i][1], all[i][2]);
    return w.toBuffer(opts);
  }

  /**
   * Reads an index from its bytes (either layout). Nodes are decoded when first visited.
   * @param buf the file contents (kept, not copied)
   * @returns the trie
   * @throws {IndexFormatError} when it is shorter than the header or the magic or major version is wrong
   */
  static fromBuffer(buf: Buffer): IndexTrie {
    if (buf.length < 12) throw new IndexFormatError(`file too short (${buf.length} bytes)`);
    const magic = buf.readUInt32BE(0);
    if (magic !== INDEX_MAGIC) throw new IndexFormatError(`magic check fail: ${magic.toString(16)} instead of ${INDEX_MAGIC.toString(16)}`);
    const version = buf.readUInt32BE(4);
    if (version >>> 16 !== INDEX_VERSION >>> 16) throw new IndexFormatError(`major version check fail: ${version >>> 16} instead of ${INDEX_VERSION >>> 16}`);
    const trie = new IndexTrie(readNode(buf, buf.readUInt32BE(8)) ?? new IndexNode());
    trie.#visitLimit = buf.length / 4 + 1;
    return trie;
  }

  /**
   * Reads an index file (either layout).
   * @param file path of a `modules.*.bin`
   * @returns the trie
   * @throws {IndexFormatError} for a file that is not an index; Node's fs errors when unreadable
   *   (EINVAL for a FIFO or device, EFBIG past 16 MiB)
   */
  static read(file: string): IndexTrie {
    return IndexTrie.fromBuffer(readBounded(file));
  }

  /**
   * Builds the index depmod would have written beside a text file: `dep` (modules.dep: key =
   * module name, value = the line, priority = line number), `alias` or `symbols` (`alias PATTERN
   * NAME` lines: key = normalized pattern, value = name; priority = the module's line in
   * `depPriority`, else its order of first appearance). Lines that are not entries are skipped.
   * @param text the file's contents
   * @param kind which file
   * @param depPriority module name → its modules.dep line number, to reproduce depmod's priorities
   * @returns the trie
   */
  static fromText(text: string, kind: IndexTextKind, depPriority?: ReadonlyMap<string, number>): IndexTrie {
    const t = new IndexTrie();
    const seen = new Map<string, number>();
    let lineNo = 0;
    for (const line of text.split('\n')) {
      if (kind === 'dep') {
        const colon = line.indexOf(':');
        if (colon <= 0) continue;
        const name = pathToModname(line.slice(0, colon));
        if (name !== undefined) t.insert(name, line, lineNo);
        lineNo++;
        continue;
      }
      if (!line.startsWith('alias ')) continue;
      const sp = line.lastIndexOf(' ');
      if (sp <= 6) continue;
      const mod = line.slice(sp + 1);
      const key = kind === 'alias' ? aliasNormalize(line.slice(6, sp)) : line.slice(6, sp);
      if (key === undefined) continue;
      let prio = depPriority?.get(mod) ?? seen.get(mod);
      if (prio === undefined) seen.set(mod, (prio = seen.size));
      t.insert(key, mod, prio);
    }
    return t;
  }
}

const NOT_7BIT = /[^\x00-\x7f]/;

function checkString(s: string): void {
  if (!NOT_7BIT.test(s)) return;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= CHILDMAX) {
      throw new RangeError(`Module index: bad character '${s[i]}'=0x${c.toString(16)} - only 7-bit ASCII is supported:\n${s}\n`);
    }
  }
}

/**
 * depmod's index as it writes it: entries in, a `.bin` file out, the same bytes as building the
 * trie node by node (`index_insert`, then `index_write`) would give, without making the nodes.
 * The entries are sorted by key (then ascending priority, a later entry before its
 * equal-priority peers, as `index_insert` leaves them); each node is then a range of sorted
 * entries: its prefix is the range's common prefix, its values the entries that end there, its
 * children the sub-ranges by the next character. (The root's prefix is always empty, as kmod's
 * root is never split.)
 * @example
 * const w = new IndexWriter(); w.add('fs-vfat', 'vfat', 12); writeFileSync('modules.alias.bin', w.toBuffer());
 */
export class IndexWriter {
  readonly #keys: string[] = [];
  readonly #values: string[] = [];
  readonly #priorities: number[] = [];
  readonly #seen: Map<string, string[]> | undefined;

  /** @param opts `duplicates`: make {@link add} report a value already stored under its key (depmod's `-w`) */
  constructor(opts: { duplicates?: boolean } = {}) {
    if (opts.duplicates) this.#seen = new Map();
  }

  /**
   * depmod's `index_insert`.
   * @param key 7-bit ASCII key
   * @param value 7-bit ASCII value
   * @param priority depmod's priority
   * @returns true when duplicates are tracked and the same value string was already added under the key
   * @throws {RangeError} for a byte ≥ 128 in key or value (kmod: `Module index: bad character`)
   */
  add(key: string, value: string, priority: number): boolean {
    checkString(key);
    checkString(value);
    this.#keys.push(key);
    this.#values.push(value);
    this.#priorities.push(priority);
    if (this.#seen === undefined) return false;
    const before = this.#seen.get(key);
    if (before === undefined) {
      this.#seen.set(key, [value]);
      return false;
    }
    const dup = before.includes(value);
    before.push(value);
    return dup;
  }

  /**
   * The file's bytes.
   * @param opts `layout`: pre-order (kmod ≥ 34, the default) or post-order (kmod ≤ 33)
   * @returns the file contents
   */
  toBuffer(opts: { layout?: IndexLayout } = {}): Buffer {
    const keys = this.#keys;
    const prios = this.#priorities;
    const order: number[] = new Array(keys.length);
    for (let i = 0; i < order.length; i++) order[i] = i;
    order.sort((a, b) => {
      const x = keys[a];
      const y = keys[b];
      return x < y ? -1 : x > y ? 1 : prios[a] - prios[b] || b - a;
    });
    return new TrieBytes(keys, this.#values, prios, order).write(opts.layout ?? 'pre-order');
  }
}

/** One node of the sorted entries: keys order[lo..hi) share key[0..end); order[lo..v) end there. */
interface NodeRange {
  lo: number;
  hi: number;
  depth: number;
  end: number;
  v: number;
}

/** Writes the nodes of sorted entries ({@link IndexWriter.toBuffer}) into a growing buffer. */
class TrieBytes {
  #buf: Buffer;
  #pos = 12;

  constructor(
    readonly keys: string[],
    readonly values: string[],
    readonly prios: number[],
    readonly order: number[],
  ) {
    let bytes = 12;
    for (let i = 0; i < keys.length; i++) bytes += keys[i].length + values[i].length + 16;
    this.#buf = Buffer.alloc(bytes);
  }

  write(layout: IndexLayout): Buffer {
    const n = this.keys.length;
    const whole = this.#range(0, n, 0, true);
    const root = layout === 'post-order' ? this.#post(whole) : this.#pre(whole);
    const out = this.#buf;
    out.writeUInt32BE(INDEX_MAGIC, 0);
    out.writeUInt32BE(INDEX_VERSION, 4);
    out.writeUInt32BE(root, 8);
    return out.subarray(0, this.#pos);
  }

  #range(lo: number, hi: number, depth: number, root = false): NodeRange {
    const { keys, order } = this;
    let end = depth;
    if (!root && lo < hi) {
      const a = keys[order[lo]];
      const b = keys[order[hi - 1]];
      const m = Math.min(a.length, b.length);
      while (end < m && a.charCodeAt(end) === b.charCodeAt(end)) end++;
    }
    let v = lo;
    while (v < hi && keys[order[v]].length === end) v++;
    return { lo, hi, depth, end, v };
  }

  /** The node's reference flags (its offset is or-ed in). */
  #mask(r: NodeRange): number {
    return (r.end > r.depth ? F_PREFIX : 0) | (r.v > r.lo ? F_VALUES : 0) | (r.v < r.hi ? F_CHILDS : 0);
  }

  /** Calls `each(child range, character)` for the children, in character order. */
  #children(r: NodeRange, each: (kid: NodeRange, ch: number) => void): void {
    const { keys, order } = this;
    let i = r.v;
    while (i < r.hi) {
      const c = keys[order[i]].charCodeAt(r.end);
      let j = i + 1;
      while (j < r.hi && keys[order[j]].charCodeAt(r.end) === c) j++;
      each(this.#range(i, j, r.end + 1), c);
      i = j;
    }
  }

  /** kmod ≥ 34 (`index_write__node`): the node, then each child's subtree. */
  #pre(r: NodeRange): number {
    const at = this.#pos;
    const refs = this.#node(r);
    const first = refs === -1 ? 0 : this.keys[this.order[r.v]].charCodeAt(r.end);
    this.#children(r, (kid, c) => this.#putU32(refs + 4 * (c - first), this.#pre(kid)));
    return (at | this.#mask(r)) >>> 0;
  }

  /** kmod ≤ 33: each child's subtree, then the node. */
  #post(r: NodeRange): number {
    const kids: Array<[number, number]> = [];
    this.#children(r, (kid, c) => kids.push([c, this.#post(kid)]));
    const at = this.#pos;
    const refs = this.#node(r);
    for (const [c, ref] of kids) this.#putU32(refs + 4 * (c - kids[0][0]), ref);
    return (at | this.#mask(r)) >>> 0;
  }

  /** Writes the node's own bytes with its child references zeroed; returns where they start (-1: no children). */
  #node(r: NodeRange): number {
    const { keys, values, prios, order } = this;
    if (r.end > r.depth) this.#putString(keys[order[r.lo]].slice(r.depth, r.end));
    let refs = -1;
    if (r.v < r.hi) {
      const first = keys[order[r.v]].charCodeAt(r.end);
      const last = keys[order[r.hi - 1]].charCodeAt(r.end);
      const n = 4 * (last - first + 1);
      this.#room(2 + n);
      this.#buf[this.#pos++] = first;
      this.#buf[this.#pos++] = last;
      refs = this.#pos; // left zero (the buffer is zero-filled and only ever written forward)
      this.#pos += n;
    }
    if (r.v > r.lo) {
      this.#room(4);
      this.#putU32(this.#pos, r.v - r.lo);
      this.#pos += 4;
      for (let i = r.lo; i < r.v; i++) {
        this.#room(4);
        this.#putU32(this.#pos, prios[order[i]] >>> 0);
        this.#pos += 4;
        this.#putString(values[order[i]]);
      }
    }
    return refs;
  }

  #room(n: number): void {
    if (this.#pos + n <= this.#buf.length) return;
    const grown = Buffer.alloc(Math.max(2 * this.#buf.length, this.#pos + n));
    this.#buf.copy(grown, 0, 0, this.#pos);
    this.#buf = grown;
  }

  /** A 7-bit string and its NUL (a loop for short ones, where Buffer#write costs more). */
  #putString(s: string): void {
    this.#room(s.length + 1);
    const out = this.#buf;
    if (s.length > 24) this.#pos += out.write(s, this.#pos, 'latin1');
    else for (let i = 0; i < s.length; i++) out[this.#pos++] = s.charCodeAt(i);
    out[this.#pos++] = 0;
  }

  #putU32(p: number, v: number): void {
    const out = this.#buf;
    out[p] = v >>> 24;
    out[p + 1] = v >>> 16;
    out[p + 2] = v >>> 8;
    out[p + 3] = v;
  }
}

/**
 * kmod's module index (`modules.*.bin`): one radix-trie node model that is built in memory by
 * `depmod`, written in either of kmod's two layouts, read back from either layout lazily (a
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
  /** node size in bytes (pre-order writer) */
  size = 0;
  /** size of this subtree in bytes (pre-order writer) */
  total = 0;

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
   * (kmod ≤ 33).
   * @param opts `layout`
   * @returns the file contents
   * @example writeFileSync('modules.alias.bin', trie.toBuffer());
   */
  toBuffer(opts: { layout?: IndexLayout } = {}): Buffer {
    return opts.layout === 'post-order' ? writePostOrder(this.root) : writePreOrder(this.root);
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

function checkString(s: string): void {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= CHILDMAX) {
      throw new RangeError(`Module index: bad character '${s[i]}'=0x${c.toString(16)} - only 7-bit ASCII is supported:\n${s}\n`);
    }
  }
}

function mask(n: IndexNode): number {
  return ((n.hasChildren ? F_CHILDS : 0) | (n.prefix.length > 0 ? F_PREFIX : 0) | (n.values.length > 0 ? F_VALUES : 0)) >>> 0;
}

function nodeSize(n: IndexNode): number {
  let size = 0;
  if (n.hasChildren) size += 2 + 4 * (n.last - n.first + 1);
  if (n.prefix.length > 0) size += n.prefix.length + 1;
  const values = n.values;
  if (values.length > 0) {
    size += 4;
    for (let i = 0; i < values.length; i++) size += 5 + values[i].value.length;
  }
  return size;
}

/** A 7-bit string's bytes and its NUL at `p` (a loop: most are a few characters, where Buffer#write costs more). */
function putString(out: Buffer, p: number, s: string): number {
  for (let i = 0; i < s.length; i++) out[p++] = s.charCodeAt(i);
  out[p++] = 0;
  return p;
}

function putU32(out: Buffer, p: number, v: number): number {
  out[p] = v >>> 24;
  out[p + 1] = v >>> 16;
  out[p + 2] = v >>> 8;
  out[p + 3] = v;
  return p + 4;
}

/** Writes the node's own bytes at `p`, its child references from `refs` (one per character from `first` to `last`). */
function putNode(out: Buffer, p: number, n: IndexNode, refs: number[]): number {
  if (n.prefix.length > 0) p = putString(out, p, n.prefix);
  if (n.hasChildren) {
    out[p++] = n.first;
    out[p++] = n.last;
    for (let c = n.first; c <= n.last; c++) p = putU32(out, p, refs[c - n.first]);
  }
  const values = n.values;
  if (values.length > 0) {
    p = putU32(out, p, values.length);
    for (let i = 0; i < values.length; i++) {
      p = putU32(out, p, values[i].priority >>> 0);
      p = putString(out, p, values[i].value);
    }
  }
  return p;
}

function header(total: number): Buffer {
  const out = Buffer.alloc(total);
  out.writeUInt32BE(INDEX_MAGIC, 0);
  out.writeUInt32BE(INDEX_VERSION, 4);
  return out;
}

/** Each node's own size and its subtree's ({@link IndexNode.size}, {@link IndexNode.total}). */
function sizeTree(n: IndexNode): number {
  let total = (n.size = nodeSize(n));
  for (let c = n.first; c <= n.last && c < CHILDMAX; c++) {
    const k = n.child(c);
    if (k !== undefined) total += sizeTree(k);
  }
  return (n.total = total);
}

/** kmod ≥ 34 (`index_calculate_size` + `index_write__node`): root at 12, children after it. */
function writePreOrder(root: IndexNode): Buffer {
  const out = header(12 + sizeTree(root));
  out.writeUInt32BE((12 | mask(root)) >>> 0, 8);
  const write = (n: IndexNode, off: number): void => {
    const refs: number[] = [];
    let at = off + n.size;
    for (let c = n.first; c <= n.last && c < CHILDMAX; c++) {
      const k = n.child(c);
      if (k === undefined) refs.push(0);
      else {
        refs.push((at | mask(k)) >>> 0);
        at += k.total;
      }
    }
    putNode(out, off, n, refs);
    at = off + n.size;
    for (let c = n.first; c <= n.last && c < CHILDMAX; c++) {
      const k = n.child(c);
      if (k === undefined) continue;
      write(k, at);
      at += k.total;
    }
  };
  write(root, 12);
  return out;
}

/** kmod ≤ 33: children first (in character order), then the node; root reference patched last. */
function writePostOrder(root: IndexNode): Buffer {
  const out = header(12 + sizeTree(root));
  let pos = 12;
  const write = (n: IndexNode): number => {
    const refs: number[] = [];
    for (let c = n.first; c <= n.last && c < CHILDMAX; c++) {
      const k = n.child(c);
      refs.push(k === undefined ? 0 : write(k));
    }
    const off = pos;
    pos = putNode(out, pos, n, refs);
    return (off | mask(n)) >>> 0;
  };
  out.writeUInt32BE(write(root), 8);
  return out;
}

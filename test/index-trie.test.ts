import assert from 'node:assert/strict';
import { describe, it, before, after } from 'node:test';
import { readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { IndexTrie, IndexFormatError, IndexWriter } from '../src/db/index-trie.js';
import { debianKernels, kmod34Depmod, type Kernel } from './helpers/kernels.js';

const BIN_FILES = ['modules.dep.bin', 'modules.alias.bin', 'modules.symbols.bin', 'modules.builtin.bin', 'modules.builtin.alias.bin'];

function trieOf(entries: Array<[string, string, number]>): IndexTrie {
  const t = new IndexTrie();
  for (const [k, v, p] of entries) t.insert(k, v, p);
  return t;
}

describe('IndexTrie in memory', () => {
  it('splits nodes where keys diverge, whatever the insertion order', () => {
    const keys: Array<[string, string, number]> = [['abc', '1', 0], ['abd', '2', 1], ['ab', '3', 2], ['b', '4', 3], ['abcdef', '5', 4]];
    const a = trieOf(keys).toBuffer();
    const b = trieOf([...keys].reverse()).toBuffer();
    assert.ok(a.equals(b), 'the trie shape must not depend on insertion order');
    const t = IndexTrie.fromBuffer(a);
    for (const [k, v] of keys) assert.equal(t.lookup(k), v, `lookup(${k})`);
    assert.equal(t.lookup('a'), undefined);
    assert.equal(t.lookup('abcd'), undefined);
    assert.equal(t.lookup('abce'), undefined);
  });

  it('keeps values by ascending priority, a new value before its equal-priority peers', () => {
    const t = trieOf([['k', 'x', 2], ['k', 'y', 1], ['k', 'z', 2], ['k', 'w', 0]]);
    assert.deepEqual(t.root.child('k'.charCodeAt(0))!.values.map((v) => v.value), ['w', 'y', 'z', 'x']);
    assert.equal(t.lookup('k'), 'w');
  });

  it('reports a value already stored under the key (depmod -w)', () => {
    const t = new IndexTrie();
    assert.equal(t.insert('k', 'v', 0), false);
    assert.equal(t.insert('k', 'v', 1), true);
    assert.equal(t.insert('k', 'u', 1), false);
  });

  it('refuses bytes above 127 as kmod does', () => {
    assert.throws(() => new IndexTrie().insert('caf\u00e9', 'v', 0), /bad character .*=0xe9 - only 7-bit ASCII/);
    assert.throws(() => new IndexWriter().add('k', 'caf\u00e9', 0), /bad character .*=0xe9 - only 7-bit ASCII/);
  });

  it('writes from entries (depmod\'s IndexWriter) what the node trie holds, in both layouts', () => {
    const entries: Array<[string, string, number]> = [
      ['abc', '1', 0], ['abd', '2', 1], ['ab', '3', 2], ['b', '4', 3], ['abcdef', '5', 4], ['k', 'x', 2], ['k', 'y', 1], ['k', 'z', 2], ['', 'root', 7], ['symbol:a', 'm', 9],
    ];
    const w = new IndexWriter({ duplicates: true });
    for (const [k, v, p] of entries) assert.equal(w.add(k, v, p), false);
    assert.equal(w.add('k', 'y', 5), true, 'a value already under the key');
    assert.equal(w.add('k', 'q', 5), false);
    const t = trieOf([...entries, ['k', 'y', 5], ['k', 'q', 5]]);
    for (const layout of ['pre-order', 'post-order'] as const) {
      const bytes = w.toBuffer({ layout });
      const back = IndexTrie.fromBuffer(bytes);
      assert.deepEqual([...back.entries()], [...t.entries()], layout);
      assert.deepEqual(back.root.child('k'.charCodeAt(0))!.values.map((v) => v.value), ['y', 'z', 'x', 'q', 'y']);
    }
    assert.equal(new IndexWriter().toBuffer().length, 12, 'an empty index is its header');
    assert.equal(IndexTrie.fromBuffer(new IndexWriter().toBuffer()).lookup('x'), undefined);
  });

  it('searches wildcards as libkmod does, duplicates and priority order included', () => {
    const t = trieOf([
      ['pci:v00008086d*', 'e1000', 3],
      ['pci:v0000808?d*', 'q', 1],
      ['pci:v00008086d00001234', 'exact', 2],
      ['pci:v[0-9]*', 'range', 0],
      ['usb:*', 'usb', 0],
    ]);
    const tries = [t, IndexTrie.fromBuffer(t.toBuffer()), IndexTrie.fromBuffer(t.toBuffer({ layout: 'post-order' }))];
    for (const x of tries) {
      assert.deepEqual(x.searchWild('pci:v00008086d00001234').map((v) => v.value), ['range', 'q', 'exact', 'e1000']);
      assert.deepEqual(x.searchWild('pci:v00008086d0000ffff').map((v) => v.value), ['range', 'q', 'e1000']);
      assert.deepEqual(x.searchWild('usb:v1').map((v) => v.value), ['usb']);
      assert.deepEqual(x.searchWild('nothing'), []);
    }
  });

  it('dumps values before children, children by character (modprobe -c)', () => {
    const t = trieOf([['b', '2', 0], ['a', '1', 0], ['ab', '3', 0]]);
    assert.equal(t.dump('alias '), 'alias a 1\nalias ab 3\nalias b 2\n');
  });

  it('rejects files that are not an index', () => {
    assert.throws(() => IndexTrie.fromBuffer(Buffer.from('XXXXXXXXXXXX')), (e) => e instanceof IndexFormatError && /magic check fail: 58585858/.test(e.message));
    assert.throws(() => IndexTrie.fromBuffer(Buffer.alloc(4)), IndexFormatError);
  });
});

describe('IndexTrie over kmod-written indexes of the Debian kernels', { timeout: 120_000 }, () => {
  let kernels: Kernel[] = [];
  const ref34 = new Map<string, string>();
  before(async () => {
    kernels = await debianKernels();
    for (const k of kernels) ref34.set(k.name, await kmod34Depmod(k));
  });
  after(() => {
    for (const d of ref34.values()) rmSync(path.resolve(d, '../../..'), { recursive: true, force: true });
  });

  it('reads kmod 30 (post-order) and kmod 34.2 (pre-order) files and writes each byte for byte', () => {
    for (const k of kernels) {
      for (const f of BIN_FILES) {
        // the cached trees' indexes were written by the host's kmod 30
        const post = readFileSync(path.join(k.modulesDir, f));
        const pre = readFileSync(path.join(ref34.get(k.name)!, f));
        const fromPost = IndexTrie.fromBuffer(post);
        const fromPre = IndexTrie.fromBuffer(pre);
        assert.ok(fromPost.toBuffer({ layout: 'post-order' }).equals(post), `${k.name} ${f}: post-order round trip`);
        assert.ok(fromPost.toBuffer().equals(pre), `${k.name} ${f}: kmod 30's entries written pre-order = kmod 34.2's file`);
        assert.ok(fromPre.toBuffer({ layout: 'post-order' }).equals(post), `${k.name} ${f}: kmod 34.2's entries written post-order = kmod 30's file`);
        assert.equal(fromPost.dump(), fromPre.dump(), `${k.name} ${f}: same dump`);
      }
    }
  });

  it('rebuilds kmod 34.2 indexes byte for byte from the text files', () => {
    for (const k of kernels) {
      const dir = ref34.get(k.name)!;
      const depText = readFileSync(path.join(dir, 'modules.dep'), 'latin1');
      const dep = IndexTrie.fromText(depText, 'dep');
      assert.ok(dep.toBuffer().equals(readFileSync(path.join(dir, 'modules.dep.bin'))), `${k.name} modules.dep.bin`);
      const prio = new Map([...dep.entries()].map(([name, , p]) => [name, p]));
      for (const kind of ['alias', 'symbols'] as const) {
        const t = IndexTrie.fromText(readFileSync(path.join(dir, `modules.${kind}`), 'latin1'), kind, prio);
        assert.ok(t.toBuffer().equals(readFileSync(path.join(dir, `modules.${kind}.bin`))), `${k.name} modules.${kind}.bin`);
      }
    }
  });

  it('finds every alias of modules.alias through the .bin and the text alike', () => {
    for (const k of kernels) {
      const dir = ref34.get(k.name)!;
      const bin = IndexTrie.read(path.join(dir, 'modules.alias.bin'));
      const lines = readFileSync(path.join(dir, 'modules.alias'), 'latin1').split('\n').filter((l) => l.startsWith('alias '));
      const deps = IndexTrie.read(path.join(dir, 'modules.dep.bin'));
      for (const line of lines.slice(0, 400)) {
        const sp = line.lastIndexOf(' ');
        const mod = line.slice(sp + 1);
        // a concrete key the pattern matches: wildcards replaced by a plausible character
        const key = line.slice(6, sp).replace(/\[([^\]])[^\]]*\]/g, '$1').replace(/\*/g, '').replace(/\?/g, '0').replaceAll('-', '_');
        const found = bin.searchWild(key).map((v) => v.value);
        assert.ok(found.includes(mod), `${k.name}: searchWild(${key}) = ${found.join(',')}, want ${mod}`);
        assert.ok(deps.lookup(mod)?.includes(':'), `${k.name}: modules.dep.bin has ${mod}`);
      }
    }
  });
});

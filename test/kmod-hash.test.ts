import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { hashSuperfast, KmodHash } from '../src/db/kmod-hash.js';

describe('kmod hash', () => {
  it('hashes as kmod does on x86, bytes ≥ 0x80 sign-extended in the tail', () => {
    // values of the earlier implementation, whose order the depmod parity tests checked against kmod
    const known: Array<[string, number]> = [
      ['', 0], ['a', 291415938], ['ab', 1366002500], ['abc', 3535673738], ['abcd', 3671636187], ['dummy', 1976054971],
      ['symbol:printk', 3624000770], ['\xe9', 1776944832], ['x\xff', 3371177469], ['ab\x80', 2175421397],
      ['abcd\xfe\xfd\xfc', 198096907], ['module_layout', 2717343934],
    ];
    for (const [k, h] of known) assert.equal(hashSuperfast(k), h, JSON.stringify(k));
  });

  it('iterates bucket by bucket, each bucket in strcmp order, after adds and deletes', () => {
    const h = new KmodHash<number>(4);
    const keys = ['dummy', 'vfat', 'fat', 'xfs', 'libcrc32c', 'vxlan', 'udp_tunnel', 'ip6_udp_tunnel', 'a', 'b', 'c', 'd'];
    keys.forEach((k, i) => h.add(k, i));
    const expect = (ks: string[]) => [...ks].sort((x, y) => (hashSuperfast(x) & 3) - (hashSuperfast(y) & 3) || (x < y ? -1 : x > y ? 1 : 0));
    assert.deepEqual(h.keys(), expect(keys));
    assert.deepEqual(h.values(), expect(keys).map((k) => keys.indexOf(k)));
    h.delete('fat');
    h.add('zz', 99);
    h.add('dummy', 100); // replaced in place
    const now = [...keys.filter((k) => k !== 'fat'), 'zz'];
    assert.deepEqual(h.keys(), expect(now));
    assert.equal(h.values()[h.keys().indexOf('dummy')], 100);
    assert.deepEqual(h.entries()[0], [h.keys()[0], h.get(h.keys()[0])]);
  });
});

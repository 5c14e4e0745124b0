import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { errnoFromCode, errnoName, strerror } from '../src/kernel/errno.js';

describe("errno texts are glibc's, not Node's", () => {
  const cases: [number, string, string][] = [
    [1, 'EPERM', 'Operation not permitted'],
    [2, 'ENOENT', 'No such file or directory'],
    [11, 'EAGAIN', 'Resource temporarily unavailable'],
    [17, 'EEXIST', 'File exists'],
    [95, 'EOPNOTSUPP', 'Operation not supported'],
    [129, 'EKEYREJECTED', 'Key was rejected by service'],
  ];
  for (const [n, code, text] of cases) {
    it(`${n} is ${code}, "${text}"`, () => {
      assert.equal(strerror(n), text);
      assert.equal(errnoName(n), code);
      assert.equal(errnoFromCode(code), n);
    });
  }
  it('an unknown number reads like glibc', () => assert.equal(strerror(4242), 'Unknown error 4242'));
  it('aliases map to their number', () => {
    assert.equal(errnoFromCode('EWOULDBLOCK'), 11);
    assert.equal(errnoFromCode('ENOTSUP'), 95);
    assert.equal(errnoFromCode('NOPE'), undefined);
  });
});

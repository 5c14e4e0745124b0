import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { joinModuleArgs } from '../src/ops/params.js';

describe('module arguments follow kmod quoting', () => {
  const cases: [string[], string][] = [
    [[], ''],
    [['a=1'], 'a=1'],
    [['b=x y'], 'b="x y"'],
    [['f=x y=z'], 'f="x y=z"'],
    [["c='q r'"], "c='q r'"],
    [['c="q r"'], 'c="q r"'],
    [['plain word'], 'plain word'],
    [['a=', 'b'], 'a= b'],
    [['arr=1,2,3', 's=a b', 'n=2'], 'arr=1,2,3 s="a b" n=2'],
  ];
  for (const [args, want] of cases) {
    it(`${JSON.stringify(args)} → ${JSON.stringify(want)}`, () => assert.equal(joinModuleArgs(args), want));
  }
});

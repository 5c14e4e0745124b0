import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { startName } from '../src/cli/multicall.js';

describe('the start-up name picks the applet', () => {
  const cases: [string, ReturnType<typeof startName>][] = [
    ['/sbin/insmod', { multicall: false, name: 'insmod' }],
    ['lsmod', { multicall: false, name: 'lsmod' }],
    ['/usr/bin/kmod-ts', { multicall: true }],
    ['/x/bin/kmod-ts.js', { multicall: true }],
    ['/x/kmod-ts.mjs', { multicall: true }],
    ['/usr/lib/kmod-ts/kmod-ts.cjs', { multicall: true }],
    ['/x/dist/src/cli/entry.js', { multicall: true }],
    ['/x/rmmod.js', { multicall: false, name: 'rmmod' }],
  ];
  for (const [argv0, want] of cases) it(`${argv0} → ${JSON.stringify(want)}`, () => assert.deepEqual(startName(argv0), want));
});

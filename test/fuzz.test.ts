/**
 * The short seeded fuzzing pass (issue 14): every target of `npm run fuzz`, 200 inputs each,
 * seed 1, so that a regression in any parser or decoder of untrusted bytes fails `npm test`.
 * Longer runs: `npm run fuzz -- --time 60`.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { tempDir } from './helpers/modules.js';

const SCRIPT = fileURLToPath(new URL('../../scripts/fuzz.mjs', import.meta.url));

describe('fuzzing, short seeded pass', () => {
  it('every target takes 200 mutated inputs with no uncaught error, no input over its time budget and no crash', () => {
    const out = tempDir('kmod-ts-fuzz-out-');
    const r = spawnSync(process.execPath, [SCRIPT, '--runs', '200', '--seed', '1', '--out', out], { encoding: 'utf8', timeout: 120_000 });
    assert.equal(r.status, 0, `fuzz exited ${r.status} (${r.signal ?? r.error?.message ?? ""}):\n${r.stdout}${r.stderr}`);
    const rows = r.stdout.split('\n').filter((l) => /^\S+ +\d+ inputs +[\d.]+ s /.test(l));
    assert.equal(rows.length, 18, r.stdout);
    for (const row of rows) assert.match(row, /^\S+\s+200 inputs .* ok$/, row);
  });
});

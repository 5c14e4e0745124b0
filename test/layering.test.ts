/**
 * The import rule of src/, checked over the compiled import graph (dist/src): `cli/` → `ops/` →
 * (`db/`, `file/`, `kernel/`), never back; `db/` may use `file/` and `kernel/`; `file/` may use
 * `kernel/`; everything may use `errors.ts`, which uses only `kernel/errno`. Only `kernel/ffi`
 * names koffi and only `file/compression/` names a codec package, so each can be faked or
 * swapped in one place.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

const SRC = fileURLToPath(new URL('../src/', import.meta.url));

/** Which folders each folder may import from (itself always). */
const MAY_IMPORT: Readonly<Record<string, readonly string[]>> = {
  cli: ['ops', 'db', 'file', 'kernel', 'errors', 'applets'],
  ops: ['db', 'file', 'kernel', 'errors'],
  db: ['file', 'kernel', 'errors'],
  file: ['kernel', 'errors'],
  kernel: ['errors'],
  errors: ['kernel/errno'],
  index: ['cli', 'ops', 'db', 'file', 'kernel', 'errors'],
};

/** Packages only one place may name: [package pattern, the folder or file allowed]. */
const FENCED: ReadonlyArray<readonly [RegExp, string]> = [
  [/^koffi(\/|$)/, 'kernel/ffi.js'],
  [/^(lzma-native|zstd-napi)(\/|$)/, 'file/compression/'],
  [/^(node:)?zlib$/, 'file/compression/'],
];

function files(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && e.name.endsWith('.js'))
    .map((e) => join(e.parentPath ?? (e as unknown as { path: string }).path, e.name));
}

/** `cli`, `ops`, ..., `errors`, `index`, `kernel/errno` (a file the rule names), or `applets` (outside src). */
function layerOf(file: string): string {
  const rel = relative(SRC, file).split(sep).join('/');
  if (rel.startsWith('../')) return rel.includes('applets/') ? 'applets' : 'outside';
  if (rel === 'kernel/errno.js') return 'kernel/errno';
  const top = rel.split('/')[0];
  return top.endsWith('.js') ? top.slice(0, -3) : top;
}

function allowed(from: string, to: string): boolean {
  const base = (l: string) => l.split('/')[0];
  if (base(from) === base(to)) return true;
  const may = MAY_IMPORT[base(from)] ?? [];
  return may.includes(to) || may.includes(base(to));
}

/** Every module specifier in a compiled file: static and dynamic imports, re-exports, require() and require.resolve(). */
function specifiers(code: string): string[] {
  const out: string[] = [];
  const code2 = code
    .split('\n')
    .filter((l) => !/^\s*(\*|\/\/|\/\*)/.test(l))
    .join('\n');
  for (const m of code2.matchAll(/\b(?:from|import)\s*\(?\s*['"]([^'"]+)['"]/g)) out.push(m[1]);
  for (const m of code2.matchAll(/\b(?:require|req|resolve)\s*\(\s*['"]([^'"]+)['"]\s*\)/g)) out.push(m[1]);
  for (const m of code2.matchAll(/\)\s*\(\s*['"]([^'"]+)['"]\s*\)/g)) out.push(m[1]); // createRequire(...)('koffi')
  return out;
}

/**
 * Wrong arrows in a compiled source tree.
 * @param root dist/src
 * @returns one line per violation, `from → to`
 */
export function layeringViolations(root: string = SRC): string[] {
  const bad: string[] = [];
  for (const file of files(root)) {
    const from = layerOf(file);
    const rel = relative(root, file).split(sep).join('/');
    for (const spec of specifiers(readFileSync(file, 'utf8'))) {
      if (spec.startsWith('.')) {
        const target = resolve(dirname(file), spec);
        const to = layerOf(target);
        if (!allowed(from, to)) bad.push(`${rel} → ${relative(root, target).split(sep).join('/')} (${from} may not import ${to})`);
        continue;
      }
      for (const [pkg, place] of FENCED) {
        if (pkg.test(spec) && !(place.endsWith('/') ? rel.startsWith(place) : rel === place)) bad.push(`${rel} → ${spec} (only ${place} may)`);
      }
    }
  }
  return bad;
}

describe('the import rule of src/', () => {
  it('has no wrong arrow: cli → ops → (db, file, kernel), db → (file, kernel), file → kernel; koffi and the codecs fenced in', () => {
    const bad = layeringViolations();
    assert.deepEqual(bad, [], `wrong imports:\n${bad.join('\n')}`);
  });

  it('sees the imports it checks (the graph is not empty)', () => {
    const all = files(SRC).flatMap((f) => specifiers(readFileSync(f, 'utf8')));
    for (const want of ['koffi', '../kernel/errno.js', 'zstd-napi/binding']) assert.ok(all.includes(want), `no import of ${want} found`);
  });
});

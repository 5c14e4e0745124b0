/**
 * Module names and aliases as libkmod spells and matches them: `modname_normalize`,
 * `path_to_modname`, `alias_normalize`, and glibc's `fnmatch` for alias patterns. Used by the
 * module database, rmmod's argument, depmod and modprobe, and scripts/mkrootfs.mjs; and the
 * module file extensions kmod knows.
 *
 * @module
 */

/** Module file extensions kmod takes as modules (`path_ends_with_kmod_ext`; `.ko.gz` as a kmod built with zlib). */
export const MODULE_EXTENSIONS: readonly string[] = ['.ko', '.ko.gz', '.ko.xz', '.ko.zst'];

/**
 * Whether a file name ends in one of {@link MODULE_EXTENSIONS} (with something before it).
 * @example hasModuleExtension('fat.ko.xz') // true
 */
export function hasModuleExtension(name: string): boolean {
  for (const ext of MODULE_EXTENSIONS) if (name.length > ext.length && name.endsWith(ext)) return true;
  return false;
}

/**
 * Whether a file name says the module is compressed (`.ko.gz`, `.ko.xz`, `.ko.zst`). Only for
 * planning work (whether worker threads are worth starting); a file's format always comes from
 * its magic bytes.
 * @example compressedByName('fat.ko.xz') // true
 */
export function compressedByName(name: string): boolean {
  return name.endsWith('.ko.xz') || name.endsWith('.ko.zst') || name.endsWith('.ko.gz');
}

/**
 * kmod's `modname_normalize`: cut at the first `.`, `-` → `_`.
 * @param name a module name or file basename
 * @returns the normalized name
 * @example
 * modnameNormalize('snd-hda-intel.ko.xz'); // 'snd_hda_intel'
 */
export function modnameNormalize(name: string): string {
  const dot = name.indexOf('.');
  return (dot === -1 ? name : name.slice(0, dot)).replaceAll('-', '_');
}

/**
 * kmod's `path_to_modname`: the normalized basename.
 * @param p a module path
 * @returns the module name, or undefined for an empty basename
 * @example
 * pathToModname('/x/kernel/drivers/net/dummy.ko'); // 'dummy'
 */
export function pathToModname(p: string): string | undefined {
  const base = p.endsWith('/') ? '' : p.slice(p.lastIndexOf('/') + 1);
  return base === '' ? undefined : modnameNormalize(base);
}

/**
 * kmod's `alias_normalize` (and libkmod-config's `underscores()`, the same rule): `-` → `_` outside `[...]`.
 * @param alias a module alias as given
 * @returns the normalized alias, or undefined when brackets do not pair (kmod: EINVAL)
 * @example
 * aliasNormalize('pci:v*d[0-9]-x'); // 'pci:v*d[0-9]_x'
 */
export function aliasNormalize(alias: string): string | undefined {
  // runs without '-' are copied whole (most aliases have none: the result is the alias itself)
  let out = '';
  let from = 0;
  for (let i = 0; i < alias.length; i++) {
    const c = alias.charCodeAt(i);
    if (c === 0x2d) {
      out += `${alias.slice(from, i)}_`;
      from = i + 1;
    } else if (c === 0x5d) return undefined;
    else if (c === 0x5b) {
      // a bracket expression is kept as it is, '-' ranges included
      const close = alias.indexOf(']', i);
      if (close === -1) return undefined;
      i = close;
    }
  }
  return from === 0 ? alias : out + alias.slice(from);
}

/**
 * glibc `fnmatch(pattern, s, 0)` in the C locale, as kmod calls it: `*`, `?`, backslash escapes
 * (a pattern ending in a lone backslash matches nothing), `[...]` with `!`/`^` negation, `]`
 * first, ranges (a reversed one matches nothing), escapes, `[:class:]`, `[=c=]` and `[.c.]`; an
 * unterminated `[` is an ordinary character unless one of its items matches (then there is no
 * match at that position, as in glibc). `/` and leading dots are not special with flags 0.
 * Checked against glibc's own fnmatch over random patterns (test/modinfo.test.ts).
 * @param pattern the glob
 * @param s the string
 * @returns whether it matches
 * @example
 * fnmatch('pci:v00008086d*', 'pci:v00008086d00001234'); // true
 */
export function fnmatch(pattern: string, s: string): boolean {
  if (!GLOB_CHARS.test(pattern)) return pattern === s;
  // every token but `*` takes exactly one character, so a `*` is retried one character later
  // until the rest matches (glibc tries every position the same way)
  let pi = 0;
  let si = 0;
  let starP = -1;
  let starS = 0;
  while (si < s.length) {
    if (pi < pattern.length) {
      if (pattern.charCodeAt(pi) === 0x2a) {
        starP = ++pi;
        starS = si;
        continue;
      }
      const next = matchOne(pattern, pi, s.charCodeAt(si));
      if (next >= 0) {
        pi = next;
        si++;
        continue;
      }
    }
    if (starP === -1) return false;
    pi = starP;
    si = ++starS;
  }
  while (pi < pattern.length && pattern.charCodeAt(pi) === 0x2a) pi++;
  return pi === pattern.length;
}

const GLOB_CHARS = /[*?[\\]/;
/**
 * No match at this position. glibc's "return FNM_NOMATCH" inside a bracket (an ill-formed class
 * name, a trailing backslash, a bracket that never ends after an item matched) ends only the
 * attempt at this position: an earlier `*` still tries the next one, as here.
 */
const NO = -1;

/** Whether the token at `p[i]` (not `*`) matches character `ch`: the index after the token, or NO. */
function matchOne(p: string, i: number, ch: number): number {
  const c = p.charCodeAt(i);
  if (c === 0x3f) return i + 1; // ?
  if (c === 0x5c) {
    if (i + 1 >= p.length) return NO;
    return p.charCodeAt(i + 1) === ch ? i + 2 : NO;
  }
  if (c === 0x5b) {
    const r = matchBracket(p, i, ch);
    if (r !== LITERAL) return r;
  }
  return c === ch ? i + 1 : NO;
}

/** The bracket at `p[i]` is no bracket (unterminated before any item matched): `[` is an ordinary character. */
const LITERAL = -3;

const CLASSES: Record<string, (c: number) => boolean> = {
  alnum: (c) => isDigit(c) || isAlpha(c),
  alpha: (c) => isAlpha(c),
  blank: (c) => c === 0x20 || c === 0x09,
  cntrl: (c) => c < 0x20 || c === 0x7f,
  digit: (c) => isDigit(c),
  graph: (c) => c > 0x20 && c < 0x7f,
  lower: (c) => c >= 0x61 && c <= 0x7a,
  print: (c) => c >= 0x20 && c < 0x7f,
  punct: (c) => c > 0x20 && c < 0x7f && !isDigit(c) && !isAlpha(c),
  space: (c) => c === 0x20 || (c >= 0x09 && c <= 0x0d),
  upper: (c) => c >= 0x41 && c <= 0x5a,
  xdigit: (c) => isDigit(c) || (c >= 0x41 && c <= 0x46) || (c >= 0x61 && c <= 0x66),
};
function isDigit(c: number): boolean {
  return c >= 0x30 && c <= 0x39;
}
function isAlpha(c: number): boolean {
  return (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a);
}

/**
 * glibc's bracket expression (posix/fnmatch_loop.c in the C locale, where collation order is byte
 * order) at `p[start]` against `ch`: the index after its `]`, NO or LITERAL. `at(k)` is
 * C's `*p` of a NUL-terminated pattern (0 at and past the end).
 */
function matchBracket(p: string, start: number, ch: number): number {
  const n = p.length;
  const at = (k: number): number => (k < n ? p.charCodeAt(k) : 0);
  let i = start + 1;
  const not = at(i) === 0x21 || at(i) === 0x5e; // ! ^
  if (not) i++;
  let c = at(i++);
  for (;;) {
    // an ordinary item's character (-1 for a class or an equivalence class): matched alone, or a
    // range's start
    let cold = -1;
    let symbol = false; // a collating symbol: a range may follow it even before a `]`
    if (c === 0x5c) {
      if (at(i) === 0) return NO;
      cold = at(i++);
    } else if (c === 0x5b && at(i) === 0x3a) {
      // [:name:]; a name of letters a-y only, else `[` is an ordinary item
      let j = i;
      let name: string | undefined = '';
      for (;;) {
        if (name.length === CHAR_CLASS_MAX_LENGTH) return NO;
        const d = at(++j);
        if (d === 0x3a && at(j + 1) === 0x5d) break;
        if (d < 0x61 || d >= 0x7a) {
          name = undefined;
          break;
        }
        name += String.fromCharCode(d);
      }
      if (name === undefined) cold = 0x5b;
      else {
        const test = CLASSES[name];
        if (test === undefined) return NO;
        i = j + 2;
        if (test(ch)) return skipRest(p, i, not);
      }
    } else if (c === 0x5b && at(i) === 0x3d && at(i + 1) !== 0 && at(i + 2) === 0x3d && at(i + 3) === 0x5d) {
      // [=c=]: the character itself in the C locale
      const eq = at(i + 1);
      i += 4;
      if (eq === ch) return skipRest(p, i, not);
    } else if (c === 0) {
      return LITERAL; // unterminated: `[` is an ordinary character
    } else if (c === 0x5b && at(i) === 0x2e) {
      const sym = collatingSymbol(p, i);
      if (sym === undefined) return NO;
      [cold, i] = sym;
      symbol = true;
    } else {
      cold = c;
    }
    if (cold !== -1) {
      const isRange = at(i) === 0x2d && at(i + 1) !== 0 && (symbol || at(i + 1) !== 0x5d);
      if (!isRange && cold === ch) return skipRest(p, i, not);
    }
    c = at(i++);
    if (cold !== -1 && c === 0x2d && at(i) !== 0x5d) {
      // a range: its end an ordinary character, an escaped one or a collating symbol
      let cend = at(i++);
      if (cend === 0x5b && at(i) === 0x2e) {
        const sym = collatingSymbol(p, i);
        if (sym === undefined) return NO;
        [cend, i] = sym;
      } else {
        if (cend === 0x5c) cend = at(i++);
        if (cend === 0) return NO;
      }
      if (cold <= ch && ch <= cend) return skipRest(p, i, not);
      c = at(i++);
    }
    if (c === 0x5d) break;
  }
  return not ? i : NO;
}

/**
 * `[.c.]` whose `.` is at `p[i]`: in the C locale the one character it names and the index after
 * its `.]`; undefined (glibc: no match) for a longer or empty name or one that never ends.
 */
function collatingSymbol(p: string, i: number): [number, number] | undefined {
  const end = p.indexOf('.]', i + 1);
  return end === i + 2 ? [p.charCodeAt(i + 1), end + 2] : undefined;
}

/** glibc's name length limit for `[:name:]`. */
const CHAR_CLASS_MAX_LENGTH = 256;

/** After a bracket item matched: the index after the bracket's `]`; NO when negated or when it never ends. */
function skipRest(p: string, i: number, not: boolean): number {
  const n = p.length;
  const at = (k: number): number => (k < n ? p.charCodeAt(k) : 0);
  for (;;) {
    const c = at(i++);
    if (c === 0x5d) break;
    if (c === 0) return LITERAL; // unterminated after all: `[` is an ordinary character
    if (c === 0x5c) {
      if (at(i) === 0) return NO;
      i++;
    } else if (c === 0x5b && at(i) === 0x3a) {
      let c1 = 0;
      const startp = i;
      for (;;) {
        const d = at(++i);
        if (++c1 === CHAR_CLASS_MAX_LENGTH) return NO;
        if (at(i) === 0x3a && at(i + 1) === 0x5d) break;
        if (d < 0x61 || d >= 0x7a) {
          i = startp - 2;
          break;
        }
      }
      i += 2;
    } else if (c === 0x5b && at(i) === 0x3d) {
      if (at(++i) === 0) return NO;
      const d = at(++i);
      if (d !== 0x3d || at(i + 1) !== 0x5d) return NO;
      i += 2;
    } else if (c === 0x5b && at(i) === 0x2e) {
      for (;;) {
        const d = at(++i);
        if (d === 0) return NO;
        if (d === 0x2e && at(i + 1) === 0x5d) break;
      }
      i += 2;
    }
  }
  return not ? NO : i;
}

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

const globCache = new Map<string, RegExp>();

/**
 * glibc `fnmatch(pattern, s, 0)`: `*`, `?`, `[...]` (ranges, `!`/`^` negation, `]` first),
 * backslash escapes; `/` and leading dots are not special with flags 0.
 * @param pattern the glob
 * @param s the string
 * @returns whether it matches
 * @example
 * fnmatch('pci:v00008086d*', 'pci:v00008086d00001234'); // true
 */
export function fnmatch(pattern: string, s: string): boolean {
  if (!/[*?[\\]/.test(pattern)) return pattern === s;
  let re = globCache.get(pattern);
  if (re === undefined) {
    re = globToRegExp(pattern);
    globCache.set(pattern, re);
  }
  return re.test(s);
}

function globToRegExp(p: string): RegExp {
  const esc = (c: string) => c.replace(/[\\^$.*+?()[\]{}|/-]/g, '\\$&');
  let out = '';
  for (let i = 0; i < p.length; i++) {
    const c = p[i];
    if (c === '*') out += '[\\s\\S]*';
    else if (c === '?') out += '[\\s\\S]';
    else if (c === '\\' && i + 1 < p.length) out += esc(p[++i]);
    else if (c === '[') {
      let j = i + 1;
      let neg = false;
      if (p[j] === '!' || p[j] === '^') {
        neg = true;
        j++;
      }
      let body = '';
      let first = true;
      while (j < p.length && (p[j] !== ']' || first)) {
        first = false;
        if (p[j] === '\\' && j + 1 < p.length) j++;
        if (p[j + 1] === '-' && j + 2 < p.length && p[j + 2] !== ']') {
          body += `${esc(p[j])}-${esc(p[j + 2])}`;
          j += 3;
        } else {
          body += esc(p[j]);
          j++;
        }
      }
      if (j >= p.length) out += '\\['; // no closing bracket: a literal '['
      else {
        out += `[${neg ? '^' : ''}${body}]`;
        i = j;
      }
    } else out += esc(c);
  }
  return new RegExp(`^${out}$`, 's');
}

/**
 * depmod.d: where depmod looks for modules and which copy of a module wins (kmod's
 * `tools/depmod.c` `cfg_*`).
 *
 * Files: every `*.conf` (name at least 6 characters, not starting with `.`) of the configuration
 * directories, or the files and directories given with `-C`; all merged and sorted by basename
 * (`strcmp`), the first directory that supplies a basename winning. Lines: `\` + newline joins
 * lines, `\` + any other character drops the backslash, a line whose first byte is `#` is a
 * comment, tokens are split on tabs and spaces.
 *
 * @module
 */
import { readdirSync, statSync } from 'node:fs';
import { readBounded } from '../kernel/read-bounded.js';
import { wrappedLines } from './config-lines.js';
import path from 'node:path';

/** kmod 34.2's default configuration directories, in order (Debian: DISTCONFDIR is /usr/lib). */
export const DEPMOD_CONFIG_DIRS: readonly string[] = ['/etc/depmod.d', '/run/depmod.d', '/usr/local/lib/depmod.d', '/usr/lib/depmod.d', '/lib/depmod.d'];

/** A `search` entry: a directory under the module directory, or the `built-in` / `external` markers. */
export type SearchEntry = { type: 'path'; path: string } | { type: 'built-in' } | { type: 'external' };

/** Log levels, syslog numbering (kmod prints ≤ WARNING by default; each `-v` adds one). */
export const LOG_LEVEL = { crit: 2, err: 3, warning: 4, notice: 5, info: 6, debug: 7 } as const;

/** A message depmod prints: `depmod: <ERROR|WARNING|INFO|...>: <text>`. */
export interface DepmodMessage {
  level: number;
  /** kmod's words, ending in a newline as kmod's format strings do */
  text: string;
}

/** Parsed depmod.d configuration. Lists are in kmod's (prepended) order: last line first. */
export interface DepmodConfig {
  /** `search` entries, most recently read first; `[updates]` when no file has `search` */
  searches: SearchEntry[];
  /** `override` paths `SUBDIR/MOD` (no extension), last read first */
  overrides: string[];
  /** `external` directories, last read first */
  externals: string[];
  /** `exclude` names, last read first */
  excludes: string[];
}

/** The configuration with no files read: `search updates`. */
export function emptyDepmodConfig(): DepmodConfig {
  return { searches: [{ type: 'path', path: 'updates' }], overrides: [], externals: [], excludes: [] };
}

/** POSIX `regexec` of an extended regular expression, unanchored; a pattern that does not compile matches nothing. */
function kernelMatches(pattern: string, kver: string): boolean {
  if (pattern === '*') return true;
  try {
    return new RegExp(pattern).test(kver);
  } catch {
    return false;
  }
}

/**
 * The configuration files kmod reads from `paths` (`cfg_files_list` + `cfg_files_insert_sorted`).
 * @param paths directories or files (`-C`), or the defaults
 * @param log receives kmod's messages
 * @returns the files' paths in reading order
 */
export function depmodConfigFiles(paths: readonly string[], log: (m: DepmodMessage) => void = () => {}): string[] {
  const files: Array<{ name: string; path: string }> = [];
  const insert = (dir: string, name: string, full: string) => {
    let i = 0;
    for (; i < files.length; i++) {
      if (name === files[i].name) return; // the first directory that supplies a name wins
      if (name < files[i].name) break;
    }
    files.splice(i, 0, { name, path: full });
  };
  for (const p of paths) {
    let st;
    try {
      st = statSync(p);
    } catch {
      continue;
    }
    if (!st.isDirectory()) {
      insert(path.dirname(p), path.basename(p), p);
      continue;
    }
    let names: string[];
    try {
      names = readdirSync(p);
    } catch (e) {
      log({ level: LOG_LEVEL.err, text: `files list ${p}: ${(e as Error).message}\n` });
      continue;
    }
    for (const name of names) {
      if (name.startsWith('.')) continue;
      if (name.length < 6 || !name.endsWith('.conf')) {
        log({ level: LOG_LEVEL.info, text: `All cfg files need .conf: ${p}/${name}\n` });
        continue;
      }
      let sub;
      try {
        sub = statSync(path.join(p, name));
      } catch {
        log({ level: LOG_LEVEL.err, text: `Cannot stat directory entry: ${p}${name}\n` });
        continue;
      }
      if (sub.isDirectory()) {
        log({ level: LOG_LEVEL.err, text: `Directories inside directories are not supported: ${p}/${name}\n` });
        continue;
      }
      insert(p, name, `${p}/${name}`);
    }
  }
  return files.map((f) => f.path);
}

/**
 * Reads depmod.d as kmod's `cfg_load` does.
 * @param opts `paths` (`-C`, else {@link DEPMOD_CONFIG_DIRS}), the target kernel version (for
 *   `override`/`external` patterns), and `log` for kmod's messages
 * @returns the configuration
 * @example
 * const cfg = loadDepmodConfig({ kernelVersion: '6.1.0-18-amd64' });
 */
export function loadDepmodConfig(opts: { paths?: readonly string[]; kernelVersion: string; log?: (m: DepmodMessage) => void }): DepmodConfig {
  const log = opts.log ?? (() => {});
  const cfg: DepmodConfig = { searches: [], overrides: [], externals: [], excludes: [] };
  for (const file of depmodConfigFiles(opts.paths ?? DEPMOD_CONFIG_DIRS, log)) {
    let text: string;
    try {
      text = readBounded(file).toString('latin1');
    } catch (e) {
      log({ level: LOG_LEVEL.err, text: `file parse ${file}: ${strerrorOf(e)}\n` });
      continue;
    }
    parseDepmodConfig(cfg, text, file, opts.kernelVersion, log);
  }
  if (cfg.searches.length === 0) cfg.searches.push({ type: 'path', path: 'updates' });
  return cfg;
}

/**
 * Applies one configuration file's lines to `cfg` (`cfg_file_parse`).
 * @param cfg the configuration being built (lists are prepended to, as kmod does)
 * @param text the file's contents
 * @param file its path, for messages
 * @param kver the target kernel version
 * @param log receives kmod's messages
 */
export function parseDepmodConfig(cfg: DepmodConfig, text: string, file: string, kver: string, log: (m: DepmodMessage) => void): void {
  for (const [line, linenum] of wrappedLines(text)) {
    if (line === '' || line[0] === '#') continue;
    const tokens = line.split(/[\t ]+/).filter((t) => t !== '');
    const cmd = tokens[0];
    if (cmd === undefined) continue;
    const bad = () => log({ level: LOG_LEVEL.err, text: `${file}:${linenum}: ignoring bad line starting with '${cmd}'\n` });
    switch (cmd) {
      case 'search':
        for (const t of tokens.slice(1)) {
          cfg.searches.unshift(t === 'built-in' ? { type: 'built-in' } : t === 'external' ? { type: 'external' } : { type: 'path', path: t });
        }
        break;
      case 'override': {
        const [, mod, version, subdir] = tokens;
        if (subdir === undefined) {
          bad();
          break;
        }
        if (!kernelMatches(version, kver)) {
          log({ level: LOG_LEVEL.info, text: `${file}:${linenum}: override kernel did not match ${version}\n` });
          break;
        }
        cfg.overrides.unshift(`${subdir}/${mod}`);
        break;
      }
      case 'external': {
        const [, version, dir] = tokens;
        if (dir === undefined) {
          bad();
          break;
        }
        if (!kernelMatches(version, kver)) {
          log({ level: LOG_LEVEL.info, text: `${file}:${linenum}: external directory did not match ${version}\n` });
          break;
        }
        cfg.externals.unshift(dir);
        break;
      }
      case 'exclude':
        for (const t of tokens.slice(1)) cfg.excludes.unshift(t);
        break;
      case 'include':
      case 'make_map_files':
        log({ level: LOG_LEVEL.info, text: `${file}:${linenum}: command ${cmd} not implemented yet\n` });
        break;
      default:
        bad();
    }
  }
}

function strerrorOf(e: unknown): string {
  const code = (e as NodeJS.ErrnoException)?.code;
  return code === 'EACCES' ? 'Permission denied' : code === 'ENOENT' ? 'No such file or directory' : code === 'EISDIR' ? 'Is a directory' : String((e as Error)?.message ?? e);
}

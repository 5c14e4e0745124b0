/**
 * modprobe's configuration as kmod 34.2 reads it: the `modprobe.d` directories (or `-C`), the
 * module directory's `modules.softdep` and `modules.weakdep`, then `modprobe.`/`MODULE.PARAM`
 * options and `modprobe.blacklist=` from the kernel command line (libkmod-config.c).
 *
 * Nothing here prints: what kmod reports while reading (bad lines, deprecated commands,
 * directories inside directories) comes back as {@link ConfigDiagnostic}s for the caller to word.
 *
 * @module
 */
import { closeSync, constants, opendirSync, openSync, readSync, statSync } from 'node:fs';
import { readBounded } from '../kernel/read-bounded.js';
import { basename, join, resolve } from 'node:path';
import { aliasNormalize } from './names.js';
import { wrappedLines } from './config-lines.js';

/** kmod's default `modprobe.d` directories, in its order (first providing a file name wins). */
export const DEFAULT_CONFIG_DIRS: readonly string[] = [
  '/etc/modprobe.d',
  '/run/modprobe.d',
  '/usr/local/lib/modprobe.d',
  '/usr/lib/modprobe.d',
  '/lib/modprobe.d',
];

/** `alias PATTERN MODNAME` */
export interface ConfigAlias {
  readonly pattern: string;
  readonly module: string;
}

/** `options MODNAME OPTIONS` (tabs already turned into spaces, as kmod stores them) */
export interface ConfigOptions {
  readonly module: string;
  readonly options: string;
}

/** `install MODNAME CMD` / `remove MODNAME CMD` (the module may be a glob) */
export interface ConfigCommand {
  readonly module: string;
  readonly command: string;
}

/** `softdep MODNAME pre: A B post: C` (the module may be a glob) */
export interface ConfigSoftdep {
  readonly module: string;
  readonly pre: readonly string[];
  readonly post: readonly string[];
}

/** `weakdep MODNAME A B` */
export interface ConfigWeakdep {
  readonly module: string;
  readonly deps: readonly string[];
}

/** Everything modprobe.d and the kernel command line said, each list in reading order. */
export interface ModprobeConfig {
  readonly aliases: readonly ConfigAlias[];
  readonly blacklist: readonly string[];
  readonly options: readonly ConfigOptions[];
  readonly install: readonly ConfigCommand[];
  readonly remove: readonly ConfigCommand[];
  readonly softdeps: readonly ConfigSoftdep[];
  readonly weakdeps: readonly ConfigWeakdep[];
}

/**
 * Something kmod reports while reading its configuration. `fn` is the libkmod function that
 * reports it (kmod's default logger prints it: `libkmod: ERROR: kmod_config_parse: ...`).
 */
export type ConfigDiagnostic =
  /** `FILE line N: ignoring bad line starting with 'CMD'` */
  | { readonly kind: 'bad-line'; readonly fn: 'kmod_config_parse'; readonly file: string; readonly line: number; readonly command: string }
  /** `FILE: command CMD is deprecated and not parsed anymore` (`include`, `config`) */
  | { readonly kind: 'deprecated'; readonly fn: 'kmod_config_parse'; readonly file: string; readonly command: string }
  /** `Directories inside directories are not supported: DIR/NAME` */
  | { readonly kind: 'subdirectory'; readonly fn: 'conf_files_filter_out'; readonly file: string }
  /** `Cannot stat directory entry: DIR/NAME` */
  | { readonly kind: 'stat-failed'; readonly fn: 'conf_files_filter_out'; readonly file: string }
  /** `opendir(DIR): <strerror>` */
  | { readonly kind: 'opendir-failed'; readonly fn: 'conf_files_list'; readonly file: string; readonly code: string }
  /** `Ignoring bad option on kernel command line while parsing module name: 'NAME'` */
  | { readonly kind: 'bad-kcmdline-name'; readonly fn: 'kcmdline_parse_result'; readonly module: string };

/** Where to read the configuration from. */
export interface ConfigSources {
  /** the module directory (`ROOT/lib/modules/KVER`): its `modules.softdep`/`.weakdep` always count */
  readonly dirname: string;
  /** `-C` files or directories (as given); undefined = {@link DEFAULT_CONFIG_DIRS} under `root` */
  readonly paths?: readonly string[];
  /** system root for the default directories and `/proc/cmdline` (default `/`) */
  readonly root?: string;
  /** the kernel command line; undefined = read `ROOT/proc/cmdline` */
  readonly cmdline?: string;
}

const isSpace = (c: string) => c === ' ' || c === '\t' || c === '\n' || c === '\v' || c === '\f' || c === '\r';

/**
 * The word splitter of kmod's `kmod_config_add_softdep`/`_weakdep`, quirks included: when the
 * text starts with a separator, the first word keeps it (so `softdep m  pre: a` with two spaces
 * drops `pre:` and everything before the next `pre:`/`post:`).
 */
function depWords(line: string): string[] {
  const words: string[] = [];
  let p = 0;
  let wasSpace = false;
  for (let s = 0; ; s++) {
    const end = s >= line.length;
    if (!end) {
      if (!isSpace(line[s])) {
        wasSpace = false;
        continue;
      }
      if (wasSpace) {
        p = s + 1;
        continue;
      }
      wasSpace = true;
      if (p >= s) continue;
    }
    if (!end || !wasSpace) words.push(line.slice(p, s));
    p = s + 1;
    if (end) break;
  }
  return words;
}

function parseSoftdep(module: string, rest: string): ConfigSoftdep {
  const pre: string[] = [];
  const post: string[] = [];
  let mode: 'none' | 'pre' | 'post' = 'none';
  for (const w of depWords(rest)) {
    if (w === 'pre:') mode = 'pre';
    else if (w === 'post:') mode = 'post';
    else if (mode === 'pre') pre.push(w);
    else if (mode === 'post') post.push(w);
  }
  return { module, pre, post };
}

/** strtok_r(…, "\t ") one token: skip leading separators, cut at the next one. */
function token(s: string, from: number): { tok: string; next: number } | undefined {
  let i = from;
  while (i < s.length && (s[i] === ' ' || s[i] === '\t')) i++;
  if (i >= s.length) return undefined;
  let j = i;
  while (j < s.length && s[j] !== ' ' && s[j] !== '\t') j++;
  // strtok_r leaves the position after the one separator it overwrote
  return { tok: s.slice(i, j), next: j < s.length ? j + 1 : j };
}

/** strtok_r(NULL, "\0"): the rest after the last token's separator, or undefined when empty. */
function restOf(s: string, from: number): string | undefined {
  return from < s.length ? s.slice(from) : undefined;
}

interface MutableConfig {
  aliases: ConfigAlias[];
  blacklist: string[];
  options: ConfigOptions[];
  install: ConfigCommand[];
  remove: ConfigCommand[];
  softdeps: ConfigSoftdep[];
  weakdeps: ConfigWeakdep[];
}

function emptyConfig(): MutableConfig {
  return { aliases: [], blacklist: [], options: [], install: [], remove: [], softdeps: [], weakdeps: [] };
}

/**
 * Parse one configuration file's text into `config` (kmod's `kmod_config_parse`).
 * @param text the file's contents (latin1)
 * @param file the name used in diagnostics
 * @param config the lists to append to
 * @param diag receives what kmod would report
 */
function parseConfigText(text: string, file: string, config: MutableConfig, diag: ConfigDiagnostic[]): void {
  for (const [raw, number] of wrappedLines(text)) {
    // a C string: a NUL ends the line
    const nul = raw.indexOf('\0');
    const line = nul === -1 ? raw : raw.slice(0, nul);
    if (line === '' || line[0] === '#') continue;
    const first = token(line, 0);
    if (first === undefined) continue;
    const cmd = first.tok;
    const bad = () => diag.push({ kind: 'bad-line', fn: 'kmod_config_parse', file, line: number, command: cmd });
    const t2 = token(line, first.next);
    const name = t2 === undefined ? undefined : aliasNormalize(t2.tok);
    const rest = t2 === undefined ? undefined : restOf(line, t2.next);
    switch (cmd) {
      case 'alias': {
        const t3 = t2 === undefined ? undefined : token(line, t2.next);
        const module = t3 === undefined ? undefined : aliasNormalize(t3.tok);
        if (name === undefined || module === undefined) bad();
        else config.aliases.push({ pattern: name, module });
        break;
      }
      case 'blacklist':
        if (name === undefined) bad();
        else config.blacklist.push(name);
        break;
      case 'options':
        if (name === undefined || rest === undefined) bad();
        else config.options.push({ module: name, options: rest.replaceAll('\t', ' ') });
        break;
      case 'install':
      case 'remove':
        if (name === undefined || rest === undefined) bad();
        else config[cmd].push({ module: name, command: rest });
        break;
      case 'softdep':
        if (name === undefined || rest === undefined) bad();
        else config.softdeps.push(parseSoftdep(name, rest));
        break;
      case 'weakdep':
        if (name === undefined || rest === undefined) bad();
        else config.weakdeps.push({ module: name, deps: depWords(rest) });
        break;
      case 'include':
      case 'config':
        diag.push({ kind: 'deprecated', fn: 'kmod_config_parse', file, command: cmd });
        break;
      default:
        bad();
    }
  }
}

/**
 * kmod's `kmod_config_parse_kcmdline`: `MODULE.PARAM[=VALUE]` words of the kernel command line,
 * with its quoting rules (a leading `"` wrapping the whole word moves to the value).
 * @param text the contents of `/proc/cmdline`
 * @returns `[module, param]` pairs in order (module not yet underscored)
 * @example kernelCmdlineOptions('quiet foo-bar.baz=1 "parport.dyndbg=a b"')
 * // [['foo-bar', 'baz=1'], ['parport', 'dyndbg="a b"']]
 */
export function kernelCmdlineOptions(text: string): Array<[string, string]> {
  // read_str_safe reads at most KCMD_LINE_SIZE - 1 bytes (4096)
  const buf = text.slice(0, 4095);
  const out: Array<[string, string]> = [];
  type State = 'ignore' | 'modname' | 'param' | 'value' | 'complete';
  let state: State = 'modname';
  let quoted = false;
  let quoteStart = -1;
  let modname = 0;
  let param = -1;
  let value = -1;
  const chars = buf.split('');
  for (let p = 0; p <= chars.length; p++) {
    const c = p < chars.length ? chars[p] : '\0';
    switch (c) {
      case '"':
        quoted = !quoted;
        if (quoted && state === 'modname' && p === modname) {
          quoteStart = p;
          modname = p + 1;
        } else if (state !== 'value') state = 'ignore';
        break;
      case '\0':
      case ' ':
      case '\n':
      case '\t':
      case '\v':
      case '\f':
      case '\r':
        if (quoted && state === 'value') {
          // spaces inside a quoted value
        } else if (quoted) state = 'ignore';
        else if (state === 'value' || state === 'param') {
          state = 'complete';
        } else {
          modname = p + 1;
          state = 'modname';
          quoteStart = -1;
        }
        break;
      case '.':
        if (state === 'modname') {
          param = p + 1;
          state = 'param';
        } else if (state === 'param') state = 'ignore';
        break;
      case '=':
        if (state === 'param') {
          value = p + 1;
          state = 'value';
        } else if (state === 'modname') state = 'ignore';
        break;
    }
    if (state === 'complete') {
      const mod = chars.slice(modname, param - 1).join('');
      let prm = chars.slice(param, p).join('');
      // grub passes "mod.p=a b" for mod.p="a b": the opening quote moves to the value, the
      // closing one stays where it is
      if (quoteStart !== -1 && quoteStart < modname) prm = `${prm.slice(0, value - param)}"${prm.slice(value - param)}`;
      out.push([mod, prm]);
      modname = p + 1;
      state = 'modname';
      quoteStart = -1;
    }
    if (c === '\0') break;
  }
  return out;
}

function addKcmdline(text: string, config: MutableConfig, diag: ConfigDiagnostic[]): void {
  for (const [mod, param] of kernelCmdlineOptions(text)) {
    if (mod === 'modprobe' && param.startsWith('blacklist=')) {
      for (const b of param.slice('blacklist='.length).split(',')) config.blacklist.push(b);
      continue;
    }
    const name = aliasNormalize(mod);
    if (name === undefined) diag.push({ kind: 'bad-kcmdline-name', fn: 'kcmdline_parse_result', module: mod });
    else config.options.push({ module: name, options: param });
  }
}

interface ConfFile {
  /** the directory, or the file itself when single */
  path: string;
  name: string;
  single: boolean;
}

/** kmod's `conf_files_insert_sorted`: by strcmp of the name; an existing name wins. */
function insertSorted(list: ConfFile[], f: ConfFile): void {
  let i = 0;
  while (i < list.length && list[i].name < f.name) i++;
  if (i < list.length && list[i].name === f.name) return;
  list.splice(i, 0, f);
}

function isDir(path: string): boolean | undefined {
  try {
    return statSync(path).isDirectory();
  } catch {
    return undefined;
  }
}

/** Directory entries in readdir order (kmod walks them unsorted; the sort is by name anyway). */
function listDir(path: string): string[] | NodeJS.ErrnoException {
  let d;
  try {
    d = opendirSync(path);
  } catch (e) {
    return e as NodeJS.ErrnoException;
  }
  const names: string[] = [];
  try {
    for (let e = d.readSync(); e !== null; e = d.readSync()) names.push(e.name);
  } finally {
    d.closeSync();
  }
  return names;
}

function readText(path: string): string | undefined {
  try {
    // bounded, regular files only: a FIFO or /dev/zero in modprobe.d must not hang or fill memory
    return readBounded(path).toString('latin1');
  } catch {
    return undefined;
  }
}

function readCmdline(root: string): string | undefined {
  let fd: number;
  try {
    fd = openSync(join(root, 'proc/cmdline'), constants.O_RDONLY | constants.O_NONBLOCK); // a FIFO must not hang the open
  } catch {
    return undefined;
  }
  try {
    const buf = Buffer.alloc(4096);
    const n = readSync(fd, buf, 0, 4095, null);
    return buf.toString('latin1', 0, n);
  } catch {
    return undefined;
  } finally {
    closeSync(fd);
  }
}

/**
 * Read modprobe's configuration the way kmod 34.2 does: `modules.softdep` and `modules.weakdep`
 * from the module directory and every `*.conf` of the configuration directories (or `-C`
 * paths), sorted by file name across all of them with the first directory providing a name
 * winning; then the kernel command line.
 * @param src the module directory, `-C` paths, root, kernel command line
 * @returns the configuration and what kmod would have reported while reading it
 * @example
 * const { config } = readModprobeConfig({ dirname: '/lib/modules/6.12.0', paths: ['/etc/modprobe.d'] });
 * config.softdeps.find((s) => s.module === 'btrfs')?.pre // ['blake2b-256']
 */
export function readModprobeConfig(src: ConfigSources): { config: ModprobeConfig; diagnostics: ConfigDiagnostic[] } {
  const root = src.root ?? '/';
  const diag: ConfigDiagnostic[] = [];
  const files: ConfFile[] = [];
  const dirname = resolve(src.dirname);
  insertSorted(files, { path: dirname, name: 'modules.softdep', single: false });
  insertSorted(files, { path: dirname, name: 'modules.weakdep', single: false });
  const paths = src.paths ?? DEFAULT_CONFIG_DIRS.map((d) => join(root, d));
  for (const path of paths) {
    const dir = isDir(path);
    if (dir === undefined) continue;
    if (!dir) {
      insertSorted(files, { path, name: basename(path), single: true });
      continue;
    }
    const names = listDir(path);
    if (!Array.isArray(names)) {
      diag.push({ kind: 'opendir-failed', fn: 'conf_files_list', file: path, code: names.code ?? 'EIO' });
      continue;
    }
    for (const name of names) {
      if (name.startsWith('.') || name.length < 6 || !name.endsWith('.conf')) continue;
      const sub = isDir(`${path}/${name}`);
      if (sub === undefined) {
        diag.push({ kind: 'stat-failed', fn: 'conf_files_filter_out', file: `${path}/${name}` });
        continue;
      }
      if (sub) {
        diag.push({ kind: 'subdirectory', fn: 'conf_files_filter_out', file: `${path}/${name}` });
        continue;
      }
      insertSorted(files, { path, name, single: false });
    }
  }
  const config = emptyConfig();
  for (const f of files) {
    const file = f.single ? f.path : `${f.path}/${f.name}`;
    const text = readText(file);
    if (text !== undefined) parseConfigText(text, file, config, diag);
  }
  const cmdline = src.cmdline ?? readCmdline(root);
  if (cmdline !== undefined) addKcmdline(cmdline, config, diag);
  return { config, diagnostics: diag };
}

/**
 * Parse configuration text alone (one file's worth), for tests and tools.
 * @param text modprobe.d syntax
 * @param file the name diagnostics carry
 * @returns the configuration and diagnostics
 * @example parseModprobeConfig('alias my-dev dummy\n').config.aliases // [{ pattern: 'my_dev', module: 'dummy' }]
 */
export function parseModprobeConfig(text: string, file = 'modprobe.conf'): { config: ModprobeConfig; diagnostics: ConfigDiagnostic[] } {
  const config = emptyConfig();
  const diagnostics: ConfigDiagnostic[] = [];
  parseConfigText(text, file, config, diagnostics);
  return { config, diagnostics };
}

/**
 * The value kmod's `-c` prints for a softdep: `pre: A B` then `post: C` with no space between
 * (kept for parity), or empty.
 * @param s the softdep
 * @returns the printed value
 * @example softdepText({ module: 'm', pre: ['a'], post: ['b'] }) // 'pre: apost: b'
 */
export function softdepText(s: ConfigSoftdep): string {
  return (s.pre.length ? `pre: ${s.pre.join(' ')}` : '') + (s.post.length ? `post: ${s.post.join(' ')}` : '');
}

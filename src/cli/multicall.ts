/**
 * The multi-call binary's own logic: which applet a start-up name means, and `--install`.
 *
 * @module
 */
import { lstatSync, readlinkSync, realpathSync, symlinkSync, unlinkSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import type { OptionSpec } from './options.js';

/**
 * The options of `kmod-ts` itself (not of an applet), for its help, completion and man page;
 * the dispatcher acts on them before any applet or yargs is loaded.
 */
export const MULTICALL_OPTIONS: readonly OptionSpec[] = [
  { key: 'list', long: 'list', help: 'list the applets, one per line' },
  { key: 'install', long: 'install', arg: 'DIR', help: 'create DIR/APPLET links to kmod-ts for every applet' },
  { key: 'force', short: 'f', long: 'force', help: 'with --install: replace files that are not links to kmod-ts' },
  { key: 'target', long: 'target', arg: 'PATH', help: 'with --install: what the links point to (default: this kmod-ts)' },
  { key: 'version', short: 'V', long: 'version', help: 'show version and features' },
  { key: 'help', short: 'h', long: 'help', help: 'show this help' },
];

/** Names under which the program is itself, not an applet. */
const SELF_NAMES = /^(kmod-ts|entry|cli|main)(\.[cm]?js)?$/;

/**
 * What the program was started as.
 * @param argv0 the path it was started as (`process.argv[1]`, which keeps a symlink's own name)
 * @returns `{ multicall: true }` for kmod-ts itself, else the applet name from the basename
 * @example startName('/sbin/insmod') // { multicall: false, name: 'insmod' }
 */
export function startName(argv0: string): { multicall: true } | { multicall: false; name: string } {
  const base = basename(argv0);
  if (SELF_NAMES.test(base)) return { multicall: true };
  return { multicall: false, name: base.replace(/\.[cm]?js$/, "") };
}

/** The outcome of installing one link. */
export interface InstallResult {
  readonly name: string;
  readonly path: string;
  /** `created`, `kept` (already ours), `replaced` (forced), or `refused` (a file that is not ours) */
  readonly status: 'created' | 'kept' | 'replaced' | 'refused';
}

function isOurs(path: string, target: string): boolean {
  try {
    if (!lstatSync(path).isSymbolicLink()) return false;
    const link = readlinkSync(path);
    return link === target || realpathSync(path) === realpathSync(target);
  } catch {
    return false;
  }
}

/**
 * Create `DIR/NAME → target` for every applet, like `busybox --install -s`. A file that is not
 * already a link to us is left alone unless `force`.
 * @param dir the directory to create links in
 * @param names applet names
 * @param target what the links point to (the kmod-ts entry point)
 * @param force replace files that are not ours
 * @returns one result per name
 * @throws {NodeJS.ErrnoException} when a link cannot be created (missing directory, EACCES)
 * @example installLinks('/sbin', ['insmod', 'lsmod', 'rmmod'], '/usr/bin/kmod-ts', false)
 */
export function installLinks(dir: string, names: readonly string[], target: string, force: boolean): InstallResult[] {
  return names.map((name) => {
    const path = join(dir, name);
    let exists = false;
    try {
      lstatSync(path);
      exists = true;
    } catch {
      // free
    }
    if (exists && isOurs(path, target)) return { name, path, status: 'kept' };
    if (exists && !force) return { name, path, status: 'refused' };
    if (exists) unlinkSync(path);
    symlinkSync(target, path);
    return { name, path, status: exists ? 'replaced' : 'created' };
  });
}

/**
 * The path links should point to: the entry point as started, made absolute.
 * @param argv0 `process.argv[1]`
 * @returns an absolute path
 * @example selfPath('bin/kmod-ts.js') // '/work/main/bin/kmod-ts.js'
 */
export function selfPath(argv0: string): string {
  return resolve(argv0);
}

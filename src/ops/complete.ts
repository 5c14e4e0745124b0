/**
 * The words a shell completes for an applet's operands: loaded modules (`rmmod`,
 * `modprobe -r`), module names and aliases of a module database (`modprobe`, `modinfo`), module
 * files (`insmod`), kernel versions (`depmod`, `-S`, `-k`).
 *
 * @module
 */
import { readdirSync, statSync } from 'node:fs';
import os from 'node:os';
import { moduleDirectories, ModuleDb } from '../db/module-db.js';
import { readProcModules } from '../kernel/proc-modules.js';

/** What an operand of an applet is. */
export type OperandKind = 'loaded-module' | 'module' | 'module-file' | 'kernel-version';

/** Where to look. */
export interface CompleteOptions {
  /** system root for /proc/modules and /lib/modules (default `/`) */
  root?: string;
  /** a base directory given on the command line (`modprobe -d`, `modinfo -b`): replaces `root` for /lib/modules */
  baseDir?: string;
  /** a kernel version given on the command line (`-S`, `-k`); default the running kernel's */
  kernelVersion?: string;
}

const MODULE_FILE = /\.ko(\.(gz|xz|zst))?$/;

function entries(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

function isDir(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

/**
 * The candidates for one operand, those starting with `current`.
 * @param kind what the operand is
 * @param current the word typed so far
 * @param opts root, base directory and kernel version
 * @returns the candidates, sorted, without duplicates; [] when there is nothing to offer (the
 *   shell then completes file names)
 * @example completeOperand('module', 'vf', { root: '/' }) // ['vfat']
 */
export function completeOperand(kind: OperandKind, current: string, opts: CompleteOptions = {}): string[] {
  const root = opts.root ?? '/';
  let words: string[];
  switch (kind) {
    case 'loaded-module':
      try {
        words = readProcModules(root).map((m) => m.name);
      } catch {
        words = [];
      }
      break;
    case 'module': {
      const kver = opts.kernelVersion || os.release();
      const dir = moduleDirectories(opts.baseDir ?? root).map((d) => `${d}/${kver}`).find(isDir);
      if (dir === undefined) return [];
      const db = new ModuleDb(dir);
      words = [...db.names(), ...db.plainAliases()];
      break;
    }
    case 'kernel-version':
      words = moduleDirectories(opts.baseDir ?? root).flatMap((d) => entries(d).filter((v) => isDir(`${d}/${v}`)));
      break;
    case 'module-file': {
      // relative to the working directory, like the shell's own file completion
      const slash = current.lastIndexOf('/');
      const prefix = current.slice(0, slash + 1);
      const dir = prefix === '' ? '.' : prefix;
      words = [];
      for (const e of entries(dir)) {
        if (e.startsWith('.') && !current.slice(slash + 1).startsWith('.')) continue;
        if (isDir(`${dir}/${e}`)) words.push(`${prefix}${e}/`);
        else if (MODULE_FILE.test(e)) words.push(`${prefix}${e}`);
      }
      break;
    }
  }
  return [...new Set(words.filter((w) => w.startsWith(current)))].sort();
}

/**
 * The composition root: argv → applet → exit status. The only importer of `applets/`.
 *
 * @module
 */
import { statSync } from 'node:fs';
import { basename } from 'node:path';
import type { Applet, AppletContext, Output } from './applet.js';
import { errnoFromCode, strerror } from '../kernel/errno.js';
import { installLinks, selfPath, startName } from './multicall.js';
import { nativeSyscalls, type Syscalls } from '../kernel/syscalls.js';
import { versionText } from './version.js';

/** The applets, sorted by name; each loaded only when run (its module has no side effects). */
export const APPLETS: Readonly<Record<string, () => Promise<Applet>>> = {
  depmod: async () => (await import('../../applets/depmod.js')).default,
  insmod: async () => (await import('../../applets/insmod.js')).default,
  lsmod: async () => (await import('../../applets/lsmod.js')).default,
  modinfo: async () => (await import('../../applets/modinfo.js')).default,
  modprobe: async () => (await import('../../applets/modprobe.js')).default,
  rmmod: async () => (await import('../../applets/rmmod.js')).default,
};

/** The applet names, sorted. */
export const APPLET_NAMES: readonly string[] = Object.keys(APPLETS).sort();


/** What {@link main} reads and writes. */
export interface MainIO {
  stdout: Output;
  stderr: Output;
  env: Readonly<Record<string, string | undefined>>;
  /** system root (default: `KMOD_TS_SYSROOT` or `/`) */
  root?: string;
  /** syscall layer (default: the real one) */
  sys?: Syscalls;
  /** told which applet runs, just before it is loaded (the entry point tunes the process for it) */
  onApplet?: (name: string) => void;
}

/**
 * Run the program.
 * @param argv `process.argv.slice(1)`: the path it was started as, then the arguments
 * @param io streams, environment, and optional root and syscall layer
 * @returns the exit status
 * @example process.exitCode = await main(process.argv.slice(1), { stdout: process.stdout, stderr: process.stderr, env: process.env })
 */
export async function main(argv: readonly string[], io: MainIO): Promise<number> {
  const [argv0 = 'kmod-ts', ...rest] = argv;
  const start = startName(argv0);
  let prog: string;
  let args: readonly string[];
  if (start.multicall) {
    const [first, ...more] = rest;
    switch (first) {
      case '-V':
      case '--version':
        io.stdout.write(versionText());
        return 0;
      case '--list':
        io.stdout.write(APPLET_NAMES.map((n) => `${n}\n`).join(''));
        return 0;
      case '--install':
        return install(argv0, more, io);
    }
    if (first === undefined || !Object.hasOwn(APPLETS, first)) {
      // help, completion, unknown commands: the yargs surface, loaded only here
      const { surface } = await import('./surface.js');
      const applets = await Promise.all(APPLET_NAMES.map((n) => APPLETS[n]()));
      return surface({ args: rest, applets, stdout: io.stdout, stderr: io.stderr, env: io.env, root: io.root ?? (io.env.KMOD_TS_SYSROOT || '/') });
    }
    prog = first;
    args = more;
  } else {
    if (!Object.hasOwn(APPLETS, start.name)) {
      io.stderr.write(`kmod-ts: ERROR: unknown command '${start.name}'\n`);
      return 127;
    }
    prog = start.name;
    args = rest;
  }
  const ctx: AppletContext = {
    prog,
    args,
    stdout: io.stdout,
    stderr: io.stderr,
    env: io.env,
    root: io.root ?? (io.env.KMOD_TS_SYSROOT || '/'),
    cwd: currentDir(io.env.PWD),
    sys: io.sys ?? nativeSyscalls(),
  };
  io.onApplet?.(prog);
  try {
    return await (await APPLETS[prog]()).run(ctx);
  } catch (err) {
    // An exception that reaches here is a bug in kmod-ts, not a user error.
    const e = err as Error;
    io.stderr.write(`kmod-ts: BUG: ${e?.message ?? String(err)}\n`);
    if (io.env.KMOD_TS_DEBUG === '1' && e?.stack) io.stderr.write(`${e.stack}\n`);
    return 1;
  }
}

/** glibc's `get_current_dir_name()`: `$PWD` when it names the same directory as `.`, else `getcwd()`. */
function currentDir(pwd: string | undefined): string {
  const cwd = process.cwd();
  if (!pwd || !pwd.startsWith('/')) return cwd;
  try {
    const a = statSync(pwd);
    const b = statSync('.');
    return a.dev === b.dev && a.ino === b.ino ? pwd : cwd;
  } catch {
    return cwd;
  }
}

function install(argv0: string, args: readonly string[], io: MainIO): number {
  let dir: string | undefined;
  let force = false;
  let target = selfPath(argv0);
  for (let i = 0; i < args.length; i++) {
    if (args[i] === '--force' || args[i] === '-f') force = true;
    else if (args[i] === '--target' && i + 1 < args.length) target = args[++i];
    else if (dir === undefined && !args[i].startsWith('-')) dir = args[i];
    else {
      io.stderr.write(`kmod-ts: ERROR: unexpected argument '${args[i]}' to --install\n`);
      return 1;
    }
  }
  if (dir === undefined) {
    io.stderr.write('kmod-ts: ERROR: --install needs a directory\n');
    return 1;
  }
  let status = 0;
  try {
    for (const r of installLinks(dir, APPLET_NAMES, target, force)) {
      if (r.status === 'refused') {
        io.stderr.write(`kmod-ts: ERROR: ${r.path} exists and is not a link to ${basename(target)} (use --force to replace it)\n`);
        status = 1;
      }
    }
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    const errno = e.code ? errnoFromCode(e.code) : undefined;
    io.stderr.write(`kmod-ts: ERROR: cannot install links in ${dir}: ${errno ? strerror(errno) : e.message}\n`);
    return 1;
  }
  return status;
}

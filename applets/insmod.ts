/**
 * insmod — insert one module file into the kernel, with kmod's words and exit codes.
 */
import type { Applet, AppletContext } from '../src/cli/applet.js';
import { Errno, strerror } from '../src/kernel/errno.js';
import { ModuleFileError, SyscallError, UsageError } from '../src/errors.js';
import { loadModule } from '../src/ops/load-module.js';
import { HELP, parseCommandLine, SYSLOG, VERBOSE, VERSION, type AppletSpec } from '../src/cli/options.js';
import { loadOptionsFromEnv, reporter } from './common.js';

/** insmod's command line. */
export const spec = {
  name: 'insmod',
  summary: 'insert a module file into the kernel',
  usage: '[options] filename [args]',
  options: [
    {
      key: 'force',
      short: 'f',
      long: 'force',
      help: 'ignore symbol versions and vermagic (strips them in userspace\non the init_module paths; finit_module flags 1|2 otherwise)',
    },
    { key: 'forceModversion', long: 'force-modversion', help: 'ignore symbol version hashes only' },
    { key: 'forceVermagic', long: 'force-vermagic', help: 'ignore the vermagic string only' },
    { ...SYSLOG, help: 'print messages to syslog instead of stderr' },
    { ...VERBOSE, help: 'say which loading path was taken' },
    VERSION,
    HELP,
  ],
  environment: [
    { name: 'KMOD_TS_PATH=finit|mmap|read', help: 'force a loading path' },
    { name: 'KMOD_TS_MAX_SIZE=BYTES', help: 'cap on the decompressed size (default 1 GiB)' },
    { name: 'KMOD_TS_XZ=liblzma|stream', help: "xz's decoder: liblzma directly (default), or lzma-native's stream binding" },
  ],
} as const satisfies AppletSpec;

/**
 * kmod's `mod_strerror`: the kernel's errno for a refused module, in insmod's words.
 */
const REASONS: Readonly<Record<number, string>> = {
  [Errno.ENOEXEC]: 'Invalid module format',
  [Errno.ENOENT]: 'Unknown symbol in module',
  [Errno.ESRCH]: 'Module has wrong symbol version',
  [Errno.EINVAL]: 'Invalid parameters',
};

function reason(errno: number): string {
  return REASONS[errno] ?? strerror(errno);
}

async function run(ctx: AppletContext): Promise<number> {
  const cl = parseCommandLine(ctx, spec);
  if ('exit' in cl) return cl.exit;
  const flags = cl.options;
  const say = reporter(ctx, flags);
  const [file, ...args] = cl.operands;
  if (file === undefined) {
    say.error('missing filename.');
    return 1;
  }
  if (file === '-') {
    say.error('this tool does not support loading from stdin!');
    return 1;
  }
  const env = loadOptionsFromEnv(ctx);
  if (env.error !== undefined) {
    say.error(env.error);
    return 1;
  }
  try {
    const result = await loadModule(file, {
      params: args,
      force: flags.force,
      forceModversion: flags.forceModversion,
      forceVermagic: flags.forceVermagic,
      ...env.options,
      root: ctx.root,
      sys: ctx.sys,
      onInfo: say.info,
    });
    say.info(`loaded ${file} via ${result.via}`);
    return 0;
  } catch (err) {
    for (const line of describe(file, err)) say.error(line);
    return 1;
  }
}

/** The error lines for a failed load, kmod's wording where users depend on it. */
function describe(file: string, err: unknown): string[] {
  const insert = (why: string) => `could not insert module ${file}: ${why}`;
  if (err instanceof SyscallError) return [insert(err.why ?? reason(err.errno))];
  if (err instanceof UsageError) return [err.message];
  if (!(err instanceof ModuleFileError)) throw err;
  switch (err.kind) {
    case 'open':
      return [`could not load module ${file}: ${strerror(err.errno)}`];
    case 'decompress':
      // kmod reports every decompression failure as "Invalid parameters"; say what it is.
      return [`${err.format}: ${err.message}`, insert(reason(err.errno))];
    case 'no-vermagic':
      return [insert(`${err.message}: ${strerror(err.errno)}`)];
    default:
      return [insert(reason(err.errno))];
  }
}

/** The insmod applet. */
const insmod: Applet = { ...spec, run };
export default insmod;

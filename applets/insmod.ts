/**
 * insmod — insert one module file into the kernel, with kmod's words and exit codes.
 */
import type { Applet, AppletContext } from '../src/cli/applet.js';
import { strerror } from '../src/kernel/errno.js';
import { ModuleFileError, SyscallError, UsageError } from '../src/errors.js';
import { loadModule, LOAD_PATHS, type LoadPath } from '../src/ops/load-module.js';
import { LOG_OPTIONS, parseArgs, positionals, reporter, type CommonFlags, type OptionSpec } from './common.js';

const USAGE = `Usage:
\tPROG [options] filename [args]
Options:
\t-f, --force              ignore symbol versions and vermagic (strips them in userspace
\t                         on the init_module paths; finit_module flags 1|2 otherwise)
\t    --force-modversion   ignore symbol version hashes only
\t    --force-vermagic     ignore the vermagic string only
\t-s, --syslog             print messages to syslog instead of stderr
\t-v, --verbose            say which loading path was taken
\t-V, --version            show version
\t-h, --help               show this help
Environment:
\tKMOD_TS_PATH=finit|mmap|read   force a loading path
\tKMOD_TS_MAX_SIZE=BYTES         cap on the decompressed size (default 1 GiB)
`;

const OPTIONS: readonly OptionSpec[] = [
  ...LOG_OPTIONS,
  { long: 'force', short: 'f', type: 'boolean' },
  { long: 'force-modversion', type: 'boolean' },
  { long: 'force-vermagic', type: 'boolean' },
];

interface Flags extends CommonFlags {
  force?: boolean;
  'force-modversion'?: boolean;
  'force-vermagic'?: boolean;
}

/**
 * kmod's `mod_strerror`: the kernel's errno for a refused module, in insmod's words.
 */
const REASONS: Readonly<Record<number, string>> = {
  8: 'Invalid module format', // ENOEXEC
  2: 'Unknown symbol in module', // ENOENT
  3: 'Module has wrong symbol version', // ESRCH
  22: 'Invalid parameters', // EINVAL
};

function reason(errno: number): string {
  return REASONS[errno] ?? strerror(errno);
}

async function run(ctx: AppletContext): Promise<number> {
  const parsed = parseArgs<Flags>(ctx, USAGE, OPTIONS);
  if ('exit' in parsed) return parsed.exit;
  const { flags } = parsed;
  const say = reporter(ctx, flags);
  const [file, ...args] = positionals(flags);
  if (file === undefined) {
    say.error('missing filename.');
    return 1;
  }
  if (file === '-') {
    say.error('this tool does not support loading from stdin!');
    return 1;
  }
  const forced = ctx.env.KMOD_TS_PATH;
  if (forced !== undefined && forced !== '' && !LOAD_PATHS.includes(forced as LoadPath)) {
    say.error(`KMOD_TS_PATH must be one of ${LOAD_PATHS.join(', ')}, not '${forced}'`);
    return 1;
  }
  const maxSize = ctx.env.KMOD_TS_MAX_SIZE;
  if (maxSize !== undefined && maxSize !== '' && !/^\d+$/.test(maxSize)) {
    say.error(`KMOD_TS_MAX_SIZE must be a number of bytes, not '${maxSize}'`);
    return 1;
  }
  try {
    const result = await loadModule(file, {
      params: args,
      force: flags.force,
      forceModversion: flags['force-modversion'],
      forceVermagic: flags['force-vermagic'],
      path: forced ? (forced as LoadPath) : undefined,
      maxSize: maxSize ? Number(maxSize) : undefined,
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
  if (err instanceof SyscallError) return [insert(reason(err.errno))];
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
const insmod: Applet = { name: 'insmod', summary: 'insert a module file into the kernel', run };
export default insmod;

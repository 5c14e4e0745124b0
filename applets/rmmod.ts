/**
 * rmmod — remove modules from the kernel, with kmod's checks, words and exit codes.
 */
import type { Applet, AppletContext } from '../src/cli/applet.js';
import { strerror } from '../src/kernel/errno.js';
import { ModuleStateError, SyscallError, type ModuleStateKind } from '../src/errors.js';
import { removeModule } from '../src/ops/remove-module.js';
import { LOG_OPTIONS, parseArgs, positionals, reporter, type CommonFlags } from './common.js';

const USAGE = `Usage:
\tPROG [options] modulename ...
Options:
\t-f, --force       forces a module unload and may crash your
\t                  machine. This requires Forced Module Removal
\t                  option in your kernel. DANGEROUS
\t-s, --syslog      print to syslog, not stderr
\t-v, --verbose     enables more messages
\t-V, --version     show version
\t-h, --help        show this help
`;

interface Flags extends CommonFlags {
  force?: boolean;
}

/** rmmod's words for each state that forbids removal. */
const STATE_MESSAGES: Readonly<Record<ModuleStateKind, (e: ModuleStateError) => string>> = {
  builtin: (e) => `Module ${e.module} is builtin.`,
  'not-loaded': (e) => `Module ${e.module} is not currently loaded`,
  'in-use-by': (e) => `Module ${e.module} is in use by: ${e.holders.join(' ')}`,
  'in-use': (e) => `Module ${e.module} is in use`,
  'no-unload': () => 'Module unloading is not supported',
};

async function run(ctx: AppletContext): Promise<number> {
  const parsed = parseArgs<Flags>(ctx, USAGE, [...LOG_OPTIONS, { long: 'force', short: 'f', type: 'boolean' }]);
  if ('exit' in parsed) return parsed.exit;
  const { flags } = parsed;
  const say = reporter(ctx, flags);
  const names = positionals(flags);
  if (names.length === 0) {
    say.error('missing module name.');
    return 1;
  }
  let status = 0;
  for (const arg of names) {
    try {
      const name = await removeModule(arg, { force: flags.force, root: ctx.root, sys: ctx.sys });
      say.info(`removed ${name}`);
    } catch (err) {
      if (err instanceof ModuleStateError) say.error(STATE_MESSAGES[err.kind](err));
      else if (err instanceof SyscallError) say.error(`could not remove module ${arg}: ${strerror(err.errno)}`);
      else throw err;
      status = 1;
    }
  }
  return status;
}

/** The rmmod applet. */
const rmmod: Applet = { name: 'rmmod', summary: 'remove modules from the kernel', run };
export default rmmod;

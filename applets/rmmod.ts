/**
 * rmmod — remove modules from the kernel, with kmod's checks, words and exit codes.
 */
import type { Applet, AppletContext } from '../src/cli/applet.js';
import { strerror } from '../src/kernel/errno.js';
import { ModuleStateError, SyscallError, type ModuleStateKind } from '../src/errors.js';
import { removeModule } from '../src/ops/remove-module.js';
import { HELP, parseCommandLine, SYSLOG, VERBOSE, VERSION, type AppletSpec } from '../src/cli/options.js';
import { reporter } from './common.js';

/** rmmod's command line. */
export const spec = {
  name: 'rmmod',
  summary: 'remove modules from the kernel',
  usage: '[options] modulename ...',
  options: [
    {
      key: 'force',
      short: 'f',
      long: 'force',
      help: 'forces a module unload and may crash your\nmachine. This requires Forced Module Removal\noption in your kernel. DANGEROUS',
    },
    SYSLOG,
    VERBOSE,
    VERSION,
    HELP,
  ],
} as const satisfies AppletSpec;

/** rmmod's words for each state that forbids removal. */
const STATE_MESSAGES: Readonly<Record<ModuleStateKind, (e: ModuleStateError) => string>> = {
  builtin: (e) => `Module ${e.module} is builtin.`,
  'not-loaded': (e) => `Module ${e.module} is not currently loaded`,
  'in-use-by': (e) => `Module ${e.module} is in use by: ${e.holders.join(' ')}`,
  'in-use': (e) => `Module ${e.module} is in use`,
  'no-unload': () => 'Module unloading is not supported',
};

async function run(ctx: AppletContext): Promise<number> {
  const cl = parseCommandLine(ctx, spec);
  if ('exit' in cl) return cl.exit;
  const flags = cl.options;
  const say = reporter(ctx, flags);
  const names = cl.operands;
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
      else if (err instanceof SyscallError) say.error(`could not remove module ${arg}: ${err.why ?? strerror(err.errno)}`);
      else throw err;
      status = 1;
    }
  }
  return status;
}

/** The rmmod applet. */
const rmmod: Applet = { ...spec, run };
export default rmmod;

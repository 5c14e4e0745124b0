/**
 * lsmod — the loaded modules in kmod's exact format.
 */
import type { Applet, AppletContext } from '../src/cli/applet.js';
import { errnoFromCode, strerror, Errno } from '../src/kernel/errno.js';
import { listModules, type LoadedModule } from '../src/ops/list-modules.js';
import { LOG_OPTIONS, parseArgs, positionals, reporter, type CommonFlags } from './common.js';

const USAGE = `Usage:
\tPROG [options]
Options:
\t-s, --syslog      print to syslog, not stderr
\t-v, --verbose     enables more messages
\t-V, --version     show version
\t-h, --help        show this help
Environment:
\tKMOD_TS_SYSROOT=DIR   read DIR/proc/modules and DIR/sys/module instead of the live system
`;

/** One row as C `"%-19s %8ld  %d"`, then ` h1,h2` when there are holders. */
export function formatRow(m: LoadedModule): string {
  const holders = m.holders.length > 0 ? ` ${m.holders.join(',')}` : '';
  return `${m.name.padEnd(19)} ${String(m.size).padStart(8)}  ${m.refcnt}${holders}\n`;
}

async function run(ctx: AppletContext): Promise<number> {
  const parsed = parseArgs<CommonFlags>(ctx, USAGE, LOG_OPTIONS);
  if ('exit' in parsed) return parsed.exit;
  const say = reporter(ctx, parsed.flags);
  if (positionals(parsed.flags).length > 0) {
    say.error('too many arguments provided.');
    return 1;
  }
  let modules: LoadedModule[];
  try {
    modules = listModules({ root: ctx.root });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    say.error(`could not open /proc/modules: ${strerror((code && errnoFromCode(code)) || Errno.EIO)}`);
    return 1;
  }
  ctx.stdout.write(`Module                  Size  Used by\n${modules.map(formatRow).join('')}`);
  return 0;
}

/** The lsmod applet. */
const lsmod: Applet = { name: 'lsmod', summary: 'show the loaded modules', run };
export default lsmod;

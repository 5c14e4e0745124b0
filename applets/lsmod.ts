/**
 * lsmod — the loaded modules in kmod's exact format.
 */
import type { Applet, AppletContext } from '../src/cli/applet.js';
import { errnoFromCode, strerror, Errno } from '../src/kernel/errno.js';
import { listModules, type LoadedModule } from '../src/ops/list-modules.js';
import { HELP, parseCommandLine, SYSLOG, VERBOSE, VERSION, type AppletSpec } from '../src/cli/options.js';
import { reporter, toJson } from './common.js';

/** lsmod's command line. */
export const spec = {
  name: 'lsmod',
  summary: 'show the loaded modules',
  usage: '[options]',
  options: [{ key: 'json', long: 'json', help: 'print the modules as JSON', extension: true }, SYSLOG, VERBOSE, VERSION, HELP],
  environment: [{ name: 'KMOD_TS_SYSROOT=DIR', help: 'read DIR/proc/modules and DIR/sys/module instead of the live system' }],
} as const satisfies AppletSpec;

/** One row as C `"%-19s %8ld  %d"`, then ` h1,h2` when there are holders. */
export function formatRow(m: LoadedModule): string {
  const holders = m.holders.length > 0 ? ` ${m.holders.join(',')}` : '';
  return `${m.name.padEnd(19)} ${String(m.size).padStart(8)}  ${m.refcnt}${holders}\n`;
}

async function run(ctx: AppletContext): Promise<number> {
  const cl = parseCommandLine(ctx, spec);
  if ('exit' in cl) return cl.exit;
  const say = reporter(ctx, cl.options);
  if (cl.operands.length > 0) {
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
  // --json: listModules()'s objects as they are (name, size, refcnt, holders, state, address, taint)
  if (cl.options.json) ctx.stdout.write(toJson(modules));
  else ctx.stdout.write(`Module                  Size  Used by\n${modules.map(formatRow).join('')}`);
  return 0;
}

/** The lsmod applet. */
const lsmod: Applet = { ...spec, run };
export default lsmod;

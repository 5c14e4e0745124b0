/**
 * depmod — kmod 34.2's command line (tools/depmod.c) over {@link depmod}: the option table, usage
 * text, GNU getopt_long parsing with glibc's messages, and kmod's message format
 * (`depmod: ERROR: ...`, `depmod: FATAL: ...`), filtered by `-v` as kmod's log priority is.
 */
import type { Applet, AppletContext } from '../src/cli/applet.js';
import { HELP, parseOptions, VERSION, type AppletSpec } from '../src/cli/options.js';
import { versionText } from '../src/cli/version.js';
import { depmod, DepmodError, DEPMOD_TEXT_FILES, isVersionNumber, type DepmodMessage, type DepmodOptions } from '../src/ops/depmod.js';

/** kmod 34.2's depmod command line (`aAb:m:o:C:E:F:evnP:wVh`). */
export const spec = {
  name: 'depmod',
  summary: 'generate modules.dep and the module index files',
  usage: '-[aA] [options] [forced_version]',
  // kmod's cmdopts order (glibc lists ambiguous prefixes in it); -h prints kmod's own text
  options: [
    { key: 'all', short: 'a', long: 'all', help: 'Probe all modules' },
    { key: 'quick', short: 'A', long: 'quick', help: "Only does the work if there's a new module" },
    { key: 'basedir', short: 'b', long: 'basedir', arg: 'DIR', help: 'Root path (default: /).' },
    { key: 'moduledir', short: 'm', long: 'moduledir', arg: 'DIR', help: 'Module directory (default: /lib/modules).' },
    { key: 'outdir', short: 'o', long: 'outdir', arg: 'DIR', help: 'Output root path (default: same as <basedir>).' },
    { key: 'config', short: 'C', long: 'config', arg: 'PATH', repeat: 'array', help: 'Read configuration from PATH' },
    { key: 'symvers', short: 'E', long: 'symvers', arg: 'FILE', help: 'Use Module.symvers file to check\nsymbol versions.' },
    { key: 'filesyms', short: 'F', long: 'filesyms', arg: 'FILE', help: 'Use the file instead of the\ncurrent kernel symbols.' },
    { key: 'errsyms', short: 'e', long: 'errsyms', help: 'Report not supplied symbols' },
    { key: 'verbose', short: 'v', long: 'verbose', repeat: 'count', help: 'Enable verbose mode' },
    { key: 'show', short: 'n', long: 'show', help: 'Write the dependency file on stdout only' },
    { key: 'show', long: 'dry-run', help: 'Write the dependency file on stdout only' },
    { key: 'symbolPrefix', short: 'P', long: 'symbol-prefix', arg: 'CHAR', help: 'Architecture symbol prefix' },
    { key: 'warn', short: 'w', long: 'warn', help: 'Warn on duplicates' },
    VERSION,
    HELP,
  ],
} as const satisfies AppletSpec;

/** kmod's own help text (two option groups and a preamble, which the generic layout has not). */
const USAGE = `Usage:
\tPROG -[aA] [options] [forced_version]

If no arguments (except options) are given, "depmod -a" is assumed

depmod will output a dependency list suitable for the modprobe utility.

Options:
\t-a, --all            Probe all modules
\t-A, --quick          Only does the work if there's a new module
\t-e, --errsyms        Report not supplied symbols
\t-n, --show           Write the dependency file on stdout only
\t-P, --symbol-prefix  Architecture symbol prefix
\t-C, --config=PATH    Read configuration from PATH
\t-v, --verbose        Enable verbose mode
\t-w, --warn           Warn on duplicates
\t-V, --version        show version
\t-h, --help           show this help

The following options are useful for people managing distributions:
\t-b, --basedir=DIR    Root path (default: /).
\t-m, --moduledir=DIR  Module directory (default: /lib/modules).
\t-o, --outdir=DIR     Output root path (default: same as <basedir>).
\t-F, --filesyms=FILE  Use the file instead of the
\t                     current kernel symbols.
\t-E, --symvers=FILE   Use Module.symvers file to check
\t                     symbol versions.
`;

const LEVEL_NAMES: Readonly<Record<number, string>> = { 2: 'FATAL', 3: 'ERROR', 4: 'WARNING', 5: 'NOTICE', 6: 'INFO', 7: 'DEBUG' };

async function run(ctx: AppletContext): Promise<number> {
  const prog = ctx.prog;
  const raw = (s: string) => ctx.stderr.write(Buffer.from(s, 'latin1') as unknown as string);
  const say = (level: number, text: string) => raw(`${prog}: ${LEVEL_NAMES[level] ?? `LOG-${String(level).padStart(3, '0')}`}: ${text}`);
  const parsed = parseOptions(spec.options, ctx.args);
  switch (parsed.kind) {
    case 'help':
      ctx.stdout.write(USAGE.replace('PROG', prog));
      return 0;
    case 'version':
      ctx.stdout.write(versionText());
      return 0;
    case 'error':
      ctx.stderr.write(`${prog}: ${parsed.message}\n`);
      return 1;
  }
  const cl = parsed.options;
  // kmod checks -P as it parses it: a FATAL before anything else is looked at
  if (cl.symbolPrefix !== undefined && cl.symbolPrefix.length !== 1) {
    say(2, '-P only takes a single char\n');
    return 1;
  }
  const o: DepmodOptions = {
    quick: cl.quick,
    basedir: cl.basedir ?? (ctx.root !== '/' ? ctx.root : undefined),
    moduledir: cl.moduledir,
    outdir: cl.outdir,
    config: cl.config.length > 0 ? cl.config : undefined,
    symvers: cl.symvers,
    systemMap: cl.filesyms,
    errsyms: cl.errsyms,
    symbolPrefix: cl.symbolPrefix,
    warnDuplicates: cl.warn,
    dryRun: cl.show,
  };
  const [version, ...files] = parsed.operands;
  if (version !== undefined) {
    if (!isVersionNumber(version)) {
      say(3, `Bad version passed ${version}\n`);
      return 1;
    }
    o.kernelVersion = version;
  }
  if (files.length > 0) o.files = files;
  // kmod's log priority: WARNING, one more level per -v
  const threshold = 4 + cl.verbose;
  o.onMessage = (m: DepmodMessage) => {
    if (m.level <= threshold) say(m.level, m.text);
  };
  if (cl.verbose > 0) o.onShow = (line) => ctx.stdout.write(Buffer.from(line, 'latin1') as unknown as string);
  try {
    const r = await depmod(o);
    if (cl.show && !r.upToDate) {
      const out = Buffer.concat(r.files.filter((f) => DEPMOD_TEXT_FILES.includes(f.name)).map((f) => f.data));
      ctx.stdout.write(out as unknown as string);
    }
    return 0;
  } catch (e) {
    if (e instanceof DepmodError) {
      say(e.level === 'crit' ? 2 : 3, `${e.message}\n`);
      return 1;
    }
    throw e;
  }
}

/** The depmod applet. */
const applet: Applet = { ...spec, run };
export default applet;

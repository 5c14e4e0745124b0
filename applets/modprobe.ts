/**
 * modprobe — load or remove modules by name, alias, `symbol:` or modalias with their
 * dependencies, kmod 34.2's command line, output and words (tools/modprobe.c).
 *
 * One kmod-ts extension: `-j N`/`--jobs N` loads the independent probe lists of `-a` (coldplug)
 * N at a time; every list stays in kmod's order.
 */
import { release } from 'node:os';
import type { Applet, AppletContext } from '../src/cli/applet.js';
import { HELP, parseOptions, VERSION, type AppletSpec } from '../src/cli/options.js';
import { versionText } from '../src/cli/version.js';
import { Errno, strerror } from '../src/kernel/errno.js';
import { readModprobeConfig, softdepText, type ConfigDiagnostic } from '../src/db/modprobe-config.js';
import { joinModuleArgs } from '../src/ops/params.js';
import {
  BLACKLISTED,
  ModprobeContext,
  shellRunner,
  type ProbeAction,
  type ProbeEvent,
  type ProbeFlags,
  type ProbeModule,
} from '../src/ops/probe.js';
import { runJobs, moduleInserter, moduleSymbolVersions } from '../src/ops/probe-run.js';
import { loadOptionsFromEnv, toJson } from './common.js';

const HELP_TEXT = `Usage:
\tPROG [options] [-i] [-b] modulename
\tPROG [options] -a [-i] [-b] modulename [modulename...]
\tPROG [options] -r [-i] modulename
\tPROG [options] -r -a [-i] modulename [modulename...]
\tPROG [options] -c
\tPROG [options] --dump-modversions filename
Management Options:
\t-a, --all                   Consider every non-argument to
\t                            be a module name to be inserted
\t                            or removed (-r)
\t-r, --remove                Remove modules instead of inserting
\t    --remove-dependencies   Deprecated: use --remove-holders
\t    --remove-holders        Also remove module holders (use together with -r)
\t-w, --wait=<MSEC>           When removing a module, wait up to MSEC for
\t                            module's refcount to become 0 so it can be
\t                            removed (use together with -r)
\t    --first-time            Fail if module already inserted or removed
\t-i, --ignore-install        Ignore install commands
\t-i, --ignore-remove         Ignore remove commands
\t-b, --use-blacklist         Apply blacklist to resolved alias.
\t-f, --force                 Force module insertion or removal.
\t                            implies --force-modversions and
\t                            --force-vermagic
\t    --force-modversion      Ignore module's version
\t    --force-vermagic        Ignore module's version magic
\t-j, --jobs=<N>              kmod-ts extension: with -a, load up to N
\t                            independent modules at a time (default 1)

Query Options:
\t-R, --resolve-alias         Only lookup and print alias and exit
\t-D, --show-depends          Only print module dependencies and exit
\t    --json                  kmod-ts extension: with -D, print the actions as JSON
\t-c, --showconfig            Print out known configuration and exit
\t-c, --show-config           Same as --showconfig
\t    --show-modversions      Dump module symbol version and exit
\t    --dump-modversions      Same as --show-modversions
\t    --show-exports          Only print module exported symbol versions and exit

General Options:
\t-n, --dry-run               Do not execute operations, just print out
\t-n, --show                  Same as --dry-run
\t-C, --config=FILE           Use FILE instead of default search paths
\t-d, --dirname=DIR           Use DIR as filesystem root for /lib/modules
\t-S, --set-version=VERSION   Use VERSION instead of \`uname -r\`
\t-s, --syslog                print to syslog, not stderr
\t-q, --quiet                 disable messages
\t-v, --verbose               enables more messages
\t-V, --version               show version
\t-h, --help                  show this help
`;

/** kmod 34.2's modprobe command line (`arw:RibfDcnC:d:S:sqvVh`, cmdopts order) plus `-j`. */
export const spec = {
  name: 'modprobe',
  summary: 'load or remove modules with their dependencies',
  usage: '[options] [-i] [-b] modulename',
  options: [
    { key: 'all', short: 'a', long: 'all', help: 'Consider every non-argument to be a module name to be inserted or removed (-r)' },
    { key: 'remove', short: 'r', long: 'remove', help: 'Remove modules instead of inserting' },
    { key: 'removeHolders', long: 'remove-dependencies', help: 'Deprecated: use --remove-holders' },
    { key: 'removeHolders', long: 'remove-holders', help: 'Also remove module holders (use together with -r)' },
    { key: 'wait', short: 'w', long: 'wait', arg: 'MSEC', help: "When removing a module, wait up to MSEC for module's refcount to become 0 so it can be removed (use together with -r)" },
    { key: 'resolveAlias', short: 'R', long: 'resolve-alias', help: 'Only lookup and print alias and exit' },
    { key: 'firstTime', long: 'first-time', help: 'Fail if module already inserted or removed' },
    { key: 'ignoreCommands', short: 'i', long: 'ignore-install', help: 'Ignore install commands' },
    { key: 'ignoreCommands', long: 'ignore-remove', help: 'Ignore remove commands' },
    { key: 'useBlacklist', short: 'b', long: 'use-blacklist', help: 'Apply blacklist to resolved alias.' },
    { key: 'force', short: 'f', long: 'force', help: 'Force module insertion or removal.' },
    { key: 'forceModversion', long: 'force-modversion', help: "Ignore module's version" },
    { key: 'forceVermagic', long: 'force-vermagic', help: "Ignore module's version magic" },
    { key: 'showDepends', short: 'D', long: 'show-depends', help: 'Only print module dependencies and exit' },
    { key: 'showConfig', short: 'c', long: 'showconfig', help: 'Print out known configuration and exit' },
    { key: 'showConfig', long: 'show-config', help: 'Same as --showconfig' },
    { key: 'showModversions', long: 'show-modversions', help: 'Dump module symbol version and exit' },
    { key: 'showModversions', long: 'dump-modversions', help: 'Same as --show-modversions' },
    { key: 'showExports', long: 'show-exports', help: 'Only print module exported symbol versions and exit' },
    { key: 'dryRun', short: 'n', long: 'dry-run', help: 'Do not execute operations, just print out' },
    { key: 'dryRun', long: 'show', help: 'Same as --dry-run' },
    { key: 'config', short: 'C', long: 'config', arg: 'FILE', repeat: 'array', help: 'Use FILE instead of default search paths' },
    { key: 'dirname', short: 'd', long: 'dirname', arg: 'DIR', help: 'Use DIR as filesystem root for /lib/modules' },
    { key: 'setVersion', short: 'S', long: 'set-version', arg: 'VERSION', help: 'Use VERSION instead of `uname -r`' },
    { key: 'syslog', short: 's', long: 'syslog', help: 'print to syslog, not stderr' },
    { key: 'quiet', short: 'q', long: 'quiet', help: 'disable messages' },
    { key: 'verbose', short: 'v', long: 'verbose', repeat: 'count', help: 'enables more messages' },
    VERSION,
    HELP,
    { key: 'jobs', short: 'j', long: 'jobs', arg: 'N', help: 'kmod-ts extension: with -a, load up to N independent modules at a time (default 1)' },
    { key: 'json', long: 'json', help: 'kmod-ts extension: with -D, print the actions as JSON' },
  ],
  environment: [{ name: 'MODPROBE_OPTIONS', help: 'options put before the command line (kmod)' }],
} as const satisfies AppletSpec;

/**
 * kmod's `prepend_options_from_env`: MODPROBE_OPTIONS split on single spaces, a token that
 * starts with a quote loses its quotes, quotes inside a token are removed; quirks kept (a quoted
 * token followed by a space gives an empty argument).
 */
export function splitModprobeOptions(env: string): string[] {
  const s = env.split('');
  const out: string[] = [];
  let str = 0;
  let quote = -1;
  let i = 0;
  for (; i < s.length; i++) {
    const c = s[i];
    if (quote === -1) {
      if (c === ' ') {
        out.push(s.slice(str, i).join(''));
        str = i + 1;
      } else if (c === '"' || c === "'") quote = i;
    } else if (c === s[quote]) {
      if (quote === str) {
        out.push(s.slice(str + 1, i).join(''));
        str = i + 1;
      } else {
        s.splice(i, 1);
        s.splice(quote, 1);
        i -= 2;
      }
      quote = -1;
    }
  }
  if (str < i) out.push(s.slice(str, i).join(''));
  return out;
}

// syslog priorities
const LOG_EMERG = 0;
const LOG_CRIT = 2;
const LOG_ERR = 3;
const LOG_WARNING = 4;
const LOG_INFO = 6;
const PRIO_NAMES: Record<number, string> = { 2: 'FATAL', 3: 'ERROR', 4: 'WARNING', 5: 'NOTICE', 6: 'INFO', 7: 'DEBUG' };

/** Thrown by a FATAL report to end the run with status 1, as kmod's `exit(EXIT_FAILURE)`. */
class Exit {
  constructor(readonly status: number) {}
}

interface State {
  all: boolean;
  remove: boolean;
  removeHolders: boolean;
  waitMsec: number;
  resolveAlias: boolean;
  firstTime: boolean;
  ignoreCommands: boolean;
  useBlacklist: boolean;
  force: boolean;
  forceModversion: boolean;
  forceVermagic: boolean;
  show: boolean;
  ignoreLoaded: boolean;
  dryRun: boolean;
  showConfig: boolean;
  showModversions: boolean;
  showExports: boolean;
  configs: string[];
  root: string | undefined;
  kversion: string | undefined;
  syslog: boolean;
  verbose: number;
  jobs: number;
  /** what modprobe exports in MODPROBE_OPTIONS for commands it runs */
  exported: string[];
}

/** The words of each report (kmod's). */
function eventText(e: ProbeEvent): string {
  switch (e.kind) {
    case 'dep-missing':
      return `ctx=0x0 path=${e.path} error=${strerror(e.errno)}`;
    case 'dep-lookup-failed':
      return `failed to lookup dependency '${e.name}', continuing anyway.`;
    case 'no-path':
      return `could not find module by name='${e.module}'`;
    case 'command-failed':
      return `Error running ${e.type} command '${e.command}' for module ${e.module}: retcode ${e.status}`;
    case 'command-not-run':
      return `Could not run ${e.type} command '${e.command}' for module ${e.module}: ${strerror(e.errno)}`;
    case 'insert-failed':
      return `Failed to insert module '${e.path}': ${strerror(e.errno)}`;
    case 'decompress-failed':
      return `${e.format}: ${e.message}`;
    case 'remove-failed':
    case 'remove-wait-failed':
      return `could not remove '${e.module}': ${strerror(e.errno)}`;
    case 'remove-command-failed':
      return `Error running remove command for ${e.module}`;
    case 'not-in-kernel':
      return `Module ${e.module} is not in kernel.`;
    case 'is-builtin':
      return `Module ${e.module} is builtin.`;
    case 'in-use':
      return `Module ${e.module} is in use.`;
  }
}

/** libkmod's words for configuration diagnostics, printed by its default logger. */
function diagnosticText(d: ConfigDiagnostic): string {
  switch (d.kind) {
    case 'bad-line':
      return `${d.file} line ${d.line}: ignoring bad line starting with '${d.command}'`;
    case 'deprecated':
      return `${d.file}: command ${d.command} is deprecated and not parsed anymore`;
    case 'subdirectory':
      return `Directories inside directories are not supported: ${d.file}`;
    case 'stat-failed':
      return `Cannot stat directory entry: ${d.file}`;
    case 'opendir-failed':
      return `opendir(${d.file}): ${d.code}`;
    case 'bad-kcmdline-name':
      return `Ignoring bad option on kernel command line while parsing module name: '${d.module}'`;
  }
}

function actionText(a: ProbeAction): string {
  switch (a.kind) {
    case 'insmod':
      return `insmod ${a.path} ${a.options}\n`;
    case 'install':
      return `install ${a.command} ${a.options}\n`;
    case 'builtin':
      return `builtin ${a.module}\n`;
    case 'rmmod':
      return `rmmod ${a.module}\n`;
    case 'remove':
      return `remove ${a.command}\n`;
  }
}

async function run(ctx: AppletContext): Promise<number> {
  const st: State = {
    all: false,
    remove: false,
    removeHolders: false,
    waitMsec: 0,
    resolveAlias: false,
    firstTime: false,
    ignoreCommands: false,
    useBlacklist: false,
    force: false,
    forceModversion: false,
    forceVermagic: false,
    show: false,
    ignoreLoaded: false,
    dryRun: false,
    showConfig: false,
    showModversions: false,
    showExports: false,
    configs: [],
    root: undefined,
    kversion: undefined,
    syslog: false,
    verbose: LOG_WARNING,
    jobs: 1,
    exported: [],
  };
  // LOG(): FATAL normally, WARNING under -a; ERR and library messages at ERROR
  let logPriority = LOG_CRIT;
  // before kmod sets the tool logger up, everything at WARNING or above is printed
  let threshold = LOG_WARNING;
  const write = (prio: number, text: string) => {
    if (prio > threshold) return;
    const line = `${PRIO_NAMES[prio] ?? `LOG-${String(prio).padStart(3, '0')}`}: ${text}`;
    if (st.syslog) ctx.sys.syslog(ctx.prog, prio, line);
    else ctx.stderr.write(`${ctx.prog}: ${line}\n`);
    if (prio <= LOG_CRIT) throw new Exit(1);
  };
  const err = (text: string) => write(LOG_ERR, text);

  const envOptions = ctx.env.MODPROBE_OPTIONS;
  const argv = [...(envOptions !== undefined ? splitModprobeOptions(envOptions) : []), ...ctx.args];
  const parsed = parseOptions(spec.options, argv);
  switch (parsed.kind) {
    case 'help':
      ctx.stdout.write(HELP_TEXT.replaceAll('PROG', ctx.prog));
      return 0;
    case 'version':
      ctx.stdout.write(versionText());
      return 0;
    case 'error':
      ctx.stderr.write(`${ctx.prog}: ${parsed.message}\n`);
      return 1;
  }
  const cl = parsed.options;
  const args = parsed.operands;
  let actions: ProbeAction[] | undefined;
  try {
    if (cl.all) logPriority = LOG_WARNING;
    if (cl.wait !== undefined) {
      // strtoul(optarg, &end, 0): decimal, 0x hex, 0 octal; anything left over is an error
      const v = cl.wait;
      const m = /^\s*([+-]?)(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)$/.exec(v);
      if (!m) {
        err(`unexpected wait value '${v}'.`);
        return 1;
      }
      const digits = m[2];
      const n = digits.startsWith('0x') || digits.startsWith('0X') ? Number.parseInt(digits.slice(2), 16) : digits.length > 1 && digits.startsWith('0') ? Number.parseInt(digits, 8) : Number(digits);
      // strtoul wraps a negative value round to a huge one: wait (nearly) for ever
      st.waitMsec = m[1] === '-' && n !== 0 ? Number.MAX_SAFE_INTEGER : n;
    }
    if (cl.jobs !== undefined) {
      if (!/^[1-9][0-9]*$/.test(cl.jobs) || !Number.isSafeInteger(Number(cl.jobs))) {
        err(`unexpected jobs value '${cl.jobs}'.`);
        return 1;
      }
      st.jobs = Number(cl.jobs);
    }
    Object.assign(st, {
      all: cl.all,
      remove: cl.remove,
      removeHolders: cl.removeHolders,
      resolveAlias: cl.resolveAlias,
      firstTime: cl.firstTime,
      ignoreCommands: cl.ignoreCommands,
      useBlacklist: cl.useBlacklist,
      force: cl.force,
      forceModversion: cl.forceModversion,
      forceVermagic: cl.forceVermagic,
      dryRun: cl.dryRun || cl.showDepends,
      show: cl.showDepends,
      ignoreLoaded: cl.showDepends,
      showConfig: cl.showConfig,
      showModversions: cl.showModversions,
      showExports: cl.showExports,
      configs: cl.config,
      root: cl.dirname,
      kversion: cl.setVersion,
      // kmod ≥ 31: a closed stderr (the kernel runs modprobe without one) means syslog too, decided
      // after the options are read; it is not passed on in MODPROBE_OPTIONS
      syslog: cl.syslog || ctx.stderr.isOpen?.() === false,
      // -q is LOG_EMERG, each -v one more (kmod applies them in order; the order shows only
      // in the rare -q -v, where both print nothing)
      verbose: cl.quiet ? LOG_EMERG : LOG_WARNING + cl.verbose,
    });
    // what modprobe exports in MODPROBE_OPTIONS for the commands it runs
    for (const c of cl.config) st.exported.push('-C', c);
    if (cl.syslog) st.exported.push('-s');
    if (cl.quiet) st.exported.push('-q');
    for (let i = 0; i < cl.verbose; i++) st.exported.push('-v');

    if (cl.json && !cl.showDepends) {
      err('--json goes with --show-depends (-D).');
      return 1;
    }
    if (!st.showConfig && args.length === 0) {
      err('missing parameters. See -h.');
      return 1;
    }

    let dirname: string;
    // kmod: DIR/lib/modules/KVER; without -d, the applet's root (`/`, or a fixture tree)
    dirname = `${st.root ?? (ctx.root === '/' ? '' : ctx.root)}/lib/modules/${st.kversion ?? release()}`;
    if (!dirname.startsWith('/')) dirname = `${process.cwd()}/${dirname}`;

    const { config, diagnostics } = readModprobeConfig({ dirname, paths: st.configs.length ? st.configs : undefined, root: ctx.root });
    // read before kmod installs its tool logger: libkmod's own format, at ERROR whatever -q says
    for (const d of diagnostics) ctx.stderr.write(`libkmod: ERROR: ${d.fn}: ${diagnosticText(d)}\n`);

    threshold = st.verbose;
    const mp = new ModprobeContext({ dirname, config, root: ctx.root, sys: ctx.sys, env: ctx.env });
    const showing = st.show || st.verbose > LOG_WARNING;
    const childEnv = { ...ctx.env };
    if (st.exported.length) childEnv.MODPROBE_OPTIONS = [...(ctx.env.MODPROBE_OPTIONS !== undefined ? [ctx.env.MODPROBE_OPTIONS] : []), ...st.exported].join(' ');
    const report = (e: ProbeEvent) => write(e.level === 'fatal' ? logPriority : e.level === 'info' ? LOG_INFO : LOG_ERR, eventText(e));
    // --show-depends --json: the library's ProbeAction objects, printed together at the end
    if (cl.json) actions = [];
    mp.hooks = {
      onAction: actions ? (a) => actions!.push(a) : showing ? (a) => ctx.stdout.write(actionText(a)) : undefined,
      onEvent: report,
      insert: moduleInserter({ root: ctx.root, sys: ctx.sys, load: loadOptionsFromEnv(ctx).options, report }),
    };
    mp.hooks.runCommand = shellRunner(childEnv);

    const flags: ProbeFlags = {
      ignoreCommands: st.ignoreCommands,
      ignoreLoaded: st.ignoreLoaded,
      dryRun: st.dryRun,
      useBlacklist: st.useBlacklist,
      firstTime: st.firstTime,
      forceModversion: st.force || st.forceModversion,
      forceVermagic: st.force || st.forceVermagic,
      force: st.force,
      removeHolders: st.removeHolders,
      waitMsec: st.waitMsec,
    };
    const log = (text: string) => write(logPriority, text);

    if (st.showConfig) return showConfig(ctx, mp);
    if (st.showModversions || st.showExports) {
      const file = args[0];
      if (typeof mp.fromPath(file) === 'number') {
        log(`Module ${file} not found.`);
        return 1;
      }
      const which = st.showModversions ? 'modversions' : 'exports';
      let list;
      try {
        list = await moduleSymbolVersions(file, which, report);
      } catch (e) {
        const errno = (e as { errno?: unknown }).errno;
        if (typeof errno !== 'number') throw e;
        log(`could not get ${which === 'modversions' ? 'modversions' : 'symbols'} of ${file}: ${strerror(errno)}`);
        return 1;
      }
      ctx.stdout.write(list.map((v) => `0x${v.crc.toString(16).padStart(8, '0')}\t${v.name}\n`).join(''));
      return 0;
    }
    if (st.remove) {
      let status = 0;
      for (const a of args) if (removeOne(mp, a, flags, log) < 0) status = 1;
      return status;
    }
    const insmod = async (name: string, extra: string | undefined): Promise<number> => {
      mp.reset();
      let list: ProbeModule[] | undefined;
      if (name.startsWith('/') || name.startsWith('./')) {
        const m = mp.fromPath(name);
        if (typeof m === 'number') {
          log(`Failed to get module from path ${name}: ${strerror(-m)}`);
          return -Errno.ENOENT;
        }
        list = [m];
      } else {
        list = mp.lookup(name);
        if (list === undefined || list.length === 0) {
          log(`Module ${name} not found in directory ${dirname}`);
          return -Errno.ENOENT;
        }
      }
      let e = 0;
      for (const m of list) {
        if (st.resolveAlias) {
          ctx.stdout.write(`${m.name}\n`);
          e = 0;
          continue;
        }
        e = await mp.probe(m, flags, extra);
        if (e === BLACKLISTED || e >= 0) e = 0;
        else insertError(m.name, e, err);
      }
      return e;
    };
    if (st.all) {
      if (st.jobs > 1 && !st.resolveAlias) {
        // -j N: up to N insertions in the kernel at once, their syscalls made on libuv's thread
        // pool while this thread goes on (a syscall layer without async calls, in tests, is
        // called synchronously)
        mp.hooks.insert = moduleInserter({ root: ctx.root, sys: ctx.sys, load: loadOptionsFromEnv(ctx).options, report, concurrent: true });
        const e = await runJobs(mp, args, flags, st.jobs, {
          notFound: (n) => log(`Module ${n} not found in directory ${dirname}`),
          pathFailed: (p, errno) => log(`Failed to get module from path ${p}: ${strerror(errno)}`),
          insertError: (n, e) => insertError(n, e, err),
        });
        return e < 0 ? 1 : 0;
      }
      let status = 0;
      for (const a of args) if ((await insmod(a, undefined)) < 0) status = 1;
      return status;
    }
    const [first, ...params] = args;
    return (await insmod(first, params.length ? joinModuleArgs(params) : undefined)) < 0 ? 1 : 0;
  } catch (e) {
    if (e instanceof Exit) return e.status;
    throw e;
  } finally {
    if (actions) ctx.stdout.write(toJson(actions));
  }
}

/** modprobe's `insmod_insert` words for a failed probe. */
function insertError(name: string, e: number, err: (text: string) => void): void {
  if (e === -Errno.EEXIST) err(`could not insert '${name}': Module already in kernel`);
  else if (e === -Errno.ENOENT) err(`could not insert '${name}': Unknown symbol in module, or unknown parameter (see dmesg)`);
  else err(`could not insert '${name}': ${strerror(-e)}`);
}

/** modprobe's `rmmod`: look up, then remove each result; a lookup error is silent. */
function removeOne(mp: ModprobeContext, name: string, flags: ProbeFlags, log: (t: string) => void): number {
  mp.reset();
  const list = mp.lookup(name);
  if (list === undefined) return -Errno.EINVAL;
  let e = 0;
  if (list.length === 0) {
    log(`Module ${name} not found.`);
    e = -Errno.ENOENT;
  }
  for (const m of list) {
    e = mp.remove(m, flags);
    if (e < 0) break;
  }
  return e;
}

/** `-c`: the configuration, then the alias and symbol indexes. */
function showConfig(ctx: AppletContext, mp: ModprobeContext): number {
  const c = mp.config;
  let out = '';
  for (const b of c.blacklist) out += `blacklist ${b}\n`;
  for (const i of c.install) out += `install ${i.module} ${i.command}\n`;
  for (const r of c.remove) out += `remove ${r.module} ${r.command}\n`;
  for (const a of c.aliases) out += `alias ${a.pattern} ${a.module}\n`;
  for (const o of c.options) out += `options ${o.module} ${o.options}\n`;
  for (const s of c.softdeps) out += `softdep ${s.module} ${softdepText(s)}\n`;
  for (const w of c.weakdeps) out += `weakdep ${w.module} ${w.deps.join(' ')}\n`;
  out += '\n# End of configuration files. Dumping indexes now:\n\n';
  ctx.stdout.write(out);
  for (const file of ['modules.alias', 'modules.symbols'] as const) {
    const lines = mp.index.dumpIndex(file);
    if (lines.length) ctx.stdout.write(`${lines.join('\n')}\n`);
  }
  return 0;
}

/** The modprobe applet. */
const modprobe: Applet = { ...spec, run };
export default modprobe;

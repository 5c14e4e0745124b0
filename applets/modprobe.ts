/**
 * modprobe — load or remove modules by name, alias, `symbol:` or modalias with their
 * dependencies, kmod 34.2's command line, output and words (tools/modprobe.c).
 *
 * One kmod-ts extension: `-j N`/`--jobs N` loads the independent probe lists of `-a` (coldplug)
 * N at a time; every list stays in kmod's order.
 */
import { release } from 'node:os';
import type { Applet, AppletContext } from '../src/cli/applet.js';
import { strerror } from '../src/kernel/errno.js';
import { VERSION, FEATURES } from '../src/cli/version.js';
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
import { runJobs, moduleInserter } from '../src/ops/probe-run.js';

const HELP = `Usage:
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

/** One option: GNU getopt_long's view (kmod's `cmdopts`). */
interface Opt {
  readonly key: string;
  readonly short?: string;
  readonly long: readonly string[];
  readonly arg?: string;
  readonly help: string;
}

/** modprobe's options, kmod's short string `arw:RibfDcnC:d:S:sqvVh` plus `-j`. */
const OPTIONS: readonly Opt[] = [
  { key: 'all', short: 'a', long: ['all'], help: 'every argument is a module' },
  { key: 'remove', short: 'r', long: ['remove'], help: 'remove modules' },
  { key: 'removeHolders', long: ['remove-dependencies', 'remove-holders'], help: 'also remove holders' },
  { key: 'wait', short: 'w', long: ['wait'], arg: 'MSEC', help: 'with -r, wait up to MSEC for the module to become unused' },
  { key: 'resolveAlias', short: 'R', long: ['resolve-alias'], help: 'print the resolved module names' },
  { key: 'firstTime', long: ['first-time'], help: 'fail if already inserted or removed' },
  { key: 'ignoreCommands', short: 'i', long: ['ignore-install', 'ignore-remove'], help: 'ignore install/remove commands' },
  { key: 'useBlacklist', short: 'b', long: ['use-blacklist'], help: 'apply the blacklist to names too' },
  { key: 'force', short: 'f', long: ['force'], help: 'force insertion or removal' },
  { key: 'forceModversion', long: ['force-modversion'], help: "ignore the module's symbol versions" },
  { key: 'forceVermagic', long: ['force-vermagic'], help: "ignore the module's vermagic" },
  { key: 'showDepends', short: 'D', long: ['show-depends'], help: 'print what would be loaded' },
  { key: 'showConfig', short: 'c', long: ['showconfig', 'show-config'], help: 'print the configuration' },
  { key: 'showModversions', long: ['show-modversions', 'dump-modversions'], help: "print a module file's symbol versions" },
  { key: 'showExports', long: ['show-exports'], help: "print a module file's exported symbols" },
  { key: 'dryRun', short: 'n', long: ['dry-run', 'show'], help: 'do nothing' },
  { key: 'config', short: 'C', long: ['config'], arg: 'FILE', help: 'configuration file or directory' },
  { key: 'dirname', short: 'd', long: ['dirname'], arg: 'DIR', help: 'root for /lib/modules' },
  { key: 'setVersion', short: 'S', long: ['set-version'], arg: 'VERSION', help: 'kernel version' },
  { key: 'syslog', short: 's', long: ['syslog'], help: 'log to syslog' },
  { key: 'quiet', short: 'q', long: ['quiet'], help: 'no messages' },
  { key: 'verbose', short: 'v', long: ['verbose'], help: 'more messages' },
  { key: 'version', short: 'V', long: ['version'], help: 'show version' },
  { key: 'help', short: 'h', long: ['help'], help: 'show help' },
  { key: 'jobs', short: 'j', long: ['jobs'], arg: 'N', help: 'kmod-ts: load N independent modules at a time' },
];

type Parsed = { key: string; value?: string } | { error: string };

/**
 * glibc getopt_long with permutation: options are yielded in order, non-options collected into
 * `rest`; `--` ends the options. Errors carry glibc's words.
 */
function* getopt(prog: string, args: readonly string[], rest: string[]): Generator<Parsed> {
  const byShort = new Map(OPTIONS.filter((o) => o.short).map((o) => [o.short!, o]));
  const longs = OPTIONS.flatMap((o) => o.long.map((name) => ({ name, o })));
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === '--') {
      rest.push(...args.slice(i + 1));
      return;
    }
    if (a.startsWith('--')) {
      const eq = a.indexOf('=');
      const name = a.slice(2, eq === -1 ? undefined : eq);
      let hit = longs.find((l) => l.name === name);
      if (!hit) {
        const cands = longs.filter((l) => l.name.startsWith(name));
        const distinct = new Set(cands.map((c) => c.o));
        if (cands.length === 0) {
          yield { error: `${prog}: unrecognized option '${a}'` };
          return;
        }
        if (distinct.size > 1) {
          yield { error: `${prog}: option '${a.slice(0, eq === -1 ? undefined : eq)}' is ambiguous; possibilities:${cands.map((c) => ` '--${c.name}'`).join('')}` };
          return;
        }
        hit = cands[0];
      }
      if (hit.o.arg === undefined) {
        if (eq !== -1) {
          yield { error: `${prog}: option '--${hit.name}' doesn't allow an argument` };
          return;
        }
        yield { key: hit.o.key };
      } else if (eq !== -1) yield { key: hit.o.key, value: a.slice(eq + 1) };
      else if (i + 1 < args.length) yield { key: hit.o.key, value: args[++i] };
      else {
        yield { error: `${prog}: option '--${hit.name}' requires an argument` };
        return;
      }
      continue;
    }
    if (a.startsWith('-') && a.length > 1) {
      for (let j = 1; j < a.length; j++) {
        const o = byShort.get(a[j]);
        if (!o) {
          yield { error: `${prog}: invalid option -- '${a[j]}'` };
          return;
        }
        if (o.arg === undefined) {
          yield { key: o.key };
          continue;
        }
        if (j + 1 < a.length) yield { key: o.key, value: a.slice(j + 1) };
        else if (i + 1 < args.length) yield { key: o.key, value: args[++i] };
        else {
          yield { error: `${prog}: option requires an argument -- '${a[j]}'` };
          return;
        }
        break;
      }
      continue;
    }
    rest.push(a);
  }
}

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
  const args: string[] = [];
  try {
    for (const p of getopt(ctx.prog, argv, args)) {
      if ('error' in p) {
        ctx.stderr.write(`${p.error}\n`);
        return 1;
      }
      switch (p.key) {
        case 'all':
          logPriority = LOG_WARNING;
          st.all = true;
          break;
        case 'wait': {
          // strtoul(optarg, &end, 0): decimal, 0x hex, 0 octal; anything left over is an error
          const v = p.value!;
          const m = /^\s*[+-]?(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)$/.exec(v);
          if (v === '' || !m) {
            err(`unexpected wait value '${v}'.`);
            return 1;
          }
          st.waitMsec = Number.parseInt(m[1], m[1].startsWith('0x') || m[1].startsWith('0X') ? 16 : m[1].startsWith('0') && m[1].length > 1 ? 8 : 10);
          if (v.trim().startsWith('-')) st.waitMsec = -st.waitMsec;
          break;
        }
        case 'showDepends':
          st.ignoreLoaded = true;
          st.dryRun = true;
          st.show = true;
          break;
        case 'config':
          st.configs.push(p.value!);
          st.exported.push('-C', p.value!);
          break;
        case 'dirname':
          st.root = p.value!;
          break;
        case 'setVersion':
          st.kversion = p.value!;
          break;
        case 'syslog':
          st.exported.push('-s');
          st.syslog = true;
          break;
        case 'quiet':
          st.exported.push('-q');
          st.verbose = LOG_EMERG;
          break;
        case 'verbose':
          st.exported.push('-v');
          st.verbose++;
          break;
        case 'version':
          ctx.stdout.write(`kmod-ts version ${VERSION}\n${FEATURES}\n`);
          return 0;
        case 'help':
          ctx.stdout.write(HELP.replaceAll('PROG', ctx.prog));
          return 0;
        case 'jobs': {
          const n = Number(p.value);
          if (!/^[1-9][0-9]*$/.test(p.value!) || !Number.isSafeInteger(n)) {
            err(`unexpected jobs value '${p.value}'.`);
            return 1;
          }
          st.jobs = n;
          break;
        }
        default:
          (st as unknown as Record<string, boolean>)[p.key] = true;
      }
    }

    if (!st.showConfig && args.length === 0) {
      err('missing parameters. See -h.');
      return 1;
    }

    let dirname: string;
    if (st.root !== undefined || st.kversion !== undefined) dirname = `${st.root ?? ''}/lib/modules/${st.kversion ?? release()}`;
    else dirname = `${ctx.root === '/' ? '' : ctx.root}/lib/modules/${release()}`;
    if (!dirname.startsWith('/')) dirname = `${process.cwd()}/${dirname}`;

    const { config, diagnostics } = readModprobeConfig({ dirname, paths: st.configs.length ? st.configs : undefined, root: ctx.root });
    // read before kmod installs its tool logger: libkmod's own format, at ERROR whatever -q says
    for (const d of diagnostics) ctx.stderr.write(`libkmod: ERROR: ${d.fn}: ${diagnosticText(d)}\n`);

    threshold = st.verbose;
    const mp = new ModprobeContext({ dirname, config, root: ctx.root, sys: ctx.sys, env: ctx.env });
    const showing = st.show || st.verbose > LOG_WARNING;
    const childEnv = { ...ctx.env };
    if (st.exported.length) childEnv.MODPROBE_OPTIONS = [...(ctx.env.MODPROBE_OPTIONS !== undefined ? [ctx.env.MODPROBE_OPTIONS] : []), ...st.exported].join(' ');
    mp.hooks = {
      onAction: showing ? (a) => ctx.stdout.write(actionText(a)) : undefined,
      onEvent: (e) => write(e.level === 'fatal' ? logPriority : e.level === 'info' ? LOG_INFO : LOG_ERR, eventText(e)),
      insert: moduleInserter({ root: ctx.root, sys: ctx.sys, env: ctx.env }),
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
      log(`Module ${args[0]} not found.`);
      return 1;
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
          return -2;
        }
        list = [m];
      } else {
        list = mp.lookup(name);
        if (list === undefined || list.length === 0) {
          log(`Module ${name} not found in directory ${dirname}`);
          return -2;
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
      if (st.jobs > 1 && !st.resolveAlias) return (await runJobs(mp, args, flags, st.jobs, { notFound: (n) => log(`Module ${n} not found in directory ${dirname}`), insertError: (n, e) => insertError(n, e, err) })) < 0 ? 1 : 0;
      let status = 0;
      for (const a of args) if ((await insmod(a, undefined)) < 0) status = 1;
      return status;
    }
    const [first, ...params] = args;
    return (await insmod(first, params.length ? joinModuleArgs(params) : undefined)) < 0 ? 1 : 0;
  } catch (e) {
    if (e instanceof Exit) return e.status;
    throw e;
  }
}

/** modprobe's `insmod_insert` words for a failed probe. */
function insertError(name: string, e: number, err: (text: string) => void): void {
  if (e === -17) err(`could not insert '${name}': Module already in kernel`);
  else if (e === -2) err(`could not insert '${name}': Unknown symbol in module, or unknown parameter (see dmesg)`);
  else err(`could not insert '${name}': ${strerror(-e)}`);
}

/** modprobe's `rmmod`: look up, then remove each result; a lookup error is silent. */
function removeOne(mp: ModprobeContext, name: string, flags: ProbeFlags, log: (t: string) => void): number {
  mp.reset();
  const list = mp.lookup(name);
  if (list === undefined) return -22;
  let e = 0;
  if (list.length === 0) {
    log(`Module ${name} not found.`);
    e = -2;
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
const modprobe: Applet = { name: 'modprobe', summary: 'load or remove modules with their dependencies', run };
export default modprobe;

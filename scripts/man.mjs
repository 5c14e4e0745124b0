#!/usr/bin/env node
// Man pages at build time: kmod-ts(8) and one page per applet (kmod-ts-insmod(8), ...), from the
// option tables of the compiled applets (dist/) and the README's prose. Written to dist/man/;
// package.json's "man" lists them so `npm i -g` installs them. The pages are named kmod-ts-APPLET
// so that they never shadow kmod's own insmod(8), modprobe(8), ... in MANPATH.
//
// CLI: node scripts/man.mjs [--out DIR]        (after tsc; npm run build runs it)

import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const projectDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/** roff-escape running text: backslashes, and a leading `.` or `'` would be a request. */
function esc(text) {
  return text
    .replaceAll('\\', '\\e')
    .replace(/^([.'])/gm, '\\&$1')
    .replaceAll('—', '\\(em')
    .replaceAll('≤', '\\(<=')
    .replaceAll('≥', '\\(>=')
    .replaceAll('×', '\\(mu')
    .replaceAll('→', '\\(->')
    .replace(/[^\x00-\x7f]/gu, (c) => `\\[u${c.codePointAt(0).toString(16).toUpperCase().padStart(4, '0')}]`);
}

/**
 * Filled text as source lines: a sentence per line (man(7)'s convention, which also gives the
 * right spacing after a full stop), then at most 78 columns, never starting a line with a request
 * character.
 */
function wrap(text) {
  const lines = [];
  for (const sentence of text.split(/(?<=[.!?])\s+(?=[A-Z\\(])/)) {
    let line = '';
    for (const word of sentence.split(/\s+/)) {
      if (line !== '' && line.length + 1 + word.length > 78) {
        lines.push(line);
        line = word;
      } else line = line === '' ? word : `${line} ${word}`;
    }
    if (line !== '') lines.push(line);
  }
  return lines.map((l) => (/^[.']/.test(l) ? `\\&${l}` : l)).join('\n');
}

/** Markdown inline markup to roff fonts: `code` and **bold** bold, *em* italic, links as their text. */
function inline(text) {
  let out = '';
  const re = /`([^`]+)`|\*\*([^*]+)\*\*|\*([^*\s][^*]*)\*|\[([^\]]+)\]\([^)]*\)/g;
  let last = 0;
  for (let m; (m = re.exec(text)); ) {
    out += esc(text.slice(last, m.index));
    if (m[1] !== undefined) out += `\\fB${esc(m[1]).replaceAll('-', '\\-')}\\fR`;
    else if (m[2] !== undefined) out += `\\fB${esc(m[2])}\\fR`;
    else if (m[3] !== undefined) out += `\\fI${esc(m[3])}\\fR`;
    else out += esc(m[4]);
    last = re.lastIndex;
  }
  out += esc(text.slice(last));
  // a line that starts with a font escape is fine; one that starts with a space is not
  return out.replace(/^\s+/gm, '');
}

/**
 * The README's Markdown (the subset it uses: paragraphs, lists, fenced code, tables, ####) as
 * man(7) requests.
 * @param {string} md
 * @returns {string}
 */
export function mdToRoff(md) {
  const lines = md.split('\n');
  const out = [];
  let para = [];
  const flush = () => {
    if (para.length) out.push(wrap(inline(para.join(' '))));
    para = [];
  };
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    if (line.startsWith('```')) {
      flush();
      if (out.length && !/^\.(SH|SS|PP)/.test(out[out.length - 1])) out.push('.PP');
      out.push('.RS 4', '.EX');
      for (i++; i < lines.length && !lines[i].startsWith('```'); i++) out.push(esc(lines[i]).replace(/^$/, '\\&').replaceAll('-', '\\-'));
      out.push('.EE', '.RE');
      continue;
    }
    if (line.trim() === '') {
      flush();
      continue;
    }
    const heading = /^#{3,}\s+(.*)$/.exec(line);
    if (heading) {
      flush();
      out.push(`.SS ${esc(heading[1].replaceAll('`', ''))}`);
      continue;
    }
    if (line.startsWith('|')) {
      flush();
      // a table: the first column is the tag, the rest its text; header and rule dropped
      const rows = [];
      for (; i < lines.length && lines[i].startsWith('|'); i++) rows.push(lines[i]);
      i--;
      for (const row of rows.slice(2)) {
        const cells = row.slice(1, -1).split(/(?<!\\)\|/).map((c) => c.trim().replaceAll('\\|', '|'));
        out.push('.TP', inline(cells[0]), wrap(inline(cells.slice(1).join(' '))));
      }
      continue;
    }
    const item = /^(\s*)([-*]|\d+\.)\s+(.*)$/.exec(line);
    if (item) {
      flush();
      const text = [item[3]];
      while (i + 1 < lines.length && /^\s+\S/.test(lines[i + 1]) && !/^\s*([-*]|\d+\.)\s/.test(lines[i + 1])) text.push(lines[++i].trim());
      out.push(/\d/.test(item[2]) ? `.IP ${item[2]} 4` : '.IP \\(bu 2', wrap(inline(text.join(' '))));
      continue;
    }
    // a new paragraph, also after a list (.PP ends the .IP indent)
    if (para.length === 0 && out.length && !/^\.(SH|SS|PP)/.test(out[out.length - 1])) out.push('.PP');
    para.push(line.trim());
  }
  flush();
  // the caller starts a section (.SH) or a paragraph already
  while (out[0] === '.PP') out.shift();
  return out.join('\n');
}

/**
 * The README split at its headings: `## Title` and `### title` → the text under each (up to the
 * next heading of the same or a higher level).
 * @param {string} md
 * @returns {Map<string, string>}
 */
export function readmeSections(md) {
  const map = new Map();
  const lines = md.split('\n');
  let inFence = false;
  const heads = [];
  lines.forEach((l, i) => {
    if (l.startsWith('```')) inFence = !inFence;
    const h = !inFence && /^(#{1,3})\s+(.*)$/.exec(l);
    if (h) heads.push({ i, level: h[1].length, title: h[2].trim() });
  });
  heads.forEach((h, k) => {
    const end = heads.slice(k + 1).find((n) => n.level <= h.level);
    map.set(h.title, lines.slice(h.i + 1, end ? end.i : lines.length).join('\n').trim());
  });
  return map;
}

/** One option of a table as a tagged paragraph. */
function optionItem(o) {
  const names = [o.short && `\\-${o.short}`, o.long && `\\-\\-${esc(o.long)}`].filter(Boolean);
  const tag = names.map((n) => `\\fB${n}\\fR`).join(', ') + (o.arg ? ` \\fI${esc(o.arg)}\\fR` : '');
  // `\n` in a help text is where the usage text breaks the line; here it is a space
  return ['.TP', tag, wrap(inline(o.help.replaceAll('\n', ' ')))].join('\n');
}

function header(title, summary, version, date) {
  return [
    `.\\" Generated by scripts/man.mjs from the option tables and README.md; do not edit.`,
    `.TH ${title.toUpperCase().replaceAll('-', '\\-')} 8 "${date}" "kmod-ts ${version}" "System Administration"`,
    '.SH NAME',
    `${title.replaceAll('-', '\\-')} \\- ${esc(summary)}`,
  ].join('\n');
}

/** A README section without its first line when that is the synopsis (`` `insmod [-f] FILE` — ...``): the table's usage line says it. */
function withoutSynopsis(text, name) {
  const m = new RegExp(`^\`${name}(?: [^\`]*)?\`(?: — |\\n\\n)?`).exec(text);
  if (!m) return text;
  const rest = text.slice(m[0].length);
  return rest.charAt(0).toUpperCase() + rest.slice(1);
}

/** The table's usage (`[options] filename [args]`): words in brackets' placeholders italic. */
function synopsisRoff(name, usage) {
  const words = usage.replace(/\[options\]/, '[\\fIOPTIONS\\fR]').replace(/(?<![\\\w])([a-z][a-z<>|-]*[a-z>])/g, (w) => (w === 'fIOPTIONS' ? w : `\\fI${esc(w)}\\fR`));
  return `\\fB${name}\\fR ${words}`;
}

/** Environment variables as tagged paragraphs. */
function environmentItems(env) {
  return env.map((e) => ['.TP', `\\fB${esc(e.name)}\\fR`, wrap(inline(e.help))].join('\n'));
}

/**
 * Every page, from the tables and the README.
 * @param {{ applets: Array<{ name: string, summary: string, usage: string, options: Array<object>, environment?: Array<object> }>, multicall: Array<object>, readme: string, version: string, date: string }} src
 * @returns {Map<string, string>} file name → page
 */
export function manPages({ applets, multicall, readme, version, date }) {
  const sections = readmeSections(readme);
  const pages = new Map();
  const seeAlso = (self) => ['kmod-ts', ...applets.map((a) => `kmod-ts-${a.name}`)].filter((n) => n !== self).map((n) => `.BR ${n.replaceAll('-', '\\-')} (8)`);
  const allEnv = [...new Map(applets.flatMap((a) => a.environment ?? []).map((e) => [e.name, e])).values()];
  for (const a of applets) {
    const rest = withoutSynopsis(sections.get(a.name) ?? '', a.name);
    const env = a.environment ?? [];
    const page = [
      header(`kmod-ts-${a.name}`, a.summary, version, date),
      '.SH SYNOPSIS',
      synopsisRoff(a.name, a.usage),
      '.br',
      `\\fBkmod\\-ts\\fR ${synopsisRoff(a.name, a.usage)}`,
      '.SH DESCRIPTION',
      `kmod\\-ts's \\fB${a.name}\\fR, run through a link named \\fB${a.name}\\fR\nor as \\fBkmod\\-ts ${a.name}\\fR.`,
      rest ? `.PP\n${mdToRoff(rest)}` : '',
      '.SH OPTIONS',
      ...a.options.map(optionItem),
      env.length ? '.SH ENVIRONMENT' : '',
      ...environmentItems(env),
      '.SH EXIT STATUS',
      '0 on success, 1 on failure; usage errors print \\fIPROG\\fR: ERROR: \\fImessage\\fR.',
      '.SH SEE ALSO',
      seeAlso(`kmod-ts-${a.name}`).join(',\n'),
    ];
    pages.set(`kmod-ts-${a.name}.8`, page.filter((l) => l !== '').join('\n') + '\n');
  }
  const intro = readme.split(/^## /m)[0].split('\n').slice(1).join('\n').replace(/^#.*$/m, '').trim();
  const body = [
    header('kmod-ts', 'Linux kernel module tools as one multi-call binary', version, date),
    '.SH SYNOPSIS',
    '\\fBkmod\\-ts\\fR \\fIAPPLET\\fR [\\fIARGS\\fR...]',
    '.br',
    '\\fIAPPLET\\fR [\\fIARGS\\fR...]',
    '.br',
    '\\fBkmod\\-ts\\fR \\fB\\-\\-list\\fR | \\fB\\-\\-install\\fR \\fIDIR\\fR [\\fB\\-\\-force\\fR] [\\fB\\-\\-target\\fR \\fIPATH\\fR] | \\fBcompletion\\fR [\\fBbash\\fR|\\fBzsh\\fR] | \\fB\\-\\-help\\fR | \\fB\\-\\-version\\fR',
    '.SH DESCRIPTION',
    mdToRoff(intro),
    '.SH APPLETS',
    ...applets.map((a) => `.TP\n.BR kmod\\-ts\\-${a.name} (8)\n${esc(a.summary)}`),
    '.SH OPTIONS',
    ...multicall.map(optionItem),
    ...['Use', 'Help, completion and manual pages', 'JSON output'].filter((t) => sections.has(t)).map((t) => `.SH ${t.toUpperCase()}\n${mdToRoff(sections.get(t).split(/^### /m)[0])}`),
    allEnv.length ? '.SH ENVIRONMENT' : '',
    ...environmentItems(allEnv),
    '.SH SEE ALSO',
    seeAlso('kmod-ts').join(',\n'),
  ];
  pages.set('kmod-ts.8', body.filter((l) => l !== '').join('\n') + '\n');
  return pages;
}

/** The date in the pages: the last commit's (reproducible), else today. */
function buildDate() {
  if (process.env.SOURCE_DATE_EPOCH) return new Date(Number(process.env.SOURCE_DATE_EPOCH) * 1000).toISOString().slice(0, 10);
  try {
    return execFileSync('git', ['log', '-1', '--format=%cs'], { cwd: projectDir, encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return new Date().toISOString().slice(0, 10);
  }
}

/**
 * Load the tables from the compiled tree and write the pages.
 * @param {string} outDir
 * @returns {Promise<string[]>} the files written
 */
export async function writeManPages(outDir = path.join(projectDir, 'dist', 'man')) {
  const dist = path.join(projectDir, 'dist');
  const { APPLET_NAMES } = await import(pathToFileURL(path.join(dist, 'src', 'cli', 'main.js')).href);
  const { MULTICALL_OPTIONS } = await import(pathToFileURL(path.join(dist, 'src', 'cli', 'multicall.js')).href);
  const applets = [];
  for (const name of APPLET_NAMES) applets.push((await import(pathToFileURL(path.join(dist, 'applets', `${name}.js`)).href)).default);
  const pkg = JSON.parse(readFileSync(path.join(projectDir, 'package.json'), 'utf8'));
  const pages = manPages({
    applets,
    multicall: MULTICALL_OPTIONS,
    readme: readFileSync(path.join(projectDir, 'README.md'), 'utf8'),
    version: pkg.version,
    date: buildDate(),
  });
  mkdirSync(outDir, { recursive: true });
  const files = [];
  for (const [name, text] of pages) {
    writeFileSync(path.join(outDir, name), text);
    files.push(path.join(outDir, name));
  }
  return files;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const i = process.argv.indexOf('--out');
  writeManPages(i > 0 ? path.resolve(process.argv[i + 1]) : undefined).then(
    (files) => process.stdout.write(`man: ${files.map((f) => path.relative(process.cwd(), f)).join(' ')}\n`),
    (e) => {
      process.stderr.write(`man: ERROR: ${e.message}\n`);
      process.exit(1);
    },
  );
}

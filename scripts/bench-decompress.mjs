#!/usr/bin/env node
// Decompression speed and memory of src/file/compression/ against the C tools, on a ~4.2 MB sample.
//
//   npm run build && node scripts/bench-decompress.mjs [FILE] [--runs N]
//
// FILE defaults to the first 4.2 MB of the ELF shared objects in /usr/lib/x86_64-linux-gnu (a
// stand-in for a big module). It is compressed kbuild-style: xz --check=crc32 --lzma2=dict=1MiB,
// zstd (default level), gzip -n. Reported per format:
// - time: best of N in-process calls ("warm") and the first call in a fresh process ("cold",
//   codec loading included), against the best of N `TOOL -dc FILE >/dev/null` runs minus the
//   cost of spawning /bin/true (so process creation is not counted against the C tool);
//   ratio = C time / our time, i.e. our throughput relative to the C tool's.
// - memory: peak RSS of a node process that reads the file and decompresses it, minus one that
//   only reads it, in units of the decompressed size.
// Minimums, not means: on a shared machine noise only ever adds time.

import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const projectDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const compression = pathToFileURL(path.join(projectDir, 'dist/src/file/compression/index.js')).href;

/** kbuild's compressors: [tool (also the format name), options, output suffix]. */
export const FORMATS = [
  ['xz', ['--check=crc32', '--lzma2=dict=1MiB'], '.xz'],
  ['zstd', ['-q'], '.zst'],
  ['gzip', ['-n'], '.gz'],
];

/**
 * Compress `raw` kbuild-style into DIR/<basename>.{xz,zst,gz}.
 * @returns {{ tool: string, format: string, file: string }[]}
 */
export function compressKbuild(raw, dir) {
  return FORMATS.map(([tool, opts, suffix]) => {
    const file = path.join(dir, path.basename(raw) + suffix);
    fs.writeFileSync(file, execFileSync(tool, [...opts, '-c', raw], { maxBuffer: 1 << 30 }));
    return { tool, format: tool, file };
  });
}

/**
 * JS source of an expression: this process's peak RSS in bytes. VmHWM, not getrusage's maxRSS:
 * Linux carries maxRSS over from the forking parent. Needs `fs` (node:fs) in scope.
 */
export const PEAK_RSS_JS = `1024 * Number(/VmHWM:\\s*(\\d+)/.exec(fs.readFileSync('/proc/self/status', 'utf8'))[1])`;

/** Run `code` as an ES module in a fresh node and return its JSON output. */
export function child(code) {
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', code], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(r.stderr);
  return JSON.parse(r.stdout);
}

async function cli() {
  const args = process.argv.slice(2);
  const runsAt = args.indexOf('--runs');
  const RUNS = runsAt >= 0 ? Number(args.splice(runsAt, 2)[1]) : 30;
  const SIZE = 4.2e6;

  function sample() {
    if (args[0]) return fs.readFileSync(args[0]);
    const dir = '/usr/lib/x86_64-linux-gnu';
    const parts = [];
    let total = 0;
    for (const name of fs.readdirSync(dir).sort()) {
      if (total >= SIZE || !/\.so[.\d]*$/.test(name)) continue;
      const file = path.join(dir, name);
      if (!fs.statSync(file).isFile()) continue;
      const b = fs.readFileSync(file);
      if (b.subarray(0, 4).toString('latin1') !== '\x7fELF') continue;
      parts.push(b);
      total += b.length;
    }
    return Buffer.concat(parts).subarray(0, SIZE);
  }

  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'kmod-ts-bench-'));
  process.on('exit', () => fs.rmSync(work, { recursive: true, force: true }));
  const raw = path.join(work, 'mod.ko');
  const data = sample();
  fs.writeFileSync(raw, data);
  const formats = compressKbuild(raw, work);

  const devnull = fs.openSync('/dev/null', 'w');
  function bestSpawn(cmd, argv) {
    let best = Infinity;
    for (let i = 0; i < RUNS; i++) {
      const t = performance.now();
      const r = spawnSync(cmd, argv, { stdio: ['ignore', devnull, 'inherit'] });
      best = Math.min(best, performance.now() - t);
      if (r.status !== 0) throw new Error(`${cmd} ${argv.join(' ')} failed`);
    }
    return best;
  }

  const { decompressSync } = await import(compression);
  const spawnCost = bestSpawn('true', []);
  console.log(`sample: ${data.length} bytes; ${RUNS} runs; spawn cost ${spawnCost.toFixed(1)} ms (subtracted from the C tools)`);
  for (const { tool, format: fmt, file } of formats) {
    const input = fs.readFileSync(file);
    const cold = child(`
      import fs from 'node:fs';
      const input = fs.readFileSync(${JSON.stringify(file)});
      const t = performance.now();
      const { decompressSync } = await import(${JSON.stringify(compression)});
      decompressSync(${JSON.stringify(fmt)}, input);
      console.log(JSON.stringify(performance.now() - t));`);
    let warm = Infinity;
    for (let i = 0; i < RUNS; i++) {
      const t = performance.now();
      const got = decompressSync(fmt, input);
      warm = Math.min(warm, performance.now() - t);
      if (i === 0 && !got.equals(data)) throw new Error(`${fmt}: wrong output`);
    }
    const c = bestSpawn(tool, ['-dc', file]) - spawnCost;
    const rss = (dec) =>
      child(`
        import fs from 'node:fs';
        const input = fs.readFileSync(${JSON.stringify(file)});
        if (${dec}) { const { decompressSync } = await import(${JSON.stringify(compression)}); globalThis.keep = decompressSync(${JSON.stringify(fmt)}, input); }
        console.log(JSON.stringify(${PEAK_RSS_JS}));`);
    let base = Infinity;
    let withDec = Infinity;
    for (let i = 0; i < 5; i++) {
      base = Math.min(base, rss(false));
      withDec = Math.min(withDec, rss(true));
    }
    console.log(
      `${fmt.padEnd(4)}  ours warm ${warm.toFixed(1)} ms, cold ${cold.toFixed(1)} ms | ${tool} -dc ${c.toFixed(1)} ms | ` +
        `throughput vs ${tool}: warm ${(c / warm).toFixed(2)}x, cold ${(c / cold).toFixed(2)}x | ` +
        `peak RSS over read-only node: ${((withDec - base) / data.length).toFixed(2)}x output`,
    );
  }
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) await cli();

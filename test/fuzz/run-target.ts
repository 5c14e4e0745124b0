/**
 * One fuzzing process: runs one target's inputs (seeded mutations of real modules, from
 * fast-check) and prints one JSON line with what it did. Started by scripts/fuzz.mjs, which
 * watches it for crashes (a signal) and hangs (no new input for a while).
 *
 * Before each input it writes the input to WORK/current-TARGET.bin (WORK defaults to OUT), so a native crash or a hang
 * leaves its reproducer behind; a thrown error that is not the target's typed error, a run past
 * the per-input time budget (linear in the input's size) or memory past the cap is a failure,
 * shrunk by fast-check and written to OUT/TARGET-HASH.bin.
 *
 *   node dist/test/fuzz/run-target.js --target NAME --seed N (--time SECONDS | --runs N) --out DIR [--work DIR]
 *   node dist/test/fuzz/run-target.js --target NAME --replay FILE
 *
 * @module
 */
import { createHash } from 'node:crypto';
import { ftruncateSync, mkdirSync, openSync, readFileSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { cleanup, FUZZ_MAX_SIZE, targets, type Target } from './targets.js';

/** One edit of a seed. Offsets are taken modulo the input's length. */
type Mutation =
  | { kind: 'flip'; at: number; bit: number }
  | { kind: 'set'; at: number; value: number }
  | { kind: 'set32'; at: number; value: number }
  | { kind: 'insert'; at: number; bytes: Uint8Array }
  | { kind: 'delete'; at: number; len: number }
  | { kind: 'truncate'; at: number }
  | { kind: 'copy'; from: number; to: number; len: number };

const at = fc.nat();
const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ kind: fc.constant('flip' as const), at, bit: fc.integer({ min: 0, max: 7 }) }),
  fc.record({ kind: fc.constant('set' as const), at, value: fc.oneof(fc.integer({ min: 0, max: 255 }), fc.constantFrom(0, 0x7f, 0x80, 0xff)) }),
  fc.record({ kind: fc.constant('set32' as const), at, value: fc.constantFrom(0, 1, 0x7f, 0x80, 0xff, 0x7fff, 0xffff, 0x10000, 0x7fffffff, 0x80000000, 0xffffffff) }),
  fc.record({ kind: fc.constant('insert' as const), at, bytes: fc.uint8Array({ minLength: 1, maxLength: 32 }) }),
  fc.record({ kind: fc.constant('delete' as const), at, len: fc.integer({ min: 1, max: 256 }) }),
  fc.record({ kind: fc.constant('truncate' as const), at }),
  fc.record({ kind: fc.constant('copy' as const), from: at, to: at, len: fc.integer({ min: 1, max: 4096 }) }),
);

function apply(seed: Buffer, edits: readonly Mutation[]): Buffer {
  let b = Buffer.from(seed);
  for (const m of edits) {
    const n = b.length;
    const pos = (x: number) => (n === 0 ? 0 : x % n);
    switch (m.kind) {
      case 'flip':
        if (n) b[pos(m.at)] ^= 1 << m.bit;
        break;
      case 'set':
        if (n) b[pos(m.at)] = m.value;
        break;
      case 'set32':
        if (n >= 4) b.writeUInt32LE(m.value >>> 0, Math.min(pos(m.at) & ~3, n - 4));
        break;
      case 'insert':
        b = Buffer.concat([b.subarray(0, pos(m.at)), m.bytes, b.subarray(pos(m.at))]);
        break;
      case 'delete':
        b = Buffer.concat([b.subarray(0, pos(m.at)), b.subarray(pos(m.at) + m.len)]);
        break;
      case 'truncate':
        b = b.subarray(0, pos(m.at));
        break;
      case 'copy': {
        const piece = Buffer.from(b.subarray(pos(m.from), pos(m.from) + m.len));
        b = Buffer.concat([b.subarray(0, pos(m.to)), piece, b.subarray(pos(m.to))]);
        break;
      }
    }
  }
  return b;
}

/** Inputs for a target: mostly mutated seeds, some raw random bytes. */
function inputs(seeds: readonly Buffer[]): fc.Arbitrary<Buffer> {
  const mutated = fc.tuple(fc.nat({ max: seeds.length - 1 }), fc.array(mutation, { minLength: 1, maxLength: 8 })).map(([i, edits]) => apply(seeds[i], edits));
  return fc.oneof({ arbitrary: mutated, weight: 9 }, { arbitrary: fc.uint8Array({ maxLength: 2048 }).map((u) => Buffer.from(u)), weight: 1 });
}

/** Why an input failed, or undefined when the target handled it. */
function check(t: Target, input: Buffer, baseline: number, measureMemory = true): string | undefined {
  const start = performance.now();
  try {
    t.run(input);
  } catch (err) {
    if (!t.allowed(err)) return `uncaught ${(err as Error)?.name ?? typeof err}: ${(err as Error)?.message ?? String(err)}`;
  }
  let ms = performance.now() - start;
  // A shared machine stalls now and then: an input over budget is timed twice more, best kept.
  for (let i = 0; i < 2 && ms > t.budgetMs(input); i++) {
    const again = performance.now();
    try {
      t.run(input);
    } catch {
      // judged above
    }
    ms = Math.min(ms, performance.now() - again);
  }
  if (ms > t.budgetMs(input)) return `over the time budget: ${ms.toFixed(0)} ms for ${input.length} bytes (budget ${t.budgetMs(input).toFixed(0)} ms)`;
  // reading RSS costs about as much as a small input's run: every 64th input (a memory runaway lasts)
  if (!measureMemory) return undefined;
  const grown = process.memoryUsage.rss() - baseline;
  if (grown > FUZZ_MAX_SIZE + (256 << 20)) return `memory past the cap: RSS grew ${(grown / 2 ** 20).toFixed(0)} MiB`;
  return undefined;
}

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

function main(): void {
  // The typed errors are the expected answer to most inputs; their stacks cost a third of a run.
  Error.stackTraceLimit = 4;
  const name = arg('target');
  const target = targets().find((t) => t.name === name);
  if (!target) throw new Error(`no fuzz target '${name}'`);
  const replay = arg('replay');
  if (replay !== undefined) {
    const why = check(target, readFileSync(replay), process.memoryUsage.rss());
    console.log(JSON.stringify({ target: name, runs: 1, ms: 0, failure: why }));
    return;
  }
  const out = arg('out') ?? 'fuzz-out';
  mkdirSync(out, { recursive: true });
  // The input under test, kept on disk for the parent should this process die or hang: one
  // descriptor rewritten in place (a fresh file per input cost ~5 ms, most of a run's time).
  const current = openSync(join(arg('work') ?? out, `current-${name}.bin`), 'w');
  const seed = Number(arg('seed') ?? 1);
  const time = arg('time');
  const seeds = target.seeds();
  // warm the code paths once so that start-up costs (codec loading) do not count against a budget
  for (const s of seeds) check(target, s, process.memoryUsage.rss());
  const baseline = process.memoryUsage.rss();
  let runs = 0;
  const started = performance.now();
  const details = fc.check(
    fc.property(inputs(seeds), (input) => {
      runs++;
      ftruncateSync(current, 0);
      writeSync(current, input, 0, input.length, 0);
      const why = check(target, input, baseline, runs % 64 === 0);
      if (why) throw new Error(why);
    }),
    {
      seed,
      numRuns: time === undefined ? Number(arg('runs') ?? 200) : Number.MAX_SAFE_INTEGER,
      interruptAfterTimeLimit: time === undefined ? undefined : Number(time) * 1000,
      markInterruptAsFailure: false,
      endOnFailure: false,
    },
  );
  const ms = performance.now() - started;
  let failure: { message: string; file: string; path?: string } | undefined;
  if (details.failed && details.counterexample) {
    const input = details.counterexample[0] as Buffer;
    const file = join(out, `${name}-${createHash('sha1').update(input).digest('hex').slice(0, 12)}.bin`);
    writeFileSync(file, input);
    const message = (details.errorInstance as Error | undefined)?.message ?? String(details.errorInstance);
    failure = { message, file, path: details.counterexamplePath ?? undefined };
  }
  cleanup();
  console.log(JSON.stringify({ target: name, runs, ms, seed, failure }));
}

main();

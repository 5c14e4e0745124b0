/**
 * Real kernels: Debian 12 and 13 cloud kernels booted once each in QEMU (TCG), every cell of
 * cells.ts run inside the guest by one script, each cell reported here as its own test; and
 * Debian 13 arm64 (qemu-system-aarch64) with the cells of ARM64_CELLS.
 * KMOD_TS_VM_KERNELS=d12,d13-arm64,... boots those kernels instead, each with every cell
 * (`npm run test:arm64`: d12-arm64,d13-arm64).
 * Fails — never skips — when QEMU cannot run or a download fails.
 *
 * KMOD_TS_VM_CELLS=TEXT runs only the cells whose name contains TEXT; KMOD_TS_VM_MODPROBE=kmod
 * runs Debian's modprobe in place of ours in the modprobe cells (harness.ts).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { cellsFor } from './cells.js';
import { modprobeCells } from './modprobe-cells.js';
import type { Cell } from './harness.js';
import { writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ALL_KERNEL_NAMES, ARM64_CELLS, KERNEL_FACTS, KERNEL_NAMES, projectDir, bootKernel, prepareKernel, type KernelName, type RunResult } from './harness.js';

const t0 = Date.now();
const only = (process.env.KMOD_TS_VM_KERNELS ?? '').split(',').filter(Boolean) as KernelName[];
const unknown = only.filter((k) => !ALL_KERNEL_NAMES.includes(k));
if (unknown.length) throw new Error(`KMOD_TS_VM_KERNELS: unknown ${unknown.join(', ')} (want ${ALL_KERNEL_NAMES.join(', ')})`);
const kernels = only.length ? ALL_KERNEL_NAMES.filter((k) => only.includes(k)) : KERNEL_NAMES;

/** The cells for a kernel: all of them, but only ARM64_CELLS on arm64 unless asked for by name. */
function selected(k: KernelName): Cell[] {
  const all = [...cellsFor(k), ...modprobeCells(k)];
  if (KERNEL_FACTS[k].arch === 'amd64' || only.includes(k)) return all;
  const missing = ARM64_CELLS.filter((re) => !all.some((c) => re.test(c.name)));
  if (missing.length) throw new Error(`ARM64_CELLS names cells that cellsFor('${k}') does not have: ${missing.join(', ')}`);
  return all.filter((c) => ARM64_CELLS.some((re) => re.test(c.name)));
}
// KMOD_TS_VM_CELLS=TEXT keeps only the cells whose name contains TEXT (while working on some).
const pick = process.env.KMOD_TS_VM_CELLS;
const cells = new Map(kernels.map((k) => [k, selected(k).filter((c) => !pick || c.name.includes(pick))]));

// Preparations run one after the other (they build shared image layers); each kernel boots as
// soon as its image is ready and one of the boot slots is free (one single-CPU guest per core:
// a third guest on a 2-core machine would only slow the other two), so the second preparation
// overlaps the first boot.
const slots = { free: Math.max(1, Math.min(kernels.length, os.availableParallelism())), waiting: [] as (() => void)[] };
async function inSlot<T>(fn: () => Promise<T>): Promise<T> {
  if (slots.free > 0) slots.free--;
  else await new Promise<void>((resolve) => slots.waiting.push(resolve));
  try {
    return await fn();
  } finally {
    const next = slots.waiting.shift();
    if (next) next();
    else slots.free++;
  }
}
const runs = new Map<KernelName, Promise<RunResult>>();
let previous: Promise<unknown> = Promise.resolve();
for (const k of kernels) {
  const prep = previous.then(() => prepareKernel(k, cells.get(k)!));
  previous = prep.catch(() => undefined);
  const run = prep.then((p) => inSlot(() => bootKernel(p, { smp: 1 })));
  run.catch(() => undefined); // reported by the tests below
  runs.set(k, run);
}

/** Every cell's commands and what they printed, for people reading a run (build/vmtest/). */
function transcript(list: readonly Cell[], r: RunResult): string {
  const out = [`# ${KERNEL_FACTS[r.kernel].label} ${r.kver}`];
  list.forEach((c, i) => {
    out.push('', `## ${c.name}`);
    c.steps.forEach((cmd, j) => {
      const s = r.steps.get(i)?.[j];
      out.push(`$ ${cmd}`);
      if (!s) { out.push('  (no result)'); return; }
      if (s.out) out.push(s.out.trimEnd().split('\n').map((l) => `  ${l}`).join('\n'));
      if (s.err) out.push(s.err.trimEnd().split('\n').map((l) => `  !${l}`).join('\n'));
      out.push(`  [exit ${s.rc}, ${s.ms} ms]`);
    });
  });
  return `${out.join('\n')}\n`;
}

const summary: string[] = [];
after(() => {
  const line = `real-kernel suite: ${summary.join('; ')}; total ${((Date.now() - t0) / 1000).toFixed(1)} s`;
  process.stdout.write(`# ${line}\n`);
});

for (const k of kernels) {
  const list = cells.get(k)!;
  describe(`${KERNEL_FACTS[k].label} (${k}) in QEMU`, () => {
    let result: RunResult | undefined;
    let failure: unknown;
    let passed = 0;
    before(async () => {
      try {
        result = await runs.get(k)!;
      } catch (e) {
        // A VmError carries the whole serial log: keep it in a file, not in every cell's report.
        const err = e as Error & { serial?: string };
        let where = '';
        if (err.serial) {
          const log = path.join(projectDir, 'build', 'vmtest', `serial-${k}.log`);
          writeFileSync(log, err.serial);
          where = ` (serial log: ${log})`;
        }
        failure = new Error(`${err.message.split('\n')[0]}${where}`);
      }
    });
    after(() => {
      summary.push(result
        ? `${k} ${result.kver}: ${passed}/${list.length} cells passed, guest ${((result.totalMs - result.prepMs) / 1000).toFixed(1)} s (boot ${(result.bootMs / 1000).toFixed(1)} s), prepare ${(result.prepMs / 1000).toFixed(1)} s`
        : `${k}: did not run (${String((failure as Error)?.message ?? failure).split('\n')[0]})`);
    });
    it('boots, runs every cell and powers off', (t) => {
      if (failure) throw failure;
      assert.ok(result);
      writeFileSync(path.join(projectDir, 'build', 'vmtest', `serial-${k}.log`), result.serial);
      writeFileSync(path.join(projectDir, 'build', 'vmtest', `transcript-${k}.txt`), transcript(list, result));
      for (const n of result.notes) t.diagnostic(n);
      assert.deepEqual(result.problems, [], 'preparation problems');
      assert.match(result.serial, /@@DONE@@/, `the guest script did not finish; output tail:\n${result.output.slice(-3000)}`);
    });
    list.forEach((cell, i) => {
      it(cell.name, () => {
        if (failure) throw failure;
        assert.ok(result);
        const steps = result.steps.get(i);
        assert.ok(steps && steps.length === cell.steps.length, `no results for this cell (${steps?.length ?? 0}/${cell.steps.length} steps)`);
        cell.check(steps);
        passed++;
      });
    });
  });
}

/**
 * The cached Debian kernels (scripts/kernels.mjs) and Debian 13's kmod 34.2 (scripts/kmod-ref.mjs)
 * for tests that compare with kmod. Both are fetched once by `npm run setup` and cached.
 */
import path from 'node:path';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { pathToFileURL } from 'node:url';

const PROJECT = path.resolve('.');

/** What scripts/kernels.mjs says about one kernel. */
export interface Kernel {
  name: string;
  label: string;
  kver: string;
  root: string;
  modulesDir: string;
  compression: string;
}

/** The result of a reference tool run. */
export interface RefRun {
  status: number;
  stdout: Buffer;
  stderr: Buffer;
}

interface KernelsModule {
  ensureKernel(n: string): Promise<Kernel>;
  moduleFiles(modulesDir: string): string[];
}
interface KmodRefModule {
  ensureKmodRef(): Promise<unknown>;
  runKmodRef(tool: string, args: string[], opts?: { cwd?: string; env?: NodeJS.ProcessEnv }): Promise<RefRun>;
  runKmodRefSync(ref: unknown, tool: string, args: string[], opts?: { cwd?: string }): RefRun;
  kmodRefArgv(ref: unknown, tool: string, args: string[]): string[];
}

/** scripts/kernels.mjs */
export async function kernelsScript(): Promise<KernelsModule> {
  return (await import(pathToFileURL(path.join(PROJECT, 'scripts', 'kernels.mjs')).href)) as KernelsModule;
}

/** scripts/kmod-ref.mjs */
export async function kmodRefScript(): Promise<KmodRefModule> {
  return (await import(pathToFileURL(path.join(PROJECT, 'scripts', 'kmod-ref.mjs')).href)) as KmodRefModule;
}

/** Both cached kernels, d12 then d13. */
export async function debianKernels(): Promise<Kernel[]> {
  const k = await kernelsScript();
  return [await k.ensureKernel('d12'), await k.ensureKernel('d13')];
}

/**
 * kmod 34.2's depmod run over a cached kernel's tree with `-o` into a fresh directory.
 * @returns the directory holding its files (OUT/lib/modules/KVER)
 */
export async function kmod34Depmod(k: Kernel): Promise<string> {
  const out = mkdtempSync(path.join(tmpdir(), `kmod34-${k.name}-`));
  const r = await (await kmodRefScript()).runKmodRef('depmod', ['-b', k.root, '-o', out, k.kver]);
  if (r.status !== 0) throw new Error(`kmod 34.2 depmod failed (${r.status}): ${r.stderr}`);
  return path.join(out, 'lib', 'modules', k.kver);
}

/**
 * One pool of worker threads that read parts of many module files at once (`modinfo` of many
 * modules, depmod's whole tree): each worker runs {@link module-worker}, requests go to the
 * worker with the fewest in flight, and the workers do not keep the process alive while idle.
 *
 * @module
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import type { Worker } from 'node:worker_threads';
import type { WorkerRequest } from './module-worker.js';

/** Requests a worker holds at once: one being read and some waiting, so that it never idles while this thread is busy (formatting, a GC pause) before it can hand out the next. 2 left bulk modinfo workers idle; 4 made it ~10 % faster. */
const IN_FLIGHT = 4;

type Pending = { resolve: (m: Record<string, unknown>) => void; reject: (e: unknown) => void };

/** Request without its id (the pool numbers them). */
export type PoolRequest = WorkerRequest extends infer R ? (R extends { id: number } ? Omit<R, 'id'> : never) : never;

/**
 * Worker threads for module reading.
 * @example
 * const pool = await ModulePool.start(2);
 * if (pool) try { await pool.request({ kind: 'depmod', files }) } finally { pool.close() }
 */
export class ModulePool {
  readonly #workers: Array<{ w: Worker; busy: number }> = [];
  readonly #pending = new Map<number, Pending & { slot: { w: Worker; busy: number } }>();
  #next = 0;
  /** requests not yet handed to a worker: `#queue[#taken..]` */
  readonly #queue: Array<{ req: PoolRequest } & Pending> = [];
  #taken = 0;

  private constructor() {}

  /** The number of threads worth starting: one per core. */
  static defaultSize(): number {
    return typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length;
  }

  /**
   * Starts `size` workers, at once: nothing before their creation awaits, so a caller that goes on
   * with synchronous work (depmod's scan of the tree) has them starting meanwhile.
   * @returns the pool, or undefined when workers cannot be had (no worker script beside this
   *   file, e.g. some repackaging) — then read on the calling thread
   */
  static async start(size: number): Promise<ModulePool | undefined> {
    if (size <= 0) return undefined;
    // beside the CommonJS bundle, the worker is bundled as CommonJS too (module-worker.cjs)
    const url = new URL(import.meta.url.endsWith('.cjs') ? './module-worker.cjs' : './module-worker.js', import.meta.url);
    if (url.protocol !== 'file:' || !existsSync(fileURLToPath(url))) return undefined;
    const { Worker } = createRequire(import.meta.url)('node:worker_threads') as typeof import('node:worker_threads');
    const pool = new ModulePool();
    for (let i = 0; i < size; i++) {
      const slot = { w: new Worker(url), busy: 0 };
      slot.w.on('message', (m: Record<string, unknown> & { id: number }) => {
        const p = pool.#pending.get(m.id);
        if (!p) return;
        pool.#pending.delete(m.id);
        if (--p.slot.busy === 0) p.slot.w.unref();
        p.resolve(m);
        pool.#dispatch();
      });
      slot.w.on('error', (e) => {
        for (const [id, p] of pool.#pending) {
          if (p.slot !== slot) continue;
          pool.#pending.delete(id);
          p.reject(e);
        }
        // a dead worker takes no more; with none left, what is queued fails too
        slot.busy = Infinity;
        if (pool.#workers.every((x) => x.busy === Infinity)) {
          for (const q of pool.#queue.splice(pool.#taken)) q.reject(e);
          pool.#queue.length = 0;
          pool.#taken = 0;
        }
      });
      slot.w.unref();
      pool.#workers.push(slot);
    }
    return pool;
  }

  /** Number of worker threads. */
  get size(): number {
    return this.#workers.length;
  }

  /**
   * Queues one request; it goes to a worker as soon as one has fewer than {@link IN_FLIGHT}
   * requests in flight. Handing every request out at once would fix each worker's share in
   * advance, and the one that drew the larger modules would finish alone (modinfo of Debian 13's
   * tree: one worker 500 ms behind the other).
   * @param req a `modinfo` or `depmod` request
   * @returns the worker's answer (`{ id, parts }`, `{ id, error }` or `{ id, results }`)
   */
  request(req: PoolRequest): Promise<Record<string, unknown>> {
    return new Promise((resolve, reject) => {
      this.#queue.push({ req, resolve, reject });
      this.#dispatch();
    });
  }

  /** Hands queued requests to workers with room. */
  #dispatch(): void {
    while (this.#queue.length > this.#taken) {
      const slot = this.#workers.reduce((a, b) => (b.busy < a.busy ? b : a));
      if (slot.busy >= IN_FLIGHT) return;
      const { req, resolve, reject } = this.#queue[this.#taken++];
      if (this.#taken === this.#queue.length) {
        this.#queue.length = 0;
        this.#taken = 0;
      }
      const id = this.#next++;
      this.#pending.set(id, { resolve, reject, slot });
      if (slot.busy++ === 0) slot.w.ref();
      slot.w.postMessage({ ...req, id });
    }
  }

  /** Ends the worker threads. */
  close(): void {
    for (const { w } of this.#workers) void w.terminate();
    this.#workers.length = 0;
  }
}

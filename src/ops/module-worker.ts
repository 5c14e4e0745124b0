/**
 * Worker thread body of the {@link ModulePool}: reads parts of module files off the main thread,
 * so many compressed modules are decompressed on all cores at once. Two kinds of request:
 * - `modinfo`: `{ id, kind, file, maxSize }` → `{ id, parts }` (the `.modinfo` section and the
 *   signature, {@link readModinfoParts}) or `{ id, error: { kind, errno, message, format } }`;
 * - `depmod`: `{ id, kind, files, maxSize }` → `{ id, results }`, one {@link readDepmodParts}
 *   result per file (a batch: one message per module would cost more than reading a small one).
 *
 * @module
 */
import { parentPort } from 'node:worker_threads';
import { ModuleFileError } from '../errors.js';
import { Errno } from '../kernel/errno.js';
import type { XzOptions } from '../file/compression/index.js';
import { readDepmodParts, readModinfoParts, scratchBuffers } from '../file/module-file.js';

/** A request from the main thread. */
export type WorkerRequest =
  | { id: number; kind: 'modinfo'; file: string; maxSize?: number; xz?: XzOptions }
  | { id: number; kind: 'depmod'; files: string[]; maxSize?: number }
  | { id: number; kind: 'insert'; file: string; insert: InsertRequest };

/** `modprobe -j N`: one module inserted from a worker thread, its syscalls made there. */
export interface InsertRequest {
  params: string;
  forceModversion: boolean;
  forceVermagic: boolean;
  path?: 'finit' | 'mmap' | 'read';
  maxSize?: number;
  xz?: XzOptions;
  root: string;
}

/** The answer to an `insert`: 0 or the errno, and the codec's words when decompression failed. */
export interface InsertAnswer {
  errno: number;
  kind?: string;
  format?: string;
  message?: string;
}

async function insert(file: string, r: InsertRequest): Promise<InsertAnswer> {
  const [{ loadModule }, { nativeSyscalls }] = await Promise.all([import('./load-module.js'), import('../kernel/syscalls.js')]);
  try {
    await loadModule(file, { ...r, sys: nativeSyscalls() });
    return { errno: 0 };
  } catch (e) {
    const x = e as { errno?: unknown; kind?: unknown; format?: unknown; message?: unknown };
    return { errno: typeof x.errno === 'number' ? x.errno : Errno.EIO, kind: typeof x.kind === 'string' ? x.kind : undefined, format: typeof x.format === 'string' ? x.format : undefined, message: String(x.message ?? e) };
  }
}

/** This thread's reusable buffers: what is kept of a module is copied out of them. */
const scratch = scratchBuffers();

parentPort?.on('message', (req: WorkerRequest) => {
  if (req.kind === 'insert') {
    void insert(req.file, req.insert).then((answer) => parentPort!.postMessage({ id: req.id, answer }));
    return;
  }
  if (req.kind === 'depmod') {
    const results = req.files.map((f) => {
      try {
        return readDepmodParts(f, { maxSize: req.maxSize, scratch });
      } catch (e) {
        // anything else is a bug; EIO keeps the report in kmod's shape
        return { errno: Errno.EIO, codecMessage: undefined, bug: String((e as Error)?.message ?? e) };
      }
    });
    parentPort!.postMessage({ id: req.id, results });
    return;
  }
  try {
    const parts = readModinfoParts(req.file, { maxSize: req.maxSize, xz: req.xz, scratch });
    const transfer = [parts.modinfo.buffer];
    if (parts.signature) transfer.push(parts.signature.signer.buffer, parts.signature.keyId.buffer, parts.signature.signature.buffer);
    parentPort!.postMessage({ id: req.id, parts }, transfer as ArrayBuffer[]);
  } catch (e) {
    // anything else is a bug; EIO keeps the main thread's report in kmod's shape
    const err = e instanceof ModuleFileError ? e : new ModuleFileError('read', req.file, String((e as Error)?.message ?? e), { errno: Errno.EIO });
    parentPort!.postMessage({ id: req.id, error: { kind: err.kind, errno: err.errno, message: err.message, format: err.format } });
  }
});

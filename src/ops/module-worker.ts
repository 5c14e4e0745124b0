/**
 * Worker thread body of the {@link ModulePool}: reads parts of module files off the main thread,
 * so many compressed modules are decompressed on all cores at once. Two kinds of request:
 * - `modinfo`: `{ id, kind, files, maxSize, xz }` → `{ id, results }`, per file `{ parts }` (the
 *   `.modinfo` section and the signature, {@link readModinfoParts}) or
 *   `{ error: { kind, errno, message, format } }` (a few files per message: one message per
 *   module was a tenth of a worker's time);
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
  | { id: number; kind: 'modinfo'; files: string[]; maxSize?: number; xz?: XzOptions }
  | { id: number; kind: 'depmod'; files: string[]; maxSize?: number };

/** This thread's reusable buffers: what is kept of a module is copied out of them. */
const scratch = scratchBuffers();

parentPort?.on('message', (req: WorkerRequest) => {
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
  const transfer: ArrayBuffer[] = [];
  const results = req.files.map((file) => {
    try {
      const parts = readModinfoParts(file, { maxSize: req.maxSize, xz: req.xz, scratch });
      transfer.push(parts.modinfo.buffer as ArrayBuffer);
      if (parts.signature) transfer.push(parts.signature.signer.buffer as ArrayBuffer, parts.signature.keyId.buffer as ArrayBuffer, parts.signature.signature.buffer as ArrayBuffer);
      return { parts };
    } catch (e) {
      // anything else is a bug; EIO keeps the main thread's report in kmod's shape
      const err = e instanceof ModuleFileError ? e : new ModuleFileError('read', file, String((e as Error)?.message ?? e), { errno: Errno.EIO });
      return { error: { kind: err.kind, errno: err.errno, message: err.message, format: err.format } };
    }
  });
  parentPort!.postMessage({ id: req.id, results }, transfer);
});

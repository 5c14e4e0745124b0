/**
 * Worker thread body for bulk `modinfo`: reads and decompresses module files off the main
 * thread, so many compressed modules are decompressed on all cores at once. Answers each
 * `{ id, file, maxSize }` with `{ id, parts }` or `{ id, error: { errno, message, format } }`.
 *
 * @module
 */
import { parentPort } from 'node:worker_threads';
import { ImageError, readImageParts } from '../file/modinfo-image.js';

/** A request from the main thread. */
export interface WorkerRequest {
  id: number;
  file: string;
  maxSize?: number;
}

parentPort?.on('message', (req: WorkerRequest) => {
  try {
    const parts = readImageParts(req.file, { maxSize: req.maxSize });
    const transfer = [parts.modinfo.buffer];
    if (parts.signature) transfer.push(parts.signature.signer.buffer, parts.signature.keyId.buffer, parts.signature.signature.buffer);
    parentPort!.postMessage({ id: req.id, parts }, transfer as ArrayBuffer[]);
  } catch (e) {
    // anything else is a bug; EIO keeps the main thread's report in kmod's shape
    const err = e instanceof ImageError ? e : new ImageError(5, String((e as Error)?.message ?? e));
    parentPort!.postMessage({ id: req.id, error: { errno: err.errno, message: err.message, format: err.format } });
  }
});

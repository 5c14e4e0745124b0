#!/usr/bin/env node
// The shipped entry point: the one-file bundle (fast start-up); the compiled modules when the
// bundle was not built (a checkout where only `tsc` ran).
try {
  await import('../dist/bundle/kmod-ts.mjs');
} catch (err) {
  if (err?.code !== 'ERR_MODULE_NOT_FOUND' || !String(err.message).includes('kmod-ts.mjs')) throw err;
  await import('../dist/src/cli.js');
}

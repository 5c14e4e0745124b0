#!/usr/bin/env node
// The shipped entry point (CommonJS, see bin/package.json: the fastest start): the one-file
// bundle, or the compiled modules when the bundle was not built (a checkout where only tsc ran).
'use strict';
const { existsSync } = require('node:fs');
const { join } = require('node:path');
const bundle = join(__dirname, '..', 'dist', 'bundle', 'kmod-ts.cjs');
if (existsSync(bundle)) require(bundle);
else import('../dist/src/cli/entry.js');

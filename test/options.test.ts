import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { HELP, parseOptions, usageText, VERBOSE, VERSION, type AppletSpec, type OptionSpec } from '../src/cli/options.js';

const OPTIONS = [
  { key: 'field', short: 'a', long: 'author', value: 'author', help: "Print only 'author'" },
  { key: 'field', short: 'n', long: 'filename', value: 'filename', help: "Print only 'filename'" },
  { key: 'nul', short: '0', long: 'null', help: 'Use \\0 instead of \\n' },
  { key: 'field', short: 'F', long: 'field', arg: 'FIELD', help: 'Print only provided FIELD' },
  { key: 'config', short: 'C', long: 'config', arg: 'FILE', repeat: 'array', help: 'read FILE' },
  { key: 'force', short: 'f', long: 'force', help: 'force' },
  { key: 'forceVermagic', long: 'force-vermagic', help: 'force vermagic' },
  VERBOSE,
  VERSION,
  HELP,
] as const satisfies readonly OptionSpec[];

describe('the command line is read as GNU getopt_long reads it', () => {
  const cases: Array<[args: string[], want: unknown]> = [
    [[], { options: { field: undefined, nul: false, config: [], force: false, forceVermagic: false, verbose: 0 }, operands: [] }],
    [['-0F', 'license', 'vfat'], { options: { field: 'license', nul: true }, operands: ['vfat'] }],
    [['-0Flicense', 'vfat'], { options: { field: 'license', nul: true }, operands: ['vfat'] }],
    [['vfat', '--field', 'x', 'ext4'], { options: { field: 'x' }, operands: ['vfat', 'ext4'] }],
    [['--field=a=b'], { options: { field: 'a=b' }, operands: [] }],
    [['--field='], { options: { field: '' }, operands: [] }],
    [['-F', '-n'], { options: { field: '-n' }, operands: [] }],
    [['-a', '-F', 'license', '-n'], { options: { field: 'filename' }, operands: [] }],
    [['-n', '--author'], { options: { field: 'author' }, operands: [] }],
    [['--fiel', 'x'], { options: { field: 'x' }, operands: [] }],
    [['--force'], { options: { force: true, forceVermagic: false }, operands: [] }],
    [['--force-v'], { options: { force: false, forceVermagic: true }, operands: [] }],
    [['-vvf', '-v'], { options: { verbose: 3, force: true }, operands: [] }],
    [['-C', 'a', '--config=b', '-Cc'], { options: { config: ['a', 'b', 'c'] }, operands: [] }],
    [['m.ko', '--', '-x=1', '--force'], { options: { force: false }, operands: ['m.ko', '-x=1', '--force'] }],
    [['-', 'x'], { options: {}, operands: ['-', 'x'] }],
    [['-h', '-z'], 'help'],
    [['--vers', '--bogus'], 'version'],
    [['-z', '-h'], "invalid option -- 'z'"],
    [['-F'], "option requires an argument -- 'F'"],
    [['--field'], "option '--field' requires an argument"],
    [['--bogus=3'], "unrecognized option '--bogus=3'"],
    [['--f'], "option '--f' is ambiguous; possibilities: '--filename' '--field' '--force' '--force-vermagic'"],
    [['--author=x'], "option '--author' doesn't allow an argument"],
  ];
  for (const [args, want] of cases) {
    it(`${JSON.stringify(args)} → ${JSON.stringify(want)}`, () => {
      const r = parseOptions(OPTIONS, args);
      if (typeof want === 'string') {
        if (want === 'help' || want === 'version') assert.deepEqual(r, { kind: want });
        else assert.deepEqual(r, { kind: 'error', message: want });
        return;
      }
      assert.equal(r.kind, 'options', JSON.stringify(r));
      if (r.kind !== 'options') return;
      const w = want as { options: Record<string, unknown>; operands: string[] };
      assert.deepEqual(r.operands, w.operands);
      for (const [k, v] of Object.entries(w.options)) assert.deepEqual((r.options as Record<string, unknown>)[k], v, `option ${k}`);
    });
  }
});

describe('the usage text comes from the table, in kmod\'s layout', () => {
  it('aligns help at 3 past the longest option, at least 18, and continues broken lines', () => {
    const spec: AppletSpec = {
      name: 'x',
      summary: 's',
      usage: '[options] NAME',
      options: [{ key: 'force', short: 'f', long: 'force', help: 'one\ntwo' }, { key: 'set', short: 'k', long: 'set-version', arg: 'VERSION', help: 'kver' }, HELP],
      environment: [{ name: 'X=Y', help: 'env' }],
    };
    assert.equal(
      usageText(spec, 'prog'),
      'Usage:\n\tprog [options] NAME\nOptions:\n' +
        '\t-f, --force                 one\n' +
        '\t                            two\n' +
        '\t-k, --set-version=VERSION   kver\n' +
        '\t-h, --help                  show this help\n' +
        'Environment:\n\tX=Y               env\n',
    );
  });
});

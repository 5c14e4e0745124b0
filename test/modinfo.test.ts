import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import modinfoApplet from '../applets/modinfo.js';
import type { AppletContext } from '../src/cli/applet.js';
import { modinfo, moduleParams, infoList } from '../src/ops/modinfo.js';
import { LookupError } from '../src/errors.js';
import { describeSignature, hexColumns } from '../src/file/signature.js';
import { fnmatch, aliasNormalize, modnameNormalize } from '../src/db/names.js';
import { loadNativeLibrary } from '../src/kernel/ffi.js';
import { appendSignature, buildElf } from './helpers/elf-builder.js';
import { compress, tempDir } from './helpers/modules.js';
import { seededRandom } from './helpers/random.js';

// --- a minimal DER writer for PKCS#7 fixtures -------------------------------------------------
function tlv(tag: number, body: Uint8Array | Uint8Array[], indefinite = false): Buffer {
  const b = Buffer.concat(Array.isArray(body) ? body : [body]);
  if (indefinite) return Buffer.concat([Buffer.from([tag, 0x80]), b, Buffer.from([0, 0])]);
  let len: Buffer;
  if (b.length < 0x80) len = Buffer.from([b.length]);
  else if (b.length < 0x100) len = Buffer.from([0x81, b.length]);
  else len = Buffer.from([0x82, b.length >> 8, b.length & 0xff]);
  return Buffer.concat([Buffer.from([tag]), len, b]);
}
function oid(dotted: string): Buffer {
  const [a, b, ...rest] = dotted.split('.').map(Number);
  const out = [a * 40 + b];
  for (const n of rest) {
    const bytes = [n & 0x7f];
    for (let v = n >> 7; v > 0; v >>= 7) bytes.unshift((v & 0x7f) | 0x80);
    out.push(...bytes);
  }
  return tlv(0x06, Buffer.from(out));
}
const seq = (...xs: Uint8Array[]) => tlv(0x30, xs);
const set = (...xs: Uint8Array[]) => tlv(0x31, xs);
const NULL = Buffer.from([0x05, 0x00]);

/** A PKCS#7 SignedData like sign-file writes: no certificates, issuer and serial, detached. */
function pkcs7(o: { cn?: string; serial: number[]; digest: string; sig: Buffer; indefinite?: boolean; names?: Array<[string, string]> }): Buffer {
  const names = o.names ?? [['2.5.4.10', 'Org'], ['2.5.4.3', o.cn ?? 'Test signing key']];
  const issuer = seq(...names.map(([t, v]) => set(seq(oid(t), tlv(0x0c, Buffer.from(v))))));
  const signerInfo = seq(
    tlv(0x02, Buffer.from([1])),
    seq(issuer, tlv(0x02, Buffer.from(o.serial))),
    seq(oid(o.digest), NULL),
    seq(oid('1.2.840.113549.1.1.1'), NULL),
    tlv(0x04, o.sig),
  );
  const signedData = seq(tlv(0x02, Buffer.from([1])), set(seq(oid(o.digest), NULL)), seq(oid('1.2.840.113549.1.7.1')), set(signerInfo));
  return tlv(0x30, [oid('1.2.840.113549.1.7.2'), tlv(0xa0, signedData, o.indefinite)], o.indefinite);
}

const SHA256 = '2.16.840.1.101.3.4.2.1';
const SIG = Buffer.from(Array.from({ length: 25 }, (_, i) => i * 9 + 1));

function elfModule(modinfo: string, sig?: Buffer): Buffer {
  const { image } = buildElf({ sections: [{ name: '.text', data: 'x' }, { name: '.modinfo', data: modinfo, flags: 2 }] });
  return sig ? appendSignature(image, { sig, idType: 2, hash: 4 }) : image;
}

// --- fixture root ------------------------------------------------------------------------------
const KVER = '9.9.9-test';
let root: string;
let dir: string;
const FOO_INFO = ['alias=pci:v00001234d*sv*sd*bc*sc*i*', 'license=GPL', 'parmtype=speed:int', 'parm=speed:Link speed', 'author=J\xf6rg', 'parm=mode:Mode', 'depends=', 'name=foo', 'vermagic=9.9.9 SMP mod_unload ', 'parmtype=debug:bool', ''].join('\0');

before(() => {
  root = tempDir('kmod-ts-modinfo-');
  dir = path.join(root, 'lib/modules', KVER);
  mkdirSync(path.join(dir, 'kernel/drivers'), { recursive: true });
  writeFileSync(path.join(dir, 'kernel/drivers/foo.ko'), elfModule(FOO_INFO, pkcs7({ serial: [0x00, 0x9a, 0xbc], digest: SHA256, sig: SIG })));
  writeFileSync(path.join(dir, 'kernel/drivers/bar-x.ko.xz'), compress('xz', elfModule('license=GPL v2\0alias=bar-alias\0name=bar_x\0', pkcs7({ serial: [1], digest: SHA256, sig: SIG.subarray(0, 3), indefinite: true }))));
  writeFileSync(path.join(dir, 'kernel/drivers/noinfo.ko'), buildElf({ sections: [{ name: '.text', data: 'x' }] }).image);
  writeFileSync(path.join(dir, 'modules.dep'), 'kernel/drivers/foo.ko:\nkernel/drivers/bar-x.ko.xz: kernel/drivers/foo.ko\nkernel/drivers/noinfo.ko:\n');
  writeFileSync(path.join(dir, 'modules.alias'), '# Aliases\nalias pci:v00001234d*sv*sd*bc*sc*i* foo\nalias bar-alias bar_x\nalias common* bar_x\nalias common* foo\n');
  writeFileSync(path.join(dir, 'modules.builtin'), 'kernel/fs/ext9/ext9.ko\n');
  writeFileSync(path.join(dir, 'modules.builtin.modinfo'), 'ext9.license=GPL\0ext9.alias=fs-ext9\0ext9.parm=x:The x\0ext9.parmtype=x:uint\0');
});
after(() => rmSync(root, { recursive: true, force: true }));

async function run(args: string[]): Promise<{ status: number; stdout: Buffer; stderr: string }> {
  const out: Buffer[] = [];
  let stderr = '';
  const toBuf = (s: unknown) => (Buffer.isBuffer(s) ? s : Buffer.from(String(s)));
  const ctx: AppletContext = {
    prog: 'modinfo',
    args,
    stdout: { write: (s: unknown) => out.push(toBuf(s)) },
    stderr: { write: (s: unknown) => (stderr += toBuf(s).toString('latin1')) },
    root: '/',
    sys: undefined as never,
    env: {},
  };
  const status = await modinfoApplet.run(ctx);
  return { status, stdout: Buffer.concat(out), stderr };
}

const FOO_SIG = [
  'sig_id:         PKCS#7',
  'signer:         Test signing key',
  'sig_key:        9A:BC',
  'sig_hashalgo:   sha256',
  'signature:      01:0A:13:1C:25:2E:37:40:49:52:5B:64:6D:76:7F:88:91:9A:A3:AC:',
  '\t\tB5:BE:C7:D0:D9',
];

describe('modinfo applet', () => {
  test('prints a file in kmod\'s layout: keys padded to column 16, signature, then parameters newest first', async () => {
    const file = path.join(dir, 'kernel/drivers/foo.ko');
    const r = await run([file]);
    assert.equal(r.stderr, '');
    assert.equal(r.status, 0);
    const want = [
      `filename:       ${file}`,
      'alias:          pci:v00001234d*sv*sd*bc*sc*i*',
      'license:        GPL',
      'author:         J\xf6rg',
      'depends:        ',
      'name:           foo',
      'vermagic:       9.9.9 SMP mod_unload ',
      ...FOO_SIG,
      'parm:           debug:bool',
      'parm:           mode:Mode',
      'parm:           speed:Link speed (int)',
      '',
    ].join('\n');
    assert.equal(r.stdout.toString('latin1'), want);
  });

  const fieldCases: Array<{ name: string; args: string[]; want: string }> = [
    { name: '-F author keeps non-UTF-8 bytes', args: ['-F', 'author'], want: 'J\xf6rg\n' },
    { name: '-a is -F author', args: ['-a'], want: 'J\xf6rg\n' },
    { name: '-p lists parameters without the parm: prefix', args: ['-p'], want: 'debug: (bool)\nmode:Mode\nspeed:Link speed (int)\n' },
    { name: '-F sig_key prints the hex', args: ['-F', 'sig_key'], want: '9A:BC\n' },
    { name: '-F signature keeps the line breaks', args: ['-F', 'signature'], want: FOO_SIG.slice(4).join('\n').replace('signature:      ', '') + '\n' },
    { name: '-0 -F license ends with NUL', args: ['-0', '-F', 'license'], want: 'GPL\0' },
    { name: 'the last field option wins', args: ['-F', 'name', '-l'], want: 'GPL\n' },
    { name: '-F with an unknown field prints nothing', args: ['-F', 'nosuch'], want: '' },
  ];
  for (const c of fieldCases) {
    test(c.name, async () => {
      const r = await run([...c.args, path.join(dir, 'kernel/drivers/foo.ko')]);
      assert.equal(r.stdout.toString('latin1'), c.want);
      assert.equal(r.status, 0);
    });
  }

  test('-0 prints key=value pairs, but filename and parm lines keep their padding', async () => {
    const file = path.join(dir, 'kernel/drivers/foo.ko');
    const r = await run(['-0', file]);
    const parts = r.stdout.toString('latin1').split('\0');
    assert.equal(parts[0], `filename:       ${file}`);
    assert.equal(parts[1], 'alias=pci:v00001234d*sv*sd*bc*sc*i*');
    assert.ok(parts.includes('sig_key=9A:BC'));
    assert.ok(parts.includes('parm:           speed:Link speed (int)'));
  });

  test('resolves a name through modules.dep and decompresses .ko.xz (indefinite-length PKCS#7)', async () => {
    const r = await run(['-b', root, '-k', KVER, 'bar-x']);
    assert.equal(r.stderr, '');
    const text = r.stdout.toString();
    assert.match(text, new RegExp(`^filename:       ${dir}/kernel/drivers/bar-x.ko.xz\nlicense:        GPL v2\n`));
    assert.match(text, /\nsig_key:        01\nsig_hashalgo:   sha256\nsignature:      01:0A:13\n$/);
  });

  test('lists every module an alias matches, in depmod\'s module order (first appearance in modules.alias)', async () => {
    const r = await run(['-b', root, '-k', KVER, '-F', 'name', 'commonX', 'pci:v00001234d00000001sv0sd0bc0sc0i0']);
    assert.equal(r.stdout.toString(), 'foo\nbar_x\nfoo\n');
  });

  test('shows a built-in module from modules.builtin.modinfo', async () => {
    const r = await run(['-b', root, '-k', KVER, 'ext9']);
    assert.equal(r.stdout.toString(), 'name:           ext9\nfilename:       (builtin)\nlicense:        GPL\nalias:          fs-ext9\nparm:           x:The x (uint)\n');
    const f = await run(['-b', root, '-k', KVER, '-F', 'filename', 'fs-ext9']);
    assert.equal(f.stdout.toString(), '(builtin)\n');
  });

  const errors: Array<{ name: string; args: string[]; stdout?: string; stderr: string; status: number; options?: boolean }> = [
    { name: 'an unknown name', args: ['nosuch'], stderr: 'modinfo: ERROR: Module nosuch not found.\n', status: 1 },
    { name: 'an unknown -m name', args: ['-m', 'nosuch'], stderr: 'modinfo: ERROR: Module name nosuch not found.\n', status: 1 },
    { name: 'an alias with a stray bracket', args: ['a]b'], stderr: 'modinfo: ERROR: Module alias a]b not found.\n', status: 1 },
    { name: 'a module without .modinfo', args: ['noinfo'], stdout: `filename:       ${'DIR'}/kernel/drivers/noinfo.ko\n`, stderr: "modinfo: ERROR: could not get modinfo from 'noinfo': No such file or directory\n", status: 1 },
    { name: 'no argument', args: [], stderr: 'modinfo: ERROR: missing module or filename.\n', status: 1, options: true },
    { name: 'an unknown option', args: ['--bogus'], stderr: "modinfo: unrecognized option '--bogus'\n", status: 1, options: true },
    { name: 'an unknown short option', args: ['-z'], stderr: "modinfo: invalid option -- 'z'\n", status: 1, options: true },
    { name: '-F without its argument', args: ['-F'], stderr: "modinfo: option requires an argument -- 'F'\n", status: 1, options: true },
  ];
  for (const c of errors) {
    test(`reports ${c.name} in kmod's words`, async () => {
      const r = await run(c.options ? c.args : ['-b', root, '-k', KVER, ...c.args]);
      assert.equal(r.stderr, c.stderr);
      if (c.stdout !== undefined) assert.equal(r.stdout.toString(), c.stdout.replace('DIR', dir));
      assert.equal(r.status, c.status);
    });
  }

  test('-h prints the usage to stdout and exits 0', async () => {
    const r = await run(['-h']);
    assert.equal(r.status, 0);
    assert.match(r.stdout.toString(), /^Usage:\n\tmodinfo \[options\] <modulename\|filename> \[args\]\n/);
  });

  test('keeps going after a bad argument and exits 1', async () => {
    const r = await run(['-b', root, '-k', KVER, '-F', 'name', 'nosuch', 'foo']);
    assert.equal(r.stdout.toString(), 'foo\n');
    assert.equal(r.status, 1);
  });

  test('decompresses many files on worker threads and keeps argument order', async () => {
    const files = Array.from({ length: 9 }, (_, i) => {
      const f = path.join(root, `m${i}.ko.xz`);
      writeFileSync(f, compress('xz', elfModule(`name=m${i}\0`)));
      return f;
    });
    const r = await run(['-F', 'name', ...files]);
    assert.equal(r.stdout.toString(), files.map((_, i) => `m${i}\n`).join(''));
  });
});

describe('modinfo library', () => {
  test('returns a typed record', async () => {
    const [info] = await modinfo('foo', { root, kernelVersion: KVER });
    assert.equal(info.name, 'foo');
    assert.equal(info.builtin, false);
    assert.equal(info.filename, path.join(dir, 'kernel/drivers/foo.ko'));
    // the library decodes UTF-8 by default; this author is Latin-1
    assert.deepEqual(info.fields.find(([k]) => k === 'author'), ['author', 'J\ufffdrg']);
    assert.equal(info.signature?.hashAlgo, 'sha256');
    assert.deepEqual(info.params.map((p) => p.name), ['debug', 'mode', 'speed']);
    assert.equal(infoList(info).at(-1)?.[0], 'signature');
  });

  test('throws LookupError for an unknown module', async () => {
    await assert.rejects(modinfo('nosuch', { root, kernelVersion: KVER }), (e) => e instanceof LookupError && e.kind === 'not-found');
  });

  test('merges parm and parmtype by name, newest name first, and flags entries without a colon', () => {
    const { params, invalid } = moduleParams([['parm', 'a:A'], ['parmtype', 'b:int'], ['parmtype', 'a:bool'], ['parm', 'broken']]);
    assert.deepEqual(params, [{ name: 'b', description: undefined, type: 'int' }, { name: 'a', description: 'A', type: 'bool' }]);
    assert.deepEqual(invalid, ['parm=broken']);
  });
});

describe('signature and look-up helpers', () => {
  test('hexColumns breaks after every 20 bytes with two tabs', () => {
    assert.equal(hexColumns(new Uint8Array(0)), '');
    assert.equal(hexColumns(Uint8Array.of(0xab)), 'AB');
    assert.equal(hexColumns(new Uint8Array(21).fill(1)), `${'01:'.repeat(20)}\n\t\t01`);
  });

  const sigCases: Array<{ name: string; blob: Buffer; want: Record<string, unknown> | undefined }> = [
    { name: 'the common name', blob: pkcs7({ serial: [5], digest: SHA256, sig: SIG }), want: { signer: 'Test signing key', keyId: '05', hashAlgo: 'sha256' } },
    { name: 'the last entry when there is no common name (kmod\'s loop)', blob: pkcs7({ serial: [5], digest: '1.3.14.3.2.26', sig: SIG, names: [['2.5.4.10', 'Org'], ['2.5.4.7', 'Town']] }), want: { signer: 'Town', keyId: '05', hashAlgo: 'sha1' } },
    // kmod 30 (Debian 12, checked against its modinfo) shows no signature when its table has no name for the digest
    { name: 'nothing for a digest kmod has no name for', blob: pkcs7({ serial: [0, 0x80], digest: '1.2.3.4', sig: SIG }), want: undefined },
    { name: 'nothing for a blob that is not PKCS#7', blob: Buffer.from([0x30, 0x03, 0x02, 0x01, 0x00]), want: undefined },
    { name: 'nothing for a truncated blob', blob: pkcs7({ serial: [5], digest: SHA256, sig: SIG }).subarray(0, 40), want: undefined },
  ];
  for (const c of sigCases) {
    test(`describeSignature gives ${c.name}`, () => {
      const d = describeSignature({ bodyLength: 0, sigLength: c.blob.length, algo: 0, hashAlgo: 0, idType: 2, signer: new Uint8Array(0), keyId: new Uint8Array(0), signature: c.blob });
      if (c.want === undefined) return assert.equal(d, undefined);
      assert.deepEqual({ signer: Buffer.from(d!.signer).toString(), keyId: Buffer.from(d!.keyId).toString('hex'), hashAlgo: d!.hashAlgo }, c.want);
    });
  }

  test('describeSignature refuses header values kmod refuses', () => {
    const base = { bodyLength: 0, sigLength: 1, algo: 0, hashAlgo: 0, idType: 1, signer: new Uint8Array(0), keyId: new Uint8Array(0), signature: Uint8Array.of(1) };
    assert.equal(describeSignature({ ...base, algo: 2 }), undefined);
    assert.equal(describeSignature({ ...base, hashAlgo: 9 }), undefined);
    assert.equal(describeSignature({ ...base, idType: 3 }), undefined);
    assert.equal(describeSignature(base)?.idType, 'X509');
  });

  const globs: Array<[string, string, boolean]> = [
    ['pci:v*d*', 'pci:v1d2', true],
    ['pci:v0000?', 'pci:v00001', true],
    ['usb:v[0-9]*', 'usb:v7x', true],
    ['usb:v[!0-9]*', 'usb:v7x', false],
    ['a\\*b', 'a*b', true],
    ['a\\*b', 'axb', false],
    ['plain', 'plain', true],
    ['x[', 'x[', true],
  ];
  for (const [p, s, want] of globs) {
    test(`fnmatch(${JSON.stringify(p)}, ${JSON.stringify(s)}) is ${want}`, () => assert.equal(fnmatch(p, s), want));
  }

  test("fnmatch agrees with glibc's fnmatch(3) (flags 0, C locale) over 100,000 random patterns", () => {
    const libc = loadNativeLibrary('libc.so.6').func('int fnmatch(const char *pattern, const char *string, int flags)');
    const rnd = seededRandom(7);
    const tokens = ['a', 'b', 'z', 'A', '0', '9', ' ', '-', ']', '[', '!', '^', '*', '?', '\\', ':', '=', '.', '[:alpha:]', '[:digit:]', '[:upper:]',
      '[:space:]', '[:xdigit:]', '[:punct:]', '[:foo:]', '[:alphaz:]', '[=a=]', '[=]', '[.a.]', '[.-.]', '[.ab.]', '[.', '[:', '[=', ':]', '.]', '=]',
      'a-z', 'z-a', '0-9', '[a-', '[!', '[^', '[]', '[!]'];
    const chars = 'abzA09 -]![^*?\\:=.#\t~';
    const wrong: string[] = [];
    for (let i = 0; i < 100000; i++) {
      let p = '';
      for (let k = 1 + rnd(6); k > 0; k--) p += tokens[rnd(tokens.length)];
      let s = '';
      for (let k = rnd(5); k > 0; k--) s += chars[rnd(chars.length)];
      const want = libc(p, s, 0) === 0;
      if (fnmatch(p, s) !== want && wrong.length < 5) wrong.push(`fnmatch(${JSON.stringify(p)}, ${JSON.stringify(s)}): glibc ${want}`);
    }
    assert.deepEqual(wrong, []);
  });

  test('normalizes names and aliases as kmod does', () => {
    assert.equal(modnameNormalize('snd-hda-intel.ko.xz'), 'snd_hda_intel');
    assert.equal(aliasNormalize('a-b[x-y]-c'), 'a_b[x-y]_c');
    assert.equal(aliasNormalize('a]b'), undefined);
    assert.equal(aliasNormalize('a[b'), undefined);
  });
});

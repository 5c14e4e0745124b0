/**
 * The per-architecture pieces of the scripts that need no download: the architecture table,
 * kernel names with an architecture, the arm64 kernel Image check/unpacking, busybox applet names
 * read from a binary, and the bundle's pruning per target.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import path from 'node:path';
import zlib from 'node:zlib';
import { fileURLToPath, pathToFileURL } from 'node:url';

const PROJECT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
// eslint-disable-next-line @typescript-eslint/no-explicit-any
const script = async (name: string): Promise<any> => import(pathToFileURL(path.join(PROJECT, 'scripts', name)).href);

/** A fake arm64 Image: the EFI stub's "MZ", the arm64 magic at 56, then some payload. */
function fakeImage(): Buffer {
  const img = Buffer.alloc(4096, 0x11);
  img.write('MZ', 0, 'latin1');
  img.write('ARM\x64', 56, 'latin1');
  return img;
}

describe('architectures', () => {
  it('amd64 and arm64, by Debian or Node name; anything else is one clear error', async () => {
    const { archOf } = await script('arch.mjs');
    assert.equal(archOf('arm64').qemu, 'qemu-system-aarch64');
    assert.equal(archOf('arm64').console, 'ttyAMA0');
    assert.equal(archOf('x64').name, 'amd64');
    assert.throws(() => archOf('s390x'), /^Error: unknown architecture 's390x' \(want amd64\|arm64\)$/);
  });

  it('kernel names carry the architecture', async () => {
    const { parseKernel } = await script('kernels.mjs');
    assert.deepEqual(parseKernel('d13'), { name: 'd13', arch: 'amd64', id: 'd13' });
    assert.deepEqual(parseKernel('d13', 'arm64'), { name: 'd13', arch: 'arm64', id: 'd13-arm64' });
    assert.deepEqual(parseKernel('d12-arm64'), { name: 'd12', arch: 'arm64', id: 'd12-arm64' });
    assert.throws(() => parseKernel('d11'), /unknown kernel 'd11'/);
    assert.throws(() => parseKernel('d12-arm64', 'amd64'), /not for --arch amd64/);
  });

  it('QEMU arguments per architecture', async () => {
    const { qemuArgs } = await script('vm.mjs');
    const a = qemuArgs({ vmlinuz: 'K', initrd: 'I', arch: 'arm64' });
    assert.deepEqual(a.slice(0, 6), ['-M', 'virt', '-accel', 'tcg', '-cpu', 'max,pauth-impdef=on']);
    assert.match(a.at(-1), /^console=ttyAMA0 /);
    assert.match(qemuArgs({ vmlinuz: 'K', initrd: 'I' }).at(-1), /^console=ttyS0 /);
  });
});

describe('arm64 kernel images', () => {
  it('a plain Image is booted as it is', async () => {
    const { arm64Image } = await script('kernels.mjs');
    const img = fakeImage();
    assert.equal(arm64Image(img), img);
  });
  it('a gzip\'d Image and an EFI zboot (gzip) image are unpacked', async () => {
    const { arm64Image } = await script('kernels.mjs');
    const img = fakeImage();
    assert.deepEqual(arm64Image(zlib.gzipSync(img)), img);
    const payload = zlib.gzipSync(img);
    const head = Buffer.alloc(64);
    head.write('MZ', 0, 'latin1');
    head.write('zimg', 4, 'latin1');
    head.writeUInt32LE(64, 8);
    head.writeUInt32LE(payload.length, 12);
    head.write('gzip', 24, 'latin1');
    assert.deepEqual(arm64Image(Buffer.concat([head, payload])), img);
  });
  it('anything else is refused', async () => {
    const { arm64Image } = await script('kernels.mjs');
    assert.throws(() => arm64Image(Buffer.alloc(4096)), /not an arm64 kernel Image/);
  });
});

describe('busybox applet names from the binary', () => {
  it('reads the NUL-separated table that starts with "[" and "[["', async () => {
    const { busyboxAppletNames } = await script('mkrootfs.mjs');
    const bin = Buffer.concat([Buffer.from('\x7fELF junk\0'), Buffer.from('[\0[[\0ash\0cat\0insmod\0sh\0zcat\0\0'), Buffer.from('\x01\x02more')]);
    assert.deepEqual(busyboxAppletNames(bin), ['[', '[[', 'ash', 'cat', 'insmod', 'sh', 'zcat']);
  });
});

describe('bundle pruning per target', () => {
  it('keeps the target\'s prebuilds and koffi builds (glibc and musl), drops the rest', async () => {
    const { pruned, bundleTarget } = await script('bundle.mjs');
    const arm = bundleTarget('arm64');
    const x64 = bundleTarget('amd64');
    assert.equal(pruned('prebuilds/linux-arm64/node.napi.node', arm), false);
    assert.equal(pruned('prebuilds/linux-x64/node.napi.node', arm), true);
    assert.equal(pruned('prebuilds/linux-x64/node.napi.node', x64), false);
    assert.equal(pruned('musl_x64/koffi.node', x64), false);
    // what node-gyp built here is this machine's architecture: never in another one's bundle
    assert.equal(pruned('build/Release/binding.node', arm), true);
    assert.equal(pruned('build/Release/binding.node', x64), false);
  });
});

// The LZ4 block decoder against blocks made by python-lz4 (fixtures/lz4.json,
// made with lz4.block.compress(raw, store_size=True)), and corrupt blocks.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Lz4Error, decompressBlock, decompressSized } from '../js/lz4.js';

const CASES = JSON.parse(readFileSync(fileURLToPath(new URL('./fixtures/lz4.json', import.meta.url)), 'utf8'));
const hex = (s) => Uint8Array.from(s.match(/../g) || [], (b) => parseInt(b, 16));

for (const c of CASES) {
  test(`decodes ${c.name}`, () => {
    const raw = hex(c.raw_hex);
    const out = decompressSized(hex(c.compressed_hex), raw.length);
    assert.equal(Buffer.from(out).toString('hex'), c.raw_hex);
  });
}

test('the shared RAW_LZ4 vector decodes to its 2x2 pixels', () => {
  const data = hex('0c000000c0ff000000ff000000ffffffff');
  assert.deepEqual([...decompressSized(data, 12)], [255, 0, 0, 0, 255, 0, 0, 0, 255, 255, 255, 255]);
});

test('a wrong size prefix is refused', () => {
  assert.throws(() => decompressSized(hex('0d000000c0ff000000ff000000ffffffff'), 12), Lz4Error);
  assert.throws(() => decompressSized(hex('0c00'), 12), Lz4Error);
});

test('corrupt blocks raise instead of reading or writing out of bounds', () => {
  const good = hex(CASES.find((c) => c.name === 'solid_red_64x64').compressed_hex).subarray(4);
  const size = 64 * 64 * 3;
  assert.throws(() => decompressBlock(good.subarray(0, good.length - 3), size), Lz4Error); // truncated
  assert.throws(() => decompressBlock(good, size - 1), Lz4Error); // declared size too small
  assert.throws(() => decompressBlock(good, size + 1), Lz4Error); // too large: output not filled
  assert.throws(() => decompressBlock(Uint8Array.of(0x04, 0x41, 0x05, 0x00), 32), Lz4Error); // offset before start
  assert.throws(() => decompressBlock(Uint8Array.of(0x1f, 0x41, 0x00, 0x00, 0xff), 64), Lz4Error); // offset 0
  assert.throws(() => decompressBlock(Uint8Array.of(0xf0, 0xff), 64), Lz4Error); // truncated length
});

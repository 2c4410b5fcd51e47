// The web client's PALETTE and COPY decoders against the shared REGION
// vectors (tests/vectors/frames.json), against data made by the server's
// codec (fixtures/palette.json, made with media.palette.encode), and with
// corrupt or hostile data.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { deflateSync as zlibSync } from 'node:zlib';
import { PaletteError, applyCopy, decodePalette } from '../js/palette.js';
import { fakeContext } from './fixtures/fake-context.js';

const VECTORS = JSON.parse(readFileSync(fileURLToPath(new URL('../../../tests/vectors/frames.json', import.meta.url)), 'utf8'));
const CASES = JSON.parse(readFileSync(fileURLToPath(new URL('./fixtures/palette.json', import.meta.url)), 'utf8'));
const hex = (s) => Uint8Array.from(s.match(/../g) || [], (b) => parseInt(b, 16));
const vector = (name) => VECTORS.find((v) => v.name === name).message.fields;

test('the shared PALETTE vector decodes to its 8x2 one-bit glyph', async () => {
  const f = vector('region_palette');
  const rgba = await decodePalette(hex(f.data), f.w, f.h);
  const bits = [0xa5, 0x5a].flatMap((byte) => [7, 6, 5, 4, 3, 2, 1, 0].map((i) => (byte >> i) & 1));
  assert.deepEqual([...rgba].filter((_, i) => i % 4 === 0), bits.map((b) => (b ? 255 : 0)));
});

for (const c of CASES) {
  test(`decodes ${c.name} exactly as the server's codec made it`, async () => {
    const rgba = await decodePalette(hex(c.data_hex), c.w, c.h);
    const rgb = [...rgba].filter((_, i) => i % 4 !== 3);
    assert.equal(Buffer.from(rgb).toString('hex'), c.rgb_hex);
  });
}

const head = (bits, count) => [bits, count - 1, ...new Array(3 * count).fill(7)];
for (const [name, data] of [
  ['short header', [1]],
  ['bad bits', [3, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0]],
  ['too many colours', [...head(1, 3), 0, 0, 0]],
  ['unknown packing', [...head(1, 2), 9, 0, 0]],
  ['too few indices', [...head(1, 2), 0, 0]],
  ['index past the colours', [...head(2, 2), 0, 0xc0, 0]],
  ['deflate bomb', [...head(1, 2), 1, ...zlibSync(new Uint8Array(1 << 20))]],
  ['short deflate', [...head(1, 2), 1, ...zlibSync(new Uint8Array(1))]],
  ['corrupt deflate', [...head(1, 2), 1, 1, 2, 3, 4]],
]) {
  test(`PALETTE refuses ${name}`, async () => {
    await assert.rejects(decodePalette(Uint8Array.from(data), 2, 2), PaletteError);
  });
}

test('COPY moves overlapping rows as if the source were read first', () => {
  const ctx = fakeContext(2, 6);
  for (let i = 0; i < ctx.pixels.length; i += 4) ctx.pixels[i] = i / 8; // row number in red
  const rowsOf = () => [0, 1, 2, 3, 4, 5].map((r) => ctx.pixels[r * 8]);
  applyCopy(ctx, 2, 6, { x: 0, y: 0, w: 2, h: 4, data: Uint8Array.from([0, 0, 0, 2]) }); // scroll up by 2
  assert.deepEqual(rowsOf(), [2, 3, 4, 5, 4, 5]);
  applyCopy(ctx, 2, 6, { x: 0, y: 1, w: 2, h: 5, data: Uint8Array.from([0, 0, 0, 0]) }); // down by 1
  assert.deepEqual(rowsOf(), [2, 2, 3, 4, 5, 4]);
});

test('COPY from outside the screen is refused', () => {
  const ctx = fakeContext(4, 4);
  assert.throws(() => applyCopy(ctx, 4, 4, { x: 0, y: 0, w: 2, h: 2, data: Uint8Array.from([0, 3, 0, 0]) }), PaletteError);
  assert.throws(() => applyCopy(ctx, 4, 4, { x: 0, y: 0, w: 2, h: 2, data: Uint8Array.from([0, 0, 0]) }), PaletteError);
});

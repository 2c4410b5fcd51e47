// The web client's GLYPHS decoder (glyphs.js) against the shared vectors
// made by the server's codec (tests/vectors/glyphs.json: steps on one
// cache, each the exact RGB or an error; the REGION in frames.json), and
// against regions built here by hand from docs/protocol.md §7c (zlib
// streams from node's zlib): the exact pixels, slots defined by one region
// and reused by later ones, a new cache per display channel, and every
// error the spec lists -- each of which leaves the cache as it was.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { deflateSync, inflateSync } from 'node:zlib';
import { GLYPH_MAX_USED, GLYPH_SLOTS, GlyphCache, GlyphError } from '../js/glyphs.js';
import { decodeMessage, Kind, MAX_REGION_RAW_BYTES } from '../js/protocol.js';

const load = (path) => JSON.parse(readFileSync(fileURLToPath(new URL(path, import.meta.url)), 'utf8'));
const VECTORS = load('../../../tests/vectors/glyphs.json');
const FRAMES = load('../../../tests/vectors/frames.json');
const hex = (s) => Uint8Array.from(s.match(/../g) || [], (b) => parseInt(b, 16));
const rgbHex = (rgba) => Buffer.from(rgba.filter((_, i) => i % 4 !== 3)).toString('hex');

for (const v of VECTORS) {
  test(`shared GLYPHS vector ${v.name}`, async () => {
    const cache = new GlyphCache();
    for (const step of v.steps) {
      const decoded = decode(cache, hex(step.data_hex), step.w, step.h);
      if (step.error) {
        const before = [...cache.slots];
        await assert.rejects(decoded, GlyphError, step.error);
        assert.deepEqual(cache.slots, before, 'a refused region changed the cache');
      } else {
        assert.equal(rgbHex(await decoded), step.rgb_hex);
      }
    }
  });
}

test('the shared REGION GLYPHS frame decodes through the codec to its vector pixels', async () => {
  const v = FRAMES.find((f) => f.name === 'region_glyphs');
  const region = decodeMessage(Kind.DISPLAY, v.type, hex(v.payload_hex)).fields;
  assert.deepEqual([region.x, region.y, region.w, region.h, region.encoding], [8, 26, 6, 4, 8]);
  const same = VECTORS.find((g) => g.name === 'define_and_use').steps[0];
  assert.equal(rgbHex(await decode(new GlyphCache(), region.data, region.w, region.h)), same.rgb_hex);
});

const WHITE = [255, 255, 255];
const INK = [10, 20, 30];

/** A cell's bits, row after row, MSB first, pad bits 0 (rows: strings of '#' and '.'). */
function bitsOf(rows) {
  const flat = rows.join('');
  const out = new Uint8Array(Math.ceil(flat.length / 8));
  for (let n = 0; n < flat.length; n += 1) if (flat[n] === '#') out[n >> 3] |= 0x80 >> (n & 7);
  return out;
}

const be16 = (v) => [v >> 8, v & 0xff];

/** The inflated body of a region: definitions [[slot, bits]], used slots, indices. */
function body(defs, used, indices) {
  return Uint8Array.from([
    ...be16(defs.length),
    ...defs.flatMap(([slot, bits]) => [...be16(slot), ...bits]),
    ...be16(used.length),
    ...used.flatMap(be16),
    ...indices,
  ]);
}

/** GLYPHS region data: header, then `stream` (default: the deflated body). */
function region({ cell = [3, 2], colours = [WHITE, INK], defs = [], used = [], indices = [], stream } = {}) {
  const z = stream ?? deflateSync(body(defs, used, indices));
  return Uint8Array.from([...cell, ...colours[0], ...colours[1], ...z]);
}

// Two 3x2 glyphs: a bar and a dot (6 bits: one byte, two pad bits).
const BAR = ['###', '...'];
const DOT = ['.#.', '...'];

/** The RGB of each pixel, row by row, as '#' (INK) and '.' (WHITE) strings. */
function picture(rgba, w) {
  const rows = [];
  for (let i = 0; i < rgba.length; i += 4) {
    const px = [rgba[i], rgba[i + 1], rgba[i + 2]].join();
    assert.equal(rgba[i + 3], 255);
    const char = px === INK.join() ? '#' : px === WHITE.join() ? '.' : '?';
    if ((i / 4) % w === 0) rows.push('');
    rows[rows.length - 1] += char;
  }
  return rows;
}

async function decode(cache, data, w, h) {
  return cache.draw(await cache.inflate(data, w, h), w, h);
}

test('a region defines two slots and paints its cells with them, row-major', async () => {
  const cache = new GlyphCache();
  const data = region({ defs: [[7, bitsOf(BAR)], [4095, bitsOf(DOT)]], used: [4095, 7], indices: [1, 0, 0, 0, 1, 1] });
  const rgba = await decode(cache, data, 9, 4);
  assert.deepEqual(picture(rgba, 9), ['###.#..#.', '.........', '.#.######', '.........']);
  assert.equal(cache.regions, 1);
});

test('colour 0 paints the 0 bits, colour 1 the 1 bits, per region', async () => {
  const cache = new GlyphCache();
  const data = region({ colours: [INK, WHITE], defs: [[0, bitsOf(BAR)]], used: [0], indices: [0] });
  assert.deepEqual(picture(await decode(cache, data, 3, 2), 3), ['...', '###']);
});

test('a later region reuses slots without defining them, and a slot can be redefined', async () => {
  const cache = new GlyphCache();
  await decode(cache, region({ defs: [[1, bitsOf(BAR)], [2, bitsOf(DOT)]], used: [1], indices: [0, 0] }), 6, 2);
  const reuse = region({ used: [2, 1], indices: [0, 1] });
  assert.deepEqual(picture(await decode(cache, reuse, 6, 2), 6), ['.#.###', '......']);
  const redefine = region({ defs: [[1, bitsOf(['#..', '..#'])]], used: [1], indices: [0] });
  assert.deepEqual(picture(await decode(cache, redefine, 3, 2), 3), ['#..', '..#']);
  assert.deepEqual(picture(await decode(cache, region({ used: [1], indices: [0] }), 3, 2), 3), ['#..', '..#']);
});

test('a new display channel starts with every slot empty', async () => {
  const first = new GlyphCache();
  await decode(first, region({ defs: [[3, bitsOf(BAR)]], used: [3], indices: [0] }), 3, 2);
  await assert.rejects(decode(new GlyphCache(), region({ used: [3], indices: [0] }), 3, 2), GlyphError);
});

test('regions inflated out of order still see the cache in their draw order', async () => {
  const cache = new GlyphCache();
  const define = cache.inflate(region({ defs: [[5, bitsOf(DOT)]], used: [5], indices: [0] }), 3, 2);
  const reuse = cache.inflate(region({ used: [5], indices: [0, 0] }), 3, 4);
  const second = await reuse; // inflated first, drawn second
  cache.draw(await define, 3, 2);
  assert.deepEqual(picture(cache.draw(second, 3, 4), 3), ['.#.', '...', '.#.', '...']);
});

test('cells of the largest side and of one pixel decode exactly', async () => {
  const big = Array.from({ length: 32 }, (_, y) => Array.from({ length: 32 }, (_, x) => ((x + y) % 3 ? '.' : '#')).join(''));
  const cache = new GlyphCache();
  const rgba = await decode(cache, region({ cell: [32, 32], defs: [[9, bitsOf(big)]], used: [9], indices: [0, 0] }), 64, 32);
  assert.deepEqual(picture(rgba, 64), big.map((row) => row + row));
  const one = region({ cell: [1, 1], defs: [[0, [0x80]], [1, [0]]], used: [0, 1], indices: [0, 1, 1, 0] });
  assert.deepEqual(picture(await decode(cache, one, 2, 2), 2), ['#.', '.#']);
});

test('a region of MAX_REGION_RAW_BYTES is accepted', async () => {
  const side = Math.floor(Math.sqrt(MAX_REGION_RAW_BYTES / 3)); // 591 x 591 one-pixel cells
  const data = region({ cell: [1, 1], defs: [[0, [0x80]]], used: [0], indices: new Array(side * side).fill(0) });
  const rgba = await decode(new GlyphCache(), data, side, side);
  assert.equal(rgba.length, side * side * 4);
  assert.deepEqual([...rgba.subarray(-4)], [...INK, 255]);
  await assert.rejects(decode(new GlyphCache(), data, side, side + 1), /out of bounds/);
});

test('a slot defined twice in one region holds its last definition', async () => {
  const cache = new GlyphCache();
  const data = region({ defs: [[3, bitsOf(BAR)], [3, bitsOf(DOT)]], used: [3], indices: [0, 0] });
  assert.deepEqual(picture(await decode(cache, data, 6, 2), 6), ['.#..#.', '......']);
  // As many definitions as cells (10000, every slot twice and more): the last of each slot counts.
  const defs = Array.from({ length: 10000 }, (_, i) => [i % GLYPH_SLOTS, [i >= 10000 - GLYPH_SLOTS ? 0x80 : 0]]);
  const many = region({ cell: [1, 1], defs, used: [0, GLYPH_SLOTS - 1], indices: new Array(10000).fill(1) });
  const rgba = await decode(cache, many, 100, 100);
  assert.deepEqual([...rgba.subarray(0, 4)], [...INK, 255]);
  assert.ok(cache.slots.every((glyph) => glyph.pixels[0] === 1), 'a slot kept an earlier definition');
});

test('the glyph limits: slot GLYPH_SLOTS - 1 and GLYPH_MAX_USED slots are accepted', async () => {
  const cache = new GlyphCache();
  const defs = Array.from({ length: GLYPH_MAX_USED }, (_, i) => [GLYPH_SLOTS - 1 - i, [i % 2 ? 0x80 : 0]]);
  const used = defs.map(([slot]) => slot);
  const indices = used.map((_, i) => i);
  const rgba = await decode(cache, region({ cell: [1, 1], defs, used, indices }), GLYPH_MAX_USED, 1);
  assert.equal(picture(rgba, GLYPH_MAX_USED)[0], '.#'.repeat(GLYPH_MAX_USED / 2));
});

// Every error of §7c, each checked on a cache that holds slot 1 (BAR, 3x2) and slot 2 (a 2x2 glyph).
const zStream = (defs, used, indices) => deflateSync(body(defs, used, indices));
const ERRORS = [
  ['data shorter than the header', { says: /shorter than its header/, raw: [3, 2, 0, 0, 0] }],
  ['a cell width of 0', { says: /outside 1\.\.32/, cell: [0, 2], used: [1], indices: [0] }],
  ['a cell side past GLYPH_MAX_SIDE', { says: /outside 1\.\.32/, cell: [33, 2], used: [1], indices: [0], w: 33 }],
  ['a cell that does not divide w', { says: /does not divide/, cell: [3, 2], used: [1], indices: [0], w: 4 }],
  ['a cell that does not divide h', { says: /does not divide/, cell: [3, 2], used: [1], indices: [0], h: 3 }],
  ['a region past MAX_REGION_RAW_BYTES', { says: /out of bounds/, cell: [1, 1], used: [1], indices: [0], w: 1, h: 349526 }],
  ['an empty region', { says: /out of bounds/, used: [1], indices: [], w: 0 }],
  ['a corrupt zlib stream', { says: /corrupt/, stream: [0x78, 0x9c, 1, 2, 3, 4, 5] }],
  ['no zlib stream', { says: /corrupt/, stream: [] }],
  ['a stream cut short', { says: /corrupt/, stream: zStream([], [1], [0]).subarray(0, 8) }],
  ['bytes after the zlib stream', { says: /bytes after its zlib stream/, stream: [...zStream([], [1], [0]), 0] }],
  ['a stream that inflates past its counts', { says: /inflates past/, stream: zStream([], [1], [0, 0]) }],
  ['a stream that inflates short of its counts', { says: /its counts say/, stream: zStream([], [1], []), w: 6 }],
  ['a stream inflating far past any count (a bomb)', { says: /inflates past/, stream: deflateSync(new Uint8Array(1 << 20)) }],
  ['more definitions than cells', { says: /defines 2 glyphs in 1 cells/, defs: [[3, bitsOf(BAR)], [4, bitsOf(BAR)]], used: [1], indices: [0] }],
  ['a definition at GLYPH_SLOTS', { says: /defines slot 4096/, defs: [[GLYPH_SLOTS, bitsOf(BAR)]], used: [1], indices: [0] }],
  ['pad bits set', { says: /pad bits/, defs: [[3, [0xe1]]], used: [3], indices: [0] }],
  ['used_count 0', { says: /uses 0 slots/, used: [], indices: [0] }],
  ['used_count past GLYPH_MAX_USED', { says: /uses 257 slots/, used: new Array(GLYPH_MAX_USED + 1).fill(1), indices: [0] }],
  ['a used slot that is empty', { says: /slot 99, which holds no glyph/, used: [99], indices: [0] }],
  ['a used slot at GLYPH_SLOTS', { says: /slot 4096, which holds no glyph/, used: [GLYPH_SLOTS], indices: [0] }],
  ['a used slot of another cell size', { says: /a 2x2 glyph/, used: [2], indices: [0] }],
  ['an index at used_count', { says: /index 1 is past/, used: [1], indices: [1] }],
];

for (const [name, c] of ERRORS) {
  test(`GLYPHS refuses ${name}, and the cache is unchanged`, async () => {
    const cache = new GlyphCache();
    await decode(cache, region({ defs: [[1, bitsOf(BAR)]], used: [1], indices: [0] }), 3, 2);
    await decode(cache, region({ cell: [2, 2], defs: [[2, bitsOf(['##', '#.'])]], used: [2], indices: [0] }), 2, 2);
    const before = [...cache.slots];
    const data = c.raw ? Uint8Array.from(c.raw) : region({ ...c, stream: c.stream && Uint8Array.from(c.stream) });
    await assert.rejects(decode(cache, data, c.w ?? 3, c.h ?? 2), (error) => error instanceof GlyphError && c.says.test(error.message));
    assert.deepEqual(cache.slots, before);
    assert.equal(cache.regions, 2);
  });
}

test('a failed region that defined a slot leaves it undefined for the next region', async () => {
  const cache = new GlyphCache();
  await assert.rejects(decode(cache, region({ defs: [[6, bitsOf(BAR)]], used: [6], indices: [1] }), 3, 2), GlyphError);
  await assert.rejects(decode(cache, region({ used: [6], indices: [0] }), 3, 2), GlyphError);
});

test('mutated regions (their bytes, or their inflated bodies) decode or are refused with GlyphError', async () => {
  let seed = 12345;
  const random = (n) => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed % n;
  };
  const sources = VECTORS.flatMap((v) => v.steps.filter((s) => !s.error));
  let refused = 0;
  for (let round = 0; round < 400; round += 1) {
    const step = sources[random(sources.length)];
    let data = hex(step.data_hex);
    if (round % 2) {
      // The inflated body, mutated and deflated again: the checks after inflating.
      const inner = inflateSync(data.subarray(8));
      for (let n = 1 + random(3); n > 0; n -= 1) inner[random(inner.length)] ^= 1 << random(8);
      data = Uint8Array.from([...data.subarray(0, 8), ...deflateSync(inner)]);
    } else {
      for (let n = 1 + random(3); n > 0; n -= 1) data[random(data.length)] ^= 1 << random(8);
    }
    const cache = new GlyphCache();
    try {
      const rgba = await decode(cache, data, step.w, step.h);
      assert.equal(rgba.length, step.w * step.h * 4);
    } catch (error) {
      assert.ok(error instanceof GlyphError, `${step.data_hex}: ${error.stack}`);
      refused += 1;
    }
  }
  assert.ok(refused > 0 && refused < 400, `${refused} of 400 refused`);
});

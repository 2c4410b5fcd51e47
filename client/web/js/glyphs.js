// The GLYPHS region encoding (docs/protocol.md §7c; the server's encoder
// is in sessiond/agent): terminal text as a grid of cells, each distinct
// glyph bitmap sent once per display channel into this page's glyph cache,
// then one u8 per cell, deflated.
//
// Why two steps: the zlib stream is inflated at once, in parallel with
// earlier draws (the platform's DecompressionStream, as PALETTE does, read
// with the tightest limit its counts allow so a hostile server cannot make
// the page inflate more than the region), but the cache is read and written
// only in the region's turn (`draw`), so a slot a region defines is there for
// every later region and never for an earlier one. A region is checked whole
// before it changes the cache: a bad one leaves the cache as it was.
//
// Why glyphs are kept expanded: a slot's bits are unpacked once, when it is
// defined, into one byte per pixel; drawing a cell is then a copy of its
// pixels in the region's two colours, written as 32-bit words into the
// RGBA buffer (a 180x50 screen of 6x13 cells is 700 k pixels a frame).

import { MAX_REGION_RAW_BYTES } from './protocol.js';

// protocol/media.py: GLYPH_MAX_SIDE, GLYPH_SLOTS, GLYPH_MAX_USED, GLYPH_HEADER_BYTES, CAPS_GLYPHS.
export const GLYPH_MAX_SIDE = 32;
export const GLYPH_SLOTS = 4096;
export const GLYPH_MAX_USED = 256;
export const GLYPH_HEADER_BYTES = 8;
// VIDEO_CAPS bit: this client draws GLYPHS regions.
export const CODEC_GLYPHS = 0x04;

export class GlyphError extends Error {}

/** Bytes of one glyph's bits: cell_w*cell_h bits, rows not padded. */
export const glyphBitsBytes = (cellW, cellH) => Math.ceil((cellW * cellH) / 8);

const u16 = (bytes, at) => (bytes[at] << 8) | bytes[at + 1];

/**
 * The most bytes the region's stream may inflate to, given the `filled` bytes
 * of it that arrived: every definition's and list's size is known once its
 * count is (section 7c). GlyphError if a count is out of bounds.
 */
function inflateLimit(out, filled, cells, bitsBytes) {
  let newCount = cells;
  if (filled >= 2) {
    newCount = u16(out, 0);
    if (newCount > cells) throw new GlyphError(`GLYPHS defines ${newCount} glyphs in ${cells} cells`);
  }
  const usedAt = 2 + newCount * (2 + bitsBytes);
  let usedCount = GLYPH_MAX_USED;
  if (filled >= usedAt + 2) {
    usedCount = u16(out, usedAt);
    if (usedCount < 1 || usedCount > GLYPH_MAX_USED) throw new GlyphError(`GLYPHS uses ${usedCount} slots`);
  }
  return usedAt + 2 + 2 * usedCount + cells;
}

/** Adler-32 (RFC 1950) of `bytes`. */
function adler32(bytes) {
  let a = 1;
  let b = 0;
  for (let i = 0; i < bytes.length; ) {
    const end = Math.min(bytes.length, i + 3800); // sums stay below 2^31 before the modulo
    for (; i < end; i += 1) {
      a += bytes[i];
      b += a;
    }
    a %= 65521;
    b %= 65521;
  }
  return ((b << 16) | a) >>> 0;
}

/**
 * Inflate the region's zlib stream within the limit its counts allow. The
 * stream must end the data: a browser refuses bytes after its end, and the
 * data's last four must be the Adler-32 of what it inflated to.
 */
async function inflateStream(stream, cells, bitsBytes) {
  const reader = new Blob([stream]).stream().pipeThrough(new DecompressionStream('deflate')).getReader();
  const most = inflateLimit(null, 0, cells, bitsBytes); // before any count is known
  let out = new Uint8Array(Math.min(most, 1 << 16));
  let filled = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      if (filled + value.length > most) throw new GlyphError('GLYPHS stream inflates past what its counts allow');
      if (filled + value.length > out.length) {
        const grown = new Uint8Array(Math.min(most, Math.max(2 * out.length, filled + value.length)));
        grown.set(out.subarray(0, filled));
        out = grown;
      }
      out.set(value, filled);
      filled += value.length;
      if (filled > inflateLimit(out, filled, cells, bitsBytes)) {
        throw new GlyphError('GLYPHS stream inflates past what its counts allow');
      }
    }
  } catch (error) {
    reader.cancel().catch(() => {});
    if (error instanceof GlyphError) throw error;
    throw new GlyphError(`GLYPHS stream is corrupt: ${error.message || error}`);
  }
  out = out.subarray(0, filled);
  const n = stream.length;
  const trailer = n >= 4 ? new DataView(stream.buffer, stream.byteOffset + n - 4, 4).getUint32(0) : -1;
  if (trailer !== adler32(out)) throw new GlyphError('GLYPHS data has bytes after its zlib stream');
  return out;
}

/** One colour of the header as a little-endian RGBA word (R, G, B, 255 in memory). */
const rgbaWord = (data, at) => (0xff000000 | (data[at + 2] << 16) | (data[at + 1] << 8) | data[at]) >>> 0;

/**
 * The glyph cache of one display channel (a new channel: a new cache, every
 * slot empty), and the drawing of GLYPHS regions with it.
 */
export class GlyphCache {
  constructor() {
    this.slots = new Array(GLYPH_SLOTS).fill(null); // {w, h, pixels: Uint8Array of 0/1}
    this.regions = 0; // GLYPHS regions drawn (the page shows it as data-glyph-regions)
  }

  /**
   * Check a region's header and start inflating its stream (at once, off the
   * cache): a promise of {cellW, cellH, colours, body} for `draw`.
   * @param {Uint8Array} data the region's data (copied out of the socket's buffer)
   */
  async inflate(data, w, h) {
    if (data.length < GLYPH_HEADER_BYTES) throw new GlyphError('GLYPHS data is shorter than its header');
    const cellW = data[0];
    const cellH = data[1];
    if (cellW < 1 || cellW > GLYPH_MAX_SIDE || cellH < 1 || cellH > GLYPH_MAX_SIDE) {
      throw new GlyphError(`GLYPHS cell ${cellW}x${cellH} is outside 1..${GLYPH_MAX_SIDE}`);
    }
    if (!(w >= 1 && h >= 1 && w * h * 3 <= MAX_REGION_RAW_BYTES)) {
      throw new GlyphError(`GLYPHS region ${w}x${h} is out of bounds`);
    }
    if (w % cellW || h % cellH) throw new GlyphError(`GLYPHS cell ${cellW}x${cellH} does not divide ${w}x${h}`);
    const colours = [rgbaWord(data, 2), rgbaWord(data, 5)];
    const cells = (w / cellW) * (h / cellH);
    const body = await inflateStream(data.subarray(GLYPH_HEADER_BYTES), cells, glyphBitsBytes(cellW, cellH));
    return { cellW, cellH, colours, body };
  }

  /**
   * The RGBA pixels (Uint8ClampedArray, w*h*4) of an inflated region, in its
   * turn: its definitions go into the cache only if the whole region is valid.
   */
  draw({ cellW, cellH, colours, body }, w, h) {
    const columns = w / cellW;
    const cells = columns * (h / cellH);
    const bitsBytes = glyphBitsBytes(cellW, cellH);
    const { newCount, defined } = readDefinitions(body, cellW, cellH, bitsBytes);
    const usedAt = 2 + newCount * (2 + bitsBytes);
    const usedCount = u16(body, usedAt);
    if (usedCount < 1 || usedCount > GLYPH_MAX_USED) throw new GlyphError(`GLYPHS uses ${usedCount} slots`);
    const indexAt = usedAt + 2 + 2 * usedCount;
    if (body.length !== indexAt + cells) {
      throw new GlyphError(`GLYPHS stream is ${body.length} bytes, its counts say ${indexAt + cells}`);
    }
    const pending = new Map(defined.map((glyph) => [glyph.slot, glyph]));
    const used = [];
    for (let i = 0; i < usedCount; i += 1) {
      const slot = u16(body, usedAt + 2 + 2 * i);
      const glyph = slot < GLYPH_SLOTS ? (pending.get(slot) ?? this.slots[slot]) : null;
      if (!glyph) throw new GlyphError(`GLYPHS uses slot ${slot}, which holds no glyph`);
      if (glyph.w !== cellW || glyph.h !== cellH) {
        throw new GlyphError(`GLYPHS uses slot ${slot} (a ${glyph.w}x${glyph.h} glyph) in ${cellW}x${cellH} cells`);
      }
      used.push(glyph.pixels);
    }
    const indices = body.subarray(indexAt);
    for (let i = 0; i < cells; i += 1) {
      if (indices[i] >= usedCount) throw new GlyphError(`GLYPHS index ${indices[i]} is past its ${usedCount} slots`);
    }
    for (const glyph of defined) this.slots[glyph.slot] = glyph;
    this.regions += 1;
    return paint(used, indices, colours, w, h, cellW, cellH, columns);
  }
}

/**
 * The definitions at the start of an inflated stream, checked: [{slot, w, h,
 * pixels}], the last one of each slot only (what the cache will hold), so
 * at most GLYPH_SLOTS glyphs are unpacked whatever new_count says.
 */
function readDefinitions(body, cellW, cellH, bitsBytes) {
  if (body.length < 2) throw new GlyphError('GLYPHS stream is shorter than its counts');
  const newCount = u16(body, 0);
  if (body.length < 2 + newCount * (2 + bitsBytes) + 2) {
    throw new GlyphError('GLYPHS stream is shorter than its definitions');
  }
  const size = cellW * cellH;
  const padMask = (1 << (bitsBytes * 8 - size)) - 1;
  const last = new Map(); // slot -> offset of its bits
  for (let i = 0, at = 2; i < newCount; i += 1, at += 2 + bitsBytes) {
    const slot = u16(body, at);
    if (slot >= GLYPH_SLOTS) throw new GlyphError(`GLYPHS defines slot ${slot}, past ${GLYPH_SLOTS}`);
    if (body[at + 1 + bitsBytes] & padMask) throw new GlyphError(`GLYPHS glyph for slot ${slot} has pad bits set`);
    last.set(slot, at + 2);
  }
  const defined = [];
  for (const [slot, at] of last) {
    const pixels = new Uint8Array(size);
    for (let n = 0; n < size; n += 1) pixels[n] = (body[at + (n >> 3)] >> (7 - (n & 7))) & 1;
    defined.push({ slot, w: cellW, h: cellH, pixels });
  }
  return { newCount, defined };
}

/** Paint every cell's glyph (1: colour 1, 0: colour 0) into a new RGBA buffer. */
function paint(used, indices, colours, w, h, cellW, cellH, columns) {
  const rgba = new Uint8ClampedArray(w * h * 4);
  const out = new Uint32Array(rgba.buffer);
  const [c0, c1] = colours;
  // Each used glyph in this region's colours once, so a cell is a plain copy.
  const size = cellW * cellH;
  const coloured = new Uint32Array(used.length * size);
  for (let u = 0; u < used.length; u += 1) {
    const pixels = used[u];
    for (let k = 0, o = u * size; k < size; k += 1) coloured[o + k] = pixels[k] ? c1 : c0;
  }
  const rows = h / cellH;
  for (let r = 0, cell = 0; r < rows; r += 1) {
    const rowBase = r * cellH * w;
    for (let c = 0; c < columns; c += 1, cell += 1) {
      let k = indices[cell] * size;
      for (let y = 0, o = rowBase + c * cellW; y < cellH; y += 1, o += w) {
        for (let x = 0; x < cellW; x += 1, k += 1) out[o + x] = coloured[k];
      }
    }
  }
  return rgba;
}

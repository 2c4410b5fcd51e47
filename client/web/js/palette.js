// Decoders of the PALETTE and COPY region encodings (docs/protocol.md §7,
// media/palette.py on the server side).
//
// Why here and not in the browser's image decoder: PALETTE is not an image
// file, it is a few colours and packed indices -- an echoed glyph is tens
// of bytes -- so it is unpacked in a loop; only the optional zlib stream
// goes through the platform's DecompressionStream, read with the exact
// size the region needs as its limit, so a hostile server cannot make the
// page inflate more than the region. COPY moves pixels the canvas already
// has (a scroll); it reads the source out first, so overlapping is exact.

export class PaletteError extends Error {}

const BITS = [1, 2, 4, 8];
const PACK_RAW = 0;
const PACK_ZLIB = 1;

/** Inflate a zlib stream that must give exactly `size` bytes. */
async function inflateExact(data, size) {
  const stream = new Blob([data]).stream().pipeThrough(new DecompressionStream('deflate'));
  const reader = stream.getReader();
  const out = new Uint8Array(size);
  let filled = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      if (filled + value.length > size) throw new PaletteError('PALETTE indices inflate past the region');
      out.set(value, filled);
      filled += value.length;
    }
  } catch (error) {
    reader.cancel().catch(() => {});
    if (error instanceof PaletteError) throw error;
    throw new PaletteError(`PALETTE indices are corrupt: ${error.message || error}`);
  }
  if (filled !== size) throw new PaletteError('PALETTE indices do not inflate to exactly the region');
  return out;
}

/**
 * The RGBA pixels (Uint8ClampedArray, w*h*4) of PALETTE data for a w x h region.
 * @param {Uint8Array} data
 */
export async function decodePalette(data, w, h) {
  if (data.length < 2) throw new PaletteError('PALETTE data is shorter than its header');
  const bits = data[0];
  const count = data[1] + 1;
  if (!BITS.includes(bits) || count > 1 << bits) throw new PaletteError(`PALETTE of ${count} colours at ${bits} bits`);
  const end = 2 + 3 * count;
  if (data.length < end + 1) throw new PaletteError('PALETTE data is shorter than its colours');
  const packing = data[end];
  const rowBytes = (w * bits + 7) >> 3;
  const size = rowBytes * h;
  const rest = data.subarray(end + 1);
  let rows;
  if (packing === PACK_RAW) rows = rest;
  else if (packing === PACK_ZLIB) rows = await inflateExact(rest.slice(), size);
  else throw new PaletteError(`unknown PALETTE packing ${packing}`);
  if (rows.length !== size) throw new PaletteError(`PALETTE has ${rows.length} bytes of indices, the region needs ${size}`);
  // One 32-bit word per pixel (R, G, B, A in memory order on little-endian
  // machines, which every browser runs on), the palette looked up per index.
  const rgba = new Uint8ClampedArray(w * h * 4);
  const out = new Uint32Array(rgba.buffer);
  const colours = new Uint32Array(count);
  for (let i = 0; i < count; i += 1) {
    const c = 2 + 3 * i;
    colours[i] = (0xff000000 | (data[c + 2] << 16) | (data[c + 1] << 8) | data[c]) >>> 0;
  }
  const mask = (1 << bits) - 1;
  let j = 0;
  for (let y = 0; y < h; y += 1) {
    let p = y * rowBytes;
    let shift = 8 - bits;
    let byte = rows[p];
    for (let x = 0; x < w; x += 1) {
      const index = (byte >> shift) & mask;
      if (index >= count) throw new PaletteError(`PALETTE index ${index} is past its ${count} colours`);
      out[j] = colours[index];
      j += 1;
      shift -= bits;
      if (shift < 0) {
        shift = 8 - bits;
        p += 1;
        byte = rows[p];
      }
    }
  }
  return rgba;
}

/**
 * Apply a COPY region to a 2D context whose canvas is width x height.
 * @param {Uint8Array} data u16 source x, u16 source y (big-endian)
 */
export function applyCopy(ctx, width, height, { x, y, w, h, data }) {
  if (data.length !== 4) throw new PaletteError('COPY data must be 4 bytes');
  const sx = (data[0] << 8) | data[1];
  const sy = (data[2] << 8) | data[3];
  if (sx + w > width || sy + h > height || x + w > width || y + h > height) {
    throw new PaletteError(`COPY ${w}x${h} from ${sx},${sy} to ${x},${y} is outside the screen`);
  }
  // getImageData copies, so an overlapping destination gets the old pixels.
  ctx.putImageData(ctx.getImageData(sx, sy, w, h), x, y);
}

// LZ4 block decompression for RAW_LZ4 regions (python `lz4.block.compress`
// with store_size=True: a u32 little-endian size prefix, then one LZ4 block).
//
// Why our own: browsers have no LZ4, and the block format is small enough to
// decode in a few dozen lines without a dependency. Every read and write is
// bounds-checked, so a corrupt or hostile block raises Lz4Error instead of
// reading past the input or writing past the declared size.

/** A block that does not decode to exactly its declared size. */
export class Lz4Error extends Error {}

// LZ4 sequences: a token (4-bit literal length, 4-bit match length - 4),
// extended lengths in 255-steps, literals, then a 2-byte little-endian offset.
const MIN_MATCH = 4;
const RUN_MASK = 15;

/**
 * Decode an LZ4 block into a new Uint8Array of exactly `size` bytes.
 * @param {Uint8Array} src the compressed block (no size prefix)
 * @param {number} size the uncompressed size
 */
export function decompressBlock(src, size) {
  const dst = new Uint8Array(size);
  let ip = 0;
  let op = 0;
  const end = src.length;
  const readLength = (base) => {
    let length = base;
    if (base === RUN_MASK) {
      let byte;
      do {
        if (ip >= end) throw new Lz4Error('truncated length');
        byte = src[ip++];
        length += byte;
      } while (byte === 255);
    }
    return length;
  };
  while (ip < end) {
    const token = src[ip++];
    const literals = readLength(token >> 4);
    if (ip + literals > end) throw new Lz4Error('literals run past the input');
    if (op + literals > size) throw new Lz4Error('literals run past the declared size');
    dst.set(src.subarray(ip, ip + literals), op);
    ip += literals;
    op += literals;
    if (ip === end) break; // the last sequence has literals only
    if (ip + 2 > end) throw new Lz4Error('truncated match offset');
    const offset = src[ip] | (src[ip + 1] << 8);
    ip += 2;
    if (offset === 0 || offset > op) throw new Lz4Error('match offset outside the output');
    const length = readLength(token & RUN_MASK) + MIN_MATCH;
    if (op + length > size) throw new Lz4Error('match runs past the declared size');
    let from = op - offset;
    if (offset >= length) {
      dst.copyWithin(op, from, from + length);
      op += length;
    } else {
      for (let i = 0; i < length; i++) dst[op++] = dst[from++]; // overlapping copy repeats the pattern
    }
  }
  if (op !== size) throw new Lz4Error(`block decodes to ${op} bytes, expected ${size}`);
  return dst;
}

/** Decode python-lz4's store_size=True format: u32 little-endian size, then the block. */
export function decompressSized(data, expected) {
  if (data.length < 4) throw new Lz4Error('missing size prefix');
  const size = new DataView(data.buffer, data.byteOffset, 4).getUint32(0, true);
  if (size !== expected) throw new Lz4Error(`size prefix ${size} is not the expected ${expected}`);
  return decompressBlock(data.subarray(4), size);
}

// TILE (docs/protocol.md §7b, media/tile.py on the Python side): a whole
// frame of one small two-colour region -- an echoed keystroke -- in one
// message.  It is unfolded here into the PALETTE region and FRAME_END it
// stands for, so display.js draws it exactly as it draws every other
// PALETTE region (one pixel path, byte-identical to the session).
//
// Why a module: the unfolding keeps state across frames (the last TILE's
// colours, which a TILE reuses when it does not repeat them) and is tested
// on its own (client/web/test/tile.test.js).

// protocol/media.py: TILE_COLOURS_BYTES, the form bits, ACK_LOW_MODULO.
export const TILE_COLOURS_BYTES = 6;
export const TILE_ACK_NOW = 0x01;
export const TILE_COLOURS = 0x02;
export const ACK_LOW_MODULO = 0x100;
// VIDEO_CAPS bit: this client unfolds TILE frames.
export const CODEC_TILE = 0x02;
// Largest keysym KEY_TAP_ACK carries (u16).
export const KEY_TAP_ACK_MAX_KEYSYM = 0xffff;
const PACK_RAW = 0;

export class TileError extends Error {}

/** Bytes of a w x h TILE's bits (one bit a pixel, rows not padded). */
export const tileBitsBytes = (w, h) => Math.ceil((w * h) / 8);

/** PALETTE data (1 bit, 2 colours, raw rows padded to a byte) of a TILE's colours and bits. */
export function tileToPalette(colours, bits, w, h) {
  const stride = Math.ceil(w / 8);
  const head = 2 + TILE_COLOURS_BYTES + 1;
  const out = new Uint8Array(head + stride * h);
  out[0] = 1; // bits per index
  out[1] = 1; // colours - 1
  out.set(colours, 2);
  out[head - 1] = PACK_RAW;
  for (let y = 0; y < h; y += 1) {
    for (let x = 0; x < w; x += 1) {
      const n = y * w + x;
      if (bits[n >> 3] & (0x80 >> (n & 7))) out[head + y * stride + (x >> 3)] |= 0x80 >> (x & 7);
    }
  }
  return out;
}

/** The colours of the last TILE of a display channel, and the frame seq it follows. */
export class TileUnfolder {
  constructor() {
    this.colours = null;
  }

  /**
   * {region, seq, ackNow}: the REGION fields (PALETTE) and the FRAME_END a TILE stands for,
   * its seq `previousSeq` + 1; TileError if it reuses colours that none sent.
   */
  unfold(f, previousSeq) {
    let bits = f.data;
    if (f.form & TILE_COLOURS) {
      this.colours = f.data.slice(0, TILE_COLOURS_BYTES);
      bits = f.data.subarray(TILE_COLOURS_BYTES);
    } else if (!this.colours) {
      throw new TileError('TILE reuses colours before any TILE sent them');
    }
    const data = tileToPalette(this.colours, bits, f.w, f.h);
    return {
      region: { x: f.x, y: f.y, w: f.w, h: f.h, encoding: 6, data },
      seq: (previousSeq + 1) >>> 0,
      ackNow: Boolean(f.form & TILE_ACK_NOW),
    };
  }
}

/**
 * The input message to send for `message`: a KEY_TAP of a keysym up to 0xffff becomes a
 * KEY_TAP_ACK carrying the held FRAME_ACK (taken out of `held`, channel -> message, at
 * `display`), so a keystroke and the ack of the previous echo share one frame.
 */
export function withHeldAck(message, held, display) {
  const ack = held.get(display);
  if (message.name !== 'KEY_TAP' || !ack || ack.name !== 'FRAME_ACK') return message;
  if (message.fields.keysym > KEY_TAP_ACK_MAX_KEYSYM) return message;
  held.delete(display);
  return { name: 'KEY_TAP_ACK', fields: { ack: ack.fields.seq % ACK_LOW_MODULO, keysym: message.fields.keysym } };
}

// KEY_TAP_ACK's wire form (protocol/media.py KeyTapAck): u8 ack, then the keysym in one byte
// if it is below KEYSYM_ONE_BYTE, else in two (big-endian); never two for a one-byte keysym.
export const KEYSYM_ONE_BYTE = 0x100;

/** The KEY_TAP_ACK payload of {ack, keysym}; throws bad(what) if a field is out of range. */
export function encodeKeyTapAck({ ack, keysym }, bad) {
  if (!Number.isInteger(ack) || ack < 0 || ack >= ACK_LOW_MODULO) throw bad(`ack=${ack} outside [0, 255]`);
  if (!Number.isInteger(keysym) || keysym < 1 || keysym > KEY_TAP_ACK_MAX_KEYSYM) throw bad(`keysym=${keysym} outside [1, 65535]`);
  return keysym < KEYSYM_ONE_BYTE ? new Uint8Array([ack, keysym]) : new Uint8Array([ack, keysym >> 8, keysym & 0xff]);
}

/** {ack, keysym} of a KEY_TAP_ACK payload; throws bad(what) unless it is 2 bytes, or 3 for a keysym >= 0x100. */
export function decodeKeyTapAck(payload, bad) {
  if (payload.length !== 2 && payload.length !== 3) throw bad(`payload must be 2 or 3 bytes, got ${payload.length}`);
  const keysym = payload.length === 2 ? payload[1] : (payload[1] << 8) | payload[2];
  if (payload.length === 3 && keysym < KEYSYM_ONE_BYTE) throw bad('sends a keysym below 0x100 in one byte');
  if (keysym < 1) throw bad('keysym=0 outside [1, 65535]');
  return { ack: payload[0], keysym };
}

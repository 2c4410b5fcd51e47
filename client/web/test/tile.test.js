// The web client's TILE unfolding (tile.js) against the shared vectors
// (tests/vectors/frames.json) and against tiles made by the server's codec
// from PALETTE regions (fixtures/tile.json, made with media.tile): the
// unfolded PALETTE region decodes to exactly the region's pixels. Also the
// held FRAME_ACK riding in a KEY_TAP_ACK, and TILE's bounds in the codec.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { decodePalette } from '../js/palette.js';
import { decodeMessage, encodeMessage, Kind, ProtocolError } from '../js/protocol.js';
import { TILE_COLOURS, TileError, TileUnfolder, withHeldAck } from '../js/tile.js';

const load = (path) => JSON.parse(readFileSync(fileURLToPath(new URL(path, import.meta.url)), 'utf8'));
const VECTORS = load('../../../tests/vectors/frames.json');
const CASES = load('./fixtures/tile.json');
const hex = (s) => Uint8Array.from(s.match(/../g) || [], (b) => parseInt(b, 16));
const vector = (name) => VECTORS.find((v) => v.name === name);

for (const c of CASES) {
  test(`a ${c.name} TILE unfolds to the pixels of the PALETTE region it came from`, async () => {
    const unfolder = new TileUnfolder();
    const f = { x: 3, y: 4, w: c.w, h: c.h, form: TILE_COLOURS, data: hex(c.data_hex) };
    const { region, seq, ackNow } = unfolder.unfold(f, 41);
    assert.equal(seq, 42);
    assert.equal(ackNow, false);
    assert.deepEqual([region.x, region.y, region.w, region.h, region.encoding], [3, 4, c.w, c.h, 6]);
    const rgba = await decodePalette(region.data, c.w, c.h);
    assert.equal(Buffer.from([...rgba].filter((_, i) => i % 4 !== 3)).toString('hex'), c.rgb_hex);
  });
}

test('the shared TILE vectors decode; the second reuses the colours of the first', async () => {
  const unfolder = new TileUnfolder();
  const first = decodeMessage(Kind.DISPLAY, 9, hex(vector('tile_with_colours_ack_now').payload_hex));
  const second = decodeMessage(Kind.DISPLAY, 9, hex(vector('tile_reusing_colours').payload_hex));
  const a = unfolder.unfold(first.fields, 7);
  const b = unfolder.unfold(second.fields, a.seq);
  assert.deepEqual([a.seq, a.ackNow, b.seq, b.ackNow], [8, true, 9, false]);
  assert.deepEqual(await decodePalette(a.region.data, 12, 13), await decodePalette(b.region.data, 12, 13));
});

test('a TILE that reuses colours none sent is an error', () => {
  const f = { x: 0, y: 0, w: 8, h: 1, form: 0, data: new Uint8Array([0x0f]) };
  assert.throws(() => new TileUnfolder().unfold(f, 0), TileError);
});

test('TILE data of the wrong length, set pad bits or too large an area are refused by the codec', () => {
  const payload = (w, h, form, data) => new Uint8Array([0, 0, 0, 0, w, h, form, ...data]);
  assert.throws(() => decodeMessage(Kind.DISPLAY, 9, payload(12, 13, 0, new Array(19).fill(0))), ProtocolError);
  assert.throws(() => decodeMessage(Kind.DISPLAY, 9, payload(12, 13, 2, new Array(20).fill(0))), ProtocolError);
  assert.throws(() => decodeMessage(Kind.DISPLAY, 9, payload(3, 3, 0, [0, 1])), ProtocolError);
  assert.throws(() => decodeMessage(Kind.DISPLAY, 9, payload(64, 17, 0, new Array(136).fill(0))), ProtocolError);
  assert.throws(() => decodeMessage(Kind.DISPLAY, 9, payload(65, 1, 0, new Array(9).fill(0))), ProtocolError);
  decodeMessage(Kind.DISPLAY, 9, payload(64, 16, 0, new Array(128).fill(0)));
});

test('a held FRAME_ACK rides in the next KEY_TAP as KEY_TAP_ACK (seq mod 256), once', () => {
  const held = new Map([[1, { name: 'FRAME_ACK', fields: { seq: 300 } }]]);
  const tap = (keysym) => ({ name: 'KEY_TAP', fields: { keysym } });
  assert.deepEqual(withHeldAck(tap(0x61), held, 1), { name: 'KEY_TAP_ACK', fields: { ack: 44, keysym: 0x61 } });
  assert.equal(held.size, 0);
  assert.deepEqual(withHeldAck(tap(0x62), held, 1), tap(0x62));
  held.set(1, { name: 'FRAME_ACK', fields: { seq: 5 } });
  assert.deepEqual(withHeldAck(tap(0x1008ff11), held, 1), tap(0x1008ff11)); // past u16: the ack stays held
  assert.equal(held.size, 1);
  const [type, payload] = encodeMessage({ name: 'KEY_TAP_ACK', fields: { ack: 43, keysym: 97 } });
  assert.equal(type, 0x0b);
  assert.equal(Buffer.from(payload).toString('hex'), vector('key_tap_ack').payload_hex);
  const [, twoBytes] = encodeMessage({ name: 'KEY_TAP_ACK', fields: { ack: 44, keysym: 0xff0d } });
  assert.equal(Buffer.from(twoBytes).toString('hex'), vector('key_tap_ack_two_byte_keysym').payload_hex);
  assert.throws(() => decodeMessage(Kind.INPUT, 0x0b, new Uint8Array([7, 0, 0x61])), ProtocolError); // not minimal
  assert.throws(() => decodeMessage(Kind.INPUT, 0x0b, new Uint8Array([7])), ProtocolError);
  assert.deepEqual(decodeMessage(Kind.INPUT, 0x0b, new Uint8Array([7, 0x61])).fields, { ack: 7, keysym: 0x61 });
});

// The JavaScript frame codec against the shared vectors (tests/vectors/frames.json):
// every valid control, display and input message must encode to exactly its
// payload and frame bytes and decode back to its fields; malformed display and
// control payloads from the invalid streams must be refused.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import {
  FrameDecoder, Kind, KIND_MAX_PAYLOAD, MAX_KEYSYM, MAX_WINDOWS, MESSAGE_TABLE, ProtocolError, Reason, decodeMessage, encodeFrame,
  encodeMessage, HEADER_SIZE,
} from '../js/protocol.js';

const VECTORS = JSON.parse(readFileSync(fileURLToPath(new URL('../../../tests/vectors/frames.json', import.meta.url)), 'utf8'));
// Kinds the web client speaks (audio and USB are not in the browser yet).
const WEB_KINDS = new Set([Kind.CONTROL, Kind.DISPLAY, Kind.INPUT, Kind.CLIPBOARD, Kind.WINDOWS, Kind.FILES]);
const valid = VECTORS.filter((v) => v.message && WEB_KINDS.has(v.kind));

const hex = (s) => Uint8Array.from(s.match(/../g) || [], (b) => parseInt(b, 16));
const toHex = (bytes) => Buffer.from(bytes).toString('hex');

function fieldsFromVector(vector) {
  const fields = { ...vector.message.fields };
  if (['REGION', 'TILE', 'CLIP_DATA', 'FILE_DATA'].includes(vector.message.name)) fields.data = hex(fields.data);
  if (vector.message.name === 'WINDOW_ICON') fields.png = hex(fields.png);
  return fields;
}

function comparable(fields) {
  const out = { ...fields };
  if (out.data instanceof Uint8Array) out.data = toHex(out.data);
  if (out.png instanceof Uint8Array) out.png = toHex(out.png);
  return out;
}

test('the vectors cover every web message type', () => {
  const names = new Set(valid.map((v) => v.message.name));
  for (const name of ['HELLO', 'AUTH', 'AUTH_RESULT', 'APP_LIST', 'ICON', 'LAUNCH', 'REGION', 'FRAME_END',
    'FRAME_ACK', 'TILE', 'KEY_TAP_ACK', 'RESIZE_REQUEST', 'KEY', 'POINTER', 'BUTTON', 'WHEEL', 'WINDOW_UPDATE', 'CLOSE', 'CLIP_OFFER',
    'CLIP_DATA', 'CLIP_ERROR', 'CLIP_DONE', 'FILE_OFFER', 'FILE_DATA', 'FILE_DONE', 'FILE_CANCEL']) {
    assert.ok(names.has(name), `no vector for ${name}`);
  }
  assert.ok(valid.length >= 40, `only ${valid.length} vectors`);
});

for (const vector of valid) {
  test(`encode ${vector.name}`, () => {
    const [type, payload] = encodeMessage({ name: vector.message.name, fields: fieldsFromVector(vector) });
    assert.equal(type, vector.type);
    assert.equal(toHex(payload), vector.payload_hex);
    assert.equal(toHex(encodeFrame(vector.channel, type, payload)), vector.frame_hex);
  });

  test(`decode ${vector.name}`, () => {
    const [frame] = new FrameDecoder().push(hex(vector.frame_hex));
    assert.equal(frame.channel, vector.channel);
    assert.equal(frame.type, vector.type);
    const message = decodeMessage(vector.kind, frame.type, frame.payload);
    assert.equal(message.name, vector.message.name);
    assert.deepEqual(comparable(message.fields), vector.message.fields);
  });
}

test('frames split one byte at a time decode the same', () => {
  const stream = hex(valid.map((v) => v.frame_hex).join(''));
  const decoder = new FrameDecoder();
  const frames = [];
  for (const byte of stream) frames.push(...decoder.push(Uint8Array.of(byte)));
  assert.equal(frames.length, valid.length);
  frames.forEach((f, i) => assert.equal(toHex(f.payload), valid[i].payload_hex));
  assert.equal(decoder.buffered, 0);
});

test('an oversize header is refused before its payload arrives', () => {
  const vector = VECTORS.find((v) => v.name === 'oversize_frame_header_only');
  const decoder = new FrameDecoder();
  assert.throws(() => decoder.push(hex(vector.bytes_hex)), (e) => e instanceof ProtocolError && e.code === vector.expect_code);
  const control = hex('0001000100000d00'); // 65537 bytes announced on channel 0
  assert.throws(() => new FrameDecoder().push(control), (e) => e.code === 5);
  assert.throws(() => new FrameDecoder().push(hex('0000000001000100')), (e) => e.code === 6); // channel 256
});

// Invalid streams whose last frame is a malformed display or control payload:
// decoding that frame must fail with the vector's code.
const PAYLOAD_CASES = ['region_zero_width', 'region_unknown_encoding', 'region_fill_wrong_length', 'region_too_large',
  'region_lz4_size_mismatch', 'desktop_size_wrong_length', 'unknown_display_type', 'bad_json', 'json_not_object',
  'json_bool_as_int', 'json_missing_field', 'json_invalid_utf8', 'unknown_control_type', 'window_update_zero',
  'window_update_wrong_size'];
for (const name of PAYLOAD_CASES) {
  test(`refuses ${name}`, () => {
    const vector = VECTORS.find((v) => v.name === name);
    assert.ok(vector, `vector ${name} missing`);
    const frames = new FrameDecoder().push(hex(vector.bytes_hex));
    const last = frames[frames.length - 1];
    const kind = last.channel === 0 ? Kind.CONTROL : last.channel === 1 ? Kind.DISPLAY : Kind.INPUT;
    assert.throws(() => decodeMessage(kind, last.type, last.payload),
      (e) => e instanceof ProtocolError && e.code === vector.expect_code, `${name}`);
  });
}

test('the header is 8 bytes, big-endian', () => {
  const frame = encodeFrame(2, 1, Uint8Array.of(0, 0, 0xff, 0x0d, 1));
  assert.equal(HEADER_SIZE, 8);
  assert.equal(toHex(frame), '00000005000201000000ff0d01');
});

test('a frame longer than its kind carries is refused from the header (audio_data_packet_too_long)', () => {
  const vector = VECTORS.find((v) => v.name === 'audio_data_packet_too_long');
  const frames = new FrameDecoder().push(hex(vector.bytes_hex));
  const last = frames[frames.length - 1];
  assert.equal(vector.expect_code, Reason.FRAME_TOO_LARGE);
  assert.equal(last.payload.length, KIND_MAX_PAYLOAD[Kind.AUDIO_OUT] + 1);
});

test('KEY keysyms outside 1..MAX_KEYSYM are malformed', () => {
  for (const keysym of [0, MAX_KEYSYM + 1]) {
    const payload = Uint8Array.of(keysym >>> 24, (keysym >>> 16) & 0xff, (keysym >>> 8) & 0xff, keysym & 0xff, 1);
    assert.throws(() => decodeMessage(Kind.INPUT, 0x01, payload), (e) => e.code === Reason.MALFORMED_MESSAGE);
  }
  assert.equal(decodeMessage(Kind.INPUT, 0x01, Uint8Array.of(0x1f, 0xff, 0xff, 0xff, 0)).fields.keysym, MAX_KEYSYM);
});

test('the codec takes bounds from the generated message table', () => {
  const open = (channel) => encodeMessage({ name: 'CHANNEL_OPEN', fields: { channel, kind: 1, window: 1 } });
  assert.equal(toHex(open(65535)[1]), toHex(new TextEncoder().encode('{"channel":65535,"kind":1,"window":1}')));
  assert.throws(() => open(65536), (e) => e instanceof ProtocolError && e.code === Reason.MALFORMED_MESSAGE);
  const row = MESSAGE_TABLE.find((m) => m.name === 'BUTTON');
  assert.deepEqual(row.fields.map((f) => f.name), ['x', 'y', 'button', 'down']);
  const buttonZero = Uint8Array.of(0, 1, 0, 2, 0, 1); // button 0 is below the table's low bound of 1
  assert.throws(() => decodeMessage(Kind.INPUT, row.type, buttonZero), (e) => e.code === Reason.MALFORMED_MESSAGE);
  assert.equal(KIND_MAX_PAYLOAD[Kind.INPUT], 12); // WINDOW_WHEEL
});

test('WINDOW_RESTACK: at most MAX_WINDOWS ids, none 0, a whole number of u32s', () => {
  const restack = MESSAGE_TABLE.find((m) => m.name === 'WINDOW_RESTACK');
  const ids = (n) => {
    const out = new Uint8Array(4 * n);
    for (let i = 0; i < n; i += 1) new DataView(out.buffer).setUint32(4 * i, i + 1);
    return out;
  };
  const refused = (payload) => assert.throws(() => decodeMessage(Kind.WINDOWS, restack.type, payload),
    (e) => e instanceof ProtocolError && e.code === Reason.MALFORMED_MESSAGE);
  assert.equal(decodeMessage(Kind.WINDOWS, restack.type, ids(MAX_WINDOWS)).fields.order.length, MAX_WINDOWS);
  refused(ids(MAX_WINDOWS + 1));
  refused(Uint8Array.of(0, 0, 0, 0));
  refused(Uint8Array.of(0, 0, 0, 1, 0));
  assert.throws(() => encodeMessage({ name: 'WINDOW_RESTACK', fields: { order: [0] } }), ProtocolError);
  assert.deepEqual(decodeMessage(Kind.WINDOWS, restack.type, new Uint8Array(0)).fields.order, []);
});

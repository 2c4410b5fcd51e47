// The web client's H264 stream handling (docs/protocol.md §7a): the REGION
// header and its bounds, the SPS reader against units made by the server's
// encoder (fixtures/h264.json, from sessiond.agent.h264 / libx264), and the
// decoder rules with a recorder fake of WebCodecs' VideoDecoder.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import {
  FLAG_END, FLAG_KEY, MAX_VIDEO_PAYLOAD, MAX_VIDEO_PIXELS, MAX_VIDEO_SIDE, MAX_VIDEO_STREAMS,
  VideoError, VideoStreams, h264Supported, nalUnits, parseUnit, readSps,
} from '../js/video.js';
import { decodeMessage } from '../js/protocol.js';

const FIXTURE = JSON.parse(readFileSync(fileURLToPath(new URL('./fixtures/h264.json', import.meta.url)), 'utf8'));
const VECTORS = JSON.parse(readFileSync(fileURLToPath(new URL('../../../tests/vectors/frames.json', import.meta.url)), 'utf8'));
const hex = (s) => Uint8Array.from(s.match(/../g) || [], (b) => parseInt(b, 16));
const unit = (stream, flags, data) => Uint8Array.from([stream, flags, ...data]);
const small = FIXTURE.cases.find((c) => c.w === 64);
const odd = FIXTURE.cases.find((c) => c.w === 641);
const big = FIXTURE.cases.find((c) => c.w === 1920);

test('the shared H264 vector parses as a KEY of stream 2', () => {
  const v = VECTORS.find((x) => x.name === 'region_h264_key');
  const message = decodeMessage(1, v.type, hex(v.payload_hex));
  const u = parseUnit(message.fields.data, message.fields.w, message.fields.h);
  assert.deepEqual([u.stream, u.key, u.end], [2, true, false]);
});

const BAD = [
  ['a stream id of MAX_VIDEO_STREAMS', unit(MAX_VIDEO_STREAMS, 0, [1]), 64, 48, /MAX_VIDEO_STREAMS/],
  ['a side past MAX_VIDEO_SIDE', unit(0, 0, [1]), MAX_VIDEO_SIDE + 1, 16, /MAX_VIDEO_SIDE/],
  ['an area past MAX_VIDEO_PIXELS', unit(0, 0, [1]), MAX_VIDEO_SIDE, MAX_VIDEO_PIXELS / MAX_VIDEO_SIDE + 1, /MAX_VIDEO_PIXELS/],
  ['a unit past MAX_VIDEO_PAYLOAD', new Uint8Array(MAX_VIDEO_PAYLOAD + 3), 64, 48, /MAX_VIDEO_PAYLOAD/],
  ['END with data', unit(0, FLAG_END, [1]), 64, 48, /END/],
  ['no access unit', unit(0, FLAG_KEY, []), 64, 48, /without an access unit/],
  ['unknown flags', unit(0, 4, [1]), 64, 48, /unknown bits/],
];
for (const [name, payload, w, h, match] of BAD) {
  test(`parseUnit refuses ${name}`, () => assert.throws(() => parseUnit(payload, w, h), match));
}

test('bounds just inside are accepted', () => {
  parseUnit(new Uint8Array(MAX_VIDEO_PAYLOAD + 2), MAX_VIDEO_SIDE, MAX_VIDEO_PIXELS / MAX_VIDEO_SIDE);
});

test('readSps finds the coded size and codec string of the server encoder units', () => {
  assert.deepEqual(readSps(hex(small.key_hex)), { codec: readSps(hex(small.key_hex)).codec, width: 64, height: 48 });
  assert.equal(readSps(hex(odd.key_hex)).width, 642);
  assert.equal(readSps(hex(odd.key_hex)).height, 362);
  assert.deepEqual([readSps(hex(big.key_hex)).width, readSps(hex(big.key_hex)).height], [1920, 1080]);
  assert.match(readSps(hex(small.key_hex)).codec, /^avc1\.42[0-9a-f]{4}$/);
  assert.equal(readSps(hex(small.delta_hex)), null);
  assert.ok(nalUnits(hex(small.key_hex)).length >= 3); // SPS, PPS, IDR slice (and SEI)
});

class FakeDecoder {
  static made = [];
  constructor(init) {
    this.init = init;
    this.state = 'unconfigured';
    this.chunks = [];
    FakeDecoder.made.push(this);
  }
  configure(config) { this.config = config; this.state = 'configured'; }
  decode(chunk) { this.chunks.push(chunk); }
  close() { this.state = 'closed'; }
  emit(width, height) {
    let closed = false;
    const frame = { codedWidth: width, codedHeight: height, displayWidth: width, displayHeight: height, close() { closed = true; } };
    this.init.output(frame);
    return () => closed;
  }
}
class FakeChunk { constructor(init) { Object.assign(this, init); } }

function streams() {
  FakeDecoder.made = [];
  return new VideoStreams(FakeDecoder, FakeChunk);
}

test('a KEY opens a decoder configured from its SPS; the frame resolves in order', async () => {
  const v = streams();
  const first = v.decode(unit(1, FLAG_KEY, hex(small.key_hex)), 64, 48);
  const decoder = FakeDecoder.made[0];
  assert.equal(decoder.config.codedWidth, 64);
  assert.equal(decoder.chunks[0].type, 'key');
  const second = v.decode(unit(1, 0, hex(small.delta_hex)), 64, 48);
  assert.equal(decoder.chunks[1].type, 'delta');
  decoder.emit(64, 48);
  decoder.emit(64, 48);
  assert.equal((await first).displayWidth, 64);
  assert.equal((await second).displayHeight, 48);
  assert.equal(v.frames, 2);
  assert.equal(await v.decode(unit(1, FLAG_END, []), 64, 48), null);
  assert.equal(decoder.state, 'closed');
  assert.equal(v.open, 0);
});

test('a hostile SPS larger than the region is refused before any decoder exists', () => {
  const v = streams();
  assert.throws(() => v.decode(unit(0, FLAG_KEY, hex(big.key_hex)), 64, 48), /SPS announces 1920x1080/);
  assert.equal(FakeDecoder.made.length, 0);
});

test('a unit without KEY, or for another size, is refused', () => {
  const v = streams();
  assert.throws(() => v.decode(unit(0, 0, hex(small.delta_hex)), 64, 48), /no KEY/);
  v.decode(unit(0, FLAG_KEY, hex(small.key_hex)), 64, 48);
  assert.throws(() => v.decode(unit(0, 0, hex(small.delta_hex)), 96, 48), /continues a stream of 64x48/);
});

test('a decoded picture of the wrong size is dropped and fails its region', async () => {
  const v = streams();
  const pending = v.decode(unit(0, FLAG_KEY, hex(small.key_hex)), 64, 48);
  const closed = FakeDecoder.made[0].emit(1920, 1080);
  await assert.rejects(pending, VideoError);
  assert.ok(closed());
  assert.equal(v.open, 0);
});

test('decoders never exceed MAX_VIDEO_STREAMS: a KEY replaces its id', () => {
  const v = streams();
  for (let round = 0; round < 3; round += 1) {
    for (let id = 0; id < MAX_VIDEO_STREAMS; id += 1) v.decode(unit(id, FLAG_KEY, hex(small.key_hex)), 64, 48).catch(() => {});
  }
  assert.equal(v.open, MAX_VIDEO_STREAMS);
  assert.equal(FakeDecoder.made.filter((d) => d.state !== 'closed').length, MAX_VIDEO_STREAMS);
});

test('h264Supported asks isConfigSupported and says no without WebCodecs', async () => {
  assert.equal(await h264Supported(undefined), false);
  assert.equal(await h264Supported({ isConfigSupported: async () => ({ supported: true }) }), true);
  assert.equal(await h264Supported({ isConfigSupported: async () => ({ supported: false }) }), false);
  assert.equal(await h264Supported({ isConfigSupported: async () => { throw new Error('no'); } }), false);
});

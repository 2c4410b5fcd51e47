// The web client's audio without a browser: the audio messages of the JS frame
// codec against the shared vectors (tests/vectors/frames.json), the malformed
// audio payloads it must refuse, and the timing logic (jitter estimate, playout
// placement, microphone pts) driven by made-up clocks.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import {
  FrameDecoder, Kind, MAX_AUDIO_PACKET, ProtocolError, decodeMessage, encodeFrame, encodeMessage,
} from '../js/protocol.js';
import {
  FRAME_SAMPLES, JitterEstimator, MAX_PLAYOUT_SECONDS, MIN_LEAD_SECONDS, MIN_PLAYOUT_SECONDS, MicPacketizer,
  PlayoutClock, SAMPLE_RATE, SampleRing, loudPart, zeroCrossingFrequency,
} from '../js/audio.js';

const VECTORS_PATH = fileURLToPath(new URL('../../../tests/vectors/frames.json', import.meta.url));
const VECTORS = JSON.parse(readFileSync(VECTORS_PATH, 'utf8'));
const AUDIO = VECTORS.filter((v) => v.message && (v.kind === Kind.AUDIO_OUT || v.kind === Kind.AUDIO_IN));
const hex = (s) => Uint8Array.from(s.match(/../g) || [], (b) => parseInt(b, 16));
const toHex = (bytes) => Buffer.from(bytes).toString('hex');
const FRAME = FRAME_SAMPLES / SAMPLE_RATE;

test('the vectors cover all four audio messages', () => {
  const names = new Set(AUDIO.map((v) => v.message.name));
  assert.deepEqual(names, new Set(['AUDIO_FORMAT', 'AUDIO_DATA', 'MIC_FORMAT', 'MIC_DATA']));
});

for (const vector of AUDIO) {
  const fields = { ...vector.message.fields };
  if (fields.packet !== undefined) fields.packet = hex(fields.packet);

  test(`encode ${vector.name}`, () => {
    const [type, payload] = encodeMessage({ name: vector.message.name, fields });
    assert.equal(type, vector.type);
    assert.equal(toHex(payload), vector.payload_hex);
    assert.equal(toHex(encodeFrame(vector.channel, type, payload)), vector.frame_hex);
  });

  test(`decode ${vector.name}`, () => {
    const [frame] = new FrameDecoder().push(hex(vector.frame_hex));
    const message = decodeMessage(vector.kind, frame.type, frame.payload);
    assert.equal(message.name, vector.message.name);
    const got = { ...message.fields };
    if (got.packet) got.packet = toHex(got.packet);
    assert.deepEqual(got, vector.message.fields);
  });
}

// Invalid streams whose last frame is a malformed audio payload on channel 3
// (audio_data_packet_too_long is refused from its header: protocol.test.js).
for (const name of ['audio_data_empty_packet', 'audio_format_not_opus_rate']) {
  test(`refuses ${name}`, () => {
    const vector = VECTORS.find((v) => v.name === name);
    assert.ok(vector, `vector ${name} missing`);
    const frames = new FrameDecoder().push(hex(vector.bytes_hex));
    const last = frames[frames.length - 1];
    assert.equal(last.channel, 3);
    assert.throws(() => decodeMessage(Kind.AUDIO_OUT, last.type, last.payload),
      (e) => e instanceof ProtocolError && e.code === vector.expect_code);
  });
}

test('audio formats out of range are refused', () => {
  const format = (codec, channels, samples, rate) => {
    const payload = new Uint8Array(8);
    const view = new DataView(payload.buffer);
    view.setUint8(0, codec);
    view.setUint8(1, channels);
    view.setUint16(2, samples);
    view.setUint32(4, rate);
    return () => decodeMessage(Kind.AUDIO_OUT, 1, payload);
  };
  assert.equal(format(1, 2, 960, 48000)().fields.sample_rate, 48000);
  for (const bad of [format(2, 2, 960, 48000), format(1, 0, 960, 48000), format(1, 3, 960, 48000),
    format(1, 2, 0, 48000), format(1, 2, 5761, 48000), format(1, 2, 960, 44100)]) {
    assert.throws(bad, (e) => e instanceof ProtocolError && e.code === 10);
  }
  assert.throws(() => decodeMessage(Kind.AUDIO_IN, 1, new Uint8Array(7)), (e) => e.code === 10);
});

test('audio packets: the largest passes, one byte more and 2^53 timestamps are refused', () => {
  const largest = new Uint8Array(MAX_AUDIO_PACKET).fill(7);
  const [, payload] = encodeMessage({ name: 'MIC_DATA', fields: { pts: 2 ** 40 + 5, capture_us: 3, packet: largest } });
  const decoded = decodeMessage(Kind.AUDIO_IN, 2, payload);
  assert.equal(decoded.fields.pts, 2 ** 40 + 5);
  assert.equal(decoded.fields.packet.length, MAX_AUDIO_PACKET);
  const longer = new Uint8Array(payload.length + 1);
  longer.set(payload);
  assert.throws(() => decodeMessage(Kind.AUDIO_IN, 2, longer), (e) => e.code === 10);
  const huge = payload.slice();
  huge[1] = 0x20; // pts >= 2^53
  assert.throws(() => decodeMessage(Kind.AUDIO_IN, 2, huge), (e) => e.code === 10);
  const empty = { pts: 0, capture_us: 0, packet: new Uint8Array(0) };
  assert.throws(() => encodeMessage({ name: 'MIC_DATA', fields: empty }));
  const cdRate = { codec: 1, channels: 1, frame_samples: 960, sample_rate: 44100 };
  assert.throws(() => encodeMessage({ name: 'MIC_FORMAT', fields: cdRate }));
});

test('jitter: a steady stream keeps the minimum delay, a jittery one grows it up to the ceiling', () => {
  const steady = new JitterEstimator();
  for (let i = 0; i < 100; i++) steady.arrived(i * FRAME, i * FRAME_SAMPLES);
  assert.ok(steady.jitter < 1e-12, steady.jitter);
  assert.equal(steady.playoutDelay(FRAME), MIN_PLAYOUT_SECONDS);
  const jittery = new JitterEstimator();
  for (let i = 0; i < 200; i++) jittery.arrived(i * FRAME + (i % 2 ? 0.03 : 0), i * FRAME_SAMPLES);
  assert.ok(jittery.jitter > 0.02 && jittery.jitter < 0.031, jittery.jitter);
  const delay = jittery.playoutDelay(FRAME);
  assert.ok(delay > 0.1 && delay < MAX_PLAYOUT_SECONDS, delay);
  const awful = new JitterEstimator();
  for (let i = 0; i < 200; i++) awful.arrived(i * FRAME + (i % 2 ? 0.5 : 0), i * FRAME_SAMPLES);
  assert.equal(awful.playoutDelay(FRAME), MAX_PLAYOUT_SECONDS);
});

test('playout: packets keep their exact spacing, gaps stay gaps, late packets re-anchor without overlap', () => {
  const clock = new PlayoutClock();
  const delay = 0.05;
  const first = clock.place(0, FRAME_SAMPLES, 10, delay);
  assert.equal(first, 10.05);
  assert.equal(clock.place(FRAME_SAMPLES, FRAME_SAMPLES, 10.015, delay), 10.05 + FRAME);
  // The sender skipped 10 silent frames: the next packet starts 11 frames after the first.
  assert.ok(Math.abs(clock.place(11 * FRAME_SAMPLES, FRAME_SAMPLES, 10.2, delay) - (10.05 + 11 * FRAME)) < 1e-9);
  assert.equal(clock.resyncs, 0);
  // A packet that would start in the past (the network stalled) is re-anchored at now + delay.
  const late = clock.place(12 * FRAME_SAMPLES, FRAME_SAMPLES, 11, delay);
  assert.equal(late, 11.05);
  assert.equal(clock.resyncs, 1);
  // One that would start too far ahead is pulled in, but never before what is already scheduled.
  const ahead = clock.place(13 * FRAME_SAMPLES + 48000, FRAME_SAMPLES, 11.001, delay);
  assert.ok(ahead >= 11.05 + FRAME - 1e-9 && ahead < 11.2, ahead);
  assert.equal(clock.resyncs, 2);
  // A packet due sooner than MIN_LEAD_SECONDS from now counts as late.
  const fresh = new PlayoutClock();
  fresh.place(0, FRAME_SAMPLES, 5, delay);
  assert.equal(fresh.place(FRAME_SAMPLES, FRAME_SAMPLES, 5 + delay + FRAME - MIN_LEAD_SECONDS / 2, delay),
    5 + 2 * delay + FRAME - MIN_LEAD_SECONDS / 2);
  assert.equal(fresh.resyncs, 1);
});

test('mic pts count samples from the first packet after a reset, gaps included', () => {
  const mic = new MicPacketizer();
  const packet = Uint8Array.of(1);
  assert.deepEqual(mic.fields(1_060_000, packet), { pts: 0, capture_us: 1_060_000, packet });
  assert.equal(mic.fields(1_080_000, packet).pts, FRAME_SAMPLES);
  assert.equal(mic.fields(1_120_000, packet).pts, 3 * FRAME_SAMPLES); // one frame skipped
  mic.reset();
  assert.equal(mic.fields(2_000_000, packet).pts, 0);
  assert.equal(mic.packets, 4);
});

test('the sample ring keeps the newest samples in order', () => {
  const ring = new SampleRing(5);
  ring.append(Float32Array.of(1, 2, 3));
  assert.deepEqual(Array.from(ring.recent()), [1, 2, 3]);
  ring.append(Float32Array.of(4, 5, 6, 7));
  assert.deepEqual(Array.from(ring.recent()), [3, 4, 5, 6, 7]);
  ring.append(Float32Array.of(8, 9, 10, 11, 12, 13));
  assert.deepEqual(Array.from(ring.recent()), [9, 10, 11, 12, 13]);
});

test('zero crossings measure a tone; the loud part drops silence around it', () => {
  const tone = new Float32Array(SAMPLE_RATE);
  for (let i = 12000; i < 36000; i++) tone[i] = 0.5 * Math.sin((2 * Math.PI * 440 * i) / SAMPLE_RATE + 0.3);
  const part = loudPart(tone, 0.06, 2400);
  assert.ok(part.length > 18000 && part.length < 20000, part.length);
  assert.ok(Math.abs(zeroCrossingFrequency(part, SAMPLE_RATE) - 440) < 0.05);
  assert.equal(loudPart(new Float32Array(100), 0.06, 10).length, 0);
  assert.equal(zeroCrossingFrequency(new Float32Array(100), SAMPLE_RATE), 0);
});

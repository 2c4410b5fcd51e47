// The speaker and microphone buttons against recorder fakes: which channels
// open and close on which clicks, what goes out on audio-in, how credit comes
// back, and where decoded audio is scheduled on the context's clock.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AudioControls } from '../js/audio-controls.js';
import { SpeakerPlayer } from '../js/audio-out.js';
import { Kind } from '../js/protocol.js';

class FakeButton extends EventTarget {
  constructor() {
    super();
    this.dataset = {};
    this.attributes = {};
    this.hidden = true;
    this.textContent = '';
    this.classes = new Set();
    this.classList = { toggle: (name, on) => (on ? this.classes.add(name) : this.classes.delete(name)) };
  }

  setAttribute(name, value) { this.attributes[name] = value; }

  click() { this.dispatchEvent(new Event('click')); }
}

class FakeConnection {
  constructor() {
    this.log = [];
    this.channels = new Map();
    this.credit = 1000;
  }

  openChannel(channel, kind) {
    this.log.push(['open', channel, kind]);
    this.channels.set(channel, { phase: 'opening' });
  }

  closeChannel(channel) {
    this.log.push(['close', channel]);
    this.channels.get(channel).phase = 'closing';
  }

  isOpen(channel) { return this.channels.get(channel)?.phase === 'open'; }

  sendWindow(channel) { return this.isOpen(channel) ? this.credit : 0; }

  send(channel, message) {
    this.log.push(['send', channel, message.name, message.fields]);
    return true;
  }

  consumed(channel, cost) { this.log.push(['consumed', channel, cost]); }
}

class FakeNode {
  connect() {}

  disconnect() {}
}

class FakeContext {
  constructor() {
    this.state = 'suspended';
    this.currentTime = 10;
    this.sampleRate = 48000;
    this.started = [];
  }

  resume() { this.state = 'running'; return Promise.resolve(); }

  suspend() { this.state = 'suspended'; return Promise.resolve(); }

  createAnalyser() { return Object.assign(new FakeNode(), { fftSize: 0 }); }

  createBuffer(channels, frames, rate) {
    return { channels, frames, rate, copyToChannel: () => {} };
  }

  createBufferSource() {
    const source = new FakeNode();
    source.start = (when) => this.started.push(when);
    return source;
  }
}

function setup() {
  globalThis.AudioDecoder ||= class {};
  const speaker = new FakeButton();
  const mic = new FakeButton();
  const errors = [];
  const controls = new AudioControls(speaker, mic, (text) => errors.push(text), { AudioContextImpl: FakeContext });
  const conn = new FakeConnection();
  controls.attach(conn);
  return { controls, speaker, mic, conn, errors };
}

const opened = (controls, conn, channel) => {
  conn.channels.get(channel).phase = 'open';
  return controls.control(conn, { name: 'CHANNEL_OPENED', fields: { channel } });
};

test('the speaker opens audio-out only once the session is ready, and closes it on the second click', () => {
  const { controls, speaker, conn } = setup();
  speaker.click();
  assert.deepEqual(conn.log, []);
  assert.equal(speaker.attributes['aria-pressed'], 'true');
  assert.equal(controls.context.state, 'running');
  controls.sessionReady();
  assert.deepEqual(conn.log, [['open', 3, Kind.AUDIO_OUT]]);
  assert.ok(opened(controls, conn, 3));
  speaker.click();
  assert.deepEqual(conn.log.at(-1), ['close', 3]);
  assert.equal(speaker.textContent, 'Sound off');
  assert.equal(controls.context.state, 'suspended');
});

test('switched back on before the close is confirmed, audio-out reopens after the confirmation', () => {
  const { controls, speaker, conn, errors } = setup();
  controls.sessionReady();
  speaker.click();
  opened(controls, conn, 3);
  speaker.click();
  speaker.click();
  assert.equal(conn.log.filter(([what]) => what === 'open').length, 1);
  conn.channels.delete(3);
  assert.ok(controls.control(conn, { name: 'CHANNEL_REFUSED', fields: { channel: 3, code: 0, message: '' } }));
  assert.deepEqual(conn.log.at(-1), ['open', 3, Kind.AUDIO_OUT]);
  assert.deepEqual(errors, []);
});

test('a refused audio-out says why and switches the speaker off', () => {
  const { controls, speaker, conn, errors } = setup();
  controls.sessionReady();
  speaker.click();
  conn.channels.delete(3);
  const why = 'audio is unavailable: no pulseaudio';
  controls.control(conn, { name: 'CHANNEL_REFUSED', fields: { channel: 3, code: 20, message: why } });
  assert.deepEqual(errors, ["The session's sound is unavailable: audio is unavailable: no pulseaudio"]);
  assert.equal(speaker.attributes['aria-pressed'], 'false');
});

test('audio-out messages reach the player and give credit back; other channels are not ours', () => {
  const { controls, speaker, conn } = setup();
  controls.sessionReady();
  speaker.click();
  const seen = [];
  controls.player.handle = (message) => seen.push(message.name);
  assert.ok(controls.handle(conn, 3, Kind.AUDIO_OUT, { name: 'AUDIO_DATA', fields: {} }, 27));
  assert.deepEqual(seen, ['AUDIO_DATA']);
  assert.deepEqual(conn.log.at(-1), ['consumed', 3, 27]);
  assert.equal(controls.handle(conn, 1, Kind.DISPLAY, { name: 'FRAME_END', fields: {} }, 12), false);
  assert.equal(controls.control(conn, { name: 'CHANNEL_OPENED', fields: { channel: 1 } }), false);
});

test('the microphone: MIC_FORMAT first when audio-in opens, packets only with credit, off closes it', () => {
  const { controls, mic, conn } = setup();
  controls.sessionReady();
  controls.wanted[4] = true; // as after getUserMedia granted (the capture itself needs a browser)
  controls.openIfWanted(4);
  const packet = Uint8Array.of(1, 2, 3);
  assert.equal(controls.sendMic({ pts: 0, capture_us: 0, packet }), false); // not open yet
  opened(controls, conn, 4);
  const format = { codec: 1, channels: 1, frame_samples: 960, sample_rate: 48000 };
  assert.deepEqual(conn.log.at(-1), ['send', 4, 'MIC_FORMAT', format]);
  assert.equal(controls.sendMic({ pts: 0, capture_us: 5, packet }), true);
  conn.credit = 8 + 16 + 2;
  assert.equal(controls.sendMic({ pts: 960, capture_us: 6, packet }), false);
  mic.click();
  assert.deepEqual(conn.log.at(-1), ['close', 4]);
  assert.equal(mic.textContent, 'Mic off');
});

test('logging out switches sound and microphone off', () => {
  const { controls, speaker, conn } = setup();
  controls.sessionReady();
  speaker.click();
  controls.setVisible(true);
  assert.equal(speaker.hidden, false);
  controls.setVisible(false);
  assert.equal(speaker.hidden, true);
  assert.equal(controls.wanted[3], false);
  assert.deepEqual(conn.log.at(-1), ['close', 3]);
});

test('the player schedules decoded frames by pts behind the playout delay', () => {
  const context = new FakeContext();
  const decoders = [];
  class FakeDecoder {
    constructor(init) {
      this.init = init;
      this.decodeQueueSize = 0;
      this.state = 'configured';
      decoders.push(this);
    }

    configure(config) { this.config = config; }

    decode(chunk) { this.init.output(fakeAudioData(chunk.timestamp)); }

    close() { this.state = 'closed'; }
  }
  const fakeAudioData = (timestamp) => ({ timestamp, sampleRate: 48000, numberOfFrames: 960, numberOfChannels: 2,
    copyTo: (plane) => plane.fill(0.5), close() { this.closed = true; } });
  let now = 0;
  const fakes = { AudioDecoderImpl: FakeDecoder, EncodedAudioChunkImpl: Object, now: () => now };
  const player = new SpeakerPlayer(context, fakes);
  player.handle({ name: 'AUDIO_FORMAT', fields: { codec: 1, channels: 2, frame_samples: 960, sample_rate: 48000 } });
  assert.deepEqual(decoders[0].config, { codec: 'opus', sampleRate: 48000, numberOfChannels: 2 });
  const packet = Uint8Array.of(1);
  player.handle({ name: 'AUDIO_DATA', fields: { pts: 0, capture_us: 0, packet } });
  now = 0.02;
  player.handle({ name: 'AUDIO_DATA', fields: { pts: 960, capture_us: 0, packet } });
  now = 0.1;
  player.handle({ name: 'AUDIO_DATA', fields: { pts: 50 * 960, capture_us: 0, packet } }); // 1 s later: a re-anchor
  assert.equal(context.started[0], 10.03);
  assert.ok(Math.abs(context.started[1] - 10.05) < 1e-9, context.started[1]);
  assert.ok(context.started[2] >= 10.07);
  assert.equal(player.stats.decoded, 3);
  assert.equal(player.ring.recent().length, 3 * 960);
  assert.equal(player.ring.recent()[0], 0.5);
});

// Plays the session's sound (audio-out: AUDIO_FORMAT, then AUDIO_DATA Opus
// packets) in the page: WebCodecs AudioDecoder turns packets into PCM, and
// each decoded frame becomes an AudioBufferSourceNode started at its place on
// the AudioContext's clock (PlayoutClock), a jitter-sized delay behind.
//
// Why scheduled buffers rather than an AudioWorklet ring: packets carry their
// stream position, and the context's clock can start a buffer at an exact
// sample; gaps (the session sends no silence) need no filling, and nothing
// runs on the audio thread that we wrote. Why the context is made by the
// caller: browsers let audio start only inside a user gesture (the speaker
// button's click), and the context must be created or resumed right there.

import {
  FRAME_SAMPLES, JitterEstimator, PlayoutClock, SAMPLE_RATE, SampleRing,
} from './audio.js';

// Packets waiting in the decoder beyond this are dropped (a stalled decoder must not grow a queue).
const MAX_DECODE_QUEUE = 50;
// Decoded samples (first channel) kept for tests and debugging: 3 s at 48 kHz.
const DEBUG_RING_SAMPLES = 3 * SAMPLE_RATE;
// Analyser resolution: 8192-point FFT, ~5.9 Hz bins at 48 kHz (refined by interpolation).
const ANALYSER_FFT_SIZE = 8192;

/** Decodes and schedules one audio-out stream on `context` (an AudioContext the caller created in a gesture). */
export class SpeakerPlayer {
  constructor(context, {
    AudioDecoderImpl = globalThis.AudioDecoder,
    EncodedAudioChunkImpl = globalThis.EncodedAudioChunk,
    now = () => performance.now() / 1000,
    onError = () => {},
  } = {}) {
    this.context = context;
    this.AudioDecoderImpl = AudioDecoderImpl;
    this.EncodedAudioChunkImpl = EncodedAudioChunkImpl;
    this.now = now;
    this.onError = onError;
    this.decoder = null;
    this.format = null;
    this.jitter = new JitterEstimator(SAMPLE_RATE);
    this.clock = new PlayoutClock(SAMPLE_RATE);
    this.ring = new SampleRing(DEBUG_RING_SAMPLES);
    this.stats = { packets: 0, decoded: 0, dropped: 0, errors: 0 };
    this.analyser = context.createAnalyser();
    this.analyser.fftSize = ANALYSER_FFT_SIZE;
    this.analyser.connect(context.destination);
  }

  /** Handle one audio-out message; the message is processed (credit may go back) when this returns. */
  handle(message) {
    if (message.name === 'AUDIO_FORMAT') this.start(message.fields);
    else if (message.name === 'AUDIO_DATA') this.packet(message.fields);
  }

  start(format) {
    this.closeDecoder();
    this.format = format;
    this.jitter = new JitterEstimator(format.sample_rate);
    this.clock = new PlayoutClock(format.sample_rate);
    const decoder = new this.AudioDecoderImpl({
      output: (data) => this.decoded(decoder, data),
      error: (error) => {
        this.stats.errors += 1;
        if (this.decoder === decoder) this.decoder = null;
        this.onError(`The session's sound cannot be decoded: ${error.message || error}`);
      },
    });
    decoder.configure({ codec: 'opus', sampleRate: format.sample_rate, numberOfChannels: format.channels });
    this.decoder = decoder;
  }

  packet({ pts, packet }) {
    if (!this.decoder || !this.format) return;
    if (this.decoder.decodeQueueSize > MAX_DECODE_QUEUE) {
      this.stats.dropped += 1;
      return;
    }
    this.jitter.arrived(this.now(), pts);
    this.stats.packets += 1;
    // The chunk's timestamp carries the pts through the decoder (microseconds, as WebCodecs wants).
    const timestamp = Math.round((pts * 1e6) / this.format.sample_rate);
    this.decoder.decode(new this.EncodedAudioChunkImpl({ type: 'key', timestamp, data: packet.slice() }));
  }

  decoded(decoder, data) {
    try {
      if (decoder !== this.decoder || this.context.state === 'closed') return;
      const rate = data.sampleRate;
      const frames = data.numberOfFrames;
      const buffer = this.context.createBuffer(data.numberOfChannels, frames, rate);
      for (let ch = 0; ch < data.numberOfChannels; ch++) {
        const plane = new Float32Array(frames);
        data.copyTo(plane, { planeIndex: ch, format: 'f32-planar' });
        buffer.copyToChannel(plane, ch);
        if (ch === 0) this.ring.append(plane);
      }
      const pts = Math.round((data.timestamp * rate) / 1e6);
      const frameSeconds = (this.format?.frame_samples || FRAME_SAMPLES) / rate;
      const delay = this.jitter.playoutDelay(frameSeconds);
      const when = this.clock.place(pts, frames, this.context.currentTime, delay);
      const source = this.context.createBufferSource();
      source.buffer = buffer;
      source.connect(this.analyser);
      source.start(when);
      this.stats.decoded += 1;
    } finally {
      data.close();
    }
  }

  /** Current playout delay in seconds (what the jitter buffer holds). */
  delay() {
    const rate = this.format?.sample_rate || SAMPLE_RATE;
    return this.jitter.playoutDelay((this.format?.frame_samples || FRAME_SAMPLES) / rate);
  }

  /** The loudest frequency the analyser hears now (Hz, interpolated between bins), or 0 in silence. */
  dominantFrequency() {
    const bins = new Float32Array(this.analyser.frequencyBinCount);
    this.analyser.getFloatFrequencyData(bins);
    let best = 1;
    for (let i = 2; i < bins.length - 1; i++) if (bins[i] > bins[best]) best = i;
    if (!Number.isFinite(bins[best]) || bins[best] < this.analyser.minDecibels) return 0;
    const [a, b, c] = [bins[best - 1], bins[best], bins[best + 1]];
    const shift = (a - c) / (2 * (a - 2 * b + c)) || 0;
    return ((best + shift) * this.context.sampleRate) / this.analyser.fftSize;
  }

  closeDecoder() {
    if (this.decoder && this.decoder.state !== 'closed') this.decoder.close();
    this.decoder = null;
  }

  /** Stop decoding and go quiet at once (what was scheduled is cut off). */
  stop() {
    this.closeDecoder();
    this.format = null;
    this.analyser.disconnect();
  }
}

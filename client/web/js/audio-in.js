// The browser's microphone as the session's microphone (audio-in): the track
// from getUserMedia is read frame by frame (MediaStreamTrackProcessor), encoded
// by WebCodecs AudioEncoder into Opus 20 ms frames, and each packet becomes a
// MIC_DATA after one MIC_FORMAT (Opus, 48 kHz, 20 ms, mono).
//
// Why no AudioContext here: the processor hands us the capture's own AudioData
// (with its capture timestamps), and the encoder takes AudioData as is, so PCM
// never crosses to the main thread's JavaScript. Opus packets do not depend on
// the capture rate (the session decodes them at 48 kHz), so MIC_FORMAT always
// says 48 kHz even when the device captures at 44.1 kHz.

import { FRAME_SAMPLES, MIC_BITRATE, MIC_CHANNELS, MicPacketizer, SAMPLE_RATE } from './audio.js';
import { AudioCodec } from './protocol.js';

// The Opus frame we produce, in microseconds (MIC_FORMAT's frame_samples at 48 kHz).
const FRAME_US = (FRAME_SAMPLES * 1e6) / SAMPLE_RATE;
// Frames waiting in the encoder beyond this are dropped (a stalled encoder must not grow a queue).
const MAX_ENCODE_QUEUE = 25;

/** The MIC_FORMAT fields every microphone stream starts with. */
export const MIC_FORMAT_FIELDS = Object.freeze({
  codec: AudioCodec.OPUS, channels: MIC_CHANNELS, frame_samples: FRAME_SAMPLES, sample_rate: SAMPLE_RATE,
});

/**
 * Captures and encodes while started. `sendPacket(fields)` gets MIC_DATA fields and
 * returns false when the packet was dropped (no channel, no credit).
 */
export class Microphone {
  constructor(sendPacket, {
    mediaDevices = globalThis.navigator?.mediaDevices,
    AudioEncoderImpl = globalThis.AudioEncoder,
    TrackProcessorImpl = globalThis.MediaStreamTrackProcessor,
  } = {}) {
    this.sendPacket = sendPacket;
    this.mediaDevices = mediaDevices;
    this.AudioEncoderImpl = AudioEncoderImpl;
    this.TrackProcessorImpl = TrackProcessorImpl;
    this.packetizer = new MicPacketizer(SAMPLE_RATE);
    this.stream = null;
    this.encoder = null;
    this.reader = null;
    this.stats = { frames: 0, packets: 0, sent: 0, dropped: 0, peak: 0 };
  }

  /** Whether this browser can do it at all (WebCodecs, track processor, getUserMedia in a secure context). */
  supported() {
    return Boolean(this.mediaDevices?.getUserMedia && this.AudioEncoderImpl && this.TrackProcessorImpl);
  }

  /** Ask for the microphone (the browser may prompt) and start encoding; throws with a user-facing message. */
  async start() {
    if (!this.supported()) throw new Error('this browser cannot send a microphone (needs WebCodecs and HTTPS)');
    let stream;
    try {
      stream = await this.mediaDevices.getUserMedia({
        audio: { channelCount: MIC_CHANNELS, sampleRate: SAMPLE_RATE, echoCancellation: true, noiseSuppression: true },
      });
    } catch (error) {
      const denied = error?.name === 'NotAllowedError';
      throw new Error(denied ? 'the browser was not allowed to use the microphone'
        : `no microphone: ${error?.message || error}`);
    }
    const track = stream.getAudioTracks()[0];
    if (!track) throw new Error('the browser gave no audio track');
    this.stream = stream;
    this.packetizer.reset();
    this.reader = new this.TrackProcessorImpl({ track }).readable.getReader();
    this.pump(this.reader);
  }

  /** A new MIC_FORMAT went out (channel (re)opened): the next packet is pts 0. */
  restartStream() {
    this.packetizer.reset();
  }

  async pump(reader) {
    for (;;) {
      let result;
      try {
        result = await reader.read();
      } catch {
        return; // the track ended or stop() cancelled the reader
      }
      if (result.done || reader !== this.reader) {
        result.value?.close();
        return;
      }
      this.frame(result.value);
    }
  }

  frame(data) {
    try {
      if (!this.encoder) this.encoder = this.makeEncoder(data.sampleRate, data.numberOfChannels);
      this.stats.frames += 1;
      this.stats.peak = Math.max(this.stats.peak * 0.95, peakOf(data));
      if (this.encoder.encodeQueueSize > MAX_ENCODE_QUEUE) this.stats.dropped += 1;
      else this.encoder.encode(data);
    } finally {
      data.close();
    }
  }

  makeEncoder(sampleRate, numberOfChannels) {
    const encoder = new this.AudioEncoderImpl({
      output: (chunk) => this.encoded(chunk),
      error: () => {
        if (this.encoder === encoder) this.encoder = null; // the next frame makes a fresh one
      },
    });
    encoder.configure({ codec: 'opus', sampleRate, numberOfChannels, bitrate: MIC_BITRATE,
      opus: { frameDuration: FRAME_US, application: 'voip' } });
    return encoder;
  }

  encoded(chunk) {
    const packet = new Uint8Array(chunk.byteLength);
    chunk.copyTo(packet);
    this.stats.packets += 1;
    if (!packet.length) return;
    if (this.sendPacket(this.packetizer.fields(chunk.timestamp, packet))) this.stats.sent += 1;
    else this.stats.dropped += 1;
  }

  /** Stop capturing: the tracks end (the browser's recording indicator goes off) and the encoder closes. */
  stop() {
    const reader = this.reader;
    this.reader = null;
    reader?.cancel().catch(() => {});
    for (const track of this.stream?.getTracks() || []) track.stop();
    this.stream = null;
    if (this.encoder && this.encoder.state !== 'closed') this.encoder.close();
    this.encoder = null;
  }
}

/** Largest absolute sample of the first channel of `data` (0..1), for the level shown next to the mic button. */
function peakOf(data) {
  const samples = new Float32Array(data.numberOfFrames);
  data.copyTo(samples, { planeIndex: 0, format: 'f32-planar' });
  let peak = 0;
  for (const v of samples) peak = Math.max(peak, Math.abs(v));
  return peak;
}

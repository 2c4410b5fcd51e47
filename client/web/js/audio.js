// The browser-independent half of web audio: where each decoded packet goes
// on the AudioContext's clock, how long to hold packets against network
// jitter, how microphone packets get their stream position, and a frequency
// probe for tests.
//
// Why a separate, DOM-free module: timing is where audio goes wrong (clicks,
// drift, creeping latency), and timing is pure arithmetic that node can test
// with made-up clocks. The parts that need WebCodecs and WebAudio
// (audio-out.js, audio-in.js) only feed these classes real times.
//
// Placement mirrors svclient (client/audio.py): packets are placed by pts, not
// by arrival, because the session does not send silence; arrival times only
// feed the RFC 3550 jitter estimate that sizes the playout delay.

// Channel ids the web client opens audio on (as svclient does: id = kind).
export const AUDIO_OUT_CHANNEL = 3;
export const AUDIO_IN_CHANNEL = 4;
// What the session sends and what MIC_FORMAT announces: Opus, 48 kHz, 20 ms frames.
export const SAMPLE_RATE = 48000;
export const FRAME_SAMPLES = 960;
export const MIC_CHANNELS = 1;
// Microphone bitrate: plenty for speech in mono (the session decodes any Opus bitrate).
export const MIC_BITRATE = 64000;
// Playout delay bounds (as svclient): never below one frame plus scheduling slack, never above what still feels live.
export const MIN_PLAYOUT_SECONDS = 0.03;
export const MAX_PLAYOUT_SECONDS = 0.3;
// Playout delay = JITTER_FACTOR x measured jitter + one frame; RFC 3550 smoothing gain.
export const JITTER_FACTOR = 4;
export const JITTER_GAIN = 1 / 16;
// A packet must start at least this far ahead of the context's clock (a few render quanta), or it is re-anchored.
export const MIN_LEAD_SECONDS = 0.005;
// Packets scheduled further ahead than the playout delay plus this are re-anchored (the clocks drifted apart).
export const MAX_EXTRA_LEAD_SECONDS = 0.1;

/** RFC 3550 interarrival jitter of packets stamped with pts at `rate` samples per second. */
export class JitterEstimator {
  constructor(rate = SAMPLE_RATE) {
    this.rate = rate;
    this.jitter = 0;
    this.last = null;
  }

  /** A packet with `pts` arrived at `now` (seconds, any monotonic clock). */
  arrived(now, pts) {
    if (this.last) {
      const change = (now - this.last.now) - (pts - this.last.pts) / this.rate;
      this.jitter += (Math.abs(change) - this.jitter) * JITTER_GAIN;
    }
    this.last = { now, pts };
  }

  /** Seconds to hold packets before playing them, from the jitter measured so far. */
  playoutDelay(frameSeconds) {
    const wanted = JITTER_FACTOR * this.jitter + frameSeconds;
    return Math.min(MAX_PLAYOUT_SECONDS, Math.max(MIN_PLAYOUT_SECONDS, wanted));
  }
}

/**
 * Maps stream positions (pts, in samples) to start times on the output clock.
 * The first packet, and any packet that would start too late or too far ahead,
 * re-anchors the mapping at now + delay; otherwise packets keep their exact
 * spacing, so gaps the sender left silent stay silent and nothing overlaps.
 */
export class PlayoutClock {
  constructor(rate = SAMPLE_RATE) {
    this.rate = rate;
    this.anchor = null; // {pts, time}
    this.scheduledUntil = 0;
    this.resyncs = 0;
  }

  /** Start time (seconds on the output clock) of `samples` samples at `pts`, given the clock `now` and `delay`. */
  place(pts, samples, now, delay) {
    let start = this.anchor ? this.anchor.time + (pts - this.anchor.pts) / this.rate : -Infinity;
    if (start < now + MIN_LEAD_SECONDS || start > now + delay + MAX_EXTRA_LEAD_SECONDS) {
      if (this.anchor) this.resyncs += 1;
      start = Math.max(now + delay, this.scheduledUntil);
      this.anchor = { pts, time: start };
    }
    this.scheduledUntil = Math.max(this.scheduledUntil, start + samples / this.rate);
    return start;
  }

  /** Forget the mapping (a new stream starts). */
  reset() {
    this.anchor = null;
    this.scheduledUntil = 0;
  }
}

/**
 * Turns encoder output (chunk timestamps in microseconds) into MIC_DATA fields:
 * pts counts samples at SAMPLE_RATE since the first packet after reset(), so a
 * frame the encoder skipped leaves a gap instead of shifting what follows.
 */
export class MicPacketizer {
  constructor(rate = SAMPLE_RATE) {
    this.rate = rate;
    this.firstUs = null;
    this.packets = 0;
  }

  /** A new MIC_FORMAT is about to go out: the next packet is pts 0. */
  reset() {
    this.firstUs = null;
  }

  /** MIC_DATA fields for a packet whose capture started at `timestampUs`. */
  fields(timestampUs, packet) {
    if (this.firstUs === null) this.firstUs = timestampUs;
    const pts = Math.max(0, Math.round(((timestampUs - this.firstUs) * this.rate) / 1e6));
    this.packets += 1;
    return { pts, capture_us: Math.max(0, Math.round(timestampUs)), packet };
  }
}

/** Copies the most recent `capacity` samples appended to it (a debugging and test window on decoded audio). */
export class SampleRing {
  constructor(capacity) {
    this.data = new Float32Array(capacity);
    this.written = 0;
  }

  append(samples) {
    const n = this.data.length;
    const tail = samples.length > n ? samples.subarray(samples.length - n) : samples;
    const at = (this.written + samples.length - tail.length) % n;
    const first = Math.min(tail.length, n - at);
    this.data.set(tail.subarray(0, first), at);
    this.data.set(tail.subarray(first), 0);
    this.written += samples.length;
  }

  /** The samples held, oldest first. */
  recent() {
    const n = this.data.length;
    if (this.written <= n) return this.data.slice(0, this.written);
    const at = this.written % n;
    const out = new Float32Array(n);
    out.set(this.data.subarray(at), 0);
    out.set(this.data.subarray(0, at), n - at);
    return out;
  }
}

/** Frequency of a clean tone from interpolated upward zero crossings; 0 if fewer than two. */
export function zeroCrossingFrequency(samples, rate) {
  let first = -1;
  let last = -1;
  let count = 0;
  for (let i = 1; i < samples.length; i++) {
    const a = samples[i - 1];
    const b = samples[i];
    if (a < 0 && b >= 0) {
      const at = i - 1 + -a / (b - a);
      if (first < 0) first = at;
      last = at;
      count += 1;
    }
  }
  return count < 2 ? 0 : ((count - 1) * rate) / (last - first);
}

/** The stretch of `samples` louder than `threshold`, trimmed by `trim` samples at both ends (onset, decay). */
export function loudPart(samples, threshold, trim) {
  let first = -1;
  let last = -1;
  for (let i = 0; i < samples.length; i++) {
    if (Math.abs(samples[i]) > threshold) {
      if (first < 0) first = i;
      last = i;
    }
  }
  if (first < 0 || last - first <= 2 * trim) return samples.subarray(0, 0);
  return samples.subarray(first + trim, last - trim);
}

// H264 video streams (docs/protocol.md §7a) decoded with WebCodecs.
//
// Why Annex B: the server sends each access unit with start codes and SPS/PPS
// in band on every KEY, so a VideoDecoder configured without a `description`
// (which WebCodecs then reads as Annex B) needs nothing but the KEY unit; avcC
// would need the parameter sets split out and a reconfigure per stream. The
// codec string (avc1.PPCCLL) is read from the KEY unit's SPS.
//
// Bounds (checked before a decoder exists): the REGION header's stream id <
// MAX_VIDEO_STREAMS, w and h <= MAX_VIDEO_SIDE, w*h <= MAX_VIDEO_PIXELS, the
// unit <= MAX_VIDEO_PAYLOAD; the SPS's own picture size (read here) must be
// the stream's coded size (w, h rounded up to even) before the unit reaches
// the decoder, so a hostile SPS cannot make the browser allocate a larger
// picture; and every decoded VideoFrame must have that coded size again.
//
// Decoder rules: KEY replaces the stream's decoder; a non-KEY unit continues
// a stream of the same w x h (else an error); END closes the decoder.
// Every unit yields exactly one frame (no B-frames), in order, so decode()
// returns a promise of that frame and the screen draws it in its turn.

export const MAX_VIDEO_STREAMS = 4;
export const MAX_VIDEO_SIDE = 2560;
export const MAX_VIDEO_PIXELS = 2560 * 1600;
export const MAX_VIDEO_PAYLOAD = 1024 * 1024;
export const FLAG_KEY = 0x01;
export const FLAG_END = 0x02;
// VIDEO_CAPS bit for H.264.
export const CODEC_H264 = 0x01;
// What isConfigSupported is asked: constrained baseline, level 4.0 (1080p30).
export const PROBE_CODEC = 'avc1.42c028';

export class VideoError extends Error {}

export function codedSize(w, h) {
  return [w + (w & 1), h + (h & 1)];
}

/** Check and split an H264 region payload for a w x h rectangle: {stream, key, end, data}. */
export function parseUnit(payload, w, h) {
  if (!(w >= 1 && h >= 1 && w <= MAX_VIDEO_SIDE && h <= MAX_VIDEO_SIDE)) {
    throw new VideoError(`video stream ${w}x${h} exceeds MAX_VIDEO_SIDE`);
  }
  if (w * h > MAX_VIDEO_PIXELS) throw new VideoError(`video stream ${w}x${h} exceeds MAX_VIDEO_PIXELS`);
  if (payload.length < 2) throw new VideoError('H264 data lacks its stream header');
  const stream = payload[0];
  const flags = payload[1];
  if (stream >= MAX_VIDEO_STREAMS) throw new VideoError(`H264 stream id ${stream} is not below MAX_VIDEO_STREAMS`);
  if (flags & ~(FLAG_KEY | FLAG_END)) throw new VideoError('H264 flags has unknown bits');
  const data = payload.subarray(2);
  const key = (flags & FLAG_KEY) !== 0;
  const end = (flags & FLAG_END) !== 0;
  if (end && (key || data.length)) throw new VideoError('an H264 END carries no access unit and no KEY flag');
  if (!end && !data.length) throw new VideoError('H264 region without an access unit');
  if (data.length > MAX_VIDEO_PAYLOAD) throw new VideoError('H264 access unit exceeds MAX_VIDEO_PAYLOAD');
  return { stream, key, end, data };
}

/** The NAL units of an Annex B access unit, start codes removed. */
export function nalUnits(data) {
  const units = [];
  let start = -1;
  for (let i = 0; i + 2 < data.length; i += 1) {
    if (data[i] === 0 && data[i + 1] === 0 && data[i + 2] === 1) {
      if (start >= 0) units.push(trimZeros(data.subarray(start, i)));
      start = i + 3;
      i += 2;
    }
  }
  if (start >= 0 && start <= data.length) units.push(data.subarray(start));
  return units.filter((u) => u.length);
}

function trimZeros(unit) {
  let end = unit.length;
  while (end > 0 && unit[end - 1] === 0) end -= 1; // the zero of a 4-byte start code
  return unit.subarray(0, end);
}

/** Exp-Golomb reader over an RBSP (emulation prevention bytes removed). */
class Bits {
  constructor(nal) {
    const rbsp = [];
    let zeros = 0;
    for (let i = 1; i < nal.length; i += 1) { // after the NAL header byte
      if (zeros >= 2 && nal[i] === 3) { // emulation prevention byte
        zeros = 0;
        continue;
      }
      rbsp.push(nal[i]);
      zeros = nal[i] === 0 ? zeros + 1 : 0;
    }
    this.bytes = rbsp;
    this.pos = 0;
  }

  bit() {
    if (this.pos >= this.bytes.length * 8) throw new VideoError('SPS is truncated');
    const b = (this.bytes[this.pos >> 3] >> (7 - (this.pos & 7))) & 1;
    this.pos += 1;
    return b;
  }

  bits(n) {
    let v = 0;
    for (let i = 0; i < n; i += 1) v = v * 2 + this.bit();
    return v;
  }

  ue() {
    let zeros = 0;
    while (this.bit() === 0) {
      zeros += 1;
      if (zeros > 31) throw new VideoError('SPS has an oversized exp-Golomb code');
    }
    return 2 ** zeros - 1 + this.bits(zeros);
  }

  se() {
    const k = this.ue();
    return k % 2 ? (k + 1) / 2 : -k / 2;
  }
}

const HIGH_PROFILES = new Set([100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135]);

/** The SPS of an access unit: {codec, width, height} (cropped picture size), or null if it has none. */
export function readSps(data) {
  const sps = nalUnits(data).find((u) => (u[0] & 0x1f) === 7);
  if (!sps) return null;
  if (sps.length < 4) throw new VideoError('SPS is truncated');
  const hex = (b) => b.toString(16).padStart(2, '0');
  const codec = `avc1.${hex(sps[1])}${hex(sps[2])}${hex(sps[3])}`;
  const r = new Bits(sps);
  const profile = r.bits(8);
  r.bits(16); // constraint flags, level
  r.ue(); // seq_parameter_set_id
  let chroma = 1;
  if (HIGH_PROFILES.has(profile)) {
    chroma = r.ue();
    if (chroma === 3) r.bit();
    r.ue(); r.ue(); r.bit(); // bit depths, qpprime bypass
    if (r.bit()) throw new VideoError('SPS scaling matrices are not supported');
  }
  r.ue(); // log2_max_frame_num - 4
  const pocType = r.ue();
  if (pocType === 0) r.ue();
  else if (pocType === 1) {
    r.bit(); r.se(); r.se();
    const n = r.ue();
    if (n > 255) throw new VideoError('SPS has too many reference frames in its POC cycle');
    for (let i = 0; i < n; i += 1) r.se();
  }
  r.ue(); r.bit(); // max refs, gaps allowed
  const mbW = r.ue() + 1;
  const mbH = r.ue() + 1;
  const frameMbsOnly = r.bit();
  if (!frameMbsOnly) r.bit();
  r.bit(); // direct_8x8_inference
  let width = mbW * 16;
  let height = mbH * 16 * (2 - frameMbsOnly);
  if (r.bit()) { // frame cropping, in chroma units for 4:2:0
    const cx = chroma === 0 ? 1 : 2;
    const cy = (chroma === 1 ? 2 : 1) * (2 - frameMbsOnly);
    const [left, right, top, bottom] = [r.ue(), r.ue(), r.ue(), r.ue()];
    width -= (left + right) * cx;
    height -= (top + bottom) * cy;
  }
  return { codec, width, height };
}

/** True if this browser's WebCodecs decodes H.264 (the client then sends VIDEO_CAPS with CODEC_H264). */
export async function h264Supported(VideoDecoderImpl = globalThis.VideoDecoder) {
  if (!VideoDecoderImpl || typeof VideoDecoderImpl.isConfigSupported !== 'function') return false;
  try {
    const answer = await VideoDecoderImpl.isConfigSupported({ codec: PROBE_CODEC, optimizeForLatency: true });
    return Boolean(answer && answer.supported);
  } catch {
    return false;
  }
}

/** One display channel's streams: decode(payload, w, h) -> Promise<VideoFrame|null>. */
export class VideoStreams {
  constructor(VideoDecoderImpl = globalThis.VideoDecoder, ChunkImpl = globalThis.EncodedVideoChunk) {
    this.Decoder = VideoDecoderImpl;
    this.Chunk = ChunkImpl;
    this.streams = new Map(); // id -> {decoder, w, h, waiting: [{resolve, reject}], t}
    this.frames = 0;
  }

  get open() {
    return this.streams.size;
  }

  close() {
    for (const id of [...this.streams.keys()]) this.drop(id, new VideoError('video streams closed'));
  }

  drop(id, error) {
    const s = this.streams.get(id);
    if (!s) return;
    this.streams.delete(id);
    for (const w of s.waiting) w.reject(error);
    if (s.decoder.state !== 'closed') s.decoder.close();
  }

  /** Start decoding an H264 region; resolves to its VideoFrame (caller closes it) or null (END). */
  decode(payload, w, h) {
    const unit = parseUnit(payload, w, h); // throws before anything is allocated
    if (unit.end) {
      this.drop(unit.stream, new VideoError('stream ended'));
      return Promise.resolve(null);
    }
    const [cw, ch] = codedSize(w, h);
    let s = this.streams.get(unit.stream);
    if (unit.key) {
      const sps = readSps(unit.data);
      if (!sps) throw new VideoError('an H264 KEY unit without an SPS');
      if (sps.width !== cw || sps.height !== ch) {
        throw new VideoError(`H264 SPS announces ${sps.width}x${sps.height}, the stream is ${cw}x${ch}`);
      }
      this.drop(unit.stream, new VideoError('stream restarted'));
      s = this.open_(unit.stream, w, h, sps.codec);
    } else if (!s) {
      throw new VideoError(`H264 unit continues stream ${unit.stream}, which has no KEY`);
    } else if (s.w !== w || s.h !== h) {
      throw new VideoError(`H264 unit of ${w}x${h} continues a stream of ${s.w}x${s.h}`);
    } else {
      const sps = readSps(unit.data);
      if (sps && (sps.width !== cw || sps.height !== ch)) throw new VideoError('H264 SPS changes the stream size');
    }
    const frame = new Promise((resolve, reject) => s.waiting.push({ resolve, reject }));
    s.decoder.decode(new this.Chunk({ type: unit.key ? 'key' : 'delta', timestamp: s.t, data: unit.data }));
    s.t += 1;
    return frame;
  }

  open_(id, w, h, codec) {
    const [cw, ch] = codedSize(w, h);
    const s = { w, h, waiting: [], t: 0, decoder: null };
    s.decoder = new this.Decoder({
      output: (frame) => {
        const waiter = s.waiting.shift();
        if (frame.codedWidth < cw || frame.codedHeight < ch || frame.displayWidth !== cw || frame.displayHeight !== ch) {
          frame.close();
          const error = new VideoError(`H264 picture is ${frame.displayWidth}x${frame.displayHeight}, the stream is ${cw}x${ch}`);
          if (waiter) waiter.reject(error);
          this.drop(id, error);
          return;
        }
        this.frames += 1;
        if (waiter) waiter.resolve(frame);
        else frame.close();
      },
      error: (e) => this.drop(id, new VideoError(`H264 decoder failed: ${e.message || e}`)),
    });
    s.decoder.configure({ codec, codedWidth: cw, codedHeight: ch, optimizeForLatency: true });
    this.streams.set(id, s);
    return s;
  }
}

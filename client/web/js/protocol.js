// The sessiond wire protocol (docs/protocol.md) in the browser: the 8-byte
// frame header, an incremental bounded frame decoder, and the messages of the
// control, display, input and audio channels.
//
// Why a second implementation: the browser cannot run the Python package, so
// this module speaks the same bytes and is checked against the same test
// vectors (tests/vectors/frames.json) by client/web/test/protocol.test.js.
// The messages themselves are not written here: message-table.js, generated
// from the Python declarations, lists every type with its fields and bounds,
// and this module's codec reads it (only REGION's, TILE's and the audio formats'
// cross-field rules are spelled out below). Like the Python decoder, it
// checks every length from the header before buffering a payload, and
// decodes control JSON strictly (listed fields with their JSON types and
// bounds, unknown fields ignored). Messages are plain objects {name, fields};
// nothing here touches the DOM or the network.

import { parseUnit } from './video.js';
import { KIND_MAX_PAYLOAD, MESSAGE_TABLE } from './message-table.js';
import { MAX_WINDOWS, decodeWindowIds, encodeWindowIds } from './window-ids.js';
import { decodeKeyTapAck, encodeKeyTapAck } from './tile.js';

export { KIND_MAX_PAYLOAD, MAX_WINDOWS, MESSAGE_TABLE };
const restackError = (what) => new ProtocolError(Reason.MALFORMED_MESSAGE, `WINDOW_RESTACK ${what}`);
export const PROTOCOL_VERSION = 1;
export const HEADER_SIZE = 8;
// Bounds what we buffer for one frame (same limits as protocol/limits.py).
export const MAX_FRAME_PAYLOAD = 2 * 1024 * 1024;
export const MAX_CONTROL_PAYLOAD = 64 * 1024;
export const MAX_CHANNEL_ID = 255;
// Initial credit windows we grant (DEFAULT_WINDOW, DISPLAY_WINDOW).
export const DEFAULT_WINDOW = 256 * 1024;
export const DISPLAY_WINDOW = 8 * 1024 * 1024;
export const MAX_WINDOW = 2 ** 31 - 1;
// Largest w*h*3 of one REGION (except FILL and COPY).
export const MAX_REGION_RAW_BYTES = 1024 * 1024;

export const Kind = Object.freeze({
  CONTROL: 0, DISPLAY: 1, INPUT: 2, AUDIO_OUT: 3, AUDIO_IN: 4, USB: 5, CLIPBOARD: 6, WINDOWS: 7, FILES: 8,
});
// X keysyms have the top three bits clear; 0 is NoSymbol.
export const MAX_KEYSYM = 0x1fffffff;
export const Encoding = Object.freeze({ RAW_LZ4: 1, PNG: 2, JPEG: 3, FILL: 4, COPY: 5, PALETTE: 6, H264: 7, GLYPHS: 8 });
export const WINDOW_UPDATE = 0xff;

export const Reason = Object.freeze({
  NORMAL: 0, PROTOCOL_ERROR: 1, FRAME_TOO_LARGE: 5, UNKNOWN_CHANNEL: 6, MALFORMED_MESSAGE: 10,
  UNKNOWN_MESSAGE_TYPE: 9, FLOW_CONTROL_ERROR: 11, AUTH_FAILED: 13, RATE_LIMITED: 14, UNKNOWN_APP: 15,
  NOT_ENTITLED: 16, SESSION_UNAVAILABLE: 17, INTERNAL_ERROR: 18, SHUTTING_DOWN: 21, TIMEOUT: 24,
});

/** A violation by the peer: `code` is the reason code to close with. */
export class ProtocolError extends Error {
  constructor(code, message) {
    super(message);
    this.code = code;
  }
}

// Messages come from the generated table (message-table.js, written by
// `python -m protocol.export --js` from the Python declarations): each row has
// the type code, wire name, codec and fields {name, wire, low, high, min_len,
// max_len, choices, optional, item}. Control messages are JSON objects whose
// optional fields are omitted when empty (AUTH, whose vectors list all three,
// gets "" for each); binary ones are one big-endian struct plus an optional
// bytes tail.
const byName = (fields) => Object.fromEntries(fields.map((f) => [f.name, f]));
const CONTROL = MESSAGE_TABLE.filter((m) => m.kind === Kind.CONTROL).map((m) => ({
  type: m.type,
  name: m.name,
  req: byName(m.fields.filter((f) => !f.optional)),
  opt: byName(m.fields.filter((f) => f.optional)),
}));
// AUTH sends exactly these fields per method (empty strings included); other methods send the non-empty ones.
const AUTH_METHOD_FIELDS = { password: ['user', 'password'], link: ['token'], resume: ['user', 'token'] };

const CONTROL_BY_TYPE = new Map(CONTROL.map((spec) => [spec.type, spec]));
const CONTROL_BY_NAME = new Map(CONTROL.map((spec) => [spec.name, spec]));

// Audio (protocol/audio.py): FORMAT is codec B, channels B, frame_samples H, sample_rate I;
// DATA is pts Q, capture_us Q, then the codec packet (1..MAX_AUDIO_PACKET bytes).
export const AudioCodec = Object.freeze({ OPUS: 1 });
// libopus's recommended packet buffer; the most channels and samples per frame (120 ms at 48 kHz).
export const MAX_AUDIO_PACKET = 4000;
export const MAX_AUDIO_CHANNELS = 2;
export const MAX_FRAME_SAMPLES = 5760;
// Opus decodes at these rates only (RFC 6716 section 2).
export const OPUS_RATES = Object.freeze([8000, 12000, 16000, 24000, 48000]);

// Binary messages of the kinds the web client speaks (USB is not in the browser);
// WINDOW_UPDATE (kind null) is valid on every kind but control.
const WEB_BINARY_KINDS = [
  Kind.DISPLAY, Kind.INPUT, Kind.AUDIO_OUT, Kind.AUDIO_IN, Kind.CLIPBOARD, Kind.WINDOWS, Kind.FILES, null,
];
const STRUCT_CODES = { u8: 'B', flag: '?', u16: 'H', i16: 'h', u32: 'I', u64: 'Q' };
const SIZES = { B: 1, '?': 1, H: 2, h: 2, I: 4, Q: 8 };
const BINARY = MESSAGE_TABLE.filter((m) => m.codec === 'struct' && WEB_BINARY_KINDS.includes(m.kind)).map((m) => {
  const fixed = m.fields.filter((f) => STRUCT_CODES[f.wire]);
  const size = fixed.reduce((n, f) => n + SIZES[STRUCT_CODES[f.wire]], 0);
  const tail = m.fields.find((f) => f.wire === 'bytes' || f.wire === 'text') || null;
  return { kind: m.kind, type: m.type, name: m.name, fixed, size, tail };
});
const BINARY_BY_TYPE = new Map(BINARY.map((spec) => [`${spec.kind}:${spec.type}`, spec]));
const BINARY_BY_NAME = new Map(BINARY.map((spec) => [spec.name, spec]));
// JSON messages outside the control channel (the windows channel's WINDOW_NEW / WINDOW_METADATA).
const CHANNEL_JSON = MESSAGE_TABLE.filter((m) => m.codec === 'json' && m.kind !== Kind.CONTROL && m.kind !== null)
  .map((m) => ({ kind: m.kind, type: m.type, name: m.name, req: byName(m.fields.filter((f) => !f.optional)),
    opt: byName(m.fields.filter((f) => f.optional)), max: m.max_payload }));
const CHANNEL_JSON_BY_TYPE = new Map(CHANNEL_JSON.map((spec) => [`${spec.kind}:${spec.type}`, spec]));
const CHANNEL_JSON_BY_NAME = new Map(CHANNEL_JSON.map((spec) => [spec.name, spec]));
// WINDOW_RESTACK: a list of u32 window ids (window-ids.js).
const RESTACK = MESSAGE_TABLE.find((m) => m.name === 'WINDOW_RESTACK') || null;
// KEY_TAP_ACK: u8 ack, a keysym of 1 or 2 bytes (tile.js).
const TAP_ACK = MESSAGE_TABLE.find((m) => m.name === 'KEY_TAP_ACK') || null;
const tapAckError = (what) => new ProtocolError(Reason.MALFORMED_MESSAGE, `KEY_TAP_ACK ${what}`);

const utf8 = new TextEncoder();
const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

/** Python's json.dumps(obj, separators=(",", ":"), sort_keys=True, ensure_ascii=False). */
export function canonicalJson(value) {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const keys = Object.keys(value).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(value[k])}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

function checkField(name, field, value) {
  const bad = () => new ProtocolError(Reason.MALFORMED_MESSAGE, `field ${name} must be ${field.wire}`);
  switch (field.wire) {
    case 'int':
    case 'sint':
      if (!Number.isInteger(value) || value < field.low || value > field.high) throw bad();
      return value;
    case 'bool':
      if (typeof value !== 'boolean') throw bad();
      return value;
    case 'str':
      if (typeof value !== 'string') throw bad();
      return value;
    case 'strs':
      if (!Array.isArray(value) || value.some((v) => typeof v !== 'string')) throw bad();
      return value.slice();
    case 'list':
      if (!Array.isArray(value)) throw bad();
      return value.map((item) => {
        if (item === null || typeof item !== 'object' || Array.isArray(item)) throw bad();
        return pick(item, byName(field.item), {});
      });
    default:
      throw new Error(`unknown field type ${field.wire}`);
  }
}

function pick(obj, req, opt, fill = false) {
  const out = {};
  for (const [name, field] of Object.entries(req)) {
    if (!Object.hasOwn(obj, name)) throw new ProtocolError(Reason.MALFORMED_MESSAGE, `missing field ${name}`);
    out[name] = checkField(name, field, obj[name]);
  }
  for (const [name, field] of Object.entries(opt)) {
    if (Object.hasOwn(obj, name)) out[name] = checkField(name, field, obj[name]);
    else if (fill && field.wire === 'str') out[name] = ''; // (AUTH's launch, an object, stays absent)
  }
  return out;
}

/** The JSON object a control message puts on the wire (optional fields omitted when empty). */
function controlWireObject(spec, fields) {
  const obj = pick(fields, spec.req, {});
  if (spec.name === 'AUTH') {
    const names = AUTH_METHOD_FIELDS[fields.method];
    for (const name of names || Object.keys(spec.opt)) {
      const value = fields[name] ?? '';
      if (names || value) obj[name] = checkField(name, spec.opt[name], value);
    }
    return obj;
  }
  for (const name of Object.keys(spec.opt)) {
    if (fields[name]) obj[name] = checkField(name, spec.opt[name], fields[name]);
  }
  return obj;
}

function parseJsonObject(payload) {
  let text;
  try {
    text = strictUtf8.decode(payload);
  } catch {
    throw new ProtocolError(Reason.MALFORMED_MESSAGE, 'control payload is not UTF-8');
  }
  let obj;
  try {
    obj = JSON.parse(text);
  } catch {
    throw new ProtocolError(Reason.MALFORMED_MESSAGE, 'control payload is not JSON');
  }
  if (obj === null || typeof obj !== 'object' || Array.isArray(obj)) {
    throw new ProtocolError(Reason.MALFORMED_MESSAGE, 'control payload must be a JSON object');
  }
  return obj;
}

/** Encode a message {name, fields} to [type, payload bytes]; throws ProtocolError if a field is invalid. */
export function encodeMessage(message) {
  const { name, fields = {} } = message;
  const control = CONTROL_BY_NAME.get(name);
  if (control) return [control.type, utf8.encode(canonicalJson(controlWireObject(control, fields)))];
  const json = CHANNEL_JSON_BY_NAME.get(name);
  if (json) return [json.type, utf8.encode(canonicalJson(controlWireObject(json, fields)))];
  if (RESTACK && name === RESTACK.name) return [RESTACK.type, encodeWindowIds(fields.order, restackError)];
  if (TAP_ACK && name === TAP_ACK.name) return [TAP_ACK.type, encodeKeyTapAck(fields, tapAckError)];
  const spec = BINARY_BY_NAME.get(name);
  if (!spec) throw new Error(`unknown message ${name}`);
  checkStruct(spec, fields);
  const tailValue = spec.tail ? fields[spec.tail.name] : new Uint8Array(0);
  const tail = typeof tailValue === 'string' ? utf8.encode(tailValue) : tailValue;
  const out = new Uint8Array(spec.size + tail.length);
  const view = new DataView(out.buffer);
  let at = 0;
  for (const field of spec.fixed) {
    const code = STRUCT_CODES[field.wire];
    const value = fields[field.name];
    if (code === 'B' || code === '?') view.setUint8(at, Number(value));
    else if (code === 'H') view.setUint16(at, value);
    else if (code === 'h') view.setInt16(at, value);
    else if (code === 'I') view.setUint32(at, value);
    else {
      view.setUint32(at, Math.floor(value / U32));
      view.setUint32(at + 4, value % U32);
    }
    at += SIZES[code];
  }
  out.set(tail, spec.size);
  return [spec.type, out];
}

// u64 fields (pts, capture_us) as Numbers: exact up to 2^53, which no sample counter or
// microsecond clock reaches; larger values are refused rather than silently rounded.
const U32 = 2 ** 32;

/** The declared bounds of a binary message's fields, then its own rules (REGION, audio formats). */
function checkStruct(spec, fields) {
  const bad = (what) => new ProtocolError(Reason.MALFORMED_MESSAGE, `${spec.name} ${what}`);
  for (const field of spec.fixed) {
    const value = fields[field.name];
    if (field.wire === 'flag') {
      if (typeof value !== 'boolean') throw bad(`${field.name} must be a boolean`);
    } else if (!Number.isSafeInteger(value) || value < field.low || value > field.high) {
      throw bad(`${field.name}=${value} outside [${field.low}, ${field.high}]`);
    } else if (field.choices && !field.choices.includes(value)) {
      throw bad(`${field.name}=${value} is not one of ${field.choices}`);
    }
  }
  if (spec.tail && spec.tail.wire === 'text') {
    const text = fields[spec.tail.name];
    if (typeof text !== 'string') throw bad(`${spec.tail.name} must be a string`);
    if (utf8.encode(text).length > spec.tail.max_len) throw bad(`${spec.tail.name} too long`);
  } else if (spec.tail) {
    const data = fields[spec.tail.name];
    if (!(data instanceof Uint8Array)) throw bad(`${spec.tail.name} must be bytes`);
    if (data.length < spec.tail.min_len || data.length > spec.tail.max_len) {
      throw bad(`${spec.tail.name} length out of range`);
    }
  }
  const rule = RULES[spec.name];
  if (rule) rule(fields, bad);
}

function checkRegion({ w, h, encoding, data }, bad) {
  if (encoding === Encoding.FILL) {
    if (data.length !== 3) throw bad('FILL data must be 3 bytes');
  } else if (encoding === Encoding.COPY) {
    if (data.length !== 4) throw bad('COPY data must be 4 bytes');
  } else if (encoding === Encoding.H264) {
    try {
      parseUnit(data, w, h);
    } catch (error) {
      throw bad(error.message);
    }
  } else if (w * h * 3 > MAX_REGION_RAW_BYTES) {
    throw bad('exceeds MAX_REGION_RAW_BYTES');
  } else if (encoding === Encoding.RAW_LZ4) {
    if (data.length < 4) throw bad('RAW_LZ4 lacks its size prefix');
    const size = new DataView(data.buffer, data.byteOffset, 4).getUint32(0, true);
    if (size !== w * h * 3) throw bad('RAW_LZ4 size prefix is not w*h*3');
  }
}

// TILE (protocol/media.py Tile.check): area, exact data length, pad bits 0.
export const TILE_MAX_PIXELS = 1024;
function checkTile({ w, h, form, data }, bad) {
  if (w * h > TILE_MAX_PIXELS) throw bad('exceeds TILE_MAX_PIXELS');
  const need = Math.ceil((w * h) / 8) + (form & 0x02 ? 6 : 0);
  if (data.length !== need) throw bad(`needs ${need} bytes of data, got ${data.length}`);
  const pad = (8 - ((w * h) % 8)) % 8;
  if (pad && data[data.length - 1] & ((1 << pad) - 1)) throw bad('pad bits must be 0');
}

function checkAudioFormat(fields, bad) {
  if (!OPUS_RATES.includes(fields.sample_rate)) throw bad(`sample_rate ${fields.sample_rate} is not an Opus rate`);
}

// Rules across fields that the table cannot say (protocol/media.py Region.check, audio.py _Format.check).
const RULES = { REGION: checkRegion, TILE: checkTile, AUDIO_FORMAT: checkAudioFormat, MIC_FORMAT: checkAudioFormat };

function decodeStruct(spec, payload) {
  const bad = (what) => new ProtocolError(Reason.MALFORMED_MESSAGE, `${spec.name} ${what}`);
  if (!spec.tail && payload.length !== spec.size) throw bad(`payload must be ${spec.size} bytes`);
  if (payload.length < spec.size) throw bad(`payload shorter than its ${spec.size}-byte header`);
  if (spec.tail && payload.length - spec.size > spec.tail.max_len) throw bad(`${spec.tail.name} too long`);
  const view = new DataView(payload.buffer, payload.byteOffset, payload.length);
  const fields = {};
  let at = 0;
  for (const field of spec.fixed) {
    const code = STRUCT_CODES[field.wire];
    let value;
    if (code === 'B' || code === '?') value = view.getUint8(at);
    else if (code === 'H') value = view.getUint16(at);
    else if (code === 'h') value = view.getInt16(at);
    else if (code === 'I') value = view.getUint32(at);
    else {
      const high = view.getUint32(at);
      if (high >= 2 ** 21) throw bad(`${field.name} beyond 2^53`);
      value = high * U32 + view.getUint32(at + 4);
    }
    if (code === '?') {
      if (value > 1) throw bad(`${field.name} must be 0 or 1`);
      value = value === 1;
    }
    fields[field.name] = value;
    at += SIZES[code];
  }
  if (spec.tail && spec.tail.wire === 'text') {
    try {
      fields[spec.tail.name] = strictUtf8.decode(payload.subarray(spec.size));
    } catch {
      throw bad(`${spec.tail.name} is not UTF-8`);
    }
  } else if (spec.tail) fields[spec.tail.name] = payload.subarray(spec.size);
  checkStruct(spec, fields);
  return fields;
}

/** Decode a payload of `type` received on a channel of `kind` into {name, fields}. */
export function decodeMessage(kind, type, payload) {
  if (kind === Kind.CONTROL) {
    const spec = CONTROL_BY_TYPE.get(type);
    if (!spec) throw new ProtocolError(Reason.UNKNOWN_MESSAGE_TYPE, `control type 0x${type.toString(16)}`);
    const fields = pick(parseJsonObject(payload), spec.req, spec.opt, spec.name === 'AUTH');
    return { name: spec.name, fields };
  }
  const json = CHANNEL_JSON_BY_TYPE.get(`${kind}:${type}`);
  if (json) return { name: json.name, fields: pick(parseJsonObject(payload), json.req, json.opt) };
  if (RESTACK && kind === RESTACK.kind && type === RESTACK.type) {
    return { name: RESTACK.name, fields: { order: decodeWindowIds(payload, restackError) } };
  }
  if (TAP_ACK && kind === TAP_ACK.kind && type === TAP_ACK.type) {
    return { name: TAP_ACK.name, fields: decodeKeyTapAck(payload, tapAckError) };
  }
  const spec = BINARY_BY_TYPE.get(`${kind}:${type}`) || BINARY_BY_TYPE.get(`null:${type}`);
  if (!spec) throw new ProtocolError(Reason.UNKNOWN_MESSAGE_TYPE, `type 0x${type.toString(16)} on kind ${kind}`);
  return { name: spec.name, fields: decodeStruct(spec, payload) };
}

/** Header + payload of one frame. */
export function encodeFrame(channel, type, payload, flags = 0) {
  if (payload.length > MAX_FRAME_PAYLOAD || (channel === 0 && payload.length > MAX_CONTROL_PAYLOAD)) {
    throw new Error(`payload of ${payload.length} bytes is too large for channel ${channel}`);
  }
  const out = new Uint8Array(HEADER_SIZE + payload.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, payload.length);
  view.setUint16(4, channel);
  view.setUint8(6, type);
  view.setUint8(7, flags);
  out.set(payload, HEADER_SIZE);
  return out;
}

/** Incremental frame decoder: push() bytes, get whole frames {channel, type, flags, payload}. */
export class FrameDecoder {
  constructor() {
    this.chunks = [];
    this.buffered = 0;
  }

  /** Append bytes; return every complete frame; throws ProtocolError on an oversize header. */
  push(bytes) {
    if (bytes.length) {
      this.chunks.push(bytes);
      this.buffered += bytes.length;
    }
    const frames = [];
    for (;;) {
      if (this.buffered < HEADER_SIZE) return frames;
      const header = this.peek(HEADER_SIZE);
      const view = new DataView(header.buffer, header.byteOffset, HEADER_SIZE);
      const length = view.getUint32(0);
      const channel = view.getUint16(4);
      const limit = channel === 0 ? MAX_CONTROL_PAYLOAD : MAX_FRAME_PAYLOAD;
      if (length > limit) throw new ProtocolError(Reason.FRAME_TOO_LARGE, `frame announces ${length} bytes`);
      if (channel > MAX_CHANNEL_ID) throw new ProtocolError(Reason.UNKNOWN_CHANNEL, `channel id ${channel}`);
      if (this.buffered < HEADER_SIZE + length) return frames;
      const whole = this.take(HEADER_SIZE + length);
      frames.push({ channel, type: whole[6], flags: whole[7], payload: whole.subarray(HEADER_SIZE) });
    }
  }

  peek(n) {
    if (this.chunks[0].length >= n) return this.chunks[0].subarray(0, n);
    this.chunks = [concat(this.chunks, this.buffered)];
    return this.chunks[0].subarray(0, n);
  }

  take(n) {
    const first = this.chunks[0];
    if (first.length < n) this.chunks = [concat(this.chunks, this.buffered)];
    const head = this.chunks[0];
    const out = head.subarray(0, n);
    if (head.length === n) this.chunks.shift();
    else this.chunks[0] = head.subarray(n);
    this.buffered -= n;
    return out;
  }
}

function concat(chunks, total) {
  const out = new Uint8Array(total);
  let at = 0;
  for (const chunk of chunks) {
    out.set(chunk, at);
    at += chunk.length;
  }
  return out;
}

// The sessiond wire protocol (docs/protocol.md) in the browser: the 8-byte
// frame header, an incremental bounded frame decoder, and the messages of the
// control, display, input and audio channels.
//
// Why a second implementation: the browser cannot run the Python package, so
// this module speaks the same bytes and is checked against the same test
// vectors (tests/vectors/frames.json) by client/web/test/protocol.test.js.
// Like the Python decoder, it checks every length from the header before
// buffering a payload, and decodes control JSON strictly (listed fields with
// their JSON types, unknown fields ignored). Messages are plain objects
// {name, fields}; nothing here touches the DOM or the network.

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
// Largest w*h*3 of one REGION (except FILL).
export const MAX_REGION_RAW_BYTES = 1024 * 1024;

export const Kind = Object.freeze({ CONTROL: 0, DISPLAY: 1, INPUT: 2, AUDIO_OUT: 3, AUDIO_IN: 4, USB: 5, CLIPBOARD: 6 });
// Largest payload of any message of each kind (protocol.messages.max_payload): a
// reader that knows a channel's kind refuses a longer frame from its header
// with FRAME_TOO_LARGE.
export const KIND_MAX_PAYLOAD = Object.freeze({ 0: 65536, 1: 2097152, 2: 8, 3: 4016, 4: 4016, 5: 123956, 6: 4 });
// X keysyms have the top three bits clear; 0 is NoSymbol.
export const MAX_KEYSYM = 0x1fffffff;
export const Encoding = Object.freeze({ RAW_LZ4: 1, PNG: 2, JPEG: 3, FILL: 4 });
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

// Field types of control messages: "int", "sint" (signed), "bool", "str", "strs" ([str]), "apps".
// Optional fields are omitted from the wire when empty; decoded, they are left out when absent
// (AUTH, whose vectors list all three, gets "" for each).
const CONTROL = [
  [0x01, 'HELLO', { version: 'int', capabilities: 'strs', software: 'str' }],
  [0x02, 'AUTH', { method: 'str' }, { user: 'str', password: 'str', token: 'str' }],
  [0x03, 'AUTH_RESULT', { ok: 'bool', user: 'str', session: 'str', code: 'int', message: 'str' }, { resume_token: 'str' }],
  [0x04, 'APP_LIST_REQUEST', {}, { locale: 'str' }],
  [0x05, 'APP_LIST', { apps: 'apps' }],
  [0x06, 'LAUNCH', { request: 'int', app: 'str', args: 'strs' }],
  [0x07, 'LAUNCH_RESULT', { request: 'int', ok: 'bool', code: 'int', message: 'str', pid: 'int' }],
  [0x08, 'CHANNEL_OPEN', { channel: 'int', kind: 'int', window: 'int' }],
  [0x09, 'CHANNEL_OPEN_OK', { channel: 'int', window: 'int' }],
  [0x0a, 'CHANNEL_CLOSE', { channel: 'int', code: 'int', message: 'str' }],
  [0x0b, 'ERROR', { code: 'int', message: 'str', request: 'int' }],
  [0x0c, 'CLOSE', { code: 'int', message: 'str' }],
  [0x0d, 'PING', { token: 'int' }],
  [0x0e, 'PONG', { token: 'int' }],
  [0x0f, 'SESSION_INFO', { session: 'str', user: 'str', width: 'int', height: 'int' }],
  [0x10, 'SPAWN_APP', { request: 'int', app: 'str', argv: 'strs', cwd: 'str' }],
  [0x11, 'APP_EXITED', { app: 'str', pid: 'int', status: 'sint' }],
  [0x12, 'LOGOFF', {}],
  [0x13, 'CLOCK_REPORT', { agent_us: 'int', audio_pts: 'int', audio_rate: 'int', frame_seq: 'int', frame_us: 'int' }],
  [0x20, 'ICON_REQUEST', { request: 'int', app: 'str', size: 'int' }],
  [0x21, 'ICON', { request: 'int', app: 'str', size: 'int', ok: 'bool', data: 'str', code: 'int', message: 'str' }],
];
// AUTH sends exactly these fields per method (empty strings included); other methods send the non-empty ones.
const AUTH_METHOD_FIELDS = { password: ['user', 'password'], link: ['token'], resume: ['user', 'token'] };
const APP_FIELDS = { id: 'str', name: 'str', comment: 'str', categories: 'strs', icon: 'str' };
const MAX_JSON_INT = Number.MAX_SAFE_INTEGER;

const CONTROL_BY_TYPE = new Map(CONTROL.map(([type, name, req, opt]) => [type, { type, name, req, opt: opt || {} }]));
const CONTROL_BY_NAME = new Map(CONTROL.map(([type, name, req, opt]) => [name, { type, name, req, opt: opt || {} }]));

// Audio (protocol/audio.py): FORMAT is codec B, channels B, frame_samples H, sample_rate I;
// DATA is pts Q, capture_us Q, then the codec packet (1..MAX_AUDIO_PACKET bytes).
export const AudioCodec = Object.freeze({ OPUS: 1 });
// libopus's recommended packet buffer; the most channels and samples per frame (120 ms at 48 kHz).
export const MAX_AUDIO_PACKET = 4000;
export const MAX_AUDIO_CHANNELS = 2;
export const MAX_FRAME_SAMPLES = 5760;
// Opus decodes at these rates only (RFC 6716 section 2).
export const OPUS_RATES = Object.freeze([8000, 12000, 16000, 24000, 48000]);
const AUDIO_FORMAT_LAYOUT = [['codec', 'B'], ['channels', 'B'], ['frame_samples', 'H'], ['sample_rate', 'I']];
const AUDIO_DATA = 'audio-data';
const AUDIO_DATA_HEADER = 16;

// Binary messages: [kind, type, name, layout]; layout is a list of [field, struct code]
// with B=u8, H=u16, h=i16, I=u32, ?=u8 flag (0/1); REGION is special-cased.
const BINARY = [
  [Kind.DISPLAY, 0x01, 'DESKTOP_SIZE', [['width', 'H'], ['height', 'H']]],
  [Kind.DISPLAY, 0x02, 'REGION', null],
  [Kind.DISPLAY, 0x03, 'FRAME_END', [['seq', 'I']]],
  [Kind.DISPLAY, 0x04, 'FRAME_ACK', [['seq', 'I']]],
  [Kind.DISPLAY, 0x05, 'REFRESH_REQUEST', []],
  [Kind.DISPLAY, 0x06, 'RESIZE_REQUEST', [['width', 'H'], ['height', 'H']]],
  [Kind.INPUT, 0x01, 'KEY', [['keysym', 'I'], ['down', '?']]],
  [Kind.INPUT, 0x02, 'POINTER', [['x', 'H'], ['y', 'H']]],
  [Kind.INPUT, 0x03, 'BUTTON', [['x', 'H'], ['y', 'H'], ['button', 'B'], ['down', '?']]],
  [Kind.INPUT, 0x04, 'WHEEL', [['x', 'H'], ['y', 'H'], ['dx', 'h'], ['dy', 'h']]],
  [Kind.INPUT, 0x05, 'SYNC', [['seq', 'I']]],
  [Kind.INPUT, 0x06, 'SYNC_DONE', [['seq', 'I']]],
  [Kind.AUDIO_OUT, 0x01, 'AUDIO_FORMAT', AUDIO_FORMAT_LAYOUT],
  [Kind.AUDIO_OUT, 0x02, 'AUDIO_DATA', AUDIO_DATA],
  [Kind.AUDIO_IN, 0x01, 'MIC_FORMAT', AUDIO_FORMAT_LAYOUT],
  [Kind.AUDIO_IN, 0x02, 'MIC_DATA', AUDIO_DATA],
];
const SIZES = { B: 1, '?': 1, H: 2, h: 2, I: 4 };
const BINARY_BY_TYPE = new Map(BINARY.map(([kind, type, name, layout]) => [`${kind}:${type}`, { kind, type, name, layout }]));
const BINARY_BY_NAME = new Map(BINARY.map(([kind, type, name, layout]) => [name, { kind, type, name, layout }]));
const REGION_HEADER = 9;

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

function checkField(name, type, value) {
  const bad = () => new ProtocolError(Reason.MALFORMED_MESSAGE, `field ${name} must be ${type}`);
  switch (type) {
    case 'int':
    case 'sint':
      if (!Number.isInteger(value) || Math.abs(value) > MAX_JSON_INT || (type === 'int' && value < 0)) throw bad();
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
    case 'apps':
      if (!Array.isArray(value)) throw bad();
      return value.map((app) => {
        if (app === null || typeof app !== 'object' || Array.isArray(app)) throw bad();
        return pick(app, APP_FIELDS, {});
      });
    default:
      throw new Error(`unknown field type ${type}`);
  }
}

function pick(obj, req, opt, fill = false) {
  const out = {};
  for (const [name, type] of Object.entries(req)) {
    if (!Object.hasOwn(obj, name)) throw new ProtocolError(Reason.MALFORMED_MESSAGE, `missing field ${name}`);
    out[name] = checkField(name, type, obj[name]);
  }
  for (const [name, type] of Object.entries(opt)) {
    if (Object.hasOwn(obj, name)) out[name] = checkField(name, type, obj[name]);
    else if (fill) out[name] = '';
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
      if (names || value) obj[name] = checkField(name, 'str', value);
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

/** Encode a message {name, fields} to [type, payload bytes]. */
export function encodeMessage(message) {
  const { name, fields = {} } = message;
  const control = CONTROL_BY_NAME.get(name);
  if (control) return [control.type, utf8.encode(canonicalJson(controlWireObject(control, fields)))];
  if (name === 'WINDOW_UPDATE') return [WINDOW_UPDATE, packFields([['increment', 'I']], fields)];
  const spec = BINARY_BY_NAME.get(name);
  if (!spec) throw new Error(`unknown message ${name}`);
  if (spec.layout === AUDIO_DATA) return [spec.type, encodeAudioData(fields, name)];
  if (spec.layout === AUDIO_FORMAT_LAYOUT) checkAudioFormat(fields, name);
  if (spec.layout === null) {
    const data = fields.data;
    const out = new Uint8Array(REGION_HEADER + data.length);
    out.set(packFields([['x', 'H'], ['y', 'H'], ['w', 'H'], ['h', 'H'], ['encoding', 'B']], fields));
    out.set(data, REGION_HEADER);
    return [spec.type, out];
  }
  return [spec.type, packFields(spec.layout, fields)];
}

function packFields(layout, fields) {
  const size = layout.reduce((n, [, code]) => n + SIZES[code], 0);
  const out = new Uint8Array(size);
  const view = new DataView(out.buffer);
  let at = 0;
  for (const [field, code] of layout) {
    const value = code === '?' ? Number(Boolean(fields[field])) : fields[field];
    if (code === 'B' || code === '?') view.setUint8(at, value);
    else if (code === 'H') view.setUint16(at, value);
    else if (code === 'h') view.setInt16(at, value);
    else view.setUint32(at, value);
    at += SIZES[code];
  }
  return out;
}

function unpackFields(layout, payload, name) {
  const size = layout.reduce((n, [, code]) => n + SIZES[code], 0);
  if (payload.length !== size) throw new ProtocolError(Reason.MALFORMED_MESSAGE, `${name} payload must be ${size} bytes`);
  const view = new DataView(payload.buffer, payload.byteOffset, payload.length);
  const fields = {};
  let at = 0;
  for (const [field, code] of layout) {
    let value;
    if (code === 'B' || code === '?') value = view.getUint8(at);
    else if (code === 'H') value = view.getUint16(at);
    else if (code === 'h') value = view.getInt16(at);
    else value = view.getUint32(at);
    if (code === '?') {
      if (value > 1) throw new ProtocolError(Reason.MALFORMED_MESSAGE, `${name}.${field} must be 0 or 1`);
      value = value === 1;
    }
    fields[field] = value;
    at += SIZES[code];
  }
  return fields;
}

function decodeRegion(payload) {
  if (payload.length < REGION_HEADER) throw new ProtocolError(Reason.MALFORMED_MESSAGE, 'REGION shorter than its header');
  const fields = unpackFields([['x', 'H'], ['y', 'H'], ['w', 'H'], ['h', 'H'], ['encoding', 'B']],
    payload.subarray(0, REGION_HEADER), 'REGION');
  fields.data = payload.subarray(REGION_HEADER);
  const { w, h, encoding, data } = fields;
  if (w < 1 || h < 1) throw new ProtocolError(Reason.MALFORMED_MESSAGE, 'REGION w and h must be >= 1');
  if (encoding === Encoding.FILL) {
    if (data.length !== 3) throw new ProtocolError(Reason.MALFORMED_MESSAGE, 'FILL data must be 3 bytes');
  } else if (!Object.values(Encoding).includes(encoding)) {
    throw new ProtocolError(Reason.MALFORMED_MESSAGE, `unknown REGION encoding ${encoding}`);
  } else if (w * h * 3 > MAX_REGION_RAW_BYTES) {
    throw new ProtocolError(Reason.MALFORMED_MESSAGE, 'REGION exceeds MAX_REGION_RAW_BYTES');
  } else if (encoding === Encoding.RAW_LZ4) {
    if (data.length < 4) throw new ProtocolError(Reason.MALFORMED_MESSAGE, 'RAW_LZ4 lacks its size prefix');
    const size = new DataView(data.buffer, data.byteOffset, 4).getUint32(0, true);
    if (size !== w * h * 3) throw new ProtocolError(Reason.MALFORMED_MESSAGE, 'RAW_LZ4 size prefix is not w*h*3');
  }
  return fields;
}

function checkAudioFormat(fields, name) {
  const bad = (what) => new ProtocolError(Reason.MALFORMED_MESSAGE, `${name} ${what}`);
  if (!Object.values(AudioCodec).includes(fields.codec)) throw bad(`codec ${fields.codec} is unknown`);
  if (!(fields.channels >= 1 && fields.channels <= MAX_AUDIO_CHANNELS)) throw bad('channels must be 1 or 2');
  if (!(fields.frame_samples >= 1 && fields.frame_samples <= MAX_FRAME_SAMPLES)) throw bad('frame_samples out of range');
  if (!OPUS_RATES.includes(fields.sample_rate)) throw bad(`sample_rate ${fields.sample_rate} is not an Opus rate`);
}

// u64 fields (pts, capture_us) as Numbers: exact up to 2^53, which no sample counter or
// microsecond clock reaches; larger values are refused rather than silently rounded.
const U32 = 2 ** 32;

function decodeAudioData(payload, name) {
  if (payload.length < AUDIO_DATA_HEADER + 1) throw new ProtocolError(Reason.MALFORMED_MESSAGE, `${name} has no packet`);
  if (payload.length > AUDIO_DATA_HEADER + MAX_AUDIO_PACKET) {
    throw new ProtocolError(Reason.MALFORMED_MESSAGE, `${name} packet longer than MAX_AUDIO_PACKET`);
  }
  const view = new DataView(payload.buffer, payload.byteOffset, AUDIO_DATA_HEADER);
  const u64 = (at) => {
    const high = view.getUint32(at);
    if (high >= 2 ** 21) throw new ProtocolError(Reason.MALFORMED_MESSAGE, `${name} timestamp beyond 2^53`);
    return high * U32 + view.getUint32(at + 4);
  };
  return { pts: u64(0), capture_us: u64(8), packet: payload.subarray(AUDIO_DATA_HEADER) };
}

function encodeAudioData(fields, name) {
  const { pts, capture_us: captureUs, packet } = fields;
  for (const value of [pts, captureUs]) {
    if (!Number.isSafeInteger(value) || value < 0) throw new Error(`${name} pts and capture_us must be integers >= 0`);
  }
  if (!(packet instanceof Uint8Array) || packet.length < 1 || packet.length > MAX_AUDIO_PACKET) {
    throw new Error(`${name} packet must be 1..${MAX_AUDIO_PACKET} bytes`);
  }
  const out = new Uint8Array(AUDIO_DATA_HEADER + packet.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, Math.floor(pts / U32));
  view.setUint32(4, pts % U32);
  view.setUint32(8, Math.floor(captureUs / U32));
  view.setUint32(12, captureUs % U32);
  out.set(packet, AUDIO_DATA_HEADER);
  return out;
}

/** Decode a payload of `type` received on a channel of `kind` into {name, fields}. */
export function decodeMessage(kind, type, payload) {
  if (kind === Kind.CONTROL) {
    const spec = CONTROL_BY_TYPE.get(type);
    if (!spec) throw new ProtocolError(Reason.UNKNOWN_MESSAGE_TYPE, `control type 0x${type.toString(16)}`);
    const fields = pick(parseJsonObject(payload), spec.req, spec.opt, spec.name === 'AUTH');
    return { name: spec.name, fields };
  }
  if (type === WINDOW_UPDATE) {
    const fields = unpackFields([['increment', 'I']], payload, 'WINDOW_UPDATE');
    if (fields.increment < 1) throw new ProtocolError(Reason.MALFORMED_MESSAGE, 'WINDOW_UPDATE increment must be >= 1');
    return { name: 'WINDOW_UPDATE', fields };
  }
  const spec = BINARY_BY_TYPE.get(`${kind}:${type}`);
  if (!spec) throw new ProtocolError(Reason.UNKNOWN_MESSAGE_TYPE, `type 0x${type.toString(16)} on kind ${kind}`);
  if (spec.layout === null) return { name: spec.name, fields: decodeRegion(payload) };
  if (spec.layout === AUDIO_DATA) return { name: spec.name, fields: decodeAudioData(payload, spec.name) };
  const fields = unpackFields(spec.layout, payload, spec.name);
  if (spec.layout === AUDIO_FORMAT_LAYOUT) checkAudioFormat(fields, spec.name);
  if (spec.name === 'KEY' && (fields.keysym < 1 || fields.keysym > MAX_KEYSYM)) {
    throw new ProtocolError(Reason.MALFORMED_MESSAGE, `KEY keysym ${fields.keysym} outside 1..${MAX_KEYSYM}`);
  }
  if ((spec.name === 'DESKTOP_SIZE' || spec.name === 'RESIZE_REQUEST') && (fields.width < 1 || fields.height < 1)) {
    throw new ProtocolError(Reason.MALFORMED_MESSAGE, `${spec.name} must be at least 1x1`);
  }
  return { name: spec.name, fields };
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

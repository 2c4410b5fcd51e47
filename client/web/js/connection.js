// One protocol connection over a browser WebSocket: the client end of the
// handshake, channel opening, flow control and PING answers.
//
// Why here and not in the page code: flow control must match the Python
// Connection exactly (every frame but WINDOW_UPDATE costs 8 + payload bytes of
// credit; credit goes back in one WINDOW_UPDATE once half the initial window
// has been processed), or the server stops sending. The page tells us when it
// has processed a frame (consumed()), which for the display is after drawing,
// so a slow browser slows the session's frame rate instead of queueing.
// Frames sent in one task (a FRAME_ACK and the credit it returns, a key and
// its SYNC) leave in one WebSocket message -- one TLS record -- at the end
// of the task: the gateway reads one or more whole frames per message.

import {
  DEFAULT_WINDOW, DISPLAY_WINDOW, FrameDecoder, HEADER_SIZE, Kind, PROTOCOL_VERSION, ProtocolError, Reason,
  WINDOW_UPDATE, decodeMessage, encodeFrame, encodeMessage,
} from './protocol.js';
import { APPS_CHANGED_CAPABILITY } from './app-list.js';

export const SOFTWARE = 'sessiond-web 0.1.0';
// launch.beside-xpra (protocol/xpra.py): this page cannot show an xpra display, so in an xpra session
// it only launches, beside the user's xpra client (launches.js).
export const CAPABILITIES = [
  'display.raw-lz4', 'display.png', 'display.jpeg', 'display.fill', 'display.copy', 'display.palette', 'input.keysym',
  APPS_CHANGED_CAPABILITY, // the launcher follows the catalog (app-list.js)
  'launch.beside-xpra',
];
// CHANNEL_CLOSE code for kinds this client does not offer (audio, usb, clipboard).
const CHANNEL_KIND_UNAVAILABLE = 20;
// A WebSocket that neither opens nor fails within this time counts as unreachable.
const CONNECT_TIMEOUT_MS = 10000;
// Frames queued on a channel waiting for credit; input beyond this is dropped (the user sees lag, not a leak).
const MAX_QUEUED_FRAMES = 4096;

/**
 * handlers: onOpen(), onMessage(channel, kind, message, cost), onClose({code, message, byServer}).
 * `cost` is the credit to hand back with consumed() once the message is processed.
 */
export class SessionConnection {
  constructor(url, handlers, WebSocketImpl = globalThis.WebSocket) {
    this.url = url;
    this.handlers = handlers;
    this.WebSocketImpl = WebSocketImpl;
    this.ws = null;
    this.decoder = new FrameDecoder();
    this.channels = new Map(); // id -> {kind, phase, sendCredit, initialRecv, unacked, queue}
    this.closeInfo = null;
    this.opened = false;
    this.pending = []; // frames written in this task, sent together at its end
    this.held = new Map(); // channel -> a message that waits for the next write (a FRAME_ACK)
  }

  /**
   * Keep `message` for `channel` until something else is written, then send it
   * in the same WebSocket message (one per channel: a newer one replaces it).
   * For cumulative acknowledgements the server lets us delay (FRAME_END ack_now 0).
   */
  hold(channel, message) {
    this.held.set(channel, message);
  }

  /** Send the held messages now (the server waits for them). */
  releaseHeld() {
    const held = [...this.held];
    this.held.clear();
    for (const [channel, message] of held) this.send(channel, message);
  }

  /** Queue a frame for the WebSocket; all frames of one task go in one message. */
  write(frame) {
    this.pending.push(frame);
    if (this.pending.length === 1) queueMicrotask(() => this.flushWrites());
  }

  /** Send the frames written so far, as one WebSocket message. */
  flushWrites() {
    if (!this.pending.length) return;
    if (this.held.size) this.releaseHeld(); // held acks ride along with what goes anyway
    const frames = this.pending;
    this.pending = [];
    if (!this.ws || this.ws.readyState !== 1) return;
    if (frames.length === 1) {
      this.ws.send(frames[0]);
      return;
    }
    const joined = new Uint8Array(frames.reduce((total, f) => total + f.length, 0));
    let offset = 0;
    for (const f of frames) {
      joined.set(f, offset);
      offset += f.length;
    }
    this.ws.send(joined);
  }

  connect() {
    let ws;
    try {
      ws = new this.WebSocketImpl(this.url);
    } catch (error) { // a blocked port or a bad URL: as unreachable as a refused connection
      this.closeInfo = { code: -1, message: String(error.message || error), byServer: false };
      setTimeout(() => this.handlers.onClose?.({ ...this.closeInfo, wasOpen: false, wsCode: 1006 }), 0);
      return;
    }
    ws.binaryType = 'arraybuffer';
    this.ws = ws;
    const timer = setTimeout(() => {
      this.closeInfo = { code: -1, message: 'no answer from the server', byServer: false };
      ws.onopen = null;
      ws.close();
      this.ws = null;
      this.handlers.onClose?.({ ...this.closeInfo, wasOpen: false, wsCode: 1006 });
    }, CONNECT_TIMEOUT_MS);
    ws.onopen = () => {
      clearTimeout(timer);
      this.opened = true;
      this.send(0, { name: 'HELLO', fields: { version: PROTOCOL_VERSION, capabilities: CAPABILITIES, software: SOFTWARE } });
      this.handlers.onOpen?.();
    };
    ws.onmessage = (event) => this.receive(new Uint8Array(event.data));
    ws.onclose = (event) => {
      clearTimeout(timer);
      if (this.ws !== ws) return; // already reported (connect timeout)
      const info = this.closeInfo || { code: -1, message: event.reason || '', byServer: false };
      this.closeInfo = info;
      this.ws = null;
      this.handlers.onClose?.({ ...info, wasOpen: this.opened, wsCode: event.code });
    };
  }

  /** Close the WebSocket (no CLOSE frame: like a dropped network, the session keeps running). */
  drop() {
    if (this.ws) this.ws.close();
  }

  /** Send CLOSE and end the connection. */
  close(code, message) {
    if (!this.ws) return;
    this.send(0, { name: 'CLOSE', fields: { code, message } });
    this.flushWrites(); // CLOSE (and what preceded it) before the socket closes
    this.closeInfo = { code, message, byServer: false };
    this.ws.close();
  }

  send(channel, message) {
    if (!this.ws || this.ws.readyState !== 1) return false;
    const [type, payload] = encodeMessage(message);
    const frame = encodeFrame(channel, type, payload);
    if (channel === 0 || type === WINDOW_UPDATE) {
      this.write(frame);
      return true;
    }
    const state = this.channels.get(channel);
    if (!state || state.phase !== 'open') return false;
    if (state.queue.length || state.sendCredit < frame.length) {
      if (state.queue.length >= MAX_QUEUED_FRAMES) return false;
      state.queue.push(frame);
      return true;
    }
    state.sendCredit -= frame.length;
    this.write(frame);
    return true;
  }

  /** Ask the server to open `channel` of `kind`; onMessage gets CHANNEL_OPENED or CHANNEL_REFUSED. */
  openChannel(channel, kind) {
    // The windows channel may carry per-window pixels: it gets the display's window.
    const window = kind === Kind.DISPLAY || kind === Kind.WINDOWS ? DISPLAY_WINDOW : DEFAULT_WINDOW;
    this.channels.set(channel, { kind, phase: 'opening', sendCredit: 0, initialRecv: window, unacked: 0, queue: [] });
    this.send(0, { name: 'CHANNEL_OPEN', fields: { channel, kind, window } });
  }

  isOpen(channel) {
    return this.channels.get(channel)?.phase === 'open';
  }

  /** Bytes `channel` may send now without queueing (0 unless open with an empty queue). */
  sendWindow(channel) {
    const state = this.channels.get(channel);
    return state?.phase === 'open' && !state.queue.length ? state.sendCredit : 0;
  }

  /** Send CHANNEL_CLOSE for `channel`; onMessage gets CHANNEL_REFUSED once the server answers. */
  closeChannel(channel, code = 0, message = '') {
    const state = this.channels.get(channel);
    if (!state || state.phase === 'closing') return;
    state.phase = 'closing';
    state.queue = [];
    this.send(0, { name: 'CHANNEL_CLOSE', fields: { channel, code, message } });
  }

  /** The page processed `cost` bytes received on `channel`: return credit in half-window batches. */
  consumed(channel, cost) {
    const state = this.channels.get(channel);
    if (!state || state.phase !== 'open' || !this.ws) return;
    state.unacked += cost;
    if (state.unacked >= state.initialRecv / 2) {
      const increment = state.unacked;
      state.unacked = 0;
      this.send(channel, { name: 'WINDOW_UPDATE', fields: { increment } });
    }
  }

  receive(bytes) {
    if (this.closeInfo) return;
    try {
      for (const frame of this.decoder.push(bytes)) this.handleFrame(frame);
    } catch (error) {
      if (!(error instanceof ProtocolError)) throw error;
      this.close(error.code, error.message.slice(0, 256));
    }
  }

  handleFrame(frame) {
    if (frame.channel === 0) {
      this.handleControl(decodeMessage(Kind.CONTROL, frame.type, frame.payload));
      return;
    }
    const state = this.channels.get(frame.channel);
    if (!state || state.phase === 'opening') throw new ProtocolError(7, `channel ${frame.channel} is not open`);
    if (state.phase === 'closing') return;
    const message = decodeMessage(state.kind, frame.type, frame.payload);
    if (message.name === 'WINDOW_UPDATE') {
      state.sendCredit += message.fields.increment;
      this.flushQueue(state);
      return;
    }
    this.handlers.onMessage?.(frame.channel, state.kind, message, HEADER_SIZE + frame.payload.length);
  }

  flushQueue(state) {
    while (state.queue.length && state.queue[0].length <= state.sendCredit && this.ws) {
      const frame = state.queue.shift();
      state.sendCredit -= frame.length;
      this.write(frame);
    }
  }

  handleControl(message) {
    const f = message.fields;
    switch (message.name) {
      case 'CLOSE':
        this.closeInfo = { code: f.code, message: f.message, byServer: true };
        this.ws?.close();
        return;
      case 'PING':
        this.send(0, { name: 'PONG', fields: { token: f.token } });
        return;
      case 'CHANNEL_OPEN_OK': {
        const state = this.channels.get(f.channel);
        if (state && state.phase === 'opening') {
          state.phase = 'open';
          state.sendCredit = f.window;
          this.handlers.onMessage?.(0, Kind.CONTROL, { name: 'CHANNEL_OPENED', fields: { channel: f.channel } }, 0);
        }
        return;
      }
      case 'CHANNEL_OPEN':
        // The browser offers no server-opened channels (audio, USB, clipboard are not in the web client yet).
        this.send(0, { name: 'CHANNEL_CLOSE', fields: { channel: f.channel, code: CHANNEL_KIND_UNAVAILABLE,
          message: 'the web client does not offer this channel' } });
        return;
      case 'CHANNEL_CLOSE': {
        const state = this.channels.get(f.channel);
        if (!state) return;
        this.channels.delete(f.channel);
        if (state.phase === 'open') this.send(0, { name: 'CHANNEL_CLOSE', fields: { channel: f.channel, code: f.code, message: '' } });
        this.handlers.onMessage?.(0, Kind.CONTROL, { name: 'CHANNEL_REFUSED', fields: f }, 0);
        return;
      }
      default:
        this.handlers.onMessage?.(0, Kind.CONTROL, message, 0);
    }
  }
}

export { Reason };

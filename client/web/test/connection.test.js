// The web connection's writes: every frame sent in one task leaves in one
// WebSocket message (one TLS record), in order; CLOSE is written before the
// socket closes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SessionConnection } from '../js/connection.js';
import { FrameDecoder } from '../js/protocol.js';

class FakeWebSocket {
  constructor() {
    this.readyState = 1;
    this.sent = [];
    this.closed = false;
  }

  send(data) {
    this.sent.push(Uint8Array.from(data));
  }

  close() {
    this.closed = true;
  }
}

function openConnection() {
  const conn = new SessionConnection('wss://x/ws', {});
  conn.ws = new FakeWebSocket();
  return conn;
}

const frames = (message) => new FrameDecoder().push(message).map((f) => [f.channel, f.type]);

test('frames sent in one task go out as one WebSocket message, in order', async () => {
  const conn = openConnection();
  conn.send(0, { name: 'PING', fields: { token: 1 } });
  conn.send(0, { name: 'PONG', fields: { token: 2 } });
  conn.send(0, { name: 'PING', fields: { token: 3 } });
  assert.equal(conn.ws.sent.length, 0); // not yet: the task has not ended
  await Promise.resolve();
  assert.equal(conn.ws.sent.length, 1);
  assert.deepEqual(frames(conn.ws.sent[0]), [[0, 0x0d], [0, 0x0e], [0, 0x0d]]);
  conn.send(0, { name: 'PING', fields: { token: 4 } });
  await Promise.resolve();
  assert.equal(conn.ws.sent.length, 2); // a later task: its own message
});

test('close writes CLOSE before closing the socket', () => {
  const conn = openConnection();
  conn.send(0, { name: 'PING', fields: { token: 1 } });
  conn.close(0, 'bye');
  assert.ok(conn.ws.closed);
  assert.deepEqual(frames(conn.ws.sent[0]), [[0, 0x0d], [0, 0x0c]]);
});

/** A connection with display channel 1 open and plenty of credit. */
function withDisplay() {
  const conn = openConnection();
  conn.channels.set(1, { kind: 1, phase: 'open', sendCredit: 1 << 20, initialRecv: 1 << 20, unacked: 0, queue: [] });
  conn.channels.set(2, { kind: 2, phase: 'open', sendCredit: 1 << 20, initialRecv: 1 << 20, unacked: 0, queue: [] });
  return conn;
}

test('a held FRAME_ACK waits for the next write and leaves in the same WebSocket message', async () => {
  const conn = withDisplay();
  conn.hold(1, { name: 'FRAME_ACK', fields: { seq: 7 } });
  conn.hold(1, { name: 'FRAME_ACK', fields: { seq: 8 } }); // cumulative: the newer replaces the older
  await Promise.resolve();
  assert.equal(conn.ws.sent.length, 0); // nothing else written: the ack waits
  conn.send(2, { name: 'KEY_TAP', fields: { keysym: 0x61 } });
  await Promise.resolve();
  assert.equal(conn.ws.sent.length, 1);
  assert.deepEqual(frames(conn.ws.sent[0]), [[2, 0x07], [1, 0x04]]);
  const decoded = new FrameDecoder().push(conn.ws.sent[0]);
  assert.deepEqual([...decoded[1].payload], [0, 0, 0, 8]);
  conn.send(2, { name: 'KEY_TAP', fields: { keysym: 0x62 } });
  await Promise.resolve();
  assert.deepEqual(frames(conn.ws.sent[1]), [[2, 0x07]]); // sent once only
});

test('releaseHeld sends a held ack at once (the server waits for it)', async () => {
  const conn = withDisplay();
  conn.hold(1, { name: 'FRAME_ACK', fields: { seq: 3 } });
  conn.releaseHeld();
  await Promise.resolve();
  assert.deepEqual(frames(conn.ws.sent[0]), [[1, 0x04]]);
});

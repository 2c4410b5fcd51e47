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

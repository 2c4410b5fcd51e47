// The clipboard bridge against recorder fakes: a browser that withholds the
// clipboard is always reported (never a silent failure), content goes out as
// CLIP_OFFER + BEGIN/DATA/END in 64 KiB chunks, sizes are checked first.
import { test } from 'node:test';
import assert from 'node:assert/strict';

class FakeButton extends EventTarget {
  constructor() {
    super();
    this.hidden = true;
  }
}

globalThis.document = Object.assign(new EventTarget(), { body: { dataset: {} } });
const clipboard = { text: '', readText: async () => clipboard.text, writeText: async (t) => { clipboard.text = t; } };
Object.defineProperty(globalThis, 'navigator', { value: { clipboard }, configurable: true, writable: true });

const { ClipboardBridge, CLIPBOARD_CHANNEL } = await import('../js/clipboard.js');

class FakeConn {
  constructor() {
    this.sent = [];
    this.opened = [];
  }

  send(channel, message) {
    this.sent.push({ channel, ...message });
    return true;
  }

  isOpen() {
    return true;
  }

  openChannel(channel, kind) {
    this.opened.push([channel, kind]);
  }

  consumed() {}
}

function bridge() {
  const statuses = [];
  const copy = new FakeButton();
  const paste = new FakeButton();
  const box = Object.assign(new FakeButton(), { focus() { this.focused = true; } });
  const b = new ClipboardBridge(copy, paste, (text, kind) => statuses.push({ text, kind }), box);
  const conn = new FakeConn();
  b.attach(conn);
  return { b, conn, statuses, copy, box };
}

const settle = () => new Promise((resolve) => setTimeout(resolve, 0));

test('a withheld clipboard read is reported, not silent', async () => {
  const { b, conn, statuses, box } = bridge();
  const saved = clipboard.readText;
  clipboard.readText = async () => { throw Object.assign(new Error('denied'), { name: 'NotAllowedError' }); };
  delete clipboard.read;
  await b.pasteFromDevice();
  clipboard.readText = saved;
  assert.equal(conn.sent.length, 0);
  assert.equal(statuses.at(-1).kind, 'error');
  assert.match(statuses.at(-1).text, /did not let the page read your clipboard.*Ctrl\+V/);
  assert.equal(box.hidden, false);
  assert.ok(box.focused);
});

test('a withheld clipboard write shows "Copy from session", which writes on click', async () => {
  const { b, statuses, copy } = bridge();
  const saved = clipboard.writeText;
  clipboard.writeText = async () => { throw Object.assign(new Error('denied'), { name: 'NotAllowedError' }); };
  await b.fromSession(1, [new TextEncoder().encode('grüße')]);
  assert.equal(copy.hidden, false);
  assert.match(statuses.at(-1).text, /Copy from session/);
  clipboard.writeText = saved;
  copy.dispatchEvent(new Event('click'));
  await settle();
  await settle();
  assert.equal(clipboard.text, 'grüße');
  assert.equal(copy.hidden, true);
});

test('device text goes out as an offer and 64 KiB chunks, and CLIP_DONE is reported', async () => {
  const { b, conn, statuses } = bridge();
  clipboard.text = 'x'.repeat(100 * 1024);
  await b.pasteFromDevice();
  const names = conn.sent.map((m) => m.name);
  assert.deepEqual(names, ['CLIP_OFFER', 'CLIP_BEGIN', 'CLIP_DATA', 'CLIP_DATA', 'CLIP_END']);
  assert.equal(conn.sent[0].fields.mimes, 1);
  assert.equal(conn.sent[1].fields.size, 100 * 1024);
  assert.ok(conn.sent.every((m) => m.channel === CLIPBOARD_CHANNEL));
  b.handle(conn, CLIPBOARD_CHANNEL, 6, { name: 'CLIP_DONE', fields: { serial: conn.sent[0].fields.serial } }, 12);
  assert.match(statuses.at(-1).text, /^Pasted/);
});

test('an offer is requested at once and an oversize begin is refused before allocating', () => {
  const { b, conn, statuses } = bridge();
  b.handle(conn, CLIPBOARD_CHANNEL, 6, { name: 'CLIP_OFFER', fields: { selection: 0, serial: 4, mimes: 3 } }, 14);
  assert.deepEqual(conn.sent.at(-1).fields, { selection: 0, serial: 4, mime: 1 });
  b.handle(conn, CLIPBOARD_CHANNEL, 6, { name: 'CLIP_BEGIN', fields: { selection: 0, serial: 4, mime: 1, size: 2 ** 27 } }, 18);
  assert.equal(b.incoming, null);
  assert.equal(statuses.at(-1).kind, 'error');
});

// The web client's end of the clipboard channel (kind 6, docs/protocol.md).
//
// Session -> device: the session offers (CLIP_OFFER) what an app copied; the
// page asks for it at once (text; an image only when no text is offered) and
// writes it with the Async Clipboard API. Browsers may refuse that (no
// permission, page not focused): then the content is kept and the
// "Copy from session" button, a user gesture, writes it, and the status line
// says so — never a silent failure.
//
// Device -> session: "Paste into session" reads the device clipboard
// (navigator.clipboard.read/readText where granted) and sends it eagerly
// (CLIP_OFFER, CLIP_BEGIN/DATA/END per type); where the API is withheld, a
// paste box appears and its paste event does the same. The session answers CLIP_DONE once it
// owns the selection, or CLIP_ERROR (policy, size), and the user is told.

export const CLIPBOARD_CHANNEL = 6;
const CLIPBOARD_KIND = 6;
const CLIP_CHUNK_BYTES = 64 * 1024;
// The largest content the page accepts from the session (MAX_CLIP_BYTES).
const MAX_CLIP_BYTES = 64 * 1024 * 1024;
const MIME = { TEXT: 1, PNG: 2 };
const SELECTION_CLIPBOARD = 0;
const utf8 = new TextEncoder();
const utf8Decoder = new TextDecoder('utf-8');

export class ClipboardBridge {
  /** copyButton / pasteButton: page buttons; pasteBox: a textarea shown where the browser withholds
   * the clipboard (the canvas takes every key, so Ctrl+V needs a place of its own); status(text, kind). */
  constructor(copyButton, pasteButton, status, pasteBox = null) {
    this.copyButton = copyButton;
    this.pasteButton = pasteButton;
    this.pasteBox = pasteBox;
    this.status = status;
    this.conn = null;
    this.incoming = null; // {serial, mime, size, chunks, got}
    this.pending = null; // {text?, png?}: content the browser did not let us write yet
    this.serial = 0;
    this.sent = new Map(); // our serial -> description, until CLIP_DONE / CLIP_ERROR
    this.lastWritten = '';
    copyButton.addEventListener('click', () => this.copyPending());
    pasteButton.addEventListener('click', () => this.pasteFromDevice());
    document.addEventListener('paste', (event) => this.onPasteEvent(event));
  }

  attach(conn) {
    this.conn = conn;
    this.incoming = null;
  }

  sessionReady() {
    this.conn?.openChannel(CLIPBOARD_CHANNEL, CLIPBOARD_KIND);
  }

  setVisible(visible) {
    this.pasteButton.hidden = !visible;
    if (!visible) this.copyButton.hidden = true;
  }

  /** A control message about our channel (CHANNEL_OPENED/REFUSED): true if handled. */
  control(conn, message) {
    if (conn !== this.conn || message.fields?.channel !== CLIPBOARD_CHANNEL) return false;
    if (message.name === 'CHANNEL_REFUSED') this.status(`Clipboard sharing is unavailable: ${message.fields.message}`, 'error');
    return message.name === 'CHANNEL_OPENED' || message.name === 'CHANNEL_REFUSED';
  }

  handle(conn, channel, kind, message, cost) {
    if (kind !== CLIPBOARD_KIND) return false;
    conn.consumed(channel, cost);
    if (conn !== this.conn) return true;
    const f = message.fields;
    switch (message.name) {
      case 'CLIP_OFFER': {
        const mime = f.mimes & 1 ? MIME.TEXT : MIME.PNG;
        conn.send(CLIPBOARD_CHANNEL, { name: 'CLIP_REQUEST', fields: { selection: f.selection, serial: f.serial, mime } });
        break;
      }
      case 'CLIP_BEGIN':
        if (f.size > MAX_CLIP_BYTES) {
          this.status(`The session's clipboard (${f.size} bytes) is too large to copy`, 'error');
          this.incoming = null;
        } else this.incoming = { serial: f.serial, mime: f.mime, size: f.size, chunks: [], got: 0 };
        break;
      case 'CLIP_DATA':
        if (this.incoming && this.incoming.serial === f.serial) {
          this.incoming.got += f.data.length;
          if (this.incoming.got > this.incoming.size) this.incoming = null;
          else this.incoming.chunks.push(f.data.slice());
        }
        break;
      case 'CLIP_END':
        if (this.incoming && this.incoming.serial === f.serial && this.incoming.got === this.incoming.size) {
          const { mime, chunks } = this.incoming;
          this.incoming = null;
          this.fromSession(mime, chunks);
        }
        break;
      case 'CLIP_DONE':
        if (this.sent.has(f.serial)) this.status(`Pasted ${this.sent.get(f.serial)} into the session`);
        this.sent.delete(f.serial);
        break;
      case 'CLIP_ERROR':
        if (this.sent.has(f.serial)) this.status(`The session did not take the clipboard: ${f.text}`, 'error');
        else if (f.code === 1) this.status(`Copying from the session is not allowed: ${f.text}`, 'error');
        this.sent.delete(f.serial);
        break;
      default:
        break;
    }
    return true;
  }

  // -- session -> device --------------------------------------------------------
  async fromSession(mime, chunks) {
    const blob = new Blob(chunks, { type: mime === MIME.PNG ? 'image/png' : 'text/plain' });
    this.pending = mime === MIME.PNG ? { png: blob } : { text: utf8Decoder.decode(await blob.arrayBuffer()) };
    try {
      await this.write(this.pending);
      this.pending = null;
      this.copyButton.hidden = true;
      document.body.dataset.clipboardFromSession = String(Date.now());
    } catch (err) {
      this.copyButton.hidden = false;
      this.status(`The browser did not let the page write your clipboard (${err?.name || 'refused'}); `
        + 'click "Copy from session" to copy what the session copied', 'error');
    }
  }

  async write(content) {
    if (!navigator.clipboard) throw new Error('no clipboard API');
    if (content.text !== undefined) {
      await navigator.clipboard.writeText(content.text);
      this.lastWritten = content.text;
    } else {
      await navigator.clipboard.write([new ClipboardItem({ 'image/png': content.png })]);
    }
  }

  async copyPending() {
    if (!this.pending) return;
    try {
      await this.write(this.pending);
      this.pending = null;
      this.copyButton.hidden = true;
      this.status('Copied from the session');
    } catch (err) {
      this.status(`The browser refused the clipboard: ${err?.message || err}`, 'error');
    }
  }

  // -- device -> session --------------------------------------------------------
  async pasteFromDevice() {
    try {
      if (!navigator.clipboard) throw new Error('no clipboard API');
      let sent = false;
      if (navigator.clipboard.read) {
        for (const item of await navigator.clipboard.read()) {
          if (item.types.includes('image/png') && !item.types.includes('text/plain')) {
            const png = new Uint8Array(await (await item.getType('image/png')).arrayBuffer());
            this.sendContent({ [MIME.PNG]: png }, 'an image');
            sent = true;
            break;
          }
        }
      }
      if (!sent) {
        const text = await navigator.clipboard.readText();
        this.sendContent({ [MIME.TEXT]: utf8.encode(text) }, `${text.length} characters`);
      }
    } catch (err) {
      this.status(`The browser did not let the page read your clipboard (${err?.name || 'refused'}); `
        + 'press Ctrl+V (or Cmd+V) in the box next to "Paste into session"', 'error');
      if (this.pasteBox) {
        this.pasteBox.hidden = false;
        this.pasteBox.focus();
      }
    }
  }

  onPasteEvent(event) {
    if (!this.conn?.isOpen(CLIPBOARD_CHANNEL) || !event.clipboardData) return;
    const text = event.clipboardData.getData('text/plain');
    if (!text) return;
    event.preventDefault();
    if (this.pasteBox) this.pasteBox.hidden = true;
    this.sendContent({ [MIME.TEXT]: utf8.encode(text) }, `${text.length} characters`);
  }

  /** CLIP_OFFER, then CLIP_BEGIN/DATA/END per type (content: {mimeCode: Uint8Array}). */
  sendContent(content, what) {
    const conn = this.conn;
    if (!conn?.isOpen(CLIPBOARD_CHANNEL)) {
      this.status('The clipboard channel is not open yet', 'error');
      return;
    }
    this.serial = (this.serial % 0xfffffffe) + 1;
    const serial = this.serial;
    let mimes = 0;
    for (const code of Object.keys(content)) mimes |= 1 << (Number(code) - 1);
    const frames = [{ name: 'CLIP_OFFER', fields: { selection: SELECTION_CLIPBOARD, serial, mimes } }];
    for (const [code, data] of Object.entries(content)) {
      frames.push({ name: 'CLIP_BEGIN', fields: { selection: SELECTION_CLIPBOARD, serial, mime: Number(code), size: data.length } });
      for (let at = 0; at < data.length; at += CLIP_CHUNK_BYTES) {
        frames.push({ name: 'CLIP_DATA', fields: { serial, data: data.subarray(at, at + CLIP_CHUNK_BYTES) } });
      }
      frames.push({ name: 'CLIP_END', fields: { serial } });
    }
    this.sent.set(serial, what);
    for (const frame of frames) {
      if (!conn.send(CLIPBOARD_CHANNEL, frame)) {
        this.status('The clipboard is too large to send now', 'error');
        this.sent.delete(serial);
        return;
      }
    }
    this.status(`Pasting ${what} into the session…`, 'busy');
  }
}

// The web client's end of the files channel (kind 8, docs/protocol.md).
//
// Upload: a file dropped on the page is offered (FILE_OFFER); once the
// session accepts, it is read a chunk at a time (Blob.slice) and sent only
// while the channel has credit, so a large file neither fills memory nor
// delays input and display (FILES is the lowest priority on the server
// side too). Progress and the final name go to the status line.
//
// Download: a file the session sends (sessiond-send, ~/Outbox) is accepted,
// collected, and offered to the user as a download under its name (the
// browser sanitises it again); FILE_DONE tells the session it arrived.

export const FILES_CHANNEL = 8;
const FILES_KIND = 8;
const FILE_CHUNK_BYTES = 64 * 1024;
const FRAME_OVERHEAD = 8 + 12; // header + id + offset
// A download is held in memory until it completes; larger ones are declined.
const MAX_DOWNLOAD_BYTES = 2 * 1024 * 1024 * 1024;
// How often a blocked upload looks for credit again (the connection has no credit callback).
const CREDIT_POLL_MS = 5;

export class FileBridge {
  constructor(dropTarget, status) {
    this.status = status;
    this.conn = null;
    this.nextId = 0;
    this.uploads = new Map(); // id -> {file, resolve}
    this.downloads = new Map(); // id -> {name, size, got, chunks}
    dropTarget.addEventListener('dragover', (event) => {
      if (event.dataTransfer?.types?.includes('Files')) event.preventDefault();
    });
    dropTarget.addEventListener('drop', (event) => {
      if (!event.dataTransfer?.files?.length) return;
      event.preventDefault();
      this.upload([...event.dataTransfer.files]);
    });
  }

  attach(conn) {
    this.conn = conn;
    this.uploads.clear();
    this.downloads.clear();
  }

  sessionReady() {
    this.conn?.openChannel(FILES_CHANNEL, FILES_KIND);
  }

  control(conn, message) {
    if (conn !== this.conn || message.fields?.channel !== FILES_CHANNEL) return false;
    if (message.name === 'CHANNEL_REFUSED') this.status(`File transfer is unavailable: ${message.fields.message}`, 'error');
    return message.name === 'CHANNEL_OPENED' || message.name === 'CHANNEL_REFUSED';
  }

  handle(conn, channel, kind, message, cost) {
    if (kind !== FILES_KIND) return false;
    conn.consumed(channel, cost);
    if (conn !== this.conn) return true;
    const f = message.fields;
    const up = this.uploads.get(f.id);
    switch (message.name) {
      case 'FILE_ACCEPT':
        if (up) this.sendFile(f.id, up);
        break;
      case 'FILE_DONE':
        if (up) {
          this.uploads.delete(f.id);
          this.status(`${up.file.name} is in the session: ~/Downloads/${f.name} (${f.size} bytes)`);
          document.body.dataset.lastUpload = f.name;
          up.resolve(true);
        }
        break;
      case 'FILE_CANCEL':
        if (up) {
          this.uploads.delete(f.id);
          this.status(`${up.file.name} was not sent: ${f.text}`, 'error');
          up.resolve(false);
        } else if (this.downloads.delete(f.id)) this.status(`The session cancelled a download: ${f.text}`, 'error');
        break;
      case 'FILE_OFFER':
        this.offered(f);
        break;
      case 'FILE_DATA': {
        const down = this.downloads.get(f.id);
        if (!down) break;
        if (f.offset !== down.got || down.got + f.data.length > down.size) {
          this.downloads.delete(f.id);
          conn.send(FILES_CHANNEL, { name: 'FILE_CANCEL', fields: { id: f.id, code: 6, text: 'data past the offer' } });
          this.status(`The download of ${down.name} failed`, 'error');
          break;
        }
        down.chunks.push(f.data.slice());
        down.got += f.data.length;
        break;
      }
      case 'FILE_END':
        this.finishDownload(f.id);
        break;
      default:
        break;
    }
    return true;
  }

  // -- upload -----------------------------------------------------------------------
  async upload(files) {
    for (const file of files) {
      if (!this.conn?.isOpen(FILES_CHANNEL)) {
        this.status('File transfer is not available yet', 'error');
        return;
      }
      this.nextId = (this.nextId % 0xfffffffe) + 1;
      const id = this.nextId;
      const done = new Promise((resolve) => this.uploads.set(id, { file, resolve }));
      this.conn.send(FILES_CHANNEL, { name: 'FILE_OFFER', fields: { id, size: file.size, name: file.name } });
      this.status(`Offering ${file.name} to the session…`, 'busy');
      await done;
    }
  }

  async sendFile(id, up) {
    const { file } = up;
    const conn = this.conn;
    let shown = 0;
    for (let offset = 0; offset < file.size;) {
      if (conn !== this.conn || !this.uploads.has(id)) return;
      const length = Math.min(FILE_CHUNK_BYTES, file.size - offset);
      if (conn.sendWindow(FILES_CHANNEL) < length + FRAME_OVERHEAD) {
        await new Promise((resolve) => setTimeout(resolve, CREDIT_POLL_MS));
        continue;
      }
      const data = new Uint8Array(await file.slice(offset, offset + length).arrayBuffer());
      conn.send(FILES_CHANNEL, { name: 'FILE_DATA', fields: { id, offset, data } });
      offset += length;
      const percent = Math.floor((100 * offset) / file.size);
      if (percent !== shown) {
        shown = percent;
        this.status(`Uploading ${file.name}: ${percent}%`, 'busy');
      }
    }
    conn.send(FILES_CHANNEL, { name: 'FILE_END', fields: { id } });
  }

  // -- download -----------------------------------------------------------------------
  offered(f) {
    if (f.size > MAX_DOWNLOAD_BYTES) {
      this.conn.send(FILES_CHANNEL, { name: 'FILE_CANCEL', fields: { id: f.id, code: 7, text: 'too large for the browser' } });
      this.status(`The session offered ${f.name} (${f.size} bytes): too large to download here`, 'error');
      return;
    }
    this.downloads.set(f.id, { name: f.name, size: f.size, got: 0, chunks: [] });
    this.conn.send(FILES_CHANNEL, { name: 'FILE_ACCEPT', fields: { id: f.id, offset: 0 } });
    this.status(`Downloading ${f.name} from the session…`, 'busy');
  }

  finishDownload(id) {
    const down = this.downloads.get(id);
    if (!down) return;
    this.downloads.delete(id);
    if (down.got !== down.size) {
      this.status(`The download of ${down.name} was incomplete`, 'error');
      return;
    }
    const url = URL.createObjectURL(new Blob(down.chunks, { type: 'application/octet-stream' }));
    const link = document.createElement('a');
    link.href = url;
    link.download = down.name;
    document.body.appendChild(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60_000);
    this.conn.send(FILES_CHANNEL, { name: 'FILE_DONE', fields: { id, size: down.size, name: down.name } });
    this.status(`Downloaded ${down.name} (${down.size} bytes)`);
  }
}

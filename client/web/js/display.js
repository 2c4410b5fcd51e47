// The session's screen on a canvas: DESKTOP_SIZE, REGION (RAW_LZ4, PNG,
// JPEG, FILL, COPY, PALETTE, H264 through video.js, GLYPHS through
// glyphs.js), FRAME_END and TILE (a one-region frame, unfolded by tile.js),
// drawn strictly in arrival order
// (a COPY reads the canvas as every earlier region left it).
//
// Why a promise chain: PNG and JPEG decode asynchronously (createImageBitmap,
// off the main thread), but a later region may cover an earlier one, so
// decoding starts at once while drawing waits its turn. A frame is
// acknowledged (FRAME_ACK) only once all its regions are on the canvas, and
// the credit of each message is returned only once it is drawn: both are
// what pace the server to what this browser can really show.

import { Encoding } from './protocol.js';
import { decompressSized } from './lz4.js';
import { applyCopy, decodePalette } from './palette.js';
import { VideoStreams } from './video.js';
import { TileUnfolder } from './tile.js';
import { GlyphCache } from './glyphs.js';

const MIME = { [Encoding.PNG]: 'image/png', [Encoding.JPEG]: 'image/jpeg' };

export class Screen {
  /**
   * @param {HTMLCanvasElement} canvas
   * @param {{onFrame(seq: number, ackNow: boolean): void, onError(message: string): void,
   *          targetFor?(window: number, width: number, height: number): CanvasRenderingContext2D|null}} hooks
   *   targetFor: seamless mode, the buffer of a window named by WINDOW_TARGET (made
   *   width x height); the REGIONs up to the next target or FRAME_END are drawn on it,
   *   relative to the window's top-left corner; null drops them (window gone)
   */
  constructor(canvas, hooks) {
    this.canvas = canvas;
    this.ctx = canvas.getContext('2d', { alpha: false });
    this.hooks = hooks;
    this.chain = Promise.resolve();
    this.width = 0;
    this.height = 0;
    this.frames = 0;
    this.failed = false;
    this.current = null; // the window WINDOW_TARGET named, until the next one (null: the desktop canvas)
    this.video = hooks.video || new VideoStreams(); // H264 streams of this display channel
    this.tiles = new TileUnfolder(); // TILE frames: the last colours (a display channel each)
    this.glyphs = new GlyphCache(); // GLYPHS regions: the glyph cache (a display channel each)
    this.lastSeq = 0; // seq of the last frame, known on arrival (a TILE's is this + 1)
  }

  /** Queue a display message; `done` runs once it has been applied (for credit). */
  handle(message, done) {
    const f = message.fields;
    switch (message.name) {
      case 'DESKTOP_SIZE':
        this.then(() => this.resize(f.width, f.height), done);
        break;
      case 'REGION':
        this.region(f, done);
        break;
      case 'WINDOW_TARGET':
        // In force until the next WINDOW_TARGET, across frames (the server sends
        // one only when the window or its size changes).
        this.then(() => {
          this.current = f.window && this.hooks.targetFor ? { window: f.window, width: f.width, height: f.height } : null;
        }, done);
        break;
      case 'FRAME_END':
        this.lastSeq = f.seq;
        this.frameEnd(f.seq, f.ack_now, done);
        break;
      case 'TILE': {
        // A whole frame: its PALETTE region, then its FRAME_END (seq: the previous + 1).
        let unfolded;
        try {
          unfolded = this.tiles.unfold(f, this.lastSeq);
        } catch (error) {
          this.then(() => Promise.reject(error), done);
          break;
        }
        this.lastSeq = unfolded.seq;
        this.region(unfolded.region, () => {});
        this.frameEnd(unfolded.seq, unfolded.ackNow, done);
        break;
      }
      default:
        done();
    }
  }

  frameEnd(seq, ackNow, done) {
    this.then(() => {
      this.frames += 1;
      this.hooks.onFrame(seq, ackNow);
    }, done);
  }

  then(step, done) {
    this.chain = this.chain.then(step).catch((error) => this.fail(error)).finally(done);
  }

  fail(error) {
    if (!this.failed) {
      this.failed = true;
      this.hooks.onError(`could not draw the session's screen: ${error.message || error}`);
    }
  }

  resize(width, height) {
    if (this.width === width && this.height === height) return;
    this.width = width;
    this.height = height;
    this.canvas.width = width;
    this.canvas.height = height;
    this.ctx = this.canvas.getContext('2d', { alpha: false });
    this.canvas.dispatchEvent(new Event('desktopresize'));
  }

  /** The context a region goes to: the desktop canvas, or the window WINDOW_TARGET named. */
  target() {
    if (!this.current) return this.ctx;
    const { window, width, height } = this.current;
    return this.hooks.targetFor(window, width, height); // looked up each time: a canvas may have been rebuilt
  }

  region(f, done) {
    const { x, y, w, h, encoding, data } = f;
    if (encoding === Encoding.FILL) {
      this.then(() => {
        const ctx = this.target();
        if (!ctx) return;
        ctx.fillStyle = `rgb(${data[0]}, ${data[1]}, ${data[2]})`;
        ctx.fillRect(x, y, w, h);
      }, done);
    } else if (encoding === Encoding.COPY) {
      this.then(() => {
        // Within the surface the regions go to: the desktop, or WINDOW_TARGET's window buffer.
        const ctx = this.target();
        if (!ctx) return;
        const [width, height] = this.current ? [this.current.width, this.current.height] : [this.width, this.height];
        applyCopy(ctx, width, height, f);
      }, done);
    } else if (encoding === Encoding.H264) {
      // Parsed and bounded now (a bad header fails the region in turn), decoded
      // at once; the frame is drawn when its turn comes.
      let decoded;
      try {
        decoded = this.video.decode(data.slice(), w, h);
      } catch (error) {
        decoded = Promise.reject(error);
      }
      decoded.catch(() => {}); // reported through the chain, in order
      this.then(async () => {
        const frame = await decoded;
        if (!frame) return; // END
        const ctx = this.target();
        if (ctx) ctx.drawImage(frame, 0, 0, w, h, x, y, w, h);
        frame.close();
      }, done);
    } else if (encoding === Encoding.PALETTE) {
      // Unpack (and inflate) at once; draw in turn.
      const decoded = decodePalette(data.slice(), w, h);
      decoded.catch(() => {}); // reported through the chain, in order
      this.then(async () => {
        const pixels = await decoded;
        const ctx = this.target();
        if (!ctx) return;
        const image = ctx.createImageData(w, h);
        image.data.set(pixels);
        ctx.putImageData(image, x, y);
      }, done);
    } else if (encoding === Encoding.GLYPHS) {
      // Inflate at once; read and fill the glyph cache, and draw, in turn. The cache is
      // filled even when the pixels are dropped (no target): later regions use it (§7c).
      const inflated = this.glyphs.inflate(data.slice(), w, h);
      inflated.catch(() => {}); // reported through the chain, in order
      this.then(async () => {
        const pixels = this.glyphs.draw(await inflated, w, h);
        const ctx = this.target();
        if (ctx) ctx.putImageData(new ImageData(pixels, w, h), x, y);
      }, done);
    } else if (encoding === Encoding.RAW_LZ4) {
      this.then(() => {
        const ctx = this.target();
        if (!ctx) return;
        const rgb = decompressSized(data, w * h * 3);
        const image = ctx.createImageData(w, h);
        const rgba = image.data;
        for (let i = 0, j = 0; i < rgb.length; i += 3, j += 4) {
          rgba[j] = rgb[i];
          rgba[j + 1] = rgb[i + 1];
          rgba[j + 2] = rgb[i + 2];
          rgba[j + 3] = 255;
        }
        ctx.putImageData(image, x, y);
      }, done);
    } else {
      // Copy out of the WebSocket buffer, then decode in parallel with earlier draws.
      const decoded = createImageBitmap(new Blob([data.slice()], { type: MIME[encoding] }));
      decoded.catch(() => {}); // reported through the chain, in order
      this.then(async () => {
        const bitmap = await decoded;
        const ctx = this.target();
        if (ctx) ctx.drawImage(bitmap, x, y, w, h);
        bitmap.close();
      }, done);
    }
  }
}

// Keyboard, mouse and wheel on the session canvas, turned into INPUT
// channel messages in session coordinates.
//
// Why the care: the canvas is scaled to the browser window (Xvfb cannot be
// resized at run time, docs/web.md), so every pointer position is mapped back
// through the canvas' on-screen rectangle; pointer moves are coalesced to one
// per animation frame; wheel deltas (pixels, lines or pages) accumulate into
// whole X wheel steps; keys are sent by keysym (keysyms.js) and the browser's
// own shortcuts are suppressed while the canvas has the focus. A typing key
// (a character, Enter, Backspace ... without Control/Alt/Meta) goes out as one
// KEY_TAP on its keydown (its keyup sends nothing): half the input messages
// of typed text; held keys and modifiers stay KEY down/up.

import { KeyTracker } from './keysyms.js';

// Pixel-mode wheel delta per X wheel step (Chromium reports ~100 per notch, touchpads less).
const WHEEL_PIXELS_PER_STEP = 50;
// Line-mode (Firefox) lines per step, and steps per page.
const WHEEL_LINES_PER_STEP = 3;
const WHEEL_STEPS_PER_PAGE = 10;
// Most steps sent in one WHEEL message (a fling must not flood the session).
const MAX_WHEEL_STEPS = 10;
// Browser MouseEvent.button -> X button (left, middle, right, back, forward).
const X_BUTTONS = [1, 2, 3, 8, 9];

export class InputBinding {
  /**
   * @param {HTMLElement} canvas the session canvas, or in seamless mode the desktop element
   * @param {(message: {name: string, fields: object}) => void} send
   * @param {{position?(event: MouseEvent): {x: number, y: number}}} [options] seamless mode
   *   maps a page position to session coordinates itself (windows sit 1:1 on the desktop)
   */
  constructor(canvas, send, options = {}) {
    this.canvas = canvas;
    this.send = send;
    this.mapPosition = options.position ?? null;
    this.keys = new KeyTracker();
    this.pendingMove = null;
    this.wheel = { x: 0, y: 0 };
    this.last = { x: 0, y: 0 };
    this.listeners = [];
    this.bind();
  }

  on(target, type, fn, options) {
    target.addEventListener(type, fn, options);
    this.listeners.push(() => target.removeEventListener(type, fn, options));
  }

  detach() {
    this.releaseKeys();
    for (const off of this.listeners) off();
    this.listeners = [];
  }

  /** Session coordinates of a mouse event, clamped to the screen. */
  position(event) {
    if (this.mapPosition) return this.mapPosition(event);
    const rect = this.canvas.getBoundingClientRect();
    const w = this.canvas.width || 1;
    const h = this.canvas.height || 1;
    const x = Math.floor(((event.clientX - rect.left) * w) / (rect.width || 1));
    const y = Math.floor(((event.clientY - rect.top) * h) / (rect.height || 1));
    return { x: Math.min(Math.max(x, 0), w - 1), y: Math.min(Math.max(y, 0), h - 1) };
  }

  /** POINTER/BUTTON/WHEEL, or their WINDOW_ forms when the position names a window (seamless mode). */
  pointerSend(name, fields) {
    if (!fields) return; // seamless mode, over no window: the session has nothing there
    this.send({ name: fields.window === undefined ? name : `WINDOW_${name}`, fields });
  }

  releaseKeys() {
    for (const [keysym, down] of this.keys.releaseAll()) this.send({ name: 'KEY', fields: { keysym, down } });
  }

  bind() {
    const c = this.canvas;
    this.on(c, 'pointermove', (event) => {
      this.last = this.position(event);
      if (this.pendingMove === null) {
        this.pendingMove = requestAnimationFrame(() => {
          this.pendingMove = null;
          this.pointerSend('POINTER', this.last);
        });
      }
    });
    const button = (down) => (event) => {
      const xbutton = X_BUTTONS[event.button];
      if (xbutton === undefined) return;
      event.preventDefault();
      if (down) {
        c.focus();
        c.setPointerCapture?.(event.pointerId);
      }
      this.last = this.position(event);
      this.pointerSend('POINTER', this.last);
      if (this.last) this.pointerSend('BUTTON', { ...this.last, button: xbutton, down });
    };
    this.on(c, 'pointerdown', button(true));
    this.on(c, 'pointerup', button(false));
    this.on(c, 'contextmenu', (event) => event.preventDefault());
    this.on(c, 'wheel', (event) => this.onWheel(event), { passive: false });
    this.on(c, 'keydown', (event) => {
      event.preventDefault();
      const tapped = this.keys.tap(event);
      if (tapped !== null) {
        this.send({ name: 'KEY_TAP', fields: { keysym: tapped } });
        return;
      }
      for (const [keysym, down] of this.keys.press(event)) this.send({ name: 'KEY', fields: { keysym, down } });
    });
    this.on(c, 'keyup', (event) => {
      event.preventDefault();
      for (const [keysym, down] of this.keys.release(event)) this.send({ name: 'KEY', fields: { keysym, down } });
    });
    this.on(c, 'blur', () => this.releaseKeys());
  }

  onWheel(event) {
    event.preventDefault();
    const scale = event.deltaMode === 1 ? 1 / WHEEL_LINES_PER_STEP
      : event.deltaMode === 2 ? WHEEL_STEPS_PER_PAGE : 1 / WHEEL_PIXELS_PER_STEP;
    this.wheel.x += event.deltaX * scale;
    this.wheel.y += event.deltaY * scale;
    const clamp = (v) => Math.max(-MAX_WHEEL_STEPS, Math.min(MAX_WHEEL_STEPS, Math.trunc(v)));
    const dx = clamp(this.wheel.x);
    const dy = clamp(this.wheel.y);
    if (dx === 0 && dy === 0) return;
    this.wheel.x -= dx;
    this.wheel.y -= dy;
    const at = this.position(event);
    if (at) this.pointerSend('WHEEL', { ...at, dx, dy });
  }
}

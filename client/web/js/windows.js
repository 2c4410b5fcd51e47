// Seamless mode on the page: every session window as its own element (a
// title bar with the app's icon and title, minimize / maximize / close, edges
// to resize, a canvas of its own pixels), and a taskbar listing them.
//
// Why the page moves its own copy: the agent is the window manager, but a
// move only changes where the pixels go, so a title-bar drag moves the
// element at once and sends one move request when the drag ends; the server
// answers with WINDOW_GEOMETRY and no pixels. A resize is sent while dragging
// (throttled) because the app must re-lay out. The stacking, focus and
// geometry the user sees always come back from the server (window-state.js);
// the element is only ahead of it during a drag. Session coordinates map 1:1
// to CSS pixels of the desktop element, so pointer input needs no per-window
// offset beyond the desktop's own position (input.js).

import { WindowState, eventOf, moveRect, resizeRect } from './window-state.js';

// Height of the title bar drawn above a decorated window, CSS pixels; the
// desktop leaves this much room at its top so a window at y = 0 keeps its bar.
export const TITLE_HEIGHT = 26;
// Live resize requests while dragging an edge: at most one per this many ms.
const RESIZE_SEND_MS = 120;
const EDGES = ['n', 's', 'e', 'w', 'ne', 'nw', 'se', 'sw'];
// Client requests (docs/protocol.md, windows channel).
export const Request = Object.freeze({
  MOVE_RESIZE: 'WINDOW_MOVE_RESIZE', RAISE: 'WINDOW_RAISE', MINIMIZE: 'WINDOW_MINIMIZE',
  RESTORE: 'WINDOW_RESTORE', MAXIMIZE: 'WINDOW_MAXIMIZE', CLOSE: 'WINDOW_CLOSE', FORCE_CLOSE: 'WINDOW_FORCE_CLOSE',
});

const el = (tag, className, attrs = {}) => {
  const node = document.createElement(tag);
  if (className) node.className = className;
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  return node;
};

export class WindowsView {
  /**
   * @param {HTMLElement} desktop where windows go (session coordinates = its CSS pixels)
   * @param {HTMLElement} taskbar the list of windows
   * @param {{request(name: string, fields: object): void, appIcon(appId: string): string|null,
   *          onLastClosed(): void}} hooks
   */
  constructor(desktop, taskbar, hooks) {
    this.desktop = desktop;
    this.taskbar = taskbar;
    this.hooks = hooks;
    this.state = new WindowState();
    this.views = new Map(); // id -> {frame, title, icon, canvas, ctx, task, drag}
    this.iconUrls = new Map();
    this.iconPng = new Map();
    this.pending = new Map(); // id -> canvas: pixels for a window whose WINDOW_NEW has not come yet
    this.grab = 0; // the window a pressed button belongs to (X's implicit grab), until release
    const release = () => setTimeout(() => { this.grab = 0; }, 0); // after input.js mapped the release
    desktop.addEventListener('pointerup', release);
    desktop.addEventListener('pointercancel', release);
  }

  /**
   * Where a pointer event goes in seamless mode: {window, x, y} relative to the window's
   * content, or null over no window's content (nothing is sent). While a button is held
   * the window it was pressed on keeps the pointer, as X's implicit grab does.
   */
  pointerTarget(event) {
    let id = this.grab;
    if (!id) {
      const hit = document.elementFromPoint(event.clientX, event.clientY)?.closest?.('.sv-content');
      const frame = hit?.parentElement;
      id = frame ? Number(frame.dataset.window) : 0;
      if (id && event.type === 'pointerdown') this.grab = id;
    }
    const view = this.views.get(id);
    if (!view) return null;
    const rect = view.canvas.getBoundingClientRect();
    const sx = view.canvas.width / (rect.width || 1);
    const sy = view.canvas.height / (rect.height || 1);
    const clamp16 = (v) => Math.max(-32768, Math.min(32767, Math.floor(v)));
    return { window: id, x: clamp16((event.clientX - rect.left) * sx), y: clamp16((event.clientY - rect.top) * sy) };
  }

  /** The context WINDOW_TARGET's regions are drawn on, its buffer made `width` x `height` first. */
  target(id, width, height) {
    const view = this.views.get(id);
    if (!view) {
      if (!this.pending.has(id) && this.pending.size >= 64) return null; // bounded: a target for a window never announced
      const canvas = this.pending.get(id) ?? document.createElement('canvas');
      if (canvas.width !== width || canvas.height !== height) Object.assign(canvas, { width, height });
      this.pending.set(id, canvas);
      return canvas.getContext('2d', { alpha: false });
    }
    if (view.canvas.width !== width || view.canvas.height !== height) this.resizeCanvas(view, width, height);
    return view.ctx;
  }

  /** A windows-channel message; true if it was one. */
  handle(message) {
    const event = eventOf(message);
    if (!event) return false;
    this.render(this.state.apply(event));
    return true;
  }

  /** Forget every window (a new connection replays them all). */
  reset() {
    this.render(this.state.apply({ type: 'reset', fields: {} }));
  }

  render(out) {
    for (const id of out.removed) this.remove(id);
    for (const id of out.added) this.create(id);
    for (const id of [...out.added, ...out.changed]) this.update(id);
    if (out.restacked || out.added.length || out.changed.length) for (const id of this.views.keys()) this.stack(id);
    if (out.focus !== null || out.added.length || out.removed.length || out.changed.length) this.markFocus();
    if (out.unanswered) this.offerForce(out.unanswered);
    this.renderTaskbar();
    if (out.lastClosed) this.hooks.onLastClosed();
  }

  create(id) {
    const w = this.state.get(id);
    const frame = el('div', 'sv-window', { 'data-window': String(id), 'data-kind': w.kind });
    const pending = this.pending.get(id);
    this.pending.delete(id);
    const canvas = pending ?? el('canvas');
    canvas.className = 'sv-content';
    if (!pending) Object.assign(canvas, { width: w.width, height: w.height });
    const view = { frame, canvas, ctx: canvas.getContext('2d', { alpha: false }), drag: null, bar: null };
    if (w.decorated && w.managed) this.decorate(view, id);
    frame.append(canvas);
    // Capture phase: the raise goes out before input.js sends the BUTTON press.
    frame.addEventListener('pointerdown', () => this.pick(id), true);
    this.views.set(id, view);
    this.desktop.append(frame);
  }

  decorate(view, id) {
    const bar = el('div', 'sv-titlebar');
    const icon = el('img', 'sv-icon', { alt: '' });
    const title = el('span', 'sv-title');
    const buttons = el('span', 'sv-buttons');
    const button = (cls, label, fn) => {
      const b = el('button', cls, { type: 'button', title: label, 'aria-label': label });
      b.addEventListener('pointerdown', (e) => e.stopPropagation());
      b.addEventListener('click', (e) => {
        e.stopPropagation();
        fn();
        this.desktop.focus(); // the keyboard stays with the session, not the button
      });
      buttons.append(b);
      return b;
    };
    button('sv-min', 'Minimize', () => this.hooks.request(Request.MINIMIZE, { window: id }));
    view.maxButton = button('sv-max', 'Maximize', () => {
      const max = this.state.get(id)?.state === 'maximized';
      this.hooks.request(max ? Request.RESTORE : Request.MAXIMIZE, { window: id });
    });
    button('sv-close', 'Close', () => this.hooks.request(Request.CLOSE, { window: id }));
    view.force = el('button', 'sv-force', { type: 'button', hidden: '' });
    view.force.textContent = 'Not responding: force close';
    view.force.addEventListener('pointerdown', (e) => e.stopPropagation()); // not a title-bar drag
    view.force.addEventListener('click', () => this.hooks.request(Request.FORCE_CLOSE, { window: id }));
    bar.append(icon, title, view.force, buttons);
    bar.addEventListener('pointerdown', (e) => this.startDrag(e, id, 'move'));
    bar.addEventListener('dblclick', () => view.maxButton.click());
    view.frame.append(bar);
    for (const edge of EDGES) {
      const handle = el('div', `sv-edge sv-edge-${edge}`, { 'data-edge': edge });
      handle.addEventListener('pointerdown', (e) => this.startDrag(e, id, edge));
      view.frame.append(handle);
    }
    Object.assign(view, { bar, icon, title });
  }

  remove(id) {
    this.pending.delete(id);
    if (this.grab === id) this.grab = 0;
    const view = this.views.get(id);
    if (!view) return;
    view.frame.remove();
    this.views.delete(id);
    const url = this.iconUrls.get(id);
    if (url) URL.revokeObjectURL(url);
    this.iconUrls.delete(id);
  }

  update(id) {
    const w = this.state.get(id);
    if (this.iconUrls.has(id) && this.state.icons.get(id)?.png !== this.iconPng.get(id)) {
      URL.revokeObjectURL(this.iconUrls.get(id));
      this.iconUrls.delete(id);
    }
    const view = this.views.get(id);
    if (!w || !view) return;
    view.frame.hidden = !this.state.visible(id);
    view.frame.dataset.state = w.state;
    view.frame.dataset.app = w.appId;
    if (!view.drag) this.place(view, w);
    if (view.title) {
      view.title.textContent = w.title;
      view.frame.setAttribute('aria-label', w.title);
      const src = this.iconOf(id);
      if (src && view.icon.getAttribute('src') !== src) view.icon.src = src;
      view.maxButton.setAttribute('aria-label', w.state === 'maximized' ? 'Restore' : 'Maximize');
      view.maxButton.title = view.maxButton.getAttribute('aria-label');
    }
  }

  place(view, rect) {
    view.frame.style.left = `${rect.x}px`;
    view.frame.style.top = `${rect.y}px`;
    view.canvas.style.width = `${rect.width}px`;
    view.canvas.style.height = `${rect.height}px`;
  }

  /** A new size keeps the old pixels until the app's resend arrives. */
  resizeCanvas(view, width, height) {
    const old = document.createElement('canvas');
    old.width = view.canvas.width;
    old.height = view.canvas.height;
    old.getContext('2d').drawImage(view.canvas, 0, 0);
    view.canvas.width = width;
    view.canvas.height = height;
    view.ctx = view.canvas.getContext('2d', { alpha: false });
    view.ctx.fillStyle = '#fff';
    view.ctx.fillRect(0, 0, width, height);
    view.ctx.drawImage(old, 0, 0);
  }

  stack(id) {
    const view = this.views.get(id);
    if (view) view.frame.style.zIndex = String(this.state.zIndex(id));
  }

  markFocus() {
    for (const [id, view] of this.views) view.frame.classList.toggle('sv-focused', id === this.state.focus);
  }

  offerForce(id) {
    const view = this.views.get(id);
    if (view?.force) view.force.hidden = false;
  }

  /** The user picked window `id` (a click anywhere on it, or its taskbar entry). */
  pick(id) {
    const w = this.state.get(id);
    if (!w || !w.managed) return;
    this.desktop.focus({ preventScroll: true });
    const target = this.state.focusTarget(id);
    const top = this.state.order[this.state.order.length - 1];
    if (this.state.focus === target && top === target) return;
    this.hooks.request(Request.RAISE, { window: target });
  }

  startDrag(event, id, edge) {
    if (event.button !== 0) return;
    event.preventDefault();
    event.stopPropagation(); // not a click for the app under it
    const view = this.views.get(id);
    const w = this.state.get(id);
    if (!view || !w) return;
    this.pick(id);
    const target = event.currentTarget;
    target.setPointerCapture?.(event.pointerId);
    const drag = { edge, x0: event.clientX, y0: event.clientY, start: { x: w.x, y: w.y, width: w.width, height: w.height }, rect: null, sent: 0, timer: 0 };
    view.drag = drag;
    view.frame.classList.add('sv-dragging');
    const move = (e) => {
      const dx = e.clientX - drag.x0;
      const dy = e.clientY - drag.y0;
      drag.rect = edge === 'move' ? moveRect(drag.start, dx, dy) : resizeRect(drag.start, edge, dx, dy, this.state.get(id)?.hints ?? {});
      this.place(view, drag.rect);
      if (edge !== 'move') this.sendResize(id, drag, false);
    };
    const end = (e) => {
      target.removeEventListener('pointermove', move);
      target.removeEventListener('pointerup', end);
      target.removeEventListener('pointercancel', end);
      if (e.type === 'pointerup') move(e);
      clearTimeout(drag.timer);
      view.drag = null;
      view.frame.classList.remove('sv-dragging');
      if (drag.rect) this.hooks.request(Request.MOVE_RESIZE, { window: id, ...drag.rect });
      const now = this.state.get(id);
      if (now && !drag.rect) this.place(view, now);
    };
    target.addEventListener('pointermove', move);
    target.addEventListener('pointerup', end);
    target.addEventListener('pointercancel', end);
  }

  sendResize(id, drag, force) {
    const now = performance.now();
    clearTimeout(drag.timer);
    if (force || now - drag.sent >= RESIZE_SEND_MS) {
      drag.sent = now;
      this.hooks.request(Request.MOVE_RESIZE, { window: id, ...drag.rect });
    } else {
      drag.timer = setTimeout(() => this.sendResize(id, drag, true), RESIZE_SEND_MS);
    }
  }

  iconOf(id) {
    const url = this.iconUrls.get(id);
    if (url) return url;
    const icon = this.state.icons.get(id);
    if (icon?.png instanceof Uint8Array && icon.png.length) {
      const made = URL.createObjectURL(new Blob([icon.png.slice()], { type: 'image/png' }));
      this.iconUrls.set(id, made);
      this.iconPng.set(id, icon.png);
      return made;
    }
    const w = this.state.get(id);
    return w ? this.hooks.appIcon(w.appId || (Array.isArray(w.wmClass) ? w.wmClass[0] : '')) : null;
  }

  renderTaskbar() {
    const items = this.state.taskbar();
    const buttons = items.map((w) => {
      const b = el('button', 'sv-task', { type: 'button', 'data-window': String(w.id), 'data-app': w.appId, title: w.title });
      const src = this.iconOf(w.id);
      if (src) b.append(el('img', '', { alt: '', src }));
      const label = el('span');
      label.textContent = w.title || w.appId || `window ${w.id}`;
      b.append(label);
      b.classList.toggle('sv-focused', this.state.focusTarget(w.id) === this.state.focus && this.state.focus !== 0);
      b.classList.toggle('sv-minimized', w.state === 'minimized');
      b.setAttribute('aria-pressed', String(w.state !== 'minimized'));
      b.addEventListener('click', () => {
        this.desktop.focus({ preventScroll: true }); // the keyboard goes to the session, not this button
        if (this.state.get(w.id)?.state === 'minimized') this.hooks.request(Request.RESTORE, { window: w.id });
        this.hooks.request(Request.RAISE, { window: this.state.focusTarget(w.id) });
      });
      return b;
    });
    this.taskbar.replaceChildren(...buttons);
    this.taskbar.hidden = items.length === 0;
  }
}

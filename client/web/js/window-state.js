// The browser's copy of the session's windows (seamless mode): which windows
// exist, where, in what stacking order, which one has the focus, and the
// geometry rules a drag must follow (size hints, edges, corners).
//
// Why a DOM-free module: the agent is the window manager (docs/windows.md)
// and this page only mirrors it, so the rules that decide what the user sees
// -- stacking of menus and dialogs over their owners, which windows the
// taskbar lists, where a resize drag snaps to, when the launcher comes back --
// live here where node tests can drive them with a fake event stream.
// windows.js draws this state; it never keeps a second copy.

// Kinds the server sends (WindowKind in sessiond/agent/window_model.py).
export const UNMANAGED_KINDS = Object.freeze(['menu', 'tooltip', 'override-redirect', 'notification']);
// Bounds of what we mirror (the server's MAX_WINDOWS and MAX_TITLE_BYTES): a
// server past them is broken, and the page must not grow without limit.
export const MAX_WINDOWS = 256;
export const MAX_TITLE_CHARS = 512;
// X geometry limits (16-bit sides, positions clamped like the server does).
export const MAX_SIDE = 32767;
export const MIN_POS = -32768;

const clamp = (v, lo, hi) => Math.min(Math.max(v, lo), hi);
const int = (v, dflt = 0) => (Number.isFinite(v) ? Math.trunc(v) : dflt);

/** Normalise size hints from any spelling the wire uses into {minW, minH, maxW, maxH, baseW, baseH, incW, incH}. */
export function normalizeHints(h = {}) {
  const pick = (...names) => {
    for (const n of names) if (Number.isFinite(h[n])) return Math.trunc(h[n]);
    return 0;
  };
  return {
    minW: Math.max(1, pick('min_width', 'minW')),
    minH: Math.max(1, pick('min_height', 'minH')),
    maxW: pick('max_width', 'maxW'),
    maxH: pick('max_height', 'maxH'),
    baseW: pick('base_width', 'baseW'),
    baseH: pick('base_height', 'baseH'),
    incW: Math.max(1, pick('width_inc', 'incW')),
    incH: Math.max(1, pick('height_inc', 'incH')),
  };
}

/** One side of a size after the hints: snapped down to base + k * inc, then clamped to [min, max]. */
function constrainSide(value, min, max, base, inc) {
  let v = Math.max(1, Math.trunc(value));
  if (inc > 1) v = base + Math.floor((v - base) / inc) * inc;
  if (v < min) v = inc > 1 ? base + Math.ceil((min - base) / inc) * inc : min;
  if (max > 0 && v > max) v = inc > 1 ? base + Math.floor((max - base) / inc) * inc : max;
  return clamp(v, 1, MAX_SIDE);
}

/** The size a window will accept for a wanted (width, height), following its hints (ICCCM 4.1.2.3). */
export function constrainSize(hints, width, height) {
  const h = normalizeHints(hints);
  return {
    width: constrainSide(width, h.minW, h.maxW, h.baseW, h.incW),
    height: constrainSide(height, h.minH, h.maxH, h.baseH, h.incH),
  };
}

/**
 * The rect a resize drag asks for: `edge` is any of n, s, e, w, ne, nw, se, sw; the
 * opposite edges stay where they were, whatever the hints do to the size.
 */
export function resizeRect(start, edge, dx, dy, hints) {
  let { width, height } = start;
  if (edge.includes('e')) width += dx;
  if (edge.includes('w')) width -= dx;
  if (edge.includes('s')) height += dy;
  if (edge.includes('n')) height -= dy;
  const size = constrainSize(hints, width, height);
  const x = edge.includes('w') ? start.x + start.width - size.width : start.x;
  const y = edge.includes('n') ? start.y + start.height - size.height : start.y;
  return { x, y, width: size.width, height: size.height };
}

/** The rect a title-bar drag asks for. */
export function moveRect(start, dx, dy) {
  return {
    x: clamp(start.x + Math.trunc(dx), MIN_POS, MAX_SIDE),
    y: clamp(start.y + Math.trunc(dy), MIN_POS, MAX_SIDE),
    width: start.width,
    height: start.height,
  };
}

/** A window record from a WINDOW_NEW / WINDOW_METADATA message's fields. */
export function windowFromFields(f, previous = null) {
  const kind = String(f.kind ?? previous?.kind ?? 'normal');
  const managed = f.managed ?? previous?.managed ?? !UNMANAGED_KINDS.includes(kind);
  const rect = {
    x: int(f.x, previous?.x ?? 0),
    y: int(f.y, previous?.y ?? 0),
    width: Math.max(1, int(f.width, previous?.width ?? 1)),
    height: Math.max(1, int(f.height, previous?.height ?? 1)),
  };
  const HINT_NAMES = ['min_width', 'min_height', 'max_width', 'max_height', 'base_width', 'base_height', 'width_inc', 'height_inc'];
  const hintSource = f.size_hints ?? f.hints ?? (HINT_NAMES.some((n) => n in f) ? f : null);
  return {
    id: f.id ?? f.window,
    ...rect,
    kind,
    managed: Boolean(managed),
    transientFor: int(f.transient_for, previous?.transientFor ?? 0),
    title: String(f.title ?? previous?.title ?? '').slice(0, MAX_TITLE_CHARS),
    wmClass: f.wm_class ?? previous?.wmClass ?? '',
    appId: String(f.app_id ?? previous?.appId ?? ''),
    hints: hintSource ? normalizeHints(hintSource) : previous?.hints ?? normalizeHints({}),
    modal: Boolean(f.modal ?? previous?.modal ?? false),
    decorated: Boolean(f.decorated ?? previous?.decorated ?? managed),
    state: String(f.state ?? previous?.state ?? 'normal'),
  };
}

/**
 * The mirrored model. `apply(event)` takes normalised events
 * ({type: 'new'|'metadata'|'geometry'|'restack'|'destroy'|'focus'|'icon'|'close-unanswered', ...})
 * and returns what changed, for the view: {added, changed, removed, restacked, focus, lastClosed, unanswered}.
 */
export class WindowState {
  constructor() {
    this.windows = new Map();
    this.order = []; // bottom to top, as the server last said (new windows go on top)
    this.focus = 0;
    this.icons = new Map();
    this.unanswered = new Set();
    this.replayAfter = null; // after a reset: 'had' / 'none' managed windows before it, until the replay ends
  }

  get(id) {
    return this.windows.get(id) ?? null;
  }

  /** Managed windows the user can pick from the taskbar, in the order they appeared. */
  taskbar() {
    return [...this.windows.values()].filter((w) => w.managed && !(w.kind === 'dialog' && w.transientFor && this.windows.has(w.transientFor)));
  }

  /** Whether a window is shown: not minimized, and its parent (if any) not minimized. */
  visible(id) {
    const seen = new Set();
    for (let w = this.get(id); w && !seen.has(w.id); w = this.get(w.transientFor)) {
      seen.add(w.id);
      if (w.state === 'minimized') return false;
    }
    return Boolean(this.get(id));
  }

  /** Stacking position for CSS z-index: managed windows in server order, unmanaged ones above all managed. */
  zIndex(id) {
    const i = this.order.indexOf(id);
    const w = this.get(id);
    if (i < 0 || !w) return 0;
    return (w.managed ? 1 : 1 + MAX_WINDOWS) + i;
  }

  /** The window that should get the keyboard when the user picks `id`: its topmost modal dialog, if any. */
  focusTarget(id) {
    let target = id;
    for (let depth = 0; depth < MAX_WINDOWS; depth += 1) {
      const modal = [...this.order].reverse().map((d) => this.get(d))
        .find((d) => d && d.modal && d.transientFor === target && d.state !== 'minimized');
      if (!modal) return target;
      target = modal.id;
    }
    return target;
  }

  apply(event) {
    const out = { added: [], changed: [], removed: [], restacked: false, focus: null, lastClosed: false, unanswered: null };
    const hadManaged = this.taskbar().length > 0;
    switch (event.type) {
      case 'new': {
        const w = windowFromFields(event.fields);
        if (!Number.isInteger(w.id) || w.id <= 0) break;
        if (!this.windows.has(w.id) && this.windows.size >= MAX_WINDOWS) break;
        const existed = this.windows.has(w.id);
        this.windows.set(w.id, w);
        if (!this.order.includes(w.id)) this.order.push(w.id);
        (existed ? out.changed : out.added).push(w.id);
        break;
      }
      case 'metadata':
      case 'geometry': {
        const id = event.fields.id ?? event.fields.window;
        const old = this.get(id);
        if (!old) break;
        this.windows.set(id, windowFromFields(event.fields, old));
        out.changed.push(id);
        break;
      }
      case 'restack': {
        const ids = (event.fields.order ?? event.fields.ids ?? []).filter((id) => this.windows.has(id));
        const rest = this.order.filter((id) => !ids.includes(id));
        this.order = [...rest, ...ids];
        out.restacked = true;
        break;
      }
      case 'destroy': {
        const id = event.fields.id ?? event.fields.window;
        if (!this.windows.delete(id)) break;
        this.order = this.order.filter((o) => o !== id);
        this.icons.delete(id);
        this.unanswered.delete(id);
        if (this.focus === id) {
          this.focus = 0;
          out.focus = 0;
        }
        out.removed.push(id);
        break;
      }
      case 'focus': {
        const id = event.fields.id ?? event.fields.window ?? 0;
        this.focus = this.windows.has(id) ? id : 0;
        out.focus = this.focus;
        break;
      }
      case 'icon': {
        const id = event.fields.id ?? event.fields.window;
        if (!this.windows.has(id)) break;
        this.icons.set(id, event.fields);
        out.changed.push(id);
        break;
      }
      case 'close-unanswered': {
        const id = event.fields.id ?? event.fields.window;
        if (!this.windows.has(id)) break;
        this.unanswered.add(id);
        out.unanswered = id;
        break;
      }
      case 'reset':
        out.removed.push(...this.windows.keys());
        this.windows.clear();
        this.order = [];
        this.icons.clear();
        this.unanswered.clear();
        this.focus = 0;
        this.replayAfter = hadManaged ? 'had' : 'none';
        return out; // a reconnect: the replay follows, the launcher must not flash
      default:
        break;
    }
    out.lastClosed = hadManaged && this.taskbar().length === 0;
    if (event.type === 'focus' && this.replayAfter) {
      // WINDOW_FOCUS ends a replay: windows that closed while we were away (the last app
      // exited during a drop) show the launcher as if we had seen them go.
      out.lastClosed = this.replayAfter === 'had' && this.taskbar().length === 0;
      this.replayAfter = null;
    }
    return out;
  }
}

// Wire message name -> normalised event type (docs/protocol.md, windows channel).
const EVENT_OF = {
  WINDOW_NEW: 'new',
  WINDOW_METADATA: 'metadata',
  WINDOW_GEOMETRY: 'geometry',
  WINDOW_RESTACK: 'restack',
  WINDOW_DESTROY: 'destroy',
  WINDOW_FOCUS: 'focus',
  WINDOW_ICON: 'icon',
  WINDOW_CLOSE_UNANSWERED: 'close-unanswered',
};

/** The normalised event of a windows-channel message, or null for other messages. */
export function eventOf(message) {
  const type = EVENT_OF[message.name];
  return type ? { type, fields: message.fields } : null;
}

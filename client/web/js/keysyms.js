// Browser keyboard events to X keysyms for the INPUT channel's KEY message.
//
// Why by keysym: the session maps keysyms onto its own keyboard (and adds or
// lifts Shift / AltGr as needed, see sessiond/agent/xinput.py), so we send
// what the user meant, taken from KeyboardEvent.key, which the browser has
// already resolved through the user's layout: Shift+2 on a German keyboard is
// '"', AltGr+Q is '@', and a dead key followed by 'e' arrives as 'é'. Dead
// keys themselves send nothing (the composed character follows). Named keys
// (Enter, arrows, modifiers) map by name, with KeyboardEvent.code picking the
// left or right modifier. A key is released with the keysym it was pressed
// with, whatever the modifiers do in between (KeyTracker).

// X11 maps Unicode code points outside Latin-1 to 0x01000000 + code point.
export const UNICODE_KEYSYM_OFFSET = 0x01000000;
const LATIN1_MAX = 0xff;
// ISO_Level3_Shift: what AltGr is on X keyboards.
export const ISO_LEVEL3_SHIFT = 0xfe03;

// KeyboardEvent.key names (W3C UI Events "key" values) to X keysyms.
const NAMED = {
  Enter: 0xff0d, Tab: 0xff09, Backspace: 0xff08, Escape: 0xff1b, Delete: 0xffff, Insert: 0xff63,
  Home: 0xff50, End: 0xff57, PageUp: 0xff55, PageDown: 0xff56,
  ArrowLeft: 0xff51, ArrowUp: 0xff52, ArrowRight: 0xff53, ArrowDown: 0xff54,
  CapsLock: 0xffe5, NumLock: 0xff7f, ScrollLock: 0xff14, Pause: 0xff13, PrintScreen: 0xff61,
  ContextMenu: 0xff67, AltGraph: ISO_LEVEL3_SHIFT, Clear: 0xff0b, Help: 0xff6a,
};
// Modifiers: by KeyboardEvent.code so that left and right stay distinct.
const BY_CODE = {
  ShiftLeft: 0xffe1, ShiftRight: 0xffe2, ControlLeft: 0xffe3, ControlRight: 0xffe4,
  AltLeft: 0xffe9, AltRight: 0xffea, MetaLeft: 0xffeb, MetaRight: 0xffec, OSLeft: 0xffeb, OSRight: 0xffec,
};
// Modifier key values without a usable code (fallback, left side).
const MODIFIER_KEYS = { Shift: 0xffe1, Control: 0xffe3, Alt: 0xffe9, Meta: 0xffeb, OS: 0xffeb, Super: 0xffeb };
// Keypad keys keep their keypad keysyms (KP_Enter differs from Return for some apps).
const KEYPAD_CODES = { NumpadEnter: 0xff8d };
// F1..F35 are consecutive from 0xffbe.
const F1 = 0xffbe;
const MAX_F = 35;
// Characters the Latin-1 rule would get wrong: controls that have function keysyms.
const CONTROL_CHARS = { '\n': 0xff0d, '\r': 0xff0d, '\t': 0xff09, '\b': 0xff08, '\x1b': 0xff1b, '\x7f': 0xffff };

/** The keysym that types the single character `ch` (by code point), or null for other controls. */
export function keysymForChar(ch) {
  if (Object.hasOwn(CONTROL_CHARS, ch)) return CONTROL_CHARS[ch];
  const code = ch.codePointAt(0);
  if (code === undefined || String.fromCodePoint(code).length !== ch.length) return null;
  if (code < 0x20 || (code >= 0x7f && code < 0xa0)) return null;
  return code <= LATIN1_MAX ? code : UNICODE_KEYSYM_OFFSET + code;
}

/**
 * The keysym for a KeyboardEvent-like {key, code}, or null when nothing should
 * be sent (dead keys, composition, unknown names).
 */
export function keysymForEvent(event) {
  const { key, code } = event;
  if (key === 'Dead' || key === 'Process' || key === 'Unidentified' || event.isComposing) return null;
  if (code && Object.hasOwn(BY_CODE, code) && Object.hasOwn(MODIFIER_KEYS, key)) return BY_CODE[code];
  if (Object.hasOwn(MODIFIER_KEYS, key)) return MODIFIER_KEYS[key];
  if (code && Object.hasOwn(KEYPAD_CODES, code)) return KEYPAD_CODES[code];
  if (Object.hasOwn(NAMED, key)) return NAMED[key];
  const f = /^F([0-9]{1,2})$/.exec(key);
  if (f && Number(f[1]) >= 1 && Number(f[1]) <= MAX_F) return F1 + Number(f[1]) - 1;
  if ([...key].length === 1) return keysymForChar(key);
  return null;
}

/**
 * Remembers which keysym each physical key went down with, so the release
 * matches the press even if Shift or AltGr changed in between.
 */
// Named keys that type like characters: pressed and released by one KEY_TAP
// (auto-repeat repeats the tap). Arrows and other named keys stay down/up.
const TYPING_KEYS = new Set(['Enter', 'Tab', 'Backspace', 'Escape', 'Delete']);

/**
 * A key press that types (a character, or Enter/Tab/Backspace/Escape/Delete,
 * with no Control, Alt or Meta held): the browser already knows what it
 * means, so press and release travel as one KEY_TAP. Held modifiers and
 * shortcuts keep KEY down/up, so the session sees them held.
 */
export function isTypingEvent(event) {
  if (event.ctrlKey || event.altKey || event.metaKey) return false;
  const { key } = event;
  if (typeof key !== 'string' || Object.hasOwn(MODIFIER_KEYS, key) || key === 'AltGraph') return false;
  return TYPING_KEYS.has(key) || [...key].length === 1;
}

export class KeyTracker {
  constructor() {
    this.down = new Map();
    this.tapped = new Set(); // slots whose press went out as a KEY_TAP: their keyup sends nothing
  }

  /**
   * Key down of a typing key (isTypingEvent) that is not held as a KEY down:
   * the keysym to send as one KEY_TAP, or null (send press()/release() instead).
   */
  tap(event) {
    if (!isTypingEvent(event)) return null;
    const slot = event.code || event.key;
    if (this.down.has(slot)) return null; // went down as a KEY: its release must follow as a KEY
    const keysym = keysymForEvent(event);
    if (keysym === null) return null;
    this.tapped.add(slot);
    return keysym;
  }

  /** Key down: [keysym] to send, or [] to send nothing. Auto-repeat repeats the press. */
  press(event) {
    const keysym = keysymForEvent(event);
    if (keysym === null) return [];
    const slot = event.code || event.key;
    const previous = this.down.get(slot);
    const out = [];
    if (previous !== undefined && previous !== keysym) out.push([previous, false]);
    this.down.set(slot, keysym);
    out.push([keysym, true]);
    return out;
  }

  /** Key up: [[keysym, false]] for the key's press, or [] if it was never sent. */
  release(event) {
    const slot = event.code || event.key;
    if (this.tapped.delete(slot) && !this.down.has(slot)) return [];
    const keysym = this.down.get(slot);
    if (keysym === undefined) return [];
    this.down.delete(slot);
    return [[keysym, false]];
  }

  /** Release everything (the page lost focus: the browser will not tell us about releases). */
  releaseAll() {
    const out = [...this.down.values()].map((keysym) => [keysym, false]);
    this.down.clear();
    this.tapped.clear();
    return out;
  }
}

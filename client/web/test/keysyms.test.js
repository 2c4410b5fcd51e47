// KeyboardEvent (key, code) pairs as Chromium reports them on a German (de)
// and a US layout, and the X keysyms the session must receive.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { KeyTracker, keysymForChar, keysymForEvent } from '../js/keysyms.js';

const CASES = [
  // [description, event, keysym]
  ['letter', { key: 'a', code: 'KeyA' }, 0x61],
  ['shifted letter', { key: 'A', code: 'KeyA' }, 0x41],
  ['de: z is on the KeyY position', { key: 'z', code: 'KeyY' }, 0x7a],
  ['de: Shift+2 is a double quote', { key: '"', code: 'Digit2' }, 0x22],
  ['de: Shift+7 is a slash', { key: '/', code: 'Digit7' }, 0x2f],
  ['de: umlaut key', { key: 'ä', code: 'Quote' }, 0xe4],
  ['de: Shift+umlaut', { key: 'Ä', code: 'Quote' }, 0xc4],
  ['de: sharp s', { key: 'ß', code: 'Minus' }, 0xdf],
  ['de: AltGr+Q is @', { key: '@', code: 'KeyQ' }, 0x40],
  ['de: AltGr+E is the euro sign', { key: '€', code: 'KeyE' }, 0x10020ac],
  ['de: AltGr+8 is [', { key: '[', code: 'Digit8' }, 0x5b],
  ['de: AltGr+< is |', { key: '|', code: 'IntlBackslash' }, 0x7c],
  ['de: AltGr itself', { key: 'AltGraph', code: 'AltRight' }, 0xfe03],
  ['de: dead acute sends nothing', { key: 'Dead', code: 'Equal' }, null],
  ['de: dead acute then e composes é', { key: 'é', code: 'KeyE' }, 0xe9],
  ['de: dead circumflex then space is ^', { key: '^', code: 'Space' }, 0x5e],
  ['de: dead grave then a composes à', { key: 'à', code: 'KeyA' }, 0xe0],
  ['de: degree sign (Shift+^)', { key: '°', code: 'Backquote' }, 0xb0],
  ['space', { key: ' ', code: 'Space' }, 0x20],
  ['Enter', { key: 'Enter', code: 'Enter' }, 0xff0d],
  ['keypad Enter', { key: 'Enter', code: 'NumpadEnter' }, 0xff8d],
  ['Backspace', { key: 'Backspace', code: 'Backspace' }, 0xff08],
  ['Tab', { key: 'Tab', code: 'Tab' }, 0xff09],
  ['Escape', { key: 'Escape', code: 'Escape' }, 0xff1b],
  ['Delete', { key: 'Delete', code: 'Delete' }, 0xffff],
  ['Left', { key: 'ArrowLeft', code: 'ArrowLeft' }, 0xff51],
  ['PageDown', { key: 'PageDown', code: 'PageDown' }, 0xff56],
  ['F1', { key: 'F1', code: 'F1' }, 0xffbe],
  ['F12', { key: 'F12', code: 'F12' }, 0xffc9],
  ['left Shift', { key: 'Shift', code: 'ShiftLeft' }, 0xffe1],
  ['right Shift', { key: 'Shift', code: 'ShiftRight' }, 0xffe2],
  ['left Control', { key: 'Control', code: 'ControlLeft' }, 0xffe3],
  ['right Alt (US)', { key: 'Alt', code: 'AltRight' }, 0xffea],
  ['Meta', { key: 'Meta', code: 'MetaLeft' }, 0xffeb],
  ['emoji outside the BMP', { key: '😀', code: '' }, 0x0100_0000 + 0x1f600],
  ['Cyrillic letter', { key: 'ж', code: 'Semicolon' }, 0x1000436],
  ['IME composition sends nothing', { key: 'a', code: 'KeyA', isComposing: true }, null],
  ['unknown named key', { key: 'BrightnessUp', code: '' }, null],
];

for (const [description, event, keysym] of CASES) {
  test(description, () => assert.equal(keysymForEvent(event), keysym));
}

test('characters map like the Python client (client/keysyms.py)', () => {
  assert.equal(keysymForChar('\n'), 0xff0d);
  assert.equal(keysymForChar('~'), 0x7e);
  assert.equal(keysymForChar('\u00a0'), 0xa0);
  assert.equal(keysymForChar('\u0001'), null);
  assert.equal(keysymForChar('\u0085'), null);
});

test('a key is released with the keysym it was pressed with', () => {
  const keys = new KeyTracker();
  assert.deepEqual(keys.press({ key: 'Shift', code: 'ShiftLeft' }), [[0xffe1, true]]);
  assert.deepEqual(keys.press({ key: '"', code: 'Digit2' }), [[0x22, true]]);
  assert.deepEqual(keys.release({ key: 'Shift', code: 'ShiftLeft' }), [[0xffe1, false]]);
  // Shift went up first: the browser now reports '2' for the same key.
  assert.deepEqual(keys.release({ key: '2', code: 'Digit2' }), [[0x22, false]]);
  assert.deepEqual(keys.release({ key: 'x', code: 'KeyX' }), []);
});

test('AltGr combination on a German layout: Level3 down, @, releases', () => {
  const keys = new KeyTracker();
  const sent = [
    ...keys.press({ key: 'AltGraph', code: 'AltRight' }),
    ...keys.press({ key: '@', code: 'KeyQ' }),
    ...keys.release({ key: '@', code: 'KeyQ' }),
    ...keys.release({ key: 'AltGraph', code: 'AltRight' }),
  ];
  assert.deepEqual(sent, [[0xfe03, true], [0x40, true], [0x40, false], [0xfe03, false]]);
});

test('dead key sequence sends only the composed character', () => {
  const keys = new KeyTracker();
  const sent = [
    ...keys.press({ key: 'Dead', code: 'Equal' }),
    ...keys.release({ key: 'Dead', code: 'Equal' }),
    ...keys.press({ key: 'é', code: 'KeyE' }),
    ...keys.release({ key: 'e', code: 'KeyE' }),
  ];
  assert.deepEqual(sent, [[0xe9, true], [0xe9, false]]);
});

test('releaseAll lets go of every held key (focus lost)', () => {
  const keys = new KeyTracker();
  keys.press({ key: 'Control', code: 'ControlLeft' });
  keys.press({ key: 'c', code: 'KeyC' });
  assert.deepEqual(keys.releaseAll(), [[0xffe3, false], [0x63, false]]);
  assert.deepEqual(keys.releaseAll(), []);
});

test('typed characters and typing keys go out as one KEY_TAP; their keyup sends nothing', () => {
  const keys = new KeyTracker();
  assert.equal(keys.tap({ key: 'a', code: 'KeyA' }), 0x61);
  assert.deepEqual(keys.release({ key: 'a', code: 'KeyA' }), []);
  assert.equal(keys.tap({ key: 'Enter', code: 'Enter' }), 0xff0d);
  assert.equal(keys.tap({ key: 'Enter', code: 'Enter', repeat: true }), 0xff0d); // auto-repeat repeats the tap
  assert.deepEqual(keys.release({ key: 'Enter', code: 'Enter' }), []);
  assert.equal(keys.tap({ key: '€', code: 'KeyE' }), 0x10020ac);
});

test('modifiers, shortcuts and named keys are not taps: they stay KEY down/up', () => {
  const keys = new KeyTracker();
  assert.equal(keys.tap({ key: 'Shift', code: 'ShiftLeft', shiftKey: true }), null);
  assert.equal(keys.tap({ key: 'Control', code: 'ControlLeft', ctrlKey: true }), null);
  assert.equal(keys.tap({ key: 'c', code: 'KeyC', ctrlKey: true }), null);
  assert.equal(keys.tap({ key: 'x', code: 'KeyX', altKey: true }), null);
  assert.equal(keys.tap({ key: 'ArrowLeft', code: 'ArrowLeft' }), null);
  assert.equal(keys.tap({ key: 'AltGraph', code: 'AltRight' }), null);
  assert.equal(keys.tap({ key: 'Dead', code: 'Equal' }), null);
});

test('Shift held as a KEY, then a shifted letter tapped: Shift is released as a KEY, the letter not', () => {
  const keys = new KeyTracker();
  const sent = [...keys.press({ key: 'Shift', code: 'ShiftLeft' })];
  assert.equal(keys.tap({ key: 'A', code: 'KeyA', shiftKey: true }), 0x41);
  sent.push(...keys.release({ key: 'A', code: 'KeyA' }), ...keys.release({ key: 'Shift', code: 'ShiftLeft' }));
  assert.deepEqual(sent, [[0xffe1, true], [0xffe1, false]]);
});

test('a key that went down as a KEY (with Control) is released as a KEY, even if tapped since', () => {
  const keys = new KeyTracker();
  assert.deepEqual(keys.press({ key: 'c', code: 'KeyC', ctrlKey: true }), [[0x63, true]]);
  assert.equal(keys.tap({ key: 'c', code: 'KeyC' }), null); // held as a KEY: no tap in between
  assert.deepEqual(keys.release({ key: 'c', code: 'KeyC' }), [[0x63, false]]);
  assert.deepEqual(keys.releaseAll(), []);
});

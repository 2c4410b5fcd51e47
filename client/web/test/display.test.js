// The screen's region dispatch (display.js) with stand-in canvases: COPY and
// GLYPHS regions land on the surface WINDOW_TARGET names (a window's own
// buffer in seamless mode), in arrival order, and the glyph cache is the
// display channel's, shared by the desktop and every window.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { deflateSync } from 'node:zlib';
import { Screen } from '../js/display.js';
import { Encoding } from '../js/protocol.js';
import { fakeContext } from './fixtures/fake-context.js';

globalThis.ImageData ??= class {
  constructor(data, width, height) {
    Object.assign(this, { data, width, height });
  }
};

function screenWith(window) {
  const desktop = fakeContext(8, 4);
  const errors = [];
  const canvas = { getContext: () => desktop, dispatchEvent() {} };
  const screen = new Screen(canvas, {
    onFrame() {},
    onError: (message) => errors.push(message),
    targetFor: () => window,
    video: { frames: 0 },
  });
  return { screen, desktop, errors };
}

const run = (screen, name, fields) => new Promise((resolve) => screen.handle({ name, fields }, resolve));
const glyphs = (body) => Uint8Array.from([1, 1, 0, 0, 0, 9, 9, 9, ...deflateSync(Uint8Array.from(body))]);

test('COPY and GLYPHS under WINDOW_TARGET draw on the window, not the desktop', async () => {
  const window = fakeContext(2, 3);
  const { screen, desktop, errors } = screenWith(window);
  await run(screen, 'DESKTOP_SIZE', { width: 8, height: 4 });
  await run(screen, 'WINDOW_TARGET', { window: 5, width: 2, height: 3 });
  // One-pixel cells: slot 7 is ink, slot 8 blank; the window's top row becomes ink, blank.
  const define = glyphs([0, 2, 0, 7, 0x80, 0, 8, 0, 0, 2, 0, 7, 0, 8, 0, 1]);
  await run(screen, 'REGION', { x: 0, y: 0, w: 2, h: 1, encoding: Encoding.GLYPHS, data: define });
  await run(screen, 'REGION', { x: 0, y: 1, w: 2, h: 2, encoding: Encoding.COPY, data: Uint8Array.from([0, 0, 0, 0]) });
  assert.deepEqual(errors, []);
  const red = (ctx) => [...ctx.pixels].filter((_, i) => i % 4 === 0);
  assert.deepEqual(red(window), [9, 0, 9, 0, 0, 0]);
  assert.ok(red(desktop).every((v) => v === 0), 'the desktop was drawn on');
  // The same cache on the desktop (a later target 0): slot 8 then 7, no definitions.
  await run(screen, 'WINDOW_TARGET', { window: 0, width: 8, height: 4 });
  await run(screen, 'REGION', { x: 6, y: 3, w: 2, h: 1, encoding: Encoding.GLYPHS, data: glyphs([0, 0, 0, 2, 0, 8, 0, 7, 0, 1]) });
  assert.deepEqual(errors, []);
  assert.deepEqual(red(desktop).slice(-2), [0, 9]);
  assert.equal(screen.glyphs.regions, 2);
});

test('a bad GLYPHS region fails the screen with its reason', async () => {
  const { screen, errors } = screenWith(null);
  await run(screen, 'DESKTOP_SIZE', { width: 8, height: 4 });
  await run(screen, 'REGION', { x: 0, y: 0, w: 2, h: 1, encoding: Encoding.GLYPHS, data: glyphs([0, 0, 0, 1, 0, 3, 0, 0]) });
  assert.equal(errors.length, 1);
  assert.match(errors[0], /GLYPHS uses slot 3, which holds no glyph/);
});

test('a GLYPHS region whose pixels are dropped (unknown window) still stores its glyphs', async () => {
  const { screen, desktop, errors } = screenWith(null);
  await run(screen, 'DESKTOP_SIZE', { width: 8, height: 4 });
  await run(screen, 'WINDOW_TARGET', { window: 9, width: 2, height: 1 }); // no buffer: dropped
  await run(screen, 'REGION', { x: 0, y: 0, w: 1, h: 1, encoding: Encoding.GLYPHS, data: glyphs([0, 1, 0, 4, 0x80, 0, 1, 0, 4, 0]) });
  await run(screen, 'WINDOW_TARGET', { window: 0, width: 8, height: 4 });
  await run(screen, 'REGION', { x: 0, y: 0, w: 1, h: 1, encoding: Encoding.GLYPHS, data: glyphs([0, 0, 0, 1, 0, 4, 0]) });
  assert.deepEqual(errors, []);
  assert.equal(desktop.pixels[0], 9);
});

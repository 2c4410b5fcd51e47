// The seamless-mode window logic against a fake event stream shaped like the
// windows channel (docs/windows.md): stacking, focus, taskbar, size hints,
// the last-window-closed signal and a reconnect replay.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  MAX_WINDOWS, WindowState, constrainSize, eventOf, moveRect, resizeRect,
} from '../js/window-state.js';

const msg = (name, fields) => eventOf({ name, fields });
const xterm = { id: 11, x: 0, y: 0, width: 484, height: 316, kind: 'normal', title: 'xterm', app_id: 'xterm',
  size_hints: { min_width: 10, min_height: 17, base_width: 4, base_height: 4, width_inc: 6, height_inc: 13 } };
const xcalc = { id: 22, x: 500, y: 0, width: 226, height: 290, kind: 'normal', title: 'Calculator', app_id: 'xcalc' };

function twoApps() {
  const s = new WindowState();
  s.apply(msg('WINDOW_NEW', xterm));
  s.apply(msg('WINDOW_NEW', xcalc));
  return s;
}

test('new windows stack in arrival order and appear on the taskbar', () => {
  const s = twoApps();
  assert.deepEqual(s.order, [11, 22]);
  assert.ok(s.zIndex(22) > s.zIndex(11));
  assert.deepEqual(s.taskbar().map((w) => w.title), ['xterm', 'Calculator']);
  assert.equal(s.get(11).hints.incW, 6);
});

test('restack follows the server; focus names a window or none', () => {
  const s = twoApps();
  const out = s.apply(msg('WINDOW_RESTACK', { order: [22, 11] }));
  assert.ok(out.restacked);
  assert.ok(s.zIndex(11) > s.zIndex(22));
  assert.equal(s.apply(msg('WINDOW_FOCUS', { id: 11 })).focus, 11);
  assert.equal(s.apply(msg('WINDOW_FOCUS', { id: 999 })).focus, 0);
});

test('a menu stacks above every managed window and is not on the taskbar', () => {
  const s = twoApps();
  s.apply(msg('WINDOW_NEW', { id: 33, x: 40, y: 50, width: 120, height: 200, kind: 'override-redirect', managed: false, transient_for: 11 }));
  s.apply(msg('WINDOW_RESTACK', { order: [33, 11, 22] })); // even if the server listed it low
  assert.ok(s.zIndex(33) > s.zIndex(22));
  assert.equal(s.get(33).decorated, false);
  assert.equal(s.taskbar().length, 2);
  s.apply(msg('WINDOW_DESTROY', { id: 33 }));
  assert.equal(s.get(33), null);
});

test('a modal dialog takes the focus from its parent; a minimized parent hides it', () => {
  const s = twoApps();
  s.apply(msg('WINDOW_NEW', { id: 44, x: 100, y: 100, width: 200, height: 80, kind: 'dialog', transient_for: 11, modal: true, title: 'Sure?' }));
  assert.equal(s.focusTarget(11), 44);
  assert.equal(s.focusTarget(22), 22);
  assert.equal(s.taskbar().length, 2, 'a dialog with a parent travels with it');
  s.apply(msg('WINDOW_METADATA', { id: 11, state: 'minimized' }));
  assert.equal(s.visible(44), false);
  assert.equal(s.visible(22), true);
  assert.equal(s.get(11).title, 'xterm', 'metadata without a title keeps it');
});

test('geometry updates move the copy; unknown ids are ignored', () => {
  const s = twoApps();
  s.apply(msg('WINDOW_GEOMETRY', { id: 22, x: 800, y: 200, width: 226, height: 290 }));
  assert.deepEqual([s.get(22).x, s.get(22).y], [800, 200]);
  s.apply(msg('WINDOW_GEOMETRY', { id: 11, x: 3, y: 4, width: 490, height: 329 }));
  assert.equal(s.get(11).hints.incH, 13, 'a geometry update keeps the size hints');
  const out = s.apply(msg('WINDOW_GEOMETRY', { id: 5, x: 1, y: 1, width: 1, height: 1 }));
  assert.deepEqual(out.changed, []);
});

test('closing the last managed window says so, a menu does not count', () => {
  const s = twoApps();
  s.apply(msg('WINDOW_NEW', { id: 33, x: 0, y: 0, width: 10, height: 10, kind: 'tooltip' }));
  assert.equal(s.apply(msg('WINDOW_DESTROY', { id: 11 })).lastClosed, false);
  assert.equal(s.apply(msg('WINDOW_DESTROY', { id: 22 })).lastClosed, true);
  assert.equal(s.apply(msg('WINDOW_DESTROY', { id: 33 })).lastClosed, false);
});

test('close unanswered is remembered until the window goes', () => {
  const s = twoApps();
  assert.equal(s.apply(msg('WINDOW_CLOSE_UNANSWERED', { id: 22 })).unanswered, 22);
  assert.ok(s.unanswered.has(22));
  s.apply(msg('WINDOW_DESTROY', { id: 22 }));
  assert.ok(!s.unanswered.has(22));
});

test('reset then replay rebuilds the same windows without a last-closed flash', () => {
  const s = twoApps();
  s.apply(msg('WINDOW_METADATA', { id: 22, state: 'minimized' }));
  s.apply(msg('WINDOW_RESTACK', { order: [22, 11] }));
  const before = JSON.stringify([...s.windows.values()]);
  const reset = s.apply({ type: 'reset', fields: {} });
  assert.equal(reset.lastClosed, false);
  assert.deepEqual(reset.removed.sort(), [11, 22]);
  s.apply(msg('WINDOW_NEW', xterm));
  s.apply(msg('WINDOW_NEW', { ...xcalc, state: 'minimized' }));
  s.apply(msg('WINDOW_RESTACK', { order: [22, 11] }));
  assert.equal(JSON.stringify([...s.windows.values()]), before);
  assert.deepEqual(s.order, [22, 11]);
});

test('the mirror holds at most MAX_WINDOWS windows', () => {
  const s = new WindowState();
  for (let id = 1; id <= MAX_WINDOWS + 5; id += 1) s.apply(msg('WINDOW_NEW', { id, x: 0, y: 0, width: 1, height: 1 }));
  assert.equal(s.windows.size, MAX_WINDOWS);
  assert.equal(s.get(MAX_WINDOWS + 1), null);
  s.apply(msg('WINDOW_NEW', { id: 0, x: 0, y: 0, width: 1, height: 1 }));
  assert.equal(s.get(0), null);
});

test('size hints: increments snap down from the base, min and max clamp', () => {
  const hints = { base_width: 4, base_height: 4, width_inc: 6, height_inc: 13, min_width: 10, min_height: 17, max_width: 400, max_height: 0 };
  assert.deepEqual(constrainSize(hints, 300, 320), { width: 298, height: 316 }); // 4 + 49*6, 4 + 24*13
  assert.deepEqual(constrainSize(hints, 489, 320), { width: 400, height: 316 }); // clamped to max, still 4 + k*6
  assert.deepEqual(constrainSize(hints, 1, 1), { width: 10, height: 17 }); // the minimum, on the grid
  assert.deepEqual(constrainSize({}, 0, -5), { width: 1, height: 1 });
  assert.deepEqual(constrainSize({ max_width: 100, max_height: 50 }, 300, 300), { width: 100, height: 50 });
});

test('resize from a corner keeps the opposite corner; move clamps to X coordinates', () => {
  const start = { x: 100, y: 100, width: 200, height: 100 };
  assert.deepEqual(resizeRect(start, 'se', 50, 30, {}), { x: 100, y: 100, width: 250, height: 130 });
  assert.deepEqual(resizeRect(start, 'nw', 50, 30, {}), { x: 150, y: 130, width: 150, height: 70 });
  const snapped = resizeRect(start, 'nw', -7, 0, { width_inc: 10, base_width: 0 });
  assert.equal(snapped.x + snapped.width, 300, 'the east edge stays put');
  assert.equal(snapped.width % 10, 0);
  assert.deepEqual(moveRect(start, 300, 200), { x: 400, y: 300, width: 200, height: 100 });
  assert.equal(moveRect(start, -1e9, 0).x, -32768);
});

test('a replay without the windows we had (the last app exited during a drop) says the last one closed', () => {
  const s = twoApps();
  s.apply({ type: 'reset', fields: {} });
  s.apply(msg('WINDOW_RESTACK', { order: [] }));
  assert.equal(s.apply(msg('WINDOW_FOCUS', { window: 0 })).lastClosed, true);
  assert.equal(s.apply(msg('WINDOW_FOCUS', { window: 0 })).lastClosed, false, 'only the replay\'s focus');
  const fresh = new WindowState(); // a first connection with no windows yet: not a close
  fresh.apply({ type: 'reset', fields: {} });
  assert.equal(fresh.apply(msg('WINDOW_FOCUS', { window: 0 })).lastClosed, false);
  const back = twoApps(); // a replay that brings the windows back: not a close
  back.apply({ type: 'reset', fields: {} });
  back.apply(msg('WINDOW_NEW', xterm));
  assert.equal(back.apply(msg('WINDOW_FOCUS', { window: 11 })).lastClosed, false);
});

// Launching from the page: in a session whose display is xpra the page stays
// on the launcher, says where the windows are (and whether an xpra client is
// attached), and a launch says where the app opens; elsewhere a launch opens
// the session view as before. (The list and its icons are app-list.js and
// its tests.) Elements are recorders, so these run without a browser.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  AppLauncher, XPRA_DISPLAY, attachCommand, launchedBesideText, refusedText, xpraNotice,
} from '../js/launches.js';
import { CAPABILITIES } from '../js/connection.js';
import { Reason } from '../js/protocol.js';

const APPS = [
  { id: 'xcalc', name: 'XCalc', comment: 'calculator', categories: [], icon: 'xcalc' },
  { id: 'xterm', name: 'XTerm', comment: 'terminal', categories: [], icon: '' },
];

// Enough of an element for the launcher: text, hidden, dataset, and append() of a fake <code>.
function element() {
  return {
    hidden: true,
    dataset: {},
    text: '',
    get textContent() { return this.text; },
    set textContent(value) { this.text = String(value); },
    append(child) { this.text += child.text; },
  };
}

function launcherWithRecorders() {
  const sent = [];
  const said = [];
  const elements = { error: element(), notice: element() };
  const stale = [];
  const launcher = new AppLauncher(elements, (m) => sent.push(m), (text, kind = '') => said.push([text, kind]),
    () => stale.push(true), (text) => ({ text: `<code>${text}</code>` }));
  return { launcher, sent, said, elements, stale };
}

test('the web client says it cannot show an xpra display in its HELLO', () => {
  assert.ok(CAPABILITIES.includes('launch.beside-xpra'));
});

test('in an xpra session the notice says where the windows are and how to attach a client', () => {
  const { launcher, elements } = launcherWithRecorders();
  launcher.sessionReady(XPRA_DISPLAY, 'alice', 'host.example:8443');
  assert.equal(launcher.xpra, true);
  assert.equal(elements.notice.hidden, false);
  assert.match(elements.notice.textContent, /xpra client, not on this page/);
  assert.ok(elements.notice.textContent.endsWith('<code>svclient --server host.example:8443 --user alice xpra</code>'));
  launcher.setAttached(true);
  assert.match(elements.notice.textContent, /attached now: apps you start here open in it/);
  assert.ok(!elements.notice.textContent.includes('<code>'));
  assert.equal(elements.notice.dataset.attached, 'true');
  launcher.setAttached(false);
  assert.match(elements.notice.textContent, /No xpra client is attached now/);
  assert.match(elements.notice.textContent, /appear once you attach one\. To see them, attach one from a terminal: <code>svclient/);
  assert.equal(elements.notice.dataset.attached, 'false');
});

test('in a native session (or from an older server without display) there is no notice', () => {
  for (const display of ['native', '', undefined]) {
    const { launcher, elements } = launcherWithRecorders();
    elements.notice.hidden = false;
    launcher.sessionReady(display, 'alice', 'h:1');
    assert.equal(launcher.xpra, false);
    assert.equal(elements.notice.hidden, true);
    assert.equal(elements.notice.textContent, '');
  }
});

test('a launch in an xpra session stays on the launcher and says where the app opens', () => {
  const { launcher, sent, said } = launcherWithRecorders();
  launcher.sessionReady(XPRA_DISPLAY, 'alice', 'h:1');
  launcher.setAttached(true);
  launcher.launch(APPS[0]);
  const launch = sent.find((m) => m.name === 'LAUNCH');
  assert.deepEqual(launch.fields, { request: launch.fields.request, app: 'xcalc', args: [] });
  assert.equal(launcher.launched({ request: launch.fields.request, ok: true, code: 0, message: '', pid: 7 }), 'launcher');
  assert.deepEqual(said.at(-1), ['XCalc is running: it opens in your xpra client', '']);
  launcher.setAttached(false);
  launcher.launch(APPS[0]);
  const again = sent.at(-1).fields.request;
  assert.equal(launcher.launched({ request: again, ok: true, code: 0, message: '', pid: 8 }), 'launcher');
  assert.match(said.at(-1)[0], /appears once you attach an xpra client/);
});

test('a launch in a native session opens the session view', () => {
  const { launcher, sent } = launcherWithRecorders();
  launcher.sessionReady('native', 'alice', 'h:1');
  launcher.launch(APPS[1]);
  const request = sent.at(-1).fields.request;
  assert.equal(launcher.launched({ request, ok: true, code: 0, message: '', pid: 9 }), 'session');
});

test('a refused launch shows why on the launcher, in either mode', () => {
  for (const display of [XPRA_DISPLAY, 'native']) {
    const { launcher, sent, said, elements } = launcherWithRecorders();
    launcher.sessionReady(display, 'alice', 'h:1');
    launcher.launch(APPS[0]);
    const request = sent.at(-1).fields.request;
    const view = launcher.launched({ request, ok: false, code: Reason.NOT_ENTITLED, message: 'no', pid: 0 });
    assert.equal(view, 'launcher');
    assert.equal(elements.error.hidden, false);
    assert.equal(elements.error.textContent, 'You are not allowed to start XCalc.');
    assert.deepEqual(said.at(-1), ['You are not allowed to start XCalc.', 'error']);
  }
});

test('a launch refused as an unknown app asks for the list again', () => {
  const { launcher, sent, stale } = launcherWithRecorders();
  launcher.sessionReady('native', 'alice', 'h:1');
  launcher.launch(APPS[0]);
  launcher.launched({ request: sent.at(-1).fields.request, ok: false, code: Reason.UNKNOWN_APP, message: '', pid: 0 });
  assert.equal(stale.length, 1);
});

test('texts', () => {
  assert.equal(attachCommand('[::1]:9', 'bob'), 'svclient --server [::1]:9 --user bob xpra');
  assert.deepEqual(xpraNotice(null), {
    text: 'This session shows its windows in your xpra client, not on this page. To see them, attach one from a terminal: ',
    command: true,
  });
  assert.match(launchedBesideText('A', null), /appears once you attach/);
  assert.equal(refusedText('A', { code: Reason.UNKNOWN_APP, message: '' }),
    'A is no longer published.');
  assert.equal(refusedText('A', { code: 99, message: 'boom' }), 'A could not start: boom');
});

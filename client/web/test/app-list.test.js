// The launcher follows the catalog: APPS_CHANGED makes the page ask for the
// list again in the locale of its first request, icons are asked only for
// apps that have none yet (a new app, a changed icon name), and the HELLO
// says the capability that makes the server send the notice.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { APPS_CHANGED_CAPABILITY, ICON_CSS_PX, PublishedApps } from '../js/app-list.js';
import { CAPABILITIES } from '../js/connection.js';

function app(id, icon = '') {
  return { id, name: id.toUpperCase(), comment: '', categories: [], icon };
}

function make() {
  const sent = [];
  const drawn = [];
  const icons = [];
  const apps = new PublishedApps({
    send: (message) => sent.push(message),
    render: (list) => {
      drawn.push(list.map((a) => a.id));
      return new Map(list.map((a) => [a.id, { id: a.id }]));
    },
    setIcon: (entry, data) => icons.push([entry.id, data]),
    pixelRatio: () => 2,
  });
  return { apps, sent, drawn, icons };
}

const asked = (sent, name) => sent.filter((m) => m.name === name);

test('the page says the capability in HELLO', () => {
  assert.ok(CAPABILITIES.includes(APPS_CHANGED_CAPABILITY));
});

test('APPS_CHANGED asks again in the same locale; only new icons are asked', () => {
  const { apps, sent, drawn, icons } = make();
  apps.request('de_DE.UTF-8');
  assert.deepEqual(sent, [{ name: 'APP_LIST_REQUEST', fields: { locale: 'de_DE.UTF-8' } }]);
  assert.ok(apps.handle({ name: 'APP_LIST', fields: { apps: [app('xterm', 'terminal'), app('xcalc')] } }));
  assert.deepEqual(asked(sent, 'ICON_REQUEST').map((m) => m.fields), [{ request: 1, app: 'xterm', size: ICON_CSS_PX * 2 }]);
  apps.handle({ name: 'ICON', fields: { request: 1, app: 'xterm', size: 96, ok: true, data: 'UE5H', code: 0, message: '' } });
  assert.deepEqual(icons, [['xterm', 'UE5H']]);

  assert.ok(apps.handle({ name: 'APPS_CHANGED', fields: {} }));
  assert.deepEqual(asked(sent, 'APP_LIST_REQUEST').at(-1).fields, { locale: 'de_DE.UTF-8' });
  apps.handle({ name: 'APP_LIST', fields: { apps: [app('newclock', 'clock'), app('xterm', 'terminal')] } });
  assert.deepEqual(drawn.at(-1), ['newclock', 'xterm']);
  assert.deepEqual(asked(sent, 'ICON_REQUEST').map((m) => m.fields.app), ['xterm', 'newclock']);
  assert.deepEqual(icons.at(-1), ['xterm', 'UE5H']); // the known icon drawn again at once

  apps.handle({ name: 'APPS_CHANGED', fields: {} });
  apps.handle({ name: 'APP_LIST', fields: { apps: [app('xterm', 'other-terminal')] } });
  assert.deepEqual(asked(sent, 'ICON_REQUEST').map((m) => m.fields.app), ['xterm', 'newclock', 'xterm']);
  assert.equal(apps.entry('newclock'), undefined);
  assert.equal(apps.notices, 2);
});

test('an icon for an app no longer listed is dropped; other messages are not taken', () => {
  const { apps, icons } = make();
  apps.handle({ name: 'APP_LIST', fields: { apps: [app('xterm')] } });
  apps.handle({ name: 'ICON', fields: { request: 9, app: 'gone', size: 96, ok: true, data: 'UE5H', code: 0, message: '' } });
  assert.deepEqual(icons, []);
  assert.equal(apps.handle({ name: 'LAUNCH_RESULT', fields: {} }), false);
});

// Following a farm redirect: the target URL is built only from a well-formed
// redirect and ticket, and the target page takes the ticket out of its
// address bar before using it (single use, never left in history).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  MAX_NOTICE, NOTICE_KEY, TICKET_KEY, USER_KEY,
  firstAuth, loggedInText, redirectTarget, redirectUrl, refusalText, takeTicket,
} from '../js/login.js';
import { Reason } from '../js/protocol.js';

const TICKET = 'A'.repeat(20) + '-_' + 'z'.repeat(21); // 43 URL-safe characters

class FakeHistory {
  constructor() {
    this.urls = [];
  }

  replaceState(_state, _title, url) {
    this.urls.push(url);
  }
}

class FakeStorage {
  constructor(items = {}) {
    this.items = { ...items };
  }

  getItem(key) {
    return key in this.items ? this.items[key] : null;
  }

  setItem(key, value) {
    this.items[key] = String(value);
  }
}

const STORE = { user: 'u', token: 't' };

test('a redirect becomes the other host\'s page with user and ticket in the fragment only', () => {
  const url = new URL(redirectUrl('10.0.0.2:4443', 'alice', TICKET));
  assert.equal(url.origin, 'https://10.0.0.2:4443');
  assert.equal(url.pathname, '/web/');
  assert.equal(url.search, '');
  const params = new URLSearchParams(url.hash.slice(1));
  assert.equal(params.get(USER_KEY), 'alice');
  assert.equal(params.get(TICKET_KEY), TICKET);
  assert.equal(new URL(redirectUrl('b.farm.example:443', 'bob', TICKET)).host, 'b.farm.example');
  assert.equal(new URL(redirectUrl('[fd00::2]:4443', 'bob', TICKET)).hostname, '[fd00::2]');
});

test('a malformed redirect or ticket is not followed', () => {
  for (const bad of ['', 'host', 'host:0', 'host:70000', 'evil.example/x:1', 'a@b:1', 'x:1/path', '-x:1']) {
    assert.equal(redirectUrl(bad, 'alice', TICKET), null, bad);
  }
  assert.equal(redirectUrl('h:1', 'alice', TICKET.slice(1)), null);
  assert.equal(redirectUrl('h:1', 'alice', `${TICKET.slice(1)}+`), null);
  assert.equal(redirectUrl('h:1', '', TICKET), null);
  assert.equal(redirectUrl('h:1', 'x'.repeat(257), TICKET), null);
});

test('the target page takes the ticket and clears it from the address bar first', () => {
  const history = new FakeHistory();
  const hash = `#${new URLSearchParams({ [USER_KEY]: 'alice', [TICKET_KEY]: TICKET })}`;
  const storage = new FakeStorage({ t: 'old-token' });
  const { auth, notice } = firstAuth({ hash, pathname: '/web/', search: '' }, history, storage, STORE);
  assert.deepEqual(auth, { method: 'ticket', user: 'alice', token: TICKET });
  assert.equal(notice, '');
  assert.deepEqual(history.urls, ['/web/']);
  assert.equal(storage.getItem('u'), 'alice');
});

test('a bad fragment is still cleared and falls back to the resume token or the form', () => {
  const history = new FakeHistory();
  const hash = `#${new URLSearchParams({ [USER_KEY]: 'alice', [TICKET_KEY]: 'short' })}`;
  assert.equal(takeTicket({ hash, pathname: '/web/', search: '' }, history), null);
  assert.deepEqual(history.urls, ['/web/']);
  const storage = new FakeStorage({ u: 'bob', t: 'tok' });
  assert.deepEqual(firstAuth({ hash: '', pathname: '/web/', search: '' }, history, storage, STORE),
    { auth: { method: 'resume', user: 'bob', token: 'tok' }, notice: '' });
  assert.equal(firstAuth({ hash: '#x', pathname: '/web/', search: '' }, history, new FakeStorage(), STORE).auth, null);
  assert.equal(history.urls.length, 1); // no ticket key: the fragment is not ours to touch
});

test('refusals say what happened, by method', () => {
  const failed = { code: Reason.AUTH_FAILED, message: 'the redirect ticket is invalid, used or expired; log in again' };
  assert.equal(refusalText(failed, 'password'), 'Wrong user name or password.');
  assert.match(refusalText(failed, 'resume'), /automatic login expired/);
  assert.equal(refusalText(failed, 'ticket'), `Login refused: ${failed.message}`);
  assert.match(refusalText({ code: Reason.SESSION_UNAVAILABLE, message: 'full' }, 'password'), /could not start: full/);
});

test('the redirecting host\'s message travels along (bounded) and is said once logged in', () => {
  const said = 'Your previous session (s1) was on host b, which stopped answering; it is lost. This is a new session.';
  const url = new URL(redirectUrl('h:1', 'alice', TICKET, said));
  const history = new FakeHistory();
  const { notice } = firstAuth({ hash: url.hash, pathname: '/web/', search: '' }, history, new FakeStorage(), STORE);
  assert.equal(notice, said);
  assert.equal(loggedInText('Connected', 'alice', notice), `Connected as alice. ${said}`);
  assert.equal(loggedInText('Connected', 'alice', ''), 'Connected as alice');
  const long = new URL(redirectUrl('h:1', 'alice', TICKET, 'x'.repeat(MAX_NOTICE + 50)));
  assert.equal(new URLSearchParams(long.hash.slice(1)).get(NOTICE_KEY).length, MAX_NOTICE);
});

test('only a password login follows a redirect: one hop, never from a ticket or resume login', () => {
  const f = { ok: false, code: Reason.SESSION_UNAVAILABLE, user: 'alice', redirect: 'h:1', ticket: TICKET, message: 'm' };
  assert.equal(new URL(redirectTarget(f, 'password')).host, 'h:1');
  assert.equal(redirectTarget(f, 'ticket'), null);
  assert.equal(redirectTarget(f, 'resume'), null);
  assert.equal(redirectTarget({ ...f, redirect: '' }, 'password'), null);
  assert.equal(redirectTarget({ ...f, ok: true }, 'password'), null);
});

// How a login starts and what its refusal says: with a farm redirect's ticket
// (below), a resume token, or the login form; and the text for each refusal.
//
// Following a farm redirect in the browser (docs/farm.md, "Web client").
// Why a page navigation to the other host, not a WebSocket from this page to
// it: the page may only talk to its own origin (our CSP says connect-src
// 'self', and every host refuses cross-origin WebSockets), a browser cannot
// be told to trust the other host's certificate from a page, and a failed
// cross-origin wss:// handshake gives the page no reason to show. Navigating
// to https://HOST:PORT/web/ of the host that holds the session keeps every
// host's own-origin rules, lets the browser judge that host's certificate as
// it judges any site (a farm certificate from the site's CA: no prompt), and
// leaves the user on the host of their session for reconnects and resumes.
//
// The single-use ticket travels in the URL fragment, which browsers never
// send to a server (no access logs, no Referer); the page on the target reads
// it once, removes it from the address bar and history entry at once, and
// logs in with it. An unused ticket expires in seconds ([farm] ticket_ttl).

import { Reason } from './protocol.js';

// The fragment keys; the target page takes both or neither.
export const USER_KEY = 'farm-user';
export const TICKET_KEY = 'farm-ticket';
export const NOTICE_KEY = 'farm-notice';
// A ticket as the server makes it: URL-safe base64 of 32 bytes (sessiond/farm/tickets.py).
const TICKET_RE = /^[A-Za-z0-9_-]{43}$/;
// HOST:PORT as a farm host advertises itself: a DNS name or IPv4 address, or [IPv6].
const ADDRESS_RE = /^(?:[A-Za-z0-9](?:[A-Za-z0-9.-]{0,252})|\[[0-9A-Fa-f:.]{2,45}\]):(\d{1,5})$/;
// Longest user name put into the fragment (the server's own limit is lower).
const MAX_USER = 256;
// Longest notice carried to the other host's page (what the redirecting host said: a lost
// session, where the session is); longer ones are cut.
export const MAX_NOTICE = 1000;

/**
 * The URL of the web client on the host named by an AUTH_RESULT redirect, with the user, ticket
 * and NOTICE (the redirect's message) in its fragment; null when the redirect is malformed (then
 * the message is shown here instead).
 */
export function redirectUrl(redirect, user, ticket, notice = '') {
  const match = ADDRESS_RE.exec(String(redirect || ''));
  if (!match || Number(match[1]) < 1 || Number(match[1]) > 65535) return null;
  if (!TICKET_RE.test(String(ticket || '')) || !user || String(user).length > MAX_USER) return null;
  const fragment = new URLSearchParams({ [USER_KEY]: user, [TICKET_KEY]: ticket });
  if (notice) fragment.set(NOTICE_KEY, String(notice).slice(0, MAX_NOTICE));
  return `https://${redirect}/web/#${fragment}`;
}

/** Where AUTH_RESULT F sends a login made with METHOD: only a password login follows (one hop). */
export function redirectTarget(f, method) {
  return !f.ok && method === 'password' && f.redirect ? redirectUrl(f.redirect, f.user, f.ticket, f.message) : null;
}

/**
 * The {user, ticket, notice} a redirect left in this page's fragment, or null. The fragment is removed
 * from the address bar and the history entry before anything else happens (single use).
 */
export function takeTicket(location, history) {
  const hash = String(location.hash || '');
  if (!hash.includes(TICKET_KEY)) return null;
  const params = new URLSearchParams(hash.slice(1));
  history.replaceState(null, '', `${location.pathname}${location.search}`);
  const user = params.get(USER_KEY) || '';
  const ticket = params.get(TICKET_KEY) || '';
  if (!user || user.length > MAX_USER || !TICKET_RE.test(ticket)) return null;
  return { user, ticket, notice: (params.get(NOTICE_KEY) || '').slice(0, MAX_NOTICE) };
}

/**
 * The first AUTH of this page and what to tell the user once logged in: a redirect's ticket left in
 * the fragment (removed at once) with the redirecting host's notice, else the resume token of this
 * tab (STORE names the sessionStorage keys), else a null auth (show the login form).
 */
export function firstAuth(location, history, storage, store) {
  const arrival = takeTicket(location, history);
  if (arrival) {
    storage.setItem(store.user, arrival.user);
    return { auth: { method: 'ticket', user: arrival.user, token: arrival.ticket }, notice: arrival.notice };
  }
  const token = storage.getItem(store.token);
  return { auth: token ? { method: 'resume', user: storage.getItem(store.user) || '', token } : null, notice: '' };
}

/** The status line once logged in as USER: with what the server (or the redirecting host) said. */
export function loggedInText(verb, user, notice) {
  return notice ? `${verb} as ${user}. ${notice}` : `${verb} as ${user}`;
}

/** What the login page says when AUTH_RESULT F refused a login made with METHOD. */
export function refusalText(f, method) {
  const text = {
    [Reason.AUTH_FAILED]: {
      resume: 'Your session is still running, but the automatic login expired; please log in again.',
      password: 'Wrong user name or password.',
    }[method] || `Login refused: ${f.message}`,
    [Reason.RATE_LIMITED]: 'Too many failed logins from this address; wait a minute and try again.',
    [Reason.NOT_ENTITLED]: `This account may not use sessions: ${f.message}`,
    [Reason.SESSION_UNAVAILABLE]: `Your session could not start: ${f.message}`,
  }[f.code];
  return text || `Login refused: ${f.message}`;
}

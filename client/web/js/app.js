// The web client's pages and their flow: login, the launcher, the session
// view, the status line, and reconnecting by itself after a network drop.
//
// Why this flow: a session outlives its connection, so losing the WebSocket
// is not an error but a moment to reconnect with the single-use resume token
// that the last AUTH_RESULT handed out. The token lives in sessionStorage
// (this tab only, gone when the tab closes), never in a URL or a cookie, and
// is replaced at every login. Everything that takes time shows in the status
// line; everything that fails says what happened and what to do.

import { PublishedApps } from './app-list.js';
import { AudioControls } from './audio-controls.js';
import { ClipboardBridge } from './clipboard.js';
import { FileBridge } from './files.js';
import { SessionConnection } from './connection.js';
import { Screen } from './display.js';
import { firstAuth, loggedInText, redirectTarget, refusalText } from './login.js';
import { InputBinding } from './input.js';
import { appIconUrl, renderApps, setAppIcon } from './launcher.js';
import { AppLauncher } from './launches.js';
import { KIND_MAX_PAYLOAD, Kind, Reason } from './protocol.js';
import { TITLE_HEIGHT, WindowsView } from './windows.js';
import { CODEC_H264, h264Supported } from './video.js';
import { CODEC_TILE, withHeldAck } from './tile.js';
import { CODEC_GLYPHS } from './glyphs.js';

const DISPLAY = 1;
const INPUT = 2;
const WINDOWS = 7;
// Seamless mode needs a server whose message table has the windows channel.
const HAS_WINDOWS = String(Kind.WINDOWS) in KIND_MAX_PAYLOAD;
// Reconnect back-off: first retry quickly, then double up to a ceiling; give up after MAX_RECONNECTS.
const RECONNECT_FIRST_MS = 300;
const RECONNECT_MAX_MS = 8000;
const MAX_RECONNECTS = 30;
const NO_APPS = 'No applications are published to you.';
const STORE = { user: 'sessiond.user', token: 'sessiond.token', view: 'sessiond.view' };
// The session follows the window: RESIZE_REQUEST once the window has been still this long
// (the server coalesces too, but a drag should not make it resize at every frame).
const RESIZE_DEBOUNCE_MS = 150;
// RESIZE_REQUEST carries u16 sides; the server clamps to what it supports.
const MAX_SIDE = 65535;

const $ = (id) => document.getElementById(id);
const views = { login: $('login-view'), launcher: $('launcher-view'), session: $('session-view') };

class WebClient {
  constructor() {
    this.conn = null;
    this.apps = new PublishedApps({ // app-list.js: the launcher follows the server's catalog
      send: (message) => this.conn?.send(0, message),
      render: (apps) => renderApps($('apps'), apps, (app) => this.launcher.launch(app)),
      setIcon: setAppIcon,
      shown: (apps) => this.showApps(apps),
      pixelRatio: () => window.devicePixelRatio || 1,
    });
    this.reconnects = 0;
    this.leaving = false;
    this.authenticated = false;
    this.method = '';
    this.notice = '';
    this.canvas = $('screen');
    this.desktop = $('desktop');
    this.mode = 'desktop'; // 'seamless' once the server opens the windows channel
    this.windows = new WindowsView(this.desktop, $('taskbar'), {
      request: (name, fields) => this.conn?.isOpen(WINDOWS) && this.conn.send(WINDOWS, { name, fields }),
      appIcon: (appId) => appIconUrl(this.apps.entry(appId)),
      onLastClosed: () => this.show('launcher'),
    });
    window.sessiondWindows = this.windows; // tests and debugging read the mirrored state here
    this.screen = null;
    this.input = null;
    this.firstFrameSeen = false;
    this.audio = new AudioControls($('speaker'), $('mic'), (text, kind) => this.status(text, kind));
    window.sessiondAudio = this.audio; // tests and debugging read stats() and recentSamples() here
    const say = (text, kind) => this.status(text, kind);
    this.launcher = new AppLauncher({ error: $('launcher-error'), notice: $('xpra-notice') },
      (message) => this.conn?.send(0, message), say, () => this.apps.request()); // launches.js: launches, xpra sessions
    this.transfers = [new ClipboardBridge($('clip-copy'), $('clip-paste'), say, $('clip-paste-box')),
      new FileBridge(document.body, say)]; // clipboard.js, files.js
    $('login-form').addEventListener('submit', (event) => {
      event.preventDefault();
      this.login($('user').value.trim(), $('password').value);
    });
    $('show-apps').addEventListener('click', () => this.show('launcher'));
    $('show-session').addEventListener('click', () => this.openSession());
    $('logoff').addEventListener('click', () => this.logoff());
    $('taskbar').addEventListener('click', () => {
      if (document.body.dataset.view === 'launcher') this.show('session');
    });
    this.resizeTimer = 0;
    window.addEventListener('resize', () => {
      this.fit();
      this.requestResize();
    });
    this.canvas.addEventListener('desktopresize', () => this.fit());
  }

  start() {
    const { auth, notice } = firstAuth(window.location, window.history, sessionStorage, STORE); // login.js
    this.notice = notice; // what the host that sent us here said (a lost session, where we are)
    return auth ? this.connect(auth) : this.showLogin('');
  }

  // -- views and status ------------------------------------------------------------
  status(text, kind = '') {
    const line = $('status');
    line.textContent = text;
    line.className = kind;
  }

  show(name) {
    for (const [key, el] of Object.entries(views)) el.hidden = key !== name;
    document.body.dataset.view = name;
    $('show-apps').hidden = name !== 'session';
    $('show-session').hidden = name !== 'launcher' || !this.conn?.isOpen(DISPLAY);
    $('logoff').hidden = name === 'login';
    const media = name !== 'login' && !this.launcher.xpra; // an xpra client has its own sound and clipboard
    this.audio.setVisible(media);
    this.transfers[0].setVisible(media);
    if (name !== 'login') sessionStorage.setItem(STORE.view, name);
    $('taskbar').hidden = name === 'login' || this.windows.state.taskbar().length === 0;
    if (name === 'session') {
      this.fit();
      this.requestResize();
      (this.mode === 'seamless' ? this.desktop : this.canvas).focus();
    }
  }

  showLogin(error) {
    this.show('login');
    this.status(error ? 'Not logged in' : 'Please log in', error ? 'error' : '');
    const box = $('login-error');
    box.textContent = error;
    box.hidden = !error;
    $('login-button').disabled = false;
    $('password').value = '';
    $(sessionStorage.getItem(STORE.user) ? 'password' : 'user').focus();
  }

  /** Draw the canvas 1:1 when the session fits the window, else scale it down (aspect kept). */
  fit() {
    if (this.mode === 'seamless') return; // windows sit 1:1 on the desktop
    const box = views.session.getBoundingClientRect();
    const { width, height } = this.canvas;
    if (!width || !height || !box.width || !box.height) return;
    const scale = Math.min(1, box.width / width, box.height / height);
    this.canvas.style.width = `${Math.floor(width * scale)}px`;
    this.canvas.style.height = `${Math.floor(height * scale)}px`;
  }

  /** The session's size in CSS pixels that fills the session view. */
  wantedSize() {
    const box = (this.mode === 'seamless' ? this.desktop : views.session).getBoundingClientRect();
    return { width: Math.min(MAX_SIDE, Math.floor(box.width)), height: Math.min(MAX_SIDE, Math.floor(box.height)) };
  }

  /** Ask the session to take the window's size, once the window has stopped changing. */
  requestResize(delay = RESIZE_DEBOUNCE_MS) {
    clearTimeout(this.resizeTimer);
    this.resizeTimer = setTimeout(() => {
      const { width, height } = this.wantedSize();
      if (!this.conn?.isOpen(DISPLAY) || views.session.hidden || width < 1 || height < 1) return;
      if (width === this.canvas.width && height === this.canvas.height) return;
      this.conn.send(DISPLAY, { name: 'RESIZE_REQUEST', fields: { width, height } });
    }, delay);
  }

  // -- connection --------------------------------------------------------------------
  login(user, password) {
    $('login-button').disabled = true;
    sessionStorage.setItem(STORE.user, user);
    sessionStorage.removeItem(STORE.view);
    this.connect({ method: 'password', user, password });
  }

  connect(auth) {
    this.method = auth.method;
    this.authenticated = false;
    this.status(this.reconnects ? 'Reconnecting…' : 'Connecting to the server…', 'busy');
    const url = new URL('/ws', window.location.href);
    url.protocol = url.protocol === 'http:' ? 'ws:' : 'wss:';
    const conn = new SessionConnection(url.href, {
      onOpen: () => {
        this.status(auth.method === 'resume' ? 'Resuming your session…' : 'Logging in and starting your session…', 'busy');
        conn.send(0, { name: 'AUTH', fields: auth });
      },
      onMessage: (channel, kind, message, cost) => this.onMessage(conn, channel, kind, message, cost),
      onClose: (info) => this.onClose(conn, info),
    });
    this.conn = conn;
    this.audio.attach(conn);
    for (const t of this.transfers) t.attach(conn);
    conn.connect();
  }

  onClose(conn, info) {
    if (conn !== this.conn) return;
    this.input?.releaseKeys();
    if (this.leaving) {
      this.leaving = false;
      this.showLogin('');
      this.status('Logged off');
      return;
    }
    const fatal = [Reason.AUTH_FAILED, Reason.RATE_LIMITED, Reason.NOT_ENTITLED, Reason.SESSION_UNAVAILABLE];
    if (info.byServer && fatal.includes(info.code)) return; // AUTH_RESULT already explained it
    if (!sessionStorage.getItem(STORE.token)) {
      this.showLogin(info.wasOpen ? `The connection ended: ${info.message || 'closed by the server'}.`
        : `Cannot reach the server at ${window.location.host}. Check your network and try again.`);
      return;
    }
    this.scheduleReconnect(info);
  }

  scheduleReconnect(info) {
    if (this.reconnects >= MAX_RECONNECTS) {
      this.showLogin(`Lost the connection to ${window.location.host} and could not get it back. Your session keeps running; log in to resume it.`);
      return;
    }
    const delay = Math.min(RECONNECT_MAX_MS, RECONNECT_FIRST_MS * 2 ** this.reconnects);
    this.reconnects += 1;
    const why = info.byServer && info.message ? info.message : 'connection lost';
    this.status(`${why[0].toUpperCase()}${why.slice(1)}; reconnecting in ${(delay / 1000).toFixed(1)} s…`, 'busy');
    setTimeout(() => {
      const token = sessionStorage.getItem(STORE.token);
      if (token) this.connect({ method: 'resume', user: sessionStorage.getItem(STORE.user) || '', token });
      else this.showLogin('');
    }, delay);
  }

  logoff() {
    this.leaving = true;
    sessionStorage.removeItem(STORE.token);
    sessionStorage.removeItem(STORE.view);
    this.status('Logging off…', 'busy');
    if (!this.conn?.send(0, { name: 'LOGOFF', fields: {} })) this.conn?.drop();
  }

  // -- messages ------------------------------------------------------------------------
  onMessage(conn, channel, kind, message, cost) {
    if (conn !== this.conn) return;
    if (kind === Kind.DISPLAY) {
      this.screen.handle(message, () => conn.consumed(DISPLAY, cost));
      return;
    }
    if (kind === Kind.INPUT) {
      conn.consumed(INPUT, cost);
      return;
    }
    if (kind === Kind.WINDOWS) {
      // A seamless server starts every windows channel with its replay (at least WINDOW_RESTACK and
      // WINDOW_FOCUS); a desktop-mode server accepts the open and closes the channel, sending nothing.
      if (this.mode !== 'seamless') this.setMode('seamless');
      this.windows.handle(message);
      conn.consumed(WINDOWS, cost);
      return;
    }
    if (this.audio.handle(conn, channel, kind, message, cost)) return;
    if (this.audio.control(conn, message)) return; // CHANNEL_OPENED/REFUSED of audio channels
    if (this.transfers.some((t) => t.handle(conn, channel, kind, message, cost) || t.control(conn, message))) return;
    if (this.apps.handle(message)) return; // APP_LIST, ICON, APPS_CHANGED
    const f = message.fields;
    switch (message.name) {
      case 'AUTH_RESULT':
        this.onAuthResult(f);
        break;
      case 'LAUNCH_RESULT':
        if (this.launcher.launched(f) === 'session') this.openSession();
        else this.show('launcher');
        break;
      case 'SESSION_ATTACHED':
        this.launcher.setAttached(f.attached);
        break;
      case 'CHANNEL_OPENED':
        if (f.channel === DISPLAY && !this.firstFrameSeen) this.status('Waiting for the first picture…', 'busy');
        if (f.channel === DISPLAY) this.requestResize(0);
        if (f.channel === DISPLAY) this.announceVideo();
        break;
      case 'CHANNEL_REFUSED':
        if (f.channel === DISPLAY) this.status(`The session's display is unavailable: ${f.message}`, 'error');
        if (f.channel === WINDOWS && this.mode !== 'desktop') this.setMode('desktop');
        break;
      case 'ERROR':
        this.status(f.message, 'error');
        break;
      default:
        break;
    }
  }

  onAuthResult(f) {
    const there = redirectTarget(f, this.method); // the session is on another farm host: go there (login.js)
    if (there) {
      this.status(`${f.message} Going there…`, 'busy');
      window.location.assign(there);
      return;
    }
    if (!f.ok) {
      sessionStorage.removeItem(STORE.token);
      this.showLogin(refusalText(f, this.method));
      return;
    }
    this.authenticated = true;
    this.reconnects = 0;
    if (f.resume_token) sessionStorage.setItem(STORE.token, f.resume_token);
    sessionStorage.setItem(STORE.user, f.user);
    this.notice = f.message || this.notice; // e.g. "your previous session on host B was lost"
    this.status(loggedInText('Logged in', f.user, this.notice));
    this.launcher.sessionReady(f.display, f.user, window.location.host); // xpra: this page only launches
    if (!this.launcher.xpra) {
      this.audio.sessionReady();
      for (const t of this.transfers) t.sessionReady();
    }
    const lang = (navigator.language || '').replace('-', '_');
    this.apps.request(lang ? `${lang}.UTF-8` : ''); // again at every resume: changes while away are seen
    if (sessionStorage.getItem(STORE.view) === 'session' && !this.launcher.xpra) this.openSession();
    else this.show('launcher');
  }

  /** After each list: say so when it is empty (a launch's error stays until the next launch). */
  showApps(apps) {
    const box = $('launcher-error');
    if (apps.length === 0) [box.textContent, box.hidden] = [NO_APPS, false];
    else if (box.textContent === NO_APPS) [box.textContent, box.hidden] = ['', true];
  }

  /** VIDEO_CAPS: H264 regions only if this browser's WebCodecs decodes H.264 (else JPEG/PNG stills); TILE, GLYPHS always. */
  announceVideo() {
    this.videoCodecs ??= h264Supported().then((ok) => (ok ? CODEC_H264 : 0) | CODEC_TILE | CODEC_GLYPHS);
    this.videoCodecs.then((codecs) => {
      this.canvas.dataset.videoCodecs = String(codecs);
      if (this.conn?.isOpen(DISPLAY)) this.conn.send(DISPLAY, { name: 'VIDEO_CAPS', fields: { codecs } });
    });
  }

  openSession() {
    if (!this.conn.isOpen(DISPLAY)) {
      const conn = this.conn;
      this.firstFrameSeen = false;
      this.screen?.video.close();
      this.screen = new Screen(this.canvas, { // an undrawable region ends the connection (protocol.md 7c)
        onFrame: (seq, ackNow) => this.onFrame(seq, ackNow),
        onError: (text) => { this.status(text, 'error'); if (conn === this.conn) conn.close(Reason.MALFORMED_MESSAGE, text); },
        targetFor: (id, width, height) => this.windows.target(id, width, height),
      });
      this.windows.reset(); // the windows channel replays every window
      // Input for this connection, in the mode we last saw (first time: desktop); the windows
      // channel's replay switches to seamless, its refusal back to desktop.
      this.setMode(HAS_WINDOWS ? this.mode : 'desktop');
      this.status('Opening the session display…', 'busy');
      this.conn.openChannel(DISPLAY, Kind.DISPLAY);
      this.conn.openChannel(INPUT, Kind.INPUT);
      if (HAS_WINDOWS) this.conn.openChannel(WINDOWS, Kind.WINDOWS);
    }
    this.show('session');
  }

  /** Seamless (windows on the desktop element) or desktop (one canvas): input follows the mode. */
  setMode(mode) {
    this.mode = mode;
    document.body.dataset.mode = mode;
    this.canvas.hidden = mode === 'seamless';
    this.desktop.hidden = mode !== 'seamless';
    this.input?.detach();
    const conn = this.conn;
    const send = (message) => conn.send(INPUT, withHeldAck(message, conn.held, DISPLAY));
    if (mode === 'seamless') {
      this.input = new InputBinding(this.desktop, send, { position: (event) => this.windows.pointerTarget(event) });
      this.desktop.style.top = `${TITLE_HEIGHT}px`;
      this.requestResize(0);
    } else {
      this.input = new InputBinding(this.canvas, send);
      this.fit();
      this.requestResize(0); // the session fills the whole view again
    }
  }

  /** A frame is drawn: ack it at once if the server waits for it, else with our next write (a keystroke). */
  onFrame(seq, ackNow) {
    const ack = { name: 'FRAME_ACK', fields: { seq } };
    if (ackNow) {
      this.conn.held.delete(DISPLAY);
      this.conn.send(DISPLAY, ack);
    } else {
      this.conn.hold(DISPLAY, ack);
    }
    this.canvas.dataset.frames = String(this.screen.frames);
    this.canvas.dataset.videoFrames = String(this.screen.video.frames);
    this.canvas.dataset.glyphRegions = String(this.screen.glyphs.regions);
    if (!this.firstFrameSeen) {
      this.firstFrameSeen = true;
      this.canvas.dataset.firstFrameMs = String(Math.round(performance.now()));
      this.status(loggedInText('Connected', sessionStorage.getItem(STORE.user), this.notice));
      this.notice = ''; // said once
    }
  }
}

new WebClient().start();

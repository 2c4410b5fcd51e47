// Launching from the page: the LAUNCH requests and what their results say,
// and the page as a launcher for a session whose display is xpra. (Which
// apps are listed, and their icons, is app-list.js.)
//
// Why the xpra mode: an xpra session's windows are drawn by the user's own
// xpra client (`svclient xpra`), never by this page, and the server keeps
// this page beside that client instead of taking the session from it (HELLO
// capability launch.beside-xpra; AUTH_RESULT says display "xpra";
// SESSION_ATTACHED says whether an xpra client is attached now). So in such a
// session the page stays on the launcher, says where the windows are, and a
// launch leaves the page where it is: the app opens in the xpra client, or
// once one attaches. The grid itself (buttons, icons) is launcher.js.

import { Reason } from './protocol.js';

// AUTH_RESULT's display of such a session (connection.js says the HELLO capability).
export const XPRA_DISPLAY = 'xpra';
/** The command that attaches an xpra client to this session, for USER on the server at HOST (this page's). */
export function attachCommand(host, user) {
  return `svclient --server ${host} --user ${user} xpra`;
}

/**
 * What the launcher says in an xpra session: ATTACHED true, false, or null before the server said;
 * `command` is shown after the text (as code) unless a client is attached.
 */
export function xpraNotice(attached) {
  const where = 'This session shows its windows in your xpra client, not on this page.';
  if (attached === true) return { text: `${where} An xpra client is attached now: apps you start here open in it.`, command: false };
  const attach = 'To see them, attach one from a terminal:';
  const now = attached === false ? ' No xpra client is attached now: apps you start here run in the session and appear once you attach one.' : '';
  return { text: `${where}${now} ${attach} `, command: true };
}

/** The status line once NAME started in an xpra session (ATTACHED as the server last said). */
export function launchedBesideText(name, attached) {
  return attached === true ? `${name} is running: it opens in your xpra client`
    : `${name} is running in your session: it appears once you attach an xpra client`;
}

/** TEXT as a <code> element (the page's; tests pass their own). */
function codeOf(text) {
  const code = document.createElement('code');
  code.textContent = text;
  return code;
}

/** What a refused launch of NAME says, from its LAUNCH_RESULT F. */
export function refusedText(name, f) {
  return {
    [Reason.NOT_ENTITLED]: `You are not allowed to start ${name}.`,
    [Reason.UNKNOWN_APP]: `${name} is no longer published.`,
  }[f.code] || `${name} could not start: ${f.message}`;
}

/**
 * The launches and the xpra notice. `elements`: {error, notice} (the launcher's error line and the
 * xpra notice); `send(message)` sends on the control channel; `say(text, kind)` sets the status line;
 * `listStale()` asks for the app list again (a launch found its app withdrawn: app-list.js).
 */
export class AppLauncher {
  constructor(elements, send, say, listStale = () => {}, codeElement = codeOf) {
    this.elements = elements;
    this.codeElement = codeElement;
    this.send = send;
    this.say = say;
    this.listStale = listStale;
    this.requestId = 0;
    this.launches = new Map(); // LAUNCH request -> app
    this.xpra = false;
    this.attached = null;
    this.command = '';
  }

  /** After each successful AUTH_RESULT: the session's display decides the mode (HOST: this page's). */
  sessionReady(display, user, host) {
    this.xpra = display === XPRA_DISPLAY;
    this.attached = null;
    this.command = attachCommand(host, user);
    this.showNotice();
  }

  /** SESSION_ATTACHED: whether an xpra client holds the session now. */
  setAttached(attached) {
    this.attached = Boolean(attached);
    this.showNotice();
  }

  showNotice() {
    const box = this.elements.notice;
    box.hidden = !this.xpra;
    const notice = this.xpra ? xpraNotice(this.attached) : { text: '', command: false };
    box.textContent = notice.text;
    if (notice.command) box.append(this.codeElement(this.command));
    box.dataset.attached = this.attached === null ? '' : String(this.attached);
  }

  launch(app) {
    this.requestId += 1;
    this.launches.set(this.requestId, app);
    this.elements.error.hidden = true;
    this.say(`Launching ${app.name}…`, 'busy');
    this.send({ name: 'LAUNCH', fields: { request: this.requestId, app: app.id, args: [] } });
  }

  /** LAUNCH_RESULT: the view to show next, 'session' (the app's windows are on this page) or 'launcher'. */
  launched(f) {
    const app = this.launches.get(f.request);
    this.launches.delete(f.request);
    const name = app ? app.name : 'the application';
    if (f.ok) {
      this.say(this.xpra ? launchedBesideText(name, this.attached) : `${name} is running`);
      return this.xpra ? 'launcher' : 'session';
    }
    const text = refusedText(name, f);
    if (f.code === Reason.UNKNOWN_APP) this.listStale();
    this.say(text, 'error');
    this.elements.error.textContent = text;
    this.elements.error.hidden = false;
    return 'launcher';
  }
}

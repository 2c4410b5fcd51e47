// The launcher's list of published apps, kept current while the page is open.
//
// Why its own module: admins publish, edit and withdraw apps while users are
// logged in, and a launcher that shows the list of login time offers apps
// that are gone and hides new ones. The server tells this page when the
// user's list changed (APPS_CHANGED, sent because HELLO says 'apps.changed';
// docs/protocol.md section 6a); the page then asks for the list again, in the
// same locale, and asks for icons only of apps it has no icon for yet (a new
// app, or a changed icon name). The list is asked again after every login
// and resume too, so a change made while the connection was down is seen.
// How an entry looks stays in launcher.js; this module only decides what is
// shown and what is asked, so it is tested without a DOM.

// Icon size in CSS pixels, requested at the device's pixel ratio (servers serve 8..256).
export const ICON_CSS_PX = 48;
export const MAX_ICON_PX = 256;
// The HELLO capability that makes the server send APPS_CHANGED (connection.js says it).
export const APPS_CHANGED_CAPABILITY = 'apps.changed';

/**
 * The published apps of this connection's user.
 * send(message): a control message to the server (false/undefined when not connected);
 * render(apps): draw the list, returns Map(app id -> entry); setIcon(entry, base64): put an icon on an entry;
 * shown(apps): after each list is drawn (the page's "no applications" line); pixelRatio(): the device's.
 */
export class PublishedApps {
  constructor({ send, render, setIcon, shown = () => {}, pixelRatio = () => 1 }) {
    this.send = send;
    this.render = render;
    this.setIcon = setIcon;
    this.shown = shown;
    this.pixelRatio = pixelRatio;
    this.locale = '';
    this.entries = new Map();
    this.icons = new Map(); // `${app id}\n${icon name}` -> base64 PNG, for the apps listed now
    this.iconNames = new Map(); // app id -> icon name of the listed app
    this.requestId = 0;
    this.lists = 0;
    this.notices = 0;
  }

  /** Ask for the list (after login: in `locale`; later: in the locale asked last). */
  request(locale = this.locale) {
    this.locale = locale;
    this.send({ name: 'APP_LIST_REQUEST', fields: { locale } });
  }

  /** The entry drawn for an app (launcher.js), or undefined. */
  entry(appId) {
    return this.entries.get(appId);
  }

  /** Take APP_LIST, ICON and APPS_CHANGED; returns false for every other message. */
  handle(message) {
    const f = message.fields;
    switch (message.name) {
      case 'APP_LIST':
        this.show(f.apps);
        return true;
      case 'ICON':
        if (f.ok && this.iconNames.has(f.app)) {
          this.icons.set(`${f.app}\n${this.iconNames.get(f.app)}`, f.data);
          if (this.entries.has(f.app)) this.setIcon(this.entries.get(f.app), f.data);
        }
        return true;
      case 'APPS_CHANGED':
        this.notices += 1;
        this.request();
        return true;
      default:
        return false;
    }
  }

  show(apps) {
    this.lists += 1;
    this.entries = this.render(apps);
    this.iconNames = new Map(apps.filter((app) => app.icon).map((app) => [app.id, app.icon]));
    const live = new Set(apps.map((app) => `${app.id}\n${app.icon}`));
    for (const key of [...this.icons.keys()]) if (!live.has(key)) this.icons.delete(key);
    const size = Math.min(MAX_ICON_PX, Math.round(ICON_CSS_PX * (this.pixelRatio() || 1)));
    for (const app of apps) {
      if (!app.icon) continue;
      const known = this.icons.get(`${app.id}\n${app.icon}`);
      if (known !== undefined) {
        this.setIcon(this.entries.get(app.id), known);
        continue;
      }
      this.requestId += 1;
      this.send({ name: 'ICON_REQUEST', fields: { request: this.requestId, app: app.id, size } });
    }
    this.shown(apps);
  }
}

// The launcher's grid of published apps: one button per APP_LIST entry, a
// placeholder until its ICON arrives.
//
// Why its own module: the page's flow (app.js) only decides when the grid is
// shown and what a click does; how an entry looks is here, and seamless mode
// reuses an app's launcher icon for its windows until a WINDOW_ICON comes.

/**
 * Fill `list` with one button per app; returns Map(app id -> {app, button}).
 * @param {HTMLElement} list
 * @param {Array<{id: string, name: string, comment: string}>} apps
 * @param {(app: object) => void} onLaunch
 */
export function renderApps(list, apps, onLaunch) {
  const entries = new Map();
  list.replaceChildren();
  for (const app of apps) {
    const item = document.createElement('li');
    const button = document.createElement('button');
    button.type = 'button';
    button.title = app.comment;
    button.dataset.app = app.id;
    const icon = document.createElement('span');
    icon.className = 'placeholder';
    const name = document.createElement('span');
    name.textContent = app.name;
    button.append(icon, name);
    button.addEventListener('click', () => onLaunch(app));
    item.append(button);
    list.append(item);
    entries.set(app.id, { app, button });
  }
  return entries;
}

/** Put an ICON answer (base64 PNG) on an app's button in place of its placeholder or old icon. */
export function setAppIcon(entry, base64) {
  const img = document.createElement('img');
  img.alt = '';
  img.src = `data:image/png;base64,${base64}`;
  entry.button.firstChild.replaceWith(img);
}

/** The launcher icon of an app as an image URL, or null before its ICON arrived. */
export function appIconUrl(entry) {
  return entry?.button.querySelector('img')?.src ?? null;
}

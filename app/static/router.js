// One screen at a time behind the tabs. A screen is a module exporting
//   id        its tab's data-view and its section's id (view-<id>)
//   init()    bind its controls, once, when the page loads
//   enter()   show its data (and start its polling, if it polls); may reject with an API error
//   leave()   stop what enter() started
//   reset()   forget what it holds about the signed-in key
// and owns its state: the router knows nothing of what a screen shows.

import { hideNotice, reportError } from "./notice.js";

export function createRouter(screens) {
  const byId = new Map(screens.map((screen) => [screen.id, screen]));
  let shown = null;
  let last = screens[0];
  for (const screen of screens) screen.init();

  function leave() {
    shown?.leave();
    shown = null;
  }

  return {
    /** Show a screen, or the last one shown when `id` is omitted. Showing the screen that is
     * already shown reloads it. */
    async show(id = last.id) {
      const next = byId.get(id);
      leave();
      shown = last = next;
      hideNotice();
      for (const tab of document.querySelectorAll(".tab")) {
        if (tab.dataset.view === id) tab.setAttribute("aria-current", "page");
        else tab.removeAttribute("aria-current");
      }
      for (const section of document.querySelectorAll(".view")) {
        section.hidden = section.id !== `view-${id}`;
      }
      try {
        await next.enter();
      } catch (error) {
        reportError(error);
      }
    },

    /** Hide every screen and let each forget the key's data (signing out). */
    close() {
      leave();
      for (const screen of screens) screen.reset();
      for (const section of document.querySelectorAll(".view")) section.hidden = true;
    },
  };
}

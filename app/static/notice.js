// The notice under the top bar: what an action did, or why it failed.

import { ApiError } from "./api.js";
import { $ } from "./dom.js";
import { t } from "./i18n.js";

let noticeTimer = null;
let keyRefused = () => {};

export function notify(message, { error = false } = {}) {
  const notice = $("notice");
  notice.textContent = message;
  notice.classList.toggle("error", error);
  notice.hidden = false;
  clearTimeout(noticeTimer);
  noticeTimer = setTimeout(
    () => {
      notice.hidden = true;
    },
    error ? 9000 : 5000,
  );
}

export function hideNotice() {
  $("notice").hidden = true;
}

/** What to do when the API refuses the key (401) in the middle of a session: set once, by the
 * entry point, which owns signing in and out. */
export function onKeyRefused(handler) {
  keyRefused = handler;
}

/** What went wrong, in words: the API's detail, the status, or a network failure. */
export function errorMessage(error) {
  if (error instanceof ApiError) return error.message || t("notice.httpStatus", { status: error.status });
  if (error instanceof TypeError) return t("notice.network"); // fetch() could not reach the server
  return error.message;
}

/** Show an API error with the first field messages of its body; a refused key signs out. */
export function reportError(error) {
  if (error instanceof ApiError && error.status === 401) {
    keyRefused();
    return;
  }
  const detail =
    error instanceof ApiError && error.body && error.body.errors
      ? error.body.errors
          .map((e) => e.msg)
          .filter((m) => m && m !== error.message)
          .slice(0, 2)
      : [];
  notify([errorMessage(error), ...detail].join(" — "), { error: true });
}

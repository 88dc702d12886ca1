// The gradecast dashboard's entry point: every figure comes from the public JSON API, called
// with the signed-in key, so the page shows nothing that key could not read. This module signs
// in and out, switches the language, and hands the tabs to the router; each screen lives in
// screens/.

import { ApiError, storedKey } from "./api.js";
import { $, el } from "./dom.js";
import { chooseLanguage, currentLanguage, languages, onLanguageChange, t, translatePage } from "./i18n.js";
import { errorMessage, onKeyRefused } from "./notice.js";
import { createRouter } from "./router.js";
import * as cohorts from "./screens/cohorts.js";
import * as evaluation from "./screens/evaluation.js";
import * as models from "./screens/models.js";
import * as predict from "./screens/predict.js";
import * as training from "./screens/training.js";
import * as session from "./session.js";

translatePage();
const router = createRouter([cohorts, training, models, predict, evaluation]);

function showRole() {
  const whoami = session.identity();
  if (whoami) $("whoami-role").textContent = t(`role.${whoami.role}`);
}

/** The language switch: one button per catalogue; the pressed one is the page's language. */
function renderLanguageSwitch() {
  $("language-switch").replaceChildren(
    ...languages.map(({ code, name }) =>
      el("button", {
        type: "button",
        class: "language",
        lang: code,
        "data-language": code,
        "aria-pressed": String(code === currentLanguage()),
        text: name,
        onclick: () => chooseLanguage(code),
      }),
    ),
  );
}

renderLanguageSwitch();
onLanguageChange(() => {
  renderLanguageSwitch();
  showRole();
  if (session.identity()) router.show(); // the shown screen again, in the new language
});

async function signIn(key) {
  const whoami = await session.signIn(key);
  $("whoami-organisation").textContent = whoami.organisation;
  showRole();
  $("identity").hidden = false;
  $("tabs").hidden = false;
  for (const node of document.querySelectorAll(".trainer-only")) node.hidden = !session.canTrain();
  await router.show();
}

function signOut(message) {
  session.signOut();
  router.close();
  $("identity").hidden = true;
  $("tabs").hidden = true;
  $("view-signin").hidden = false;
  $("api-key").value = "";
  const errorNode = $("signin-error");
  errorNode.textContent = message || "";
  errorNode.hidden = !message;
}

onKeyRefused(() => signOut(t("signin.keyRevoked")));
$("signin-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const key = $("api-key").value.trim();
  if (!key) return;
  try {
    await signIn(key);
    $("api-key").value = "";
  } catch (error) {
    signOut(error instanceof ApiError && error.status === 401 ? t("signin.keyRefused") : errorMessage(error));
  }
});
$("sign-out").addEventListener("click", () => signOut());
for (const tab of document.querySelectorAll(".tab")) {
  tab.addEventListener("click", () => router.show(tab.dataset.view));
}

if (storedKey()) {
  signIn(storedKey()).catch(() => signOut(t("signin.storedKeyRefused")));
}

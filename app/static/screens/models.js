// Models: the chosen model's versions (Θ, metrics, source) with Activate / Roll back buttons
// for keys that may train, and its activation history.

import { api } from "../api.js";
import { $, el, fmt, MISSING, when } from "../dom.js";
import { t } from "../i18n.js";
import { notify, reportError } from "../notice.js";
import { canTrain } from "../session.js";

let models = [];
let selectedModel = null;

export const id = "models";

export function init() {
  $("model-select").addEventListener("change", (event) => showModel(event.target.value).catch(reportError));
}

export async function enter() {
  const { data } = await api.models();
  models = data;
  const select = $("model-select");
  select.replaceChildren(...data.map((m) => el("option", { value: m.name, text: m.name })));
  $("models-empty").hidden = data.length > 0;
  if (!data.length) {
    $("version-rows").replaceChildren();
    $("activation-rows").replaceChildren();
    return;
  }
  if (!data.some((m) => m.name === selectedModel)) selectedModel = data[0].name;
  select.value = selectedModel;
  await showModel(selectedModel);
}

export function leave() {}

export function reset() {
  models = [];
  selectedModel = null;
}

function thetaView(version) {
  const { intercept, weights } = version.coefficients;
  return el(
    "div",
    { class: "theta" },
    el("span", {}, el("b", { text: `${t("models.intercept")} ` }), fmt(intercept, 3)),
    version.features.map((feature, i) =>
      el("span", {}, el("b", { text: `${version.feature_labels[i] || feature} ` }), fmt(weights[feature], 3)),
    ),
  );
}

function versionSource(version) {
  const source =
    version.source === "job"
      ? t("models.trained", { algorithm: version.hyperparameters?.algorithm ?? MISSING })
      : t("models.handSet");
  if (!version.cohort_name) return [source];
  const cohort = version.cohort_erased ? t("models.erasedCohort", { name: version.cohort_name }) : version.cohort_name;
  return [source, el("div", { class: "muted small", text: cohort })];
}

function versionRow(name, version, active) {
  const metrics = version.metrics || {};
  let action = null;
  if (canTrain() && !version.active) {
    const rollback = active !== null && version.version < active;
    action = el("button", {
      type: "button",
      class: "secondary",
      text: t(rollback ? "models.rollBack" : "models.activate"),
      "aria-label": t(rollback ? "models.rollBackTo" : "models.activateVersion", { version: version.version }),
      onclick: () => activate(name, version.version, rollback),
    });
  }
  return el(
    "tr",
    { "data-version": version.version },
    el(
      "td",
      {},
      el("b", { text: t("version.short", { version: version.version }) }),
      " ",
      version.active ? el("span", { class: "status active", text: t("models.active") }) : null,
    ),
    el("td", {}, thetaView(version)),
    el("td", { class: "num", text: fmt(metrics.train_rmse, 3) }),
    el("td", { class: "num", text: fmt(metrics.val_rmse, 3) }),
    el("td", { class: "num", text: fmt(metrics.train_r2, 3) }),
    el("td", { class: "num", text: metrics.risk_gap === undefined ? MISSING : fmt(metrics.risk_gap, 4) }),
    el("td", {}, versionSource(version)),
    el("td", { text: when(version.created_at) }),
    el("td", {}, el("div", { class: "actions" }, action)),
  );
}

async function showModel(name) {
  selectedModel = name;
  const [versions, activations] = await Promise.all([api.versions(name), api.activations(name)]);
  const model = models.find((m) => m.name === name);
  const active = model ? model.active_version : null;
  $("version-rows").replaceChildren(...versions.data.map((version) => versionRow(name, version, active)));
  $("activation-rows").replaceChildren(
    ...activations.data.map((a) =>
      el(
        "tr",
        {},
        el("td", { text: when(a.created_at) }),
        el("td", { text: a.from_version ? t("version.short", { version: a.from_version }) : MISSING }),
        el("td", { text: t("version.short", { version: a.to_version }) }),
        el("td", { text: a.reason || MISSING }),
      ),
    ),
  );
}

async function activate(name, version, rollback) {
  // The reason is stored in the model's activation history, in the words of who made it.
  const reason = t(rollback ? "models.rollbackReason" : "models.activateReason", { version });
  try {
    await api.activate(name, version, reason);
    notify(t("models.nowActive", { name, version }));
    await enter();
  } catch (error) {
    reportError(error);
  }
}

// Predict: one input per feature of the chosen model version, then the prediction, its
// interval and each grade's contribution wj·xj as a bar.

import { api } from "../api.js";
import { $, count, el, fillSelect, fmt } from "../dom.js";
import { currentLanguage, t } from "../i18n.js";
import { reportError } from "../notice.js";

let versions = []; // of the model chosen in #predict-model
let shownPrediction = null; // { answer, version }: drawn again in another language
let shownClassList = null; // { pupils, skipped, name }: the same

export const id = "predict";

export function init() {
  $("predict-model").addEventListener("change", () => loadVersions().catch(reportError));
  $("predict-version").addEventListener("change", renderGradeInputs);
  $("predict-form").addEventListener("submit", predict);
  $("predict-csv-form").addEventListener("submit", predictClassList);
}

export async function enter() {
  const { data } = await api.models();
  fillSelect(
    $("predict-model"),
    data,
    (m) => m.name,
    (m) => m.name,
  );
  if (!data.length) {
    $("predict-version").replaceChildren();
    const fieldset = $("predict-grades");
    fieldset.dataset.drawn = "";
    fieldset.replaceChildren(gradesLegend(), el("p", { class: "muted", text: t("predict.noModel") }));
    return;
  }
  await loadVersions();
  if (shownPrediction) showPrediction(shownPrediction.answer, shownPrediction.version);
  if (shownClassList) showClassList(shownClassList);
}

export function leave() {}

export function reset() {
  versions = [];
  shownPrediction = shownClassList = null;
  forgetDownload();
  const fieldset = $("predict-grades"); // no grades typed by the last key's user are kept
  fieldset.dataset.drawn = "";
  fieldset.replaceChildren(gradesLegend());
  $("predict-result").replaceChildren(el("p", { class: "muted", text: t("predict.prompt") }));
  $("predict-csv-result").replaceChildren();
}

// A skipped pupil's status cell, between two separators of any dialect.
const SKIPPED_STATUS = /[;,\t](special_mark|not_a_grade|out_of_range|invalid_pupil)[;,\t]/g;
let downloadUrl = null; // the object URL of the last CSV answer

function forgetDownload() {
  if (downloadUrl) URL.revokeObjectURL(downloadUrl);
  downloadUrl = null;
}

/** A class list (CSV, as the school's software exports it) in; its answer to download. */
async function predictClassList(event) {
  event.preventDefault();
  const file = $("predict-csv-file").files[0];
  const version = chosenVersion();
  if (!file || !version) return;
  const params = { model: version.model, version: version.version };
  const idColumn = $("predict-csv-id-column").value.trim();
  const features = $("predict-csv-features").value.trim();
  if (idColumn) params.id_column = idColumn;
  if (features) params.features = features;
  if ($("predict-csv-skip").checked) params.on_error = "skip";
  const result = $("predict-csv-result");
  try {
    const text = await api.predictCsv(params, file);
    forgetDownload();
    downloadUrl = URL.createObjectURL(new Blob([text], { type: "text/csv" }));
    const lines = text.trim().split(/\r?\n/).length - 1;
    const skipped = (text.match(SKIPPED_STATUS) || []).length;
    showClassList({ pupils: lines, skipped, name: file.name.replace(/\.[^.]*$/, "") });
  } catch (error) {
    shownClassList = null;
    result.replaceChildren();
    reportError(error);
  }
}

function showClassList(answered) {
  shownClassList = answered;
  $("predict-csv-result").replaceChildren(
    t("predictCsv.done", { pupils: count(answered.pupils), skipped: count(answered.skipped) }),
    " ",
    el("a", {
      href: downloadUrl,
      download: t("predictCsv.fileName", { name: answered.name }),
      id: "predict-csv-download",
      text: t("predictCsv.download"),
    }),
  );
}

const gradesLegend = () => el("legend", { text: t("predict.grades") });

const chosenVersion = () => versions.find((v) => String(v.version) === $("predict-version").value);

async function loadVersions() {
  const name = $("predict-model").value;
  const { data } = await api.versions(name);
  if ($("predict-model").value !== name) return; // another model was chosen meanwhile
  versions = data;
  const select = $("predict-version");
  select.replaceChildren(
    ...data.map((v) =>
      el("option", {
        value: v.version,
        text: t(v.active ? "version.active" : "version.short", { version: v.version }),
      }),
    ),
  );
  const active = data.find((v) => v.active);
  if (active) select.value = String(active.version);
  renderGradeInputs();
}

/** One input per feature of the chosen version, keeping what was typed for the same feature.
 * Nothing is redrawn when the inputs would be the same: two loads that cross (entering the
 * screen while the model is chosen) must not replace an input being typed into. */
function renderGradeInputs() {
  const version = chosenVersion();
  const fieldset = $("predict-grades");
  const drawn = version
    ? JSON.stringify([currentLanguage(), version.features, version.feature_labels, version.grade_range])
    : "";
  if (drawn && fieldset.dataset.drawn === drawn) return;
  fieldset.dataset.drawn = drawn;
  const previous = Object.fromEntries(
    [...fieldset.querySelectorAll("input")].map((input) => [input.name, input.value]),
  );
  fieldset.replaceChildren(gradesLegend());
  if (!version) return;
  const [low, high] = version.grade_range;
  version.features.forEach((feature, i) => {
    const label = version.feature_labels[i] || feature;
    fieldset.append(
      el(
        "label",
        {},
        `${label} (${low}–${high})`,
        el("input", {
          type: "number",
          name: feature,
          id: `grade-${feature}`,
          "data-feature": feature,
          min: low,
          max: high,
          step: "any",
          required: true,
          value: previous[feature] ?? "",
        }),
      ),
    );
  });
}

async function predict(event) {
  event.preventDefault();
  const version = chosenVersion();
  if (!version || version.model !== $("predict-model").value) return;
  const pupil = { id: "pupil" };
  for (const input of $("predict-grades").querySelectorAll("input")) pupil[input.name] = Number(input.value);
  try {
    const answer = await api.predict({ model: version.model, version: version.version, students: [pupil] });
    showPrediction(answer, version);
  } catch (error) {
    reportError(error);
  }
}

/** A bar per term of h_Θ(x), scaled to the largest; the track is centred on 0 when a term is
 * negative. */
function contributionBars(result, version) {
  const entries = [
    ["intercept", t("predict.intercept")],
    ...version.features.map((f, i) => [f, version.feature_labels[i] || f]),
  ];
  const largest = Math.max(...entries.map(([key]) => Math.abs(result.contributions[key] ?? 0)), 1e-9);
  const anyNegative = entries.some(([key]) => (result.contributions[key] ?? 0) < 0);
  const zero = anyNegative ? 50 : 0; // percent of the track where 0 sits
  const scale = anyNegative ? 50 : 100;
  return entries.flatMap(([key, label]) => {
    const value = result.contributions[key] ?? 0;
    const bar = el("div", { class: `bar${key === "intercept" ? " intercept" : value < 0 ? " negative" : ""}` });
    const width = (Math.abs(value) / largest) * scale;
    bar.style.left = `${value < 0 ? zero - width : zero}%`;
    bar.style.width = `${width}%`;
    const zeroLine = el("div", { class: "bar-zero" });
    zeroLine.style.left = `${zero}%`;
    return [
      el("span", { text: label }),
      el("div", { class: "bar-track", role: "img", "aria-label": `${label}: ${fmt(value)}` }, zeroLine, bar),
      el("span", { class: "bar-value", "data-contribution": key, text: fmt(value) }),
    ];
  });
}

function showPrediction(answer, version) {
  shownPrediction = { answer, version };
  const [result] = answer.predictions;
  const [, high] = version.grade_range;
  const parts = [
    el("h2", {
      text: t("predict.heading", { target: version.target, model: answer.model, version: answer.version }),
    }),
    el(
      "div",
      { class: "prediction", id: "prediction-value" },
      fmt(result.prediction),
      el("small", { text: ` / ${high}` }),
    ),
    el(
      "p",
      { class: "interval" },
      result.interval
        ? t("predict.interval", { low: fmt(result.interval[0]), high: fmt(result.interval[1]) })
        : t("predict.noInterval"),
      result.raw !== result.prediction ? t("predict.clipped", { raw: fmt(result.raw) }) : "",
    ),
    result.extrapolated ? el("p", { class: "warning", text: t("predict.extrapolated") }) : null,
    el("h3", { text: t("predict.contributions") }),
    el(
      "div",
      { class: "bars" },
      contributionBars(result, version),
      el("span", { class: "bars-total", text: t("predict.total") }),
      el("span"),
      el("span", { class: "bar-value bars-total", text: fmt(result.raw) }),
    ),
  ];
  $("predict-result").replaceChildren(...parts.filter(Boolean));
}

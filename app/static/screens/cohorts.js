// Cohorts: the list, a CSV upload, and the chosen cohort's columns with their statistics and,
// for keys that may read pupils' rows, a histogram of each.

import { api } from "../api.js";
import { histogram } from "../charts.js";
import { $, count, el, fmt, MISSING, when } from "../dom.js";
import { t } from "../i18n.js";
import { notify, reportError } from "../notice.js";
import { canTrain } from "../session.js";

const HISTOGRAM_MAX_PUPILS = 20000;
const STUDENTS_PAGE = 1000;
const STATISTICS = ["mean", "std", "min", "max"];

let cohorts = [];
let selectedCohort = null;
const histogramCache = new Map(); // cohort id → { column → grades }

export const id = "cohorts";

export function init() {
  $("upload-form").addEventListener("submit", uploadCohort);
}

export async function enter() {
  const { data } = await api.cohorts();
  cohorts = data;
  $("cohort-rows").replaceChildren(...data.map(cohortRow));
  $("cohorts-empty").hidden = data.length > 0;
  const selected = selectedCohort && data.find((c) => c.id === selectedCohort);
  if (selected) await selectCohort(selected.id);
  else if (data.length) await selectCohort(data[0].id);
}

export function leave() {}

export function reset() {
  cohorts = [];
  selectedCohort = null;
  histogramCache.clear();
}

function cohortRow(cohort) {
  return el(
    "tr",
    {
      class: "selectable",
      tabindex: 0,
      "data-cohort": cohort.id,
      "aria-label": t("cohorts.show", { name: cohort.name }),
      onclick: () => selectCohort(cohort.id),
      onkeydown: (event) => {
        if (event.key === "Enter" || event.key === " ") {
          event.preventDefault();
          selectCohort(cohort.id);
        }
      },
    },
    el("td", { text: cohort.name }),
    el("td", { class: "num", text: count(cohort.n_students) }),
    el("td", { text: when(cohort.created_at) }),
  );
}

async function selectCohort(cohortId) {
  selectedCohort = cohortId;
  for (const row of $("cohort-rows").children) {
    row.classList.toggle("selected", row.dataset.cohort === cohortId);
  }
  const cohort = cohorts.find((c) => c.id === cohortId);
  if (!cohort) return;
  const columns = [...cohort.features, cohort.target];
  const labels = [...cohort.feature_labels, cohort.target_label];
  const cards = columns.map((column, i) => {
    const stats = cohort.stats[column];
    const isTarget = column === cohort.target;
    return el(
      "div",
      { class: `column-card${isTarget ? " target" : ""}`, "data-column": column },
      el("h3", {}, labels[i], isTarget ? el("span", { class: "tag", text: t("cohorts.target") }) : null),
      el(
        "dl",
        {},
        STATISTICS.map((name) =>
          el(
            "div",
            {},
            el("dt", { text: t(`cohorts.stat.${name}`) }),
            el("dd", { text: stats ? fmt(stats[name]) : MISSING }),
          ),
        ),
      ),
      canTrain()
        ? el("div", {
            class: "histogram",
            role: "img",
            "aria-label": t("cohorts.histogram", { column: labels[i] }),
          })
        : null,
    );
  });
  const detail = $("cohort-detail");
  detail.replaceChildren(
    el("h2", { text: cohort.name }),
    el(
      "p",
      { class: "muted detail-meta" },
      t("cohorts.summary", {
        pupils: count(cohort.n_students),
        range: cohort.grade_range.join(", "),
        features: cohort.feature_labels.join(", "),
        target: cohort.target_label,
      }),
      canTrain() ? "" : t("cohorts.histogramsNeedTrainer"),
    ),
    importReport(cohort.import_report),
    el("div", { class: "columns" }, cards),
  );
  if (canTrain()) await drawHistograms(cohort, columns, detail);
}

/** What the upload kept, dropped and converted: nothing is done silently. */
function importReport(report) {
  if (!report) return "";
  const lines = [t("cohorts.report.kept", { kept: count(report.kept), received: count(report.received) })];
  if (report.dropped) {
    lines.push(t("cohorts.report.dropped", { dropped: count(report.dropped), rows: report.dropped_rows.join(", ") }));
  }
  for (const [column, codes] of Object.entries(report.special_marks)) {
    const listed = Object.entries(codes)
      .map(([code, n]) => `${code} × ${count(n)}`)
      .join(", ");
    lines.push(t("cohorts.report.marks", { column, codes: listed }));
  }
  for (const [column, n] of Object.entries(report.rescaled)) {
    lines.push(t("cohorts.report.rescaled", { column, count: count(n) }));
  }
  if (report.ignored_columns.length) {
    lines.push(t("cohorts.report.ignored", { columns: report.ignored_columns.join(", ") }));
  }
  return el(
    "div",
    { class: "import-report", id: "import-report" },
    el("h3", { text: t("cohorts.report.title") }),
    el("ul", {}, ...lines.map((line) => el("li", { text: line }))),
  );
}

/** Every grade of the cohort's first HISTOGRAM_MAX_PUPILS pupils, by column; read once. */
async function cohortGrades(cohort) {
  if (histogramCache.has(cohort.id)) return histogramCache.get(cohort.id);
  const columns = [...cohort.features, cohort.target];
  const values = Object.fromEntries(columns.map((c) => [c, []]));
  const total = Math.min(cohort.n_students, HISTOGRAM_MAX_PUPILS);
  for (let offset = 0; offset < total; offset += STUDENTS_PAGE) {
    const page = await api.students(cohort.id, STUDENTS_PAGE, offset);
    for (const pupil of page.data) {
      for (const column of columns) values[column].push(pupil.grades[column]);
    }
    if (page.data.length < STUDENTS_PAGE) break;
  }
  histogramCache.set(cohort.id, values);
  return values;
}

async function drawHistograms(cohort, columns, detail) {
  const values = await cohortGrades(cohort);
  if (selectedCohort !== cohort.id || !detail.isConnected) return;
  for (const column of columns) {
    const card = detail.querySelector(`[data-column="${CSS.escape(column)}"] .histogram`);
    if (card) histogram(card, values[column], cohort.grade_range, { target: column === cohort.target });
  }
  if (cohort.n_students > HISTOGRAM_MAX_PUPILS) {
    detail.append(
      el("p", { class: "muted small", text: t("cohorts.histogramsFirst", { pupils: count(HISTOGRAM_MAX_PUPILS) }) }),
    );
  }
}

async function uploadCohort(event) {
  event.preventDefault();
  const file = $("upload-file").files[0];
  if (!file) return;
  const params = { name: $("upload-name").value.trim() };
  const optional = {
    target: $("upload-target").value.trim(),
    grade_range: $("upload-range").value.trim(),
    id_column: $("upload-id-column").value.trim(),
    features: $("upload-features").value.trim(),
    group_column: $("upload-group-column").value.trim(),
    special_marks: $("upload-special-marks").value,
  };
  for (const [name, value] of Object.entries(optional)) if (value) params[name] = value;
  const button = event.submitter;
  if (button) button.disabled = true;
  try {
    const cohort = await api.uploadCohort(params, file);
    notify(t("cohorts.uploaded", { name: cohort.name, pupils: count(cohort.n_students) }));
    event.target.reset(); // back to the default grade range too
    selectedCohort = cohort.id;
    await enter();
  } catch (error) {
    reportError(error);
  } finally {
    if (button) button.disabled = false;
  }
}

// Evaluation: a version judged on a later cohort, whose pupils' actual results are known.
// Choose the version and the cohort, run the evaluation (trainer and admin keys), and read its
// figures, the predicted-vs-actual scatter with its diagonal, the residuals' histogram, the
// RMSE and bias of each group, the leaderboard of the model's versions on that cohort, and
// the version's model card. The card is downloaded rather than opened in a tab: a page made from
// a blob: address inherits the dashboard's Content-Security-Policy, which would refuse the card's
// own stylesheet, while the saved file prints as the API wrote it.

import { api } from "../api.js";
import { groupBars, residualHistogram, scatterChart } from "../charts.js";
import { $, count, el, fillSelect, fmt, MISSING, when } from "../dom.js";
import { currentLanguage, formatPercent, t } from "../i18n.js";
import { notify, reportError } from "../notice.js";
import { canTrain } from "../session.js";

const JOB_POLL_MS = 500;

let versions = []; // of the model chosen in #evaluation-model
let cohorts = []; // newest first
let charts = [];
let shown = null; // { model, version, cohortId } of the evaluation on screen

export const id = "evaluation";

export function init() {
  $("evaluation-model").addEventListener("change", () => loadVersions().catch(reportError));
  $("evaluation-version").addEventListener("change", () => chooseVersion().catch(reportError));
  $("evaluation-cohort").addEventListener("change", () => showStored().catch(reportError));
  $("evaluation-form").addEventListener("submit", evaluate);
}

export async function enter() {
  const [models, cohortList] = await Promise.all([api.models(), api.cohorts()]);
  cohorts = [...cohortList.data].sort((a, b) => b.created_at.localeCompare(a.created_at));
  fillSelect(
    $("evaluation-model"),
    models.data,
    (m) => m.name,
    (m) => m.name,
  );
  if (!models.data.length) {
    versions = [];
    $("evaluation-version").replaceChildren();
    $("evaluation-cohort").replaceChildren();
    clearResult(t("evaluation.noModel"));
    showLeaderboard([]);
    return;
  }
  await loadVersions();
}

export function leave() {}

export function reset() {
  versions = [];
  cohorts = [];
  shown = null;
  destroyCharts();
}

const chosenVersion = () => versions.find((v) => String(v.version) === $("evaluation-version").value);
const chosenCohort = () => cohorts.find((c) => c.id === $("evaluation-cohort").value);

async function loadVersions() {
  const name = $("evaluation-model").value;
  const { data } = await api.versions(name);
  if ($("evaluation-model").value !== name) return; // another model was chosen meanwhile
  versions = data;
  const select = $("evaluation-version");
  const previous = select.value;
  select.replaceChildren(
    ...data.map((v) =>
      el("option", {
        value: v.version,
        text: t(v.active ? "version.active" : "version.short", { version: v.version }),
      }),
    ),
  );
  const active = data.find((v) => v.active);
  if (data.some((v) => String(v.version) === previous)) select.value = previous;
  else if (active) select.value = String(active.version);
  await chooseVersion();
}

/** The cohorts a version can be judged on: every cohort but the one it was trained on. */
async function chooseVersion() {
  const version = chosenVersion();
  const offered = cohorts.filter((c) => !version || c.id !== version.cohort_id);
  fillSelect(
    $("evaluation-cohort"),
    offered,
    (c) => c.id,
    (c) => t("evaluation.cohortOption", { name: c.name, pupils: count(c.n_students) }),
  );
  await showStored();
}

/** The leaderboard on the chosen cohort, and the chosen version's evaluation on it if there
 * is one already. */
async function showStored() {
  const version = chosenVersion();
  const cohort = chosenCohort();
  if (!version || !cohort) {
    clearResult(t(version ? "evaluation.noCohort" : "evaluation.prompt"));
    showLeaderboard([]);
    return;
  }
  const [board, own] = await Promise.all([
    api.leaderboard(version.model, cohort.id),
    api.versionEvaluations(version.model, version.version),
  ]);
  if (chosenVersion() !== version || chosenCohort() !== cohort) return; // the choice changed meanwhile
  const stored = own.data.find((e) => e.cohort_id === cohort.id); // newest first
  if (stored) showEvaluation(stored, version, cohort);
  else clearResult(canTrain() ? t("evaluation.prompt") : t("evaluation.notYet"));
  showLeaderboard(board.data); // after: it marks the shown version's row
}

async function evaluate(event) {
  event.preventDefault();
  const version = chosenVersion();
  const cohort = chosenCohort();
  if (!version || !cohort) return;
  const button = event.submitter;
  if (button) button.disabled = true;
  try {
    let evaluation = await api.evaluate(version.model, version.version, cohort.id);
    if (evaluation.kind === "evaluation") {
      // A 202: the cohort is above the request's limit, a worker evaluates it as a job.
      const job = await finishedJob(evaluation);
      if (job.status !== "succeeded") {
        notify(t("evaluation.jobEnded", { status: t(`status.${job.status}`), error: job.error ?? "" }), {
          error: true,
        });
        return;
      }
      evaluation = await api.evaluation(version.model, version.version, job.evaluation_id);
    }
    notify(t("evaluation.done", { version: version.version, cohort: cohort.name }));
    showEvaluation(evaluation, version, cohort);
    const board = await api.leaderboard(version.model, cohort.id);
    showLeaderboard(board.data);
  } catch (error) {
    reportError(error);
  } finally {
    if (button) button.disabled = false;
  }
}

/** An evaluation job, polled until it has ended. */
async function finishedJob(job) {
  notify(t("evaluation.queued", { job: job.id.slice(0, 8) }));
  while (job.status === "queued" || job.status === "running") {
    await new Promise((resolve) => setTimeout(resolve, JOB_POLL_MS));
    job = await api.job(job.id);
  }
  return job;
}

function destroyCharts() {
  for (const chart of charts) chart.destroy();
  charts = [];
}

function clearResult(message) {
  shown = null;
  destroyCharts();
  $("evaluation-result").replaceChildren(el("p", { class: "muted", text: message }));
  $("evaluation-charts").hidden = true;
  $("evaluation-groups-card").hidden = true;
}

const percent = (share) => (share === null || share === undefined ? MISSING : formatPercent(share));

/** The bias in words: which way the predictions lean, and by how much. */
function biasSentence(bias) {
  if (bias === null || bias === undefined) return null;
  if (Math.abs(bias) < 0.005) return t("evaluation.biasNone");
  return t(bias > 0 ? "evaluation.biasHigh" : "evaluation.biasLow", { points: fmt(Math.abs(bias)) });
}

function figure(name, label, value) {
  return el("div", { class: "figure" }, el("dt", { text: label }), el("dd", { "data-figure": name, text: value }));
}

function showEvaluation(evaluation, version, cohort) {
  shown = { model: version.model, version: version.version, cohortId: cohort.id };
  destroyCharts();
  $("evaluation-result").replaceChildren(
    el("h2", {
      text: t("evaluation.heading", { model: version.model, version: version.version, cohort: evaluation.cohort_name }),
    }),
    el(
      "dl",
      { class: "figures" },
      figure("n", t("evaluation.pupils"), count(evaluation.n)),
      figure("rmse", t("evaluation.rmse"), fmt(evaluation.rmse, 3)),
      figure("mae", t("evaluation.mae"), fmt(evaluation.mae, 3)),
      figure("r2", t("evaluation.r2"), fmt(evaluation.r2, 3)),
      figure("mean_error", t("evaluation.bias"), fmt(evaluation.mean_error, 3)),
      figure("interval_coverage", t("evaluation.coverage"), percent(evaluation.interval_coverage)),
      figure("extrapolated", t("evaluation.extrapolated"), count(evaluation.extrapolated)),
    ),
    el("p", { id: "evaluation-bias" }, biasSentence(evaluation.mean_error)),
    el(
      "p",
      { class: "muted small" },
      evaluation.interval_coverage === null || evaluation.interval_coverage === undefined
        ? t("evaluation.noInterval")
        : t("evaluation.coverageHelp"),
      " ",
      t("evaluation.extrapolatedHelp"),
    ),
    el(
      "p",
      {},
      el("button", {
        type: "button",
        class: "secondary",
        id: "evaluation-card",
        text: t("card.download"),
        "aria-label": t("card.downloadVersion", { version: version.version }),
        onclick: () => downloadCard(version.model, version.version),
      }),
    ),
  );
  drawCharts(evaluation, version, cohort);
}

function drawCharts(evaluation, version, cohort) {
  const sample = evaluation.sample || [];
  $("evaluation-charts").hidden = sample.length === 0;
  if (!sample.length) {
    $("evaluation-result").append(el("p", { class: "muted small", text: t("evaluation.noSample") }));
  } else {
    $("scatter-caption").textContent = t("evaluation.sampleCaption", {
      shown: count(sample.length),
      total: count(evaluation.n),
    });
    const scatter = $("evaluation-scatter");
    charts.push(scatterChart(scatter, sample, evaluation.calibration, version.grade_range));
    scatter.dataset.points = String(sample.length);
    const residuals = $("evaluation-residuals");
    charts.push(
      residualHistogram(
        residuals,
        sample.map(([predicted, actual]) => predicted - actual),
      ),
    );
    residuals.dataset.points = String(sample.length);
  }
  const groups = Object.entries(evaluation.by_group || {}).map(([label, g]) => ({ label, ...g }));
  $("evaluation-groups-card").hidden = groups.length === 0;
  if (!groups.length) return;
  $("groups-caption").textContent = t("evaluation.groupsHelp", { column: cohort.group_column ?? MISSING });
  const chart = $("evaluation-groups");
  charts.push(
    groupBars(
      chart,
      groups.map((g) => ({ label: g.label, rmse: g.rmse, bias: g.mean_error })),
    ),
  );
  chart.dataset.groups = String(groups.length);
  $("group-rows").replaceChildren(
    ...groups.map((g) =>
      el(
        "tr",
        { "data-group": g.label },
        el("th", { scope: "row", text: g.label }),
        el("td", { class: "num", text: count(g.n) }),
        el("td", { class: "num", text: fmt(g.rmse, 3) }),
        el("td", { class: "num", text: fmt(g.mae, 3) }),
        el("td", { class: "num", text: fmt(g.mean_error, 3) }),
        el("td", { class: "num", text: percent(g.interval_coverage) }),
      ),
    ),
  );
}

function showLeaderboard(rows) {
  $("leaderboard-empty").hidden = rows.length > 0;
  $("leaderboard-rows").replaceChildren(
    ...rows.map((row, i) =>
      el(
        "tr",
        { "data-version": row.version, class: shown?.version === row.version ? "selected" : null },
        el("td", { class: "num", text: count(i + 1) }),
        el(
          "td",
          {},
          el("b", { text: t("version.short", { version: row.version }) }),
          " ",
          row.active ? el("span", { class: "status active", text: t("models.active") }) : null,
        ),
        el("td", { class: "num", text: fmt(row.rmse, 3) }),
        el("td", { class: "num", text: fmt(row.mae, 3) }),
        el("td", { class: "num", text: fmt(row.r2, 3) }),
        el("td", { class: "num", text: fmt(row.mean_error, 3) }),
        el("td", { class: "num", text: percent(row.interval_coverage) }),
        el("td", { class: "num", text: count(row.n) }),
        el("td", { text: when(row.created_at) }),
        el(
          "td",
          {},
          el("button", {
            type: "button",
            class: "secondary",
            text: t("card.short"),
            "aria-label": t("card.downloadVersion", { version: row.version }),
            onclick: () => downloadCard($("evaluation-model").value, row.version),
          }),
        ),
      ),
    ),
  );
}

/** The model card, fetched with the key in the page's language, saved as an HTML file. */
async function downloadCard(name, version) {
  try {
    const html = await api.card(name, version, currentLanguage());
    const url = URL.createObjectURL(new Blob([html], { type: "text/html" }));
    el("a", { href: url, download: t("card.fileName", { model: name, version }) }).click();
    setTimeout(() => URL.revokeObjectURL(url), 60_000);
  } catch (error) {
    reportError(error);
  }
}

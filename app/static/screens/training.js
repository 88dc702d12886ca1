// Training: the form that starts a job, the job list polled while the screen is shown, and the
// loss curve of one run, optionally overlaid on another's.

import { api } from "../api.js";
import { lossChart } from "../charts.js";
import { $, count, el, fillSelect, fmt, MISSING } from "../dom.js";
import { t } from "../i18n.js";
import { notify, reportError } from "../notice.js";
import { canTrain } from "../session.js";

const POLL_MS = 500;
const LOSS_REFRESH_MS = 900;
const ACTIVE_STATUSES = new Set(["queued", "running"]);

const jobs = new Map(); // id → job, in the order of the table
let lossJob = null;
let compareJob = null;
let lossCharts = [];
let pollTimer = null;
let polling = false;
let lastLossRefresh = 0;

export const id = "training";

export function init() {
  $("train-form").addEventListener("submit", startJob);
  $("train-algorithm").addEventListener("change", syncAlgorithmFields);
  $("loss-job").addEventListener("change", (event) => showLoss(event.target.value));
  $("loss-compare").addEventListener("change", (event) => {
    compareJob = event.target.value || null;
    drawLoss();
  });
  $("loss-log").addEventListener("change", drawLoss);
  syncAlgorithmFields();
}

export async function enter() {
  startPolling();
  if (canTrain()) {
    const { data } = await api.cohorts();
    fillSelect(
      $("train-cohort"),
      data,
      (c) => c.id,
      (c) => t("training.cohortOption", { name: c.name, pupils: count(c.n_students) }),
    );
  }
  const { data } = await api.jobs();
  jobs.clear();
  for (const job of data) jobs.set(job.id, job);
  $("job-rows").replaceChildren(...data.map(jobRow));
  $("jobs-empty").hidden = data.length > 0;
  const trained = data.filter(isTraining);
  if (!jobs.has(lossJob)) lossJob = trained.length ? trained[0].id : null;
  if (!jobs.has(compareJob)) compareJob = null;
  refreshLossSelects();
  await drawLoss();
}

export function leave() {
  clearInterval(pollTimer);
  pollTimer = null;
}

export function reset() {
  jobs.clear();
  lossJob = compareJob = null;
}

/** Show only the fields of the chosen algorithm; hidden ones are disabled, so not sent. */
function syncAlgorithmFields() {
  const algorithm = $("train-algorithm").value;
  for (const label of document.querySelectorAll("#train-form [data-for]")) {
    const shown = label.dataset.for.split(" ").includes(algorithm);
    label.hidden = !shown;
    for (const input of label.querySelectorAll("input")) input.disabled = !shown;
  }
}

const isTraining = (job) => job.kind !== "evaluation";
/** What a job does: its algorithm, or "evaluation" for an evaluation job (which has none). */
const jobDoes = (job) => (isTraining(job) ? job.algorithm : t("jobs.kindEvaluation"));

function jobLabel(job) {
  const parts = [job.model, jobDoes(job), shortId(job)];
  if (job.model_version) parts[0] = t("jobs.modelVersion", { model: job.model, version: job.model_version });
  return parts.join(" · ");
}

const shortId = (job) => job.id.slice(0, 8);

function jobRow(job) {
  const row = el("tr", { "data-job": job.id, "data-kind": job.kind, "data-algorithm": job.algorithm ?? "" });
  fillJobRow(row, job);
  return row;
}

function fillJobRow(row, job) {
  const shape = [job.status, job.cancel_requested, job.model_version].join("|");
  if (row.dataset.shape !== shape) {
    buildJobCells(row, job);
    row.dataset.shape = shape;
    row.dataset.status = job.status;
  }
  // Progress changes at every poll: update it in place, so that the buttons stay put
  // under the pointer.
  const { steps_done: done, total_steps: total, risk } = job.progress;
  const fraction = job.status === "succeeded" ? 1 : total > 0 ? done / total : 0;
  const percent = Math.round(fraction * 100);
  row.querySelector("progress").value = percent;
  row.querySelector(".progress-text").textContent = t("training.progress", {
    percent,
    done: count(done),
    total: count(total),
  });
  row.querySelector(".risk").textContent = fmt(risk, 4);
}

function buildJobCells(row, job) {
  const actions = el("div", { class: "actions" });
  // An evaluation job has no loss history; its result is on the Evaluation screen.
  if (isTraining(job))
    actions.append(
      el("button", {
        type: "button",
        class: "secondary",
        text: t("training.loss"),
        "aria-label": t("training.lossOf", { job: shortId(job) }),
        onclick: () => showLoss(job.id),
      }),
    );
  if (canTrain() && ACTIVE_STATUSES.has(job.status)) {
    actions.append(
      el("button", {
        type: "button",
        class: "secondary danger",
        text: t(job.cancel_requested ? "training.cancelling" : "training.cancel"),
        disabled: job.cancel_requested,
        "aria-label": t("training.cancelJob", { job: shortId(job) }),
        onclick: () => cancelJob(job.id),
      }),
    );
  }
  row.replaceChildren(
    el("td", { class: "mono", title: job.id, text: shortId(job) }),
    el("td", { text: job.model }),
    el("td", { text: jobDoes(job) }),
    el(
      "td",
      {},
      el("span", { class: `status ${job.status}`, text: t(`status.${job.status}`) }),
      job.error ? el("span", { class: "job-error", text: job.error }) : null,
    ),
    el(
      "td",
      {},
      el(
        "div",
        { class: "progress-cell" },
        el("progress", { max: 100, value: 0, "aria-label": t("training.progressOf", { job: shortId(job) }) }),
        el("span", { class: "progress-text" }),
      ),
    ),
    el("td", { class: "num risk" }),
    el("td", { text: job.model_version ? t("version.short", { version: job.model_version }) : MISSING }),
    el("td", {}, actions),
  );
}

function upsertJob(job) {
  const known = jobs.has(job.id);
  jobs.set(job.id, job);
  const existing = $("job-rows").querySelector(`tr[data-job="${job.id}"]`);
  if (existing) fillJobRow(existing, job);
  else $("job-rows").prepend(jobRow(job));
  $("jobs-empty").hidden = true;
  if (!known) refreshLossSelects();
}

async function startJob(event) {
  event.preventDefault();
  const algorithm = $("train-algorithm").value;
  const body = {
    cohort_id: $("train-cohort").value,
    model: $("train-model").value.trim(),
    algorithm,
    activate: $("train-activate").value,
  };
  if (algorithm !== "closed_form") {
    body.learning_rate = Number($("train-learning-rate").value);
    body.record_every = Number($("train-record-every").value);
  }
  if (algorithm === "sgd") {
    body.batch_size = Number($("train-batch-size").value);
    body.epochs = Number($("train-epochs").value);
    body.shuffle = $("train-shuffle").checked;
  }
  if (algorithm === "gd") body.iterations = Number($("train-iterations").value);
  const validation = Number($("train-validation").value || 0);
  if (validation > 0) body.validation_fraction = validation;
  const theta = $("train-init-theta").value.trim();
  // "0, 0.33, 0.33" or "0 0.33 0.33", or with decimal commas "0; 0,33; 0,33" (as French is written)
  if (theta)
    body.init_theta = (theta.includes(";") ? theta.split(";") : theta.split(/[\s,]+/))
      .map((part) => part.trim().replace(",", "."))
      .filter(Boolean)
      .map(Number);
  if (!body.cohort_id) {
    notify(t("training.noCohort"), { error: true });
    return;
  }
  try {
    const job = await api.createJob(body);
    upsertJob(job);
    lossJob = job.id;
    refreshLossSelects();
    notify(t("training.queued", { job: shortId(job) }));
    await drawLoss();
  } catch (error) {
    reportError(error);
  }
}

async function cancelJob(jobId) {
  try {
    upsertJob(await api.cancelJob(jobId));
  } catch (error) {
    reportError(error);
  }
}

function startPolling() {
  if (pollTimer === null) pollTimer = setInterval(pollJobs, POLL_MS);
}

/** Every POLL_MS: the running and queued jobs, then once more each job that has just left
 * those lists, to show how it ended. */
async function pollJobs() {
  if (polling) return;
  polling = true;
  try {
    const [running, queued] = await Promise.all([api.jobs({ status: "running" }), api.jobs({ status: "queued" })]);
    const active = new Set();
    for (const job of [...running.data, ...queued.data]) {
      active.add(job.id);
      upsertJob(job);
    }
    const finished = [...jobs.values()].filter((job) => ACTIVE_STATUSES.has(job.status) && !active.has(job.id));
    for (const job of finished) upsertJob(await api.job(job.id));
    // The shown run's curve: about every second while it runs, and once more when it ends.
    const lossEnded = finished.some((job) => job.id === lossJob);
    const lossRunning = active.has(lossJob) && performance.now() - lastLossRefresh > LOSS_REFRESH_MS;
    if (lossEnded || lossRunning) await drawLoss();
  } catch (error) {
    reportError(error);
  } finally {
    polling = false;
  }
}

function showLoss(jobId) {
  lossJob = jobId;
  refreshLossSelects();
  drawLoss();
}

function refreshLossSelects() {
  const known = [...jobs.values()].filter(isTraining);
  const option = (job) => el("option", { value: job.id, text: jobLabel(job) });
  const run = $("loss-job");
  const compare = $("loss-compare");
  run.replaceChildren(...known.map(option));
  compare.replaceChildren(
    el("option", { value: "", text: MISSING }),
    ...known.filter((job) => job.id !== lossJob).map(option),
  );
  if (lossJob) run.value = lossJob;
  if (compareJob === lossJob) compareJob = null;
  compare.value = compareJob || "";
}

async function drawLoss() {
  lastLossRefresh = performance.now();
  const chart = $("loss-chart");
  const caption = $("loss-caption");
  const ids = [lossJob, compareJob].filter(Boolean);
  if (!ids.length) {
    chart.replaceChildren();
    caption.textContent = t("training.noRun");
    return;
  }
  try {
    const histories = await Promise.all(ids.map((jobId) => api.loss(jobId)));
    const runs = histories.map((history, i) => ({
      label: t(i === 0 ? "training.run" : "training.compared"),
      job: jobs.get(ids[i]),
      points: history.points,
      total: history.total_points,
      epochs: jobs.get(ids[i])?.algorithm === "sgd",
    }));
    for (const c of lossCharts) c.destroy();
    lossCharts = [];
    if (!runs[0].points.length) {
      chart.replaceChildren();
      chart.dataset.points = "0";
      caption.textContent = t("training.noPoint");
      return;
    }
    const log = $("loss-log").checked;
    lossCharts.push(lossChart(chart, runs, { log }));
    chart.dataset.scale = log ? "log" : "linear";
    chart.dataset.points = String(runs[0].points.length);
    caption.textContent = runs
      .map((run, i) => {
        const points =
          run.points.length < run.total
            ? t("training.somePoints", { shown: count(run.points.length), total: count(run.total) })
            : t("training.allPoints", { total: count(run.total) });
        const name = run.job ? jobLabel(run.job) : "";
        return t(i === 0 ? "training.captionRun" : "training.captionCompared", { name, points });
      })
      .join(" · ");
  } catch (error) {
    reportError(error);
  }
}

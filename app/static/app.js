// The gradecast dashboard: every figure comes from the public JSON API, called with the
// signed-in key, so the page shows nothing that key could not read.

import { api, ApiError, forgetKey, storedKey, storeKey } from "./api.js";
import { histogram, lossChart } from "./charts.js";

const POLL_MS = 500;
const HISTOGRAM_MAX_PUPILS = 20000;
const ACTIVE_STATUSES = new Set(["queued", "running"]);

const state = {
  whoami: null,
  view: "cohorts",
  cohorts: [],
  selectedCohort: null,
  jobs: new Map(), // id → job, in the order of the table
  lossJob: null,
  compareJob: null,
  lossCharts: [],
  models: [],
  selectedModel: null,
  pollTimer: null,
  polling: false,
  lastLossRefresh: 0,
  histogramCache: new Map(),
};

const $ = (id) => document.getElementById(id);

function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "class") node.className = value;
    else if (name === "text") node.textContent = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function fmt(value, digits = 2) {
  if (value === null || value === undefined || !Number.isFinite(value)) return "—";
  const magnitude = Math.abs(value);
  if (magnitude !== 0 && (magnitude < 1e-3 || magnitude >= 1e6)) return value.toExponential(2);
  return value.toFixed(digits);
}

function when(iso) {
  if (!iso) return "—";
  const d = new Date(iso);
  const pad = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

const canTrain = () => state.whoami && state.whoami.role !== "reader";

let noticeTimer = null;
function notify(message, { error = false } = {}) {
  const notice = $("notice");
  notice.textContent = message;
  notice.classList.toggle("error", error);
  notice.hidden = false;
  clearTimeout(noticeTimer);
  noticeTimer = setTimeout(() => {
    notice.hidden = true;
  }, error ? 9000 : 5000);
}

function reportError(error) {
  if (error instanceof ApiError && error.status === 401) {
    signOut("The key was refused (unknown or revoked). Sign in again.");
    return;
  }
  const detail = error instanceof ApiError && error.body && error.body.errors
    ? error.body.errors.map((e) => e.msg).filter((m) => m && m !== error.message).slice(0, 2)
    : [];
  notify([error.message, ...detail].join(" — "), { error: true });
}

// ---------------------------------------------------------------- sign in and navigation

async function signIn(key) {
  storeKey(key);
  try {
    state.whoami = await api.whoami();
  } catch (error) {
    forgetKey();
    throw error;
  }
  $("whoami-organisation").textContent = state.whoami.organisation;
  $("whoami-role").textContent = state.whoami.role;
  $("identity").hidden = false;
  $("tabs").hidden = false;
  $("view-signin").hidden = true;
  for (const node of document.querySelectorAll(".trainer-only")) node.hidden = !canTrain();
  await show(state.view);
}

function signOut(message) {
  forgetKey();
  stopPolling();
  state.whoami = null;
  state.jobs.clear();
  state.histogramCache.clear();
  state.selectedCohort = null;
  state.lossJob = state.compareJob = null;
  $("identity").hidden = true;
  $("tabs").hidden = true;
  for (const view of document.querySelectorAll(".view")) view.hidden = true;
  $("view-signin").hidden = false;
  $("api-key").value = "";
  const errorNode = $("signin-error");
  errorNode.textContent = message || "";
  errorNode.hidden = !message;
}

async function show(view) {
  state.view = view;
  $("notice").hidden = true;
  for (const tab of document.querySelectorAll(".tab")) {
    if (tab.dataset.view === view) tab.setAttribute("aria-current", "page");
    else tab.removeAttribute("aria-current");
  }
  for (const section of document.querySelectorAll(".view")) {
    section.hidden = section.id !== `view-${view}`;
  }
  if (view === "training") startPolling();
  else stopPolling();
  try {
    if (view === "cohorts") await loadCohorts();
    else if (view === "training") await loadTraining();
    else if (view === "models") await loadModels();
    else if (view === "predict") await loadPredict();
  } catch (error) {
    reportError(error);
  }
}

// ---------------------------------------------------------------- cohorts

async function loadCohorts() {
  const { data } = await api.cohorts();
  state.cohorts = data;
  const rows = $("cohort-rows");
  rows.replaceChildren(
    ...data.map((cohort) => {
      const row = el(
        "tr",
        {
          class: "selectable",
          tabindex: 0,
          "data-cohort": cohort.id,
          "aria-label": `Show cohort ${cohort.name}`,
          onclick: () => selectCohort(cohort.id),
          onkeydown: (event) => {
            if (event.key === "Enter" || event.key === " ") {
              event.preventDefault();
              selectCohort(cohort.id);
            }
          },
        },
        el("td", { text: cohort.name }),
        el("td", { class: "num", text: cohort.n_students.toLocaleString("en") }),
        el("td", { text: when(cohort.created_at) }),
      );
      return row;
    }),
  );
  $("cohorts-empty").hidden = data.length > 0;
  const selected = state.selectedCohort && data.find((c) => c.id === state.selectedCohort);
  if (selected) await selectCohort(selected.id);
  else if (data.length) await selectCohort(data[0].id);
}

async function selectCohort(id) {
  state.selectedCohort = id;
  for (const row of $("cohort-rows").children) {
    row.classList.toggle("selected", row.dataset.cohort === id);
  }
  const cohort = state.cohorts.find((c) => c.id === id);
  if (!cohort) return;
  const columns = [...cohort.features, cohort.target];
  const labels = [...cohort.feature_labels, cohort.target_label];
  const cards = columns.map((column, i) => {
    const stats = cohort.stats[column];
    const isTarget = column === cohort.target;
    return el(
      "div",
      { class: `column-card${isTarget ? " target" : ""}`, "data-column": column },
      el("h3", {}, labels[i], isTarget ? el("span", { class: "tag", text: "target" }) : null),
      el(
        "dl",
        {},
        ["mean", "std", "min", "max"].map((name) =>
          el("div", {}, el("dt", { text: name }), el("dd", { text: stats ? fmt(stats[name]) : "—" })),
        ),
      ),
      canTrain()
        ? el("div", {
          class: "histogram",
          role: "img",
          "aria-label": `Histogram of ${labels[i]} over the cohort's pupils`,
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
      `${cohort.n_students.toLocaleString("en")} pupils · grades in [${cohort.grade_range.join(", ")}] · `,
      `features ${cohort.feature_labels.join(", ")} → target ${cohort.target_label}`,
      canTrain() ? "" : " · histograms need a trainer key (they read the pupils' rows)",
    ),
    el("div", { class: "columns" }, cards),
  );
  if (canTrain()) await drawHistograms(cohort, columns, detail);
}

async function cohortGrades(cohort) {
  if (state.histogramCache.has(cohort.id)) return state.histogramCache.get(cohort.id);
  const columns = [...cohort.features, cohort.target];
  const values = Object.fromEntries(columns.map((c) => [c, []]));
  const total = Math.min(cohort.n_students, HISTOGRAM_MAX_PUPILS);
  for (let offset = 0; offset < total; offset += 1000) {
    const page = await api.students(cohort.id, 1000, offset);
    for (const pupil of page.data) {
      for (const column of columns) values[column].push(pupil.grades[column]);
    }
    if (page.data.length < 1000) break;
  }
  state.histogramCache.set(cohort.id, values);
  return values;
}

async function drawHistograms(cohort, columns, detail) {
  const values = await cohortGrades(cohort);
  if (state.selectedCohort !== cohort.id || !detail.isConnected) return;
  for (const column of columns) {
    const card = detail.querySelector(`[data-column="${CSS.escape(column)}"] .histogram`);
    if (card) histogram(card, values[column], cohort.grade_range, { target: column === cohort.target });
  }
  if (cohort.n_students > HISTOGRAM_MAX_PUPILS) {
    detail.append(el("p", { class: "muted small", text: `Histograms of the first ${HISTOGRAM_MAX_PUPILS.toLocaleString("en")} pupils.` }));
  }
}

async function uploadCohort(event) {
  event.preventDefault();
  const file = $("upload-file").files[0];
  if (!file) return;
  const params = { name: $("upload-name").value.trim() };
  const target = $("upload-target").value.trim();
  const range = $("upload-range").value.trim();
  if (target) params.target = target;
  if (range) params.grade_range = range;
  const button = event.submitter;
  if (button) button.disabled = true;
  try {
    const cohort = await api.uploadCohort(params, file);
    notify(`Uploaded ${cohort.name}: ${cohort.n_students} pupils.`);
    event.target.reset();
    $("upload-range").value = "0,20";
    state.selectedCohort = cohort.id;
    await loadCohorts();
  } catch (error) {
    reportError(error);
  } finally {
    if (button) button.disabled = false;
  }
}

// ---------------------------------------------------------------- training and jobs

function syncAlgorithmFields() {
  const algorithm = $("train-algorithm").value;
  for (const label of document.querySelectorAll("#train-form [data-for]")) {
    const shown = label.dataset.for.split(" ").includes(algorithm);
    label.hidden = !shown;
    for (const input of label.querySelectorAll("input")) input.disabled = !shown;
  }
}

async function loadTraining() {
  if (canTrain()) {
    const { data } = await api.cohorts();
    state.cohorts = data;
    const select = $("train-cohort");
    const previous = select.value;
    select.replaceChildren(
      ...data.map((c) => el("option", { value: c.id, text: `${c.name} (${c.n_students} pupils)` })),
    );
    if (data.some((c) => c.id === previous)) select.value = previous;
  }
  const { data } = await api.jobs();
  state.jobs = new Map(data.map((job) => [job.id, job]));
  $("job-rows").replaceChildren(...data.map(jobRow));
  $("jobs-empty").hidden = data.length > 0;
  if (!state.jobs.has(state.lossJob)) state.lossJob = data.length ? data[0].id : null;
  if (!state.jobs.has(state.compareJob)) state.compareJob = null;
  refreshLossSelects();
  await drawLoss();
}

function jobLabel(job) {
  const version = job.model_version ? ` v${job.model_version}` : "";
  return `${job.model}${version} · ${job.algorithm} · ${job.id.slice(0, 8)}`;
}

function jobRow(job) {
  const row = el("tr", { "data-job": job.id, "data-algorithm": job.algorithm });
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
  row.querySelector(".progress-text").textContent = `${percent}% · ${done.toLocaleString("en")} / ${total.toLocaleString("en")}`;
  row.querySelector(".risk").textContent = fmt(risk, 4);
}

function buildJobCells(row, job) {
  const actions = el("div", { class: "actions" });
  actions.append(
    el("button", {
      type: "button",
      class: "secondary",
      text: "Loss",
      "aria-label": `Show the loss curve of job ${job.id.slice(0, 8)}`,
      onclick: () => {
        state.lossJob = job.id;
        refreshLossSelects();
        drawLoss();
      },
    }),
  );
  if (canTrain() && ACTIVE_STATUSES.has(job.status)) {
    actions.append(
      el("button", {
        type: "button",
        class: "secondary danger",
        text: job.cancel_requested ? "Cancelling…" : "Cancel",
        disabled: job.cancel_requested,
        "aria-label": `Cancel job ${job.id.slice(0, 8)}`,
        onclick: () => cancelJob(job.id),
      }),
    );
  }
  row.replaceChildren(
    el("td", { class: "mono", title: job.id, text: job.id.slice(0, 8) }),
    el("td", { text: job.model }),
    el("td", { text: job.algorithm }),
    el(
      "td",
      {},
      el("span", { class: `status ${job.status}`, text: job.status }),
      job.error ? el("span", { class: "job-error", text: job.error }) : null,
    ),
    el(
      "td",
      {},
      el(
        "div",
        { class: "progress-cell" },
        el("progress", { max: 100, value: 0, "aria-label": `Progress of job ${job.id.slice(0, 8)}` }),
        el("span", { class: "progress-text" }),
      ),
    ),
    el("td", { class: "num risk" }),
    el("td", { text: job.model_version ? `v${job.model_version}` : "—" }),
    el("td", {}, actions),
  );
}

function upsertJob(job) {
  const known = state.jobs.has(job.id);
  state.jobs.set(job.id, job);
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
  if (theta) body.init_theta = theta.split(/[\s,;]+/).filter(Boolean).map(Number);
  if (!body.cohort_id) {
    notify("Upload a cohort first.", { error: true });
    return;
  }
  try {
    const job = await api.createJob(body);
    upsertJob(job);
    state.lossJob = job.id;
    refreshLossSelects();
    notify(`Job ${job.id.slice(0, 8)} queued.`);
    await drawLoss();
  } catch (error) {
    reportError(error);
  }
}

async function cancelJob(id) {
  try {
    upsertJob(await api.cancelJob(id));
  } catch (error) {
    reportError(error);
  }
}

function startPolling() {
  if (state.pollTimer === null) state.pollTimer = setInterval(pollJobs, POLL_MS);
}

function stopPolling() {
  clearInterval(state.pollTimer);
  state.pollTimer = null;
}

/** Every ~500 ms: the running and queued jobs, then once more each job that has just left
 * those lists, to show how it ended. */
async function pollJobs() {
  if (state.polling || !state.whoami) return;
  state.polling = true;
  try {
    const [running, queued] = await Promise.all([
      api.jobs({ status: "running" }),
      api.jobs({ status: "queued" }),
    ]);
    const active = new Set();
    for (const job of [...running.data, ...queued.data]) {
      active.add(job.id);
      upsertJob(job);
    }
    const finished = [...state.jobs.values()].filter(
      (job) => ACTIVE_STATUSES.has(job.status) && !active.has(job.id),
    );
    for (const job of finished) upsertJob(await api.job(job.id));
    // The shown run's curve: about every second while it runs, and once more when it ends.
    const lossEnded = finished.some((job) => job.id === state.lossJob);
    const lossRunning = active.has(state.lossJob) && performance.now() - state.lastLossRefresh > 900;
    if (lossEnded || lossRunning) await drawLoss();
  } catch (error) {
    reportError(error);
  } finally {
    state.polling = false;
  }
}

function refreshLossSelects() {
  const jobs = [...state.jobs.values()];
  const run = $("loss-job");
  const compare = $("loss-compare");
  run.replaceChildren(...jobs.map((job) => el("option", { value: job.id, text: jobLabel(job) })));
  compare.replaceChildren(
    el("option", { value: "", text: "—" }),
    ...jobs.filter((job) => job.id !== state.lossJob).map((job) => el("option", { value: job.id, text: jobLabel(job) })),
  );
  if (state.lossJob) run.value = state.lossJob;
  if (state.compareJob === state.lossJob) state.compareJob = null;
  compare.value = state.compareJob || "";
}

async function drawLoss() {
  state.lastLossRefresh = performance.now();
  const chart = $("loss-chart");
  const caption = $("loss-caption");
  const ids = [state.lossJob, state.compareJob].filter(Boolean);
  if (!ids.length) {
    chart.replaceChildren();
    caption.textContent = "No run yet.";
    return;
  }
  try {
    const histories = await Promise.all(ids.map((id) => api.loss(id)));
    const runs = histories.map((history, i) => ({
      label: i === 0 ? "run" : "compared",
      job: state.jobs.get(ids[i]),
      points: history.points,
      total: history.total_points,
      epochs: state.jobs.get(ids[i])?.algorithm === "sgd",
    }));
    for (const c of state.lossCharts) c.destroy();
    state.lossCharts = [];
    if (!runs[0].points.length) {
      chart.replaceChildren();
      chart.dataset.points = "0";
      caption.textContent = "No point recorded yet.";
      return;
    }
    const log = $("loss-log").checked;
    state.lossCharts.push(lossChart(chart, runs, { log }));
    chart.dataset.scale = log ? "log" : "linear";
    chart.dataset.points = String(runs[0].points.length);
    caption.textContent = runs
      .map((run) => {
        const job = run.job;
        const name = job ? jobLabel(job) : "";
        const shown = run.points.length < run.total ? `${run.points.length} of ${run.total} points` : `${run.total} points`;
        return `${run.label === "run" ? "Run" : "Compared with"} ${name}: ${shown}`;
      })
      .join(" · ");
  } catch (error) {
    reportError(error);
  }
}

// ---------------------------------------------------------------- models

async function loadModels() {
  const { data } = await api.models();
  state.models = data;
  const select = $("model-select");
  select.replaceChildren(...data.map((m) => el("option", { value: m.name, text: m.name })));
  $("models-empty").hidden = data.length > 0;
  if (!data.length) {
    $("version-rows").replaceChildren();
    $("activation-rows").replaceChildren();
    return;
  }
  if (!data.some((m) => m.name === state.selectedModel)) state.selectedModel = data[0].name;
  select.value = state.selectedModel;
  await showModel(state.selectedModel);
}

function thetaView(version) {
  const { intercept, weights } = version.coefficients;
  return el(
    "div",
    { class: "theta" },
    el("span", {}, el("b", { text: "w0 " }), fmt(intercept, 3)),
    version.features.map((feature, i) =>
      el("span", {}, el("b", { text: `${version.feature_labels[i] || feature} ` }), fmt(weights[feature], 3)),
    ),
  );
}

async function showModel(name) {
  state.selectedModel = name;
  const [versions, activations] = await Promise.all([api.versions(name), api.activations(name)]);
  const model = state.models.find((m) => m.name === name);
  const active = model ? model.active_version : null;
  $("version-rows").replaceChildren(
    ...versions.data.map((version) => {
      const metrics = version.metrics || {};
      let action = null;
      if (canTrain() && !version.active) {
        const rollback = active !== null && version.version < active;
        action = el("button", {
          type: "button",
          class: "secondary",
          text: rollback ? "Roll back" : "Activate",
          "aria-label": `${rollback ? "Roll back to" : "Activate"} version ${version.version}`,
          onclick: () => activate(name, version.version, rollback),
        });
      }
      return el(
        "tr",
        { "data-version": version.version },
        el(
          "td",
          {},
          el("b", { text: `v${version.version}` }),
          " ",
          version.active ? el("span", { class: "status active", text: "active" }) : null,
        ),
        el("td", {}, thetaView(version)),
        el("td", { class: "num", text: fmt(metrics.train_rmse, 3) }),
        el("td", { class: "num", text: fmt(metrics.val_rmse, 3) }),
        el("td", { class: "num", text: fmt(metrics.train_r2, 3) }),
        el("td", { class: "num", text: metrics.risk_gap === undefined ? "—" : fmt(metrics.risk_gap, 4) }),
        el(
          "td",
          {},
          version.source === "job" ? `trained (${version.hyperparameters?.algorithm ?? "job"})` : "hand-set",
          version.cohort_name ? el("div", { class: "muted small", text: version.cohort_name + (version.cohort_erased ? " (erased)" : "") }) : null,
        ),
        el("td", { text: when(version.created_at) }),
        el("td", {}, el("div", { class: "actions" }, action)),
      );
    }),
  );
  $("activation-rows").replaceChildren(
    ...activations.data.map((a) =>
      el(
        "tr",
        {},
        el("td", { text: when(a.created_at) }),
        el("td", { text: a.from_version ? `v${a.from_version}` : "—" }),
        el("td", { text: `v${a.to_version}` }),
        el("td", { text: a.reason || "—" }),
      ),
    ),
  );
}

async function activate(name, version, rollback) {
  try {
    await api.activate(name, version, rollback ? `rollback to v${version} from the dashboard` : "activated from the dashboard");
    notify(`${name}: version ${version} is now active.`);
    await loadModels();
  } catch (error) {
    reportError(error);
  }
}

// ---------------------------------------------------------------- predict

async function loadPredict() {
  const { data } = await api.models();
  state.models = data;
  const select = $("predict-model");
  const previous = select.value;
  select.replaceChildren(...data.map((m) => el("option", { value: m.name, text: m.name })));
  if (data.some((m) => m.name === previous)) select.value = previous;
  if (!data.length) {
    $("predict-version").replaceChildren();
    $("predict-grades").replaceChildren(el("legend", { text: "Course grades" }), el("p", { class: "muted", text: "No model yet." }));
    return;
  }
  await loadPredictVersions();
}

async function loadPredictVersions() {
  const name = $("predict-model").value;
  const { data } = await api.versions(name);
  if ($("predict-model").value !== name) return; // another model was chosen meanwhile
  state.predictVersions = data;
  const select = $("predict-version");
  select.replaceChildren(
    ...data.map((v) => el("option", { value: v.version, text: `v${v.version}${v.active ? " (active)" : ""}` })),
  );
  const active = data.find((v) => v.active);
  if (active) select.value = String(active.version);
  renderGradeInputs();
}

function renderGradeInputs() {
  const version = (state.predictVersions || []).find((v) => String(v.version) === $("predict-version").value);
  const fieldset = $("predict-grades");
  const previous = Object.fromEntries(
    [...fieldset.querySelectorAll("input")].map((input) => [input.name, input.value]),
  );
  fieldset.replaceChildren(el("legend", { text: "Course grades" }));
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
  const version = (state.predictVersions || []).find((v) => String(v.version) === $("predict-version").value);
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

function showPrediction(answer, version) {
  const [result] = answer.predictions;
  const [, high] = version.grade_range;
  const entries = [["intercept", "w0 (intercept)"], ...version.features.map((f, i) => [f, version.feature_labels[i] || f])];
  const largest = Math.max(...entries.map(([key]) => Math.abs(result.contributions[key] ?? 0)), 1e-9);
  const anyNegative = entries.some(([key]) => (result.contributions[key] ?? 0) < 0);
  const zero = anyNegative ? 50 : 0; // percent of the track where 0 sits
  const scale = anyNegative ? 50 : 100;
  const bars = entries.flatMap(([key, label]) => {
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
  $("predict-result").replaceChildren(
    ...[
    el("h2", { text: `Predicted ${version.target} · ${answer.model} v${answer.version}` }),
    el("div", { class: "prediction", id: "prediction-value" }, fmt(result.prediction), el("small", { text: ` / ${high}` })),
    el(
      "p",
      { class: "interval" },
      result.interval
        ? `95% prediction interval: ${fmt(result.interval[0])} – ${fmt(result.interval[1])}`
        : "No prediction interval: this version has none (an l2 fit, gd/sgd short of the least-squares Θ, or no σ).",
      result.raw !== result.prediction ? ` · h_Θ(x) = ${fmt(result.raw)} before clipping to the grade range` : "",
    ),
    result.extrapolated
      ? el("p", { class: "warning", text: "A grade lies outside what the training cohort had for that course: the prediction is an extrapolation." })
      : null,
    el("h3", { text: "Contribution of each grade (wj·xj)" }),
    el("div", { class: "bars" }, bars, el("span", { class: "bars-total", text: "h_Θ(x)" }), el("span"), el("span", { class: "bar-value bars-total", text: fmt(result.raw) })),
    ].filter(Boolean),
  );
}

// ---------------------------------------------------------------- wiring

function wire() {
  $("signin-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const key = $("api-key").value.trim();
    if (!key) return;
    try {
      await signIn(key);
      $("api-key").value = "";
    } catch (error) {
      const message = error instanceof ApiError && error.status === 401
        ? "This key was refused: unknown or revoked."
        : error.message;
      signOut(message);
    }
  });
  $("sign-out").addEventListener("click", () => signOut());
  for (const tab of document.querySelectorAll(".tab")) {
    tab.addEventListener("click", () => show(tab.dataset.view));
  }
  $("upload-form").addEventListener("submit", uploadCohort);
  $("train-form").addEventListener("submit", startJob);
  $("train-algorithm").addEventListener("change", syncAlgorithmFields);
  $("loss-job").addEventListener("change", (event) => {
    state.lossJob = event.target.value;
    refreshLossSelects();
    drawLoss();
  });
  $("loss-compare").addEventListener("change", (event) => {
    state.compareJob = event.target.value || null;
    drawLoss();
  });
  $("loss-log").addEventListener("change", drawLoss);
  $("model-select").addEventListener("change", (event) => showModel(event.target.value).catch(reportError));
  $("predict-model").addEventListener("change", () => loadPredictVersions().catch(reportError));
  $("predict-version").addEventListener("change", renderGradeInputs);
  $("predict-form").addEventListener("submit", predict);
  syncAlgorithmFields();
}

wire();
if (storedKey()) {
  signIn(storedKey()).catch(() => signOut("The stored key was refused. Sign in again."));
}

// Charts drawn with the vendored uPlot (vendor/uplot, MIT): the loss curves, the grade
// histograms, and an evaluation's predicted-vs-actual scatter, residual histogram and
// per-group bars. uPlot is loaded by a classic deferred script before this module runs. Tick
// labels are written the page language's way (formatTick).

import { formatNumber, t } from "./i18n.js";

const COLORS = {
  train: "#2458d3",
  val: "#e07a1f",
  compareTrain: "#8a96a6",
  compareVal: "#c3a27f",
  bar: "#5b7fdb",
  target: "#e39a4f",
  grid: "#edf0f4",
  axis: "#5f6b7a",
  epoch: "rgba(20, 33, 61, 0.22)",
  point: "rgba(36, 88, 211, 0.55)",
  diagonal: "#b42318",
  calibration: "#1d7a46",
  rmse: "#2458d3",
  bias: "#e07a1f",
};

const FONT = '11px system-ui, -apple-system, "Segoe UI", Roboto, sans-serif';

function axis(extra = {}) {
  return {
    values: (_u, ticks) => ticks.map(formatTick),
    stroke: COLORS.axis,
    font: FONT,
    labelFont: FONT,
    grid: { stroke: COLORS.grid, width: 1 },
    ticks: { stroke: COLORS.grid, width: 1, size: 4 },
    ...extra,
  };
}

/** Follow the container's width; returns a function that stops following. */
function fitWidth(chart, element, height) {
  const observer = new ResizeObserver(() => {
    const width = Math.floor(element.clientWidth);
    if (width > 0 && width !== chart.width) chart.setSize({ width, height });
  });
  observer.observe(element);
  return () => observer.disconnect();
}

/** A histogram of grades in [low, high]: one bar per grade point on a 0–20 scale, 20 bars
 * otherwise. */
export function histogram(element, values, [low, high], { target = false } = {}) {
  const span = high - low;
  const bins = span <= 40 && Number.isInteger(span) ? span : 20;
  const width = span / bins;
  const counts = new Array(bins).fill(0);
  for (const value of values) {
    const index = Math.min(bins - 1, Math.max(0, Math.floor((value - low) / width)));
    counts[index] += 1;
  }
  const centres = counts.map((_, i) => low + (i + 0.5) * width);
  element.replaceChildren();
  const height = 110;
  const chart = new uPlot(
    {
      width: Math.max(180, Math.floor(element.clientWidth)),
      height,
      legend: { show: false },
      cursor: { show: false },
      padding: [6, 12, 0, 0],
      scales: { x: { time: false, range: [low, high] }, y: { range: (_u, _min, max) => [0, Math.max(1, max * 1.1)] } },
      axes: [
        axis({ size: 22, space: 28, grid: { show: false } }),
        axis({ size: 30, space: 22, ticks: { show: false } }),
      ],
      series: [
        {},
        {
          label: t("charts.pupils"),
          fill: target ? COLORS.target : COLORS.bar,
          stroke: target ? COLORS.target : COLORS.bar,
          width: 0,
          paths: uPlot.paths.bars({ size: [0.88, Infinity], align: 0 }),
          points: { show: false },
        },
      ],
    },
    [centres, counts],
    element,
  );
  fitWidth(chart, element, height);
  return chart;
}

/** Steps at which SGD starts its 2nd, 3rd, … epoch (step 0, the initial Θ, is epoch 0). */
function epochStarts(points) {
  const starts = [];
  for (let i = 1; i < points.length; i += 1) {
    const [previous, current] = [points[i - 1].epoch, points[i].epoch];
    if (current !== previous && previous > 0) starts.push([points[i].step, current]);
  }
  return starts;
}

function epochMarks(starts) {
  return {
    hooks: {
      draw: [
        (u) => {
          if (!starts.length) return;
          const { ctx } = u;
          const { top, height } = u.bbox;
          ctx.save();
          ctx.strokeStyle = COLORS.epoch;
          ctx.fillStyle = COLORS.axis;
          ctx.lineWidth = 1;
          ctx.setLineDash([4, 4]);
          ctx.font = `${10 * devicePixelRatio}px system-ui, sans-serif`;
          // Lines at least 20 px apart, labels where the previous one leaves room.
          const lineGap = 20 * devicePixelRatio;
          const labelWidth = 64 * devicePixelRatio;
          let lastLine = -Infinity;
          let lastLabel = -Infinity;
          for (const [step, epoch] of starts) {
            const x = Math.round(u.valToPos(step, "x", true));
            if (x - lastLine < lineGap) continue;
            lastLine = x;
            ctx.beginPath();
            ctx.moveTo(x, top);
            ctx.lineTo(x, top + height);
            ctx.stroke();
            if (x - lastLabel >= labelWidth) {
              ctx.fillText(t("charts.epoch", { epoch }), x + 3 * devicePixelRatio, top + 11 * devicePixelRatio);
              lastLabel = x;
            }
          }
          ctx.restore();
        },
      ],
    },
  };
}

/**
 * The empirical risk against the step for one run, and optionally another overlaid.
 * runs: [{ label, points, epochs }] with points as returned by GET /jobs/{id}/loss; epoch
 * boundaries are marked for the first run when its `epochs` is true (SGD).
 */
export function lossChart(element, runs, { log = true } = {}) {
  const positive = (v) => (v === null || v === undefined || !Number.isFinite(v) || (log && v <= 0) ? null : v);
  const tables = [];
  const series = [{ label: t("charts.step") }];
  runs.forEach((run, index) => {
    const main = index === 0;
    const steps = run.points.map((p) => p.step);
    const columns = [steps, run.points.map((p) => positive(p.train_loss))];
    series.push({
      label: t("charts.training", { run: run.label }),
      stroke: main ? COLORS.train : COLORS.compareTrain,
      width: main ? 2 : 1.5,
      spanGaps: true,
      points: { show: false },
    });
    if (run.points.some((p) => p.val_loss !== null)) {
      columns.push(run.points.map((p) => positive(p.val_loss)));
      series.push({
        label: t("charts.validation", { run: run.label }),
        stroke: main ? COLORS.val : COLORS.compareVal,
        width: main ? 2 : 1.5,
        dash: [6, 4],
        spanGaps: true,
        points: { show: false },
      });
    }
    tables.push(columns);
  });
  const data = tables.length === 1 ? tables[0] : uPlot.join(tables);
  element.replaceChildren();
  const height = 340;
  const chart = new uPlot(
    {
      width: Math.max(320, Math.floor(element.clientWidth)),
      height,
      padding: [12, 16, 0, 4],
      cursor: { drag: { x: true, y: false } },
      scales: { x: { time: false }, y: { distr: log ? 3 : 1 } },
      axes: [
        axis({ label: t("charts.step"), size: 42, labelSize: 18 }),
        axis({
          label: t(log ? "charts.riskLog" : "charts.risk"),
          size: 62,
          labelSize: 18,
        }),
      ],
      series,
      plugins: [epochMarks(runs[0].epochs ? epochStarts(runs[0].points) : [])],
    },
    data,
    element,
  );
  fitWidth(chart, element, height);
  return chart;
}

function formatTick(value) {
  if (value === null) return ""; // uPlot leaves some log-scale ticks unlabelled
  if (value === 0) return formatNumber(0, 0);
  const magnitude = Math.abs(value);
  if (magnitude >= 1e4 || magnitude < 1e-3) return formatNumber(value, 0, { scientific: true });
  const rounded = Number(value.toPrecision(3));
  const decimals = Math.max(0, (String(rounded).split(".")[1] || "").length);
  return formatNumber(rounded, decimals);
}

/** Each actual grade against its prediction, one point per pupil of the sample, with the
 * diagonal where prediction = actual and the calibration line (the mean actual grade of each
 * decile of predictions, at its mean prediction). pairs: [[predicted, actual], …];
 * calibration: [{ mean_predicted, mean_actual }, …] as the API gives them. */
export function scatterChart(element, pairs, calibration, [low, high]) {
  const sorted = [...pairs].sort((a, b) => a[0] - b[0]); // uPlot wants x ascending
  const deciles = [...calibration].sort((a, b) => a.mean_predicted - b.mean_predicted);
  const diagonal = {
    hooks: {
      drawAxes: [
        (u) => {
          const { ctx } = u;
          ctx.save();
          ctx.strokeStyle = COLORS.diagonal;
          ctx.lineWidth = 1.5 * devicePixelRatio;
          ctx.setLineDash([6 * devicePixelRatio, 4 * devicePixelRatio]);
          ctx.beginPath();
          ctx.moveTo(u.valToPos(low, "x", true), u.valToPos(low, "y", true));
          ctx.lineTo(u.valToPos(high, "x", true), u.valToPos(high, "y", true));
          ctx.stroke();
          ctx.restore();
        },
      ],
    },
  };
  element.replaceChildren();
  const height = 320;
  const chart = new uPlot(
    {
      width: Math.max(260, Math.floor(element.clientWidth)),
      height,
      legend: { live: false },
      cursor: { show: false },
      padding: [10, 14, 0, 0],
      scales: { x: { time: false, range: [low, high] }, y: { range: [low, high] } },
      axes: [
        axis({ label: t("charts.predicted"), size: 36, labelSize: 18 }),
        axis({ label: t("charts.actual"), size: 40, labelSize: 18 }),
      ],
      series: [
        {},
        {
          label: t("charts.pupil"),
          stroke: COLORS.point,
          paths: () => null,
          points: { show: true, size: 5, width: 1, fill: COLORS.point, stroke: COLORS.point },
        },
        {
          label: t("charts.calibration"),
          stroke: COLORS.calibration,
          width: 2,
          spanGaps: true,
          points: { show: true, size: 6, fill: COLORS.calibration, stroke: COLORS.calibration },
        },
      ],
      plugins: [diagonal],
    },
    uPlot.join([
      [sorted.map((pair) => pair[0]), sorted.map((pair) => pair[1])],
      [deciles.map((d) => d.mean_predicted), deciles.map((d) => d.mean_actual)],
    ]),
    element,
  );
  fitWidth(chart, element, height);
  return chart;
}

/** A histogram of residuals (prediction − actual) on bins symmetric about 0. */
export function residualHistogram(element, residuals) {
  const largest = Math.max(1, ...residuals.map((r) => Math.ceil(Math.abs(r))));
  const bins = 2 * Math.min(20, Math.max(5, largest * 2));
  const width = (2 * largest) / bins;
  const counts = new Array(bins).fill(0);
  for (const residual of residuals) {
    counts[Math.min(bins - 1, Math.max(0, Math.floor((residual + largest) / width)))] += 1;
  }
  const centres = counts.map((_, i) => -largest + (i + 0.5) * width);
  element.replaceChildren();
  const height = 320;
  const chart = new uPlot(
    {
      width: Math.max(260, Math.floor(element.clientWidth)),
      height,
      legend: { show: false },
      cursor: { show: false },
      padding: [10, 14, 0, 0],
      scales: {
        x: { time: false, range: [-largest, largest] },
        y: { range: (_u, _min, max) => [0, Math.max(1, max * 1.1)] },
      },
      axes: [
        axis({ label: t("charts.residual"), size: 36, labelSize: 18, grid: { show: false } }),
        axis({ label: t("charts.pupils"), size: 40, labelSize: 18 }),
      ],
      series: [
        {},
        {
          label: t("charts.pupils"),
          fill: COLORS.bar,
          stroke: COLORS.bar,
          width: 0,
          paths: uPlot.paths.bars({ size: [0.9, Infinity], align: 0 }),
          points: { show: false },
        },
      ],
    },
    [centres, counts],
    element,
  );
  fitWidth(chart, element, height);
  return chart;
}

/** Two bars per group, side by side: its RMSE and its bias (mean of prediction − actual).
 * groups: [{ label, rmse, bias }]. */
export function groupBars(element, groups) {
  const indices = groups.map((_, i) => i);
  const values = groups.flatMap((g) => [g.rmse, g.bias]).filter(Number.isFinite);
  const low = Math.min(0, ...values);
  const high = Math.max(0, ...values);
  const margin = Math.max(0.1, (high - low) * 0.1);
  element.replaceChildren();
  const height = 260;
  const bars = (align) => uPlot.paths.bars({ size: [0.36, 48], align });
  const chart = new uPlot(
    {
      width: Math.max(260, Math.floor(element.clientWidth)),
      height,
      legend: { live: false },
      cursor: { show: false },
      padding: [10, 14, 0, 0],
      scales: {
        x: { time: false, range: [-0.5, groups.length - 0.5] },
        y: { range: [low < 0 ? low - margin : 0, high + margin] },
      },
      axes: [
        axis({
          size: 30,
          grid: { show: false },
          splits: () => indices,
          values: (_u, ticks) => ticks.map((i) => groups[i]?.label ?? ""),
        }),
        axis({ size: 44 }),
      ],
      series: [
        {},
        {
          label: t("charts.rmse"),
          fill: COLORS.rmse,
          stroke: COLORS.rmse,
          width: 0,
          paths: bars(-1),
          points: { show: false },
        },
        {
          label: t("charts.bias"),
          fill: COLORS.bias,
          stroke: COLORS.bias,
          width: 0,
          paths: bars(1),
          points: { show: false },
        },
      ],
    },
    [indices, groups.map((g) => g.rmse), groups.map((g) => g.bias)],
    element,
  );
  fitWidth(chart, element, height);
  return chart;
}

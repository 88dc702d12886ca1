// The public JSON API, called with the signed-in key. The key lives in sessionStorage only:
// it is sent in the Authorization header, never in a URL or a cookie.

const KEY_STORAGE = "gradecast.apiKey";

/** An answer other than 2xx. Its message is the API's `detail` (in English, as the API writes
 * it), empty when the body has none: notice.js then words the status in the page's language. */
export class ApiError extends Error {
  constructor(status, body) {
    super(typeof body?.detail === "string" ? body.detail : "");
    this.status = status;
    this.body = body;
  }
}

export function storedKey() {
  return sessionStorage.getItem(KEY_STORAGE);
}

export function storeKey(key) {
  sessionStorage.setItem(KEY_STORAGE, key);
}

export function forgetKey() {
  sessionStorage.removeItem(KEY_STORAGE);
}

export async function request(method, path, { json, form, signal } = {}) {
  const key = storedKey();
  const headers = { Accept: "application/json" };
  if (key) headers.Authorization = `Bearer ${key}`;
  let body;
  if (json !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(json);
  } else if (form !== undefined) {
    body = form; // the browser sets the multipart boundary
  }
  const response = await fetch(path, {
    method,
    headers,
    body,
    signal,
    credentials: "omit",
    cache: "no-store",
  });
  if (response.status === 204) return null;
  const text = await response.text();
  let parsed = null;
  try {
    parsed = text ? JSON.parse(text) : null;
  } catch {
    parsed = { detail: text.slice(0, 200) };
  }
  if (!response.ok) throw new ApiError(response.status, parsed);
  return parsed;
}

export const api = {
  whoami: () => request("GET", "/whoami"),
  cohorts: () => request("GET", "/cohorts?limit=1000"),
  students: (id, limit, offset) =>
    request("GET", `/cohorts/${encodeURIComponent(id)}/students?limit=${limit}&offset=${offset}`),
  uploadCohort: (params, file) => {
    const form = new FormData();
    form.append("file", file, file.name);
    return request("POST", `/cohorts?${new URLSearchParams(params)}`, { form });
  },
  jobs: (query = {}) => request("GET", `/jobs?${new URLSearchParams({ limit: 50, ...query })}`),
  job: (id) => request("GET", `/jobs/${encodeURIComponent(id)}`),
  createJob: (body) => request("POST", "/jobs", { json: body }),
  cancelJob: (id) => request("POST", `/jobs/${encodeURIComponent(id)}/cancel`),
  loss: (id, maxPoints = 2000) => request("GET", `/jobs/${encodeURIComponent(id)}/loss?max_points=${maxPoints}`),
  models: () => request("GET", "/models?limit=1000"),
  versions: (name) => request("GET", `/models/${encodeURIComponent(name)}/versions?limit=1000`),
  activations: (name) => request("GET", `/models/${encodeURIComponent(name)}/activations?limit=1000`),
  activate: (name, version, reason) =>
    request("PUT", `/models/${encodeURIComponent(name)}/active`, {
      json: reason ? { version, reason } : { version },
    }),
  predict: (body) => request("POST", "/predict", { json: body }),
  /** A class list as CSV in, the CSV answer (text) out, in the file's own dialect. */
  predictCsv: (params, file) =>
    requestText("POST", `/predict?${new URLSearchParams(params)}`, {
      headers: { Accept: "text/csv", "Content-Type": "text/csv" },
      body: file,
    }),
  evaluate: (name, version, cohortId) =>
    request("POST", `${versionPath(name, version)}/evaluations`, { json: { cohort_id: cohortId } }),
  evaluation: (name, version, id) =>
    request("GET", `${versionPath(name, version)}/evaluations/${encodeURIComponent(id)}`),
  versionEvaluations: (name, version) => request("GET", `${versionPath(name, version)}/evaluations?limit=1000`),
  /** The versions of a model evaluated on one cohort, best RMSE first. */
  leaderboard: (name, cohortId) =>
    request("GET", `/models/${encodeURIComponent(name)}/evaluations?${new URLSearchParams({ cohort_id: cohortId })}`),
  /** The version's model card as a self-contained HTML page, in `language`. */
  card: (name, version, language) =>
    requestText("GET", `${versionPath(name, version)}/card?format=html`, {
      headers: { Accept: "text/html", "Accept-Language": language },
    }),
};

const versionPath = (name, version) => `/models/${encodeURIComponent(name)}/versions/${encodeURIComponent(version)}`;

/** A request whose answer is text (CSV, HTML), with the key; an error's JSON body is parsed. */
async function requestText(method, path, { headers, body }) {
  const key = storedKey();
  const response = await fetch(path, {
    method,
    headers: key ? { ...headers, Authorization: `Bearer ${key}` } : headers,
    body,
    credentials: "omit",
    cache: "no-store",
  });
  const text = await response.text();
  if (!response.ok) {
    let parsed;
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = { detail: text.slice(0, 200) };
    }
    throw new ApiError(response.status, parsed);
  }
  return text;
}

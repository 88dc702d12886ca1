// The public JSON API, called with the signed-in key. The key lives in sessionStorage only:
// it is sent in the Authorization header, never in a URL or a cookie.

const KEY_STORAGE = "gradecast.apiKey";

export class ApiError extends Error {
  constructor(status, body) {
    super(body?.detail ? body.detail : `HTTP ${status}`);
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
  predictCsv: async (params, file) => {
    const headers = { Accept: "text/csv", "Content-Type": "text/csv" };
    const key = storedKey();
    if (key) headers.Authorization = `Bearer ${key}`;
    const response = await fetch(`/predict?${new URLSearchParams(params)}`, {
      method: "POST",
      headers,
      body: file,
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
  },
};

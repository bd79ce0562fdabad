// Calls to the gateway's own API with the session cookie; changes carry the CSRF token.

export const UI = document.documentElement.dataset.ui;
let csrfToken = "";
let onUnauthorized = () => {};

export function setCsrf(token) { csrfToken = token || ""; }
export function whenLoggedOut(callback) { onUnauthorized = callback; }

export class ApiError extends Error {
  constructor(status, message, body) {
    super(message);
    this.status = status;
    this.body = body;
  }
}

/** `api("GET", "/key/list", {query: {page: 1}})`, `api("POST", "/key/block", {body: {...}})`. */
export async function api(method, path, { query, body } = {}) {
  const url = new URL(path, location.origin);
  for (const [name, value] of Object.entries(query || {})) {
    if (value === undefined || value === null || value === "") continue;
    for (const one of Array.isArray(value) ? value : [value]) url.searchParams.append(name, one);
  }
  const headers = { Accept: "application/json" };
  if (method !== "GET" && method !== "HEAD") headers["X-CSRF-Token"] = csrfToken;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(url, {
    method, headers, credentials: "same-origin", body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = text; }
  if (!response.ok) {
    const message = (data && data.error && data.error.message) || (data && data.detail) || `${response.status} ${response.statusText}`;
    if (response.status === 401 && !path.endsWith("/login")) onUnauthorized(message);
    throw new ApiError(response.status, String(message), data);
  }
  return data;
}

/** Every page of a paginated list, for exports: `fetchAll("/key/list", "keys", {return_full_object: true})`.
 *  `sizeParam` is the endpoint's name for the page size (`size` or `page_size`). */
export async function fetchAll(path, field, query = {}, { sizeParam = "size", size = 500, limit = 100000 } = {}) {
  const out = [];
  for (let page = 1; out.length < limit; page++) {
    const data = await api("GET", path, { query: { ...query, page, [sizeParam]: size } });
    const rows = Array.isArray(data) ? data : data[field] || [];
    out.push(...rows);
    if (Array.isArray(data) || page >= (data.total_pages || 1) || rows.length === 0) break;
  }
  return out;
}

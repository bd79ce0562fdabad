// Request logs: the spend log, one row per call (success, failure or block), newest first, a page
// at a time from GET /spend/logs/ui with `cursor` (keyset paging: nothing is counted, every page
// costs the same however deep). Filters: time range, key, team, user, end user, model, status,
// blocked by, tag, request id; they live in the URL hash (#/logs?tag=...), so a filtered view can
// be linked. "Details" opens the whole row under it: who, what, how long, the guardrails' verdicts
// and their timings, tags and metadata. An internal user sees only their own key's calls.
import { api } from "../api.js";
import { field, formValues, h, heading, list, money, when } from "../dom.js";

const SIZE = 25;
const DAYS = 7;  // the default range: the last week
const FILTERS = ["start_date", "end_date", "key", "team_id", "user_id", "end_user", "model_group", "status_filter",
  "blocked_by", "tag", "request_id"];
const STATUS = [["", "Any"], ["success", "Success"], ["failure", "Failed or blocked"], ["blocked", "Blocked"]];
const HASH = /^[0-9a-f]{64}$/;

const day = (date) => date.toISOString().slice(0, 10);
const shortHash = (hash) => (hash ? `${hash.slice(0, 12)}…` : "–");
const ms = (value) => (value === null || value === undefined || Number.isNaN(value) ? "–"
  : value >= 1000 ? `${(value / 1000).toFixed(2)} s` : value < 1 ? `${value.toFixed(2)} ms` : `${Math.round(value * 10) / 10} ms`);
/** Milliseconds since the epoch with the microseconds the row's times carry (Date.parse drops them). */
function exact(iso) {
  const fraction = /\.(\d+)/.exec(iso || "");
  return Date.parse(iso) + (fraction ? Number(`0.${fraction[1]}`) * 1000 % 1 : 0);
}
const duration = (row) => exact(row.endTime) - exact(row.startTime);
const meta = (row) => (row.metadata && typeof row.metadata === "object" ? row.metadata : {});
const verdicts = (row) => (Array.isArray(meta(row).guardrails) ? meta(row).guardrails : []);

/** The filters of a view: from the hash's query, else the last DAYS days. */
export function filtersFrom(params) {
  const today = new Date();
  const out = { start_date: day(new Date(today.getTime() - (DAYS - 1) * 86400000)), end_date: day(today) };
  for (const name of FILTERS) if (params.get(name)) out[name] = params.get(name);
  return out;
}

/** What the API is asked: a key is its hash (`api_key`) or its alias (`key_alias`). */
function query(filters) {
  const { key, ...rest } = filters;
  if (key) rest[HASH.test(key) ? "api_key" : "key_alias"] = key;
  return rest;
}

function statusBadge(row) {
  const kind = row.status === "success" ? "good" : "bad";
  const text = row.status === "blocked" ? `blocked · ${row.blocked_by || "?"}` : row.status;
  return h("span", {}, h("span", { class: `badge ${kind}`, text }), row.http_status && row.http_status !== 200 ? ` ${row.http_status}` : null);
}

function keyOf(row) {
  const alias = meta(row).user_api_key_alias;
  return h("span", {}, alias ? [h("strong", { text: alias }), h("br")] : null, h("code", { class: "muted", text: shortHash(row.api_key) }));
}

/** Why the call was refused: the blocking guard's message, else the error's. */
function refusal(row) {
  const guard = verdicts(row).find((v) => v && v.name === row.blocked_by && v.verdict === "block");
  const error = meta(row).error;
  return (guard && guard.message) || (error && error.message) || null;
}

function verdictTable(row) {
  const rows = verdicts(row);
  const total = rows.reduce((sum, v) => sum + (Number(v.latency_ms) || 0), 0);
  return h("div", { class: "table-wrap" }, h("table", {},
    h("caption", { text: rows.length ? `Guardrail verdicts (${ms(total)} in guards)` : "Guardrail verdicts" }),
    h("thead", {}, h("tr", {}, ["Guard", "Phase", "Verdict", "Time", "Message"].map((t) => h("th", { scope: "col", text: t })))),
    h("tbody", {}, rows.length ? rows.map((v) => h("tr", {},
      h("td", { "data-label": "Guard" }, h("code", { text: v.name })),
      h("td", { "data-label": "Phase", text: v.phase || "–" }),
      h("td", { "data-label": "Verdict" }, h("span", { class: `badge ${v.verdict === "pass" ? "good" : v.verdict === "block" ? "bad" : ""}`, text: v.verdict })),
      h("td", { "data-label": "Time", text: ms(v.latency_ms) }),
      h("td", { "data-label": "Message", text: v.message || "–" })))
      : h("tr", {}, h("td", { colspan: 5, class: "empty", text: "No guardrail ran on this call." })))));
}

const json = (value) => h("pre", { text: JSON.stringify(value, null, 2) });

/** The whole row, as the details under it show it. */
export function details(row) {
  const m = meta(row);
  const tokens = `${row.prompt_tokens} in · ${row.completion_tokens} out · ${row.total_tokens} total${row.usage_estimated || m.usage_estimated ? " (estimated)" : ""}`;
  const facts = [
    ["Request id", h("code", { text: row.request_id })],
    ["Gateway request id", m.gateway_request_id ? h("code", { text: m.gateway_request_id }) : "–"],
    ["Call", row.call_type],
    ["Started", when(row.startTime)], ["Ended", when(row.endTime)], ["Duration", ms(duration(row))],
    ["Status", `${row.status} (HTTP ${row.http_status ?? "–"})`],
    ["Blocked by", row.blocked_by || "–"], ["Refusal", refusal(row) || "–"],
    ["Would have blocked", Array.isArray(m.would_have_blocked) && m.would_have_blocked.length
      ? m.would_have_blocked.map((w) => `${w.plugin}: ${w.message}`).join("; ") : "–"],
    ["Model", row.model_group || "–"], ["Deployment", row.model], ["API base", row.api_base || "–"],
    ["Tokens", tokens], ["Spend", money(row.spend)], ["Cache hit", row.cache_hit ? "yes" : "no"],
    ["Key", h("span", {}, m.user_api_key_alias ? `${m.user_api_key_alias} · ` : "", h("code", { text: shortHash(row.api_key) }))],
    ["User", row.user || "–"], ["Team", row.team_id ? `${m.user_api_key_team_alias || row.team_id} (${row.team_id})` : "–"],
    ["End user", row.end_user || "–"], ["Tags", list(row.request_tags)],
  ];
  const extra = Object.fromEntries(Object.entries(m).filter(([k]) => !["guardrails", "user_api_key"].includes(k)));
  return h("div", { class: "log-details" },
    h("dl", {}, facts.map(([term, value]) => [h("dt", { text: term }), h("dd", {}, value)])),
    verdictTable(row),
    Array.isArray(m.attempts) && m.attempts.length ? [h("h3", { text: "Deployments tried" }), json(m.attempts)] : null,
    m.spend_logs_metadata ? [h("h3", { text: "Spend-log metadata" }), json(m.spend_logs_metadata)] : null,
    h("details", {}, h("summary", { text: "All metadata" }), json(extra)),
    row.messages ? h("details", {}, h("summary", { text: "Request" }), json(row.messages)) : null,
    row.response ? h("details", {}, h("summary", { text: "Response" }), json(row.response)) : null);
}

function toggleButton(row, index) {
  const id = `log-details-${index}`;
  return h("button", { type: "button", "aria-expanded": "false", "aria-controls": id,
    "aria-label": `Details of ${row.request_id}`, onclick: (event) => {
      const button = event.currentTarget;
      const tr = button.closest("tr");
      const open = button.getAttribute("aria-expanded") === "true";
      if (open) {
        document.getElementById(id)?.remove();
      } else {
        tr.after(h("tr", { id, class: "log-details-row" }, h("td", { colspan: tr.children.length }, details(row))));
      }
      button.setAttribute("aria-expanded", String(!open));
      button.setAttribute("aria-label", `${open ? "Details" : "Hide details"} of ${row.request_id}`);
      button.textContent = open ? "Details" : "Hide details";
    } }, "Details");
}

function logsTable(rows, isAdmin) {
  const columns = [
    ["When", (r) => when(r.startTime)],
    ["Status", statusBadge],
    ["Model", (r) => r.model_group || r.model],
    isAdmin ? ["Key", keyOf] : null,
    isAdmin ? ["Team", (r) => meta(r).user_api_key_team_alias || r.team_id || "–"] : null,
    ["Spend", (r) => money(r.spend)],
    ["Tokens", (r) => String(r.total_tokens)],
    ["Duration", (r) => ms(duration(r))],
    ["Tags", (r) => list(r.request_tags)],
    ["", toggleButton],
  ].filter(Boolean);
  return h("div", { class: "table-wrap" }, h("table", { class: "logs" },
    h("caption", { text: "Calls, newest first" }),
    h("thead", {}, h("tr", {}, columns.map(([label]) => h("th", { scope: "col" }, label || h("span", { class: "visually-hidden", text: "Details" }))))),
    h("tbody", {}, rows.length
      ? rows.map((row, i) => h("tr", {}, columns.map(([label, value]) => h("td", { "data-label": label }, value(row, i)))))
      : h("tr", {}, h("td", { colspan: columns.length, class: "empty", text: "No call matches." })))));
}

function filterForm(filters, isAdmin) {
  const v = (name) => filters[name] || "";
  return h("form", { class: "filters", role: "search", "aria-label": "Filter the request logs" },
    field("From", { name: "start_date", type: "date", value: v("start_date"), required: true }),
    field("To", { name: "end_date", type: "date", value: v("end_date"), required: true, help: "UTC days, both included." }),
    isAdmin ? field("Key", { name: "key", value: v("key"), help: "Its alias or its hash." }) : null,
    isAdmin ? field("Team id", { name: "team_id", value: v("team_id") }) : null,
    isAdmin ? field("User id", { name: "user_id", value: v("user_id") }) : null,
    field("End user", { name: "end_user", value: v("end_user") }),
    field("Model", { name: "model_group", value: v("model_group") }),
    field("Status", { name: "status_filter", options: STATUS, value: v("status_filter") }),
    field("Blocked by", { name: "blocked_by", value: v("blocked_by"), help: "A guardrail or plugin name." }),
    field("Tag", { name: "tag", value: v("tag") }),
    field("Request id", { name: "request_id", value: v("request_id") }),
    h("button", { type: "submit", class: "primary" }, "Filter"),
    h("button", { type: "button", onclick: () => {
      if (location.hash === "#/logs") window.dispatchEvent(new HashChangeEvent("hashchange"));  // the default view again
      else location.hash = "#/logs";
    } }, "Clear"));
}

export async function render(view, { session, params }) {
  const isAdmin = Boolean(session.is_admin);
  const filters = filtersFrom(params || new URLSearchParams());
  const cursors = ["first"];  // cursors[n]: where page n + 1 starts
  let page = 1;
  const results = h("div", { "aria-live": "polite", "data-testid": "logs" });
  const form = filterForm(filters, isAdmin);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const chosen = formValues(form);
    const hash = `#/logs?${new URLSearchParams(chosen)}`;
    if (hash !== location.hash) history.pushState(null, "", hash);  // linkable; Back re-renders the view before
    Object.keys(filters).forEach((k) => delete filters[k]);
    Object.assign(filters, chosen);
    cursors.length = 1;
    page = 1;
    load();
  });

  async function load() {
    results.replaceChildren(h("p", { class: "loading", text: "Loading…" }));
    try {
      const data = await api("GET", "/spend/logs/ui", { query: { ...query(filters), cursor: cursors[page - 1], page_size: SIZE } });
      cursors[page] = data.next_cursor;
      const partial = data.next_cursor && data.data.length < SIZE;  // a tag with other filters: searched so far
      results.replaceChildren(...[logsTable(data.data, isAdmin),
        partial ? h("p", { class: "muted", text: "Only part of the log was searched for this page: Next searches older calls." }) : null,
        h("nav", { class: "pager", "aria-label": "Pages of request logs" },
          h("button", { type: "button", disabled: page <= 1, onclick: () => { page -= 1; load(); } }, "Previous"),
          h("span", { text: `Page ${page}` }),
          h("button", { type: "button", disabled: !data.next_cursor, onclick: () => { page += 1; load(); } }, "Next"))].filter(Boolean));
    } catch (error) {
      results.replaceChildren(h("p", { class: "error", role: "alert", text: error.message }));
    }
  }

  view.append(...[heading("Request logs", h("button", { type: "button", onclick: () => load() }, "Refresh")),
    isAdmin ? null : h("p", { class: "muted", text: "Calls made with your key only." }),
    form, results].filter(Boolean));
  await load();
}

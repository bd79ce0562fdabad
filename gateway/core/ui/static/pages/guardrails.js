// Guardrails: the configured guardrails (GET /guardrails/list: name, plugin, phases, default_on,
// the plugin's documented settings; admins also see verdict counts and, from GET /plugins, each
// instance's enforcement and the guard plugins that run on every call through `callbacks`), and
// the calls guards blocked lately (GET /guardrails/blocked, a page at a time: which guard and why).
// An internal user sees the guardrails and only their own key's blocked calls.
import { api } from "../api.js";
import { field, formValues, h, heading, list, table, when } from "../dom.js";

const SIZE = 25;
const GUARD_HOOKS = ["pre_request", "post_response", "stream_chunk"];

const yesNo = (value) => h("span", {}, h("span", { class: `badge ${value ? "good" : ""}`, text: value ? "on for every call" : "when asked" }));

function verdictCounts(verdicts) {
  const entries = Object.entries(verdicts || {});
  return entries.length ? entries.map(([name, n]) => `${name} ${n}`).join(" · ") : "none yet";
}

function enforcement(slot) {
  if (!slot) return "–";
  return h("span", {}, h("span", { class: `badge ${slot.mode === "monitor" ? "" : "good"}`, text: slot.mode }),
    ` on error: ${slot.on_error} · priority ${slot.priority}`);
}

function guardrailsTable(guardrails, slots, isAdmin) {
  const columns = [
    { label: "Guardrail", value: (g) => h("span", {}, h("strong", { text: g.guardrail_name }),
      g.guardrail_info && g.guardrail_info.description ? [h("br"), h("small", { text: String(g.guardrail_info.description) })] : null) },
    { label: "Plugin", value: (g) => h("code", { text: g.plugin }) },
    { label: "Phases", value: (g) => list(g.phases) },
    { label: "Default", value: (g) => yesNo(g.default_on) },
    { label: "Settings", value: (g) => (g.params || []).length ? h("ul", {}, g.params.map((p) => h("li", { title: p.description || "" },
      h("code", { text: p.name }), ` (${p.type})`))) : "–" },
  ];
  if (isAdmin) {
    columns.push({ label: "Enforcement", value: (g) => enforcement(slots.get(g.instance || g.guardrail_name)) });
    columns.push({ label: "Verdicts (this worker)", value: (g) => verdictCounts(g.verdicts) });
  }
  return table({ caption: "Configured guardrails", empty: "No guardrail is configured (the config's guardrails: section).", columns, rows: guardrails });
}

/** Guard plugins switched on for every call (`callbacks` or `plugins:`), not as named guardrails. */
const callbackGuards = (slots) => [...slots.values()].filter((s) => s.enabled_by !== "guardrails" && s.enabled_by !== "builtin"
  && s.hooks.some((hook) => GUARD_HOOKS.includes(hook)));

function callbacksTable(rows, counters) {
  if (!rows.length) return null;
  return table({
    caption: "Guard plugins on every call",
    columns: [
      { label: "Plugin", value: (s) => h("code", { text: s.name }) },
      { label: "Enabled by", value: (s) => s.enabled_by },
      { label: "Hooks", value: (s) => list(s.hooks) },
      { label: "Enforcement", value: (s) => enforcement(s) },
      { label: "Verdicts (this worker)", value: (s) => verdictCounts((counters.verdicts || {})[s.name]) },
    ],
    rows,
  });
}

function blockedTable(rows, isAdmin) {
  const columns = [
    { label: "When", value: (r) => when(r.start_time) },
    { label: "Guardrail", value: (r) => h("strong", { text: r.guardrail }) },
    { label: "Phase", value: (r) => r.phase || "–" },
    { label: "Why", value: (r) => r.reason || "–" },
    { label: "Model", value: (r) => r.model },
    { label: "Status", value: (r) => String(r.http_status) },
  ];
  if (isAdmin) columns.push({ label: "Key", value: (r) => r.key_alias || (r.api_key ? h("code", { text: `${r.api_key.slice(0, 12)}…` }) : "–") });
  columns.push({ label: "Request id", value: (r) => h("code", { text: r.request_id }) });
  return table({ caption: "Recent blocked calls, newest first", empty: "No blocked call.", columns, rows });
}

/** Previous / next without a total (the endpoint says whether more rows follow). */
function morePager(page, hasMore, onPage) {
  return h("nav", { class: "pager", "aria-label": "Pages of blocked calls" },
    h("button", { type: "button", disabled: page <= 1, onclick: () => onPage(page - 1) }, "Previous"),
    h("span", { text: `Page ${page}` }),
    h("button", { type: "button", disabled: !hasMore, onclick: () => onPage(page + 1) }, "Next"));
}

export async function render(view, { session }) {
  const isAdmin = Boolean(session.is_admin);
  const configured = h("div", {});
  const state = { page: 1, guardrail: "" };
  const blocked = h("div", { "aria-live": "polite" });
  let names = [];
  try {
    const [listed, plugins] = await Promise.all([api("GET", "/guardrails/list"), isAdmin ? api("GET", "/plugins") : null]);
    const slots = new Map(((plugins && plugins.enabled) || []).map((s) => [s.name, s]));
    const guards = callbackGuards(slots);
    configured.replaceChildren(...[guardrailsTable(listed.guardrails, slots, isAdmin),
      callbacksTable(guards, (plugins && plugins.counters) || {})].filter(Boolean));
    names = [...listed.guardrails.map((g) => g.guardrail_name), ...guards.map((s) => s.name)];
  } catch (error) {
    configured.replaceChildren(h("p", { class: "error", role: "alert", text: error.message }));
  }

  const filters = h("form", { class: "filters", role: "search", "aria-label": "Filter blocked calls" },
    field("Blocked by", { name: "guardrail", options: [["", "Any guardrail"], ...[...new Set(names)].map((n) => [n, n])] }),
    h("button", { type: "submit" }, "Show"));
  filters.addEventListener("submit", (event) => {
    event.preventDefault();
    state.guardrail = formValues(filters).guardrail || "";
    state.page = 1;
    load();
  });

  async function load() {
    try {
      const data = await api("GET", "/guardrails/blocked", { query: { page: state.page, page_size: SIZE, guardrail: state.guardrail } });
      blocked.replaceChildren(blockedTable(data.data, isAdmin), morePager(data.page, data.has_more, (p) => { state.page = p; load(); }));
    } catch (error) {
      blocked.replaceChildren(h("p", { class: "error", role: "alert", text: error.message }));
    }
  }

  view.append(...[heading("Guardrails"), configured,
    h("div", { class: "page-head" }, h("h2", { text: "Blocked calls" }),
      h("div", { class: "actions" }, h("button", { type: "button", onclick: () => load() }, "Refresh"))),
    isAdmin ? null : h("p", { class: "muted", text: "Calls made with your key only." }),
    filters, blocked].filter(Boolean));
  await load();
}

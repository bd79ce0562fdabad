// Models: the model groups the caller may use (an internal user: those their key may call), each
// with its deployments (provider, upstream model, api_base without credentials, limits) and prices
// per 1M tokens (GET /v2/model/info, a page at a time, and GET /model_group/info). Admins check
// health on demand with GET /health: a check reaches each upstream (a models listing, or a 1-token
// call where the deployment asks for one), so the page never runs one by itself.
import { api } from "../api.js";
import { field, formValues, h, heading, money, pager, table } from "../dom.js";

const SIZE = 25;

/** A URL or an error that may wrap at its slashes and spaces. */
const wrapping = (text) => String(text).split(/(?<=\/)/).flatMap((part, i) => (i ? [h("wbr"), part] : [part]));
const perMillion = (cost) => (cost === null || cost === undefined ? null : cost * 1_000_000);
const count = (value) => (value === null || value === undefined ? "–" : Number(value).toLocaleString("en-US"));

/** "$1.00 in · $2.00 out" per 1M tokens, or "not priced". */
function prices(input, output) {
  if (input === null && output === null) return h("span", { class: "muted", text: "not priced" });
  return `${money(input)} in · ${money(output)} out`;
}

/** rpm, tpm and the context window, where set. */
function limits(params, info) {
  const parts = [["rpm", params.rpm], ["tpm", params.tpm], ["parallel", params.max_parallel_requests],
    ["max input tokens", info.max_input_tokens], ["max output tokens", info.max_output_tokens]]
    .filter(([, value]) => value !== null && value !== undefined).map(([name, value]) => `${name} ${count(value)}`);
  return parts.length ? parts.join(" · ") : h("span", { class: "muted", text: "none" });
}

function healthCell(result) {
  if (!result) return h("span", { class: "muted", text: "not checked" });
  if (result.checking) return h("span", { class: "loading", text: "checking…" });
  return h("span", {}, h("span", { class: `badge ${result.healthy ? "good" : "bad"}`, text: result.healthy ? "healthy" : "unhealthy" }),
    result.error ? [h("br"), h("small", {}, wrapping(result.error))] : null);
}

function deploymentColumns(showHealth, health) {
  const columns = [
    { label: "Deployment", value: (d) => h("code", { text: d.model_info.id }) },
    { label: "Provider", value: (d) => d.model_info.litellm_provider || d.model_info.provider || "–" },
    { label: "Upstream model", value: (d) => h("code", { text: d.litellm_params.model || "–" }) },
    { label: "API base", value: (d) => (d.litellm_params.api_base ? h("code", {}, wrapping(d.litellm_params.api_base)) : "provider default") },
    { label: "Limits", value: (d) => limits(d.litellm_params, d.model_info) },
    { label: "Price per 1M tokens", value: (d) => prices(perMillion(d.model_info.input_cost_per_token), perMillion(d.model_info.output_cost_per_token)) },
  ];
  if (showHealth) columns.push({ label: "Health", value: (d) => healthCell(health.get(d.model_info.id)) });
  return columns;
}

/** One group: its summary (what holds wherever a call lands) and its deployments on this page. */
function groupSection(name, info, deployments, { showHealth, health, check }) {
  const summary = info ? [
    ["Providers", (info.providers || []).join(", ") || "–"], ["Mode", info.mode || "–"],
    ["Price per 1M tokens", prices(info.input_cost_per_million_tokens, info.output_cost_per_million_tokens)],
    ["Limits", limits({ rpm: info.rpm, tpm: info.tpm }, info)],
    ["Deployments", String((info.model_ids || []).length)],
  ] : [];
  const id = `group-${name.replace(/[^A-Za-z0-9_-]/g, "_")}`;
  return h("section", { class: "model-group", "aria-labelledby": id, "data-group": name },
    h("div", { class: "page-head" }, h("h2", { id, text: name }),
      showHealth ? h("div", { class: "actions" }, h("button", { type: "button", onclick: () => check(name), "aria-label": `Check ${name}` }, "Check")) : null),
    summary.length ? h("p", {}, summary.map(([label, value], i) => [i ? " · " : "", h("strong", { text: `${label}: ` }), value])) : null,
    table({ caption: `Deployments of ${name}`, columns: deploymentColumns(showHealth, health), rows: deployments }));
}

export async function render(view, { session }) {
  const showHealth = Boolean(session.is_admin);
  const state = { page: 1, search: "" };
  const health = new Map();  // deployment id -> {healthy, error} | {checking}
  const results = h("div", { "aria-live": "polite" });
  const status = h("p", { role: "status", "aria-live": "polite", "data-testid": "health-status" });
  let groups = new Map();
  let shown = [];  // this page's deployments

  const filters = h("form", { class: "filters", role: "search", "aria-label": "Find models" },
    field("Model name", { name: "search", help: "Part of a group's name, any case." }),
    h("button", { type: "submit" }, "Find"));
  filters.addEventListener("submit", (event) => {
    event.preventDefault();
    state.search = formValues(filters).search || "";
    state.page = 1;
    load();
  });

  function draw(data) {
    const byGroup = new Map();
    for (const d of shown) {
      if (!byGroup.has(d.model_name)) byGroup.set(d.model_name, []);
      byGroup.get(d.model_name).push(d);
    }
    results.replaceChildren(h("div", {},
      byGroup.size ? null : h("p", { class: "muted", text: state.search ? "No model matches." : "No models you may use." }),
      [...byGroup].map(([name, deps]) => groupSection(name, groups.get(name), deps, { showHealth, health, check }))),
      pager({ page: data.current_page, pages: data.total_pages, total: data.total_count, onPage: (p) => { state.page = p; load(); } }));
  }

  let last = null;
  async function load() {
    try {
      last = await api("GET", "/v2/model/info", { query: { page: state.page, size: SIZE, search: state.search, sortBy: "model_name" } });
      shown = last.data;
      draw(last);
    } catch (error) {
      results.replaceChildren(h("p", { class: "error", role: "alert", text: error.message }));
    }
  }

  /** GET /health for one group (or every deployment): each result by deployment id. */
  async function check(group) {
    const ids = group ? shown.filter((d) => d.model_name === group).map((d) => d.model_info.id) : shown.map((d) => d.model_info.id);
    for (const id of ids) health.set(id, { checking: true });
    if (last) draw(last);
    status.textContent = `Checking ${group || "every deployment"}…`;
    try {
      const report = await api("GET", "/health", { query: { model: group || undefined } });
      for (const id of ids) health.delete(id);
      for (const [list, healthy] of [[report.healthy_endpoints, true], [report.unhealthy_endpoints, false]]) {
        for (const e of list) if (e.model_id) health.set(e.model_id, { healthy, error: e.error || "" });
      }
      status.textContent = `Checked ${group || "every deployment"} at ${new Date().toLocaleTimeString()}: `
        + `${report.healthy_count} healthy, ${report.unhealthy_count} unhealthy.`;
    } catch (error) {
      for (const id of ids) health.delete(id);
      status.textContent = `The health check failed: ${error.message}`;
    }
    if (last) draw(last);
  }

  try {
    groups = new Map((await api("GET", "/model_group/info")).data.map((g) => [g.model_group, g]));
  } catch (error) {
    status.textContent = `Group details are unavailable: ${error.message}`;
  }
  view.append(...[heading("Models", showHealth ? h("button", { type: "button", class: "primary", onclick: () => check(null) }, "Check now") : null),
    showHealth ? h("p", { class: "muted", text: "“Check now” reaches every deployment's upstream (a models listing, or a 1-token call where the deployment asks for one)." }) : null,
    status, filters, results].filter(Boolean));
  await load();
}

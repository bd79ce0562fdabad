// Audit log (admins only): every management change, newest first, filtered and paginated by the
// server (GET /audit). A row opens the diff of its before and after values; "Verify chain" asks
// GET /audit/verify, which walks the hash chain as `gateway audit verify` does.
import { api } from "../api.js";
import { dialog, field, formValues, h, heading, pager, table, when } from "../dom.js";

const SIZE = 25;
/** The audit log's table names (LiteLLM's), as the filter offers them. */
const TABLES = [
  ["LiteLLM_VerificationToken", "Keys"], ["LiteLLM_TeamTable", "Teams"], ["LiteLLM_UserTable", "Users"],
  ["LiteLLM_EndUserTable", "End users"], ["LiteLLM_BudgetTable", "Budgets"],
  ["LiteLLM_OrganizationTable", "Organizations"], ["LiteLLM_OrganizationMembership", "Organization members"],
  ["LiteLLM_TeamMembership", "Team members"], ["LiteLLM_ProxyModelTable", "Models"], ["LiteLLM_Config", "Config"],
];
const ACTIONS = ["created", "updated", "deleted", "blocked", "unblocked", "regenerated"];
const TABLE_LABEL = Object.fromEntries(TABLES);
const NAME_FIELDS = ["key_alias", "team_alias", "user_email", "organization_alias", "budget_id", "model_name", "alias"];

/** A value as text: strings as they are, anything else as JSON. */
export function asText(value) {
  if (value === undefined) return "";
  return typeof value === "string" ? value : JSON.stringify(value);
}

/** Each field with how it changed: `added`, `removed`, `changed` or `same`. `before` is the whole
 *  record (null on create); `after` the whole record on create, null on delete, and otherwise only
 *  the fields the change wrote (so a field it does not name kept its value). */
export function diff(before, after) {
  const b = before && typeof before === "object" ? before : {};
  const a = after && typeof after === "object" ? after : {};
  const names = [...new Set([...Object.keys(b), ...Object.keys(a)])].sort();
  return names.map((name) => {
    if (!(name in a)) {
      return after === null || after === undefined
        ? { name, kind: "removed", before: b[name] } : { name, kind: "same", before: b[name], after: b[name] };
    }
    const kind = !before || !(name in b) ? "added" : asText(b[name]) === asText(a[name]) ? "same" : "changed";
    return { name, kind, before: b[name], after: a[name] };
  });
}

/** Long text (hashes, ids, times) that may wrap: a line-break opportunity every 16 characters. */
function breakable(text) {
  const parts = String(text).match(/.{1,16}/gs) || [""];
  return parts.flatMap((part, i) => (i ? [h("wbr"), part] : [part]));
}

/** What a row is about, for people: the record's alias or name when it has one, else its id. */
function objectName(row) {
  for (const values of [row.updated_values, row.before_value]) {
    if (!values || typeof values !== "object") continue;
    const found = NAME_FIELDS.find((f) => typeof values[f] === "string" && values[f]);
    if (found) return values[found];
  }
  return row.object_id.length > 24 ? `${row.object_id.slice(0, 12)}…` : row.object_id;
}

function diffTable(changes) {
  return table({
    caption: "Changed fields",
    empty: "No field changed.",
    columns: [
      { label: "Field", value: (c) => h("code", { text: c.name }) },
      { label: "Change", value: (c) => h("span", {}, h("span", { class: `badge ${c.kind === "removed" ? "bad" : c.kind === "added" ? "good" : ""}`, text: c.kind })) },
      { label: "Before", value: (c) => (c.kind === "added" ? "–" : h("del", {}, breakable(asText(c.before)))) },
      { label: "After", value: (c) => (c.kind === "removed" ? "–" : h("ins", {}, breakable(asText(c.after)))) },
    ],
    rows: changes,
  });
}

async function showChanges(row) {
  const all = diff(row.before_value, row.updated_values);
  const changed = all.filter((c) => c.kind !== "same");
  const same = all.filter((c) => c.kind === "same");
  const facts = [
    ["When", when(row.updated_at)], ["Action", row.action], ["Table", TABLE_LABEL[row.table_name] || row.table_name],
    ["Object id", row.object_id], ["Changed by", row.changed_by || "–"], ["By key (hash)", row.changed_by_api_key || "–"],
    ["Row id", row.id], ["Hash", row.hash], ["Previous hash", row.prev_hash],
  ];
  const body = h("div", { class: "diff", "data-testid": "audit-diff" },
    diffTable(changed),
    same.length ? h("details", {}, h("summary", { text: `${same.length} unchanged field${same.length === 1 ? "" : "s"}` }),
      h("ul", {}, same.map((c) => h("li", {}, h("code", { text: c.name }), ": ", breakable(asText(c.after)))))) : null,
    h("h3", { text: "The row" }),
    h("dl", {}, facts.map(([term, value]) => [h("dt", { text: term }), h("dd", {}, h("code", {}, breakable(value)))])));
  await dialog(`${row.action} ${objectName(row)}`, body, [["Close", true, "primary"]]);
}

function verifyButton(result) {
  return h("button", { type: "button", onclick: async (event) => {
    const button = event.currentTarget;
    button.disabled = true;
    result.replaceChildren(h("span", { class: "loading", text: "Checking the chain…" }));
    try {
      const verdict = await api("GET", "/audit/verify");
      result.replaceChildren(
        h("span", { class: `badge ${verdict.ok ? "good" : "bad"}`, text: verdict.ok ? "intact" : "broken" }), " ",
        h("span", { text: verdict.ok ? `The audit log's hash chain is intact (${verdict.rows} rows).`
          : `The audit log's hash chain is broken: ${verdict.message}` }));
    } catch (error) {
      result.replaceChildren(h("span", { class: "error", text: error.message }));
    } finally {
      button.disabled = false;
    }
  } }, "Verify chain");
}

export async function render(view, { session }) {
  if (!session.is_admin) {
    view.append(heading("Audit log"), h("p", { class: "error", role: "alert", text: "Only an admin can read the audit log." }));
    return;
  }
  const state = { page: 1, filters: {} };
  const results = h("div", { "aria-live": "polite" });
  const verdict = h("p", { "data-testid": "chain-result", role: "status", "aria-live": "polite" });
  const filters = h("form", { class: "filters", role: "search", "aria-label": "Filter the audit log" },
    field("Table", { name: "table_name", options: [["", "Any"], ...TABLES] }),
    field("Action", { name: "action", options: [["", "Any"], ...ACTIONS.map((a) => [a, a])] }),
    field("Object id", { name: "object_id" }),
    field("Changed by", { name: "changed_by" }),
    field("From", { name: "start_date", type: "date" }),
    field("To", { name: "end_date", type: "date", help: "That whole day included." }),
    h("button", { type: "submit" }, "Filter"));
  filters.addEventListener("submit", (event) => {
    event.preventDefault();
    state.filters = formValues(filters);
    state.page = 1;
    load();
  });

  async function load() {
    try {
      const data = await api("GET", "/audit", { query: { ...state.filters, page: state.page, page_size: SIZE } });
      results.replaceChildren(table({
        caption: "Changes, newest first",
        empty: "No change matches.",
        columns: [
          { label: "When", value: (r) => when(r.updated_at) },
          { label: "Action", value: (r) => h("span", {}, h("span", { class: "badge", text: r.action })) },
          { label: "Table", value: (r) => TABLE_LABEL[r.table_name] || r.table_name },
          { label: "Object", value: (r) => h("span", {}, h("strong", { text: objectName(r) }), h("br"), h("code", { class: "muted" }, breakable(r.object_id))) },
          { label: "Changed by", value: (r) => r.changed_by || "–" },
          { label: "Changes", value: (r) => h("button", { type: "button", onclick: () => showChanges(r),
            "aria-label": `Show changes: ${r.action} ${objectName(r)} at ${when(r.updated_at)}` }, "Show changes") },
        ],
        rows: data.audit_logs,
      }), pager({ page: data.page, pages: Math.ceil(data.total / data.page_size), total: data.total,
        onPage: (p) => { state.page = p; load(); } }));
    } catch (error) {
      results.replaceChildren(h("p", { class: "error", role: "alert", text: error.message }));
    }
  }

  view.append(heading("Audit log", verifyButton(verdict)), verdict, filters, results);
  await load();
}

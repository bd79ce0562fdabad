// Keys: list (server-side pages), create with every field of /key/generate, the raw key shown once,
// block / unblock, regenerate, delete, edit. An internal user sees and manages their own keys only.
import { api } from "../api.js";
import { confirm, dialog, field, formValues, h, heading, list, money, notify, pager, showError, showKeyOnce, table, when } from "../dom.js";

const SIZE = 25;

/** The fields of /key/generate and /key/update, as form controls (`key`: the values to edit). */
function keyFields(key = {}, creating = true) {
  const v = (name) => (key[name] === null || key[name] === undefined ? "" : key[name]);
  const listed = (name) => (key[name] || []).join(", ");
  const json = (name) => (key[name] && Object.keys(key[name]).length ? JSON.stringify(key[name]) : "");
  return [
    field("Alias", { name: "key_alias", value: v("key_alias"), help: "A name to find the key by (unique)." }),
    field("Models", { name: "models", value: listed("models"), "data-kind": "list", help: "Comma-separated; empty: every model." }),
    field("Max budget ($)", { name: "max_budget", type: "number", step: "any", min: "0", value: v("max_budget") }),
    field("Budget period", { name: "budget_duration", value: v("budget_duration"), help: "e.g. 30d, 24h; empty: never resets." }),
    field("Requests per minute", { name: "rpm_limit", type: "number", min: "0", step: "1", value: v("rpm_limit") }),
    field("Tokens per minute", { name: "tpm_limit", type: "number", min: "0", step: "1", value: v("tpm_limit") }),
    field("Parallel requests", { name: "max_parallel_requests", type: "number", min: "0", step: "1", value: v("max_parallel_requests") }),
    field("User", { name: "user_id", value: v("user_id") }),
    field("Team", { name: "team_id", value: v("team_id") }),
    field("Tags", { name: "tags", value: listed("tags"), "data-kind": "list" }),
    field("Guardrails", { name: "guardrails", value: (key.metadata && key.metadata.guardrails || []).join(", "), "data-kind": "list",
      help: "Guardrails switched on for this key's calls." }),
    creating ? field("Expires after", { name: "duration", help: "e.g. 30d; empty: never." }) : null,
    field("Metadata (JSON)", { name: "metadata", type: "textarea", value: json("metadata"), "data-kind": "json" }),
    field("Permissions (JSON)", { name: "permissions", type: "textarea", value: json("permissions"), "data-kind": "json" }),
  ];
}

function readForm(form) {
  try {
    return formValues(form);
  } catch (error) {
    throw new Error(`Metadata and permissions must be JSON objects: ${error.message}`);
  }
}

async function createKey(refresh) {
  const form = h("form", { class: "grid", id: "create-key" }, keyFields());
  const choice = await dialog("Create a key", form, [["Cancel", false], ["Create", true, "primary"]]);
  if (!choice) return;
  try {
    const created = await api("POST", "/key/generate", { body: readForm(form) });
    await showKeyOnce("Your new key", created.key);
    refresh();
  } catch (error) {
    showError(error);
  }
}

async function editKey(key, refresh) {
  const form = h("form", { class: "grid" }, keyFields(key, false));
  if (!await dialog(`Edit ${key.key_alias || key.key_name}`, form, [["Cancel", false], ["Save", true, "primary"]])) return;
  try {
    const values = readForm(form);
    for (const name of ["models", "tags", "guardrails"]) if (!(name in values)) values[name] = [];
    await api("POST", "/key/update", { body: { key: key.token, ...values } });
    notify("Key saved");
    refresh();
  } catch (error) {
    showError(error);
  }
}

async function act(key, action, refresh) {
  const name = key.key_alias || key.key_name;
  try {
    if (action === "block" || action === "unblock") {
      await api("POST", `/key/${action}`, { body: { key: key.token } });
      notify(`Key ${name} ${action}ed`);
    } else if (action === "regenerate") {
      if (!await confirm("Regenerate key", `A new key replaces ${name}; the old one stops working at once.`, "Regenerate")) return;
      const fresh = await api("POST", `/key/${key.token}/regenerate`, { body: {} });
      await showKeyOnce("The regenerated key", fresh.key);
    } else if (action === "delete") {
      if (!await confirm("Delete key", `Delete ${name}? Calls with it are refused from now on.`, "Delete")) return;
      await api("POST", "/key/delete", { body: { keys: [key.token] } });
      notify(`Key ${name} deleted`);
    }
    refresh();
  } catch (error) {
    showError(error);
  }
}

export async function render(view, { session }) {
  const state = { page: 1, user_id: "", team_id: "", key_alias: "" };
  const results = h("div", { "aria-live": "polite" });
  const filters = h("form", { class: "filters", role: "search", "aria-label": "Filter keys" },
    session.is_admin ? [field("User", { name: "user_id" }), field("Team", { name: "team_id" })] : null,
    field("Alias", { name: "key_alias" }),
    h("button", { type: "submit" }, "Filter"));
  filters.addEventListener("submit", (event) => {
    event.preventDefault();
    Object.assign(state, { user_id: "", team_id: "", key_alias: "" }, formValues(filters), { page: 1 });
    load();
  });

  async function load() {
    try {
      const data = await api("GET", "/key/list", { query: {
        page: state.page, size: SIZE, return_full_object: "true",
        user_id: state.user_id, team_id: state.team_id, key_alias: state.key_alias,
      } });
      results.replaceChildren(table({
        caption: "Keys",
        empty: "No keys match.",
        columns: [
          { label: "Key", value: (k) => h("span", {}, h("strong", { text: k.key_alias || "(no alias)" }), h("br"), h("code", { text: k.key_name })) },
          { label: "Status", value: (k) => k.blocked ? h("span", { class: "badge bad", text: "blocked" }) : h("span", { class: "badge good", text: "active" }) },
          { label: "Spend", value: (k) => money(k.spend) },
          { label: "Budget", value: (k) => k.max_budget === null ? "–" : `${money(k.max_budget)}${k.budget_duration ? ` / ${k.budget_duration}` : ""}` },
          { label: "Models", value: (k) => list(k.models) },
          { label: "User / team", value: (k) => [k.user_id || "–", " / ", k.team_id || "–"] },
          { label: "Limits", value: (k) => `rpm ${k.rpm_limit ?? "–"} · tpm ${k.tpm_limit ?? "–"}` },
          { label: "Created", value: (k) => when(k.created_at) },
          { label: "Actions", value: (k) => h("div", { class: "actions" },
            h("button", { type: "button", onclick: () => editKey(k, load), "aria-label": `Edit ${k.key_alias || k.key_name}` }, "Edit"),
            h("button", { type: "button", onclick: () => act(k, k.blocked ? "unblock" : "block", load),
              "aria-label": `${k.blocked ? "Unblock" : "Block"} ${k.key_alias || k.key_name}` }, k.blocked ? "Unblock" : "Block"),
            h("button", { type: "button", onclick: () => act(k, "regenerate", load), "aria-label": `Regenerate ${k.key_alias || k.key_name}` }, "Regenerate"),
            h("button", { type: "button", class: "danger", onclick: () => act(k, "delete", load), "aria-label": `Delete ${k.key_alias || k.key_name}` }, "Delete")) },
        ],
        rows: data.keys,
      }), pager({ page: data.current_page, pages: data.total_pages, total: data.total_count, onPage: (p) => { state.page = p; load(); } }));
    } catch (error) {
      results.replaceChildren(h("p", { class: "error", role: "alert", text: error.message }));
    }
  }

  view.append(heading("Keys", h("button", { type: "button", class: "primary", onclick: () => createKey(load) }, "Create key")), filters, results);
  await load();
}

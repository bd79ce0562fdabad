// End users (LiteLLM's customers: the `user` of an LLM call): the list (server-side pages of
// /customer/list), create, edit, block / unblock (a blocked end user's calls are refused at once,
// whatever key makes them), delete.
import { api } from "../api.js";
import { confirm, field, h, heading, table, when } from "../dom.js";
import { askForm, change, filterForm, formValue, jsonField, named, pagedList, rowButton, spendOf, status } from "../people.js";

const nameOf = (e) => e.alias || e.user_id;

/** The fields /customer/new and /customer/update share, filled from `endUser` when editing. */
function endUserFields(endUser = {}) {
  const v = (name) => formValue(endUser, name);
  return [
    field("Alias", { name: "alias", value: v("alias") }),
    field("Max budget ($)", { name: "max_budget", type: "number", step: "any", min: "0", value: v("max_budget") }),
    field("Budget period", { name: "budget_duration", value: v("budget_duration"), help: "e.g. 30d, 24h; empty: never resets." }),
    field("Budget id", { name: "budget_id", value: v("budget_id"), help: "A shared budget from /budget/new, instead of a budget of its own." }),
    jsonField("Metadata (JSON)", "metadata", endUser.metadata),
  ];
}

/** The budget that applies: the end user's own, else its linked budget's. */
function budgetOf(e) {
  const linked = e.litellm_budget_table || {};
  return spendOf(e.spend, e.max_budget ?? linked.max_budget ?? null, e.budget_duration || linked.budget_duration);
}

async function createEndUser(refresh) {
  const values = await askForm("Create an end user", [
    field("End user id", { name: "user_id", required: true, help: "The `user` its LLM calls send." }),
    ...endUserFields(),
    field("Blocked", { name: "blocked", type: "checkbox" }),
  ], { action: "Create" });
  if (!values) return;
  await change(() => api("POST", "/customer/new", { body: values }), (e) => `End user ${nameOf(e)} created`, refresh);
}

async function editEndUser(endUser, refresh) {
  const values = await askForm(`Edit ${nameOf(endUser)}`, endUserFields(endUser), { clearing: true });
  if (!values) return;
  await change(() => api("POST", "/customer/update", { body: { user_id: endUser.user_id, ...values } }),
    `End user ${nameOf(endUser)} saved`, refresh);
}

async function blockEndUser(endUser, refresh) {
  const action = endUser.blocked ? "unblock" : "block";
  await change(() => api("POST", `/customer/${action}`, { body: { user_ids: [endUser.user_id] } }),
    `End user ${nameOf(endUser)} ${action}ed`, refresh);
}

async function deleteEndUser(endUser, refresh) {
  if (!await confirm("Delete end user", `Delete ${nameOf(endUser)}? Their spend record goes too.`, "Delete")) return;
  await change(() => api("POST", "/customer/delete", { body: { user_ids: [endUser.user_id] } }),
    `End user ${nameOf(endUser)} deleted`, refresh);
}

export async function render(view) {
  const { results, load, search } = pagedList({ path: "/customer/list", field: "customers" }, (endUsers) => table({
    caption: "End users",
    empty: "No end users match.",
    columns: [
      { label: "End user", value: (e) => named(e.alias, e.user_id) },
      { label: "Status", value: (e) => status(e.blocked) },
      { label: "Spend", value: budgetOf },
      { label: "Budget id", value: (e) => e.budget_id || "–" },
      { label: "Created", value: (e) => when(e.created_at) },
      { label: "Actions", value: (e) => h("div", { class: "actions" },
        rowButton("Edit", nameOf(e), () => editEndUser(e, load)),
        rowButton(e.blocked ? "Unblock" : "Block", nameOf(e), () => blockEndUser(e, load)),
        rowButton("Delete", nameOf(e), () => deleteEndUser(e, load), "danger")) },
    ],
    rows: endUsers,
  }));
  const filters = filterForm("Filter end users", [field("Id or alias", { name: "search", help: "Part of it, any case." })], search);
  const blockForm = h("form", { class: "filters", "aria-label": "Block an end user by id" },
    field("Block an end user", { name: "user_id", required: true, help: "Any id, seen before or not: its calls are refused from now on." }),
    h("button", { type: "submit", class: "danger" }, "Block"));
  blockForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const id = blockForm.elements.user_id.value.trim();
    if (!id) return;
    await change(async () => { await api("POST", "/customer/block", { body: { user_ids: [id] } }); blockForm.reset(); },
      `End user ${id} blocked`, load);
  });
  view.append(heading("End users", h("button", { type: "button", class: "primary", onclick: () => createEndUser(load) }, "Create end user")),
    filters, blockForm, results);
  await load();
}

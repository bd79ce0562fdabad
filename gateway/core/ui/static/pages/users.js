// Users (internal users): the list (server-side pages of /user/list, with each user's key count),
// create with every field of /user/new (its first key shown once), edit, delete, and a user's keys
// in a dialog (/key/list?user_id=..., paginated too).
import { api } from "../api.js";
import { confirm, dialog, field, h, heading, list, showKeyOnce, table, when } from "../dom.js";
import { KEY_COLUMNS, askForm, change, filterForm, formValue, jsonField, named, pagedList, rowButton, spendOf } from "../people.js";

const KEYS_SIZE = 10;  // keys a page in a user's keys dialog
const ROLES = ["internal_user", "internal_user_viewer", "proxy_admin", "proxy_admin_viewer"].map((r) => [r, r]);
const nameOf = (u) => u.user_alias || u.user_id;

/** The fields /user/new and /user/update share, filled from `user` when editing. */
function userFields(user = {}) {
  const v = (name) => formValue(user, name);
  return [
    field("Alias", { name: "user_alias", value: v("user_alias") }),
    field("E-mail", { name: "user_email", type: "email", value: v("user_email") }),
    field("Role", { name: "user_role", options: ROLES, value: user.user_role || "internal_user",
      help: "proxy_admin: an admin; internal_user: their own keys and spend." }),
    field("Models", { name: "models", value: (user.models || []).join(", "), "data-kind": "list", help: "Comma-separated; empty: every model." }),
    field("Max budget ($)", { name: "max_budget", type: "number", step: "any", min: "0", value: v("max_budget") }),
    field("Budget period", { name: "budget_duration", value: v("budget_duration"), help: "e.g. 30d, 24h; empty: never resets." }),
    field("Requests per minute", { name: "rpm_limit", type: "number", min: "0", step: "1", value: v("rpm_limit") }),
    field("Tokens per minute", { name: "tpm_limit", type: "number", min: "0", step: "1", value: v("tpm_limit") }),
    jsonField("Metadata (JSON)", "metadata", user.metadata),
  ];
}

async function createUser(refresh) {
  const values = await askForm("Create a user", [
    field("User id", { name: "user_id", help: "Empty: one is made up." }),
    ...userFields(),
    field("Teams", { name: "teams", "data-kind": "list",
      help: "Team ids kept on the user; to make them a member with a role, add them on the team's page." }),
    field("Create a first key", { name: "auto_create_key", type: "checkbox", checked: true }),
    field("Key alias", { name: "key_alias", help: "The first key's alias." }),
    field("Key expires after", { name: "duration", help: "e.g. 30d; empty: never." }),
  ], { action: "Create" });
  if (!values) return;
  if (!values.auto_create_key) {
    delete values.key_alias;
    delete values.duration;
  }
  await change(async () => {
    const user = await api("POST", "/user/new", { body: values });
    if (user.key) await showKeyOnce("The user's first key", user.key);
    return user;
  }, (u) => `User ${nameOf(u)} created`, refresh);
}

async function editUser(user, refresh) {
  const values = await askForm(`Edit ${nameOf(user)}`, userFields(user), { clearing: true });
  if (!values) return;
  await change(() => api("POST", "/user/update", { body: { user_id: user.user_id, ...values } }), `User ${nameOf(user)} saved`, refresh);
}

async function deleteUser(user, refresh) {
  if (!await confirm("Delete user", `Delete ${nameOf(user)}? Their keys are deleted too, and they leave their teams.`, "Delete")) return;
  await change(() => api("POST", "/user/delete", { body: { user_ids: [user.user_id] } }), `User ${nameOf(user)} deleted`, refresh);
}

/** The user's keys, a page at a time, in a dialog. */
async function showKeys(user) {
  const { results, load } = pagedList(async (page) => {
    const data = await api("GET", "/key/list", { query: { user_id: user.user_id, page, size: KEYS_SIZE, return_full_object: "true" } });
    return { rows: data.keys, page: data.current_page, pages: data.total_pages, total: data.total_count };
  }, (keys) => table({
    caption: `Keys of ${nameOf(user)}`,
    empty: "This user has no keys.",
    columns: [
      ...KEY_COLUMNS,
      { label: "Team", value: (k) => k.team_id || "–" },
      { label: "Expires", value: (k) => when(k.expires) },
    ],
    rows: keys,
  }));
  await load();
  await dialog(`Keys of ${nameOf(user)}`, results, [["Close", true]]);
}

export async function render(view) {
  const { results, load, search } = pagedList({ path: "/user/list", field: "users" }, (users) => table({
    caption: "Users",
    empty: "No users match.",
    columns: [
      { label: "User", value: (u) => named(u.user_alias, u.user_id) },
      { label: "E-mail", value: (u) => u.user_email || "–" },
      { label: "Role", value: (u) => u.user_role },
      { label: "Spend", value: (u) => spendOf(u.spend, u.max_budget, u.budget_duration) },
      { label: "Keys", value: (u) => String(u.key_count) },
      { label: "Teams", value: (u) => list(u.teams) },
      { label: "Actions", value: (u) => h("div", { class: "actions" },
        rowButton("Keys", nameOf(u), () => showKeys(u)),
        rowButton("Edit", nameOf(u), () => editUser(u, load)),
        rowButton("Delete", nameOf(u), () => deleteUser(u, load), "danger")) },
    ],
    rows: users,
  }));
  const filters = filterForm("Filter users", [
    field("E-mail", { name: "user_email", help: "Part of the e-mail, any case." }),
    field("Role", { name: "role", options: [["", "any"], ...ROLES] }),
    field("Team", { name: "team", help: "A team id." }),
  ], search);
  view.append(heading("Users", h("button", { type: "button", class: "primary", onclick: () => createUser(load) }, "Create user")),
    filters, results);
  await load();
}

// Teams: the list (server-side pages of /v2/team/list), create with every field of /team/new, edit,
// block / unblock, delete; and one team's page (#/teams?team_id=...) with its members, their role,
// spend and budget inside the team (/team/member_add, /team/member_update, /team/member_delete).
import { api } from "../api.js";
import { confirm, field, h, heading, list, money, table, when } from "../dom.js";
import { KEY_COLUMNS, askForm, change, filterForm, formValue, jsonField, named, pagedList, rowButton, spendOf, status } from "../people.js";

const ROLES = [["user", "user"], ["admin", "admin"]];
const teamLink = (t) => `#/teams?team_id=${encodeURIComponent(t.team_id)}`;
const nameOf = (t) => t.team_alias || t.team_id;

/** The fields /team/new and /team/update share, filled from `team` when editing. Guardrails and
 *  model aliases have fields of their own, so the metadata shown leaves them out (guardrails in the
 *  mapping form, `{"name": true, "modify_guardrails": false}`, stay in the metadata). */
function teamFields(team = {}) {
  const v = (name) => formValue(team, name);
  const { model_aliases: _aliases, ...metadata } = team.metadata || {};
  const listed = metadata.guardrails === undefined || Array.isArray(metadata.guardrails);
  if (listed) delete metadata.guardrails;
  return [
    field("Alias", { name: "team_alias", value: v("team_alias"), help: "A name to find the team by." }),
    field("Models", { name: "models", value: (team.models || []).join(", "), "data-kind": "list",
      help: "Comma-separated; empty: every model." }),
    field("Max budget ($)", { name: "max_budget", type: "number", step: "any", min: "0", value: v("max_budget") }),
    field("Budget period", { name: "budget_duration", value: v("budget_duration"), help: "e.g. 30d, 24h; empty: never resets." }),
    field("Requests per minute", { name: "rpm_limit", type: "number", min: "0", step: "1", value: v("rpm_limit") }),
    field("Tokens per minute", { name: "tpm_limit", type: "number", min: "0", step: "1", value: v("tpm_limit") }),
    field("Organization", { name: "organization_id", value: v("organization_id"), help: "An organization id; its models and budget bound the team." }),
    listed ? field("Guardrails", { name: "guardrails", value: (team.metadata?.guardrails || []).join(", "),
      "data-kind": "list", help: "Guardrails switched on for the team's calls." }) : null,
    jsonField("Model aliases (JSON)", "model_aliases", team.model_aliases, 'e.g. {"fast": "gpt-test"}'),
    jsonField("Metadata (JSON)", "metadata", metadata),
  ];
}

async function createTeam(refresh) {
  const values = await askForm("Create a team", [
    field("Team id", { name: "team_id", help: "Empty: one is made up." }),
    ...teamFields(),
    field("Admins", { name: "admins_ids", "data-kind": "list", help: "User ids, comma-separated: members with the admin role." }),
    field("Members", { name: "members_ids", "data-kind": "list", help: "User ids, comma-separated: members with the user role." }),
    field("Blocked", { name: "blocked", type: "checkbox" }),
  ], { action: "Create" });
  if (!values) return;
  const { admins_ids: admins = [], members_ids: members = [], ...body } = values;
  const roles = [...admins.map((id) => ({ role: "admin", user_id: id })), ...members.map((id) => ({ role: "user", user_id: id }))];
  if (roles.length) body.members_with_roles = roles;
  await change(() => api("POST", "/team/new", { body }), (t) => `Team ${nameOf(t)} created`, refresh);
}

async function editTeam(team, refresh) {
  const values = await askForm(`Edit ${nameOf(team)}`, teamFields(team), { clearing: true });
  if (!values) return;
  if (values.guardrails === null) delete values.guardrails;  // the metadata sent replaces the team's, guardrails included
  await change(() => api("POST", "/team/update", { body: { team_id: team.team_id, ...values } }), `Team ${nameOf(team)} saved`, refresh);
}

async function blockTeam(team, refresh) {
  const action = team.blocked ? "unblock" : "block";
  await change(() => api("POST", `/team/${action}`, { body: { team_id: team.team_id } }), `Team ${nameOf(team)} ${action}ed`, refresh);
}

async function deleteTeam(team, refresh) {
  if (!await confirm("Delete team", `Delete ${nameOf(team)}? Every key in it is deleted too.`, "Delete")) return;
  await change(() => api("POST", "/team/delete", { body: { team_ids: [team.team_id] } }), `Team ${nameOf(team)} deleted`, refresh);
}

function teamActions(t, refresh) {
  const name = nameOf(t);
  return h("div", { class: "actions" },
    h("a", { href: teamLink(t), "aria-label": `Members of ${name}` }, "Members"),
    rowButton("Edit", name, () => editTeam(t, refresh)),
    rowButton(t.blocked ? "Unblock" : "Block", name, () => blockTeam(t, refresh)),
    rowButton("Delete", name, () => deleteTeam(t, refresh), "danger"));
}

async function renderList(view) {
  const { results, load, search } = pagedList({ path: "/v2/team/list", field: "teams" }, (teams) => table({
    caption: "Teams",
    empty: "No teams match.",
    columns: [
      { label: "Team", value: (t) => h("a", { href: teamLink(t) }, named(t.team_alias, t.team_id)) },
      { label: "Status", value: (t) => status(t.blocked) },
      { label: "Spend", value: (t) => spendOf(t.spend, t.max_budget, t.budget_duration) },
      { label: "Models", value: (t) => list(t.models) },
      { label: "Members", value: (t) => String(t.members_count) },
      { label: "Limits", value: (t) => `rpm ${t.rpm_limit ?? "–"} · tpm ${t.tpm_limit ?? "–"}` },
      { label: "Actions", value: (t) => teamActions(t, load) },
    ],
    rows: teams,
  }));
  const filters = filterForm("Filter teams", [
    field("Alias", { name: "team_alias", help: "Part of the alias, any case." }),
    field("Member", { name: "user_id", help: "A user id: the teams they belong to." }),
  ], search);
  view.append(heading("Teams", h("button", { type: "button", class: "primary", onclick: () => createTeam(load) }, "Create team")),
    filters, results);
  await load();
}

// -- one team's page: its members ------------------------------------------------------------------

/** Every member once: from members_with_roles, then the legacy `admins` / `members` lists. */
function membersOf(team) {
  const out = new Map();
  for (const m of team.members_with_roles || []) if (m.user_id) out.set(m.user_id, { ...m });
  for (const id of team.admins || []) if (!out.has(id)) out.set(id, { user_id: id, role: "admin" });
  for (const id of team.members || []) if (!out.has(id)) out.set(id, { user_id: id, role: "user" });
  return [...out.values()];
}

async function editMember(teamId, member, budget, refresh) {
  const values = await askForm(`Edit member ${member.user_id}`, [
    field("Role", { name: "role", options: ROLES, value: member.role || "user" }),
    field("Budget in the team ($)", { name: "max_budget_in_team", type: "number", step: "any", min: "0", value: budget ?? "",
      help: "What this member may spend through the team's keys." }),
  ]);
  if (!values) return;
  await change(() => api("POST", "/team/member_update", { body: { team_id: teamId, user_id: member.user_id, ...values } }),
    `Member ${member.user_id} saved`, refresh);
}

async function removeMember(teamId, member, refresh) {
  if (!await confirm("Remove member", `Take ${member.user_id} out of the team?`, "Remove")) return;
  await change(() => api("POST", "/team/member_delete", { body: { team_id: teamId, user_id: member.user_id } }),
    `Member ${member.user_id} removed`, refresh);
}

function addMemberForm(teamId, refresh) {
  const form = h("form", { class: "filters", "aria-label": "Add a member" },
    field("User id or e-mail", { name: "who", required: true, help: "An unknown e-mail creates the user." }),
    field("Role", { name: "role", options: ROLES, value: "user" }),
    field("Budget in the team ($)", { name: "max_budget_in_team", type: "number", step: "any", min: "0" }),
    h("button", { type: "submit", class: "primary" }, "Add member"));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const who = form.elements.who.value.trim();
    const budget = form.elements.max_budget_in_team.value.trim();
    const member = { role: form.elements.role.value, ...(who.includes("@") ? { user_email: who } : { user_id: who }) };
    const body = { team_id: teamId, member, ...(budget === "" ? {} : { max_budget_in_team: Number(budget) }) };
    await change(async () => { await api("POST", "/team/member_add", { body }); form.reset(); }, `Member ${who} added`, refresh);
  });
  return form;
}

async function renderTeam(view, teamId) {
  const top = h("div");
  const results = h("div", { "aria-live": "polite" });
  async function load() {
    let info;
    try {
      info = await api("GET", "/team/info", { query: { team_id: teamId } });
    } catch (error) {
      results.replaceChildren(h("p", { class: "error", role: "alert", text: error.message }));
      return;
    }
    const team = info.team_info;
    const rows = new Map(info.team_memberships.map((m) => [m.user_id, m]));
    const budgetOf = (m) => rows.get(m.user_id)?.litellm_budget_table?.max_budget ?? null;
    const name = nameOf(team);
    top.replaceChildren(
      heading(`Team ${name}`, h("a", { href: "#/teams" }, "All teams"), rowButton("Edit", name, () => editTeam(team, load)),
        rowButton(team.blocked ? "Unblock" : "Block", name, () => blockTeam(team, load))),
      h("div", { class: "cards" },
        card("Status", status(team.blocked)), card("Spend", spendOf(team.spend, team.max_budget, team.budget_duration)),
        card("Members", String(membersOf(team).length)), card("Models", list(team.models)),
        card("Limits", `rpm ${team.rpm_limit ?? "–"} · tpm ${team.tpm_limit ?? "–"}`), card("Created", when(team.created_at))));
    results.replaceChildren(
      table({
        caption: `Members of ${name}`,
        empty: "No members yet.",
        columns: [
          { label: "Member", value: (m) => named(m.user_id, m.user_email) },
          { label: "Role", value: (m) => m.role || "user" },
          { label: "Spend in team", value: (m) => rows.has(m.user_id) ? money(rows.get(m.user_id).spend) : "–" },
          { label: "Budget in team", value: (m) => money(budgetOf(m)) },
          { label: "Actions", value: (m) => h("div", { class: "actions" },
            rowButton("Edit", m.user_id, () => editMember(team.team_id, m, budgetOf(m), load)),
            rowButton("Remove", m.user_id, () => removeMember(team.team_id, m, load), "danger")) },
        ],
        rows: membersOf(team),
      }),
      h("h2", { text: "Keys" }),
      table({
        caption: `Keys of ${name}`,
        empty: "No keys in this team.",
        columns: [
          ...KEY_COLUMNS,
          { label: "User", value: (k) => k.user_id || "–" },
        ],
        rows: info.keys,
      }));
  }
  view.append(top, h("h2", { text: "Members" }), addMemberForm(teamId, load), results);
  await load();
}

const card = (label, value) => h("div", { class: "card" }, h("div", { class: "muted", text: label }), h("div", { class: "value" }, value));

export async function render(view, { params }) {
  const teamId = params.get("team_id");
  if (teamId) await renderTeam(view, teamId);
  else await renderList(view);
}

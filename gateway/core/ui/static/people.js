// What the Teams, Users and End users pages share: a server-side paginated list that announces its
// results, forms in a dialog, buttons named after their row, and how a budget or a status reads.
import { api } from "./api.js";
import { dialog, field, formValues, h, money, notify, pager, showError } from "./dom.js";

/** "$1.20 of $5.00 / 30d", "$1.20 (no budget)". */
export function spendOf(spend, maxBudget, period) {
  if (maxBudget === null || maxBudget === undefined) return `${money(spend || 0)} (no budget)`;
  return `${money(spend || 0)} of ${money(maxBudget)}${period ? ` / ${period}` : ""}`;
}

export const status = (blocked) =>
  h("span", { class: blocked ? "badge bad" : "badge good", text: blocked ? "blocked" : "active" });

/** A record's name over its id, as the first cell of a row shows them (the id alone when no name). */
export const named = (name, id) =>
  h("span", {}, h("strong", { text: name || id }), name && id ? [h("br"), h("code", { text: id })] : null);

/** The first columns of a table of keys (a team's, a user's). */
export const KEY_COLUMNS = [
  { label: "Key", value: (k) => named(k.key_alias || "(no alias)", k.key_name) },
  { label: "Status", value: (k) => status(k.blocked) },
  { label: "Spend", value: (k) => spendOf(k.spend, k.max_budget, k.budget_duration) },
];

/** A row's button, named after the row for screen readers: `rowButton("Block", "ui-made", fn)`. */
export const rowButton = (label, name, onclick, cls) =>
  h("button", { type: "button", class: cls, onclick, "aria-label": `${label} ${name}` }, label);

/** A search form above a list: `onSearch(values)` with the filled fields (empty ones absent). */
export function filterForm(label, fields, onSearch) {
  const form = h("form", { class: "filters", role: "search", "aria-label": label }, fields,
    h("button", { type: "submit" }, "Filter"));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    onSearch(formValues(form));
  });
  return form;
}

/** A list shown a page at a time: `results` (announced when they change), `load()` and
 *  `search(filters)` (back to page 1). `source` is `{path, field}` for the replies shaped
 *  `{<field>: [...], page, total_pages, total}` (with `page_size`), or a function
 *  `(page, filters) -> {rows, page, pages, total}`; `show(rows)` makes the table. */
export function pagedList(source, show, size = 25) {
  const fetchPage = typeof source === "function" ? source : async (page, filters) => {
    const data = await api("GET", source.path, { query: { ...filters, page, page_size: size } });
    return { rows: data[source.field], page: data.page, pages: data.total_pages, total: data.total };
  };
  const results = h("div", { "aria-live": "polite" });
  const state = { page: 1, filters: {} };
  async function load() {
    try {
      const got = await fetchPage(state.page, state.filters);
      results.replaceChildren(show(got.rows), pager({ page: got.page, pages: got.pages, total: got.total,
        onPage: (p) => { state.page = p; load(); } }));
    } catch (error) {
      results.replaceChildren(h("p", { class: "error", role: "alert", text: error.message }));
    }
  }
  const search = (filters) => { Object.assign(state, { page: 1, filters }); return load(); };
  return { results, load, search };
}

/** A form in a dialog; resolves with its values, or null when cancelled. With `clearing`, a field
 *  left empty is sent as null (an edit clears it) instead of being left out. */
export async function askForm(title, fields, { action = "Save", clearing = false } = {}) {
  const form = h("form", { class: "grid" }, fields);
  form.addEventListener("submit", (event) => event.preventDefault());
  form.addEventListener("keydown", (event) => {  // Enter in a one-line field presses the dialog's main button
    if (event.key !== "Enter" || event.target.tagName !== "INPUT" || event.target.type === "checkbox") return;
    event.preventDefault();
    form.closest("dialog").querySelector(".actions button.primary").click();
  });
  if (!await dialog(title, form, [["Cancel", false], [action, true, "primary"]])) return null;
  let values;
  try {
    values = formValues(form);
  } catch (error) {
    showError(new Error(`The JSON fields must hold JSON objects: ${error.message}`));
    return null;
  }
  if (clearing) {
    for (const el of form.elements) if (el.name && !(el.name in values)) values[el.name] = null;
  }
  return values;
}

/** Run a change, say `done` (a text, or a function of what `run` returned) when it worked, then
 *  `refresh()`; an error is shown, not thrown. */
export async function change(run, done, refresh) {
  try {
    const result = await run();
    if (done) notify(typeof done === "function" ? done(result) : done);
    if (refresh) await refresh();
  } catch (error) {
    showError(error);
  }
}

/** A textarea for a JSON object, holding `value` (none when it is empty). dom.js's `field` sets a
 *  textarea's `value` as an attribute, which a textarea does not show: set here as its content. */
export function jsonField(label, name, value, help) {
  const wrap = field(label, { name, type: "textarea", "data-kind": "json", help });
  wrap.querySelector("textarea").value = value && Object.keys(value).length ? JSON.stringify(value) : "";
  return wrap;
}

/** A record's value as a form value: empty for null. */
export const formValue = (record, name) => (record[name] === null || record[name] === undefined ? "" : record[name]);

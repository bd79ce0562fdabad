// Small DOM helpers. Text is always set as text (never as HTML): values from the database cannot
// become markup.

/** `h("button", {type: "button", onclick: fn, class: "primary"}, "Save")` */
export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(props || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") el.addEventListener(name.slice(2), value);
    else if (name === "class") el.className = value;
    else if (name === "value") el.value = value;  // a textarea shows its value only as a property
    else if (name === "text") el.textContent = value;
    else if (name === "dataset") Object.assign(el.dataset, value);
    else if (name in el && typeof value !== "string") el[name] = value;
    else el.setAttribute(name, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

export const money = (value) =>
  value === null || value === undefined ? "–" : `$${Number(value).toLocaleString("en-US", { minimumFractionDigits: 2, maximumFractionDigits: 6 })}`;

export const when = (iso) => (iso ? new Date(iso).toLocaleString() : "–");

export const list = (values) => (values && values.length ? values.join(", ") : "–");

/** A page heading with optional actions on its right. */
export function heading(title, ...actions) {
  return h("div", { class: "page-head" }, h("h1", { text: title }), h("div", { class: "actions" }, ...actions));
}

/** A table: `columns` are `{label, value: row => text | Node}`; `empty` when there are no rows. */
export function table({ caption, columns, rows, empty = "Nothing here yet." }) {
  const head = h("thead", {}, h("tr", {}, columns.map((c) => h("th", { scope: "col", text: c.label }))));
  const body = h("tbody", {}, rows.length
    ? rows.map((row) => h("tr", {}, columns.map((c) => h("td", { "data-label": c.label }, c.value(row)))))
    : h("tr", {}, h("td", { colspan: columns.length, class: "empty", text: empty })));
  return h("div", { class: "table-wrap" }, h("table", {}, caption ? h("caption", { text: caption }) : null, head, body));
}

/** Previous / next for a server-side paginated list. */
export function pager({ page, pages, total, onPage }) {
  return h("nav", { class: "pager", "aria-label": "Pages of results" },
    h("button", { type: "button", disabled: page <= 1, onclick: () => onPage(page - 1) }, "Previous"),
    h("span", { text: `Page ${page} of ${Math.max(1, pages)}${total !== undefined ? ` · ${total} in all` : ""}` }),
    h("button", { type: "button", disabled: page >= pages, onclick: () => onPage(page + 1) }, "Next"));
}

let fieldCount = 0;

/** A labelled input: `field("Max budget ($)", {name: "max_budget", type: "number", step: "any"})`.
 *  `options` makes a select; `help` a described-by hint. */
export function field(label, { options, help, ...attrs } = {}) {
  const id = `f${++fieldCount}`;
  const hint = help ? h("small", { id: `${id}-help`, text: help }) : null;
  const control = options
    ? h("select", { id, ...attrs, "aria-describedby": hint ? hint.id : null },
      options.map(([value, text]) => h("option", { value, text, selected: String(attrs.value ?? "") === String(value) })))
    : h(attrs.type === "textarea" ? "textarea" : "input", { id, ...attrs, "aria-describedby": hint ? hint.id : null });
  if (attrs.type === "checkbox") {
    return h("div", { class: "field check" }, control, h("label", { for: id, text: label }), hint);
  }
  return h("div", { class: "field" }, h("label", { for: id, text: label }), control, hint);
}

/** The values of a form's named controls: numbers as numbers, empty as absent, lists split on commas
 *  (`data-kind="list"`), JSON parsed (`data-kind="json"`), checkboxes as booleans. */
export function formValues(form) {
  const out = {};
  for (const el of form.elements) {
    if (!el.name || el.disabled) continue;
    if (el.type === "checkbox") { out[el.name] = el.checked; continue; }
    const raw = el.value.trim();
    if (raw === "") continue;
    const kind = el.dataset.kind;
    if (kind === "list") out[el.name] = raw.split(",").map((s) => s.trim()).filter(Boolean);
    else if (kind === "json") out[el.name] = JSON.parse(raw);
    else if (el.type === "number") out[el.name] = Number(raw);
    else out[el.name] = raw;
  }
  return out;
}

/** A short message for everyone, screen readers included. */
export function notify(message, kind = "ok") {
  const box = document.getElementById("notices");
  const note = h("p", { class: `notice ${kind}`, role: kind === "error" ? "alert" : null, text: message });
  box.append(note);
  setTimeout(() => note.remove(), kind === "error" ? 10000 : 5000);
}

/** A modal dialog with `content` and buttons; resolves with the value of the button pressed
 *  (Escape: null). */
let dialogCount = 0;

export function dialog(title, content, buttons = [["OK", "ok"]]) {
  const titleId = `dialog-title-${++dialogCount}`;  // unique: a dialog may open over another
  return new Promise((resolve) => {
    const box = h("dialog", { "aria-labelledby": titleId },
      h("h2", { id: titleId, text: title }), content,
      h("div", { class: "actions" }, buttons.map(([text, value, cls]) =>
        h("button", { type: "button", class: cls, onclick: () => { box.close(); box.remove(); resolve(value); } }, text))));
    box.addEventListener("cancel", () => resolve(null));
    // A button removes the dialog at once (its "close" event comes a task later, and a raw key
    // shown in it must be gone when the click returns); Escape closes it through the event.
    box.addEventListener("close", () => box.remove());
    document.body.append(box);
    box.showModal();
  });
}

export const confirm = (title, text, action = "Confirm") =>
  dialog(title, h("p", { text }), [["Cancel", false], [action, true, "danger"]]).then(Boolean);

/** A CSV file download built in the browser: `columns` are `[header, row => value]`. */
export function downloadCsv(filename, columns, rows) {
  const cell = (v) => {
    let s = v === null || v === undefined ? "" : typeof v === "object" ? JSON.stringify(v) : String(v);
    if (typeof v === "string" && /^[=+\-@\t\r]/.test(s)) s = `'${s}`;  // a spreadsheet must not run it as a formula
    return /[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
  };
  const text = [columns.map(([name]) => cell(name)).join(","),
    ...rows.map((row) => columns.map(([, get]) => cell(get(row))).join(","))].join("\r\n");
  const link = h("a", { href: URL.createObjectURL(new Blob([text], { type: "text/csv" })), download: filename });
  document.body.append(link);
  link.click();
  link.remove();
}

/** An error from the API as the page shows it. */
export function showError(error) {
  notify(error && error.message ? error.message : String(error), "error");
}

/** A raw key, shown this once with a copy button; it is not kept in the page afterwards. */
export async function showKeyOnce(title, raw) {
  const text = h("p", { class: "secret", "data-testid": "raw-key", text: raw });
  const copy = h("button", { type: "button", onclick: async () => {
    try {
      await navigator.clipboard.writeText(raw);
      notify("Key copied");
    } catch {
      getSelection().selectAllChildren(text);
      notify("The clipboard is not available here: copy the selected key by hand.", "error");
    }
  } }, "Copy key");
  await dialog(title, h("div", {}, h("p", { text: "Save it now: it is shown only once and cannot be shown again." }), text, copy),
    [["Done", true, "primary"]]);
}

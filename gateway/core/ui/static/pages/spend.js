// Spend: spend per day over a date range (default: the last 30 days), grouped by key, team, user,
// tag or model (GET /spend/daily, read from the daily roll-ups): totals, a stacked bar chart of the
// top groups per day (drawn as SVG, with a title, a description and the same numbers as a table),
// and the top spenders, a page at a time. "Refresh" reads the latest calls; the CSV downloads hold
// what the page shows. An internal user sees only their own key's spend (the server sees to it).
import { api, fetchAll } from "../api.js";
import { downloadCsv, field, formValues, h, heading, money, pager, showError, table } from "../dom.js";

const SIZE = 25;
const TOP = 5;
const MAX_DAYS = 366;
const DAY_MS = 86400000;
const GROUPS = [["key", "Key"], ["team", "Team"], ["user", "User"], ["tag", "Tag"], ["model", "Model"]];
const GROUP_LABEL = Object.fromEntries(GROUPS);
const SVG = "http://www.w3.org/2000/svg";

/** An SVG element: `svg("rect", {x: 1, class: "bar"}, child...)`. */
function svg(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (name === "text") el.textContent = value;
    else if (value !== undefined && value !== null) el.setAttribute(name, String(value));
  }
  for (const child of children.flat()) if (child) el.append(child);
  return el;
}

const utcDay = (date) => date.toISOString().slice(0, 10);
const dayNumber = (text) => Date.parse(`${text}T00:00:00Z`) / DAY_MS;
const count = (n) => Number(n).toLocaleString("en-US");
const percent = (part, whole) => (whole > 0 ? `${((100 * part) / whole).toFixed(1)}%` : "–");

/** The range's problem in words, or "" when it is fine (the server checks the same). */
export function rangeError(start, end) {
  if (!start || !end) return "Enter both a start and an end date.";
  if (Number.isNaN(dayNumber(start)) || Number.isNaN(dayNumber(end))) return "Dates must look like 2026-11-30.";
  if (start > end) return "The start date must not be after the end date.";
  const days = dayNumber(end) - dayNumber(start) + 1;
  if (days > MAX_DAYS) return `The range must be at most ${MAX_DAYS} days (it is ${days}).`;
  return "";
}

/** A round step for the y axis: 1, 2 or 5 times a power of ten. */
function niceStep(max, ticks = 4) {
  const raw = max / ticks;
  const power = 10 ** Math.floor(Math.log10(raw));
  return [1, 2, 5, 10].map((m) => m * power).find((s) => s >= raw) || raw;
}

/** The stacked bars: one bar per day, one segment per top group and one for the rest. Drawn at
 *  the width it has (320 to 1200 units), so that its text stays the size of the page's small text. */
function chart(data, series, room) {
  const days = data.days;
  const width = Math.round(Math.max(320, Math.min(1200, room || 720)));
  const height = width < 480 ? 220 : 260, left = 64, right = 8, top = 10, bottom = 30;
  const plotW = width - left - right, plotH = height - top - bottom;
  const stack = (d) => series.reduce((sum, s) => sum + s.value(d), 0);
  const highest = Math.max(0, ...days.map(stack));
  const step = highest > 0 ? niceStep(highest) : 1;
  const ceiling = highest > 0 ? Math.ceil(highest / step) * step : 1;
  const y = (v) => top + plotH - (v / ceiling) * plotH;
  const slot = plotW / Math.max(1, days.length);
  const barW = Math.min(48, Math.max(1, slot * 0.75));
  const labelEvery = Math.max(1, Math.ceil(days.length / Math.max(2, Math.floor(plotW / 56))));
  const title = `Spend per day by ${GROUP_LABEL[data.group_by].toLowerCase()}, ${data.start_date} to ${data.end_date}`;
  const busiest = days.reduce((a, d) => (d.spend > a.spend ? d : a), days[0] || { spend: 0 });
  const desc = `${days.length} days, ${money(data.total_spend)} in all` +
    (busiest && busiest.spend > 0 ? `; the most on ${busiest.date} (${money(busiest.spend)})` : "; no spend") +
    ". The table below the chart gives every number.";
  const grid = [];
  for (let v = 0; v <= ceiling + step / 2; v += step) {
    grid.push(svg("line", { class: "grid", x1: left, x2: width - right, y1: y(v), y2: y(v) }),
      svg("text", { x: left - 6, y: y(v) + 4, "text-anchor": "end", text: money(v) }));
  }
  const bars = days.map((d, i) => {
    const x = left + i * slot + (slot - barW) / 2;
    let base = 0;
    const parts = series.map((s) => {
      const value = s.value(d);
      const rect = value > 0 ? svg("rect", { class: `seg ${s.cls}`, x, width: barW, y: y(base + value), height: Math.max(0.5, y(base) - y(base + value)) }) : null;
      base += value;
      return rect;
    });
    const said = series.filter((s) => s.value(d) > 0).map((s) => `${s.name} ${money(s.value(d))}`).join(", ");
    return svg("g", { class: "day", "data-date": d.date },
      svg("title", { text: `${d.date}: ${money(d.spend)}, ${count(d.log_count)} calls${said ? ` (${said})` : ""}` }), parts,
      i % labelEvery === 0 ? svg("text", { x: left + i * slot + slot / 2, y: height - 10, "text-anchor": "middle", text: d.date.slice(5) }) : null);
  });
  return svg("svg", { class: "chart spend-chart", viewBox: `0 0 ${width} ${height}`, role: "img",
    "aria-labelledby": "spend-chart-title spend-chart-desc", "data-testid": "spend-chart" },
  svg("title", { id: "spend-chart-title", text: title }), svg("desc", { id: "spend-chart-desc", text: desc }),
  grid, svg("line", { class: "axis", x1: left, x2: width - right, y1: y(0), y2: y(0) }), bars);
}

function legend(series) {
  return h("ul", { class: "legend", "aria-label": "Chart legend" }, series.map((s) =>
    h("li", {}, h("span", { class: `swatch ${s.cls}`, "aria-hidden": "true" }), s.name)));
}

/** The chart's numbers as a table: a row per day, a column per series. */
function dayTable(data, series) {
  return table({
    caption: "Spend per day",
    columns: [
      { label: "Day", value: (d) => d.date },
      { label: "Spend", value: (d) => money(d.spend) },
      { label: "Calls", value: (d) => count(d.log_count) },
      ...series.map((s) => ({ label: s.name, value: (d) => money(s.value(d)) })),
    ],
    rows: [...data.days].reverse(),
  });
}

/** The series the chart stacks: the top groups, then the rest (if any spent). */
function seriesOf(data) {
  const series = data.top.map((g, i) => ({ name: g.name, cls: `series-${i}`, value: (d) => d.groups[g.id] || 0 }));
  if (data.days.some((d) => d.other > 0)) series.push({ name: "Other", cls: "series-other", value: (d) => d.other });
  return series;
}

const card = (label, value, testid) => h("div", { class: "card", "data-testid": testid },
  h("div", { class: "muted", text: label }), h("div", { class: "value", text: value }));

export async function render(view, { session, params }) {
  const isAdmin = Boolean(session.is_admin);
  const today = new Date();
  const state = {
    start_date: params.get("start_date") || utcDay(new Date(today.getTime() - 29 * DAY_MS)),
    end_date: params.get("end_date") || utcDay(today),
    group_by: GROUP_LABEL[params.get("group_by")] ? params.get("group_by") : "key",
    page: 1,
  };
  let shown = null;  // the last answer, for the CSV downloads
  const problem = h("p", { class: "error", role: "alert", hidden: true, "data-testid": "range-error" });
  const results = h("div", { class: "spend", "aria-live": "polite" });
  const filters = h("form", { class: "filters", role: "search", "aria-label": "Spend filters", novalidate: true },
    field("From", { name: "start_date", type: "date", value: state.start_date, required: true, help: "UTC days." }),
    field("To", { name: "end_date", type: "date", value: state.end_date, required: true, help: "That whole day included." }),
    field("Group by", { name: "group_by", options: GROUPS, value: state.group_by }),
    h("button", { type: "submit" }, "Show"));
  filters.addEventListener("submit", (event) => {
    event.preventDefault();
    const values = formValues(filters);
    const message = rangeError(values.start_date, values.end_date);
    for (const name of ["start_date", "end_date"]) {
      const input = filters.elements[name];
      if (message) input.setAttribute("aria-invalid", "true"); else input.removeAttribute("aria-invalid");
    }
    problem.hidden = !message;
    problem.textContent = message;
    if (message) {
      filters.elements.start_date.focus();
      return;
    }
    Object.assign(state, { start_date: values.start_date, end_date: values.end_date, group_by: values.group_by || "key", page: 1 });
    load();
  });

  const query = () => ({ start_date: state.start_date, end_date: state.end_date, group_by: state.group_by, top: TOP });

  async function load() {
    try {
      const data = await api("GET", "/spend/daily", { query: { ...query(), page: state.page, page_size: SIZE } });
      shown = data;
      const label = GROUP_LABEL[data.group_by];
      const series = seriesOf(data);
      const ranked = table({
        caption: `Top spenders by ${label.toLowerCase()}, ${data.start_date} to ${data.end_date}`,
        empty: "No spend in this range.",
        columns: [
          { label: "Rank", value: (g) => String(g.rank) },
          { label, value: (g) => h("span", {}, h("strong", { text: g.name }),
            g.name !== g.id && g.id ? [h("br"), h("code", { class: "muted", text: g.id.length > 24 ? `${g.id.slice(0, 12)}…` : g.id })] : null) },
          { label: "Spend", value: (g) => money(g.spend) },
          { label: "Calls", value: (g) => count(g.log_count) },
          { label: "Share", value: (g) => percent(g.spend, data.total_spend) },
        ],
        rows: data.groups.map((g, i) => ({ ...g, rank: (data.page - 1) * data.page_size + i + 1 })),
      });
      results.replaceChildren(...[
        h("div", { class: "cards" },
          card("Total spend", money(data.total_spend), "total-spend"), card("Calls", count(data.log_count), "total-calls"),
          card(`${label}s with spend`, count(data.total), "group-count"),
          card(`Top ${label.toLowerCase()}`, data.top.length ? data.top[0].name : "–", "top-group")),
        h("h2", { text: `Spend per day by ${label.toLowerCase()}` }),
        data.group_by === "tag" ? h("p", { class: "muted", text: "A call with several tags counts under each of them; untagged calls are not shown." }) : null,
        h("figure", { class: "spend-figure" }, chart(data, series, results.clientWidth), legend(series)),
        h("details", { class: "spend-days" }, h("summary", { text: "Spend per day as a table" }), dayTable(data, series)),
        h("h2", { text: "Top spenders" }), ranked,
        pager({ page: data.page, pages: data.total_pages, total: data.total, onPage: (p) => { state.page = p; load(); } }),
      ].filter(Boolean));
    } catch (error) {
      shown = null;
      results.replaceChildren(h("p", { class: "error", role: "alert", text: error.message }));
    }
  }

  function downloadDays() {
    if (!shown) return;
    const series = seriesOf(shown);
    downloadCsv(`spend-by-${shown.group_by}-per-day-${shown.start_date}-to-${shown.end_date}.csv`,
      [["date", (d) => d.date], ["spend", (d) => d.spend], ["calls", (d) => d.log_count],
        ...series.map((s) => [s.name, (d) => s.value(d)])], shown.days);
  }

  async function downloadTop() {
    if (!shown) return;
    try {
      const rows = await fetchAll("/spend/daily", "groups", query(), { sizeParam: "page_size", size: 1000 });
      downloadCsv(`top-spenders-by-${shown.group_by}-${shown.start_date}-to-${shown.end_date}.csv`,
        [[shown.group_by, (g) => g.name], ["id", (g) => g.id], ["spend", (g) => g.spend], ["calls", (g) => g.log_count]], rows);
    } catch (error) {
      showError(error);
    }
  }

  view.append(...[
    heading("Spend",
      h("button", { type: "button", onclick: () => load() }, "Refresh"),
      h("button", { type: "button", onclick: downloadDays }, "Download daily CSV"),
      h("button", { type: "button", onclick: downloadTop }, "Download top spenders CSV")),
    isAdmin ? null : h("p", { class: "muted", text: "The spend of your own key only." }),
    filters, problem, results].filter(Boolean));
  await load();
}

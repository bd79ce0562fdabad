// The model hub page: renders the models embedded in the page, filters them as you type, and
// writes an openai SDK snippet for the chosen model against this gateway's own address.
(function () {
  "use strict";
  const models = JSON.parse(document.getElementById("hub-data").textContent);
  const baseUrl = location.origin + location.pathname.replace(/\/model_hub\/?$/, "") + "/v1";
  const $ = (id) => document.getElementById(id);
  const search = $("search"), providerSelect = $("provider"), modeSelect = $("mode");
  const tbody = document.querySelector("#models tbody");
  const FEATURES = [["supports_streaming", "streaming"], ["supports_function_calling", "tools"], ["supports_vision", "vision"]];
  let selected = null;

  function tokens(n) {
    if (n == null) return null;
    if (n >= 1e6) return +(n / 1e6).toFixed(1) + "M";
    if (n >= 1000) return Math.round(n / 1000) + "K";
    return String(n);
  }

  function dollars(perMillion) {
    if (perMillion == null) return null;
    const digits = perMillion === 0 || perMillion >= 1 ? 2 : Math.min(6, 2 - Math.floor(Math.log10(perMillion)));
    return "$" + perMillion.toLocaleString("en-US", { minimumFractionDigits: 2, maximumFractionDigits: digits });
  }

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text != null) node.textContent = text;
    return node;
  }

  function cell(label, value, className, exact) {
    const td = el("td", className);
    td.dataset.label = label;
    if (value == null) {
      td.append(el("span", "unknown", "—"));
      td.title = "not known";
    } else {
      td.textContent = value;
      if (exact != null) td.title = exact;
    }
    return td;
  }

  function snippet(m) {
    const name = JSON.stringify(m.model_group);
    const head = [
      "from openai import OpenAI",
      "",
      "client = OpenAI(",
      '    base_url="' + baseUrl + '",',
      '    api_key="sk-...",  # your gateway key',
      ")",
      "",
    ];
    if (m.mode === "embedding") {
      return head.concat([
        "response = client.embeddings.create(",
        "    model=" + name + ",",
        '    input="Hello!",',
        ")",
        "print(response.data[0].embedding[:5])",
      ]).join("\n");
    }
    if (m.mode === "completion") {
      return head.concat([
        "response = client.completions.create(",
        "    model=" + name + ",",
        '    prompt="Hello!",',
        ")",
        "print(response.choices[0].text)",
      ]).join("\n");
    }
    return head.concat([
      "response = client.chat.completions.create(",
      "    model=" + name + ",",
      '    messages=[{"role": "user", "content": "Hello!"}],',
      ")",
      "print(response.choices[0].message.content)",
    ]).join("\n");
  }

  function select(m, scroll) {
    selected = m;
    $("snippet-model").textContent = m.model_group;
    $("snippet").textContent = snippet(m);
    for (const row of tbody.rows) row.classList.toggle("selected", row.dataset.model === m.model_group);
    if (scroll) {
      history.replaceState(null, "", "#" + encodeURIComponent(m.model_group));
      const still = matchMedia("(prefers-reduced-motion: reduce)").matches;
      $("usage").scrollIntoView({ behavior: still ? "auto" : "smooth", block: "start" });
    }
  }

  function row(m) {
    const tr = el("tr");
    tr.dataset.model = m.model_group;
    tr.dataset.search = [m.model_group].concat(m.providers).join(" ").toLowerCase();
    tr.append(el("td", "name", m.model_group));
    const prov = el("td");
    prov.dataset.label = "Provider";
    for (const p of m.providers) prov.append(el("span", "chip", p), " ");
    tr.append(prov);
    tr.append(cell("Mode", m.mode));
    tr.append(cell("Context", tokens(m.max_input_tokens), "num", m.max_input_tokens));
    tr.append(cell("Max output", tokens(m.max_output_tokens), "num", m.max_output_tokens));
    tr.append(cell("Input $/1M", dollars(m.input_cost_per_million_tokens), "num"));
    tr.append(cell("Output $/1M", dollars(m.output_cost_per_million_tokens), "num"));
    const feats = el("td", "features");
    for (const [key, label] of FEATURES) if (m[key] === true) feats.append(el("span", "chip feature", label), " ");
    tr.append(feats);
    const use = el("td", "use");
    const button = el("button", null, "Snippet");
    button.type = "button";
    button.setAttribute("aria-label", "Snippet for " + m.model_group);
    button.addEventListener("click", () => select(m, true));
    use.append(button);
    tr.append(use);
    return tr;
  }

  function fill(selectNode, values) {
    for (const v of [...new Set(values)].sort()) selectNode.append(new Option(v, v));
  }

  function applyFilter() {
    const words = search.value.toLowerCase().split(/\s+/).filter(Boolean);
    const provider = providerSelect.value, mode = modeSelect.value;
    let shown = 0;
    models.forEach((m, i) => {
      const tr = tbody.rows[i];
      const ok = words.every((w) => tr.dataset.search.includes(w)) &&
        (!provider || m.providers.includes(provider)) && (!mode || m.mode === mode);
      tr.hidden = !ok;
      if (ok) shown += 1;
    });
    $("count").textContent = models.length === 0 ? "No models are configured."
      : shown === models.length ? models.length + (models.length === 1 ? " model" : " models")
      : "Showing " + shown + " of " + models.length + " models";
    $("empty").hidden = shown > 0 || models.length === 0;
  }

  async function copy() {
    const text = $("snippet").textContent, button = $("copy");
    try {
      await navigator.clipboard.writeText(text);
    } catch (e) {  // no clipboard API (plain http on another host): select it for Ctrl+C
      const range = document.createRange();
      range.selectNodeContents($("snippet"));
      const sel = getSelection();
      sel.removeAllRanges();
      sel.addRange(range);
      document.execCommand("copy");
    }
    button.textContent = "Copied";
    setTimeout(() => { button.textContent = "Copy"; }, 1500);
  }

  for (const m of models) tbody.append(row(m));
  fill(providerSelect, models.flatMap((m) => m.providers));
  fill(modeSelect, models.map((m) => m.mode).filter(Boolean));
  for (const node of [search, providerSelect, modeSelect]) node.addEventListener("input", applyFilter);
  $("copy").addEventListener("click", copy);
  applyFilter();
  const wanted = decodeURIComponent(location.hash.slice(1));
  const first = models.find((m) => m.model_group === wanted) || models[0];
  if (first) select(first, false); else $("usage").hidden = true;
})();

// The admin UI's shell: login, navigation, and one page module per hash route (#/keys -> pages/keys.js).
import { UI, api, setCsrf, whenLoggedOut } from "./api.js";
import { field, h, showError } from "./dom.js";

/** Every page: `admin` pages are hidden from (and refused to) internal users. */
export const PAGES = [
  { id: "keys", label: "Keys" },
  { id: "teams", label: "Teams", admin: true },
  { id: "users", label: "Users", admin: true },
  { id: "end-users", label: "End users", admin: true },
  { id: "models", label: "Models" },
  { id: "spend", label: "Spend" },
  { id: "logs", label: "Request logs" },
  { id: "audit", label: "Audit log", admin: true },
  { id: "guardrails", label: "Guardrails" },
];

const main = document.getElementById("main");
const nav = document.getElementById("nav");
const header = document.querySelector("header.top");
let session = null;

function visiblePages() {
  return PAGES.filter((p) => !p.admin || (session && session.is_admin));
}

function showLogin(message) {
  session = null;
  setCsrf("");
  header.hidden = true;
  nav.hidden = true;
  let withPassword = false;
  const form = h("form", { class: "login", "aria-labelledby": "login-title" });
  const render = () => {
    form.replaceChildren(
      h("h1", { id: "login-title", text: "Log in to the gateway" }),
      message ? h("p", { class: "error", role: "alert", text: message }) : null,
      withPassword
        ? [field("Username", { name: "username", autocomplete: "username", required: true }),
          field("Password", { name: "password", type: "password", autocomplete: "current-password", required: true })]
        : field("Key", { name: "key", type: "password", autocomplete: "off", required: true, placeholder: "sk-...",
          help: "The master key, or your own virtual key (you then see your own keys and spend)." }),
      h("button", { type: "submit", class: "primary" }, "Log in"),
      h("button", { type: "button", class: "link", onclick: () => { withPassword = !withPassword; message = ""; render(); } },
        withPassword ? "Log in with a key instead" : "Log in with a username and password"),
    );
    form.querySelector("input").focus();
  };
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const body = Object.fromEntries(new FormData(form));
    form.reset();  // the key or password is not kept in the page
    try {
      session = await api("POST", `${UI}/login`, { body });
      start();
    } catch (error) {
      message = error.message;
      render();
    }
  });
  main.replaceChildren(form);
  render();
}

function start() {
  setCsrf(session.csrf_token);
  header.hidden = false;
  nav.hidden = false;
  document.getElementById("who").textContent = session.dev_mode
    ? "development mode (no master key): everyone is admin"
    : `${session.key_alias || session.key_name || "admin"} · ${session.user_role}`;
  document.getElementById("logout").hidden = session.dev_mode;
  nav.replaceChildren(h("ul", {}, visiblePages().map((p) =>
    h("li", {}, h("a", { href: `#/${p.id}`, "data-page": p.id }, p.label)))));
  route();
}

let routing = 0;  // which call of route() is the latest: an older one's page must not land

async function route() {
  if (!session) return;
  const mine = ++routing;
  const id = location.hash.replace(/^#\/?/, "").split("?")[0] || visiblePages()[0].id;
  const page = visiblePages().find((p) => p.id === id);
  for (const link of nav.querySelectorAll("a")) {
    if (link.dataset.page === id) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  nav.classList.remove("open");
  document.querySelector("button.menu").setAttribute("aria-expanded", "false");
  if (!page) {
    main.replaceChildren(h("h1", { text: "No such page" }), h("p", {}, h("a", { href: "#/keys" }, "Go to keys")));
    return;
  }
  document.title = `${page.label} · Gateway admin`;
  main.replaceChildren(h("p", { class: "loading", text: "Loading…" }));
  try {
    const module = await import(`./pages/${page.id}.js`);
    if (mine !== routing) return;  // the user moved on while the page's script loaded
    const view = h("div", { class: "page", "data-page": page.id });
    main.replaceChildren(view);
    await module.render(view, { session, params: new URLSearchParams(location.hash.split("?")[1] || "") });
    if (mine === routing) main.focus({ preventScroll: true });
  } catch (error) {
    showError(error);
  }
}

document.getElementById("logout").addEventListener("click", async () => {
  try { await api("POST", `${UI}/logout`); } catch (error) { showError(error); }
  showLogin("You are logged out.");
});
document.querySelector("button.menu").addEventListener("click", (event) => {
  const open = nav.classList.toggle("open");
  event.currentTarget.setAttribute("aria-expanded", String(open));
});
window.addEventListener("hashchange", route);
whenLoggedOut((message) => showLogin(message));

try {
  session = await api("GET", `${UI}/session`);
  if (session.logged_in) start();
  else showLogin("");
} catch (error) {
  showLogin(error.status === 401 ? "" : error.message);
}

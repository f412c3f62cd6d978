// The settings view of `voice-agent talk`: each backend's state, the servers found on
// this machine, and a form per role to test and save a change (GET/PUT /api/settings,
// POST /api/settings/test, GET /api/settings/servers).
//
// The access token comes in the URL's fragment (#token=...), which browsers never send
// to a server; it is kept in this tab's sessionStorage and taken out of the address bar.
// Everything a server said is put on the page as text, never as HTML.

const TOKEN_KEY = "voice-agent.settings-token";
const $ = (selector) => document.querySelector(selector);

let token = takeToken();
let view = null;

function takeToken() {
  const match = location.hash.match(/(?:^#|&)token=([^&]+)/);
  if (match) {
    sessionStorage.setItem(TOKEN_KEY, decodeURIComponent(match[1]));
    history.replaceState(null, "", location.pathname + location.search);
  }
  return sessionStorage.getItem(TOKEN_KEY);
}

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === "dataset") Object.assign(node.dataset, value);
    else if (key in node && key !== "list") node[key] = value;
    else node.setAttribute(key, value);
  }
  for (const child of children.flat(Infinity)) {
    if (child !== null && child !== undefined) node.append(child);
  }
  return node;
}

function setPhase(phase) {
  document.body.dataset.phase = phase;
}

function showError(message) {
  const box = $("#error");
  box.textContent = message;
  box.hidden = !message;
}

async function api(method, path, body) {
  const headers = { Authorization: `Bearer ${token}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let resp;
  try {
    resp = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: "no-store",
    });
  } catch (e) {
    return { status: 0, data: { error: `voice-agent talk did not answer (${e.message})` } };
  }
  let data = {};
  try {
    data = await resp.json();
  } catch {
    data = { error: `HTTP ${resp.status}` };
  }
  if (resp.status === 401 || resp.status === 403) askForToken(data.error);
  return { status: resp.status, data };
}

function askForToken(reason) {
  sessionStorage.removeItem(TOKEN_KEY);
  $("#roles").replaceChildren();
  $("#file").textContent = "";
  $("#saved").hidden = true;
  $("#servers-section").hidden = true;
  $("#token-form").hidden = false;
  $("#token-input").focus();
  showError(reason || "");
  setPhase("token");
}

// --- the roles ------------------------------------------------------------------------

function stateOf(state) {
  if (state.ok === true) return ["ok", "ok"];
  if (state.ok === false) return ["fail", "failed"];
  return ["unknown", "not checked"];
}

function renderRoles(data) {
  view = data;
  const file = $("#file");
  file.textContent = `Configuration file: ${data.env_file} · revision ${data.revision}`;
  if (data.error) showError(`${data.env_file} does not load: ${data.error}`);
  const roles = $("#roles");
  roles.replaceChildren(...data.roles.map((role) => roleCard(role, data.providers)));
}

function roleCard(role, providers) {
  const [state, label] = stateOf(role.state);
  const rows = [
    ["Provider", role.provider, "provider"],
    ["URL", role.base_url || "–", "url"],
  ];
  if (role.role !== "livekit") rows.push(["Model", role.model || "–", "model"]);
  if (role.role === "tts") rows.push(["Voice", role.voice || "–", "voice"]);
  rows.push(["Key", role.key_set ? `set (${role.key_from})` : "not set", "key"]);
  if (role.fallbacks) rows.push(["Fallbacks", String(role.fallbacks), "fallbacks"]);
  rows.push(["State", role.state.detail, "detail"]);
  const card = el(
    "article",
    { className: "role", dataset: { role: role.role, state } },
    el("header", {}, el("h2", { textContent: role.name }), el("span", { className: "badge", textContent: label })),
    el("dl", {}, rows.map(([name, value, cls]) => [el("dt", { textContent: name }), el("dd", { className: cls, textContent: value })])),
  );
  if (role.overridden.length) {
    card.append(
      el("p", {
        className: "overridden notice",
        textContent:
          `${role.overridden.join(", ")} ${role.overridden.length > 1 ? "are" : "is"} set in the environment ` +
          "of voice-agent talk, which wins over .env: saving here does not change " +
          (role.overridden.length > 1 ? "them" : "it") + " while that lasts.",
      }),
    );
  }
  if (role.editable) card.append(editForm(role, providers[role.role]));
  else card.append(el("p", { className: "status", textContent: "Read at start: set LIVEKIT_* in .env and restart the worker." }));
  return card;
}

function field(label, input) {
  return el("label", {}, el("span", { textContent: label }), input);
}

function editForm(role, providers) {
  const initial = { provider: role.provider, base_url: role.base_url || "", model: role.model || "", voice: role.voice || "" };
  const form = el("form", { className: "edit", dataset: { role: role.role } });
  form.initial = initial;
  const provider = el("select", { name: "provider" }, providers.map((p) => el("option", { value: p, textContent: p })));
  provider.value = role.provider;
  const models = el("datalist", { id: `models-${role.role}` });
  form.append(
    field("Provider", provider),
    field("URL", el("input", { name: "base_url", type: "url", value: initial.base_url, placeholder: "the provider's default" })),
    field("Model", el("input", { name: "model", value: initial.model, autocomplete: "off", list: models.id })),
    models,
  );
  if (role.role === "tts") form.append(field("Voice", el("input", { name: "voice", value: initial.voice })));
  form.append(
    field(
      "API key",
      el("input", {
        name: "api_key",
        type: "password",
        autocomplete: "off",
        placeholder: role.key_set ? "unchanged (set)" : "none",
      }),
    ),
  );
  if (role.key_set) {
    form.append(el("label", { className: "clear" }, el("input", { type: "checkbox", name: "clear_key" }), "remove the key"));
  }
  const result = el("p", { className: "result", "aria-live": "polite" });
  form.append(
    el(
      "div",
      { className: "buttons" },
      el("button", { type: "button", className: "test", textContent: "Test" }),
      el("button", { type: "submit", className: "save", textContent: "Save" }),
    ),
    result,
  );
  form.querySelector(".test").addEventListener("click", () => testRole(form));
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    saveRole(form);
  });
  return form;
}

// what the form changes: only the fields edited, so an unchanged server keeps its key
function changeOf(form) {
  const change = {};
  for (const [name, before] of Object.entries(form.initial)) {
    const input = form.elements[name];
    if (input && input.value.trim() !== before) change[name] = input.value.trim();
  }
  const key = form.elements.api_key.value;
  if (key) change.api_key = key;
  else if (form.elements.clear_key?.checked) change.api_key = "";
  return change;
}

function showResult(form, ok, text) {
  const result = form.querySelector(".result");
  result.dataset.ok = String(ok);
  result.textContent = text;
}

async function testRole(form) {
  const role = form.dataset.role;
  showResult(form, "", "Testing…");
  const { status, data } = await api("POST", "/api/settings/test", { [role]: changeOf(form) });
  if (status !== 200) return showResult(form, false, data.error || `HTTP ${status}`);
  const state = data.results[role];
  const note = data.overridden.length ? ` (the environment sets ${data.overridden.join(", ")}: that is what was tested)` : "";
  showResult(form, state.ok, `${state.ok ? "ok" : "failed"}: ${state.detail}${note}`);
}

async function saveRole(form) {
  const role = form.dataset.role;
  const change = changeOf(form);
  if (!Object.keys(change).length) return showResult(form, false, "Nothing changed.");
  showResult(form, "", "Saving…");
  const { status, data } = await api("PUT", "/api/settings", { [role]: change });
  if (status !== 200) return showResult(form, false, data.error || `HTTP ${status}`);
  renderRoles(data);
  const saved = data.saved;
  const box = $("#saved");
  box.textContent =
    `Saved ${saved.env_file}${saved.backup ? ` (the previous file is in ${saved.backup})` : ""}, revision ${saved.revision}. ` +
    "A running voice-agent start in this directory uses it for the sessions that start from now on; " +
    "sessions in progress keep theirs (its /worker shows the revision it runs)." +
    (saved.overridden.length ? ` Not in effect while the environment sets ${saved.overridden.join(", ")}.` : "");
  box.hidden = false;
  setPhase("saved");
}

// --- the servers ----------------------------------------------------------------------

function renderServers(servers) {
  const rows = servers.map((server) => {
    const state = server.status === "ok" ? "ok" : server.status === "needs-key" ? `needs a key (${server.detail})` : `${server.status} (${server.detail})`;
    const offers = Object.entries(server.roles).map(([role, offer]) =>
      el(
        "div",
        {},
        el("span", { className: "for", textContent: `${role.toUpperCase()}:` }),
        offer.models.length
          ? offer.models.map((model) =>
              el("button", {
                type: "button",
                textContent: model,
                dataset: { role, model },
                onclick: () => pick(role, offer, model),
              }),
            )
          : el("button", { type: "button", textContent: "use (type a model)", dataset: { role }, onclick: () => pick(role, offer, "") }),
      ),
    );
    return el(
      "tr",
      { dataset: { kind: server.kind, status: server.status } },
      el("td", { textContent: server.kind }),
      el("td", { textContent: server.url }),
      el("td", { textContent: state }),
      el("td", { className: "models" }, offers),
    );
  });
  $("#servers tbody").replaceChildren(...rows);
  $("#servers-section").hidden = false;
  for (const [role, list] of Object.entries(modelsByRole(servers))) {
    const datalist = document.getElementById(`models-${role}`);
    if (datalist) datalist.replaceChildren(...list.map((m) => el("option", { value: m })));
  }
}

function modelsByRole(servers) {
  const out = {};
  for (const server of servers) {
    for (const [role, offer] of Object.entries(server.roles)) out[role] = [...(out[role] || []), ...offer.models];
  }
  return out;
}

function pick(role, offer, model) {
  const form = document.querySelector(`form.edit[data-role="${role}"]`);
  if (!form) return;
  form.elements.provider.value = offer.provider;
  form.elements.base_url.value = offer.base_url;
  form.elements.model.value = model;
  showResult(form, "", `Picked ${model || "a server"} at ${offer.base_url}: Test, then Save.`);
  form.scrollIntoView({ block: "nearest" });
  form.elements.model.focus();
}

async function loadServers(url) {
  const query = url ? `?url=${encodeURIComponent(url)}` : "";
  const { status, data } = await api("GET", `/api/settings/servers${query}`);
  if (status === 200) renderServers(data.servers);
  else if (status !== 401 && status !== 403) showError(data.error || `HTTP ${status}`);
}

// --- start ----------------------------------------------------------------------------

async function load() {
  if (!token) return askForToken("");
  $("#token-form").hidden = true;
  showError("");
  setPhase("loading");
  $("#roles").replaceChildren(el("p", { className: "status", textContent: "Checking every backend…" }));
  const [settings, servers] = await Promise.all([api("GET", "/api/settings"), api("GET", "/api/settings/servers")]);
  if (settings.status !== 200) {
    if (settings.status !== 401 && settings.status !== 403) showError(settings.data.error || `HTTP ${settings.status}`);
    return;
  }
  renderRoles(settings.data);
  // after the roles: the servers' models fill the model lists of their forms
  if (servers.status === 200) renderServers(servers.data.servers);
  setPhase("ready");
}

$("#token-form").addEventListener("submit", (event) => {
  event.preventDefault();
  token = $("#token-input").value.trim();
  sessionStorage.setItem(TOKEN_KEY, token);
  $("#token-input").value = "";
  load();
});

$("#look-form").addEventListener("submit", (event) => {
  event.preventDefault();
  loadServers($("#look-url").value.trim());
});

window.settingsPage = { load, view: () => view };
load();

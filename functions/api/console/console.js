// The Hookline console: the "Webhooks" tab of an App, as a client of the REST API with the
// user's bearer token. Every value the API returns is rendered as text (textContent, input
// values), never as markup. No inline script: the page's CSP allows only this file.

const TOKEN_KEY = "hookline.console.token";
const APP_KEY = "hookline.console.app";
const MAX_HEADERS = 5;
const RESERVED = ["x-hookline-", "x-amz-", "x-amzn-", "x-forwarded-"];
const TOKEN_CHARS = /^[A-Za-z0-9!#$%&'*+\-.^_`|~]+$/;

const $ = (id) => document.getElementById(id);

const state = {
  token: null,
  me: null,
  app: null,
  catalog: [],
  webhook: null, // the one in the detail view
  editing: null, // the webhook being edited, null when creating
  externalId: null, // the external id the AWS destination's role trusts
};

// --- HTTP ---------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, problem) {
    super(problem.detail || problem.title || `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
  }
}

async function api(method, path, body, extraHeaders = {}) {
  const headers = { Authorization: `Bearer ${state.token}`, Accept: "application/json", ...extraHeaders };
  const init = { method, headers, cache: "no-store" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  const text = await response.text();
  let json = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    json = { detail: text };
  }
  if (!response.ok) {
    if (response.status === 401) {
      signOut("The token was refused or has expired: sign in again.");
    }
    throw new ApiError(response.status, json || {});
  }
  return json;
}

const enc = encodeURIComponent;

// --- Messages -----------------------------------------------------------------------------

function say(text) {
  $("status").textContent = text;
}

function alarm(text) {
  const el = $("alert");
  el.textContent = text || "";
  el.hidden = !text;
}

function failed(what, e) {
  alarm(`${what}: ${e.message}`);
}

// --- Addresses ----------------------------------------------------------------------------
//
// Each view has its own address in the fragment (never sent to a server, and never holding
// the token): `#/apps/A1` (the list), `#/apps/A1/new`, `#/apps/A1/webhooks/wh_…` and
// `…/edit`. Opening a view pushes its address, so Back and Forward move between views and a
// reload reopens the same one.

// True while a view is opened from the address (Back, Forward, a reload): nothing is pushed.
let restoring = false;

function navigate(path) {
  const hash = `#/apps/${enc(state.app)}${path}`;
  if (restoring || location.hash === hash) return;
  // The first view after signing in takes the place of the bare address.
  if (parseRoute(location.hash)) history.pushState(null, "", hash);
  else history.replaceState(null, "", hash);
}

// The view an address names, or null.
function parseRoute(hash) {
  const m = /^#\/apps\/([^/]+)(?:\/(new)|\/webhooks\/([^/]+)(\/edit)?)?$/.exec(hash);
  if (!m) return null;
  const dec = (s) => {
    try {
      return decodeURIComponent(s);
    } catch {
      return s;
    }
  };
  return { app: dec(m[1]), create: Boolean(m[2]), webhook: m[3] ? dec(m[3]) : null, edit: Boolean(m[4]) };
}

// Opens the view the address names; false when it names none.
async function route() {
  const r = parseRoute(location.hash);
  if (!r) return false;
  restoring = true;
  try {
    if (r.app !== state.app) {
      state.app = r.app;
      sessionStorage.setItem(APP_KEY, r.app);
      $("app").value = r.app;
      $("app-other").value = r.app;
    }
    if (r.webhook && r.edit) {
      const w = await loadWebhook(r.webhook);
      if (w) openForm(w);
    } else if (r.webhook) await openDetail(r.webhook);
    else if (r.create) openForm(null);
    else await openList();
  } finally {
    restoring = false;
  }
  return true;
}

// --- Views --------------------------------------------------------------------------------

const VIEWS = ["list-view", "form-view", "secret-view", "detail-view"];

function show(view) {
  for (const v of VIEWS) $(v).hidden = v !== view;
  alarm("");
  say("");
  const heading = $(view).querySelector("h2");
  if (heading) {
    heading.tabIndex = -1;
    heading.focus();
  }
}

function clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
}

function el(tag, text, attrs = {}) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  return node;
}

function button(text, onClick, attrs = {}) {
  const b = el("button", text, { type: "button", ...attrs });
  b.addEventListener("click", onClick);
  return b;
}

function when(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toLocaleString();
}

// --- Sign in ------------------------------------------------------------------------------

function tokenFromFragment() {
  const fragment = new URLSearchParams(location.hash.slice(1));
  const token = fragment.get("token");
  if (token) {
    // Off the address bar and out of the history: a fragment never reaches a server.
    history.replaceState(null, "", location.pathname + location.search);
  }
  return token;
}

function signOut(why) {
  sessionStorage.removeItem(TOKEN_KEY);
  state.token = null;
  $("app-area").hidden = true;
  $("who").hidden = true;
  $("sign-in").hidden = false;
  $("token-error").textContent = why || "";
}

async function signIn(token) {
  state.token = token.trim();
  try {
    state.me = await api("GET", "/v1/me");
  } catch (e) {
    signOut(e.status === 401 ? "This token was refused." : `Signing in failed: ${e.message}`);
    return;
  }
  sessionStorage.setItem(TOKEN_KEY, state.token);
  $("sign-in").hidden = true;
  $("who").hidden = false;
  $("sub").textContent = `signed in as ${state.me.sub}`;
  setUpAppPicker();
  $("app-area").hidden = false;
  try {
    state.catalog = (await api("GET", "/v1/event-types")).items;
  } catch (e) {
    failed("Loading the event types failed", e);
  }
  if (await route()) return;
  if (state.app) await openList();
  else say("Pick the App whose webhooks to manage.");
}

function editableApps() {
  const apps = [];
  let all = false;
  for (const p of state.me.permissions) {
    const [action, app] = p.split(":");
    if (action !== "edit-app") continue;
    if (app === "*") all = true;
    else apps.push(app);
  }
  return { apps, all };
}

function setUpAppPicker() {
  const { apps, all } = editableApps();
  const select = $("app");
  const other = $("app-other");
  clear(select);
  const remembered = sessionStorage.getItem(APP_KEY);
  if (!all && apps.length === 1) {
    // The token covers one App: it is selected.
    select.append(el("option", apps[0], { value: apps[0] }));
    select.hidden = false;
    select.disabled = true;
    other.hidden = true;
    state.app = apps[0];
  } else if (!all) {
    select.append(el("option", "Choose an App", { value: "" }));
    for (const a of apps) select.append(el("option", a, { value: a }));
    select.hidden = false;
    select.disabled = false;
    other.hidden = true;
    state.app = apps.includes(remembered) ? remembered : null;
    select.value = state.app || "";
  } else {
    // edit-app:* : any App id; the Apps that have webhooks are offered as suggestions.
    select.hidden = true;
    other.hidden = false;
    state.app = remembered || null;
    other.value = state.app || "";
    suggestApps();
  }
  $("app-label").hidden = select.hidden;
  $("app-other-label").hidden = other.hidden;
  if (apps.length === 0 && !all) {
    alarm("This token holds edit-app on no App: it cannot manage webhooks.");
  }
}

async function suggestApps() {
  const list = $("app-known");
  clear(list);
  try {
    const apps = await api("GET", "/v1/apps");
    for (const a of apps.items) list.append(el("option", null, { value: a }));
    if (!state.app && apps.items.length > 0) {
      say(`Pick the App whose webhooks to manage: type its id, or choose one of ${apps.items.length} with webhooks (${apps.items.slice(0, 5).join(", ")}${apps.items.length > 5 ? ", …" : ""}).`);
    }
  } catch {
    // Suggestions only: an App id can still be typed in.
  }
}

async function pickApp(app) {
  state.app = app || null;
  if (state.app) {
    sessionStorage.setItem(APP_KEY, state.app);
    await openList();
  }
}

// --- The list -----------------------------------------------------------------------------

const DISABLED = {
  manual: "Disabled by hand",
  failing: "Disabled: its deliveries kept failing",
  gone: "Disabled: the endpoint answered 410 Gone",
};

// "Enabled", or why not; each App it receives nothing from, and why; and where it still
// receives events when that is only some of its Apps.
function statusText(w) {
  const suspended = w.suspended || [];
  const parts = [];
  if (!w.enabled) parts.push(DISABLED[w.disabledReason] || "Disabled");
  for (const s of suspended) {
    parts.push(`Suspended in App ${s.appId}: ${s.reason} (since ${when(s.since)})`);
  }
  if (w.enabled) {
    const apps = [...new Set(w.urns.map((u) => u.split(":")[3]))];
    const live = apps.filter((a) => !suspended.some((s) => s.appId === a));
    if (live.length === apps.length) parts.unshift("Enabled");
    else if (live.length > 0) parts.push(`Enabled in App ${live.join(", ")}`);
  }
  return parts.join(". ");
}

// True when the status is a problem to show as one (not a hand-made disable).
function troubled(w) {
  return (w.suspended || []).length > 0 || ["failing", "gone"].includes(w.disabledReason);
}

function lastDeliveryText(a) {
  if (!a) return "None yet";
  const code = a.responseStatus ? ` (${a.responseStatus})` : a.error ? ` (${a.error})` : "";
  return `${a.status}${code}, ${when(a.at)}`;
}

async function openList() {
  navigate("");
  show("list-view");
  $("list-title").textContent = `Webhooks of App ${state.app}`;
  say(`Loading the webhooks of App ${state.app}…`);
  let items = [];
  try {
    let cursor = null;
    do {
      const page = await api(
        "GET",
        `/v1/webhooks?appId=${enc(state.app)}&limit=100${cursor ? `&cursor=${enc(cursor)}` : ""}`,
      );
      items = items.concat(page.items);
      cursor = page.nextCursor;
    } while (cursor);
  } catch (e) {
    failed("Loading the webhooks failed", e);
    return;
  }
  const rows = $("list-rows");
  clear(rows);
  for (const w of items) {
    const tr = el("tr");
    const name = el("td");
    name.append(button(w.name, () => openDetail(w.id), { class: "link" }));
    const status = el("td", statusText(w), troubled(w) ? { class: "alert" } : {});
    const target = w.destination ? `${w.destination.type} ${w.destination.arn}` : w.url;
    tr.append(name, el("td", target), el("td", w.eventTypes.join(", ")), status);
    const health = el("td", "…");
    const last = el("td", "…");
    tr.append(health, last);
    api("GET", `/v1/webhooks/${enc(w.id)}/stats`)
      .then((stats) => {
        clear(health);
        health.append(successBadge(stats));
      })
      .catch(() => {
        health.textContent = "Unknown";
      });
    rows.append(tr);
    api("GET", `/v1/webhooks/${enc(w.id)}/deliveries?limit=1`)
      .then((page) => {
        last.textContent = lastDeliveryText(page.items[0]);
      })
      .catch(() => {
        last.textContent = "Unknown";
      });
  }
  $("list").hidden = items.length === 0;
  $("list-empty").hidden = items.length !== 0;
  say(`${items.length} webhook${items.length === 1 ? "" : "s"} in App ${state.app}.`);
}

// --- Health -------------------------------------------------------------------------------

// The success rate as a badge whose words carry its state (good, fair, poor), not its colour.
function successBadge(stats) {
  if (!stats.attempts) {
    return el("span", "No attempts", { class: "badge none", title: "Nothing was sent in the last 24 hours" });
  }
  const pct = Math.floor(stats.successRate * 1000) / 10;
  const grade = pct >= 99 ? "good" : pct >= 90 ? "fair" : "poor";
  const word = { good: "Healthy", fair: "Some failures", poor: "Failing" }[grade];
  return el("span", `${word}: ${pct}%`, {
    class: `badge ${grade}`,
    title: `${stats.delivered} of ${stats.attempts} attempts delivered in the last 24 hours${stats.truncated ? ` (the newest ${stats.attemptLimit})` : ""}`,
  });
}

const SVG = "http://www.w3.org/2000/svg";

function svg(tag, attrs = {}, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = text;
  return node;
}

function hourText(iso) {
  const d = new Date(iso);
  return `${String(d.getHours()).padStart(2, "0")}:00`;
}

// Delivered (solid) and failed (hatched) attempts per hour as stacked bars, the p95 latency
// as a dashed line on its own scale; a title and description for screen readers, and the
// numbers in a table below.
function drawChart(stats) {
  const figure = $("chart");
  clear(figure);
  const buckets = stats.buckets;
  const W = 720, H = 220, left = 40, right = 56, top = 12, bottom = 28;
  const plotW = W - left - right, plotH = H - top - bottom;
  const maxCount = Math.max(1, ...buckets.map((b) => b.delivered + b.failed));
  const maxMs = Math.max(1, ...buckets.map((b) => b.p95LatencyMs || 0));
  const slot = plotW / Math.max(1, buckets.length);
  const barW = Math.max(2, slot * 0.7);
  const y = (n) => top + plotH - (n / maxCount) * plotH;
  const yMs = (ms) => top + plotH - (ms / maxMs) * plotH;
  const withData = buckets.filter((b) => b.delivered + b.failed > 0).length;
  const root = svg("svg", {
    viewBox: `0 0 ${W} ${H}`,
    role: "img",
    "aria-labelledby": "chart-title chart-desc",
  });
  root.append(svg("title", { id: "chart-title" }, "Deliveries per hour, last 24 hours"));
  root.append(
    svg(
      "desc",
      { id: "chart-desc" },
      `${stats.delivered} delivered and ${stats.failed} failed attempts in ${withData} of ${buckets.length} hours; ` +
        `p95 latency ${stats.latencyMs.p95 ?? "none"} ms. The table below the chart has every hour's numbers.`,
    ),
  );
  const defs = svg("defs");
  const hatch = svg("pattern", { id: "hatch", width: 6, height: 6, patternUnits: "userSpaceOnUse", patternTransform: "rotate(45)" });
  hatch.append(svg("line", { x1: 0, y1: 0, x2: 0, y2: 6, class: "hatch-line" }));
  defs.append(hatch);
  root.append(defs);
  root.append(svg("line", { x1: left, y1: top + plotH, x2: W - right, y2: top + plotH, class: "axis" }));
  root.append(svg("text", { x: left - 6, y: top + 10, "text-anchor": "end", class: "axis-label" }, String(maxCount)));
  root.append(svg("text", { x: left - 6, y: top + plotH, "text-anchor": "end", class: "axis-label" }, "0"));
  root.append(svg("text", { x: W - right + 6, y: top + 10, class: "axis-label" }, `${maxMs} ms`));
  const points = [];
  buckets.forEach((b, i) => {
    const x = left + i * slot + (slot - barW) / 2;
    const g = svg("g", { class: "hour", "data-start": b.start });
    if (b.delivered > 0) {
      g.append(svg("rect", { class: "bar bar-delivered", x, y: y(b.delivered), width: barW, height: top + plotH - y(b.delivered) }));
    }
    if (b.failed > 0) {
      const base = y(b.delivered);
      g.append(svg("rect", { class: "bar bar-failed", x, y: base - (top + plotH - y(b.failed)), width: barW, height: top + plotH - y(b.failed), fill: "url(#hatch)" }));
    }
    g.append(svg("title", {}, `${hourText(b.start)}: ${b.delivered} delivered, ${b.failed} failed${b.p95LatencyMs != null ? `, p95 ${b.p95LatencyMs} ms` : ""}`));
    if (i % 4 === 0) {
      root.append(svg("text", { x: x + barW / 2, y: H - 8, "text-anchor": "middle", class: "axis-label" }, hourText(b.start)));
    }
    root.append(g);
    if (b.p95LatencyMs != null) points.push([x + barW / 2, yMs(b.p95LatencyMs)]);
  });
  if (points.length > 0) {
    root.append(svg("polyline", { class: "latency", points: points.map((p) => p.join(",")).join(" ") }));
    for (const [px, py] of points) root.append(svg("circle", { class: "latency-point", cx: px, cy: py, r: 2.5 }));
  }
  figure.append(root);
  const legend = el("figcaption", null, { class: "legend" });
  legend.append(
    el("span", "Solid bars: delivered"),
    el("span", "Hatched bars: failed (retried or final)"),
    el("span", "Dashed line: p95 latency (right scale)"),
  );
  figure.append(legend);
  const rows = $("chart-rows");
  clear(rows);
  for (const b of buckets) {
    const tr = el("tr");
    tr.append(
      el("td", `${when(b.start)}`),
      el("td", b.delivered),
      el("td", b.failed),
      el("td", b.p95LatencyMs != null ? `${b.p95LatencyMs} ms` : "—"),
    );
    rows.append(tr);
  }
}

async function loadHealth() {
  const w = state.webhook;
  let stats;
  try {
    stats = await api("GET", `/v1/webhooks/${enc(w.id)}/stats`);
  } catch (e) {
    $("health-summary").textContent = `The numbers could not be loaded: ${e.message}`;
    return;
  }
  const summary = $("health-summary");
  clear(summary);
  if (stats.attempts) {
    summary.append(
      successBadge(stats),
      ` ${stats.delivered} of ${stats.attempts} attempts delivered; latency p50 ${stats.latencyMs.p50 ?? "—"} ms, p95 ${stats.latencyMs.p95 ?? "—"} ms, p99 ${stats.latencyMs.p99 ?? "—"} ms.`,
    );
  } else {
    summary.textContent = "Nothing was sent in the last 24 hours.";
  }
  drawChart(stats);
}

// --- The form -----------------------------------------------------------------------------

const FIELD_ERRORS = {
  name: "f-name-error",
  url: "f-url-error",
  eventTypes: "f-events-error",
  urns: "f-urns-error",
  appId: "f-urns-error",
  customHeaders: "f-headers-error",
  filter: "f-filter-error",
  retry: "f-retry-error",
  rateLimit: "f-rate-error",
  secret: "f-secret-error",
  destination: "f-destination-error",
  type: "f-destination-error",
  arn: "f-destination-error",
};

const FIELD_INPUT = {
  name: "f-name",
  url: "f-url",
  filter: "f-filter",
  retry: "f-retry",
  rateLimit: "f-rate",
  secret: "f-secret",
};

// A field the user changed: its message and mark go, and the summary too once no field has
// one left.
function fieldChanged(errorId, input) {
  $(errorId).textContent = "";
  if (input) input.removeAttribute("aria-invalid");
  const left = [...new Set(Object.values(FIELD_ERRORS))].some((id) => $(id).textContent);
  if (!left) $("form-error").hidden = true;
}

function clearErrors() {
  for (const id of new Set(Object.values(FIELD_ERRORS))) $(id).textContent = "";
  for (const input of document.querySelectorAll("#webhook-form [aria-invalid]")) {
    input.removeAttribute("aria-invalid");
  }
  $("form-error").hidden = true;
}

// Shows each failing field's message by its field; returns how many were shown.
function showFieldErrors(errors) {
  const byBox = new Map();
  for (const e of errors) {
    const root = e.field.split(/[.[]/)[0];
    const box = FIELD_ERRORS[root] || "f-name-error";
    const where = e.field === root ? "" : `${e.field.slice(root.length).replace(/^\./, "")}: `;
    byBox.set(box, [...(byBox.get(box) || []), `${where}${e.message}`]);
    if (FIELD_INPUT[root]) $(FIELD_INPUT[root]).setAttribute("aria-invalid", "true");
  }
  for (const [box, messages] of byBox) $(box).textContent = messages.join(" ");
  return byBox.size;
}

function familyOf(name) {
  return name.includes(".") ? name.split(".")[0] : name;
}

function renderEvents(selected) {
  const list = $("f-events-list");
  clear(list);
  list.append(checkbox("ev-all", "*", "All events (*)", selected.includes("*")));
  const families = new Map();
  for (const t of state.catalog) {
    const f = familyOf(t.name);
    families.set(f, [...(families.get(f) || []), t]);
  }
  for (const [family, types] of families) {
    const group = el("div", null, { class: "family" });
    const all = `${family}.*`;
    const familyBox = checkbox(`ev-${family}-all`, all, `All ${family} events (${all})`, selected.includes(all));
    familyBox.classList.add("family-box");
    group.append(familyBox);
    const members = el("div", null, { class: "members" });
    for (const t of types) {
      const box = checkbox(`ev-${t.name}`, t.name, t.name, selected.includes(t.name), t.description);
      members.append(box);
    }
    group.append(members);
    list.append(group);
  }
  includeEvents();
}

// A box a wider one includes shows as ticked and cannot be changed, with a word saying why;
// it gets its own state back when the wider one is unticked.
function include(input, by) {
  const note = input.parentElement.querySelector(".included");
  if (by) {
    if (!input.disabled) input.dataset.own = input.checked ? "1" : "";
    input.checked = true;
    input.disabled = true;
    if (!note) input.nextSibling.after(el("span", `included in ${by}`, { class: "hint included" }));
    else note.textContent = `included in ${by}`;
  } else if (input.disabled) {
    input.checked = input.dataset.own === "1";
    input.disabled = false;
    if (note) note.remove();
  }
}

function includeEvents() {
  const everything = $("ev-all") && $("ev-all").checked;
  for (const group of document.querySelectorAll("#f-events-list .family")) {
    const family = group.querySelector(".family-box input");
    include(family, everything ? "*" : null);
    for (const member of group.querySelectorAll(".members input")) {
      include(member, everything ? "*" : family.checked ? family.value : null);
    }
  }
}

function checkbox(id, value, label, checked, description) {
  const row = el("div", null, { class: "check" });
  const input = el("input", null, { type: "checkbox", id, value });
  input.checked = checked;
  const l = el("label", label, { for: id });
  row.append(input, l);
  if (description) {
    const d = el("span", description, { class: "hint", id: `${id}-desc` });
    input.setAttribute("aria-describedby", d.id);
    row.append(d);
  }
  return row;
}

// What is ticked by hand: a box a wider one includes is left out (the wider one says it).
function selectedEvents() {
  return [...document.querySelectorAll("#f-events-list input:checked:not(:disabled)")].map((i) => i.value);
}

let rowIds = 0;

function addUrn(value) {
  const id = `urn-${++rowIds}`;
  const li = el("li");
  const label = el("label", "URN pattern", { for: id, class: "visually-hidden" });
  const input = el("input", null, { id, type: "text", spellcheck: "false", autocomplete: "off", class: "urn" });
  input.value = value;
  li.append(label, input, button("Remove", () => li.remove(), { "aria-label": `Remove URN ${value}` }));
  $("f-urns-list").append(li);
  return input;
}

function addHeader(name = "", value = "") {
  const n = ++rowIds;
  const li = el("li");
  const nameInput = el("input", null, { id: `hn-${n}`, type: "text", spellcheck: "false", autocomplete: "off", class: "header-name", placeholder: "X-Api-Key" });
  const valueInput = el("input", null, { id: `hv-${n}`, type: "text", spellcheck: "false", autocomplete: "off", class: "header-value" });
  nameInput.value = name;
  valueInput.value = value;
  li.append(
    el("label", "Header name", { for: nameInput.id }),
    nameInput,
    el("label", "Header value", { for: valueInput.id }),
    valueInput,
    button("Remove", () => {
      li.remove();
      checkHeaders();
    }),
  );
  for (const i of [nameInput, valueInput]) i.addEventListener("input", checkHeaders);
  $("f-headers-list").append(li);
  checkHeaders();
  return nameInput;
}

function headerRows() {
  return [...$("f-headers-list").children].map((li) => ({
    name: li.querySelector(".header-name").value.trim(),
    value: li.querySelector(".header-value").value,
  }));
}

// The API's header rules, shown before submit (the API checks them again).
function headerProblems(rows) {
  const problems = [];
  const seen = new Set();
  if (rows.length > MAX_HEADERS) problems.push(`at most ${MAX_HEADERS} headers`);
  for (const { name, value } of rows) {
    if (!name && !value) continue;
    const lower = name.toLowerCase();
    if (!lower.startsWith("x-") || name.length < 3) problems.push(`${name || "a header"}: the name must start with X-`);
    else if (!TOKEN_CHARS.test(name)) problems.push(`${name}: letters, digits and !#$%&'*+-.^_\`|~ only`);
    else if (name.length > 128) problems.push(`${name}: at most 128 characters`);
    else if (RESERVED.some((p) => lower.startsWith(p))) problems.push(`${name}: that prefix is reserved`);
    else if (seen.has(lower)) problems.push(`${name}: given twice`);
    if (value.length > 512) problems.push(`${name}: the value is over 512 characters`);
    else if (/[^\x20-\x7e]/.test(value)) problems.push(`${name}: the value must be visible ASCII`);
    seen.add(lower);
  }
  return problems;
}

function checkHeaders() {
  const rows = headerRows();
  $("add-header").disabled = rows.length >= MAX_HEADERS;
  $("f-headers-error").textContent = headerProblems(rows).join("; ");
  if (!$("f-headers-error").textContent) fieldChanged("f-headers-error");
}

// The API's rule for a chosen signing secret: `whsec_` and base64 of 24 to 64 bytes.
function secretProblem(text) {
  if (!text) return null;
  const b64 = text.startsWith("whsec_") ? text.slice(6) : null;
  let bytes = -1;
  if (b64 !== null && /^[A-Za-z0-9+/]*={0,2}$/.test(b64) && b64.length % 4 === 0) {
    try {
      bytes = atob(b64).length;
    } catch {
      bytes = -1;
    }
  }
  return bytes >= 24 && bytes <= 64 ? null : "must be whsec_ followed by base64 of 24 to 64 bytes (or leave it empty)";
}

function openForm(webhook) {
  navigate(webhook ? `/webhooks/${enc(webhook.id)}/edit` : "/new");
  state.editing = webhook || null;
  $("form-title").textContent = webhook ? `Edit ${webhook.name}` : "Create a webhook";
  $("webhook-form").reset();
  clearErrors();
  $("f-url-probe").textContent = "";
  $("f-name").value = webhook ? webhook.name : "";
  $("f-url").value = webhook && webhook.url ? webhook.url : "";
  const d = webhook && webhook.destination;
  $("f-target").value = d ? d.type : "url";
  $("f-arn").value = d ? d.arn : "";
  $("f-role").value = d ? d.roleArn : "";
  $("f-source").value = d && d.source ? d.source : "";
  state.externalId = d ? d.externalId : null;
  $("f-policies").hidden = true;
  targetChanged();
  renderEvents(webhook ? webhook.eventTypes : []);
  clear($("f-urns-list"));
  for (const u of webhook ? webhook.urns : [`urn:allthings:app:${state.app}:*`]) addUrn(u);
  clear($("f-headers-list"));
  for (const [n, v] of Object.entries(webhook ? webhook.customHeaders : {})) addHeader(n, v);
  checkHeaders();
  $("f-enabled-field").hidden = !webhook;
  $("f-enabled").checked = webhook ? webhook.enabled : true;
  $("f-filter").value = webhook && webhook.filter ? JSON.stringify(webhook.filter, null, 2) : "";
  $("f-retry").value = webhook && webhook.retry ? webhook.retry.schedule.join(", ") : "";
  $("f-retry-max").value = webhook && webhook.retry ? String(webhook.retry.maxAttempts) : "";
  $("f-rate").value = webhook && webhook.rateLimit ? String(webhook.rateLimit.perSecond) : "";
  $("f-ordering").value = webhook ? webhook.ordering : "none";
  // A secret is chosen when creating only (an existing webhook's is rotated).
  $("f-secret").value = "";
  $("f-advanced").hidden = Boolean(webhook);
  $("f-advanced").open = false;
  show("form-view");
}

// The delivery rules as the API takes them: `null` for an empty field (the default), or
// `{error}` with what is wrong before anything is sent.
function ruleValues() {
  const text = $("f-filter").value.trim();
  let filter = null;
  if (text) {
    try {
      filter = JSON.parse(text);
    } catch (e) {
      return { error: ["filter", `is not JSON: ${e.message}`] };
    }
  }
  const steps = $("f-retry").value.split(",").map((s) => s.trim()).filter(Boolean);
  const max = $("f-retry-max").value.trim();
  const retry = steps.length || max ? { schedule: steps, ...(max ? { maxAttempts: Number(max) } : {}) } : null;
  const rate = $("f-rate").value.trim();
  const rateLimit = rate ? { perSecond: Number(rate) } : null;
  return { filter, retry, rateLimit, ordering: $("f-ordering").value };
}

function rulesText(w) {
  const parts = [];
  if (w.retry) parts.push(`retries after ${w.retry.schedule.join(", ") || "—"} (${w.retry.maxAttempts} attempts)`);
  if (w.rateLimit) parts.push(`at most ${w.rateLimit.perSecond} per second`);
  if (w.ordering && w.ordering !== "none") parts.push(w.ordering === "per-urn" ? "in order per resource URN" : "in order");
  return parts.join("; ") || "Defaults";
}

// What an ARN of each destination type looks like.
const ARN_EXAMPLES = {
  "aws-sqs": "arn:aws:sqs:eu-west-1:111122223333:crm-events",
  "aws-sns": "arn:aws:sns:eu-west-1:111122223333:crm-events",
  "aws-eventbridge": "arn:aws:events:eu-west-1:111122223333:event-bus/crm",
  "aws-kinesis": "arn:aws:kinesis:eu-west-1:111122223333:stream/crm-events",
};

// The form shows the URL or the AWS destination's fields, by what "Deliver to" says.
function targetChanged() {
  const target = $("f-target").value;
  $("f-url-field").hidden = target !== "url";
  $("f-destination").hidden = target === "url";
  $("f-source-field").hidden = target !== "aws-eventbridge";
  if (ARN_EXAMPLES[target]) $("f-arn").placeholder = ARN_EXAMPLES[target];
}

// Issues an external id for the App and shows the trust and permission policies to paste.
async function showPolicies() {
  $("f-destination-error").textContent = "";
  const type = $("f-target").value;
  const arn = $("f-arn").value.trim();
  if (!arn) {
    $("f-destination-error").textContent = "Enter the ARN first.";
    $("f-arn").focus();
    return;
  }
  try {
    const r = await api("POST", "/v1/destinations/external-ids", { appId: state.app, type, arn });
    state.externalId = r.externalId;
    $("f-external-id").textContent = r.externalId;
    $("f-trust-policy").textContent = r.trustPolicy
      ? JSON.stringify(r.trustPolicy, null, 2)
      : `This deployment does not name its AWS principal (HOOKLINE_AWS_PRINCIPAL): trust the principal its operators name, with sts:ExternalId = ${r.externalId}.`;
    $("f-permission-policy").textContent = JSON.stringify(r.permissionPolicy, null, 2);
    $("f-policies").hidden = false;
    say("Create the role with these two policies, then enter its ARN.");
  } catch (e) {
    const errors = (e.problem && e.problem.errors) || [];
    if (!showFieldErrors(errors)) $("f-destination-error").textContent = e.message;
  }
}

// The destination as the API takes it.
function destinationValue() {
  const type = $("f-target").value;
  const source = $("f-source").value.trim();
  return {
    type,
    arn: $("f-arn").value.trim(),
    roleArn: $("f-role").value.trim(),
    externalId: state.externalId || "",
    ...(type === "aws-eventbridge" && source ? { source } : {}),
  };
}

function formValues() {
  const headers = {};
  for (const { name, value } of headerRows()) if (name || value) headers[name] = value;
  const target = $("f-target").value === "url" ? { url: $("f-url").value.trim() } : { destination: destinationValue() };
  return {
    name: $("f-name").value.trim(),
    ...target,
    eventTypes: selectedEvents(),
    urns: [...document.querySelectorAll("#f-urns-list input")].map((i) => i.value.trim()).filter(Boolean),
    customHeaders: headers,
  };
}

async function save(event) {
  event.preventDefault();
  clearErrors();
  const values = formValues();
  const local = headerProblems(headerRows());
  if (local.length) {
    $("f-headers-error").textContent = local.join("; ");
    $("form-error").textContent = "Fix the custom headers first.";
    $("form-error").hidden = false;
    return;
  }
  const secretError = state.editing ? null : secretProblem($("f-secret").value.trim());
  if (secretError) {
    showFieldErrors([{ field: "secret", message: secretError }]);
    $("f-advanced").open = true;
    $("form-error").textContent = "Fix the signing secret first.";
    $("form-error").hidden = false;
    $("f-secret").focus();
    return;
  }
  const rules = ruleValues();
  if (rules.error) {
    showFieldErrors([{ field: rules.error[0], message: rules.error[1] }]);
    $("form-error").textContent = "Fix the payload filter first.";
    $("form-error").hidden = false;
    $("f-filter").focus();
    return;
  }
  if (values.destination && !state.externalId) {
    $("f-destination-error").textContent = "Show the policies first: the role must trust the external id they name.";
    $("form-error").textContent = "Not saved: the AWS destination needs its role set up first.";
    $("form-error").hidden = false;
    $("show-policies").focus();
    return;
  }
  $("save").disabled = true;
  say(
    values.destination
      ? "Saving: checking that Hookline can assume the role and send to the destination…"
      : "Saving: checking that the endpoint answers 200…",
  );
  try {
    if (state.editing) {
      // Empty rule fields send null: back to the default.
      const patch = { ...values, ...rules, enabled: $("f-enabled").checked };
      // Only over the version this form was opened on: a change made meanwhile is not lost.
      const w = await api("PATCH", `/v1/webhooks/${enc(state.editing.id)}`, patch, {
        "If-Match": `"${state.editing.version}"`,
      });
      await openDetail(w.id);
      say(`Saved ${w.name}.`);
    } else {
      const given = Object.fromEntries(Object.entries(rules).filter(([, v]) => v !== null));
      const secret = $("f-secret").value.trim();
      if (secret) given.secret = secret;
      const w = await api("POST", `/v1/webhooks?appId=${enc(state.app)}`, { ...values, ...given });
      showSecret(w.secret, w.id);
      say(`Created ${w.name}.`);
    }
  } catch (e) {
    const errors = (e.problem && e.problem.errors) || [];
    showFieldErrors(errors);
    if (errors.some((x) => x.field === "secret")) $("f-advanced").open = true;
    $("form-error").textContent = errors.length
      ? `Not saved: ${e.problem.title || "check the fields"}. ${errors.length === 1 ? "One field needs" : `${errors.length} fields need`} attention.`
      : e.status === 412
        ? "Not saved: the webhook was changed since you opened this form. Cancel and edit it again."
        : `Not saved: ${e.message}`;
    $("form-error").hidden = false;
    say("");
    // Focus the first field to fix (its message is read with it), else the summary.
    const invalid = document.querySelector("#webhook-form [aria-invalid='true']");
    if (invalid) invalid.focus();
  } finally {
    $("save").disabled = false;
  }
}

async function probe() {
  const out = $("f-url-probe");
  out.textContent = "Testing…";
  $("f-url-error").textContent = "";
  const customHeaders = formValues().customHeaders;
  try {
    const r = await api("POST", "/v1/webhooks/test", { url: $("f-url").value.trim(), customHeaders });
    out.textContent = r.ok
      ? `OK: ${r.method} answered ${r.status} in ${r.latencyMs} ms.`
      : `Not OK: ${r.error || `${r.method} answered ${r.status}`}${r.bodyExcerpt ? `; it said: ${r.bodyExcerpt}` : ""}`;
    if (r.ok) fieldChanged("f-url-error", $("f-url"));
  } catch (e) {
    out.textContent = "";
    const errors = (e.problem && e.problem.errors) || [];
    if (!showFieldErrors(errors)) $("f-url-error").textContent = e.message;
  }
}

function showSecret(secret, id) {
  $("secret").value = secret;
  $("secret-done").onclick = () => {
    $("secret").value = "";
    openDetail(id);
  };
  show("secret-view");
}

// --- The detail view ----------------------------------------------------------------------

async function loadWebhook(id) {
  try {
    return await api("GET", `/v1/webhooks/${enc(id)}`);
  } catch (e) {
    failed("Loading the webhook failed", e);
    return null;
  }
}

async function openDetail(id) {
  const w = await loadWebhook(id);
  if (!w) return;
  state.webhook = w;
  navigate(`/webhooks/${enc(w.id)}`);
  show("detail-view");
  $("detail-title").textContent = w.name;
  const facts = $("detail-facts");
  clear(facts);
  const fact = (term, value) => facts.append(el("dt", term), el("dd", value));
  if (w.destination) {
    fact("AWS destination", `${w.destination.type} ${w.destination.arn}`);
    fact("Role", `${w.destination.roleArn} (external id ${w.destination.externalId})`);
    fact("Permission policy", JSON.stringify(w.destination.permissionPolicy));
  } else {
    fact("Endpoint URL", w.url);
  }
  fact("Events", w.eventTypes.join(", "));
  fact("URN scope", w.urns.join(", "));
  fact("Custom headers", Object.keys(w.customHeaders).join(", ") || "None");
  if (w.filter) fact("Payload filter", JSON.stringify(w.filter));
  fact("Delivery rules", rulesText(w));
  fact("Status", statusText(w));
  if (w.disabledAt) fact("Disabled since", when(w.disabledAt));
  if (w.lastError) fact("Last error", w.lastError);
  if (w.failing) {
    fact(
      "Failing",
      `${w.failing.failures} failed deliveries since ${when(w.failing.since)}; the last: ${w.failing.lastError || "unknown"}`,
    );
  }
  fact("Id", w.id);
  const problem = $("detail-problem");
  problem.hidden = !troubled(w);
  problem.textContent = troubled(w) ? statusText(w) : "";
  $("toggle").textContent = w.enabled ? "Disable" : "Enable";
  $("confirm-delete").hidden = true;
  $("recover-panel").hidden = true;
  await Promise.all([loadLog(), loadHealth()]);
}

async function loadLog() {
  const w = state.webhook;
  let page;
  try {
    page = await api("GET", `/v1/webhooks/${enc(w.id)}/deliveries?limit=50`);
  } catch (e) {
    failed("Loading the delivery log failed", e);
    return;
  }
  const rows = $("log-rows");
  clear(rows);
  for (const a of page.items) {
    const tr = el("tr", null, { class: `attempt ${a.status}` });
    const eventCell = el("td", null, { class: "event-id" });
    eventCell.append(
      el("code", a.eventId),
      button("Copy", () => copyText(a.eventId, `Event id ${a.eventId} copied.`), {
        class: "link",
        "aria-label": `Copy event id ${a.eventId}`,
      }),
    );
    tr.append(
      el("td", when(a.at)),
      el("td", a.eventType || "—"),
      eventCell,
      el("td", a.status),
      el("td", a.responseStatus ?? (a.error ? "—" : "")),
      el("td", `${a.latencyMs} ms`),
      el("td", a.attempt),
      el("td", when(a.nextRetryAt)),
      el("td", a.error || a.responseExcerpt, { class: "excerpt" }),
    );
    const actions = el("td");
    actions.append(
      button("Redeliver", () => redeliver(a.deliveryId), {
        "aria-label": `Redeliver attempt ${a.attempt} of ${when(a.at)}`,
      }),
    );
    tr.append(actions);
    rows.append(tr);
  }
  $("log").hidden = page.items.length === 0;
  $("log-empty").hidden = page.items.length !== 0;
}

async function act(what, run) {
  try {
    await run();
  } catch (e) {
    failed(what, e);
  }
}

async function redeliver(deliveryId) {
  await act("Redelivering failed", async () => {
    await api("POST", `/v1/webhooks/${enc(state.webhook.id)}/deliveries/${enc(deliveryId)}/redeliver`);
    say("Redelivery queued; refresh the log to see it.");
  });
}

async function toggle() {
  const w = state.webhook;
  await act(w.enabled ? "Disabling failed" : "Enabling failed", async () => {
    await api("POST", `/v1/webhooks/${enc(w.id)}/${w.enabled ? "disable" : "enable"}`);
    await openDetail(w.id);
    say(w.enabled ? `Disabled ${w.name}.` : `Enabled ${w.name}.`);
  });
}

async function rotate() {
  const w = state.webhook;
  await act("Rotating the secret failed", async () => {
    const r = await api("POST", `/v1/webhooks/${enc(w.id)}/secret/rotate`);
    showSecret(r.secret, w.id);
    say("New secret made; the old one keeps signing beside it for the overlap (24 hours unless this deployment says otherwise).");
  });
}

// How long the page waits for a test event's attempt before it stops looking.
const TEST_WAIT_MS = 15000;

async function sendTest() {
  const w = state.webhook;
  await act("Sending the test event failed", async () => {
    const r = await api("POST", `/v1/webhooks/${enc(w.id)}/test`);
    say(`Test event ${r.eventId} queued; waiting for its attempt…`);
    const deadline = Date.now() + TEST_WAIT_MS;
    while (Date.now() < deadline && state.webhook && state.webhook.id === w.id) {
      await new Promise((resolve) => setTimeout(resolve, JOB_POLL_MS));
      const page = await api("GET", `/v1/webhooks/${enc(w.id)}/deliveries?limit=20`);
      const attempt = page.items.find((a) => a.eventId === r.eventId);
      if (attempt) {
        await loadLog();
        const code = attempt.responseStatus ? ` (${attempt.responseStatus})` : attempt.error ? ` (${attempt.error})` : "";
        say(`Test event ${r.eventId}: ${attempt.status}${code}. It is in the log below.`);
        return;
      }
    }
    say(`Test event ${r.eventId} queued; it is not in the log yet (Refresh to look again).`);
  });
}

async function copyText(text, done) {
  try {
    await navigator.clipboard.writeText(text);
    say(done);
  } catch {
    say(`Select and copy it by hand (the browser refused clipboard access): ${text}`);
  }
}

// --- Recover ------------------------------------------------------------------------------

// How often a running job is read.
const JOB_POLL_MS = 500;

// The panel serves both jobs: recover failed deliveries, and send past events (backfill).
const JOB_MODES = {
  recover: {
    path: "recover",
    title: "Recover failed deliveries",
    about: ": send again, once each, every delivery whose last attempt failed for good (retries exhausted, or refused with a 4xx).",
    since: "Failed in the last",
    none: "No deliveries to recover in this window.",
    some: (n) => `${n} ${n === 1 ? "delivery" : "deliveries"} failed for good in this window and will be sent again.`,
    verb: "Redeliver",
    done: (n) => `Recovered ${n} ${n === 1 ? "delivery" : "deliveries"}.`,
    failed: "Recovering failed",
  },
  backfill: {
    path: "backfill",
    title: "Send past events",
    about: ": send this webhook the events it would have received in a past window (its events, URN scope and filter), oldest first, each marked webhook-backfill: true.",
    since: "Received in the last",
    none: "No past events match in this window.",
    some: (n) => `${n} past ${n === 1 ? "event matches" : "events match"} and will be sent.`,
    verb: "Send",
    done: (n) => `Sent ${n} past ${n === 1 ? "event" : "events"}.`,
    failed: "Sending past events failed",
  },
};

function jobMode() {
  return JOB_MODES[state.jobMode || "recover"];
}

function recoverWindow() {
  const hours = Number($("recover-since").value) || 24;
  return new Date(Date.now() - hours * 3600 * 1000).toISOString();
}

async function openRecover(mode) {
  state.jobMode = mode;
  const m = jobMode();
  const title = $("recover-title");
  clear(title);
  title.append(el("strong", m.title), m.about);
  $("recover-since-label").textContent = m.since;
  $("recover-state").textContent = "";
  $("recover-panel").hidden = false;
  $("recover-run").hidden = true;
  await countRecoverable();
  $("recover-since").focus();
}

async function countRecoverable() {
  const w = state.webhook;
  const m = jobMode();
  const count = $("recover-count");
  const yes = $("recover-yes");
  yes.disabled = true;
  count.textContent = "Counting…";
  try {
    const r = await api("POST", `/v1/webhooks/${enc(w.id)}/${m.path}`, { since: recoverWindow(), dryRun: true });
    const n = r.matched;
    count.textContent = n === 0 ? m.none : m.some(n);
    yes.textContent = n === 0 ? m.verb : `${m.verb} ${n}`;
    yes.disabled = n === 0;
  } catch (e) {
    count.textContent = `Counting failed: ${e.message}`;
  }
}

async function startRecover() {
  const w = state.webhook;
  const m = jobMode();
  $("recover-yes").disabled = true;
  await act(m.failed, async () => {
    const r = await api("POST", `/v1/webhooks/${enc(w.id)}/${m.path}`, { since: recoverWindow() });
    if (!r.jobId) {
      $("recover-count").textContent = m.none;
      return;
    }
    $("recover-run").hidden = false;
    await followJob(r.jobId);
  });
}

async function followJob(jobId) {
  const m = jobMode();
  const bar = $("recover-progress");
  const label = $("recover-state");
  for (;;) {
    const job = await api("GET", `/v1/jobs/${enc(jobId)}`);
    bar.max = Math.max(job.total, 1);
    bar.value = job.done;
    label.textContent = `${job.done} of ${job.total} sent (${job.state})`;
    if (["done", "failed", "cancelled"].includes(job.state)) {
      if (job.state === "failed") alarm(`${m.failed}: ${job.error || "unknown error"}`);
      else say(m.done(job.done));
      await loadLog();
      return;
    }
    await new Promise((resolve) => setTimeout(resolve, JOB_POLL_MS));
  }
}

async function remove() {
  const w = state.webhook;
  await act("Deleting failed", async () => {
    await api("DELETE", `/v1/webhooks/${enc(w.id)}`);
    await openList();
    say(`Deleted ${w.name}.`);
  });
}

// --- Wiring -------------------------------------------------------------------------------

function wire() {
  $("sign-in-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const token = $("token").value.trim();
    if (!token) {
      $("token-error").textContent = "Paste a token first.";
      return;
    }
    $("token").value = "";
    signIn(token);
  });
  $("sign-out").addEventListener("click", () => signOut("Signed out."));
  $("app").addEventListener("change", (e) => pickApp(e.target.value));
  $("app-other").addEventListener("change", (e) => pickApp(e.target.value.trim()));
  $("tab-webhooks").addEventListener("click", () => state.app && openList());
  $("create").addEventListener("click", () => openForm(null));
  $("cancel").addEventListener("click", () => (state.editing ? openDetail(state.editing.id) : openList()));
  $("webhook-form").addEventListener("submit", save);
  for (const [input, error] of [
    ["f-name", "f-name-error"],
    ["f-url", "f-url-error"],
    ["f-filter", "f-filter-error"],
    ["f-retry", "f-retry-error"],
    ["f-retry-max", "f-retry-error"],
    ["f-rate", "f-rate-error"],
    ["f-secret", "f-secret-error"],
  ]) {
    $(input).addEventListener("input", () => fieldChanged(error, $(input)));
  }
  $("f-events-list").addEventListener("change", () => {
    includeEvents();
    fieldChanged("f-events-error");
  });
  $("f-urns-list").addEventListener("input", () => fieldChanged("f-urns-error"));
  window.addEventListener("popstate", () => {
    if (state.token) route();
  });
  $("probe").addEventListener("click", probe);
  $("f-target").addEventListener("change", () => {
    targetChanged();
    fieldChanged("f-destination-error");
  });
  $("show-policies").addEventListener("click", showPolicies);
  for (const input of ["f-arn", "f-role", "f-source"]) {
    $(input).addEventListener("input", () => fieldChanged("f-destination-error", $(input)));
  }
  $("add-urn").addEventListener("click", () => addUrn(`urn:allthings:app:${state.app}:`).focus());
  $("add-header").addEventListener("click", () => addHeader().focus());
  $("copy-secret").addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText($("secret").value);
      say("Secret copied.");
    } catch {
      $("secret").select();
      say("Select and copy the secret by hand: the browser refused clipboard access.");
    }
  });
  $("back").addEventListener("click", () => openList());
  $("edit").addEventListener("click", () => openForm(state.webhook));
  $("toggle").addEventListener("click", toggle);
  $("rotate").addEventListener("click", rotate);
  $("send-test").addEventListener("click", sendTest);
  $("recover").addEventListener("click", () => openRecover("recover"));
  $("backfill").addEventListener("click", () => openRecover("backfill"));
  $("recover-since").addEventListener("change", countRecoverable);
  $("recover-yes").addEventListener("click", startRecover);
  $("recover-no").addEventListener("click", () => {
    $("recover-panel").hidden = true;
    $("recover").focus();
  });
  $("delete").addEventListener("click", () => {
    $("confirm-delete").hidden = false;
    $("confirm-no").focus();
  });
  $("confirm-no").addEventListener("click", () => {
    $("confirm-delete").hidden = true;
    $("delete").focus();
  });
  $("confirm-yes").addEventListener("click", remove);
  $("refresh-log").addEventListener("click", () => Promise.all([loadLog(), loadHealth()]));
}

wire();
const token = tokenFromFragment() || sessionStorage.getItem(TOKEN_KEY);
if (token) signIn(token);
else signOut();

// The page's entry point: wires the sessions list, the timeline, the details, the state panel and
// the inject form to the API and the live feeds. The URL hash (#session=<id>) names the session
// on screen, so a link to a session can be shared.

import { apiToken, fetchHistory, fetchSession, fetchSessions, LiveFeed, setApiToken, transcriptUrl } from "./api.js";
import { renderDetails } from "./details.js";
import { InjectForm } from "./inject.js";
import { Session } from "./model.js";
import { SessionList } from "./sessions.js";
import { renderState } from "./state.js";
import { Timeline } from "./timeline.js";
import { clock, debounce, h, plural, shortId, throttle } from "./util.js";

const $ = (sel) => document.querySelector(sel);

const app = {
  session: null,        // model.Session on screen
  feed: null,           // LiveFeed of the debugger for that session
  loading: false,       // history still loading: live events wait in `backlog`
  backlog: [],
  paused: false,
  held: [],             // live events received while paused
  selectedRow: null,
};

// ---------------------------------------------------------------- views (phone: one at a time)
function showView(view) {
  document.body.dataset.view = view;
  if (["details", "state", "inject"].includes(view)) document.body.dataset.side = view;
  for (const tab of document.querySelectorAll(".views [data-view]")) {
    const active = tab.dataset.view === view || (tab.dataset.view === document.body.dataset.side && !isNarrow() && !["sessions", "timeline"].includes(tab.dataset.view));
    tab.setAttribute("aria-selected", active ? "true" : "false");
  }
}
const isNarrow = () => window.matchMedia("(max-width: 720px)").matches;
for (const tab of document.querySelectorAll(".views [data-view]")) {
  tab.addEventListener("click", () => showView(tab.dataset.view));
}

// ---------------------------------------------------------------- sessions
const sessionList = new SessionList($("#session-list"), {
  onSelect: (id) => { location.hash = `session=${encodeURIComponent(id)}`; },
});

async function loadSessions() {
  try {
    sessionList.replaceAll(await fetchSessions());
    if (app.session) refreshCaption();
  } catch (e) {
    const items = [h("li", { class: "error-text", role: "alert" }, `Could not load sessions: ${e.message}`)];
    if (e.status === 401 || e.status === 403) items.push(tokenForm());
    $("#session-list").replaceChildren(...items);
  }
}

/** The daemon guards reads (--api-guard-reads): ask for its API token once, keep it for the tab. */
function tokenForm() {
  const input = h("input", { type: "password", id: "read-token", autocomplete: "off", value: apiToken() });
  return h("li", null, h("form", { class: "token-form", onsubmit: (e) => {
    e.preventDefault();
    setApiToken(input.value.trim());
    location.reload();
  } }, h("label", { for: "read-token" }, "API token"), input, h("button", { type: "submit", class: "small" }, "Use")));
}
const refreshSessionsSoon = throttle(loadSessions, 1000);

const localTime = (value) => (value ? new Date(value).getTime() : NaN);
$("#filter-id").addEventListener("input", (e) => sessionList.setFilter({ text: e.target.value.trim() }));
for (const [id, key] of [["#filter-from", "from"], ["#filter-to", "to"]]) {
  for (const type of ["input", "change"]) {
    $(id).addEventListener(type, (e) => sessionList.setFilter({ [key]: localTime(e.target.value) }));
  }
}
$("#sessions-refresh").addEventListener("click", loadSessions);

const feedState = $("#feed-state");
new LiveFeed("/backend/session-updates/", () => ({}), (update) => {
  // Updates carry the counts (about once a second while a session is busy); the full list is
  // read again only when a session appears or changes state.
  const known = sessionList.get(update.session_id);
  const changed = !known || known.state !== (update.state || known.state);
  sessionList.update(update);
  if (app.session && update.session_id === app.session.id) {
    refreshCaption();
    injectForm.setSession(sessionList.get(app.session.id));
    refreshStateSoon();
  }
  if (changed) refreshSessionsSoon();
}, (state) => {
  feedState.textContent = state === "open" ? "live" : state === "connecting" ? "connecting…" : "reconnecting…";
  feedState.className = `feed-state feed-${state}`;
  if (state === "open") loadSessions();
});

// ---------------------------------------------------------------- timeline
const timeline = new Timeline($("#timeline"), {
  onSelect: (row) => {
    app.selectedRow = row;
    renderDetails($("#details"), row, gotoRow);
  },
  onOpen: (row) => {
    app.selectedRow = row;
    renderDetails($("#details"), row, gotoRow);
    showView("details");
  },
});

function gotoRow(row) {
  if (!app.session.visible.includes(row.n - 1)) {
    // The row is filtered out: clear the filters so it can be shown in its place.
    resetTimelineFilters();
  }
  timeline.select(row.n - 1, { scroll: true });
  if (isNarrow()) showView("timeline");
}

function resetTimelineFilters() {
  for (const id of ["#f-type", "#f-sender", "#f-validity", "#f-rule"]) $(id).value = "";
  $("#f-events").checked = true;
  app.session.setFilter({ type: "", sender: "", validity: "", rule: "", events: true });
  timeline.schedule();
}

function readFilters() {
  if (!app.session) return;
  app.session.setFilter({
    type: $("#f-type").value,
    sender: $("#f-sender").value,
    validity: $("#f-validity").value,
    rule: $("#f-rule").value,
    events: $("#f-events").checked,
  });
  timeline.follow = false;
  timeline.schedule();
  updateStatus();
}
for (const id of ["#f-type", "#f-sender", "#f-validity", "#f-rule", "#f-events"]) $(id).addEventListener("change", readFilters);

/** Keep the type and rule choices in step with what the session contains. */
function syncOptions(select, map, allText) {
  const keys = [...map.keys()].sort((a, b) => String(a).localeCompare(String(b), undefined, { numeric: true }));
  if (select.options.length - 1 === keys.length) return;
  const current = select.value;
  select.replaceChildren(h("option", { value: "" }, allText), ...keys.map((k) => h("option", { value: k }, k)));
  select.value = current;
}

const refreshRulesSoon = throttle(() => {
  if (!app.session) return;
  // Findings that fire later (deadlines) change a row's validity: filters must look again.
  const f = app.session.filter;
  if (f.validity || f.rule) app.session.refilter();
  timeline.schedule();
  syncOptions($("#f-rule"), app.session.rules, "all rules");
  updateStatus();
}, 300);

function updateStatus() {
  const s = app.session;
  if (!s) { $("#timeline-status").textContent = ""; return; }
  const messages = s.rows.filter((r) => r.isMessage).length;
  const parts = [`${plural(messages, "message")}`, `${s.visible.length} shown`];
  if (app.loading) parts.push("loading history…");
  if (app.paused) {
    // Late findings attach to rows already shown; only new rows count as waiting.
    const rows = app.held.filter((e) => e.event !== "finding").length;
    const late = app.held.length - rows;
    parts.push(`paused: ${rows} new waiting` + (late ? ` (+${late} late findings)` : ""));
  }
  $("#timeline-status").textContent = parts.join(" · ");
}
const updateStatusSoon = throttle(updateStatus, 150);

function addRecords(records) {
  const s = app.session;
  let attached = false;
  for (const rec of records) {
    const row = s.add(rec);
    if (row && rec.event === "finding") attached = true;
    if (row && row === app.selectedRow) renderDetails($("#details"), row, gotoRow);
  }
  syncOptions($("#f-type"), s.types, "all types");
  if (attached || s.rules.size !== $("#f-rule").options.length - 1) refreshRulesSoon();
  timeline.schedule();
  updateStatusSoon();
}

function onLive(event) {
  if (!app.session || (event.session_id && event.session_id !== app.session.id)) return;
  if (app.loading) { app.backlog.push(event); return; }
  if (app.paused) { app.held.push(event); updateStatusSoon(); return; }
  addRecords([event]);
  refreshStateSoon();
}

$("#pause").addEventListener("click", () => {
  app.paused = !app.paused;
  const button = $("#pause");
  button.setAttribute("aria-pressed", app.paused ? "true" : "false");
  button.textContent = app.paused ? "Resume" : "Pause";
  if (!app.paused && app.held.length) {
    const held = app.held;
    app.held = [];
    addRecords(held);
    refreshStateSoon();
  }
  updateStatus();
});

// ---------------------------------------------------------------- state panel
async function loadState() {
  if (!app.session) return;
  const id = app.session.id;
  try {
    const data = await fetchSession(id);
    if (app.session && app.session.id === id) renderState($("#state-body"), data);
  } catch (e) {
    if (app.session && app.session.id === id) renderState($("#state-body"), null, e.message);
  }
}
const refreshStateSoon = throttle(loadState, 1000);

// ---------------------------------------------------------------- inject
const injectForm = new InjectForm($("#inject-root"));

// ---------------------------------------------------------------- one session on screen
function refreshCaption() {
  const info = sessionList.get(app.session.id);
  const caption = $("#session-caption");
  if (!info) { caption.textContent = `Session ${app.session.id}`; return; }
  caption.replaceChildren(
    h("span", { class: `state state-${info.state === "open" ? "open" : "closed"}` }, info.state === "open" ? "live" : "closed"),
    " RM ", h("strong", null, info.rmId), " ⇄ CEM ", h("strong", null, info.cemId), " · session ",
    h("span", { title: info.id }, shortId(info.id)));
}

async function openSession(id) {
  if (app.feed) app.feed.stop();
  sessionList.selected = id;
  sessionList.render();
  const s = new Session(id);
  Object.assign(app, { session: s, loading: true, backlog: [], held: [], selectedRow: null });
  resetTimelineFilters();
  syncOptions($("#f-type"), s.types, "all types");
  syncOptions($("#f-rule"), s.rules, "all rules");
  timeline.setSession(s);
  renderDetails($("#details"), null);
  refreshCaption();
  $("#pause").disabled = false;
  const exportLink = $("#export");
  exportLink.href = transcriptUrl(id);
  exportLink.setAttribute("download", `s2-session-${id}.jsonl`);
  exportLink.classList.remove("disabled");
  exportLink.removeAttribute("aria-disabled");
  injectForm.setSession(sessionList.get(id) || { id, state: "closed" });
  fillInjectId();
  loadState();

  // The live feed opens first and its events wait while the history pages load, so nothing
  // falls between the two; records present in both are dropped by Session.add().
  app.feed = new LiveFeed("/backend/debugger/",
    (opens) => ({ session_id: id, include_session_history: "false" }),
    onLive,
    (state) => { if (state === "open" && app.feed && app.feed.opens > 1) loadHistory(s); });
  await loadHistory(s);
}

async function loadHistory(s) {
  app.loading = true;
  updateStatus();
  let lastId = null;
  try {
    lastId = await fetchHistory(s.id, (records) => { if (app.session === s) addRecords(records); });
  } catch (e) {
    if (app.session === s) $("#timeline-status").textContent = `Could not load the history: ${e.message}`;
  }
  if (app.session !== s) return;
  app.loading = false;
  const backlog = app.backlog;
  app.backlog = [];
  if (app.paused) app.held.push(...backlog); else addRecords(backlog);
  updateStatus();
  // The store writes in batches a few milliseconds behind the live feed: an event from just before
  // the feed opened may have reached the disk only after the first page was read. One catch-up
  // read closes that gap (duplicates are dropped by their seq).
  setTimeout(async () => {
    if (app.session !== s) return;
    try {
      await fetchHistory(s.id, (records) => {
        if (app.session !== s) return;
        if (app.paused) app.held.push(...records); else addRecords(records);
      }, lastId);
    } catch (e) { /* the live feed goes on; a reload shows the full history */ }
  }, 1500);
}

function fillInjectId() {
  const area = $("#inject-text");
  const uuid = (crypto.randomUUID && window.isSecureContext) ? crypto.randomUUID()
    : "10000000-1000-4000-8000-100000000000".replace(/[018]/g, (c) =>
        (c ^ (crypto.getRandomValues(new Uint8Array(1))[0] & (15 >> (c / 4)))).toString(16));
  area.value = area.value.replace(/"message_id":\s*"[^"]*"/, `"message_id": "${uuid}"`);
}

function route() {
  const match = location.hash.match(/session=([^&]+)/);
  if (match) {
    const id = decodeURIComponent(match[1]);
    if (!app.session || app.session.id !== id) openSession(id);
    showView("timeline");
  } else {
    showView("sessions");
  }
}

window.addEventListener("hashchange", route);
window.addEventListener("resize", debounce(() => showView(document.body.dataset.view), 100));
loadSessions();
route();

// For the browser tests and for debugging in the console.
window.s2proxyApp = { app, timeline, clock };

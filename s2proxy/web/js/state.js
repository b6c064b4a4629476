// The state panel: what the checker knows about the conversation, from GET /backend/sessions/{id}
// and its "summary" (s2proxy/checker/summary.py). Known parts get a readable layout; the rest of
// the summary is shown as a plain key/value tree so nothing the checker reports is hidden.

import { clear, dateTime, h, toMillis } from "./util.js";

const STATES = {
  H: "handshake in progress",
  I: "initialised, no control type",
  N: "NOT_CONTROLABLE active",
  T: "terminating (SessionRequest sent)",
  F: "failed (handshake refused or PERMANENT_ERROR)",
};
const SHOWN = new Set(["state", "handshake", "resource_manager", "control_type", "activation", "switch_window",
                       "system_description", "instructions", "pending_reception_statuses", "counts", "terminating"]);

export function renderState(container, session, error) {
  clear(container);
  if (error) {
    container.appendChild(h("p", { class: "error-text", role: "alert" }, `Could not load the session state: ${error}`));
    return;
  }
  if (!session) {
    container.appendChild(h("p", { class: "empty" }, "Select a session to see its state."));
    return;
  }
  const s = session.summary;
  const facts = [["Session", session.session_id], ["RM ⇄ CEM", `${session.rm_id} ⇄ ${session.cem_id}`],
                 ["Started", when(session.start_timestamp)],
                 ["Ended", session.end_timestamp ? `${when(session.end_timestamp)}${session.end_reason ? ` (${session.end_reason})` : ""}` : "live"]];
  if (session.connected) facts.push(["Connected", Object.entries(session.connected).filter(([, v]) => v).map(([k]) => k).join(", ") || "nobody"]);
  container.appendChild(section("Session", table(facts)));
  if (!s || typeof s !== "object") {
    container.appendChild(h("p", { class: "muted" }, "The checker's summary is not available for this session (no checker, or the proxy was killed)."));
    return;
  }

  const letter = String(s.state || "");
  const ctMatch = letter.match(/^A\((.+)\)$/);
  const hs = s.handshake || {};
  const hsRows = [
    ["Conversation state", ctMatch ? `control type ${ctMatch[1]} active` : (STATES[letter] || letter || "—")],
    ["Handshake", hs.failed ? "failed" : hs.done ? "done" : "in progress"],
    ["Negotiated version", hs.version || "not yet"],
    ["RM Handshake", yes(hs.rm_handshake)],
    ["CEM Handshake", yes(hs.cem_handshake)],
  ];
  if (hs.without_handshake) hsRows.push(["Note", "session started without Handshake (R-010)"]);
  if (s.terminating) hsRows.push(["Terminating", `SessionRequest by ${s.terminating.by || "?"}${s.terminating.acknowledged ? `, acknowledged ${when(s.terminating.acknowledged)}` : ""}`]);
  container.appendChild(section("Handshake", table(hsRows)));

  const ctRows = [];
  if (s.activation !== undefined && s.activation !== null) ctRows.push(["Activation", `#${s.activation}`]);
  if (s.switch_window) {
    ctRows.push(["Switching from", `${s.switch_window.previous || "none"} (SelectControlType ${s.switch_window.acknowledged ? `answered ${s.switch_window.acknowledged}` : "not yet answered"})`]);
  }
  container.appendChild(section("Active control type",
    h("p", { class: "ct", "data-testid": "control-type" }, s.control_type || "none selected"),
    ctRows.length ? table(ctRows) : null));

  const rm = s.resource_manager;
  if (rm && typeof rm === "object") {
    const order = ["name", "resource_id", "manufacturer", "model", "serial_number", "firmware_version", "roles",
                   "available_control_types", "provides_forecast", "provides_power_measurement_types",
                   "instruction_processing_delay", "currency"];
    const keys = order.filter((k) => k in rm).concat(Object.keys(rm).filter((k) => !order.includes(k)));
    container.appendChild(section("Resource manager", table(keys.map((k) => [label(k),
      k === "roles" ? roles(rm[k]) : k === "instruction_processing_delay" ? `${rm[k]} ms` : text(rm[k])]))));
  } else {
    container.appendChild(section("Resource manager", h("p", { class: "muted" }, "No ResourceManagerDetails yet.")));
  }

  container.appendChild(section("System description", description(s.system_description)));

  container.appendChild(section("Open instructions", grid(s.instructions, [
    ["id", (i) => h("span", { class: "mono", title: i.id }, short(i.id))],
    ["type", (i) => text(i.type)],
    ["status", (i) => h("span", null, i.status || "no status yet", i.revoked ? " (revoked)" : "")],
    ["execution", (i) => when(i.execution_time)],
  ], "No open instructions.")));

  container.appendChild(section("Pending reception statuses", grid(s.pending_reception_statuses, [
    ["from", (p) => text(p.sender)],
    ["type", (p) => text(p.message_type)],
    ["message id", (p) => h("span", { class: "mono", title: p.message_id || "" }, short(p.message_id))],
    ["deadline", (p) => h("span", { class: p.late ? "error-text" : "" }, when(p.deadline), p.late ? " (late)" : "")],
  ], "Nothing is waiting for a ReceptionStatus.")));

  const counts = s.counts || {};
  if (counts.messages && typeof counts.messages === "object") {
    const rows = [];
    for (const [sender, perType] of Object.entries(counts.messages)) {
      if (perType && typeof perType === "object") {
        for (const [type, n] of Object.entries(perType)) rows.push([`${sender}: ${type}`, String(n)]);
      } else rows.push([sender, text(perType)]);
    }
    if (rows.length) container.appendChild(section("Messages per type", table(rows)));
  }
  if (counts.findings && Object.keys(counts.findings).length) {
    container.appendChild(section("Findings per rule", table(Object.entries(counts.findings)
      .sort((a, b) => a[0].localeCompare(b[0], undefined, { numeric: true })).map(([k, v]) => [k, String(v)]))));
  }

  const rest = {};
  for (const [key, value] of Object.entries(s)) {
    if (SHOWN.has(key)) continue;
    if (value === null || (typeof value === "object" && !Object.keys(value).length)) continue;
    rest[key] = value;
  }
  if (Object.keys(rest).length) container.appendChild(section("More", tree(rest)));
}

/** The latest system description in brief: actuators, operation modes, storage range, timers. */
function description(d) {
  if (!d) return h("p", { class: "muted" }, "No system description in this activation.");
  if (typeof d !== "object") return h("p", null, text(d));
  const parts = [];
  const head = [];
  if (d.control_type) head.push(["Control type", d.control_type]);
  if (d.message_id) head.push(["Message", h("span", { class: "mono", title: d.message_id }, short(d.message_id))]);
  if (d.valid_from) head.push(["Valid from", when(d.valid_from)]);
  if (d.revoked) head.push(["Revoked", "yes"]);
  if (d.descriptions_in_activation > 1) head.push(["Descriptions", String(d.descriptions_in_activation)]);
  if (head.length) parts.push(table(head));
  const scopes = d.actuators || (d.device ? [d.device] : []);
  for (const a of scopes) {
    if (!a) continue;
    const modes = (a.operation_modes || []).map((m) => h("li", { class: m === a.active_operation_mode ? "active-mode" : "" },
      h("span", { class: "mono", title: m }, short(m)),
      m === a.active_operation_mode ? h("strong", null, ` active${a.operation_mode_factor !== null && a.operation_mode_factor !== undefined ? `, factor ${a.operation_mode_factor}` : ""}`) : null,
      (a.abnormal_only_modes || []).includes(m) ? " (abnormal only)" : null));
    const timers = (a.timers || []).map((t) => h("li", null, h("span", { class: "mono", title: t.id }, short(t.id)),
      ` ${t.duration_ms !== undefined ? `${t.duration_ms / 1000} s` : ""}`, t.finished_at ? ` · finished at ${when(t.finished_at)}` : ""));
    parts.push(h("div", { class: "actuator" },
      h("h4", null, a.id ? `Actuator ${short(a.id)}` : "Device"),
      h("p", { class: "small" }, `${(a.operation_modes || []).length} operation modes, ${a.transitions ?? 0} transitions, ${(a.timers || []).length} timers`),
      modes.length ? h("ul", { class: "modes" }, modes) : null,
      timers.length ? [h("p", { class: "small muted" }, "Timers"), h("ul", { class: "modes" }, timers)] : null));
  }
  if (d.storage) {
    const st = d.storage;
    const range = Array.isArray(st.fill_level_range) ? st.fill_level_range
      : st.fill_level_range ? [st.fill_level_range.start_of_range, st.fill_level_range.end_of_range] : null;
    parts.push(h("div", { class: "actuator" }, h("h4", null, "Storage"), table([
      ["Fill level", `${st.fill_level_label || ""}`.trim() || "—"],
      ["Range", range ? `${range[0]} … ${range[1]}` : "—"],
      ["Present", st.present_fill_level ?? "—"],
    ])));
  }
  const known = new Set(["control_type", "message_id", "valid_from", "revoked", "descriptions_in_activation", "actuators", "device", "storage"]);
  const other = Object.fromEntries(Object.entries(d).filter(([k]) => !known.has(k)));
  if (Object.keys(other).length) parts.push(tree(other));
  return h("div", null, parts);
}

function section(title, ...body) {
  return h("section", { class: "s-section" }, h("h3", null, title), ...body);
}

const label = (key) => String(key).replace(/_/g, " ");
const yes = (v) => (v ? "received" : "not received");
const short = (id) => (id && String(id).length > 13 ? String(id).slice(0, 4) + "…" + String(id).slice(-4) : (id ?? "—"));

function text(value) {
  if (value === null || value === undefined) return "—";
  if (typeof value === "boolean") return value ? "yes" : "no";
  if (Array.isArray(value)) return value.map(text).join(", ");
  if (typeof value === "object") return JSON.stringify(value);
  return String(value);
}

function when(value) {
  if (value === null || value === undefined) return "—";
  const ms = toMillis(value);
  return Number.isFinite(ms) ? dateTime(ms) : text(value);
}

function roles(list) {
  if (!Array.isArray(list)) return text(list);
  return list.map((r) => (r && typeof r === "object" ? `${r.role || "?"} (${r.commodity || "?"})` : String(r))).join(", ");
}

function table(rows) {
  return h("table", { class: "kv" }, h("tbody", null, rows.map(([k, v]) =>
    h("tr", null, h("th", { scope: "row" }, k), h("td", null, v)))));
}

function grid(items, columns, emptyText) {
  if (!Array.isArray(items) || !items.length) return h("p", { class: "muted" }, emptyText);
  return h("table", { class: "grid" },
    h("thead", null, h("tr", null, columns.map(([title]) => h("th", { scope: "col" }, title)))),
    h("tbody", null, items.map((item) => h("tr", null, columns.map(([, cell]) => h("td", null, cell(item)))))));
}

function tree(value) {
  if (value === null || typeof value !== "object") return h("p", null, text(value));
  const entries = Array.isArray(value) ? value.map((v, i) => [String(i), v]) : Object.entries(value);
  if (!entries.length) return h("p", { class: "muted" }, "empty");
  return h("ul", { class: "tree" }, entries.map(([key, v]) => {
    if (v && typeof v === "object" && (Array.isArray(v) ? v.length : Object.keys(v).length)) {
      return h("li", null, h("details", { open: true }, h("summary", null, label(key)), tree(v)));
    }
    return h("li", null, h("span", { class: "t-key" }, label(key)), ": ", h("span", { class: "t-val" }, text(v)));
  }));
}

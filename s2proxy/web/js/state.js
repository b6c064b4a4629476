// The state panel: what the checker knows about the conversation (GET /backend/sessions/{id},
// its state summary). Known sections get a readable layout; anything else in the summary is
// shown as a plain key/value tree so nothing the checker reports is hidden.

import { clear, dateTime, h, toMillis } from "./util.js";

/** The first present value among several candidate paths ("a.b" walks objects). */
function pick(obj, ...paths) {
  for (const path of paths) {
    let value = obj;
    for (const part of path.split(".")) {
      if (value === null || value === undefined || typeof value !== "object") { value = undefined; break; }
      value = value[part];
    }
    if (value !== undefined && value !== null) return value;
  }
  return undefined;
}

export function summaryOf(session) {
  if (!session || typeof session !== "object") return {};
  return session.summary || session.state_summary || session.checker || session.state_details || {};
}

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
  const s = summaryOf(session);
  const used = new Set();
  const take = (...paths) => {
    for (const path of paths) {
      const value = pick(s, path);
      if (value !== undefined) { used.add(path.split(".")[0]); return value; }
    }
    return undefined;
  };

  // Handshake and version
  const handshake = take("handshake", "handshake_state");
  const version = take("version", "negotiated_version", "selected_protocol_version", "protocol_version")
    ?? pick(handshake, "version", "selected_protocol_version", "negotiated_version");
  const phase = take("state", "phase", "session_state");
  const hsRows = [];
  if (phase !== undefined) hsRows.push(["Conversation state", text(phase)]);
  if (handshake !== undefined && typeof handshake !== "object") hsRows.push(["Handshake", text(handshake)]);
  if (handshake && typeof handshake === "object") {
    for (const [key, value] of Object.entries(handshake)) {
      if (!["version", "selected_protocol_version", "negotiated_version"].includes(key)) hsRows.push([label(key), text(value)]);
    }
  }
  hsRows.push(["Negotiated version", version !== undefined ? text(version) : "not yet"]);
  container.appendChild(section("Handshake", table(hsRows)));

  // Active control type
  const ct = take("control_type", "active_control_type", "activation.control_type", "activation.ct");
  container.appendChild(section("Active control type",
    h("p", { class: "ct", "data-testid": "control-type" }, ct !== undefined && ct !== null ? text(ct) : "none selected")));

  // Resource manager details
  const rmd = take("rm_details", "resource_manager_details", "rmd", "details");
  if (rmd && typeof rmd === "object") {
    const rows = [];
    const order = ["name", "resource_id", "manufacturer", "model", "serial_number", "firmware_version",
                   "roles", "available_control_types", "provides_forecast", "provides_power_measurement_types",
                   "instruction_processing_delay", "currency"];
    const keys = order.filter((k) => k in rmd).concat(Object.keys(rmd).filter((k) => !order.includes(k) && k !== "message_type" && k !== "message_id"));
    for (const key of keys) rows.push([label(key), key === "roles" ? roles(rmd[key]) : text(rmd[key])]);
    container.appendChild(section("Resource manager", table(rows)));
  } else {
    container.appendChild(section("Resource manager", h("p", { class: "muted" }, "No ResourceManagerDetails yet.")));
  }

  // Latest system description in brief
  const sd = take("system_description", "latest_system_description", "activation.system_description", "description");
  if (sd !== undefined) container.appendChild(section("System description", tree(sd)));

  // Open instructions
  const instructions = take("open_instructions", "instructions");
  container.appendChild(section("Open instructions", listTable(instructions,
    [["id", "id", "instruction_id"], ["type", "message_type", "type", "mtype"],
     ["status", "status", "last_status"], ["execution time", "execution_time"]],
    "No open instructions.")));

  // Pending reception statuses
  const pending = take("pending_reception_statuses", "pending_reception_status", "pending", "reception_statuses.pending");
  container.appendChild(section("Pending reception statuses", listTable(pending,
    [["sender", "sender", "origin"], ["type", "message_type", "type", "mtype"], ["message id", "message_id", "id"],
     ["deadline", "deadline", "due", "t_rs_deadline"]],
    "Nothing is waiting for a ReceptionStatus.")));

  const byType = take("counts_per_type", "message_counts", "counts.messages", "counts.types", "per_type");
  if (byType && typeof byType === "object") container.appendChild(section("Messages per type", counts(byType)));
  const byRule = take("counts_per_rule", "finding_counts", "counts.rules", "per_rule");
  if (byRule && typeof byRule === "object") container.appendChild(section("Findings per rule", counts(byRule)));

  const rest = Object.keys(s).filter((k) => !used.has(k));
  if (rest.length) {
    const other = {};
    for (const key of rest) other[key] = s[key];
    container.appendChild(section("More", tree(other)));
  }
}

function section(title, ...body) {
  return h("section", { class: "s-section" }, h("h3", null, title), ...body);
}

function label(key) {
  return String(key).replace(/_/g, " ");
}

function text(value) {
  if (value === null || value === undefined) return "—";
  if (typeof value === "boolean") return value ? "yes" : "no";
  if (Array.isArray(value)) return value.map(text).join(", ");
  if (typeof value === "object") return JSON.stringify(value);
  return String(value);
}

function roles(list) {
  if (!Array.isArray(list)) return text(list);
  return list.map((r) => (r && typeof r === "object" ? `${r.role || "?"} (${r.commodity || "?"})` : String(r))).join(", ");
}

function table(rows) {
  return h("table", { class: "kv" }, h("tbody", null, rows.map(([k, v]) =>
    h("tr", null, h("th", { scope: "row" }, k), h("td", null, v)))));
}

function when(value) {
  const ms = toMillis(value);
  return Number.isFinite(ms) ? dateTime(ms) : text(value);
}

function listTable(value, columns, emptyText) {
  let items = value;
  if (items && !Array.isArray(items) && typeof items === "object") {
    items = Object.entries(items).map(([key, v]) => (v && typeof v === "object" ? { id: key, ...v } : { id: key, status: v }));
  }
  if (!Array.isArray(items) || !items.length) return h("p", { class: "muted" }, emptyText);
  return h("div", { class: "table-wrap" }, h("table", { class: "grid" },
    h("thead", null, h("tr", null, columns.map(([title]) => h("th", { scope: "col" }, title)))),
    h("tbody", null, items.map((item) => h("tr", null, columns.map(([title, ...keys]) => {
      const v = pick(item, ...keys);
      return h("td", null, /time|deadline/.test(title) ? when(v) : text(v));
    }))))));
}

function counts(obj) {
  const entries = Object.entries(obj).sort((a, b) => b[1] - a[1]);
  return table(entries.map(([k, v]) => [k, text(v)]));
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

// The details of one timeline row: findings (format errors at their JSON path, stateful findings
// with rule, severity and explanation), the message pretty-printed with the offending paths marked,
// and the raw text exactly as it travelled.

import { clear, dateTime, h, clock } from "./util.js";
import { eventText } from "./timeline.js";

const DIRECTION = { RM: "RM → CEM", CEM: "CEM → RM" };

export function renderDetails(container, row, goto) {
  clear(container);
  if (!row) {
    container.appendChild(h("p", { class: "empty" }, "Select a message in the timeline to see its details."));
    return;
  }
  const head = h("div", { class: "d-head" },
    h("h2", { id: "details-title" }, `#${row.n} `, row.isMessage ? row.type : eventText(row)),
    row.isMessage ? h("span", { class: `badge badge-${row.severity}` }, row.severity) : null);
  container.appendChild(head);

  const facts = [
    ["Time", `${dateTime(row.time)}${clock(row.time).slice(8)}`],
    ["Event", row.event],
  ];
  if (row.origin) facts.push(["Direction", DIRECTION[row.origin] || row.origin]);
  if (row.msgId) facts.push(["Message id", row.msgId]);
  const extra = { ...row.rec, ...(row.rec.detail || {}) };
  for (const key of ["peer", "tls", "direction", "code", "reason", "closed_by", "clean", "undelivered", "size", "discarded"]) {
    const value = extra[key];
    if (value !== undefined && value !== null && value !== "" && !facts.some((f) => f[0] === key)) {
      facts.push([key.replace(/_/g, " "), typeof value === "object" ? JSON.stringify(value) : String(value)]);
    }
  }
  container.appendChild(h("dl", { class: "facts" }, facts.map(([k, v]) => [h("dt", null, k), h("dd", null, v)])));

  const links = [];
  if (row.rs) {
    const subject = row.rs.subjectRow;
    links.push(subject
      ? h("p", null, "Answers ", gotoButton(subject, goto), ` (${subject.type}) with status `,
          h("strong", null, row.rs.status || "?"))
      : h("p", { class: "warn-text" }, `Answers ${row.rs.subject || "?"}: no such message from the other side in this session.`));
  } else if (row.isMessage && row.answeredBy) {
    links.push(h("p", null, "Answered by ", gotoButton(row.answeredBy, goto), " with status ",
      h("strong", null, row.answeredBy.rs.status || "?")));
  } else if (row.isMessage && row.event !== "refused") {
    links.push(h("p", { class: "muted" }, "No ReceptionStatus for this message yet."));
  }
  if (row.delivered) links.push(h("p", null, `Kept for the absent peer; delivered ${dateTime(row.delivered)}.`));
  container.append(...links);

  if (row.isMessage || row.findings.length) container.appendChild(findingsSection(row));
  if (row.isMessage) {
    const marks = new Map();
    row.formatFindings.forEach((f, i) => {
      const list = marks.get(f.path) || [];
      list.push(i + 1);
      marks.set(f.path, list);
    });
    container.appendChild(h("section", { class: "d-section" },
      h("h3", null, "Message"),
      row.obj !== null && row.obj !== undefined
        ? h("pre", { class: "json", tabindex: "0", "aria-label": "message as formatted JSON" }, renderJSON(row.obj, "$", marks, ""))
        : h("p", { class: "muted" }, "Not JSON: see the raw text.")));
    container.appendChild(h("section", { class: "d-section" },
      h("h3", null, "Raw text"),
      h("pre", { class: "raw", tabindex: "0", "aria-label": "raw text" }, row.raw)));
  }
}

function gotoButton(row, goto) {
  return h("button", { class: "link", type: "button", onclick: () => goto(row) }, `#${row.n}`);
}

function findingsSection(row) {
  const section = h("section", { class: "d-section findings" }, h("h3", null, "Findings"));
  if (!row.formatFindings.length && !row.findings.length) {
    section.appendChild(h("p", { class: "muted" }, "No findings: the message passed the format and state checks."));
    return section;
  }
  if (row.formatFindings.length) {
    section.appendChild(h("h4", null, "Format"));
    section.appendChild(h("ol", { class: "f-list" }, row.formatFindings.map((f, i) =>
      h("li", { class: `finding sev-${f.severity}`, dataset: { path: f.path } },
        h("span", { class: `badge badge-${f.severity}` }, f.severity),
        f.rule ? h("span", { class: "rule" }, f.rule) : (f.type ? h("span", { class: "rule" }, f.type) : null),
        h("code", { class: "path" }, f.path),
        h("sup", { class: "mark-ref" }, `[${i + 1}]`),
        h("span", { class: "f-text" }, f.text)))));
  }
  if (row.findings.length) {
    section.appendChild(h("h4", null, "Conversation state"));
    section.appendChild(h("ul", { class: "f-list" }, row.findings.map((f) =>
      h("li", { class: `finding sev-${f.severity}` },
        h("span", { class: `badge badge-${f.severity}` }, f.severity),
        f.rule ? h("span", { class: "rule" }, f.rule) : null,
        h("span", { class: "f-text" }, f.text)))));
  }
  return section;
}

/** Pretty JSON as DOM nodes; values at a path with format findings are marked with their numbers. */
function renderJSON(value, path, marks, indent) {
  const out = [];
  const marked = (node, p) => {
    const refs = marks.get(p);
    if (!refs) return node;
    return h("mark", { class: "err", dataset: { path: p }, title: `finding ${refs.join(", ")} at ${p}` },
      node, h("sup", { class: "mark-ref" }, `[${refs.join(",")}]`));
  };
  const inner = indent + "  ";
  if (Array.isArray(value)) {
    if (!value.length) return [marked(h("span", null, "[]"), path)];
    const parts = ["[\n"];
    value.forEach((item, i) => {
      const p = `${path}[${i}]`;
      parts.push(inner, ...renderJSONValue(item, p, marks, inner, marked), i < value.length - 1 ? ",\n" : "\n");
    });
    parts.push(indent, "]");
    out.push(marked(h("span", null, ...parts), path));
    return out;
  }
  if (value && typeof value === "object") {
    const keys = Object.keys(value);
    if (!keys.length) return [marked(h("span", null, "{}"), path)];
    const parts = ["{\n"];
    keys.forEach((key, i) => {
      const p = /^[A-Za-z_][A-Za-z0-9_]*$/.test(key) ? `${path}.${key}` : `${path}[${JSON.stringify(key)}]`;
      parts.push(inner, h("span", { class: "j-key" }, JSON.stringify(key)), ": ",
        ...renderJSONValue(value[key], p, marks, inner, marked), i < keys.length - 1 ? ",\n" : "\n");
    });
    parts.push(indent, "}");
    out.push(marked(h("span", null, ...parts), path));
    return out;
  }
  return [marked(scalar(value), path)];
}

function renderJSONValue(value, path, marks, indent, marked) {
  if (value && typeof value === "object") return renderJSON(value, path, marks, indent);
  return [marked(scalar(value), path)];
}

function scalar(value) {
  const kind = value === null ? "null" : typeof value;
  return h("span", { class: `j-${kind}` }, JSON.stringify(value));
}

// The records of one session as the page understands them, with the indexes the timeline needs.
//
// Records come from GET /backend/history-filter/ and WS /backend/debugger/ in s2-analyzer's shape
// (origin, s2_msg, s2_msg_type, timestamp, validation_errors) plus s2proxy's keys (event, raw,
// findings, seq). normalise() turns either into one row object; Session keeps them in arrival
// order, ties each ReceptionStatus to the message it answers and keeps a filtered index.

import { idKey, jsonPath, toMillis } from "./util.js";

export const MESSAGE_EVENTS = new Set(["forwarded", "kept", "refused", "injected", "received"]);
const LEGACY_KINDS = {
  S2: "forwarded",
  SESSION_STARTED: "session_started",
  SESSION_ENDED: "session_ended",
  MSG_INJECTED: "injected",
};
const SEVERITY_RANK = { valid: 0, info: 1, warning: 2, error: 3 };

function formatFindingsOf(rec) {
  const list = rec.format_findings || rec.validation_errors || [];
  // Without per-error severity, an error list on a message the daemon still calls valid holds warnings.
  const fallback = rec.valid === true ? "warning" : "error";
  return list.map((f) => {
    const rule = f.rule || (/^R-\d+$/.test(f.type || "") ? f.type : null);
    return {
      rule,
      type: f.type || null,
      severity: f.severity || fallback,
      path: f.path || jsonPath(f.loc),
      text: f.text || f.msg || f.message || "",
    };
  });
}

function stateFindingsOf(rec) {
  return (rec.findings || []).map((f) => ({
    rule: f.rule || null,
    severity: f.severity || "error",
    text: f.text || f.msg || "",
  }));
}

/** One timeline row from an API record or a live feed event. */
export function normalise(rec) {
  const event = rec.event || LEGACY_KINDS[rec.message_type] || "forwarded";
  const isMessage = MESSAGE_EVENTS.has(event);
  let obj = rec.s2_msg !== undefined ? rec.s2_msg : rec.obj;
  let raw = rec.raw;
  if ((obj === undefined || obj === null) && typeof raw === "string") {
    try { obj = JSON.parse(raw); } catch (e) { obj = null; }
  }
  if (raw === undefined || raw === null) raw = obj === undefined || obj === null ? "" : JSON.stringify(obj);
  const isObj = obj && typeof obj === "object" && !Array.isArray(obj);
  const type = rec.s2_msg_type || (isObj && typeof obj.message_type === "string" ? obj.message_type : null);
  const row = {
    n: 0,                      // 1-based position in the session, set by Session.add()
    seq: rec.seq ?? rec.id ?? null,
    refSeq: rec.ref_seq ?? null,
    event,
    isMessage,
    origin: rec.origin || null,
    time: toMillis(rec.timestamp ?? rec.time),
    type: isMessage ? (type || (raw ? "(unreadable)" : "(empty)")) : event,
    msgId: rec.message_id ?? (isObj && typeof obj.message_id === "string" ? obj.message_id : null),
    obj: obj === undefined ? null : obj,
    raw,
    formatFindings: isMessage ? formatFindingsOf(rec) : [],
    findings: stateFindingsOf(rec),
    valid: rec.valid,
    rs: null,                  // for a ReceptionStatus: {subject, status, subjectRow}
    answeredBy: null,          // for a message: the ReceptionStatus row answering it
    delivered: rec.delivered_at ? toMillis(rec.delivered_at) : null,   // kept: delivered to the late peer
    rec,
    severity: "valid",
  };
  if (isMessage && type === "ReceptionStatus" && isObj) {
    row.rs = { subject: obj.subject_message_id ?? null, status: obj.status ?? null, subjectRow: null };
  }
  if (event === "finding") row.findings = stateFindingsOf(rec);
  grade(row);
  return row;
}

/** The row's worst severity, for its badge and the validity filter. */
export function grade(row) {
  let worst = row.valid === false ? "error" : "valid";
  for (const f of row.formatFindings.concat(row.findings)) {
    if ((SEVERITY_RANK[f.severity] || 0) > SEVERITY_RANK[worst]) worst = f.severity;
  }
  row.severity = worst;
  return worst;
}

export function rulesOf(row) {
  const rules = new Set();
  for (const f of row.formatFindings) if (f.rule) rules.add(f.rule);
  for (const f of row.findings) if (f.rule) rules.add(f.rule);
  return rules;
}

function dedupeKey(rec) {
  if (rec.seq !== undefined && rec.seq !== null) return "s" + rec.seq;
  return [rec.event || rec.message_type, rec.origin, rec.timestamp ?? rec.time,
          rec.message_id ?? (rec.s2_msg && rec.s2_msg.message_id), (rec.raw || "").length].join("|");
}

export class Session {
  constructor(id) {
    this.id = id;
    this.rows = [];
    this.seen = new Set();
    this.bySeq = new Map();
    this.byMessage = new Map();     // "RM|<id>" -> row (the latest message with that id)
    this.types = new Map();         // message type -> count
    this.rules = new Map();         // rule -> count
    this.filter = { type: "", sender: "", validity: "", rule: "", events: true };
    this.visible = [];              // indexes into rows that pass the filter
    this.orphans = new Map();       // seq -> findings that came before their message
  }

  /** Add one API record. Returns the row it changed or added, or null for a duplicate. */
  add(rec) {
    const key = dedupeKey(rec);
    if (this.seen.has(key)) return null;
    this.seen.add(key);
    const event = rec.event || LEGACY_KINDS[rec.message_type];
    if (event === "finding") {
      const target = this.attachFindings(rec);
      // Late findings about no recorded message get a row of their own.
      if (target || rec.ref_seq != null) return target;
    }
    const row = normalise(rec);
    if (event === "delivered") {
      const kept = rec.ref_seq != null ? this.bySeq.get(rec.ref_seq) : null;
      if (kept) kept.delivered = row.time;
    }
    row.n = this.rows.length + 1;
    this.rows.push(row);
    if (row.seq !== null) this.bySeq.set(row.seq, row);
    if (row.isMessage) this.index(row);
    if (row.seq !== null && this.orphans.has(row.seq)) {
      for (const f of this.orphans.get(row.seq)) row.findings.push(f);
      this.orphans.delete(row.seq);
      grade(row);
    }
    this.countRules(row.formatFindings.concat(row.findings));
    if (this.passes(row)) this.visible.push(row.n - 1);
    return row;
  }

  index(row) {
    this.types.set(row.type, (this.types.get(row.type) || 0) + 1);
    if (row.msgId && row.origin) this.byMessage.set(row.origin + "|" + idKey(row.msgId), row);
    if (row.rs && row.rs.subject && row.origin) {
      const other = row.origin === "RM" ? "CEM" : "RM";
      const subject = this.byMessage.get(other + "|" + idKey(row.rs.subject));
      if (subject) {
        row.rs.subjectRow = subject;
        // The first answer is the one that counts; a second one is a finding of its own.
        if (!subject.answeredBy) subject.answeredBy = row;
      }
    }
  }

  countRules(findings) {
    for (const f of findings) if (f.rule) this.rules.set(f.rule, (this.rules.get(f.rule) || 0) + 1);
  }

  /** A "finding" event: findings that fired later (deadlines) about an earlier message. */
  attachFindings(rec) {
    const findings = stateFindingsOf(rec);
    let row = rec.ref_seq != null ? this.bySeq.get(rec.ref_seq) : null;
    if (!row && rec.message_id && rec.origin) row = this.byMessage.get(rec.origin + "|" + idKey(rec.message_id));
    if (!row) {
      if (rec.ref_seq != null) {
        const list = this.orphans.get(rec.ref_seq) || [];
        this.orphans.set(rec.ref_seq, list.concat(findings));
      }
      return null;
    }
    // A finding may reach the page twice: in a history record and as a live update.
    const fresh = findings.filter((f) => !row.findings.some((g) => g.rule === f.rule && g.text === f.text));
    for (const f of fresh) row.findings.push(f);
    this.countRules(fresh);
    grade(row);
    return row;
  }

  passes(row) {
    const f = this.filter;
    if (!row.isMessage) {
      if (row.findings.length && (f.validity || f.rule)) {
        return (!f.rule || rulesOf(row).has(f.rule)) && (!f.validity || f.validity === "invalid" || row.severity === f.validity);
      }
      // Connection events stay between the messages unless a message-only filter is set.
      return f.events && !f.type && !f.validity && !f.rule && !f.sender;
    }
    if (f.type && row.type !== f.type) return false;
    if (f.sender && row.origin !== f.sender) return false;
    if (f.validity) {
      if (f.validity === "invalid" ? row.severity !== "error" && row.severity !== "warning"
                                   : row.severity !== f.validity) return false;
    }
    if (f.rule && !rulesOf(row).has(f.rule)) return false;
    return true;
  }

  setFilter(filter) {
    this.filter = { ...this.filter, ...filter };
    this.refilter();
  }

  refilter() {
    const visible = [];
    for (let i = 0; i < this.rows.length; i++) if (this.passes(this.rows[i])) visible.push(i);
    this.visible = visible;
  }
}

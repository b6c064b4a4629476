// The sessions list: live and past sessions, newest first, filtered by id and time.
// GET /backend/connections/ gives the list; WS /backend/session-updates/ says when one opens or
// closes, and the page then merges the update and refreshes the counts.

import { clear, dateTime, h, shortId, toMillis } from "./util.js";

function num(obj, ...keys) {
  for (const key of keys) {
    let value = obj;
    for (const part of key.split(".")) value = value && typeof value === "object" ? value[part] : undefined;
    if (typeof value === "number") return value;
  }
  return null;
}

/** One session in the page's terms, from /backend/connections/ or a session update. */
export function sessionInfo(raw) {
  return {
    id: raw.session_id,
    rmId: raw.rm_id,
    cemId: raw.cem_id,
    start: toMillis(raw.start_timestamp ?? raw.started ?? raw.start),
    end: toMillis(raw.end_timestamp ?? raw.ended ?? raw.end),
    state: raw.state || (raw.end_timestamp ? "closed" : "open"),
    messages: num(raw, "message_count", "messages", "counts.messages", "counts.message_count"),
    errors: num(raw, "error_count", "errors", "counts.errors", "counts.error", "finding_counts.error"),
    warnings: num(raw, "warning_count", "warnings", "counts.warnings", "counts.warning", "finding_counts.warning"),
  };
}

export class SessionList {
  constructor(listEl, { onSelect }) {
    this.listEl = listEl;
    this.onSelect = onSelect;
    this.sessions = new Map();
    this.selected = null;
    this.filter = { text: "", from: NaN, to: NaN };
  }

  replaceAll(rawList) {
    const next = new Map();
    for (const raw of rawList) {
      if (!raw || !raw.session_id) continue;
      next.set(raw.session_id, sessionInfo(raw));
    }
    // Sessions that only the live feed knows so far (the list is fetched less often) stay.
    for (const [id, info] of this.sessions) if (!next.has(id) && info.liveOnly) next.set(id, info);
    this.sessions = next;
    this.render();
  }

  /** A session update: a new session appears at once, a closed one changes state. */
  update(raw) {
    if (!raw || !raw.session_id) return;
    const old = this.sessions.get(raw.session_id);
    const info = sessionInfo(raw);
    if (old) {
      for (const key of ["messages", "errors", "warnings"]) if (info[key] === null) info[key] = old[key];
      if (!Number.isFinite(info.start)) info.start = old.start;
    } else {
      info.liveOnly = true;
    }
    this.sessions.set(raw.session_id, info);
    this.render();
  }

  setFilter(filter) {
    this.filter = { ...this.filter, ...filter };
    this.render();
  }

  get(id) {
    return this.sessions.get(id);
  }

  matches(info) {
    const f = this.filter;
    if (f.text) {
      const needle = f.text.toLowerCase();
      if (![info.id, info.rmId, info.cemId].some((v) => v && String(v).toLowerCase().includes(needle))) return false;
    }
    // A session matches a time window when it overlaps it (a live one runs until now).
    const end = Number.isFinite(info.end) ? info.end : Date.now();
    if (Number.isFinite(f.from) && end < f.from) return false;
    if (Number.isFinite(f.to) && Number.isFinite(info.start) && info.start > f.to) return false;
    return true;
  }

  render() {
    const items = [...this.sessions.values()].filter((s) => this.matches(s))
      .sort((a, b) => (b.start || 0) - (a.start || 0));
    clear(this.listEl);
    if (!items.length) {
      this.listEl.appendChild(h("li", { class: "empty" }, this.sessions.size ? "No session matches the filter." : "No sessions yet. Connect an RM and a CEM to the proxy."));
      return;
    }
    for (const s of items) {
      const live = s.state === "open";
      this.listEl.appendChild(h("li", null,
        h("button", {
          type: "button",
          class: `session${s.id === this.selected ? " selected" : ""}`,
          "aria-current": s.id === this.selected ? "true" : null,
          dataset: { sessionId: s.id },
          onclick: () => this.onSelect(s.id),
        },
        h("span", { class: "s-top" },
          h("span", { class: `state state-${live ? "open" : "closed"}` }, live ? "live" : "closed"),
          h("span", { class: "s-ids" }, h("span", { title: `RM ${s.rmId}` }, `RM ${s.rmId}`), " ⇄ ",
            h("span", { title: `CEM ${s.cemId}` }, `CEM ${s.cemId}`))),
        h("span", { class: "s-time" }, dateTime(s.start), " – ", live ? "now" : dateTime(s.end)),
        h("span", { class: "s-bottom" },
          h("span", { class: "s-id", title: s.id }, shortId(s.id)),
          h("span", { class: "s-counts" },
            s.messages !== null ? h("span", { class: "c-msgs" }, `${s.messages} msg`) : null,
            s.errors ? h("span", { class: "badge badge-error", title: `${s.errors} error findings` }, `${s.errors} err`) : null,
            s.warnings ? h("span", { class: "badge badge-warning", title: `${s.warnings} warning findings` }, `${s.warnings} warn`) : null)))));
    }
  }
}

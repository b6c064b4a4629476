// The session timeline: a virtualised list (only the rows in view exist in the DOM), so a session
// of 100,000 messages scrolls as smoothly as one of ten. Keyboard: arrows, Page Up/Down, Home/End
// move the selection; Enter opens the details (on a phone the details are a separate view).

import { clock, h, shortId } from "./util.js";

const DIRECTION = { RM: "RM → CEM", CEM: "CEM → RM" };
const BADGE_TEXT = { valid: "valid", info: "info", warning: "warning", error: "error" };
const EVENT_TAG = { kept: "kept", refused: "refused", injected: "injected" };
const OVERSCAN = 8;

export class Timeline {
  constructor(container, { onSelect, onOpen }) {
    this.container = container;
    this.onSelect = onSelect;
    this.onOpen = onOpen;
    this.session = null;
    this.selected = -1;            // index into session.rows
    this.follow = true;            // keep the newest row in view while it grows
    this.rowHeight = 34;
    this.spacer = h("div", { class: "tl-spacer" });
    this.layer = h("div", { class: "tl-layer" });
    this.spacer.appendChild(this.layer);
    container.appendChild(this.spacer);
    this.pending = false;
    container.addEventListener("scroll", () => {
      const atEnd = container.scrollTop + container.clientHeight >= container.scrollHeight - this.rowHeight;
      this.follow = atEnd;
      this.schedule();
    });
    container.addEventListener("keydown", (e) => this.onKey(e));
    container.addEventListener("click", (e) => {
      const rowEl = e.target.closest("[data-index]");
      if (!rowEl) return;
      const link = e.target.closest("[data-goto]");
      const index = link ? Number(link.dataset.goto) : Number(rowEl.dataset.index);
      this.select(index, { scroll: !!link });
      if (!link) this.onOpen(this.session.rows[index]);
    });
    new ResizeObserver(() => this.measure()).observe(container);
    this.measure();
  }

  measure() {
    // The column header sits outside the scrolling list: pad it by the scrollbar's width.
    const header = this.container.previousElementSibling;
    if (header && header.classList.contains("tl-header")) {
      header.style.paddingRight = `calc(0.6rem + ${this.container.offsetWidth - this.container.clientWidth}px)`;
    }
    const narrow = window.matchMedia("(max-width: 720px)").matches;
    const height = narrow ? 58 : 34;
    if (height !== this.rowHeight) this.rowHeight = height;
    this.schedule();
  }

  setSession(session) {
    this.session = session;
    this.selected = -1;
    this.follow = true;
    this.container.scrollTop = 0;
    this.container.removeAttribute("aria-activedescendant");
    this.schedule();
  }

  /** Re-render on the next frame (many live events in one frame cost one render). */
  schedule() {
    if (this.pending) return;
    this.pending = true;
    requestAnimationFrame(() => {
      this.pending = false;
      this.render();
    });
  }

  render() {
    const session = this.session;
    const visible = session ? session.visible : [];
    const total = visible.length;
    this.spacer.style.height = `${total * this.rowHeight}px`;
    if (this.follow && total) {
      this.container.scrollTop = total * this.rowHeight;
    }
    const top = this.container.scrollTop;
    const first = Math.max(0, Math.floor(top / this.rowHeight) - OVERSCAN);
    const last = Math.min(total, Math.ceil((top + this.container.clientHeight) / this.rowHeight) + OVERSCAN);
    this.layer.style.transform = `translateY(${first * this.rowHeight}px)`;
    const frag = document.createDocumentFragment();
    const selectedRow = this.selected >= 0 && session ? session.rows[this.selected] : null;
    const partners = new Set();
    if (selectedRow) {
      if (selectedRow.answeredBy) partners.add(selectedRow.answeredBy);
      if (selectedRow.rs && selectedRow.rs.subjectRow) partners.add(selectedRow.rs.subjectRow);
    }
    for (let i = first; i < last; i++) {
      const index = visible[i];
      const row = session.rows[index];
      frag.appendChild(this.renderRow(row, index, index === this.selected, partners.has(row)));
    }
    this.layer.replaceChildren(frag);
    this.container.setAttribute("aria-rowcount", String(total));
  }

  renderRow(row, index, selected, partner) {
    const cls = ["tl-row", row.isMessage ? "tl-msg" : "tl-event", `sev-${row.severity}`];
    if (selected) cls.push("selected");
    if (partner) cls.push("partner");
    if (row.rs) cls.push("tl-rs");
    if (row.origin) cls.push(`from-${row.origin.toLowerCase()}`);
    const attrs = {
      class: cls.join(" "),
      id: `tl-row-${index}`,
      role: "option",
      "aria-selected": selected ? "true" : "false",
      dataset: { index: String(index), n: String(row.n) },
      style: `height:${this.rowHeight}px`,
    };
    if (!row.isMessage) {
      return h("div", attrs,
        h("span", { class: "c-n" }, `#${row.n}`),
        h("span", { class: "c-time" }, clock(row.time)),
        h("span", { class: "c-event" }, eventText(row)));
    }
    const findings = row.formatFindings.length + row.findings.length;
    return h("div", attrs,
      h("span", { class: "c-n" }, `#${row.n}`),
      h("span", { class: "c-time" }, clock(row.time)),
      h("span", { class: `c-dir dir-${(row.origin || "x").toLowerCase()}` }, DIRECTION[row.origin] || row.origin || "?"),
      h("span", { class: "c-type", title: row.type }, row.rs ? rsLabel(row) : row.type,
        EVENT_TAG[row.event] ? h("span", { class: `tag tag-${row.event}` }, EVENT_TAG[row.event]) : null),
      h("span", { class: "c-id", title: row.rs ? `subject ${row.rs.subject}` : row.msgId || "" },
        shortId(row.rs ? row.rs.subject : row.msgId)),
      h("span", { class: "c-badge" }, h("span", { class: `badge badge-${row.severity}` }, BADGE_TEXT[row.severity])),
      h("span", { class: "c-findings", title: `${findings} findings` },
        findings ? h("span", { class: "count" }, `${findings}`, h("span", { class: "sr" }, " findings")) : ""),
      h("span", { class: "c-ack" }, row.rs ? rsLink(row) : ackChip(row)));
  }

  onKey(e) {
    const session = this.session;
    if (!session || !session.visible.length) return;
    const visible = session.visible;
    let pos = visible.indexOf(this.selected);
    const page = Math.max(1, Math.floor(this.container.clientHeight / this.rowHeight) - 1);
    switch (e.key) {
      case "ArrowDown": case "j": pos = pos < 0 ? 0 : Math.min(visible.length - 1, pos + 1); break;
      case "ArrowUp": case "k": pos = pos < 0 ? visible.length - 1 : Math.max(0, pos - 1); break;
      case "PageDown": pos = Math.min(visible.length - 1, Math.max(0, pos) + page); break;
      case "PageUp": pos = Math.max(0, pos - page); break;
      case "Home": pos = 0; break;
      case "End": pos = visible.length - 1; break;
      case "Enter": case " ":
        if (pos >= 0) this.onOpen(session.rows[this.selected]);
        e.preventDefault();
        return;
      default: return;
    }
    e.preventDefault();
    this.select(visible[pos], { scroll: true });
  }

  /** Select the row at `index` of session.rows; optionally bring it into view. */
  select(index, { scroll } = {}) {
    const session = this.session;
    if (!session || index < 0 || index >= session.rows.length) return;
    this.selected = index;
    const pos = session.visible.indexOf(index);
    if (scroll && pos >= 0) {
      const y = pos * this.rowHeight;
      const view = this.container;
      if (y < view.scrollTop) view.scrollTop = y;
      else if (y + this.rowHeight > view.scrollTop + view.clientHeight) view.scrollTop = y + this.rowHeight - view.clientHeight;
      this.follow = false;
    }
    this.container.setAttribute("aria-activedescendant", `tl-row-${index}`);
    this.render();
    this.onSelect(session.rows[index]);
  }

  selectedRow() {
    return this.session && this.selected >= 0 ? this.session.rows[this.selected] : null;
  }
}

function rsLabel(row) {
  const status = row.rs.status || "?";
  return h("span", { class: "rs-label", title: `ReceptionStatus ${status}` },
    h("span", { class: `status status-${status === "OK" ? "ok" : "bad"}` }, status),
    " ReceptionStatus");
}

function rsLink(row) {
  const subject = row.rs.subjectRow;
  if (!subject) return h("span", { class: "rs-orphan", title: `answers ${row.rs.subject}: not in this session` }, "unknown");
  return h("button", { class: "link", type: "button", "data-goto": String(subject.n - 1),
                       title: `answers #${subject.n} ${subject.type}` }, `↩ #${subject.n}`);
}

function ackChip(row) {
  if (row.rs || row.event === "refused") return "";
  if (row.answeredBy) {
    const status = row.answeredBy.rs.status || "?";
    const ok = status === "OK";
    // A non-OK answer is marked with a cross; its full name is in the title and for screen readers.
    return h("button", { class: `link ack ack-${ok ? "ok" : "bad"}`, type: "button",
                         "data-goto": String(row.answeredBy.n - 1), title: `answered ${status} by #${row.answeredBy.n}` },
      ok ? "OK" : h("span", { "aria-hidden": "true" }, "✗"), ok ? null : h("span", { class: "sr" }, status),
      ` #${row.answeredBy.n}`);
  }
  return h("span", { class: "ack ack-pending", title: "no ReceptionStatus yet" }, "no RS");
}

/** One line for a connection or session event. */
export function eventText(row) {
  const r = { ...(row.rec.detail || {}), ...row.rec };
  if (row.rec.detail) Object.assign(r, row.rec.detail);
  const who = row.origin || r.role || "";
  switch (row.event) {
    case "session_started": return "▶ session started";
    case "session_ended": return `■ session ended${r.undelivered ? ` (${r.undelivered} undelivered)` : ""}`;
    case "opened": return `● ${who} connected${r.peer ? ` from ${r.peer}` : ""}${r.tls ? " (TLS)" : ""}`;
    case "closed": {
      const code = r.code !== undefined && r.code !== null ? ` code ${r.code}` : "";
      const reason = r.reason ? ` “${r.reason}”` : "";
      const by = r.closed_by ? ` by ${r.closed_by}` : "";
      return `○ ${who} disconnected${code}${reason}${by}`;
    }
    case "delivered": return `⇢ kept message delivered to ${who === "RM" ? "CEM" : who === "CEM" ? "RM" : "peer"}`;
    case "discarded": return `✕ kept message discarded${r.reason ? `: ${r.reason}` : ""}`;
    case "connector": return `⇄ connector ${r.connector_id || ""} ${r.state || ""}`;
    default: return `${row.event}${who ? ` (${who})` : ""}`;
  }
}

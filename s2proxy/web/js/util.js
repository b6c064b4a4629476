// Small helpers shared by the page's modules: DOM building, time formatting, JSON paths.

/** Create an element: h("div", {class: "x", onclick: fn}, child, "text", ...). */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  if (attrs) {
    for (const [key, value] of Object.entries(attrs)) {
      if (value === undefined || value === null || value === false) continue;
      if (key.startsWith("on") && typeof value === "function") {
        el.addEventListener(key.slice(2), value);
      } else if (key === "dataset") {
        Object.assign(el.dataset, value);
      } else if (value === true) {
        el.setAttribute(key, "");
      } else {
        el.setAttribute(key, String(value));
      }
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === undefined || child === null || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else if (child instanceof Node) el.appendChild(child);
    else el.appendChild(document.createTextNode(String(child)));
  }
}

export function clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
  return el;
}

/** Epoch milliseconds from an API timestamp: ISO-8601 text, epoch seconds or epoch ms. */
export function toMillis(value) {
  if (value === undefined || value === null || value === "") return NaN;
  if (typeof value === "number") return value < 1e11 ? value * 1000 : value;
  let text = String(value);
  // The API writes UTC with microseconds; without an offset it is still UTC.
  if (/^\d{4}-\d\d-\d\dT\d\d:\d\d(:\d\d(\.\d+)?)?$/.test(text)) text += "Z";
  return Date.parse(text);
}

const pad = (n, w = 2) => String(n).padStart(w, "0");

/** "10:00:01.234" in local time (the timeline's resolution). */
export function clock(ms) {
  if (!Number.isFinite(ms)) return "";
  const d = new Date(ms);
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
}

/** "2025-06-02 10:00:01" in local time. */
export function dateTime(ms) {
  if (!Number.isFinite(ms)) return "";
  const d = new Date(ms);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

/** Short form of a UUID for narrow places; the full id stays in the title attribute. */
export function shortId(id) {
  if (!id) return "";
  const s = String(id);
  // Start and end: sequential ids (common in test setups) differ only at the end.
  return s.length > 13 ? s.slice(0, 4) + "…" + s.slice(-4) : s;
}

/**
 * A JSON path ("$.values[0].value") from a finding's location.
 * Accepts a list (["values", 0, "value"]), a path text already starting with "$",
 * or s2-analyzer's stringified tuple "('values', 0, 'value')".
 */
export function jsonPath(loc) {
  if (loc === undefined || loc === null || loc === "") return "$";
  if (typeof loc === "string") {
    if (loc.startsWith("$")) return loc;
    const tuple = loc.match(/^\((.*)\)$/);
    if (tuple) {
      const parts = tuple[1].split(",").map((p) => p.trim()).filter((p) => p !== "");
      return jsonPath(parts.map((p) => (/^-?\d+$/.test(p) ? Number(p) : p.replace(/^['"]|['"]$/g, ""))));
    }
    return "$." + loc;
  }
  if (!Array.isArray(loc)) return "$";
  let path = "$";
  for (const part of loc) {
    if (typeof part === "number") path += `[${part}]`;
    else if (/^[A-Za-z_][A-Za-z0-9_]*$/.test(part)) path += "." + part;
    else path += `[${JSON.stringify(String(part))}]`;
  }
  return path;
}

/** Compare ids by value: UUIDs differ only in letter case between implementations. */
export function idKey(id) {
  return id === undefined || id === null ? "" : String(id).toLowerCase();
}

export function debounce(fn, ms) {
  let timer = null;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
}

/**
 * Run fn at most once per `ms`, and once more after the last call: unlike debounce it still runs
 * while calls keep coming (a busy live session never stops sending events).
 */
export function throttle(fn, ms) {
  let last = 0;
  let timer = null;
  return (...args) => {
    if (timer) return;
    const wait = Math.max(0, last + ms - Date.now());
    timer = setTimeout(() => {
      timer = null;
      last = Date.now();
      fn(...args);
    }, wait);
  };
}

export function plural(n, word) {
  return `${n} ${word}${n === 1 ? "" : "s"}`;
}

// Talks to the daemon's HTTP API and live feeds (docs/history.md); nothing else leaves the page.

const TOKEN_KEY = "s2proxy.apiToken";

export function apiToken() {
  try { return sessionStorage.getItem(TOKEN_KEY) || ""; } catch (e) { return ""; }
}

export function setApiToken(token) {
  try {
    if (token) sessionStorage.setItem(TOKEN_KEY, token);
    else sessionStorage.removeItem(TOKEN_KEY);
  } catch (e) { /* private mode: the token lives only in the form */ }
}

export class ApiError extends Error {
  constructor(status, body) {
    super(describe(status, body));
    this.status = status;
    this.body = body;
  }
}

function describe(status, body) {
  if (body && typeof body === "object") {
    const text = body.error || body.detail || body.message;
    if (text) return `${status}: ${typeof text === "string" ? text : JSON.stringify(text)}`;
  }
  return `HTTP ${status}`;
}

async function request(method, path, body, params, withHeaders) {
  const url = new URL(path, location.href);
  for (const [key, value] of Object.entries(params || {})) {
    if (value !== undefined && value !== null && value !== "") url.searchParams.set(key, value);
  }
  const headers = { Accept: "application/json" };
  const token = apiToken();
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(url, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch (e) { data = { error: text }; }
  if (!response.ok) throw new ApiError(response.status, data);
  return withHeaders ? { data, headers: response.headers } : data;
}

export const getJSON = (path, params) => request("GET", path, undefined, params);
export const postJSON = (path, body, params) => request("POST", path, body, params);

/** Pull a list out of a response that is either a list or an object holding one. */
export function listOf(data, ...keys) {
  if (Array.isArray(data)) return data;
  if (data && typeof data === "object") {
    for (const key of [...keys, "items", "results", "records", "data"]) {
      if (Array.isArray(data[key])) return data[key];
    }
  }
  return [];
}

/** The sessions (GET /backend/connections/), newest first. */
export async function fetchSessions() {
  const data = await getJSON("/backend/connections/", { limit: 1000 });
  // The list also holds the outbound connectors (kind "connector"): not sessions.
  return listOf(data, "sessions", "connections").filter((item) => item && item.kind !== "connector" && item.session_id);
}

export const fetchSession = (id) => getJSON(`/backend/sessions/${encodeURIComponent(id)}`);

export const transcriptUrl = (id) => `/backend/sessions/${encodeURIComponent(id)}/transcript`;

/**
 * Records of one session in time order, page by page: the answer is a list, and the header
 * X-Next-After-Id names the cursor of the next page (docs/history.md). onPage(records) is called
 * for each page so a long session shows up while it loads. Returns the last record id seen.
 */
export async function fetchHistory(sessionId, onPage, afterId) {
  const limit = 5000;
  let cursor = afterId ?? null;
  let lastId = afterId ?? null;
  for (;;) {
    const params = { session_id: sessionId, limit };
    if (cursor !== null) params.after_id = cursor;
    const { data, headers } = await request("GET", "/backend/history-filter/", undefined, params, true);
    const records = listOf(data, "records");
    if (records.length && records[records.length - 1].id != null) lastId = records[records.length - 1].id;
    onPage(records);
    const next = headers.get("X-Next-After-Id");
    if (!next || !records.length) return lastId;
    cursor = next;
  }
}

export const validateMessage = (message) => postJSON("/backend/validate-message/", { message });

export const injectMessage = (originId, destId, message, validate) =>
  postJSON("/backend/inject/", { origin_id: originId, dest_id: destId, message },
           validate ? undefined : { validate: "false" });

/**
 * A live feed that reconnects after a drop (the daemon drops viewers that fall behind).
 * onMessage gets each parsed JSON value; onState gets "connecting" | "open" | "closed".
 */
export class LiveFeed {
  constructor(path, params, onMessage, onState) {
    this.path = path;
    this.params = params;
    this.onMessage = onMessage;
    this.onState = onState || (() => {});
    this.ws = null;
    this.stopped = false;
    this.retry = 1000;
    this.opens = 0;
    this.connect();
  }

  url() {
    const url = new URL(this.path, location.href);
    url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
    for (const [key, value] of Object.entries(this.params(this.opens))) {
      if (value !== undefined && value !== null) url.searchParams.set(key, String(value));
    }
    // Browsers cannot set headers on a WebSocket: with --api-guard-reads the feeds take the token here.
    const token = apiToken();
    if (token) url.searchParams.set("access_token", token);
    return url.href;
  }

  connect() {
    if (this.stopped) return;
    this.onState("connecting");
    let ws;
    try {
      ws = new WebSocket(this.url());
    } catch (e) {
      this.scheduleRetry();
      return;
    }
    this.ws = ws;
    ws.onopen = () => {
      this.retry = 1000;
      this.opens += 1;
      this.onState("open");
    };
    ws.onmessage = (msg) => {
      let value;
      try { value = JSON.parse(msg.data); } catch (e) { return; }
      // A feed may batch several events into one frame.
      if (Array.isArray(value)) value.forEach((v) => this.onMessage(v));
      else this.onMessage(value);
    };
    ws.onclose = () => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.onState("closed");
      this.scheduleRetry();
    };
  }

  scheduleRetry() {
    if (this.stopped) return;
    setTimeout(() => this.connect(), this.retry);
    this.retry = Math.min(this.retry * 2, 15000);
  }

  stop() {
    this.stopped = true;
    if (this.ws) {
      const ws = this.ws;
      this.ws = null;
      ws.close();
    }
  }
}

-- s2proxy history, schema version 1. Applied to a new database; older ones are upgraded by
-- upgrade-to-vN.sql scripts, in order (see s2proxy/store.py).

CREATE TABLE version (version INTEGER NOT NULL);

-- One row per pairing lifetime (docs/history.md, "Sessions").
CREATE TABLE sessions (
  session_id  TEXT PRIMARY KEY,
  rm_id       TEXT NOT NULL,
  cem_id      TEXT NOT NULL,
  started     REAL NOT NULL,           -- epoch seconds, UTC
  ended       REAL,                    -- NULL while live
  end_reason  TEXT,                    -- disconnected | proxy stopped | interrupted
  messages    INTEGER,                 -- counts at the end (NULL while live)
  errors      INTEGER,
  warnings    INTEGER,
  undelivered INTEGER,
  summary     TEXT                     -- JSON: the checker's summary at the end
);
CREATE INDEX sessions_started ON sessions (started);

-- One row per event (message, connection, session start/end, delivery).
CREATE TABLE records (
  id              INTEGER PRIMARY KEY, -- increasing: the history's order and paging cursor
  seq             INTEGER NOT NULL,    -- event number in the process that recorded it
  session_id      TEXT,
  rm_id           TEXT,
  cem_id          TEXT,
  time            REAL NOT NULL,       -- epoch seconds, UTC
  event           TEXT NOT NULL,       -- forwarded, kept, refused, injected, delivered, ...
  origin          TEXT,                -- RM | CEM
  s2_msg_type     TEXT,
  message_id      TEXT,
  raw             TEXT,                -- exactly as received
  binary          INTEGER,
  size            INTEGER,
  valid           INTEGER,             -- 1 / 0 / NULL (not validated)
  format_findings TEXT,                -- JSON list or NULL when empty
  findings        TEXT,                -- JSON list or NULL when empty (later findings appended)
  rules           TEXT,                -- ' R-004 R-038 ' for the rule filter
  errors          INTEGER NOT NULL DEFAULT 0,
  warnings        INTEGER NOT NULL DEFAULT 0,
  ref_seq         INTEGER,             -- delivered/discarded: the kept message
  reason          TEXT,
  checked_seq     INTEGER,             -- order in which the checker saw it (transcripts)
  checked_time    REAL,
  delivered_at    REAL,
  discarded       TEXT,
  detail          TEXT                 -- JSON for connection and session events
);
CREATE INDEX records_session_seq ON records (session_id, seq);
CREATE INDEX records_time ON records (time);
CREATE INDEX records_rm ON records (rm_id, id);
CREATE INDEX records_cem ON records (cem_id, id);

INSERT INTO version (version) VALUES (1);

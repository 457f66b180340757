-- Sotto signalling schema. Portable SQL: the same file runs on SQLite and
-- PostgreSQL (TEXT and BIGINT only; upserts and RETURNING exist in both).

CREATE TABLE devices (
    device_id  TEXT PRIMARY KEY,
    sign_key   TEXT NOT NULL,
    seal_key   TEXT NOT NULL,
    created_ms BIGINT NOT NULL
);

CREATE TABLE push_endpoints (
    device_id TEXT NOT NULL,
    provider  TEXT NOT NULL,
    endpoint  TEXT NOT NULL,
    p256dh    TEXT NOT NULL,
    auth      TEXT NOT NULL,
    PRIMARY KEY (device_id, endpoint)
);

CREATE TABLE challenges (
    nonce      TEXT PRIMARY KEY,
    device_id  TEXT NOT NULL,
    expires_ms BIGINT NOT NULL
);

CREATE TABLE sessions (
    token_hash TEXT PRIMARY KEY,
    device_id  TEXT NOT NULL,
    expires_ms BIGINT NOT NULL
);

-- Monotonic per-recipient sequence: queued messages are delivered in order.
CREATE TABLE queue_counters (
    recipient TEXT PRIMARY KEY,
    next_seq  BIGINT NOT NULL
);

CREATE TABLE queue (
    recipient  TEXT NOT NULL,
    seq        BIGINT NOT NULL,
    sender     TEXT NOT NULL,
    msg_id     TEXT NOT NULL,
    call_id    TEXT NOT NULL,
    kind       TEXT NOT NULL,
    body       TEXT NOT NULL,
    expires_ms BIGINT NOT NULL,
    PRIMARY KEY (recipient, seq)
);
CREATE INDEX queue_by_msg ON queue (recipient, sender, msg_id);
CREATE INDEX queue_by_call ON queue (recipient, call_id);

-- Message ids seen per sender, kept for the replay window.
CREATE TABLE seen_ids (
    sender     TEXT NOT NULL,
    msg_id     TEXT NOT NULL,
    expires_ms BIGINT NOT NULL,
    PRIMARY KEY (sender, msg_id)
);

-- Which node holds a device's live WebSocket.
CREATE TABLE presence (
    device_id TEXT PRIMARY KEY,
    node_id   TEXT NOT NULL,
    since_ms  BIGINT NOT NULL
);

-- Notifications: targets (where to tell), episodes (what was told), and the outbox of
-- deliveries, a durable queue with leases like sync_jobs.

CREATE TABLE notification_targets (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    -- webhook, slack or email.
    kind        TEXT    NOT NULL,
    -- NULL: every repository (operator-wide); else only this account's repositories.
    owner_id    INTEGER REFERENCES accounts (id) ON DELETE CASCADE,
    -- webhook and slack: the URL, sealed like credentials (a Slack incoming-webhook URL is a
    -- credential), and what may be shown of it (scheme://host[:port]).
    url         BLOB,
    url_origin  TEXT,
    -- webhook: the sealed HMAC-SHA256 key of X-Mirrorhub-Signature-256.
    secret      BLOB,
    -- email: recipients, comma-separated.
    email_to    TEXT,
    -- Event words, comma-separated; NULL: every event.
    events      TEXT,
    enabled     INTEGER NOT NULL DEFAULT 1,
    description TEXT    NOT NULL DEFAULT '',
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);

-- An open episode of trouble of one subject of a repository (sync, lfs, push_mirror:<id>):
-- a row exists from the first failure (or staleness) after a success until the next success.
CREATE TABLE notification_episodes (
    repo_id       INTEGER NOT NULL REFERENCES repos (id) ON DELETE CASCADE,
    subject       TEXT    NOT NULL,
    opened_at     INTEGER NOT NULL,
    paused_sent   INTEGER NOT NULL DEFAULT 0,
    host_key_sent INTEGER NOT NULL DEFAULT 0,
    stale_sent    INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (repo_id, subject)
) WITHOUT ROWID;

CREATE TABLE notification_deliveries (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    target_id          INTEGER NOT NULL REFERENCES notification_targets (id) ON DELETE CASCADE,
    event              TEXT    NOT NULL,
    -- What the event is about, copied: the record outlives a deleted repository.
    repo_id            INTEGER,
    repo_owner         TEXT,
    repo_name          TEXT,
    subject            TEXT,
    subject_label      TEXT,
    error_code         TEXT,
    error_message      TEXT,
    episode_started_at INTEGER,
    occurred_at        INTEGER NOT NULL,
    -- pending, delivered or failed.
    status             TEXT    NOT NULL DEFAULT 'pending',
    attempts           INTEGER NOT NULL DEFAULT 0,
    next_attempt_at    INTEGER,
    claimed_by         TEXT,
    lease_until        INTEGER,
    last_attempt_at    INTEGER,
    last_status        INTEGER,
    last_answer        TEXT,
    delivered_at       INTEGER,
    created_at         INTEGER NOT NULL,
    CHECK ((claimed_by IS NULL) = (lease_until IS NULL))
);

-- Claiming: the oldest due pending delivery.
CREATE INDEX notification_deliveries_due ON notification_deliveries (next_attempt_at, id)
    WHERE status = 'pending';
-- A target's deliveries, newest first, and the cascade from targets.
CREATE INDEX notification_deliveries_target ON notification_deliveries (target_id, id);

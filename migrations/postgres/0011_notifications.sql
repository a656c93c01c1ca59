-- Notifications: targets (where to tell), episodes (what was told), and the outbox of
-- deliveries, a durable queue with leases like sync_jobs.

CREATE TABLE notification_targets (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- webhook, slack or email.
    kind        TEXT        NOT NULL,
    -- NULL: every repository (operator-wide); else only this account's repositories.
    owner_id    BIGINT      REFERENCES accounts (id) ON DELETE CASCADE,
    -- webhook and slack: the URL, sealed like credentials (a Slack incoming-webhook URL is a
    -- credential), and what may be shown of it (scheme://host[:port]).
    url         BYTEA,
    url_origin  TEXT,
    -- webhook: the sealed HMAC-SHA256 key of X-Mirrorhub-Signature-256.
    secret      BYTEA,
    -- email: recipients, comma-separated.
    email_to    TEXT,
    -- Event words, comma-separated; NULL: every event.
    events      TEXT,
    enabled     BOOLEAN     NOT NULL DEFAULT TRUE,
    description TEXT        NOT NULL DEFAULT '',
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL
);

-- An open episode of trouble of one subject of a repository (sync, lfs, push_mirror:<id>):
-- a row exists from the first failure (or staleness) after a success until the next success.
CREATE TABLE notification_episodes (
    repo_id       BIGINT      NOT NULL REFERENCES repos (id) ON DELETE CASCADE,
    subject       TEXT        NOT NULL,
    opened_at     TIMESTAMPTZ NOT NULL,
    paused_sent   BOOLEAN     NOT NULL DEFAULT FALSE,
    host_key_sent BOOLEAN     NOT NULL DEFAULT FALSE,
    stale_sent    BOOLEAN     NOT NULL DEFAULT FALSE,
    PRIMARY KEY (repo_id, subject)
);

CREATE TABLE notification_deliveries (
    id                 BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    target_id          BIGINT      NOT NULL REFERENCES notification_targets (id) ON DELETE CASCADE,
    event              TEXT        NOT NULL,
    -- What the event is about, copied: the record outlives a deleted repository.
    repo_id            BIGINT,
    repo_owner         TEXT,
    repo_name          TEXT,
    subject            TEXT,
    subject_label      TEXT,
    error_code         TEXT,
    error_message      TEXT,
    episode_started_at TIMESTAMPTZ,
    occurred_at        TIMESTAMPTZ NOT NULL,
    -- pending, delivered or failed.
    status             TEXT        NOT NULL DEFAULT 'pending',
    attempts           INTEGER     NOT NULL DEFAULT 0,
    next_attempt_at    TIMESTAMPTZ,
    claimed_by         TEXT,
    lease_until        TIMESTAMPTZ,
    last_attempt_at    TIMESTAMPTZ,
    last_status        INTEGER,
    last_answer        TEXT,
    delivered_at       TIMESTAMPTZ,
    created_at         TIMESTAMPTZ NOT NULL,
    CHECK ((claimed_by IS NULL) = (lease_until IS NULL))
);

-- Claiming: the oldest due pending delivery.
CREATE INDEX notification_deliveries_due ON notification_deliveries (next_attempt_at, id)
    WHERE status = 'pending';
-- A target's deliveries, newest first, and the cascade from targets.
CREATE INDEX notification_deliveries_target ON notification_deliveries (target_id, id);

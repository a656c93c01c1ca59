-- mirrorhub's PostgreSQL schema. Enumerations are stored as their string form
-- (mirrorhub_core's `as_str`); the store refuses strings it does not know when reading.

CREATE TABLE repos (
    id                   BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    owner                TEXT        NOT NULL,
    name                 TEXT        NOT NULL,
    owner_key            TEXT        NOT NULL GENERATED ALWAYS AS (lower(owner)) STORED,
    name_key             TEXT        NOT NULL GENERATED ALWAYS AS (lower(name)) STORED,
    mode                 TEXT        NOT NULL,
    visibility           TEXT        NOT NULL,
    description          TEXT        NOT NULL DEFAULT '',
    upstream_url         TEXT        NOT NULL,
    -- XChaCha20-Poly1305: version byte, 24-byte nonce, ciphertext and tag. Never plaintext.
    credentials          BYTEA,
    state                TEXT        NOT NULL,
    progress_phase       TEXT,
    progress_percent     INTEGER,
    sync_interval_secs   BIGINT      NOT NULL,
    last_sync_at         TIMESTAMPTZ,
    last_success_at      TIMESTAMPTZ,
    next_sync_at         TIMESTAMPTZ,
    last_error_code      TEXT,
    last_error_message   TEXT,
    consecutive_failures INTEGER     NOT NULL DEFAULT 0,
    branches             BIGINT      NOT NULL DEFAULT 0,
    tags                 BIGINT      NOT NULL DEFAULT 0,
    head_ref             TEXT,
    created_at           TIMESTAMPTZ NOT NULL
);

-- owner/name is unique regardless of case: `Alice/Repo` and `alice/repo` are the same repository.
CREATE UNIQUE INDEX repos_owner_name_key ON repos (owner_key, name_key);
-- The scheduler's scan (enqueue_due): due mirrors, oldest first.
CREATE INDEX repos_mirror_next_sync ON repos (next_sync_at) WHERE mode = 'mirror';

-- The one durable queue. A row with claimed_by NULL is pending; otherwise it is held by a
-- worker until lease_until. Workers of several replicas claim with FOR UPDATE SKIP LOCKED.
CREATE TABLE sync_jobs (
    id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    repo_id     BIGINT      NOT NULL REFERENCES repos (id) ON DELETE CASCADE,
    trigger     TEXT        NOT NULL,
    run_after   TIMESTAMPTZ NOT NULL,
    claimed_by  TEXT,
    lease_until TIMESTAMPTZ,
    attempts    INTEGER     NOT NULL DEFAULT 0,
    created_at  TIMESTAMPTZ NOT NULL,
    CHECK ((claimed_by IS NULL) = (lease_until IS NULL))
);

-- At most one pending job per repository: requests coalesce into it.
CREATE UNIQUE INDEX sync_jobs_one_pending_per_repo ON sync_jobs (repo_id) WHERE claimed_by IS NULL;
-- "Does this repository have a live lease?" and the cascade from repos.
CREATE INDEX sync_jobs_repo_lease ON sync_jobs (repo_id, lease_until);
-- Claiming: oldest due job first.
CREATE INDEX sync_jobs_run_after ON sync_jobs (run_after, id);

CREATE TABLE sync_runs (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    repo_id       BIGINT      NOT NULL REFERENCES repos (id) ON DELETE CASCADE,
    trigger       TEXT        NOT NULL,
    started_at    TIMESTAMPTZ NOT NULL,
    finished_at   TIMESTAMPTZ,
    outcome       TEXT        NOT NULL,
    error_code    TEXT,
    error_message TEXT
);

CREATE INDEX sync_runs_repo_started ON sync_runs (repo_id, started_at, id);

-- The journal of one run: how each ref moved, in the order the sync reported them.
CREATE TABLE sync_ref_changes (
    run_id   BIGINT  NOT NULL REFERENCES sync_runs (id) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    ref_name TEXT    NOT NULL,
    old_oid  TEXT,
    new_oid  TEXT,
    kind     TEXT    NOT NULL,
    PRIMARY KEY (run_id, position)
);

CREATE TABLE settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

-- What a mirror keeps beyond its refs (issue 18).

-- Tips syncs overwrote non-fast-forward or deleted, kept in the repository under
-- `backup_ref` (refs/mirrorhub/backup/<unix time>/<ref>) until they expire.
CREATE TABLE repo_backups (
    id         BIGINT      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    repo_id    BIGINT      NOT NULL REFERENCES repos (id) ON DELETE CASCADE,
    -- The run that made it; NULL when found after a crash.
    run_id     BIGINT      REFERENCES sync_runs (id) ON DELETE SET NULL,
    ref_name   TEXT        NOT NULL,
    old_oid    TEXT        NOT NULL,
    backup_ref TEXT        NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    UNIQUE (repo_id, backup_ref)
);
CREATE INDEX repo_backups_repo ON repo_backups (repo_id, created_at);
-- Expiry: oldest first, across repositories.
CREATE INDEX repo_backups_created ON repo_backups (created_at);
CREATE INDEX repo_backups_run ON repo_backups (run_id) WHERE run_id IS NOT NULL;

-- A repository's ref filter, JSON {"include": [...], "exclude": [...]}; no row keeps every
-- branch and tag.
CREATE TABLE repo_ref_filters (
    repo_id BIGINT PRIMARY KEY REFERENCES repos (id) ON DELETE CASCADE,
    spec    TEXT   NOT NULL
);

-- How far behind its upstream a listing last found a mirror, and its webhook's silence.
-- A row is written by listings that found a difference and by the scheduler's cheap checks;
-- a successful sync after `checked_at` means in sync.
CREATE TABLE repo_freshness (
    repo_id              BIGINT      PRIMARY KEY REFERENCES repos (id) ON DELETE CASCADE,
    behind_refs          BIGINT      NOT NULL DEFAULT 0,
    checked_at           TIMESTAMPTZ,
    behind_since         TIMESTAMPTZ,
    silence_checked_at   TIMESTAMPTZ,
    silence_suspected_at TIMESTAMPTZ,
    silent_since         TIMESTAMPTZ,
    silence_notified_at  TIMESTAMPTZ
);

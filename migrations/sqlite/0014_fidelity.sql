-- What a mirror keeps beyond its refs (issue 18). Timestamps are INTEGER milliseconds.

-- Tips syncs overwrote non-fast-forward or deleted, kept in the repository under
-- `backup_ref` (refs/mirrorhub/backup/<unix time>/<ref>) until they expire.
CREATE TABLE repo_backups (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    repo_id    INTEGER NOT NULL REFERENCES repos (id) ON DELETE CASCADE,
    -- The run that made it; NULL when found after a crash.
    run_id     INTEGER REFERENCES sync_runs (id) ON DELETE SET NULL,
    ref_name   TEXT    NOT NULL,
    old_oid    TEXT    NOT NULL,
    backup_ref TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    UNIQUE (repo_id, backup_ref)
);
CREATE INDEX repo_backups_repo ON repo_backups (repo_id, created_at);
-- Expiry: oldest first, across repositories.
CREATE INDEX repo_backups_created ON repo_backups (created_at);
CREATE INDEX repo_backups_run ON repo_backups (run_id) WHERE run_id IS NOT NULL;

-- A repository's ref filter, JSON {"include": [...], "exclude": [...]}; no row keeps every
-- branch and tag.
CREATE TABLE repo_ref_filters (
    repo_id INTEGER PRIMARY KEY REFERENCES repos (id) ON DELETE CASCADE,
    spec    TEXT    NOT NULL
);

-- How far behind its upstream a listing last found a mirror, and its webhook's silence.
-- A row is written by listings that found a difference and by the scheduler's cheap checks;
-- a successful sync after `checked_at` means in sync.
CREATE TABLE repo_freshness (
    repo_id              INTEGER PRIMARY KEY REFERENCES repos (id) ON DELETE CASCADE,
    behind_refs          INTEGER NOT NULL DEFAULT 0,
    checked_at           INTEGER,
    behind_since         INTEGER,
    silence_checked_at   INTEGER,
    silence_suspected_at INTEGER,
    silent_since         INTEGER,
    silence_notified_at  INTEGER
);

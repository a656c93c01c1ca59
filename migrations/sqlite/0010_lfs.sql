-- Git LFS. Objects live once, content-addressed, under the data directory; the database
-- says which objects each repository's refs need and whether the hub has them yet. An object
-- file no row names any more is removed (a repository deleted releases its objects).
ALTER TABLE repos ADD COLUMN lfs_enabled INTEGER NOT NULL DEFAULT 1;
-- Overrides the endpoint found from the upstream URL or its .lfsconfig.
ALTER TABLE repos ADD COLUMN lfs_url TEXT;
-- Why the last LFS fetch left objects missing; NULL when none are.
ALTER TABLE repos ADD COLUMN lfs_last_error TEXT;

CREATE TABLE repo_lfs_objects (
    repo_id INTEGER NOT NULL REFERENCES repos (id) ON DELETE CASCADE,
    -- 64 lowercase hex digits (SHA-256 of the content).
    oid     TEXT    NOT NULL,
    size    INTEGER NOT NULL,
    -- 1 once the verified object is in the store.
    present INTEGER NOT NULL DEFAULT 0,
    added_at INTEGER NOT NULL,
    PRIMARY KEY (repo_id, oid)
) WITHOUT ROWID;
-- "Does any repository still need this object?", when one is deleted.
CREATE INDEX repo_lfs_objects_oid ON repo_lfs_objects (oid);

-- A successful run can carry warnings (LFS objects that could not be fetched).
ALTER TABLE sync_runs ADD COLUMN warnings TEXT;

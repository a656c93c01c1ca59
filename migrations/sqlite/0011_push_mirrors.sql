-- Push mirrors: downstream servers the hub pushes a repository's branches and tags to after
-- every change (a push to a primary, a sync of a mirror that moved refs), and on their own
-- interval as a fallback.
CREATE TABLE push_mirrors (
    -- AUTOINCREMENT: the id of a deleted push mirror is never handed out again.
    id                   INTEGER PRIMARY KEY AUTOINCREMENT,
    repo_id              INTEGER NOT NULL REFERENCES repos (id) ON DELETE CASCADE,
    -- Normalised, without credentials.
    url                  TEXT    NOT NULL,
    -- Sealed like repos.credentials: version byte, 24-byte nonce, ciphertext and tag.
    credentials          BLOB,
    -- SSH downstreams: the owner's key to log in with (SET NULL: deleting the key leaves the
    -- target without one, and its runs fail saying so) and the server's pinned host keys.
    ssh_key_id           INTEGER REFERENCES ssh_keys (id) ON DELETE SET NULL,
    known_hosts          TEXT,
    -- only_branches: the patterns one per line; NULL takes every branch.
    only_branches        TEXT,
    tags                 INTEGER NOT NULL DEFAULT 1,
    prune                INTEGER NOT NULL DEFAULT 1,
    force                INTEGER NOT NULL DEFAULT 1,
    enabled              INTEGER NOT NULL DEFAULT 1,
    sync_interval_secs   INTEGER NOT NULL,
    -- When the fallback scheduler queues a run for it (NULL: disabled).
    next_push_at         INTEGER,
    last_run_at          INTEGER,
    last_success_at      INTEGER,
    last_error_code      TEXT,
    last_error_message   TEXT,
    consecutive_failures INTEGER NOT NULL DEFAULT 0,
    -- The refs the last run left alone because they moved downstream, one per line.
    diverged             TEXT    NOT NULL DEFAULT '',
    created_at           INTEGER NOT NULL
);
CREATE INDEX push_mirrors_repo ON push_mirrors (repo_id, id);
-- The scheduler's scan: enabled targets whose interval passed.
CREATE INDEX push_mirrors_next_push ON push_mirrors (next_push_at) WHERE next_push_at IS NOT NULL;

-- What each target's runs last left every ref at downstream: a ref still there did not move
-- on its own, so it may follow the hub even without force, or be pruned.
CREATE TABLE push_mirror_refs (
    mirror_id INTEGER NOT NULL REFERENCES push_mirrors (id) ON DELETE CASCADE,
    ref_name  TEXT    NOT NULL,
    oid       TEXT    NOT NULL,
    PRIMARY KEY (mirror_id, ref_name)
);

-- The push mirror queue: the sync queue's discipline (one pending job per target, claimed
-- with a lease, at most one live lease per target), in a table of its own so the sync
-- queue's invariants and queries stay exactly as they are.
CREATE TABLE push_jobs (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    mirror_id   INTEGER NOT NULL REFERENCES push_mirrors (id) ON DELETE CASCADE,
    repo_id     INTEGER NOT NULL REFERENCES repos (id) ON DELETE CASCADE,
    trigger     TEXT    NOT NULL,
    run_after   INTEGER NOT NULL,
    claimed_by  TEXT,
    lease_until INTEGER,
    attempts    INTEGER NOT NULL DEFAULT 0,
    created_at  INTEGER NOT NULL,
    CHECK ((claimed_by IS NULL) = (lease_until IS NULL))
);
CREATE UNIQUE INDEX push_jobs_one_pending_per_mirror ON push_jobs (mirror_id) WHERE claimed_by IS NULL;
CREATE INDEX push_jobs_mirror_lease ON push_jobs (mirror_id, lease_until);
CREATE INDEX push_jobs_run_after ON push_jobs (run_after, id);
CREATE INDEX push_jobs_repo ON push_jobs (repo_id);

CREATE TABLE push_runs (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    mirror_id     INTEGER NOT NULL REFERENCES push_mirrors (id) ON DELETE CASCADE,
    trigger       TEXT    NOT NULL,
    started_at    INTEGER NOT NULL,
    finished_at   INTEGER,
    outcome       TEXT    NOT NULL,
    error_code    TEXT,
    error_message TEXT
);
CREATE INDEX push_runs_mirror_started ON push_runs (mirror_id, started_at, id);

-- What one run did to each ref it touched or left alone.
CREATE TABLE push_run_refs (
    run_id   INTEGER NOT NULL REFERENCES push_runs (id) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    ref_name TEXT    NOT NULL,
    old_oid  TEXT,
    new_oid  TEXT,
    kind     TEXT    NOT NULL,
    reason   TEXT,
    PRIMARY KEY (run_id, position)
);

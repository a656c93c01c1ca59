-- Mirror sets: every repository of a namespace on a forge (an organization, a GitLab group
-- with its subgroups, a user, a Bitbucket workspace), listed through the forge's API on the
-- set's own interval and mirrored one repository at a time through the same services as a
-- single create.
CREATE TABLE mirror_sets (
    id                 BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- github | gitlab | gitea | bitbucket
    forge              TEXT    NOT NULL,
    -- The API root the listing calls (no trailing slash).
    api_url            TEXT    NOT NULL,
    namespace          TEXT    NOT NULL,
    namespace_key      TEXT    NOT NULL GENERATED ALWAYS AS (lower(namespace)) STORED,
    -- The hub owner the mirrors are created under.
    owner              TEXT    NOT NULL,
    owner_key          TEXT    NOT NULL GENERATED ALWAYS AS (lower(owner)) STORED,
    -- Username and token, sealed like repos.credentials. Never plaintext.
    credentials        BYTEA,
    -- Sets made by a GitHub App installation list and clone with its installation tokens.
    installation_id    BIGINT,
    -- Globs on the repository name, one per line.
    include_globs      TEXT    NOT NULL DEFAULT '',
    exclude_globs      TEXT    NOT NULL DEFAULT '',
    archived           BOOLEAN NOT NULL DEFAULT FALSE,
    forks              BOOLEAN NOT NULL DEFAULT FALSE,
    -- as-upstream | private | public
    visibility         TEXT    NOT NULL,
    -- mirror | migrate: what each repository of the set becomes.
    mode               TEXT    NOT NULL,
    -- The mirrors' sync interval; NULL: the hub's default.
    sync_interval_secs BIGINT,
    list_interval_secs BIGINT NOT NULL,
    follow_renames     BOOLEAN NOT NULL DEFAULT FALSE,
    -- When the next listing is due; a listing holds the set with a lease like a sync job.
    next_list_at       TIMESTAMPTZ NOT NULL,
    -- A listing was asked for while one ran: list again as soon as it ends.
    relist             BOOLEAN NOT NULL DEFAULT FALSE,
    listed_by          TEXT,
    lease_until        TIMESTAMPTZ,
    last_listed_at     TIMESTAMPTZ,
    last_list_error_code    TEXT,
    last_list_error_message TEXT,
    list_failures      INTEGER NOT NULL DEFAULT 0,
    created_at         TIMESTAMPTZ NOT NULL,
    CHECK ((listed_by IS NULL) = (lease_until IS NULL))
);

-- One set per namespace, forge and owner.
CREATE UNIQUE INDEX mirror_sets_namespace ON mirror_sets (forge, api_url, namespace_key, owner_key);
-- The listing loop's scan: due sets, oldest first.
CREATE INDEX mirror_sets_due ON mirror_sets (next_list_at);
CREATE INDEX mirror_sets_installation ON mirror_sets (installation_id) WHERE installation_id IS NOT NULL;

-- What the set knows of each repository of its namespace, by the forge's stable id (which
-- survives renames and transfers).
CREATE TABLE mirror_set_repos (
    set_id     BIGINT  NOT NULL REFERENCES mirror_sets (id) ON DELETE CASCADE,
    forge_id   TEXT    NOT NULL,
    -- The full path on the forge as last listed: acme/platform/api.
    path       TEXT    NOT NULL,
    -- The hub repository; NULL while none was made (skipped, collision, failed) or after it
    -- was deleted on the hub.
    repo_id    BIGINT  REFERENCES repos (id) ON DELETE SET NULL,
    -- mirrored | skipped | collision | failed | gone | archived
    state      TEXT    NOT NULL,
    detail     TEXT,
    changed_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (set_id, forge_id)
);

CREATE INDEX mirror_set_repos_repo ON mirror_set_repos (repo_id) WHERE repo_id IS NOT NULL;

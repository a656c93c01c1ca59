-- Accounts: users and organizations. They share the namespace of repository owners, so a
-- name is unique among all accounts regardless of ASCII case, like repos.owner_key.
CREATE TABLE accounts (
    -- AUTOINCREMENT: the id of a deleted account is never handed out again.
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    name          TEXT    NOT NULL,
    name_key      TEXT    NOT NULL GENERATED ALWAYS AS (lower(name)) STORED,
    kind          TEXT    NOT NULL CHECK (kind IN ('user', 'org')),
    site_admin    INTEGER NOT NULL DEFAULT 0 CHECK (site_admin IN (0, 1)),
    -- A PHC string (argon2id); NULL when the user has no password (and for organizations).
    password_hash TEXT,
    created_at    INTEGER NOT NULL
);
CREATE UNIQUE INDEX accounts_name_key ON accounts (name_key);

-- Existing installs keep their owners: every owner of a repository becomes an organization
-- (one per owner regardless of case, spelt as the bytewise least of its spellings), created now.
INSERT INTO accounts (name, kind, created_at)
SELECT MIN(owner), 'org', CAST(ROUND((julianday('now') - 2440587.5) * 86400000) AS INTEGER)
FROM repos GROUP BY owner_key ORDER BY owner_key;

-- Members of an organization, with their role in it.
CREATE TABLE org_members (
    org_id  INTEGER NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    user_id INTEGER NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    role    TEXT    NOT NULL CHECK (role IN ('read', 'write', 'admin')),
    PRIMARY KEY (org_id, user_id)
) WITHOUT ROWID;
-- A user's memberships, and the cascade from accounts.
CREATE INDEX org_members_user ON org_members (user_id);

-- Personal access tokens. Only the SHA-256 (hex) of the secret is kept, so a copy of the
-- database authenticates no one. Revoked tokens are kept (the user sees when and why a token
-- stopped working); their names can be used again.
CREATE TABLE access_tokens (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id      INTEGER NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    name         TEXT    NOT NULL,
    token_sha256 TEXT    NOT NULL UNIQUE,
    scope        TEXT    NOT NULL CHECK (scope IN ('read', 'write', 'admin')),
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER,
    last_used_at INTEGER,
    revoked_at   INTEGER
);
-- A user's live tokens have distinct names.
CREATE UNIQUE INDEX access_tokens_live_name ON access_tokens (user_id, name) WHERE revoked_at IS NULL;
-- A user's tokens, newest first, and the cascade from accounts.
CREATE INDEX access_tokens_user ON access_tokens (user_id, created_at, id);

-- A web UI session is a user's (signed in with their password), or the admin token's (NULL).
ALTER TABLE web_sessions ADD COLUMN user_id INTEGER REFERENCES accounts (id) ON DELETE CASCADE;

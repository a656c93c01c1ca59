-- Accounts: users and organizations. They share the namespace of repository owners, so a
-- name is unique among all accounts regardless of case, like repos.owner_key.
CREATE TABLE accounts (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name          TEXT        NOT NULL,
    name_key      TEXT        NOT NULL GENERATED ALWAYS AS (lower(name)) STORED,
    kind          TEXT        NOT NULL CHECK (kind IN ('user', 'org')),
    site_admin    BOOLEAN     NOT NULL DEFAULT false,
    -- A PHC string (argon2id); NULL when the user has no password (and for organizations).
    password_hash TEXT,
    created_at    TIMESTAMPTZ NOT NULL
);
CREATE UNIQUE INDEX accounts_name_key ON accounts (name_key);

-- Existing installs keep their owners: every owner of a repository becomes an organization
-- (one per owner regardless of case, spelt as the bytewise least of its spellings, as on
-- SQLite), created now.
INSERT INTO accounts (name, kind, created_at)
SELECT MIN(owner COLLATE "C"), 'org', now() FROM repos GROUP BY owner_key ORDER BY owner_key;

-- Members of an organization, with their role in it.
CREATE TABLE org_members (
    org_id  BIGINT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    user_id BIGINT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    role    TEXT   NOT NULL CHECK (role IN ('read', 'write', 'admin')),
    PRIMARY KEY (org_id, user_id)
);
-- A user's memberships, and the cascade from accounts.
CREATE INDEX org_members_user ON org_members (user_id);

-- Personal access tokens. Only the SHA-256 (hex) of the secret is kept, so a copy of the
-- database authenticates no one. Revoked tokens are kept (the user sees when and why a token
-- stopped working); their names can be used again.
CREATE TABLE access_tokens (
    id           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id      BIGINT      NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    name         TEXT        NOT NULL,
    token_sha256 TEXT        NOT NULL UNIQUE,
    scope        TEXT        NOT NULL CHECK (scope IN ('read', 'write', 'admin')),
    created_at   TIMESTAMPTZ NOT NULL,
    expires_at   TIMESTAMPTZ,
    last_used_at TIMESTAMPTZ,
    revoked_at   TIMESTAMPTZ
);
-- A user's live tokens have distinct names.
CREATE UNIQUE INDEX access_tokens_live_name ON access_tokens (user_id, name) WHERE revoked_at IS NULL;
-- A user's tokens, newest first, and the cascade from accounts.
CREATE INDEX access_tokens_user ON access_tokens (user_id, created_at, id);

-- A web UI session is a user's (signed in with their password), or the admin token's (NULL).
ALTER TABLE web_sessions ADD COLUMN user_id BIGINT REFERENCES accounts (id) ON DELETE CASCADE;

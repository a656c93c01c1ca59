-- Browser sessions of the web UI. Only the SHA-256 of the session id (the cookie) is kept, so
-- a copy of the database signs no one in. `csrf_token` is the synchronizer token every form of
-- the session carries.
CREATE TABLE web_sessions (
    id_sha256  TEXT        PRIMARY KEY,
    csrf_token TEXT        NOT NULL,
    created_at TIMESTAMPTZ NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX web_sessions_expires_at ON web_sessions (expires_at);

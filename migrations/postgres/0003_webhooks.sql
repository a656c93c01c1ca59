-- Push webhooks. Each repository has its own webhook secret (sealed like the credentials, so
-- that it can be shown to the repository's owner), and a match key: its upstream URL reduced to
-- host/path (mirrorhub_core::repo_key), which organization-level webhooks are matched on.
-- Both are filled for existing rows by the store when it starts.
ALTER TABLE repos ADD COLUMN match_key TEXT;
ALTER TABLE repos ADD COLUMN webhook_secret BYTEA;
-- The last verified delivery for this repository (any event, ping included): "connected".
ALTER TABLE repos ADD COLUMN webhook_last_delivery_at TIMESTAMPTZ;
ALTER TABLE repos ADD COLUMN webhook_last_forge TEXT;
-- A webhook the hub created on the upstream itself: which forge API and the hook's id there,
-- so it can be removed with the mirror; or why it could not be created.
ALTER TABLE repos ADD COLUMN webhook_hook_forge TEXT;
ALTER TABLE repos ADD COLUMN webhook_hook_id TEXT;
ALTER TABLE repos ADD COLUMN webhook_hook_error TEXT;

CREATE INDEX repos_match_key ON repos (match_key);

-- Delivery ids seen lately, per forge: a redelivery within the replay window does nothing.
CREATE TABLE webhook_seen (
    forge       TEXT        NOT NULL,
    delivery_id TEXT        NOT NULL,
    seen_at     TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (forge, delivery_id)
);
CREATE INDEX webhook_seen_at ON webhook_seen (seen_at);

-- The delivery log shown per repository.
CREATE TABLE webhook_deliveries (
    id          BIGINT      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    repo_id     BIGINT      NOT NULL REFERENCES repos (id) ON DELETE CASCADE,
    received_at TIMESTAMPTZ NOT NULL,
    forge       TEXT        NOT NULL,
    event       TEXT        NOT NULL,
    delivery_id TEXT,
    result      TEXT        NOT NULL
);
CREATE INDEX webhook_deliveries_repo ON webhook_deliveries (repo_id, id);
CREATE INDEX webhook_deliveries_received ON webhook_deliveries (received_at);

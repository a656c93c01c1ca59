-- SSH upstreams. An owner keeps SSH key pairs (deploy keys the hub made, or private keys the
-- owner uploaded); a repository reaches its SSH upstream with one of them, and checks the
-- upstream's host keys against the ones pinned when it was created.
CREATE TABLE ssh_keys (
    -- AUTOINCREMENT: the id of a deleted key is never handed out again, so a repository can
    -- never end up using another key under an old id.
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    -- An account is deleted only while it owns no repositories and none uses its keys, so
    -- its keys can go with it.
    owner_id    INTEGER NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    title       TEXT    NOT NULL,
    -- One OpenSSH public key line, shown so it can be added to the upstream as a deploy key.
    public_key  TEXT    NOT NULL,
    -- "SHA256:..." as ssh-keygen -l shows it.
    fingerprint TEXT    NOT NULL,
    -- The OpenSSH private key text, sealed like repos.credentials: version byte, 24-byte
    -- nonce, ciphertext and tag. Never plaintext.
    private_key BLOB    NOT NULL,
    created_at  INTEGER NOT NULL
);
-- An owner's keys, oldest first, and the cascade from accounts.
CREATE INDEX ssh_keys_owner ON ssh_keys (owner_id, created_at, id);

-- The key a repository's SSH upstream is reached with. RESTRICT: a key in use can never
-- vanish from under a repository (delete_ssh_key refuses first, and says which use it).
ALTER TABLE repos ADD COLUMN ssh_key_id INTEGER REFERENCES ssh_keys (id) ON DELETE RESTRICT;
-- The upstream's pinned host keys, as OpenSSH known_hosts lines. Public: not sealed.
ALTER TABLE repos ADD COLUMN known_hosts TEXT;
-- "Which repositories use this key?", for delete_ssh_key and the foreign key's own check
-- when a key is deleted. Most repositories use none: only those that do are indexed.
CREATE INDEX repos_ssh_key ON repos (ssh_key_id) WHERE ssh_key_id IS NOT NULL;

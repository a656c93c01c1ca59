//! `/api/v1/ssh-keys` and `/api/v1/ssh/host-keys`: deploy keys for SSH upstreams, and what an
//! SSH server shows as its host keys ("Detect host keys").

use std::sync::Arc;

use chrono::{DateTime, Utc};
use mirrorhub_core::HostKey;
use mirrorhub_hub::{Hub, HubError};
use mirrorhub_store::SshKey;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};

use super::{ApiResult, ApiTags};
use crate::auth::ApiToken;

pub struct SshApi {
    pub hub: Arc<Hub>,
}

/// A key pair the hub reaches SSH upstreams with. The private half is stored encrypted and is
/// never shown.
#[derive(Object)]
pub struct SshKeyResource {
    pub id: i64,
    /// The owner (user or organization) whose repositories may use the key.
    pub owner: String,
    pub title: String,
    /// One OpenSSH line (`ssh-ed25519 AAAA… comment`): paste it into the upstream as a
    /// read-only deploy key.
    pub public_key: String,
    /// `SHA256:…`, as `ssh-keygen -lf` and the forges show it.
    pub fingerprint: String,
    pub created_at: DateTime<Utc>,
}

impl From<SshKey> for SshKeyResource {
    fn from(k: SshKey) -> Self {
        Self {
            id: k.id,
            owner: k.owner,
            title: k.title,
            public_key: k.public_key,
            fingerprint: k.fingerprint,
            created_at: k.created_at,
        }
    }
}

#[derive(Object)]
pub struct CreateSshKeyBody {
    /// The hub owner (user or organization) the key is for.
    pub owner: String,
    /// A label, e.g. `deploy key for gerrit.example.com`.
    pub title: Option<String>,
}

/// One host key of an SSH server.
#[derive(Object)]
pub struct HostKeyResource {
    /// e.g. `ssh-ed25519`, `ecdsa-sha2-nistp256`, `ssh-rsa`.
    #[oai(rename = "type")]
    pub key_type: String,
    /// `SHA256:…`: compare it with what the server's administrator publishes.
    pub fingerprint: String,
    /// `type base64`: a line `known_hosts` accepts as it is.
    pub key: String,
}

impl From<&HostKey> for HostKeyResource {
    fn from(k: &HostKey) -> Self {
        Self {
            key_type: k.key_type.clone(),
            fingerprint: k.fingerprint(),
            key: k.line(),
        }
    }
}

#[derive(Object)]
pub struct DetectHostKeysBody {
    /// The upstream: `ssh://user@host[:port]/path` or `user@host:path`.
    pub url: String,
}

#[derive(ApiResponse)]
enum CreatedKey {
    /// The key pair is made; add `public_key` to the upstream as a deploy key.
    #[oai(status = 201)]
    Key(Json<SshKeyResource>),
}

#[derive(ApiResponse)]
enum DeletedKey {
    /// The key is gone.
    #[oai(status = 204)]
    NoContent,
}

#[OpenApi(tag = "ApiTags::Ssh")]
impl SshApi {
    /// Make a deploy key.
    ///
    /// Creates an Ed25519 key pair for an owner. Paste `public_key` into the upstream as a
    /// read-only deploy key (GitHub: Settings → Deploy keys; GitLab: Settings → Repository →
    /// Deploy keys; Gitea: Settings → Deploy Keys; Bitbucket: Repository settings → Access
    /// keys), then create the repository with `ssh_key_id`.
    #[oai(path = "/ssh-keys", method = "post")]
    async fn create_key(
        &self,
        auth: ApiToken,
        body: Json<CreateSshKeyBody>,
    ) -> ApiResult<CreatedKey> {
        let owner = body.0.owner.trim();
        self.hub.authorize_owner(&auth.0, owner).await?;
        let key = self
            .hub
            .create_ssh_key(owner, body.0.title.as_deref())
            .await?;
        Ok(CreatedKey::Key(Json(key.into())))
    }

    /// An owner's SSH keys, oldest first.
    #[oai(path = "/ssh-keys", method = "get")]
    async fn list_keys(
        &self,
        auth: ApiToken,
        /// The owner whose keys to list.
        owner: Query<String>,
    ) -> ApiResult<Json<Vec<SshKeyResource>>> {
        let owner = owner.0.trim();
        self.hub.authorize_owner(&auth.0, owner).await?;
        let keys = self.hub.list_ssh_keys(owner).await?;
        Ok(Json(keys.into_iter().map(SshKeyResource::from).collect()))
    }

    /// One SSH key.
    #[oai(path = "/ssh-keys/:id", method = "get")]
    async fn get_key(&self, auth: ApiToken, id: Path<i64>) -> ApiResult<Json<SshKeyResource>> {
        let owner = self.authorize_key(&auth, id.0).await?;
        Ok(Json(self.hub.owned_ssh_key(&owner, id.0).await?.into()))
    }

    /// Delete an SSH key. Refused (409 `ssh_key_in_use`) while a repository uses it.
    #[oai(path = "/ssh-keys/:id", method = "delete")]
    async fn delete_key(&self, auth: ApiToken, id: Path<i64>) -> ApiResult<DeletedKey> {
        self.authorize_key(&auth, id.0).await?;
        self.hub.delete_ssh_key(id.0).await?;
        Ok(DeletedKey::NoContent)
    }

    /// Detect host keys.
    ///
    /// Connects to the SSH server of `url` (through the address policy, like every
    /// connection the hub makes) and answers the host keys it offers. Nothing is trusted or
    /// recorded: compare the fingerprints with the server's published ones, then pass the
    /// keys as `known_hosts` when creating the repository.
    #[oai(path = "/ssh/host-keys", method = "post")]
    async fn detect_host_keys(
        &self,
        auth: ApiToken,
        body: Json<DetectHostKeysBody>,
    ) -> ApiResult<Json<Vec<HostKeyResource>>> {
        let keys = self
            .hub
            .detect_host_keys(&auth.0, body.0.url.trim())
            .await?;
        Ok(Json(keys.iter().map(HostKeyResource::from).collect()))
    }
}

impl SshApi {
    /// The key's owner, when the caller may manage the owner's keys. A key the caller may not
    /// see is a 404, like a missing one.
    async fn authorize_key(&self, auth: &ApiToken, id: i64) -> ApiResult<String> {
        let missing = || HubError::SshKeyNotFound(format!("there is no SSH key with id {id}"));
        let Some(owner) = self.hub.ssh_key_owner(id).await? else {
            return Err(missing().into());
        };
        match self.hub.authorize_owner(&auth.0, &owner).await {
            Ok(()) => Ok(owner),
            Err(HubError::Unauthorized(m)) => Err(HubError::Unauthorized(m).into()),
            Err(_) => Err(missing().into()),
        }
    }
}

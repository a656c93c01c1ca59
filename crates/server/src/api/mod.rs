//! `/api/v1`: repositories, their syncs, users, organizations and tokens, and the OpenAPI
//! document that describes them. Every call names its caller (`Authorization: Bearer`); the
//! hub decides what the caller may see and do.

mod accounts;
mod fidelity;
mod mirror_sets;
mod notifications;
mod push_mirrors;
mod ssh;
mod types;

use std::sync::Arc;

use mirrorhub_core::{Access, Trigger};
use mirrorhub_hub::{Hub, StatusFilter, Statuses};
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, OpenApi, Tags};

pub use accounts::AccountsApi;
pub use fidelity::BackupsApi;
pub use mirror_sets::MirrorSetsApi;
pub use notifications::NotificationsApi;
pub use push_mirrors::PushMirrorsApi;
pub use ssh::SshApi;

use crate::auth::ApiToken;
use crate::errors::ApiError;
use types::{CreateRepoBody, DeliveryResource, RepoResource, SyncRunResource, UpdateRepoBody};

#[derive(Tags)]
enum ApiTags {
    /// Mirrored and migrated repositories.
    Repos,
    /// Users, organizations and their members, personal access tokens.
    Accounts,
    /// Deploy keys for SSH upstreams, and detecting an SSH server's host keys.
    Ssh,
    /// Every repository of an organization, group or account, and the new ones as they
    /// appear.
    MirrorSets,
    /// Notification targets (webhook, Slack, e-mail) and their deliveries.
    Notifications,
}

pub struct ReposApi {
    pub hub: Arc<Hub>,
    pub public_url: String,
}

#[derive(ApiResponse)]
enum Accepted {
    /// Accepted: the work runs in the background; the resource shows its progress.
    #[oai(status = 202)]
    Repo(Json<RepoResource>),
}

#[derive(ApiResponse)]
enum Deleted {
    /// The repository and its bare copy are gone.
    #[oai(status = 204)]
    NoContent,
}

pub(crate) type ApiResult<T> = Result<T, ApiError>;

#[OpenApi(tag = "ApiTags::Repos")]
impl ReposApi {
    /// Create a mirror or a migration.
    ///
    /// Everything is checked before anything is recorded: the URL and the address it points
    /// to, the names, and that the upstream answers as a Git repository with the given
    /// credentials. The initial copy then runs in the background: the answer is immediate,
    /// with `state: "cloning"`.
    #[oai(path = "/repos", method = "post")]
    async fn create_repo(&self, auth: ApiToken, body: Json<CreateRepoBody>) -> ApiResult<Accepted> {
        self.hub
            .authorize_owner(&auth.0, body.0.owner.trim())
            .await?;
        let repo = self.hub.create_repo(body.0.into()).await?;
        Ok(Accepted::Repo(Json(
            self.resource(&repo, Access::Admin).await?,
        )))
    }

    /// List the repositories the caller may see: public ones, and private ones of the caller
    /// and of the organizations they belong to (all of them, for a site admin).
    #[oai(path = "/repos", method = "get")]
    async fn list_repos(
        &self,
        auth: ApiToken,
        /// Only repositories with one of these statuses, separated by commas, e.g.
        /// `failed,paused` (words: cloning, syncing, synced, stale, failed, paused).
        status: Query<Option<String>>,
    ) -> ApiResult<Json<Vec<RepoResource>>> {
        let filter = status.0.as_deref().map(StatusFilter::parse).transpose()?;
        let repos = self.hub.visible_repos(&auth.0).await?;
        let statuses = self.hub.statuses().await?;
        let facts = fidelity::FidelityFacts::all(&self.hub).await?;
        let mut resources = Vec::with_capacity(repos.len());
        for (r, a) in &repos {
            if filter.as_ref().is_none_or(|f| f.matches(statuses.of(r))) {
                resources.push(self.resource_with(r, *a, &statuses, &facts).await);
            }
        }
        Ok(Json(resources))
    }

    /// Show one repository: mode, state, progress, last sync and last error, counts.
    #[oai(path = "/repos/:owner/:name", method = "get")]
    async fn get_repo(
        &self,
        auth: ApiToken,
        owner: Path<String>,
        name: Path<String>,
    ) -> ApiResult<Json<RepoResource>> {
        let (repo, access) = self.authorize(&auth, &owner, &name, Access::Read).await?;
        Ok(Json(self.resource(&repo, access).await?))
    }

    /// Sync now.
    ///
    /// Queues a sync that makes the mirror exactly equal to its upstream. Requests made while
    /// one is queued are merged into it. A migrated repository is never synced (409).
    #[oai(path = "/repos/:owner/:name/sync", method = "post")]
    async fn sync_repo(
        &self,
        auth: ApiToken,
        owner: Path<String>,
        name: Path<String>,
    ) -> ApiResult<Accepted> {
        let (_, access) = self.authorize(&auth, &owner, &name, Access::Write).await?;
        let repo = self
            .hub
            .request_sync(&owner, strip_git(&name), Trigger::Manual)
            .await?;
        Ok(Accepted::Repo(Json(self.resource(&repo, access).await?)))
    }

    /// Sync history, newest first, each run with its journal of ref changes.
    #[oai(path = "/repos/:owner/:name/syncs", method = "get")]
    async fn list_syncs(
        &self,
        auth: ApiToken,
        owner: Path<String>,
        name: Path<String>,
        /// How many runs to return (1-200, default 50).
        limit: Query<Option<i64>>,
    ) -> ApiResult<Json<Vec<SyncRunResource>>> {
        self.authorize(&auth, &owner, &name, Access::Read).await?;
        let limit = limit.0.unwrap_or(50).clamp(1, 200);
        let runs = self.hub.list_runs(&owner, strip_git(&name), limit).await?;
        let mut runs: Vec<SyncRunResource> = runs.into_iter().map(SyncRunResource::from).collect();
        fidelity::link_backups(&self.hub, &mut runs).await?;
        Ok(Json(runs))
    }

    /// Webhook deliveries received for this repository, newest first (kept 30 days).
    #[oai(path = "/repos/:owner/:name/webhook/deliveries", method = "get")]
    async fn list_deliveries(
        &self,
        auth: ApiToken,
        owner: Path<String>,
        name: Path<String>,
        /// How many deliveries to return (1-200, default 50).
        limit: Query<Option<i64>>,
    ) -> ApiResult<Json<Vec<DeliveryResource>>> {
        self.authorize(&auth, &owner, &name, Access::Admin).await?;
        let limit = limit.0.unwrap_or(50).clamp(1, 200);
        let deliveries = self
            .hub
            .list_deliveries(&owner, strip_git(&name), limit)
            .await?;
        Ok(Json(
            deliveries.into_iter().map(DeliveryResource::from).collect(),
        ))
    }

    /// Change settings: upstream credentials, sync interval, description, visibility.
    ///
    /// New credentials are checked against the upstream before they are stored. Any change
    /// takes a paused mirror back into the schedule.
    #[oai(path = "/repos/:owner/:name", method = "patch")]
    async fn update_repo(
        &self,
        auth: ApiToken,
        owner: Path<String>,
        name: Path<String>,
        body: Json<UpdateRepoBody>,
    ) -> ApiResult<Json<RepoResource>> {
        self.authorize(&auth, &owner, &name, Access::Admin).await?;
        let repo = self
            .hub
            .update_repo(&owner, strip_git(&name), body.0.into())
            .await?;
        Ok(Json(self.resource(&repo, Access::Admin).await?))
    }

    /// Promote a mirror to primary.
    ///
    /// Checks that the upstream answers (else `422`, saying so), then queues one final sync;
    /// when every branch and tag equals the upstream's, the repository becomes the primary
    /// (`mode: "migrate"`): never synced again, its upstream credentials forgotten. The run
    /// (trigger `promote`) in the sync history says how it went. With `force=true` the
    /// promotion happens at once, without a final sync: for an upstream that is gone.
    #[oai(path = "/repos/:owner/:name/promote", method = "post")]
    async fn promote_repo(
        &self,
        auth: ApiToken,
        owner: Path<String>,
        name: Path<String>,
        /// Promote now without a final sync or check (the upstream is gone).
        force: Query<Option<bool>>,
    ) -> ApiResult<Accepted> {
        self.authorize(&auth, &owner, &name, Access::Admin).await?;
        let repo = self
            .hub
            .promote(&owner, strip_git(&name), force.0.unwrap_or(false))
            .await?;
        Ok(Accepted::Repo(Json(
            self.resource(&repo, Access::Admin).await?,
        )))
    }

    /// Delete a repository and its bare copy on disk.
    #[oai(path = "/repos/:owner/:name", method = "delete")]
    async fn delete_repo(
        &self,
        auth: ApiToken,
        owner: Path<String>,
        name: Path<String>,
    ) -> ApiResult<Deleted> {
        self.authorize(&auth, &owner, &name, Access::Admin).await?;
        self.hub.delete_repo(&owner, strip_git(&name)).await?;
        Ok(Deleted::NoContent)
    }
}

impl ReposApi {
    /// The repository, if the caller may do `need` with it (a private one the caller may not
    /// read is a 404, like a missing one).
    async fn authorize(
        &self,
        auth: &ApiToken,
        owner: &str,
        name: &str,
        need: Access,
    ) -> ApiResult<(mirrorhub_store::Repo, Access)> {
        Ok(self
            .hub
            .authorize_repo(&auth.0, owner, strip_git(name), need)
            .await?)
    }

    /// The resource of one repository, with its status now.
    async fn resource(
        &self,
        repo: &mirrorhub_store::Repo,
        access: Access,
    ) -> ApiResult<RepoResource> {
        let statuses = self.hub.statuses().await?;
        let facts = fidelity::FidelityFacts::of(&self.hub, repo).await?;
        Ok(self.resource_with(repo, access, &statuses, &facts).await)
    }

    async fn resource_with(
        &self,
        repo: &mirrorhub_store::Repo,
        access: Access,
        statuses: &Statuses,
        facts: &fidelity::FidelityFacts,
    ) -> RepoResource {
        let mut resource = RepoResource::new(
            repo,
            &self.public_url,
            self.hub.webhook_url(repo),
            statuses,
            access == Access::Admin,
        );
        resource.lfs = types::LfsResource::new(repo, self.hub.lfs_counts(repo.id).await);
        facts.apply(repo, &mut resource);
        resource
    }
}

/// `owner/name.git` names the same repository as `owner/name`.
pub(crate) fn strip_git(name: &str) -> &str {
    name.strip_suffix(".git").unwrap_or(name)
}

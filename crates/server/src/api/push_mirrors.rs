//! `/api/v1/repos/{owner}/{name}/push-mirrors`: downstream servers a repository is pushed to
//! after every change. Managing them needs admin rights on the repository; a private
//! repository's push mirrors are as invisible to others as the repository.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use mirrorhub_core::push_mirror::{PushRefKind, PushRefResult};
use mirrorhub_core::{Access, SyncInterval};
use mirrorhub_hub::{CreatePushMirror, Hub, UpdatePushMirror};
use mirrorhub_store::{PushMirror, PushRun, Repo};
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::types::MaybeUndefined;
use poem_openapi::{ApiResponse, Object, OpenApi};

use super::types::LastError;
use super::{strip_git, ApiResult, ApiTags};
use crate::auth::ApiToken;

pub struct PushMirrorsApi {
    pub hub: Arc<Hub>,
}

#[derive(Object)]
pub struct CreatePushMirrorBody {
    /// The downstream repository: an http://, https://, git:// or ssh:// URL (it should exist,
    /// empty or not).
    pub url: String,
    /// Username for the downstream (defaults to `git` when only a token is given).
    pub username: Option<String>,
    /// Token or password that may push to the downstream. Stored encrypted; never shown again.
    pub token: Option<String>,
    /// SSH downstreams: a deploy key of the repository owner's (`POST /api/v1/ssh-keys`),
    /// added to the downstream with write access.
    pub ssh_key_id: Option<i64>,
    /// SSH downstreams: the server's host keys to pin, as known_hosts lines (required).
    pub known_hosts: Option<String>,
    /// Push only these branches: globs over the branch name (`main`, `release/*`; `**`
    /// crosses `/`) or regular expressions written `/…/`. Default: every branch.
    pub only_branches: Option<Vec<String>>,
    /// Push tags (default true).
    pub tags: Option<bool>,
    /// Delete downstream branches and tags that are gone here (default true; with
    /// `only_branches`, only matching branches).
    pub prune: Option<bool>,
    /// Overwrite downstream refs that moved on their own (default true). With false, such a
    /// ref is left alone and reported in `diverged`.
    pub force: Option<bool>,
    /// Default true; a disabled push mirror is never pushed.
    pub enabled: Option<bool>,
    /// The fallback: push at least this often even without changes, e.g. `24h` (default), `90m`.
    pub sync_interval: Option<String>,
}

#[derive(Object)]
pub struct UpdatePushMirrorBody {
    /// A new downstream (what is known about the old one's refs is forgotten).
    pub url: Option<String>,
    pub username: Option<String>,
    /// A new token (checked by the next run).
    pub token: Option<String>,
    /// Forget the stored credentials.
    pub remove_credentials: Option<bool>,
    pub ssh_key_id: Option<i64>,
    pub known_hosts: Option<String>,
    /// A list of patterns, or `null` for every branch again.
    pub only_branches: MaybeUndefined<Vec<String>>,
    pub tags: Option<bool>,
    pub prune: Option<bool>,
    pub force: Option<bool>,
    pub enabled: Option<bool>,
    pub sync_interval: Option<String>,
}

/// A downstream the repository is pushed to. Credentials are never shown.
#[derive(Object)]
pub struct PushMirrorResource {
    pub id: i64,
    /// The downstream's address, without credentials.
    pub url: String,
    pub has_credentials: bool,
    pub ssh_key_id: Option<i64>,
    /// `null` when every branch is pushed.
    pub only_branches: Option<Vec<String>>,
    pub tags: bool,
    pub prune: bool,
    pub force: bool,
    pub enabled: bool,
    /// The fallback interval, e.g. `24h`.
    pub sync_interval: String,
    pub last_run_at: Option<DateTime<Utc>>,
    pub last_success_at: Option<DateTime<Utc>>,
    /// Why the last run failed; `null` after a success.
    pub last_error: Option<LastError>,
    /// Refs the last run left alone because they moved downstream on their own (`force: false`).
    pub diverged: Vec<String>,
    /// When the fallback pushes next at the latest; `null` while disabled.
    pub next_push_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

impl From<PushMirror> for PushMirrorResource {
    fn from(m: PushMirror) -> Self {
        let last_error = m.last_error_code.map(|code| LastError {
            code,
            message: m.last_error_message.unwrap_or_default(),
        });
        Self {
            id: m.id,
            url: m.url,
            has_credentials: m.credentials.is_some(),
            ssh_key_id: m.ssh_key_id,
            only_branches: m.only_branches,
            tags: m.tags,
            prune: m.prune,
            force: m.force,
            enabled: m.enabled,
            sync_interval: SyncInterval::from_secs(m.sync_interval_secs.max(1) as u64)
                .map(|i| i.to_string())
                .unwrap_or_else(|| format!("{}s", m.sync_interval_secs)),
            last_run_at: m.last_run_at,
            last_success_at: m.last_success_at,
            last_error,
            diverged: m.diverged,
            next_push_at: m.next_push_at,
            created_at: m.created_at,
        }
    }
}

/// One ref in a push mirror run.
#[derive(Object)]
pub struct PushRefResource {
    #[oai(rename = "ref")]
    pub ref_name: String,
    /// The downstream's object before the run; `null` when it had no such ref.
    pub old: Option<String>,
    /// The hub's object (pushed, or the one a diverged or refused ref would have got).
    pub new: Option<String>,
    /// `created`, `fast_forward`, `forced`, `deleted`, `diverged` or `rejected`.
    pub kind: String,
    /// Why the downstream refused it (`rejected` only).
    pub reason: Option<String>,
}

impl From<PushRefResult> for PushRefResource {
    fn from(r: PushRefResult) -> Self {
        Self {
            ref_name: r.name,
            old: r.old,
            new: r.new,
            kind: r.kind.to_string(),
            reason: r.reason,
        }
    }
}

/// One run of a push mirror.
#[derive(Object)]
pub struct PushRunResource {
    pub id: i64,
    /// `create`, `push`, `sync`, `manual`, `schedule` or `recovery`.
    pub trigger: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    /// `running`, `success` (refs changed downstream), `unchanged` or `failed`.
    pub outcome: String,
    pub error: Option<LastError>,
    /// Refs created or moved downstream.
    pub pushed: Vec<PushRefResource>,
    /// Refs deleted downstream (`prune`).
    pub deleted: Vec<PushRefResource>,
    /// Refs left alone because they moved downstream on their own (`force: false`).
    pub diverged: Vec<PushRefResource>,
    /// Refs the downstream refused (a hook, a protected branch).
    pub rejected: Vec<PushRefResource>,
}

impl From<PushRun> for PushRunResource {
    fn from(run: PushRun) -> Self {
        let error = run.error_code.map(|code| LastError {
            code,
            message: run.error_message.unwrap_or_default(),
        });
        let mut out = Self {
            id: run.id,
            trigger: run.trigger.to_string(),
            started_at: run.started_at,
            finished_at: run.finished_at,
            outcome: run.outcome.to_string(),
            error,
            pushed: Vec::new(),
            deleted: Vec::new(),
            diverged: Vec::new(),
            rejected: Vec::new(),
        };
        for r in run.refs {
            let list = match r.kind {
                PushRefKind::Deleted => &mut out.deleted,
                PushRefKind::Diverged => &mut out.diverged,
                PushRefKind::Rejected => &mut out.rejected,
                _ => &mut out.pushed,
            };
            list.push(r.into());
        }
        out
    }
}

#[derive(ApiResponse)]
enum Created {
    /// Recorded; its first run is queued at once.
    #[oai(status = 201)]
    Mirror(Json<PushMirrorResource>),
}

#[derive(ApiResponse)]
enum Queued {
    /// A run is queued (merged into one already queued).
    #[oai(status = 202)]
    Mirror(Json<PushMirrorResource>),
}

#[derive(ApiResponse)]
enum Deleted {
    /// The push mirror and its history are gone; the downstream is left as it is.
    #[oai(status = 204)]
    NoContent,
}

#[OpenApi(tag = "ApiTags::Repos")]
impl PushMirrorsApi {
    /// Add a push mirror.
    ///
    /// The repository is pushed to the downstream at once, then after every change (a push to
    /// it, a sync that moved refs) and at least every `sync_interval`. The URL's address is
    /// checked against the hub's policy now; credentials are tried by the first run.
    #[oai(path = "/repos/:owner/:name/push-mirrors", method = "post")]
    async fn create(
        &self,
        auth: ApiToken,
        owner: Path<String>,
        name: Path<String>,
        body: Json<CreatePushMirrorBody>,
    ) -> ApiResult<Created> {
        let repo = self.repo(&auth, &owner, &name).await?;
        let b = body.0;
        let mirror = self
            .hub
            .create_push_mirror(
                &repo,
                CreatePushMirror {
                    url: b.url,
                    username: b.username,
                    token: b.token,
                    ssh_key_id: b.ssh_key_id,
                    known_hosts: b.known_hosts,
                    only_branches: b.only_branches,
                    tags: b.tags,
                    prune: b.prune,
                    force: b.force,
                    enabled: b.enabled,
                    sync_interval: b.sync_interval,
                },
            )
            .await?;
        Ok(Created::Mirror(Json(mirror.into())))
    }

    /// List the repository's push mirrors with their status.
    #[oai(path = "/repos/:owner/:name/push-mirrors", method = "get")]
    async fn list(
        &self,
        auth: ApiToken,
        owner: Path<String>,
        name: Path<String>,
    ) -> ApiResult<Json<Vec<PushMirrorResource>>> {
        let repo = self.repo(&auth, &owner, &name).await?;
        let mirrors = self.hub.list_push_mirrors(&repo).await?;
        Ok(Json(mirrors.into_iter().map(Into::into).collect()))
    }

    /// Show one push mirror: settings, last success, last error, diverged refs.
    #[oai(path = "/repos/:owner/:name/push-mirrors/:id", method = "get")]
    async fn get(
        &self,
        auth: ApiToken,
        owner: Path<String>,
        name: Path<String>,
        id: Path<i64>,
    ) -> ApiResult<Json<PushMirrorResource>> {
        let repo = self.repo(&auth, &owner, &name).await?;
        Ok(Json(self.hub.get_push_mirror(&repo, id.0).await?.into()))
    }

    /// Change a push mirror; a run is queued when it is enabled.
    #[oai(path = "/repos/:owner/:name/push-mirrors/:id", method = "patch")]
    async fn update(
        &self,
        auth: ApiToken,
        owner: Path<String>,
        name: Path<String>,
        id: Path<i64>,
        body: Json<UpdatePushMirrorBody>,
    ) -> ApiResult<Json<PushMirrorResource>> {
        let repo = self.repo(&auth, &owner, &name).await?;
        let b = body.0;
        let only_branches = match b.only_branches {
            MaybeUndefined::Undefined => None,
            MaybeUndefined::Null => Some(None),
            MaybeUndefined::Value(list) => Some(Some(list)),
        };
        let mirror = self
            .hub
            .update_push_mirror(
                &repo,
                id.0,
                UpdatePushMirror {
                    url: b.url,
                    username: b.username,
                    token: b.token,
                    remove_credentials: b.remove_credentials.unwrap_or(false),
                    ssh_key_id: b.ssh_key_id,
                    known_hosts: b.known_hosts,
                    only_branches,
                    tags: b.tags,
                    prune: b.prune,
                    force: b.force,
                    enabled: b.enabled,
                    sync_interval: b.sync_interval,
                },
            )
            .await?;
        Ok(Json(mirror.into()))
    }

    /// Delete a push mirror (the downstream is left as it is).
    #[oai(path = "/repos/:owner/:name/push-mirrors/:id", method = "delete")]
    async fn delete(
        &self,
        auth: ApiToken,
        owner: Path<String>,
        name: Path<String>,
        id: Path<i64>,
    ) -> ApiResult<Deleted> {
        let repo = self.repo(&auth, &owner, &name).await?;
        self.hub.delete_push_mirror(&repo, id.0).await?;
        Ok(Deleted::NoContent)
    }

    /// Push now.
    #[oai(path = "/repos/:owner/:name/push-mirrors/:id/sync", method = "post")]
    async fn sync(
        &self,
        auth: ApiToken,
        owner: Path<String>,
        name: Path<String>,
        id: Path<i64>,
    ) -> ApiResult<Queued> {
        let repo = self.repo(&auth, &owner, &name).await?;
        Ok(Queued::Mirror(Json(
            self.hub.request_push(&repo, id.0).await?.into(),
        )))
    }

    /// A push mirror's runs, newest first: refs pushed, deleted, diverged and refused, and
    /// the error of a failed run.
    #[oai(path = "/repos/:owner/:name/push-mirrors/:id/runs", method = "get")]
    async fn runs(
        &self,
        auth: ApiToken,
        owner: Path<String>,
        name: Path<String>,
        id: Path<i64>,
        /// How many runs to return (1-200, default 50).
        limit: Query<Option<i64>>,
    ) -> ApiResult<Json<Vec<PushRunResource>>> {
        let repo = self.repo(&auth, &owner, &name).await?;
        let limit = limit.0.unwrap_or(50).clamp(1, 200);
        let runs = self.hub.list_push_runs(&repo, id.0, limit).await?;
        Ok(Json(runs.into_iter().map(Into::into).collect()))
    }
}

impl PushMirrorsApi {
    /// The repository, if the caller administers it.
    async fn repo(&self, auth: &ApiToken, owner: &str, name: &str) -> ApiResult<Repo> {
        Ok(self
            .hub
            .authorize_repo(&auth.0, owner, strip_git(name), Access::Admin)
            .await?
            .0)
    }
}

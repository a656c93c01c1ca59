//! `/api/v1/mirror-sets`: mirror every repository of an organization, group or account, and
//! the new ones as they appear.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use mirrorhub_core::{Actor, ErrorCode, SyncInterval};
use mirrorhub_hub::{CreateMirrorSet, Hub, HubError, MirrorSetView, SetRepoView};
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};

use super::{ApiResult, ApiTags};
use crate::auth::ApiToken;

pub struct MirrorSetsApi {
    pub hub: Arc<Hub>,
}

/// A namespace to mirror.
#[derive(Object)]
pub struct CreateMirrorSetBody {
    /// `github`, `gitlab`, `gitea` (also Forgejo) or `bitbucket` (Bitbucket Cloud).
    pub forge: String,
    /// The forge's API, when it is not the public service: GitHub Enterprise
    /// `https://HOST/api/v3`, a self-managed GitLab's or any Gitea's base URL
    /// (`https://gitlab.example.com`). Required for Gitea.
    pub api_url: Option<String>,
    /// The organization, user, Bitbucket workspace, or GitLab group path (`acme/platform`,
    /// subgroups included).
    pub namespace: String,
    /// The hub owner (user or organization) the mirrors are created under.
    pub owner: String,
    /// A token that may read the forge's API and the repositories. Stored encrypted; never
    /// shown again. Each mirror clones with it.
    pub token: Option<String>,
    /// The username to clone with, when the forge needs one with the token (Bitbucket app
    /// passwords). Defaults to what each forge takes with a bare token.
    pub username: Option<String>,
    /// Only repositories whose name matches one of these globs (`*` any run, `?` one
    /// character, case-insensitive). Empty: all.
    #[oai(default)]
    pub include: Vec<String>,
    /// Leave out repositories whose name matches one of these globs.
    #[oai(default)]
    pub exclude: Vec<String>,
    /// Mirror archived repositories too (default false).
    pub archived: Option<bool>,
    /// Mirror forks too (default false).
    pub forks: Option<bool>,
    /// `as-upstream` (default: private upstream → private mirror), `private` or `public`.
    pub visibility: Option<String>,
    /// `mirror` (default) or `migrate`: what each repository of the set becomes.
    pub mode: Option<String>,
    /// The mirrors' sync interval, e.g. `24h` (default: the hub's).
    pub sync_interval: Option<String>,
    /// How often the namespace is listed again for new, renamed and removed repositories,
    /// e.g. `1h` (default; at least `5m`). Organization events list it at once anyway.
    pub list_interval: Option<String>,
    /// Rename a mirror on the hub when its upstream is renamed (default false: the mirror
    /// follows the new address and keeps its name).
    pub follow_renames: Option<bool>,
}

/// What went wrong in the last listing.
#[derive(Object)]
pub struct ListingErrorResource {
    pub code: String,
    pub message: String,
}

/// How a set's repositories stand.
#[derive(Object)]
pub struct SetCountsResource {
    /// Every repository the listing named.
    pub listed: i64,
    /// Mirrors with their first copy.
    pub mirrored: i64,
    /// Mirrors still making their first copy.
    pub cloning: i64,
    /// Not mirrored (name taken on the hub, create failed) or mirrors whose syncs fail.
    pub failed: i64,
    /// Left out by the filters.
    pub skipped: i64,
    /// Deleted, moved away or archived upstream: mirrors kept, paused.
    pub gone: i64,
}

/// A mirror set.
#[derive(Object)]
pub struct MirrorSetResource {
    pub id: i64,
    pub forge: String,
    pub api_url: String,
    pub namespace: String,
    pub owner: String,
    /// Whether a token is stored (it is never shown).
    pub has_token: bool,
    /// The GitHub App installation that made the set, for sets made by installing the App.
    pub installation_id: Option<i64>,
    pub include: Vec<String>,
    pub exclude: Vec<String>,
    pub archived: bool,
    pub forks: bool,
    pub visibility: String,
    pub mode: String,
    /// The mirrors' sync interval; absent: the hub's default.
    pub sync_interval: Option<String>,
    pub list_interval: String,
    pub follow_renames: bool,
    /// A listing runs now.
    pub listing: bool,
    pub next_list_at: DateTime<Utc>,
    /// The last listing that ran to its end.
    pub last_listed_at: Option<DateTime<Utc>>,
    /// The last listing's error; absent when it succeeded. Existing mirrors are never
    /// touched by a failed listing.
    pub last_error: Option<ListingErrorResource>,
    pub counts: SetCountsResource,
    pub created_at: DateTime<Utc>,
}

impl From<MirrorSetView> for MirrorSetResource {
    fn from(v: MirrorSetView) -> Self {
        let s = v.set;
        let interval = |secs: i64| {
            SyncInterval::from_secs(secs.max(1) as u64)
                .map(|i| i.to_string())
                .unwrap_or_else(|| format!("{secs}s"))
        };
        MirrorSetResource {
            id: s.id,
            forge: s.forge,
            api_url: s.api_url,
            namespace: s.namespace,
            owner: s.owner,
            has_token: s.has_credentials,
            installation_id: s.installation_id,
            include: s.include,
            exclude: s.exclude,
            archived: s.archived,
            forks: s.forks,
            visibility: s.visibility,
            mode: s.mode.as_str().to_owned(),
            sync_interval: s.sync_interval_secs.map(interval),
            list_interval: interval(s.list_interval_secs),
            follow_renames: s.follow_renames,
            listing: s.listing,
            next_list_at: s.next_list_at,
            last_listed_at: s.last_listed_at,
            last_error: s.last_list_error_code.map(|code| ListingErrorResource {
                code,
                message: s.last_list_error_message.unwrap_or_default(),
            }),
            counts: SetCountsResource {
                listed: v.counts.listed,
                mirrored: v.counts.mirrored,
                cloning: v.counts.cloning,
                failed: v.counts.failed,
                skipped: v.counts.skipped,
                gone: v.counts.gone,
            },
            created_at: s.created_at,
        }
    }
}

/// One repository of a set's namespace.
#[derive(Object)]
pub struct SetRepoResource {
    /// Its full path on the forge, as last listed.
    pub path: String,
    /// The forge's stable id (kept across renames).
    pub forge_id: String,
    /// `mirrored`, `skipped` (by the filters), `collision` (the name is taken on the hub),
    /// `failed` (retried at the next listing), `gone` (no longer listed: mirror kept,
    /// paused) or `archived` (archived upstream: mirror kept, paused).
    pub state: String,
    /// Why, in words.
    pub detail: Option<String>,
    /// The hub repository (`owner/name`), when there is one.
    pub repository: Option<String>,
    /// The hub repository's status (`cloning`, `synced`, …).
    pub status: Option<String>,
    pub changed_at: DateTime<Utc>,
}

impl From<SetRepoView> for SetRepoResource {
    fn from(v: SetRepoView) -> Self {
        SetRepoResource {
            path: v.member.path,
            forge_id: v.member.forge_id,
            state: v.member.state.as_str().to_owned(),
            detail: v.member.detail,
            repository: v.repo.map(|r| format!("{}/{}", r.owner, r.name)),
            status: v.status.map(|s| s.as_str().to_owned()),
            changed_at: v.member.changed_at,
        }
    }
}

#[derive(ApiResponse)]
enum AcceptedSet {
    /// Accepted: the namespace is listed in the background; the set's counts show progress.
    #[oai(status = 202)]
    Set(Json<MirrorSetResource>),
}

#[derive(ApiResponse)]
enum DeletedSet {
    /// The set is gone (its mirrors too, with `delete_mirrors=true`).
    #[oai(status = 204)]
    NoContent,
}

#[OpenApi(tag = "ApiTags::MirrorSets")]
impl MirrorSetsApi {
    /// Mirror a whole organization, group or account.
    ///
    /// The first page of the namespace is listed with the token before anything is
    /// recorded (a wrong token, namespace or address is refused now). The set is then
    /// listed in the background, every page, and each repository the filters keep becomes a
    /// mirror through the same checks and queue as a single create. The namespace is listed
    /// again every `list_interval`, and at once on the forge's organization events
    /// (`/hooks/{forge}`).
    #[oai(path = "/mirror-sets", method = "post")]
    async fn create_set(
        &self,
        auth: ApiToken,
        body: Json<CreateMirrorSetBody>,
    ) -> ApiResult<AcceptedSet> {
        let b = body.0;
        self.hub.authorize_owner(&auth.0, b.owner.trim()).await?;
        let set = self
            .hub
            .create_mirror_set(CreateMirrorSet {
                forge: b.forge,
                api_url: b.api_url,
                namespace: b.namespace,
                owner: b.owner,
                username: b.username,
                token: b.token,
                include: b.include,
                exclude: b.exclude,
                archived: b.archived,
                forks: b.forks,
                visibility: b.visibility,
                mode: b.mode,
                sync_interval: b.sync_interval,
                list_interval: b.list_interval,
                follow_renames: b.follow_renames,
            })
            .await?;
        let view = self.hub.mirror_set_view(set).await?;
        Ok(AcceptedSet::Set(Json(view.into())))
    }

    /// The mirror sets of the owners the caller manages.
    #[oai(path = "/mirror-sets", method = "get")]
    async fn list_sets(&self, auth: ApiToken) -> ApiResult<Json<Vec<MirrorSetResource>>> {
        if auth.0 == Actor::Anonymous {
            self.hub.authorize_owner(&auth.0, "").await?;
        }
        let mut out = vec![];
        for set in self.hub.list_mirror_sets().await? {
            if self.hub.authorize_owner(&auth.0, &set.owner).await.is_ok() {
                out.push(self.hub.mirror_set_view(set).await?.into());
            }
        }
        Ok(Json(out))
    }

    /// One mirror set with its counts and last listing.
    #[oai(path = "/mirror-sets/:id", method = "get")]
    async fn get_set(&self, auth: ApiToken, id: Path<i64>) -> ApiResult<Json<MirrorSetResource>> {
        let set = self.authorized(&auth, id.0).await?;
        Ok(Json(self.hub.mirror_set_view(set).await?.into()))
    }

    /// Every repository of the set's namespace, with its mirror and status.
    #[oai(path = "/mirror-sets/:id/repos", method = "get")]
    async fn list_set_repos(
        &self,
        auth: ApiToken,
        id: Path<i64>,
    ) -> ApiResult<Json<Vec<SetRepoResource>>> {
        self.authorized(&auth, id.0).await?;
        let repos = self.hub.mirror_set_repos(id.0).await?;
        Ok(Json(repos.into_iter().map(SetRepoResource::from).collect()))
    }

    /// List the namespace again now.
    #[oai(path = "/mirror-sets/:id/sync", method = "post")]
    async fn sync_set(&self, auth: ApiToken, id: Path<i64>) -> ApiResult<AcceptedSet> {
        self.authorized(&auth, id.0).await?;
        let set = self.hub.request_set_listing(id.0).await?;
        Ok(AcceptedSet::Set(Json(
            self.hub.mirror_set_view(set).await?.into(),
        )))
    }

    /// Delete a mirror set.
    ///
    /// Its mirrors are kept as ordinary mirrors unless `delete_mirrors=true`, which deletes
    /// every hub repository the set made (and not another set too).
    #[oai(path = "/mirror-sets/:id", method = "delete")]
    async fn delete_set(
        &self,
        auth: ApiToken,
        id: Path<i64>,
        /// Delete the set's mirrors too (default false: keep them).
        delete_mirrors: Query<Option<bool>>,
    ) -> ApiResult<DeletedSet> {
        self.authorized(&auth, id.0).await?;
        self.hub
            .delete_mirror_set(id.0, delete_mirrors.0.unwrap_or(false))
            .await?;
        Ok(DeletedSet::NoContent)
    }
}

impl MirrorSetsApi {
    /// The set, when the caller manages its owner; any other set is answered like a missing
    /// one.
    async fn authorized(&self, auth: &ApiToken, id: i64) -> ApiResult<mirrorhub_store::MirrorSet> {
        if auth.0 == Actor::Anonymous {
            self.hub.authorize_owner(&auth.0, "").await?;
        }
        let set = self.hub.get_mirror_set(id).await?;
        match self.hub.authorize_owner(&auth.0, &set.owner).await {
            Ok(()) => Ok(set),
            Err(_) => Err(HubError::invalid(
                ErrorCode::MirrorSetNotFound,
                "id",
                format!("there is no mirror set {id} (GET /api/v1/mirror-sets lists them)"),
            )
            .into()),
        }
    }
}

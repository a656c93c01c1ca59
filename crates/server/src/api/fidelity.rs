//! `/api/v1/repos/{owner}/{name}/backups`: the tips syncs overwrote or deleted, restored to a
//! branch on primaries or downloaded as a bundle; and what the repository resource says of a
//! mirror's ref filter, freshness and webhook silence.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use mirrorhub_core::{Access, RefFilterSpec};
use mirrorhub_hub::{Behind, Hub, WebhookSilence};
use mirrorhub_store::{Backup, Freshness, Repo};
use poem::Body;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::{Binary, Json};
use poem_openapi::{ApiResponse, Object, OpenApi};

use super::types::{RepoResource, SyncRunResource};
use super::{strip_git, ApiResult, ApiTags};
use crate::auth::ApiToken;

pub struct BackupsApi {
    pub hub: Arc<Hub>,
}

/// A tip a sync overwrote (non-fast-forward) or deleted, kept by the hub.
#[derive(Object)]
pub struct BackupResource {
    pub id: i64,
    /// The branch or tag, e.g. `refs/heads/main`.
    #[oai(rename = "ref")]
    pub ref_name: String,
    /// The tip it had before the sync.
    pub old: String,
    /// Where the hub keeps it (never advertised to clients): fetch it from the bundle under
    /// this name.
    pub backup_ref: String,
    /// The sync run that made it (its `ref_changes` name this backup), or null when it was
    /// found after a crash.
    pub run_id: Option<i64>,
    pub created_at: DateTime<Utc>,
    /// When housekeeping removes it (`MIRRORHUB_BACKUP_RETENTION` after it was made).
    pub expires_at: DateTime<Utc>,
}

#[derive(Object)]
pub struct RestoreBody {
    /// The new branch's name; default `restored/<name>-<unix time of the backup>`.
    pub branch: Option<String>,
}

#[derive(Object)]
pub struct RestoredResource {
    /// The branch created, e.g. `refs/heads/restored/main-1733500000`.
    pub branch: String,
    /// The commit it points at (the backup's tip).
    pub target: String,
    pub backup: BackupResource,
}

#[derive(ApiResponse)]
enum Restored {
    /// The branch was created.
    #[oai(status = 201)]
    Created(Json<RestoredResource>),
}

#[derive(ApiResponse)]
enum Bundle {
    /// A git bundle of the backup's history (`git fetch <file> <backup_ref>:refs/heads/<name>`).
    #[oai(status = 200, content_type = "application/x-git-bundle")]
    Ok(Binary<Body>, #[oai(header = "Content-Disposition")] String),
}

#[OpenApi(tag = "ApiTags::Repos")]
impl BackupsApi {
    /// List backups of overwritten or deleted branches and tags, newest first.
    #[oai(path = "/repos/:owner/:name/backups", method = "get")]
    async fn list_backups(
        &self,
        auth: ApiToken,
        owner: Path<String>,
        name: Path<String>,
        /// How many to return (1-1000, default 100).
        limit: Query<Option<i64>>,
    ) -> ApiResult<Json<Vec<BackupResource>>> {
        let (repo, _) = self
            .hub
            .authorize_repo(&auth.0, &owner, strip_git(&name), Access::Read)
            .await?;
        let limit = limit.0.unwrap_or(100).clamp(1, 1000);
        let backups = self.hub.list_backups(&repo, limit).await?;
        Ok(Json(backups.into_iter().map(|b| self.backup(b)).collect()))
    }

    /// Restore a backup as a new branch (primaries only).
    ///
    /// Creates `restored/<name>-<time>` (or the `branch` given) at the backup's tip, recorded
    /// in the sync history like a push. A mirror's branches follow its upstream: download the
    /// bundle instead (`409 invalid_state`). A branch of that name existing already is a
    /// `409 invalid_state` too.
    #[oai(path = "/repos/:owner/:name/backups/:id/restore", method = "post")]
    async fn restore_backup(
        &self,
        auth: ApiToken,
        owner: Path<String>,
        name: Path<String>,
        id: Path<i64>,
        /// `{}` for the default name.
        body: Json<RestoreBody>,
    ) -> ApiResult<Restored> {
        let (repo, _) = self
            .hub
            .authorize_repo(&auth.0, &owner, strip_git(&name), Access::Write)
            .await?;
        let body = body.0;
        let (branch, backup) = self
            .hub
            .restore_backup(&repo, id.0, body.branch.as_deref())
            .await?;
        Ok(Restored::Created(Json(RestoredResource {
            branch,
            target: backup.old_oid.clone(),
            backup: self.backup(backup),
        })))
    }

    /// Download a backup as a git bundle.
    ///
    /// `git fetch ./backup.bundle '<backup_ref>:refs/heads/restored'` brings it into any
    /// clone; then push it wherever it belongs.
    #[oai(path = "/repos/:owner/:name/backups/:id/bundle", method = "get")]
    async fn backup_bundle(
        &self,
        auth: ApiToken,
        owner: Path<String>,
        name: Path<String>,
        id: Path<i64>,
    ) -> ApiResult<Bundle> {
        let (repo, _) = self
            .hub
            .authorize_repo(&auth.0, &owner, strip_git(&name), Access::Read)
            .await?;
        let (mut cmd, backup) = self.hub.backup_bundle(&repo, id.0).await?;
        cmd.stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null());
        let mut child = cmd.spawn().map_err(mirrorhub_hub::HubError::from)?;
        let group = mirrorhub_git::ProcessGroup::of(&child);
        let stdout = child.stdout.take().ok_or_else(|| {
            mirrorhub_hub::HubError::Io(std::io::Error::other("git bundle has no stdout"))
        })?;
        let body = Body::from_async_read(ChildOutput {
            stdout,
            _child: child,
            _group: group,
        });
        let short = backup
            .ref_name
            .rsplit('/')
            .next()
            .unwrap_or("backup")
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            .collect::<String>();
        let file = format!(
            "{}-{}-{short}-{}.bundle",
            repo.owner,
            repo.name,
            backup.created_at.timestamp()
        );
        Ok(Bundle::Ok(
            Binary(body),
            format!("attachment; filename=\"{file}\""),
        ))
    }
}

impl BackupsApi {
    fn backup(&self, b: Backup) -> BackupResource {
        backup_resource(&self.hub, b)
    }
}

fn backup_resource(hub: &Hub, b: Backup) -> BackupResource {
    let retention = chrono::Duration::from_std(hub.config().fidelity.backup_retention)
        .unwrap_or(chrono::Duration::days(30));
    BackupResource {
        id: b.id,
        ref_name: b.ref_name,
        old: b.old_oid,
        backup_ref: b.backup_ref,
        run_id: b.run_id,
        expires_at: b.created_at + retention,
        created_at: b.created_at,
    }
}

/// `git bundle`'s stdout as a body; the process (and its group) is killed when the body is
/// dropped, also when the client goes away mid-download.
struct ChildOutput {
    stdout: tokio::process::ChildStdout,
    _child: tokio::process::Child,
    _group: mirrorhub_git::ProcessGroup,
}

impl tokio::io::AsyncRead for ChildOutput {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.stdout).poll_read(cx, buf)
    }
}

/// What the repository resources of a page or list need beyond the repository rows: filters
/// and freshness, read once for all of them.
#[derive(Default)]
pub(crate) struct FidelityFacts {
    freshness: HashMap<i64, Freshness>,
    filters: HashMap<i64, RefFilterSpec>,
}

impl FidelityFacts {
    /// For every repository (a list).
    pub(crate) async fn all(hub: &Hub) -> ApiResult<Self> {
        Ok(Self {
            freshness: hub.all_freshness().await?,
            filters: hub.ref_filters().await?,
        })
    }

    /// For one repository.
    pub(crate) async fn of(hub: &Hub, repo: &Repo) -> ApiResult<Self> {
        let mut facts = Self::default();
        if let Some(f) = hub.freshness(repo.id).await? {
            facts.freshness.insert(repo.id, f);
        }
        facts
            .filters
            .insert(repo.id, hub.ref_filter(repo.id).await?);
        Ok(facts)
    }

    /// Fills in `refs`, `behind` and the webhook's silence.
    pub(crate) fn apply(&self, repo: &Repo, resource: &mut RepoResource) {
        let freshness = self.freshness.get(&repo.id);
        resource.refs = self
            .filters
            .get(&repo.id)
            .cloned()
            .unwrap_or_default()
            .into();
        resource.behind = Behind::of(repo, freshness).map(Into::into);
        if let Some(silence) = WebhookSilence::of(repo, freshness) {
            resource.webhook.silent = true;
            resource.webhook.silent_since = Some(silence.since);
        }
    }
}

/// Links each forced or deleted ref change of these runs to the backup that keeps its old
/// tip.
pub(crate) async fn link_backups(hub: &Hub, runs: &mut [SyncRunResource]) -> ApiResult<()> {
    let ids: Vec<i64> = runs.iter().map(|r| r.id).collect();
    let backups = hub.backups_of_runs(&ids).await?;
    if backups.is_empty() {
        return Ok(());
    }
    for run in runs.iter_mut() {
        for change in &mut run.ref_changes {
            change.backup_id = backups
                .iter()
                .find(|b| {
                    b.run_id == Some(run.id)
                        && b.ref_name == change.ref_name
                        && change.old.as_deref() == Some(b.old_oid.as_str())
                })
                .map(|b| b.id);
        }
    }
    Ok(())
}

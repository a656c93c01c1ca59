//! What a mirror keeps beyond its refs, and what it says about itself:
//!
//! - **Ref filters**: a repository's `refs` setting ([`RefFilter`]) decides which branches and
//!   tags its syncs fetch and keep.
//! - **Backups**: the tips a sync overwrote or deleted stay under backup refs in the
//!   repository (made by the engine); here they are recorded with their run, listed, restored
//!   to a branch on primaries, bundled for download, and expired after
//!   [`FidelityConfig::backup_retention`].
//! - **Freshness**: how many refs a listing found different, and since when ([`Behind`]).
//! - **Webhook silence**: a mirror whose webhook is connected gets a cheap listing every
//!   [`FidelityConfig::silence_check`]; one that finds the upstream changed, with no delivery
//!   within a grace period (a tenth of the interval) before or after it, marks the webhook
//!   silent. Every check that finds a change queues a sync (so a silent webhook falls back to
//!   polling at that interval); a delivery ends the silence.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use mirrorhub_core::{ErrorCode, Mode, RefFilter, RefFilterSpec, RepoState, Trigger, UpstreamUrl};
use mirrorhub_git::{BackupRef, SyncOptions};
use mirrorhub_store::{Backup, Freshness, NewBackup, Repo, Silence};

use crate::{Hub, HubError};

/// Settings of backups and silence checks.
#[derive(Debug, Clone)]
pub struct FidelityConfig {
    /// How long a backup of an overwritten tip is kept (`MIRRORHUB_BACKUP_RETENTION`).
    pub backup_retention: Duration,
    /// How often a webhook-connected mirror's upstream is listed to notice a silent webhook
    /// (`MIRRORHUB_SILENCE_CHECK`); also the polling interval of a silent one.
    pub silence_check: Duration,
}

impl Default for FidelityConfig {
    fn default() -> Self {
        Self {
            backup_retention: Duration::from_secs(30 * 24 * 3600),
            silence_check: Duration::from_secs(3600),
        }
    }
}

/// How far behind its upstream a mirror is, as last seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Behind {
    /// Refs that differ (0: in sync).
    pub refs: i64,
    /// When that was seen: a listing, or the end of a successful sync.
    pub checked_at: DateTime<Utc>,
    /// The first listing that found it behind, while it still is.
    pub since: Option<DateTime<Utc>>,
}

impl Behind {
    /// What a repository's record says: a successful sync after the last listing means in
    /// sync as of that sync's end (it made the mirror equal to what the upstream advertised).
    /// `None` for primaries and mirrors never listed or synced.
    pub fn of(repo: &Repo, freshness: Option<&Freshness>) -> Option<Self> {
        if repo.mode != Mode::Mirror || repo.state != RepoState::Ready {
            return None;
        }
        let synced = repo.last_success_at.map(|at| Behind {
            refs: 0,
            checked_at: at,
            since: None,
        });
        let listed = freshness.and_then(|f| {
            Some(Behind {
                refs: f.behind_refs,
                checked_at: f.checked_at?,
                since: f.behind_since.filter(|_| f.behind_refs > 0),
            })
        });
        match (listed, synced) {
            (Some(l), Some(s)) if s.checked_at > l.checked_at => Some(s),
            (Some(l), _) => Some(l),
            (None, s) => s,
        }
    }
}

/// A repository's webhook silence, as shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WebhookSilence {
    pub since: DateTime<Utc>,
}

impl WebhookSilence {
    /// Silent: a check found it so, and no delivery has arrived since.
    pub fn of(repo: &Repo, freshness: Option<&Freshness>) -> Option<Self> {
        let since = freshness?.silent_since?;
        match repo.webhook.last_delivery_at {
            Some(delivered) if delivered >= since => None,
            _ => Some(Self { since }),
        }
    }
}

/// What a run left for [`Hub::record_run_note`] besides its outcome.
#[derive(Debug, Default)]
pub(crate) struct RunNote {
    /// The backups its sync made.
    pub backups: Vec<BackupRef>,
    /// Refs found different by the listing before the fetch, when the fetch then failed.
    pub failed_behind: Option<usize>,
    /// The run was taken up again after a crash: look for backups nobody recorded.
    pub recovering: bool,
}

/// Filled in by the engine as soon as the upstream is listed (see
/// [`SyncOptions::on_listing`]).
pub(crate) type ListedSlot = Arc<Mutex<Option<usize>>>;

impl Hub {
    /// How the repository's syncs run: its filter, backups on, the listing's count kept.
    pub(crate) fn sync_options(
        &self,
        ref_filter: Option<&RefFilterSpec>,
        listed: &ListedSlot,
    ) -> Result<SyncOptions, HubError> {
        let filter = filter_of(ref_filter)?;
        let slot = Arc::clone(listed);
        Ok(SyncOptions {
            filter,
            backups: true,
            on_listing: Some(Arc::new(move |behind| {
                *slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(behind);
            })),
        })
    }

    /// Records what a finished run left: its backups (linked to the run), how far behind a
    /// failed run's listing found the mirror, and after a crash the backups nobody recorded.
    /// Never fails the run: trouble is logged.
    pub(crate) async fn record_run_note(&self, repo: &Repo, run_id: i64, note: RunNote) {
        let now = Utc::now();
        if !note.backups.is_empty() {
            let rows: Vec<NewBackup> = note.backups.iter().map(new_backup).collect();
            if let Err(e) = self
                .store
                .record_backups(repo.id, Some(run_id), &rows)
                .await
            {
                tracing::error!(error = %e, "the run's backups could not be recorded; they stay in the repository and are recorded after the next crash recovery");
            }
        }
        if let Some(behind) = note.failed_behind {
            if let Err(e) = self.record_behind(repo, behind as i64, now).await {
                tracing::warn!(error = %e, "could not record how far behind the mirror is");
            }
        }
        if note.recovering {
            match self.engine.backup_refs(&self.repo_path(repo.id)).await {
                Ok(found) if !found.is_empty() => {
                    let rows: Vec<NewBackup> = found.iter().map(new_backup).collect();
                    if let Err(e) = self.store.record_backups(repo.id, None, &rows).await {
                        tracing::warn!(error = %e, "could not record the backups found after a crash");
                    }
                }
                Ok(_) => {}
                Err(e) => tracing::debug!(error = %e, "could not read the backup refs"),
            }
        }
    }

    /// The repository's filter as stored. Every stored filter was checked when it was set;
    /// one this version refuses fails the sync (saying so) rather than letting the mirror
    /// fetch what it was told to leave out.
    pub(crate) async fn stored_filter(&self, repo: &Repo) -> Result<RefFilter, HubError> {
        filter_of(self.store.ref_filter(repo.id).await?.as_ref())
    }

    /// Records a listing's count, keeping the start of a stretch behind.
    async fn record_behind(
        &self,
        repo: &Repo,
        behind: i64,
        at: DateTime<Utc>,
    ) -> Result<(), HubError> {
        let since = if behind == 0 {
            None
        } else {
            let before = self.store.freshness(repo.id).await?;
            let previous = Behind::of(repo, before.as_ref());
            Some(
                previous
                    .filter(|b| b.refs > 0)
                    .and_then(|b| b.since)
                    .unwrap_or(at),
            )
        };
        self.store.record_behind(repo.id, behind, at, since).await?;
        Ok(())
    }

    /// Every repository's recorded freshness (one query), for lists.
    pub async fn all_freshness(&self) -> Result<HashMap<i64, Freshness>, HubError> {
        Ok(self.store.all_freshness().await?.into_iter().collect())
    }

    pub async fn freshness(&self, repo_id: i64) -> Result<Option<Freshness>, HubError> {
        Ok(self.store.freshness(repo_id).await?)
    }

    /// The repository's ref filter as set (empty: every branch and tag).
    pub async fn ref_filter(&self, repo_id: i64) -> Result<RefFilterSpec, HubError> {
        Ok(self.store.ref_filter(repo_id).await?.unwrap_or_default())
    }

    /// Every repository's ref filter that is set, by id.
    pub async fn ref_filters(&self) -> Result<HashMap<i64, RefFilterSpec>, HubError> {
        Ok(self.store.ref_filters().await?.into_iter().collect())
    }

    /// Sets a repository's ref filter (checked first; an empty one removes it). The next sync
    /// applies it: refs it leaves out are removed then (with backups), and never fetched.
    pub(crate) async fn set_ref_filter(
        &self,
        repo_id: i64,
        spec: &RefFilterSpec,
    ) -> Result<(), HubError> {
        let checked = check_filter(spec)?;
        self.store
            .set_ref_filter(repo_id, Some(&checked.spec()))
            .await?;
        Ok(())
    }

    /// A repository's backups, newest first.
    pub async fn list_backups(&self, repo: &Repo, limit: i64) -> Result<Vec<Backup>, HubError> {
        Ok(self.store.list_backups(repo.id, limit).await?)
    }

    /// The backups the given runs made (to link a sync history to them).
    pub async fn backups_of_runs(&self, run_ids: &[i64]) -> Result<Vec<Backup>, HubError> {
        if run_ids.is_empty() {
            return Ok(Vec::new());
        }
        Ok(self.store.backups_of_runs(run_ids).await?)
    }

    pub async fn get_backup(&self, repo: &Repo, id: i64) -> Result<Backup, HubError> {
        self.store
            .get_backup(repo.id, id)
            .await?
            .ok_or_else(|| backup_not_found(repo, id))
    }

    /// Restores a backup of a primary as a new branch: `branch`, or
    /// `restored/<name>-<unix time of the backup>`. A mirror's branches follow its upstream
    /// (the next sync would remove a new one): download the bundle instead. Recorded as a run
    /// of the repository, like a push.
    pub async fn restore_backup(
        &self,
        repo: &Repo,
        id: i64,
        branch: Option<&str>,
    ) -> Result<(String, Backup), HubError> {
        let backup = self.get_backup(repo, id).await?;
        if repo.mode != Mode::Migrate || repo.state != RepoState::Ready {
            return Err(HubError::InvalidState(format!(
                "{}/{} is a mirror: its branches follow the upstream, so a restored branch would be removed by the next sync. Download the backup as a bundle (GET …/backups/{id}/bundle) and push it to the upstream, or promote the mirror first",
                repo.owner, repo.name
            )));
        }
        let branch = match branch.map(str::trim).filter(|b| !b.is_empty()) {
            Some(b) => b.strip_prefix("refs/heads/").unwrap_or(b).to_owned(),
            None => {
                let short = backup
                    .ref_name
                    .strip_prefix("refs/heads/")
                    .or_else(|| backup.ref_name.strip_prefix("refs/tags/"))
                    .unwrap_or(&backup.ref_name);
                format!("restored/{short}-{}", backup.created_at.timestamp())
            }
        };
        let path = self.repo_path(repo.id);
        let before = self.engine.snapshot(&path).await?;
        let started_at = Utc::now();
        let created = self
            .engine
            .create_branch(&path, &branch, &backup.old_oid)
            .await
            .map_err(|e| match e {
                mirrorhub_git::GitError::Failed { .. } => HubError::invalid(
                    ErrorCode::InvalidRequest,
                    "branch",
                    format!("{branch:?} is not a branch name git accepts"),
                ),
                other => other.into(),
            })?;
        if !created {
            return Err(HubError::InvalidState(format!(
                "a branch named {branch} exists already: give another name as \"branch\""
            )));
        }
        self.record_push(repo, &before, started_at).await?;
        tracing::info!(repo_id = repo.id, backup = id, %branch, "backup restored as a branch");
        Ok((format!("refs/heads/{branch}"), backup))
    }

    /// `git bundle create` of a backup's history, ready to spawn (stdout is the bundle).
    pub async fn backup_bundle(
        &self,
        repo: &Repo,
        id: i64,
    ) -> Result<(tokio::process::Command, Backup), HubError> {
        let backup = self.get_backup(repo, id).await?;
        let cmd = self
            .engine
            .bundle_command(&self.repo_path(repo.id), &backup.backup_ref);
        Ok((cmd, backup))
    }

    /// Removes backups older than the retention at `now`: their refs, then their rows.
    /// Returns how many went. Run by the scheduler's housekeeping (and `mirrorhub admin
    /// expire-backups`, which may name another `now`).
    pub async fn expire_backups(&self, now: DateTime<Utc>) -> Result<u64, HubError> {
        expire_backups(
            self.store.as_ref(),
            &self.engine,
            &self.config.repos_dir,
            self.config.fidelity.backup_retention,
            now,
        )
        .await
    }

    /// The scheduler's silence checks due at `now`: lists each webhook-connected mirror's
    /// upstream (no transfer), records how far behind it is, and decides about silence.
    /// Returns how many were checked.
    pub async fn check_silence(&self, now: DateTime<Utc>, limit: i64) -> Result<usize, HubError> {
        let every = self.config.fidelity.silence_check;
        let due = self.store.due_silence_checks(now, every, limit).await?;
        let mut checked = 0;
        for repo_id in due {
            let Some(repo) = self.store.get_repo_by_id(repo_id).await? else {
                continue;
            };
            if let Err(e) = self.check_one_silence(&repo, now).await {
                tracing::warn!(repo_id, error = %e, "the silence check failed");
            }
            checked += 1;
        }
        Ok(checked)
    }

    async fn check_one_silence(&self, repo: &Repo, now: DateTime<Utc>) -> Result<(), HubError> {
        let stored = self.store.freshness(repo.id).await?.unwrap_or_default();
        let grace = chrono::Duration::from_std(self.config.fidelity.silence_check / 10)
            .unwrap_or(chrono::Duration::minutes(6));
        let delivered_since =
            |t: DateTime<Utc>| repo.webhook.last_delivery_at.is_some_and(|d| d >= t);
        let mut silence = Silence {
            checked_at: Some(now),
            suspected_at: None,
            silent_since: stored.silent_since,
            notified_at: stored.silence_notified_at,
        };
        let mut told: Option<Option<String>> = None;
        // A delivery after the silence began: the webhook speaks again.
        if silence.silent_since.is_some_and(delivered_since) {
            tracing::info!(repo_id = repo.id, "the webhook delivers again");
            silence.silent_since = None;
            silence.notified_at = None;
            told = Some(None);
        }
        if let Some(suspected) = stored.silence_suspected_at {
            if delivered_since(suspected - grace) {
                // The push was delivered, only late.
            } else if now >= suspected + grace {
                if self.mark_silent(repo, &mut silence, now) {
                    told = Some(Some(format!(
                            "the upstream changed at {} without a push webhook delivery; the mirror is polled every {} until one arrives again: check the webhook's recent deliveries on the forge",
                            suspected.format("%Y-%m-%d %H:%M UTC"),
                            short_duration(self.config.fidelity.silence_check)
                    )));
                }
            } else {
                silence.suspected_at = Some(suspected);
            }
        }
        let behind = self.listing_behind(repo).await;
        match behind {
            Ok(behind) => {
                self.record_behind(repo, behind as i64, now).await?;
                if behind > 0 {
                    // Changed upstream: the webhook may have missed it. Decided after the
                    // grace period (its delivery may be on its way); the change is fetched
                    // now either way (polling).
                    if silence.silent_since.is_none() && silence.suspected_at.is_none() {
                        silence.suspected_at = Some(now);
                    }
                    self.store
                        .enqueue_sync(repo.id, Trigger::Schedule, now)
                        .await?;
                    self.wake.notify_one();
                }
            }
            Err(e) => {
                tracing::debug!(repo_id = repo.id, error = %e, "the silence check could not list the upstream")
            }
        }
        self.store.set_silence(repo.id, &silence).await?;
        // Told after it is recorded: the notification outbox's episode keeps it to once per
        // silence even if this check ran twice.
        if let Some(silence) = told {
            self.note_webhook(repo.id, silence.as_deref()).await;
        }
        Ok(())
    }

    /// Marks the webhook silent; true the first time for this silence (to be told).
    fn mark_silent(&self, repo: &Repo, silence: &mut Silence, now: DateTime<Utc>) -> bool {
        silence.suspected_at = None;
        if silence.silent_since.is_none() {
            silence.silent_since = Some(now);
        }
        if silence.notified_at.is_some() {
            return false;
        }
        tracing::warn!(repo_id = repo.id, repo = %format!("{}/{}", repo.owner, repo.name), "the upstream changed without a webhook delivery: the webhook is silent; polling every {}s until a delivery arrives", self.config.fidelity.silence_check.as_secs());
        silence.notified_at = Some(now);
        true
    }

    /// How many refs a sync of `repo` would change now (one listing, no transfer).
    async fn listing_behind(&self, repo: &Repo) -> Result<usize, HubError> {
        let (url, _) = UpstreamUrl::parse(&repo.upstream_url)
            .map_err(|e| HubError::invalid(ErrorCode::InvalidUrl, "url", e.to_string()))?;
        let filter = self.stored_filter(repo).await?;
        let login = self.login_for(repo).await?;
        Ok(self
            .engine
            .behind(&url, login.auth(), &self.repo_path(repo.id), &filter)
            .await?)
    }
}

/// Removes the backups made before `now - retention` from the repositories under
/// `repos_dir` and from the store; returns how many went. A ref that cannot be removed stops
/// the round (its row stays, so it is tried again).
pub async fn expire_backups(
    store: &dyn mirrorhub_store::Store,
    engine: &mirrorhub_git::GitEngine,
    repos_dir: &std::path::Path,
    retention: Duration,
    now: DateTime<Utc>,
) -> Result<u64, HubError> {
    let retention = chrono::Duration::from_std(retention).unwrap_or(chrono::Duration::days(30));
    let cutoff = now - retention;
    let mut removed = 0;
    loop {
        let batch = store.expired_backups(cutoff, 500).await?;
        if batch.is_empty() {
            return Ok(removed);
        }
        for backup in batch {
            let path = repos_dir.join(format!("{}.git", backup.repo_id));
            if tokio::fs::try_exists(&path).await.unwrap_or(false) {
                if let Err(e) = engine
                    .delete_backup_ref(&path, &backup.backup_ref, &backup.old_oid)
                    .await
                {
                    tracing::warn!(repo_id = backup.repo_id, error = %e, "an expired backup ref could not be removed; it is tried again later");
                    return Ok(removed);
                }
            }
            if store.delete_backup(backup.id).await? {
                removed += 1;
            }
        }
    }
}

/// Checks a filter as a user wrote it: `invalid_request` naming the pattern
/// (`refs.include[1]`).
pub(crate) fn check_filter(spec: &RefFilterSpec) -> Result<RefFilter, HubError> {
    RefFilter::parse(spec).map_err(|e| {
        HubError::invalid_at(
            ErrorCode::InvalidRequest,
            e.field.clone(),
            format!("{}: {}", e.field, e.reason),
        )
    })
}

fn new_backup(b: &BackupRef) -> NewBackup {
    NewBackup {
        ref_name: b.ref_name.clone(),
        old_oid: b.old.clone(),
        backup_ref: b.backup_ref.clone(),
        created_at: DateTime::from_timestamp(b.created_at, 0).unwrap_or_else(Utc::now),
    }
}

fn backup_not_found(repo: &Repo, id: i64) -> HubError {
    HubError::BackupNotFound(format!(
        "{}/{} has no backup {id} (backups expire after the retention period)",
        repo.owner, repo.name
    ))
}

/// `1h`, `30m`, `45s`: an interval as an operator writes it.
fn short_duration(d: Duration) -> String {
    match d.as_secs() {
        s if s >= 3600 && s % 3600 == 0 => format!("{}h", s / 3600),
        s if s >= 60 && s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

/// The filter a stored spec (none: every branch and tag) makes; see [`Hub::stored_filter`].
fn filter_of(spec: Option<&RefFilterSpec>) -> Result<RefFilter, HubError> {
    match spec {
        Some(spec) => RefFilter::parse(spec).map_err(|e| {
            HubError::InvalidState(format!(
                "the repository's ref filter is no longer valid ({e}): set \"refs\" again"
            ))
        }),
        None => Ok(RefFilter::default()),
    }
}

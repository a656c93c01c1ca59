//! What a mirror keeps beyond its refs: backups of the tips syncs overwrote, the ref filter,
//! how far behind its upstream the last listing found it, and whether its webhook went
//! silent. A sub-trait of [`Store`](crate::Store), implemented by both backends in their
//! `fidelity` modules and checked by the conformance suite.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use mirrorhub_core::RefFilterSpec;

use crate::StoreError;

/// A backup of a tip a sync overwrote or deleted, kept under `backup_ref` in the repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backup {
    pub id: i64,
    pub repo_id: i64,
    /// The run that made it; `None` when it was found after a crash, or its run is gone.
    pub run_id: Option<i64>,
    /// The branch or tag whose tip it keeps, e.g. `refs/heads/main`.
    pub ref_name: String,
    pub old_oid: String,
    /// `refs/mirrorhub/backup/<unix time>/<ref_name>`.
    pub backup_ref: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewBackup {
    pub ref_name: String,
    pub old_oid: String,
    pub backup_ref: String,
    pub created_at: DateTime<Utc>,
}

/// A repository's standing against its upstream, as its last listing found it, and its
/// webhook's silence.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Freshness {
    /// Refs that differed at `checked_at` (0: in sync).
    pub behind_refs: i64,
    pub checked_at: Option<DateTime<Utc>>,
    /// The first check that found it behind, while no check since found it in sync.
    pub behind_since: Option<DateTime<Utc>>,
    /// The last cheap check of a webhook-connected mirror.
    pub silence_checked_at: Option<DateTime<Utc>>,
    /// When a check found the upstream changed with no delivery since the last sync: the
    /// webhook is silent if none arrives within the grace period after.
    pub silence_suspected_at: Option<DateTime<Utc>>,
    /// Since when the webhook has been found silent (cleared by the check after a delivery).
    pub silent_since: Option<DateTime<Utc>>,
    /// When the silence was announced (once per silence).
    pub silence_notified_at: Option<DateTime<Utc>>,
}

/// The silence columns of [`Freshness`], written together by the one scheduler.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Silence {
    pub checked_at: Option<DateTime<Utc>>,
    pub suspected_at: Option<DateTime<Utc>>,
    pub silent_since: Option<DateTime<Utc>>,
    pub notified_at: Option<DateTime<Utc>>,
}

#[async_trait]
pub trait FidelityStore: Send + Sync {
    /// Records backups of a repository (made by `run_id`, if known). A backup ref recorded
    /// already is left as it is.
    async fn record_backups(
        &self,
        repo_id: i64,
        run_id: Option<i64>,
        backups: &[NewBackup],
    ) -> Result<(), StoreError>;
    /// A repository's backups, newest first.
    async fn list_backups(&self, repo_id: i64, limit: i64) -> Result<Vec<Backup>, StoreError>;
    async fn get_backup(&self, repo_id: i64, id: i64) -> Result<Option<Backup>, StoreError>;
    /// The backups these runs made.
    async fn backups_of_runs(&self, run_ids: &[i64]) -> Result<Vec<Backup>, StoreError>;
    /// Backups of any repository made before `before`, oldest first, at most `limit`.
    async fn expired_backups(
        &self,
        before: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<Backup>, StoreError>;
    /// Forgets a backup. `false` if there was none.
    async fn delete_backup(&self, id: i64) -> Result<bool, StoreError>;

    /// The repository's ref filter; `None` keeps every branch and tag.
    async fn ref_filter(&self, repo_id: i64) -> Result<Option<RefFilterSpec>, StoreError>;
    /// Sets (or with `None`, or an empty spec, removes) the repository's ref filter.
    /// [`StoreError::NotFound`] if there is no such repository.
    async fn set_ref_filter(
        &self,
        repo_id: i64,
        spec: Option<&RefFilterSpec>,
    ) -> Result<(), StoreError>;
    /// Every repository's ref filter that is set, by repository id.
    async fn ref_filters(&self) -> Result<Vec<(i64, RefFilterSpec)>, StoreError>;

    /// Records what a listing found: `behind` refs differ at `at`. `behind_since` becomes
    /// `since` (the caller decides whether an earlier one still holds).
    async fn record_behind(
        &self,
        repo_id: i64,
        behind: i64,
        at: DateTime<Utc>,
        since: Option<DateTime<Utc>>,
    ) -> Result<(), StoreError>;
    async fn freshness(&self, repo_id: i64) -> Result<Option<Freshness>, StoreError>;
    /// Every repository's recorded freshness, by repository id (for lists).
    async fn all_freshness(&self) -> Result<Vec<(i64, Freshness)>, StoreError>;
    /// Writes the silence columns of a repository.
    async fn set_silence(&self, repo_id: i64, silence: &Silence) -> Result<(), StoreError>;
    /// Mirrors whose webhook is connected (a delivery arrived once), copied, not paused, with
    /// neither a delivery nor a silence check since `now - every` (a delivery shows the
    /// webhook alive; checking right after one would only race the sync it triggered), or
    /// suspected silent and not checked for a tenth of that: at most `limit`, least recently
    /// checked first.
    async fn due_silence_checks(
        &self,
        now: DateTime<Utc>,
        every: Duration,
        limit: i64,
    ) -> Result<Vec<i64>, StoreError>;
}

/// A stored ref filter (JSON, as `set_ref_filter` wrote it).
pub(crate) fn spec_from_text(text: &str) -> Result<RefFilterSpec, StoreError> {
    serde_json::from_str(text)
        .map_err(|e| StoreError::Corrupt(format!("a ref filter that is not JSON: {e}")))
}

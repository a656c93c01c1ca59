//! Push mirrors: downstream targets of a repository, their durable queue (`push_jobs`, the
//! sync queue's discipline in a table of its own) and their runs.
//!
//! Invariants both backends keep (checked by `tests/push_mirrors.rs` on both):
//! - at most one *pending* job per target, so requests coalesce;
//! - a job is handed out only while no other job of the same target holds a live lease, and
//!   only once its repository's first copy is complete (`state = ready`);
//! - a finished run, its ref record, the target's status and what the target's refs are known
//!   to be downstream change together (one transaction).

use std::collections::BTreeMap;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use mirrorhub_core::push_mirror::{PushRefResult, PushTrigger};
use mirrorhub_core::{Credentials, Outcome};

use crate::StoreError;

/// A push mirror to record.
#[derive(Debug, Clone)]
pub struct NewPushMirror {
    pub repo_id: i64,
    /// Normalised, without credentials.
    pub url: String,
    pub credentials: Option<Credentials>,
    /// SSH downstreams: the owner's key to log in with ([`StoreError::NotFound`] if missing).
    pub ssh_key_id: Option<i64>,
    /// SSH downstreams: the pinned host keys, as `known_hosts` lines.
    pub known_hosts: Option<String>,
    /// `None`: every branch.
    pub only_branches: Option<Vec<String>>,
    pub tags: bool,
    pub prune: bool,
    pub force: bool,
    pub enabled: bool,
    pub sync_interval_secs: i64,
    /// When the fallback scheduler first queues it; `None` while disabled.
    pub next_push_at: Option<DateTime<Utc>>,
}

/// A push mirror as stored. `Debug` shows no secret (`Credentials` redacts its own).
#[derive(Debug, Clone)]
pub struct PushMirror {
    pub id: i64,
    pub repo_id: i64,
    pub url: String,
    pub credentials: Option<Credentials>,
    /// `None` also when its key was deleted: runs then fail to log in, saying so.
    pub ssh_key_id: Option<i64>,
    pub known_hosts: Option<String>,
    pub only_branches: Option<Vec<String>>,
    pub tags: bool,
    pub prune: bool,
    pub force: bool,
    pub enabled: bool,
    pub sync_interval_secs: i64,
    pub next_push_at: Option<DateTime<Utc>>,
    pub last_run_at: Option<DateTime<Utc>>,
    pub last_success_at: Option<DateTime<Utc>>,
    pub last_error_code: Option<String>,
    pub last_error_message: Option<String>,
    pub consecutive_failures: i32,
    /// The refs the last run that listed the downstream left alone because they moved there.
    pub diverged: Vec<String>,
    pub created_at: DateTime<Utc>,
}

/// A change of a push mirror's settings. `None` fields stay as they are.
#[derive(Debug, Clone, Default)]
pub struct PushMirrorUpdate {
    pub url: Option<String>,
    /// `Some(None)` forgets the credentials.
    pub credentials: Option<Option<Credentials>>,
    pub ssh_key_id: Option<Option<i64>>,
    pub known_hosts: Option<Option<String>>,
    /// `Some(None)`: every branch again.
    pub only_branches: Option<Option<Vec<String>>>,
    pub tags: Option<bool>,
    pub prune: Option<bool>,
    pub force: Option<bool>,
    pub enabled: Option<bool>,
    pub sync_interval_secs: Option<i64>,
    pub next_push_at: Option<Option<DateTime<Utc>>>,
    /// A new downstream: forget what is known about the old one's refs and its divergence.
    pub forget_refs: bool,
}

/// A claimed push job: the worker that claimed it holds its lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushJob {
    pub id: i64,
    pub mirror_id: i64,
    pub repo_id: i64,
    pub trigger: PushTrigger,
    /// How many times the job has been claimed, this claim included.
    pub attempts: i32,
}

/// One run of a push mirror.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushRun {
    pub id: i64,
    pub mirror_id: i64,
    pub trigger: PushTrigger,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub outcome: Outcome,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    /// What the run did to each ref, in the order recorded.
    pub refs: Vec<PushRefResult>,
}

/// What a finished push run reports to [`PushMirrorStore::finish_push_run`].
#[derive(Debug, Clone)]
pub struct PushRunResult {
    pub finished_at: DateTime<Utc>,
    /// `Success`, `Unchanged` or `Failed`; `Running` is refused.
    pub outcome: Outcome,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    pub refs: Vec<PushRefResult>,
    /// The target's diverged refs now; `None` keeps the ones recorded (the run could not tell).
    pub diverged: Option<Vec<String>>,
    /// Refs now known to be at these values downstream (pushed, or found equal).
    pub known: Vec<(String, String)>,
    /// Refs no longer known downstream (deleted there by the run).
    pub forgotten: Vec<String>,
    pub next_push_at: Option<DateTime<Utc>>,
}

/// The push mirror half of the store; a supertrait of [`crate::Store`].
#[async_trait]
pub trait PushMirrorStore: Send + Sync {
    /// [`StoreError::NotFound`] if the repository does not exist.
    async fn create_push_mirror(
        &self,
        new: &NewPushMirror,
        now: DateTime<Utc>,
    ) -> Result<PushMirror, StoreError>;
    async fn get_push_mirror(&self, id: i64) -> Result<Option<PushMirror>, StoreError>;
    /// A repository's push mirrors, oldest first.
    async fn list_push_mirrors(&self, repo_id: i64) -> Result<Vec<PushMirror>, StoreError>;
    /// `None` if there is no such push mirror.
    async fn update_push_mirror(
        &self,
        id: i64,
        update: &PushMirrorUpdate,
    ) -> Result<Option<PushMirror>, StoreError>;
    /// Deletes a push mirror with its jobs, runs and known refs. `false` if there was none.
    async fn delete_push_mirror(&self, id: i64) -> Result<bool, StoreError>;

    /// Asks for a run of the target no earlier than `run_after`. `true` if a new job was
    /// queued; `false` if it was folded into the target's pending job (which then runs at the
    /// earlier time). [`StoreError::NotFound`] if there is no such target.
    async fn enqueue_push(
        &self,
        mirror_id: i64,
        trigger: PushTrigger,
        run_after: DateTime<Utc>,
    ) -> Result<bool, StoreError>;
    /// [`enqueue_push`](Self::enqueue_push) for every enabled target of the repository, in
    /// one statement. Returns how many new jobs were queued.
    async fn enqueue_repo_pushes(
        &self,
        repo_id: i64,
        trigger: PushTrigger,
        run_after: DateTime<Utc>,
    ) -> Result<u64, StoreError>;
    /// Claims the oldest due push job (pending, or whose lease expired) of a target with no
    /// other live lease, whose repository's first copy is complete. The claim lasts until
    /// `now + lease`.
    async fn claim_push_job(
        &self,
        worker: &str,
        now: DateTime<Utc>,
        lease: Duration,
    ) -> Result<Option<PushJob>, StoreError>;
    /// `false` if the job is no longer this worker's.
    async fn renew_push_lease(
        &self,
        job_id: i64,
        worker: &str,
        now: DateTime<Utc>,
        lease: Duration,
    ) -> Result<bool, StoreError>;
    /// Removes a finished job. Does nothing if the job is no longer this worker's.
    async fn complete_push_job(&self, job_id: i64, worker: &str) -> Result<(), StoreError>;
    /// Puts a job back to run after `run_after`, or folds it into the target's pending job.
    async fn release_push_job(
        &self,
        job_id: i64,
        worker: &str,
        run_after: DateTime<Utc>,
    ) -> Result<(), StoreError>;
    /// At start-up of a single-process hub (SQLite): every push claim is stale, put them back
    /// (coalescing per target). On PostgreSQL a no-op returning 0.
    async fn release_all_push_claims(&self) -> Result<u64, StoreError>;
    /// Queues a `schedule` job for up to `limit` enabled targets whose `next_push_at <= now`
    /// and that have no job at all. Returns how many were queued.
    async fn enqueue_due_pushes(&self, now: DateTime<Utc>, limit: i64) -> Result<u64, StoreError>;

    /// Records the start of a run (outcome `running`) and the target's `last_run_at`.
    async fn start_push_run(
        &self,
        mirror_id: i64,
        trigger: PushTrigger,
        now: DateTime<Utc>,
    ) -> Result<i64, StoreError>;
    /// Closes the target's runs still `running` as failed with `interrupted` (their worker
    /// died). Called by the worker that holds the target's claim.
    async fn fail_interrupted_push_runs(
        &self,
        mirror_id: i64,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError>;
    /// Records the end of a run, its refs, the target's status and known refs, in one
    /// transaction. On `Success`/`Unchanged` the error and failure count are cleared and
    /// `last_success_at` set; on `Failed` the error is set and the count goes up.
    async fn finish_push_run(
        &self,
        run_id: i64,
        mirror_id: i64,
        result: &PushRunResult,
    ) -> Result<(), StoreError>;
    /// A target's latest runs, newest first, each with its refs.
    async fn list_push_runs(&self, mirror_id: i64, limit: i64) -> Result<Vec<PushRun>, StoreError>;
    /// What the target's runs last left each ref at downstream.
    async fn pushed_refs(&self, mirror_id: i64) -> Result<BTreeMap<String, String>, StoreError>;
}

/// `only_branches` as stored: one pattern per line (patterns never hold a line break).
pub(crate) fn join_lines(items: &[String]) -> String {
    items.join("\n")
}

pub(crate) fn split_lines(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

pub(crate) fn parse_push_trigger(s: &str) -> Result<PushTrigger, StoreError> {
    crate::parse_text("push trigger", s, PushTrigger::parse)
}

pub(crate) fn parse_push_kind(
    s: &str,
) -> Result<mirrorhub_core::push_mirror::PushRefKind, StoreError> {
    crate::parse_text(
        "push ref kind",
        s,
        mirrorhub_core::push_mirror::PushRefKind::parse,
    )
}

/// How many rows a multi-row INSERT of a run's refs carries (7 bound values each).
pub(crate) const REFS_PER_INSERT: usize = 1000;

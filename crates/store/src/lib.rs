//! mirrorhub's storage: the [`Store`] trait, its SQLite and PostgreSQL implementations, and
//! the durable sync queue.
//!
//! The rest of the program sees only [`Store`] (as `Arc<dyn Store>`, made by [`connect`]) and
//! the domain types of `mirrorhub_core`. Upstream credentials are encrypted at rest here, with
//! the [`SecretKey`] given to [`connect`]; nothing outside this crate handles ciphertext.
//!
//! Invariants the implementations keep, and the conformance suite (`tests/conformance.rs`)
//! checks against both backends:
//! - owner/name is unique regardless of ASCII case;
//! - at most one *pending* (unclaimed) job per repository, so sync requests coalesce;
//! - a job is handed to a worker only while no other job of the same repository holds a live
//!   lease, also with many claimers in several processes;
//! - a finished run, its journal of ref changes and the repository's status change together
//!   (one transaction).

#![forbid(unsafe_code)]

mod crypto;
mod fidelity;
mod mirror_sets;
mod notifications;
mod postgres;
mod push_mirrors;
mod sqlite;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, TimeDelta, Utc};
use mirrorhub_core::{
    Access, AccountKind, Credentials, Mode, Outcome, OwnerName, RefChange, RefChangeKind,
    RefFilterSpec, RepoName, RepoState, Trigger, Visibility,
};

pub use crypto::{CryptoError, SecretKey};
pub use fidelity::{Backup, FidelityStore, Freshness, NewBackup, Silence};
pub use mirror_sets::{MemberState, MirrorSet, MirrorSetStore, NewMirrorSet, SetMember};
pub use notifications::{
    ClaimedDelivery, DeliveryAttempt, DeliveryStatus, NewNotificationTarget, NotificationDelivery,
    NotificationFacts, NotificationStore, NotificationTarget, NotificationTargetUpdate,
    Observation,
};
pub use push_mirrors::{
    NewPushMirror, PushJob, PushMirror, PushMirrorStore, PushMirrorUpdate, PushRun, PushRunResult,
};
pub use secrecy::SecretString;

/// The error code recorded on runs that were still running when the hub stopped.
pub const INTERRUPTED_CODE: &str = "interrupted";
/// The message recorded on runs that were still running when the hub stopped.
pub const INTERRUPTED_MESSAGE: &str = "the hub stopped during this sync; it was run again";

/// What went wrong in the store. "Taken" ([`StoreError::Conflict`]) and "missing"
/// ([`StoreError::NotFound`]) are answers a caller can act on; the other variants mean the store
/// is broken or misconfigured.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A uniqueness rule refused the write, e.g. the owner/name is taken.
    #[error("a record with the same key exists already")]
    Conflict,
    /// The record (or the record it refers to) does not exist.
    #[error("no such record")]
    NotFound,
    /// The database failed or could not be reached.
    #[error("the database failed")]
    Database(#[source] sqlx::Error),
    /// The schema migrations could not be applied.
    #[error("the database schema could not be migrated")]
    Migrate(#[source] sqlx::migrate::MigrateError),
    /// Credentials could not be encrypted or decrypted (a wrong key, or damaged data).
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    /// The database holds a value this version of mirrorhub does not understand.
    #[error("the database holds a value this version cannot read: {0}")]
    Corrupt(String),
    /// The caller passed a value the store cannot record.
    #[error("invalid argument: {0}")]
    Invalid(&'static str),
    /// The database URL names no backend the store knows. Carries only the scheme, never the
    /// URL (it may contain a password).
    #[error("unsupported database URL scheme {0:?}: use sqlite:PATH or postgres://...")]
    UnsupportedUrl(String),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        if let sqlx::Error::Database(db) = &e {
            if db.is_unique_violation() {
                return StoreError::Conflict;
            }
            if db.is_foreign_key_violation() {
                return StoreError::NotFound;
            }
        }
        StoreError::Database(e)
    }
}

impl From<sqlx::migrate::MigrateError> for StoreError {
    fn from(e: sqlx::migrate::MigrateError) -> Self {
        StoreError::Migrate(e)
    }
}

/// A repository to create.
#[derive(Debug, Clone)]
pub struct NewRepo {
    pub owner: OwnerName,
    pub name: RepoName,
    pub mode: Mode,
    pub visibility: Visibility,
    pub description: String,
    /// Normalised, without credentials (`UpstreamUrl`'s `Display`).
    pub upstream_url: String,
    pub credentials: Option<Credentials>,
    pub sync_interval_secs: i64,
    /// The SSH key (an [`SshKey`]'s id) to reach an SSH upstream with; a missing key makes
    /// [`Store::create_repo`] fail with [`StoreError::NotFound`].
    pub ssh_key_id: Option<i64>,
    /// The SSH upstream's pinned host keys, as OpenSSH `known_hosts` lines (not secret).
    pub known_hosts: Option<String>,
}

/// A repository as stored. `Debug` shows no secret (`Credentials` redacts its own).
#[derive(Debug, Clone)]
pub struct Repo {
    pub id: i64,
    pub owner: String,
    pub name: String,
    pub mode: Mode,
    pub visibility: Visibility,
    pub description: String,
    pub upstream_url: String,
    pub credentials: Option<Credentials>,
    /// The SSH key the upstream is reached with. A key in use cannot be deleted.
    pub ssh_key_id: Option<i64>,
    /// The SSH upstream's pinned host keys, as OpenSSH `known_hosts` lines.
    pub known_hosts: Option<String>,
    pub state: RepoState,
    pub progress_phase: Option<String>,
    pub progress_percent: Option<i32>,
    pub sync_interval_secs: i64,
    pub last_sync_at: Option<DateTime<Utc>>,
    pub last_success_at: Option<DateTime<Utc>>,
    pub next_sync_at: Option<DateTime<Utc>>,
    pub last_error_code: Option<String>,
    pub last_error_message: Option<String>,
    pub consecutive_failures: i32,
    pub branches: i64,
    pub tags: i64,
    pub head_ref: Option<String>,
    pub created_at: DateTime<Utc>,
    /// Why the scheduler stopped retrying (repeated permanent failures); `None` when active.
    pub paused_reason: Option<String>,
    /// The secret of the repository's own webhook URL. Every repository has one (made when it
    /// is created); `None` only if a row predates it and the start-up backfill has not run.
    pub webhook_secret: Option<SecretString>,
    pub webhook: WebhookState,
    pub lfs: RepoLfs,
}

/// A repository's Git LFS settings and the last fetch's trouble.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoLfs {
    pub enabled: bool,
    /// The upstream LFS endpoint a user set; `None`: found from the upstream.
    pub url: Option<String>,
    /// Why objects are missing since the last fetch; `None` when none are.
    pub last_error: Option<String>,
}

/// How many LFS objects a repository's refs need, and how many of them the hub lacks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LfsCounts {
    pub objects: i64,
    /// Bytes of the objects the hub has.
    pub bytes: i64,
    pub missing: i64,
}

/// One LFS object a repository needs: `(oid, size)`.
pub type LfsObject = (String, i64);

/// What the hub knows about a repository's push webhook.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WebhookState {
    /// The last authenticated delivery for this repository (any event, pings included).
    pub last_delivery_at: Option<DateTime<Utc>>,
    /// The forge that sent it (`mirrorhub_webhooks::Forge::as_str`).
    pub last_forge: Option<String>,
    pub hook: WebhookHook,
}

/// A webhook the hub manages on the upstream itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum WebhookHook {
    /// None was created (the upstream is not on a forge the hub can manage, or no token).
    #[default]
    None,
    /// Created through the forge's API (`forge`: `github`, `gitlab`, `gitea`), with its id there.
    Registered { forge: String, id: String },
    /// Creating it failed; the message says why (shown so the user can add it by hand).
    Failed(String),
}

/// One authenticated webhook delivery, as the hub decided to handle it.
#[derive(Debug, Clone)]
pub struct NewDelivery {
    pub forge: String,
    /// The forge's delivery id; a delivery without one is never taken for a replay.
    pub delivery_id: Option<String>,
    pub event: String,
    /// The repositories it concerns, each with what was done; may be empty (nothing matched).
    pub entries: Vec<DeliveryEntry>,
}

/// What [`Store::record_delivery`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryOutcome {
    /// The delivery id was seen in the replay window: nothing was written.
    Duplicate,
    /// Recorded; the queued syncs (or the pending ones they merged into) become due at these
    /// times.
    Recorded { syncs_due: Vec<DateTime<Utc>> },
}

#[derive(Debug, Clone)]
pub struct DeliveryEntry {
    pub repo_id: i64,
    /// Queue a webhook-triggered sync (coalescing with a pending one).
    pub sync: bool,
    /// The log line's result, e.g. `sync queued`.
    pub result: String,
}

/// A line of a repository's delivery log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub id: i64,
    pub repo_id: i64,
    pub received_at: DateTime<Utc>,
    pub forge: String,
    pub event: String,
    pub delivery_id: Option<String>,
    pub result: String,
}

/// A claimed job: the worker that claimed it holds its lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    pub id: i64,
    pub repo_id: i64,
    pub trigger: Trigger,
    /// How many times the job has been claimed, this claim included.
    pub attempts: i32,
}

/// What a worker reads before it syncs a repository ([`Store::sync_context`]).
#[derive(Debug, Clone)]
pub struct SyncContext {
    pub repo: Repo,
    /// The repository's ref filter, if it has one.
    pub ref_filter: Option<RefFilterSpec>,
    /// The GitHub App installation of the first mirror set (by id) that holds the repository
    /// and has one: its syncs log in with that installation's token.
    pub set_installation: Option<i64>,
}

/// A run [`Store::open_run`] started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OpenedRun {
    pub id: i64,
    /// Runs of the repository a dead worker had left `running`, closed as interrupted.
    pub interrupted: u64,
}

/// A run [`Store::finish_unchanged_job`] recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnchangedRun {
    pub id: i64,
    /// Runs of the repository a dead worker had left `running`, closed as interrupted.
    pub interrupted: u64,
    /// An episode of the repository's sync or LFS notifications is open: the success must be
    /// noted to close it (with the common case, none open, the hub skips that).
    pub episode_open: bool,
}

/// What a finished sync reports to [`Store::finish_run`].
#[derive(Debug, Clone)]
pub struct SyncResult {
    pub finished_at: DateTime<Utc>,
    /// `Success`, `Unchanged` or `Failed`; `Running` is refused.
    pub outcome: Outcome,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    /// Recorded in this order and listed back in this order.
    pub ref_changes: Vec<RefChange>,
    /// Recorded on the repository only on success.
    pub branches: i64,
    pub tags: i64,
    pub head_ref: Option<String>,
    pub next_sync_at: Option<DateTime<Utc>>,
    /// On failure: stop scheduling the repository (`paused_reason` becomes the error message)
    /// until a person syncs it or changes its settings. A success always un-pauses.
    pub pause: bool,
    /// On success: the mirror becomes the primary (mode `migrate`) in the same transaction,
    /// and its upstream credentials are forgotten (also its SSH key, which can then be
    /// deleted; the pinned host keys stay).
    pub promote: bool,
}

/// Repository counts for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RepoCounts {
    pub mirrors: i64,
    pub migrated: i64,
    pub cloning: i64,
    pub failed: i64,
    pub paused: i64,
    pub stale: i64,
}

/// A person's change to a repository's settings. `None` fields stay as they are. Any update
/// takes a paused repository back into the schedule.
#[derive(Debug, Clone, Default)]
pub struct RepoUpdate {
    /// `Some(None)` removes the stored credentials.
    pub credentials: Option<Option<Credentials>>,
    pub sync_interval_secs: Option<i64>,
    pub next_sync_at: Option<DateTime<Utc>>,
    pub description: Option<String>,
    pub visibility: Option<Visibility>,
    /// `Some(None)` stops using an SSH key; `Some(Some(id))` of a missing key makes
    /// [`Store::update_repo`] fail with [`StoreError::NotFound`].
    pub ssh_key_id: Option<Option<i64>>,
    /// `Some(None)` forgets the pinned host keys.
    pub known_hosts: Option<Option<String>>,
    pub lfs_enabled: Option<bool>,
    /// `Some(None)`: find the LFS endpoint from the upstream again.
    pub lfs_url: Option<Option<String>>,
}

/// A new SSH key pair of an owner (a deploy key the hub made, or an uploaded private key).
#[derive(Debug, Clone)]
pub struct NewSshKey {
    pub owner_id: i64,
    pub title: String,
    /// One OpenSSH public key line (`ssh-ed25519 AAAA... comment`).
    pub public_key: String,
    /// `SHA256:...`, as `ssh-keygen -l` shows it.
    pub fingerprint: String,
    /// The OpenSSH private key text, unencrypted. Sealed at rest like credentials; `Debug`
    /// shows nothing of it.
    pub private_key: SecretString,
}

/// An SSH key as listed: never the private key ([`Store::ssh_private_key`] opens that).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshKey {
    pub id: i64,
    pub owner_id: i64,
    /// The owner account's name.
    pub owner: String,
    pub title: String,
    pub public_key: String,
    pub fingerprint: String,
    pub created_at: DateTime<Utc>,
}

/// What [`Store::delete_ssh_key`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SshKeyDeletion {
    Deleted,
    NotFound,
    /// Repositories (full names `owner/name`, ordered as [`Store::list_repos`] orders them)
    /// still use it; nothing was deleted.
    InUse {
        repos: Vec<String>,
    },
}

/// A user or an organization. Owners of repositories share one namespace: a name is unique
/// among accounts regardless of ASCII case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub id: i64,
    pub name: String,
    pub kind: AccountKind,
    /// A user who administers the whole hub (never an organization).
    pub site_admin: bool,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
pub struct NewAccount {
    pub name: OwnerName,
    pub kind: AccountKind,
    pub site_admin: bool,
    /// A user's password as a PHC string (argon2id); never the password itself.
    pub password_hash: Option<String>,
}

/// A user's personal access token. Only the SHA-256 (hex) of the secret is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessToken {
    pub id: i64,
    pub user_id: i64,
    pub name: String,
    /// The most the token may do.
    pub scope: Access,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone)]
pub struct NewAccessToken {
    pub user_id: i64,
    pub name: String,
    pub token_sha256: String,
    pub scope: Access,
    pub expires_at: Option<DateTime<Utc>>,
}

/// A signed-in browser session of the web UI. The cookie holds the session id; only its
/// SHA-256 (hex) is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebSession {
    pub id_sha256: String,
    /// The synchronizer token every form of this session carries.
    pub csrf_token: String,
    /// The user signed in; `None` for the hub's admin token.
    pub user_id: Option<i64>,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// One sync of a repository, with its journal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncRun {
    pub id: i64,
    pub repo_id: i64,
    pub trigger: Trigger,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub outcome: Outcome,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    pub ref_changes: Vec<RefChange>,
    /// What went wrong beside a successful run (LFS objects that could not be fetched).
    pub warnings: Option<String>,
}

/// mirrorhub's storage. Both implementations pass the same conformance suite.
///
/// Time is always passed in (`now`), never read from the clock, so that schedules and leases
/// can be tested without waiting.
#[async_trait]
pub trait Store:
    MirrorSetStore + PushMirrorStore + NotificationStore + FidelityStore + Send + Sync
{
    /// Whether the database answers (readiness).
    async fn ping(&self) -> Result<(), StoreError>;

    /// Creates a repository in state `cloning`. [`StoreError::Conflict`] if the owner/name is
    /// taken, in any case.
    async fn create_repo(&self, new: NewRepo, now: DateTime<Utc>) -> Result<Repo, StoreError>;
    /// Looks a repository up by owner/name, ignoring ASCII case.
    async fn get_repo(&self, owner: &str, name: &str) -> Result<Option<Repo>, StoreError>;
    async fn get_repo_by_id(&self, id: i64) -> Result<Option<Repo>, StoreError>;
    /// The repositories with these ids that exist, in one query however many are asked for
    /// (a mirror set's page, or its every member), ordered by id. Ids repeated or unknown are
    /// ignored.
    async fn get_repos_by_ids(&self, ids: &[i64]) -> Result<Vec<Repo>, StoreError>;
    /// All repositories, ordered by owner then name (ignoring case).
    async fn list_repos(&self) -> Result<Vec<Repo>, StoreError>;
    /// Deletes a repository with its jobs, runs and their journals. `false` if there was none.
    async fn delete_repo(&self, id: i64) -> Result<bool, StoreError>;
    /// Records how far the running sync is. [`StoreError::NotFound`] if there is no such repo.
    async fn set_progress(
        &self,
        id: i64,
        phase: Option<&str>,
        percent: Option<i32>,
    ) -> Result<(), StoreError>;

    /// Asks for a sync of the repository no earlier than `run_after`. `true` if a new job was
    /// queued; `false` if the request was folded into the repository's pending job, which
    /// then runs at the earlier of the two times (and takes the trigger of the earlier one).
    /// [`StoreError::NotFound`] if there is no such repository.
    async fn enqueue_sync(
        &self,
        repo_id: i64,
        trigger: Trigger,
        run_after: DateTime<Utc>,
    ) -> Result<bool, StoreError>;
    /// Claims the oldest due job (`run_after <= now`) that is pending or whose lease has
    /// expired, among repositories where no other job holds a live lease. The claim lasts
    /// until `now + lease`; `attempts` counts this claim.
    async fn claim_job(
        &self,
        worker: &str,
        now: DateTime<Utc>,
        lease: Duration,
    ) -> Result<Option<Job>, StoreError>;
    /// Extends the lease to `now + lease`. `false` if the job is no longer this worker's
    /// (another took it over, or it is gone).
    async fn renew_lease(
        &self,
        job_id: i64,
        worker: &str,
        now: DateTime<Utc>,
        lease: Duration,
    ) -> Result<bool, StoreError>;
    /// Removes a finished job. Does nothing if the job is no longer this worker's.
    async fn complete_job(&self, job_id: i64, worker: &str) -> Result<(), StoreError>;
    /// Puts a job back in the queue to run after `run_after` (keeping its attempts). If the
    /// repository has a pending job already, this one is dropped instead (coalesced). Does
    /// nothing if the job is no longer this worker's.
    async fn release_job(
        &self,
        job_id: i64,
        worker: &str,
        run_after: DateTime<Utc>,
    ) -> Result<(), StoreError>;
    /// At start-up of a single-process hub (SQLite): every claim is stale, put them all back
    /// (coalescing per repository). Returns how many claims were released or folded. On
    /// PostgreSQL other replicas' leases are live: a no-op returning 0.
    async fn release_all_claims(&self) -> Result<u64, StoreError>;
    /// Queues a `schedule` job, to run at `now`, for up to `limit` mirrors whose
    /// `next_sync_at <= now` (oldest first) and that have no job at all (neither pending nor
    /// claimed: a running sync will set the next time itself). Returns how many were queued.
    /// Picks the mirrors whose freshness deadline (last success, or creation, plus interval)
    /// comes first, so catching up after downtime serves the stalest mirrors first.
    async fn enqueue_due(&self, now: DateTime<Utc>, limit: i64) -> Result<u64, StoreError>;
    /// How many mirrors became due in `(after, until]`: what the scheduler's pacer paces.
    async fn count_due_between(
        &self,
        after: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<u64, StoreError>;
    /// Queues a `recovery` job for every repository still waiting for its initial copy that
    /// has no pending job (after a crash between creating a repository and queueing it, or
    /// a lost job). Returns how many were queued. One statement: no repository is loaded.
    async fn requeue_cloning(&self, now: DateTime<Utc>) -> Result<u64, StoreError>;
    /// Counts for metrics, computed by the database (a mirror is stale when its last
    /// success, or its creation, is older than its interval plus `stale_grace`).
    async fn repo_counts(
        &self,
        now: DateTime<Utc>,
        stale_grace: Duration,
    ) -> Result<RepoCounts, StoreError>;
    /// Whether this process runs the scheduler. One replica does at a time (on PostgreSQL a
    /// session advisory lock held on a dedicated connection; if that process dies, another
    /// takes over at its next try). SQLite serves one process: always `true`.
    async fn lead_scheduler(&self) -> Result<bool, StoreError>;

    /// Records the start of a sync (outcome `running`) and sets the repository's
    /// `last_sync_at`. Returns the run's id.
    async fn start_run(
        &self,
        repo_id: i64,
        trigger: Trigger,
        now: DateTime<Utc>,
    ) -> Result<i64, StoreError>;
    /// Marks the repository's runs still `running` as failed with [`INTERRUPTED_CODE`]: they
    /// belong to workers that died. Called by a worker that holds the repository's claim; if
    /// any *other* claim on the repository holds a live lease (which the queue never allows),
    /// nothing is closed, so the caller's run records the overlap in `concurrent_at_start`.
    async fn fail_interrupted_runs(
        &self,
        repo_id: i64,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError>;
    /// Records the end of a run, its journal and the repository's new status, in one
    /// transaction. On `Success`/`Unchanged` the repository becomes `ready` with the counts,
    /// head and `next_sync_at` given, and its error and failure count are cleared. On `Failed`
    /// its error is set and the failure count goes up; a `cloning` repository becomes
    /// `failed`, a `ready` one stays `ready`. Progress is cleared either way.
    async fn finish_run(
        &self,
        run_id: i64,
        repo_id: i64,
        result: &SyncResult,
    ) -> Result<(), StoreError>;
    /// A worker's reads before a sync, in one query: the repository (`None` when it is gone),
    /// its ref filter and its set's GitHub App installation.
    async fn sync_context(&self, repo_id: i64) -> Result<Option<SyncContext>, StoreError>;
    /// [`Store::fail_interrupted_runs`] then [`Store::start_run`], in one transaction. The run's
    /// trigger is `on_recovery` when runs were closed, `trigger` otherwise.
    async fn open_run(
        &self,
        repo_id: i64,
        trigger: Trigger,
        on_recovery: Trigger,
        now: DateTime<Utc>,
    ) -> Result<OpenedRun, StoreError>;
    /// [`Store::finish_run`] then [`Store::complete_job`], in one transaction. `Ok(false)`: the
    /// repository was deleted while the run went on (its run and job went with it).
    async fn finish_job(
        &self,
        job_id: i64,
        worker: &str,
        run_id: i64,
        repo_id: i64,
        result: &SyncResult,
    ) -> Result<bool, StoreError>;
    /// A sync that found the upstream equal to the mirror, recorded whole in one transaction:
    /// runs a dead worker left `running` closed as interrupted (as [`Store::open_run`] does;
    /// the run's trigger is then `recovery`), the run inserted already over (`started_at` to
    /// `result.finished_at`), the repository's record updated as [`Store::finish_run`] does,
    /// with `last_sync_at` = `started_at`, and the job completed. `None`: the repository is
    /// gone.
    async fn finish_unchanged_job(
        &self,
        job_id: i64,
        worker: &str,
        repo_id: i64,
        trigger: Trigger,
        started_at: DateTime<Utc>,
        result: &SyncResult,
    ) -> Result<Option<UnchangedRun>, StoreError>;
    /// The repository's latest runs, newest first, each with its journal.
    async fn list_runs(&self, repo_id: i64, limit: i64) -> Result<Vec<SyncRun>, StoreError>;
    /// How many of the repository's runs are `running`.
    async fn running_count(&self, repo_id: i64) -> Result<i64, StoreError>;
    /// The repositories (ids, ascending) one of whose jobs is claimed with a live lease at
    /// `now`: a worker on some replica is syncing them. A worker that died stops counting when
    /// its lease runs out. One statement for all repositories (the queue holds one claim per
    /// running sync), so a list's statuses cost no query per repository.
    async fn syncing_repo_ids(&self, now: DateTime<Utc>) -> Result<Vec<i64>, StoreError>;

    async fn get_setting(&self, key: &str) -> Result<Option<String>, StoreError>;
    /// Stores the value unless the key has one. `true` if this call stored it.
    async fn put_setting_if_absent(&self, key: &str, value: &str) -> Result<bool, StoreError>;
    async fn put_setting(&self, key: &str, value: &str) -> Result<(), StoreError>;

    /// Takes a paused repository back into the schedule, due now. `false` if it does not exist.
    async fn resume_repo(&self, id: i64, now: DateTime<Utc>) -> Result<bool, StoreError>;
    /// Applies a person's settings change (and un-pauses). `None` if the repository does not exist.
    async fn update_repo(&self, id: i64, update: &RepoUpdate) -> Result<Option<Repo>, StoreError>;

    /// Repositories whose upstream has one of these match keys
    /// (`mirrorhub_core::repo_key::repo_match_key`).
    async fn repos_by_match_keys(&self, keys: &[String]) -> Result<Vec<Repo>, StoreError>;
    /// Records an authenticated delivery in one transaction: remembers its delivery id (an id
    /// seen before makes it a replay: nothing is written), queues a webhook sync for each
    /// entry that asks for one (spaced after the repository's previous sync, see
    /// [`NewDelivery::sync_spacing`]), marks each entry's repository as connected and writes
    /// its log line.
    async fn record_delivery(
        &self,
        delivery: &NewDelivery,
        now: DateTime<Utc>,
    ) -> Result<DeliveryOutcome, StoreError>;
    /// A repository's delivery log, newest first.
    async fn list_deliveries(&self, repo_id: i64, limit: i64) -> Result<Vec<Delivery>, StoreError>;
    /// Forgets delivery ids seen before `seen_before`, and log lines and bot commands from
    /// before `log_before`.
    async fn prune_deliveries(
        &self,
        seen_before: DateTime<Utc>,
        log_before: DateTime<Utc>,
    ) -> Result<u64, StoreError>;
    /// Takes a comment-bot command: `true` the first time this command line of this comment is
    /// seen, `false` ever after (until pruned with the delivery log), whatever the process.
    async fn take_bot_command(
        &self,
        forge: &str,
        comment: &str,
        command: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError>;
    /// Records the webhook the hub created on the upstream (or why it could not).
    async fn set_webhook_hook(&self, repo_id: i64, hook: &WebhookHook) -> Result<(), StoreError>;

    /// Records a signed-in browser session ([`Conflict`](StoreError::Conflict) if the id hash
    /// is taken).
    async fn create_web_session(&self, session: &WebSession) -> Result<(), StoreError>;
    /// The session with this id hash, if it exists and has not expired at `now`.
    async fn get_web_session(
        &self,
        id_sha256: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<WebSession>, StoreError>;
    /// Signs a session out. `false` if there was none.
    async fn delete_web_session(&self, id_sha256: &str) -> Result<bool, StoreError>;
    /// Forgets sessions that expired before `now`; returns how many.
    async fn prune_web_sessions(&self, now: DateTime<Utc>) -> Result<u64, StoreError>;

    /// Creates a user or an organization. [`Conflict`](StoreError::Conflict) if any account
    /// has the name, in any case.
    async fn create_account(
        &self,
        new: &NewAccount,
        now: DateTime<Utc>,
    ) -> Result<Account, StoreError>;
    /// The account with this name, ignoring ASCII case.
    async fn get_account(&self, name: &str) -> Result<Option<Account>, StoreError>;
    /// The account with this id.
    async fn get_account_by_id(&self, id: i64) -> Result<Option<Account>, StoreError>;
    /// Every account, users and organizations, by name.
    async fn list_accounts(&self) -> Result<Vec<Account>, StoreError>;
    /// Deletes an account with its memberships, tokens, sessions and SSH keys, unless
    /// repositories are owned by its name or use one of its SSH keys (checked in the same
    /// statement). `false` if it was not deleted.
    async fn delete_account(&self, id: i64) -> Result<bool, StoreError>;
    /// Changes a user's password hash (`None` removes the password) and, when given, whether
    /// they are a site admin. `false` if there is no such account.
    async fn update_user(
        &self,
        id: i64,
        password_hash: Option<Option<String>>,
        site_admin: Option<bool>,
    ) -> Result<bool, StoreError>;
    /// A user's password hash (PHC string), if they have a password.
    async fn password_hash(&self, user_id: i64) -> Result<Option<String>, StoreError>;
    /// Makes `user_id` a member of `org_id` with `role`, or changes their role.
    /// [`NotFound`](StoreError::NotFound) if either account does not exist.
    async fn set_member(&self, org_id: i64, user_id: i64, role: Access) -> Result<(), StoreError>;
    /// Removes a member. `false` if they were not one.
    async fn remove_member(&self, org_id: i64, user_id: i64) -> Result<bool, StoreError>;
    /// An organization's members with their roles, by name.
    async fn list_members(&self, org_id: i64) -> Result<Vec<(Account, Access)>, StoreError>;
    /// The organizations a user belongs to, as (organization name, role).
    async fn memberships(&self, user_id: i64) -> Result<Vec<(String, Access)>, StoreError>;

    /// Records a new personal access token. [`Conflict`](StoreError::Conflict) if the user
    /// has an unrevoked token with the same name (or, vanishingly unlikely, the hash is taken).
    async fn create_access_token(
        &self,
        new: &NewAccessToken,
        now: DateTime<Utc>,
    ) -> Result<AccessToken, StoreError>;
    /// The token with this SHA-256 (hex) and its user, whether expired or revoked or not (the
    /// caller says which, so the user learns why a token stopped working).
    async fn access_token_by_hash(
        &self,
        token_sha256: &str,
    ) -> Result<Option<(AccessToken, Account)>, StoreError>;
    /// A user's tokens, newest first, revoked ones included.
    async fn list_access_tokens(&self, user_id: i64) -> Result<Vec<AccessToken>, StoreError>;
    /// Revokes one of the user's tokens (at `now`; a revoked token stays revoked at its first
    /// time). `false` if the user has no token with this id.
    async fn revoke_access_token(
        &self,
        user_id: i64,
        token_id: i64,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError>;
    /// Notes that a token was used at `now`.
    async fn touch_access_token(&self, token_id: i64, now: DateTime<Utc>)
        -> Result<(), StoreError>;

    /// Records an owner's SSH key pair, the private key sealed with the store's key.
    /// [`NotFound`](StoreError::NotFound) if the owner account does not exist.
    async fn create_ssh_key(
        &self,
        new: NewSshKey,
        now: DateTime<Utc>,
    ) -> Result<SshKey, StoreError>;
    /// An owner's SSH keys, oldest first.
    async fn list_ssh_keys(&self, owner_id: i64) -> Result<Vec<SshKey>, StoreError>;
    async fn get_ssh_key(&self, id: i64) -> Result<Option<SshKey>, StoreError>;
    /// The key's private key text, opened; `None` if there is no such key.
    async fn ssh_private_key(&self, id: i64) -> Result<Option<SecretString>, StoreError>;
    /// Deletes an SSH key unless a repository uses it (checked atomically with the delete:
    /// no repository can take the key up meanwhile).
    async fn delete_ssh_key(&self, id: i64) -> Result<SshKeyDeletion, StoreError>;

    // Git LFS.
    /// Records that the repository's refs need these objects; ones already recorded stay as
    /// they are. Returns how many were new.
    async fn lfs_need(
        &self,
        repo_id: i64,
        objects: &[LfsObject],
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError>;
    /// Objects the repository needs and the hub lacks, at most `limit`.
    async fn lfs_missing(&self, repo_id: i64, limit: i64) -> Result<Vec<LfsObject>, StoreError>;
    /// Marks objects present (recording them first if they were not).
    async fn lfs_mark_present(
        &self,
        repo_id: i64,
        objects: &[LfsObject],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError>;
    /// Marks an object the repository needs as missing again (its file was found gone), so
    /// the next sync fetches it.
    async fn lfs_mark_missing(&self, repo_id: i64, oid: &str) -> Result<(), StoreError>;
    /// One object of a repository: its size and whether the hub has it.
    async fn lfs_object(&self, repo_id: i64, oid: &str) -> Result<Option<(i64, bool)>, StoreError>;
    async fn lfs_counts(&self, repo_id: i64) -> Result<LfsCounts, StoreError>;
    async fn lfs_set_error(&self, repo_id: i64, error: Option<&str>) -> Result<(), StoreError>;
    /// Every object id the repository references (to release them when it is deleted).
    async fn lfs_repo_oids(&self, repo_id: i64) -> Result<Vec<String>, StoreError>;
    /// Of `oids`, those no repository references.
    async fn lfs_unreferenced(&self, oids: &[String]) -> Result<Vec<String>, StoreError>;
    /// Attaches warnings to a run (before it is finished).
    async fn set_run_warnings(&self, run_id: i64, warnings: &str) -> Result<(), StoreError>;
}

/// Opens the database named by the URL (`sqlite:PATH`, `sqlite::memory:`, `postgres://...`
/// or `postgresql://...`), applies the migrations, and checks that `key` is the key the
/// database's credentials were encrypted with ([`CryptoError::WrongKey`] otherwise).
pub async fn connect(database_url: &str, key: SecretKey) -> Result<Arc<dyn Store>, StoreError> {
    let store: Arc<dyn Store> = if database_url.starts_with("sqlite:") {
        Arc::new(sqlite::SqliteStore::connect(database_url, key.clone()).await?)
    } else if database_url.starts_with("postgres://") || database_url.starts_with("postgresql://") {
        Arc::new(postgres::PgStore::connect(database_url, key.clone()).await?)
    } else {
        let scheme = database_url.split_once(':').map_or("", |(s, _)| s);
        return Err(StoreError::UnsupportedUrl(
            scheme.chars().take(20).collect(),
        ));
    };
    check_key(store.as_ref(), &key).await?;
    Ok(store)
}

/// The setting that holds a value sealed with the store's key, to detect a wrong key at
/// start-up rather than at the first repository with credentials.
const KEY_CHECK_SETTING: &str = "mirrorhub.store.key_check";

async fn check_key(store: &dyn Store, key: &SecretKey) -> Result<(), StoreError> {
    let sealed = match store.get_setting(KEY_CHECK_SETTING).await? {
        Some(v) => v,
        None => {
            let fresh = key.seal_check_value()?;
            if store
                .put_setting_if_absent(KEY_CHECK_SETTING, &fresh)
                .await?
            {
                return Ok(());
            }
            store
                .get_setting(KEY_CHECK_SETTING)
                .await?
                .ok_or(StoreError::NotFound)?
        }
    };
    key.verify_check_value(&sealed)?;
    Ok(())
}

// ---- helpers shared by both backends ------------------------------------------------------

fn parse_text<T>(what: &str, text: &str, parse: fn(&str) -> Option<T>) -> Result<T, StoreError> {
    parse(text).ok_or_else(|| StoreError::Corrupt(format!("unknown {what} {text:?}")))
}

fn parse_mode(s: &str) -> Result<Mode, StoreError> {
    parse_text("mode", s, Mode::parse)
}

fn parse_visibility(s: &str) -> Result<Visibility, StoreError> {
    parse_text("visibility", s, Visibility::parse)
}

fn parse_state(s: &str) -> Result<RepoState, StoreError> {
    parse_text("repository state", s, RepoState::parse)
}

fn parse_trigger(s: &str) -> Result<Trigger, StoreError> {
    parse_text("trigger", s, Trigger::parse)
}

fn parse_outcome(s: &str) -> Result<Outcome, StoreError> {
    parse_text("outcome", s, Outcome::parse)
}

fn parse_kind(s: &str) -> Result<RefChangeKind, StoreError> {
    parse_text("ref change kind", s, RefChangeKind::parse)
}

/// `now + lease`, refusing leases that do not fit in a date.
fn lease_end(now: DateTime<Utc>, lease: Duration) -> Result<DateTime<Utc>, StoreError> {
    TimeDelta::from_std(lease)
        .ok()
        .and_then(|d| now.checked_add_signed(d))
        .ok_or(StoreError::Invalid("lease is too long"))
}

/// A run can only be finished with a final outcome.
fn check_final(outcome: Outcome) -> Result<(), StoreError> {
    if outcome == Outcome::Running {
        return Err(StoreError::Invalid(
            "a run cannot finish with outcome running",
        ));
    }
    Ok(())
}

/// How many rows a multi-row INSERT of the journal carries (6 bound values each): well under
/// both backends' limits on bound parameters.
const REF_CHANGES_PER_INSERT: usize = 1000;

/// The `webhook_hook_*` columns of a [`WebhookHook`]: forge, id, error.
fn hook_columns(hook: &WebhookHook) -> (Option<&str>, Option<&str>, Option<&str>) {
    match hook {
        WebhookHook::None => (None, None, None),
        WebhookHook::Registered { forge, id } => (Some(forge), Some(id), None),
        WebhookHook::Failed(error) => (None, None, Some(error)),
    }
}

/// Reads back what [`hook_columns`] wrote.
fn hook_from_columns(
    forge: Option<String>,
    id: Option<String>,
    error: Option<String>,
) -> WebhookHook {
    match (forge, id, error) {
        (Some(forge), Some(id), _) => WebhookHook::Registered { forge, id },
        (_, _, Some(error)) => WebhookHook::Failed(error),
        _ => WebhookHook::None,
    }
}

/// The match key recorded for an upstream URL; the URL itself when it has none (it was
/// accepted by `UpstreamUrl`, so this does not happen in practice).
fn match_key(upstream_url: &str) -> String {
    mirrorhub_core::repo_key::repo_match_key(upstream_url)
        .unwrap_or_else(|| upstream_url.to_owned())
}

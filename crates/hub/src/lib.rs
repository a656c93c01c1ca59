//! The application layer between the edges (HTTP API, CLI, later webhooks, bot and UI) and
//! the adapters (store, git engine). Every way in creates, syncs and deletes repositories
//! through [`Hub`]; every sync runs on a [`worker`] that took it from the durable queue.

mod accounts;
pub mod bot;
mod error;
mod fidelity;
mod lfs;
mod mirror_sets;
mod notifications;
mod promote;
mod push_mirrors;
mod request;
mod sessions;
mod ssh;
pub mod webhooks;
pub mod worker;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use mirrorhub_core::schedule;
use mirrorhub_core::{ErrorCode, Mode, RepoState, RepoStatus, SyncInterval, Trigger, UpstreamUrl};
use mirrorhub_git::{GitEngine, RemoteInfo, RepoContents};
pub use mirrorhub_store::RepoCounts;
use mirrorhub_store::{Repo, RepoUpdate, Store, SyncRun};
use tokio::sync::Notify;

pub use accounts::{
    bootstrap_user, token_hash, Member, NewToken, TokenRequest, MIN_PASSWORD_LEN, TOKEN_PREFIX,
};
pub use bot::BotConfig;
pub use error::HubError;
pub use fidelity::{expire_backups, Behind, FidelityConfig, WebhookSilence};
pub use lfs::{LfsBatchRequest, LfsConfig};
pub use mirror_sets::{
    CreateMirrorSet, MirrorSetView, SetCounts, SetRepoView, DEFAULT_LIST_INTERVAL,
    MIN_LIST_INTERVAL,
};
pub use notifications::{
    CreatedTarget, NotifyConfig, SmtpConfig, SmtpTls, TargetChange, TargetRequest,
};
pub use push_mirrors::{count_kind, CreatePushMirror, UpdatePushMirror};
pub use request::{CreateRepo, UpdateRepo, ValidCreateRepo};
pub use sessions::{random_token, NewWebSession};
pub use ssh::pinned_host_keys;
pub use webhooks::{IncomingWebhook, WebhookConfig, WebhookReceipt, WebhookRefusal};

/// Settings of the application layer, read once by the binary.
#[derive(Debug, Clone)]
pub struct HubConfig {
    /// Where the bare repositories live (`<data dir>/repos`).
    pub repos_dir: PathBuf,
    pub default_sync_interval: SyncInterval,
    pub min_sync_interval: SyncInterval,
    /// How many syncs run at once in this process.
    pub workers: usize,
    /// How many push mirror runs run at once in this process (their own workers, so a
    /// backlog of syncs never holds up a push).
    pub push_workers: usize,
    /// How long a claimed job stays ours without renewal; renewed every third of it.
    pub lease: Duration,
    /// How often an idle worker looks at the queue when nothing woke it (other replicas'
    /// requests, scheduled jobs).
    pub poll_interval: Duration,
    /// How often the scheduler looks for due mirrors.
    pub schedule_tick: Duration,
    /// Syncs of one upstream host (host:port) running at once in this process, so one forge
    /// is not hammered.
    pub per_host_syncs: usize,
    /// After this many consecutive permanent failures (authentication, not found, URL
    /// refused) a mirror is paused until someone syncs it by hand or changes its settings.
    pub pause_after: u32,
    /// A mirror whose last success is older than its interval plus this is reported stale.
    pub stale_grace: Duration,
    /// Base of the URLs the hub gives out (clone and webhook URLs), without a trailing slash.
    pub public_url: String,
    pub webhooks: WebhookConfig,
    pub bot: BotConfig,
    /// The bot's credentials on the forges (reply, react, check permissions).
    pub bot_credentials: mirrorhub_forges::BotCredentials,
    pub lfs: LfsConfig,
    /// The notification outbox: senders, timeouts, retries, the SMTP server.
    pub notifications: NotifyConfig,
    /// Backups of overwritten tips, and webhook silence checks.
    pub fidelity: FidelityConfig,
}

/// The hub's services. Cheap to share behind an `Arc`.
pub struct Hub {
    store: Arc<dyn Store>,
    engine: GitEngine,
    config: HubConfig,
    /// Wakes an idle worker when this process enqueues work.
    wake: Arc<Notify>,
    /// Wakes the mirror set listing loop when a set becomes due now.
    set_wake: Arc<Notify>,
    /// Jobs this process holds (job id -> worker id), released on shutdown.
    held: std::sync::Mutex<std::collections::HashMap<i64, String>>,
    /// The forges' APIs (webhook registration, the comment bot), with one shared client.
    forges: mirrorhub_forges::Forges,
    /// One semaphore per upstream host:port, created on first use.
    host_slots: std::sync::Mutex<std::collections::HashMap<String, Arc<tokio::sync::Semaphore>>>,
    /// Signs the hrefs of the hub's own LFS batch answers; loaded on first use.
    lfs_signer: tokio::sync::OnceCell<mirrorhub_lfs::ActionSigner>,
    /// The push mirror workers' wake-up and held jobs.
    push_queue: push_mirrors::PushQueue,
    /// The notification outbox's senders' wake-up and the stale check's clock.
    notifier: notifications::Notifier,
}

impl Hub {
    pub fn new(store: Arc<dyn Store>, engine: GitEngine, config: HubConfig) -> Self {
        let forges = mirrorhub_forges::Forges::new(config.webhooks.forges.clone())
            .with_bot(config.bot_credentials.clone());
        Self {
            store,
            engine,
            forges,
            config,
            wake: Arc::new(Notify::new()),
            set_wake: Arc::new(Notify::new()),
            host_slots: Default::default(),
            held: Default::default(),
            lfs_signer: Default::default(),
            push_queue: Default::default(),
            notifier: Default::default(),
        }
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    pub fn config(&self) -> &HubConfig {
        &self.config
    }

    /// The bare repository of a repo. Named by id, which is never reused, so a repository
    /// deleted and created again under the same name never meets its predecessor's files.
    pub fn repo_path(&self, repo_id: i64) -> PathBuf {
        self.config.repos_dir.join(format!("{repo_id}.git"))
    }

    /// Validates everything, checks the upstream answers as a Git repository with the given
    /// credentials, records the repository and queues its initial copy. Returns at once; the
    /// copy runs on a worker. Nothing is recorded when any check fails.
    #[tracing::instrument(skip_all, fields(owner = %request.owner, name = ?request.name))]
    pub async fn create_repo(&self, request: CreateRepo) -> Result<Repo, HubError> {
        self.create_repo_probed(request, true).await
    }

    /// [`create_repo`](Self::create_repo), with the upstream probe and the webhook on the
    /// upstream only when `single`. A mirror set's listing has just shown the forge has the
    /// repository; probing thousands of them one by one, and creating a webhook on each, would
    /// hold the listing for minutes (the first copy checks the upstream anyway, and one
    /// organization webhook serves every repository of a set).
    pub(crate) async fn create_repo_probed(
        &self,
        request: CreateRepo,
        single: bool,
    ) -> Result<Repo, HubError> {
        let lfs_url = match request.lfs_url.as_deref() {
            Some(text) => request::parse_lfs_url(text)?,
            None => None,
        };
        let lfs_update = RepoUpdate {
            lfs_enabled: request.lfs.filter(|on| !on),
            lfs_url: lfs_url.map(Some),
            ..RepoUpdate::default()
        };
        let ref_filter = match &request.refs {
            Some(spec) => Some(fidelity::check_filter(spec)?.spec()),
            None => None,
        };
        let mut valid = request.validate(
            self.config.default_sync_interval,
            self.config.min_sync_interval,
        )?;
        if self
            .store
            .get_repo(valid.owner.as_str(), valid.name.as_str())
            .await?
            .is_some()
        {
            return Err(HubError::Exists(format!("{}/{}", valid.owner, valid.name)));
        }
        let full_name = format!("{}/{}", valid.owner, valid.name);
        let ssh = match valid.ssh.take() {
            Some(ssh) => Some(
                self.check_ssh(&valid.url, valid.owner.as_str(), ssh)
                    .await?
                    .0,
            ),
            None => {
                if single {
                    self.engine
                        .probe(&valid.url, valid.credentials.as_ref())
                        .await?;
                }
                None
            }
        };
        self.ensure_owner(&valid.owner).await?;
        let owner = valid.owner.clone();
        let mut new = valid.into_new_repo();
        if let Some(checked) = ssh {
            new.known_hosts = Some(mirrorhub_core::known_hosts_text(&checked.known_hosts));
            new.ssh_key_id = match checked.key {
                ssh::CheckedKey::None => None,
                ssh::CheckedKey::Stored(id) => Some(id),
                ssh::CheckedKey::Upload(material) => {
                    let title = format!("uploaded for {full_name}");
                    Some(self.store_key(&owner, title, material).await?.id)
                }
            };
        }
        let repo = self
            .store
            .create_repo(new, Utc::now())
            .await
            .map_err(|e| HubError::from_store_create(e, full_name))?;
        // LFS settings other than the defaults, before the first copy is queued.
        let repo = if lfs_update.lfs_enabled.is_some() || lfs_update.lfs_url.is_some() {
            match self.store.update_repo(repo.id, &lfs_update).await {
                Ok(Some(updated)) => updated,
                Ok(None) => repo,
                Err(e) => {
                    let _ = self.store.delete_repo(repo.id).await;
                    return Err(e.into());
                }
            }
        } else {
            repo
        };
        // The ref filter too: the first copy fetches only what it keeps.
        if let Some(spec) = ref_filter.filter(|s| !s.is_empty()) {
            if let Err(e) = self.store.set_ref_filter(repo.id, Some(&spec)).await {
                let _ = self.store.delete_repo(repo.id).await;
                return Err(e.into());
            }
        }
        if let Err(e) = self
            .store
            .enqueue_sync(repo.id, Trigger::Create, Utc::now())
            .await
        {
            // Without its job the repository would stay "cloning" forever: undo the record.
            let _ = self.store.delete_repo(repo.id).await;
            return Err(e.into());
        }
        self.wake.notify_one();
        tracing::info!(repo_id = repo.id, mode = %repo.mode, upstream = %repo.upstream_url, "repository created");
        if !single {
            return Ok(repo);
        }
        if let Some(hook) = self.register_webhook(&repo).await {
            return Ok(Repo {
                webhook: mirrorhub_store::WebhookState {
                    hook,
                    ..repo.webhook
                },
                ..repo
            });
        }
        Ok(repo)
    }

    /// "Test connection": checks an upstream address and credentials exactly as creating a
    /// repository would, and records nothing.
    pub async fn check_upstream(
        &self,
        url: &str,
        username: Option<&str>,
        token: Option<&str>,
    ) -> Result<RemoteInfo, HubError> {
        let (url, credentials) = request::upstream(url, username, token)?;
        Ok(self.engine.probe(&url, credentials.as_ref()).await?)
    }

    /// What the repository page shows: branches and tags (most recently committed first, at
    /// most `max_refs` of each) and the default branch's latest `max_commits` commits. Empty
    /// while the first copy is still being made.
    pub async fn repo_contents(
        &self,
        repo: &Repo,
        max_refs: usize,
        max_commits: usize,
    ) -> Result<RepoContents, HubError> {
        let path = self.repo_path(repo.id);
        if !tokio::fs::try_exists(&path).await? {
            return Ok(RepoContents::default());
        }
        Ok(self.engine.contents(&path, max_refs, max_commits).await?)
    }

    pub async fn get_repo(&self, owner: &str, name: &str) -> Result<Repo, HubError> {
        self.store
            .get_repo(owner, name)
            .await?
            .ok_or_else(|| HubError::NotFound(format!("{owner}/{name}")))
    }

    pub async fn list_repos(&self) -> Result<Vec<Repo>, HubError> {
        Ok(self.store.list_repos().await?)
    }

    /// Queues a sync. Requests while one is queued coalesce into it.
    pub async fn request_sync(
        &self,
        owner: &str,
        name: &str,
        trigger: Trigger,
    ) -> Result<Repo, HubError> {
        let repo = self.get_repo(owner, name).await?;
        if repo.mode == Mode::Migrate && repo.state == RepoState::Ready {
            return Err(HubError::InvalidState(format!(
                "{owner}/{name} was migrated: the hub's copy is the primary and is never synced from its old upstream"
            )));
        }
        if repo.paused_reason.is_some() && trigger != Trigger::Schedule {
            // A person asked: take the mirror back into the schedule.
            self.store.resume_repo(repo.id, Utc::now()).await?;
        }
        self.store
            .enqueue_sync(repo.id, trigger, Utc::now())
            .await?;
        self.wake.notify_one();
        Ok(repo)
    }

    /// Changes a repository's settings. New credentials are checked against the upstream
    /// before they are stored. Any change takes a paused mirror back into the schedule.
    pub async fn update_repo(
        &self,
        owner: &str,
        name: &str,
        change: UpdateRepo,
    ) -> Result<Repo, HubError> {
        let repo = self.get_repo(owner, name).await?;
        let mut update = RepoUpdate::default();
        self.update_ssh(&repo, &change, &mut update).await?;
        if change.remove_credentials {
            update.credentials = Some(None);
        } else if let Some(token) = change.token.filter(|t| !t.is_empty()) {
            if repo.upstream_url.starts_with("ssh://") || !repo.upstream_url.contains("://") {
                return Err(HubError::invalid(ErrorCode::InvalidRequest, "token", "an SSH upstream logs in with a key, not a token: give ssh_key_id or ssh_private_key"));
            }
            let creds = request::credentials(change.username.as_deref(), &token)?;
            if repo.mode == Mode::Mirror || repo.state != RepoState::Ready {
                let (url, _) = UpstreamUrl::parse(&repo.upstream_url)
                    .map_err(|e| HubError::invalid(ErrorCode::InvalidUrl, "url", e.to_string()))?;
                self.engine.probe(&url, Some(&creds)).await?;
            }
            update.credentials = Some(Some(creds));
        }
        if let Some(text) = change
            .sync_interval
            .as_deref()
            .map(str::trim)
            .filter(|t| !t.is_empty())
        {
            let interval = request::parse_interval(text, self.config.min_sync_interval)?;
            update.sync_interval_secs = Some(interval.as_secs() as i64);
            if repo.mode == Mode::Mirror {
                let from = repo.last_success_at.unwrap_or_else(Utc::now);
                let next = from
                    + chrono::Duration::from_std(interval.as_duration())
                        .unwrap_or(chrono::Duration::days(1));
                update.next_sync_at = Some(next.max(Utc::now()));
            }
        }
        if let Some(on) = change.lfs {
            update.lfs_enabled = Some(on);
        }
        if let Some(text) = change.lfs_url.as_deref() {
            update.lfs_url = Some(request::parse_lfs_url(text)?);
        }
        if let Some(d) = change.description {
            update.description = Some(request::check_description(d)?);
        }
        if let Some(v) = change.visibility {
            update.visibility = Some(request::parse_visibility(&v)?);
        }
        let ref_filter = match &change.refs {
            Some(spec) => Some(fidelity::check_filter(spec)?),
            None => None,
        };
        let updated = self
            .store
            .update_repo(repo.id, &update)
            .await?
            .ok_or_else(|| HubError::NotFound(format!("{owner}/{name}")))?;
        if let Some(filter) = ref_filter {
            let before = self.ref_filter(repo.id).await?;
            self.set_ref_filter(repo.id, &filter.spec()).await?;
            if before != filter.spec()
                && repo.mode == Mode::Mirror
                && repo.state == RepoState::Ready
            {
                // Applied at once: refs the filter now leaves out are removed, new ones fetched.
                self.store
                    .enqueue_sync(repo.id, Trigger::Manual, Utc::now())
                    .await?;
                self.wake.notify_one();
            }
        }
        tracing::info!(repo_id = repo.id, "repository settings changed");
        Ok(updated)
    }

    /// The statuses of repositories now: which syncs are running (one query, whatever the
    /// number of repositories), then [`schedule::repo_status`] for each repository asked
    /// about. The one place every way in (API, web UI, CLI through the API, bot, metrics)
    /// gets a repository's `status` from.
    pub async fn statuses(&self) -> Result<Statuses, HubError> {
        let now = Utc::now();
        let syncing = self.store.syncing_repo_ids(now).await?;
        Ok(Statuses {
            syncing: syncing.into_iter().collect(),
            now,
            grace: self.config.stale_grace,
        })
    }

    /// How many repositories have each status, every word included (zeros too), for the
    /// metrics endpoint.
    pub async fn status_counts(&self) -> Result<Vec<(RepoStatus, i64)>, HubError> {
        let statuses = self.statuses().await?;
        let repos = self.store.list_repos().await?;
        Ok(RepoStatus::ALL
            .iter()
            .map(|&word| {
                let n = repos.iter().filter(|r| statuses.of(r) == word).count();
                (word, i64::try_from(n).unwrap_or(i64::MAX))
            })
            .collect())
    }

    /// Counts for the metrics endpoint, computed by the database.
    pub async fn stats(&self) -> Result<RepoCounts, HubError> {
        Ok(self
            .store
            .repo_counts(Utc::now(), self.config.stale_grace)
            .await?)
    }

    /// Gives back the jobs this process still holds (after running syncs were stopped at
    /// shutdown), so another replica or the next start takes them at once instead of
    /// waiting for their leases to run out.
    pub async fn release_held_jobs(&self) {
        let held: Vec<(i64, String)> = self
            .held
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain()
            .collect();
        for (job, worker) in held {
            if let Err(e) = self.store.release_job(job, &worker, Utc::now()).await {
                tracing::warn!(job_id = job, error = %e, "could not release a job at shutdown; its lease will expire");
            }
        }
        self.release_held_push_jobs().await;
    }

    /// The slot a sync of `host` must hold while it transfers.
    pub(crate) fn host_slot(&self, host: &str) -> Arc<tokio::sync::Semaphore> {
        let mut slots = self.host_slots.lock().unwrap_or_else(|e| e.into_inner());
        slots
            .entry(host.to_owned())
            .or_insert_with(|| {
                Arc::new(tokio::sync::Semaphore::new(
                    self.config.per_host_syncs.max(1),
                ))
            })
            .clone()
    }

    /// A repository's webhook delivery log, newest first.
    pub async fn list_deliveries(
        &self,
        owner: &str,
        name: &str,
        limit: i64,
    ) -> Result<Vec<mirrorhub_store::Delivery>, HubError> {
        let repo = self.get_repo(owner, name).await?;
        Ok(self.store.list_deliveries(repo.id, limit).await?)
    }

    pub async fn list_runs(
        &self,
        owner: &str,
        name: &str,
        limit: i64,
    ) -> Result<Vec<SyncRun>, HubError> {
        let repo = self.get_repo(owner, name).await?;
        Ok(self.store.list_runs(repo.id, limit).await?)
    }

    /// Deletes the record (with its queue entries and history) and then the bare repository.
    pub async fn delete_repo(&self, owner: &str, name: &str) -> Result<(), HubError> {
        let repo = self.get_repo(owner, name).await?;
        self.unregister_webhook(&repo).await;
        let lfs_objects = self.store.lfs_repo_oids(repo.id).await?;
        if !self.store.delete_repo(repo.id).await? {
            return Err(HubError::NotFound(format!("{owner}/{name}")));
        }
        self.remove_repo_files(repo.id).await?;
        self.release_lfs(lfs_objects).await;
        tracing::info!(repo_id = repo.id, "repository deleted");
        Ok(())
    }

    /// Moves the repository's directory (and any interrupted clone of it) aside, then removes
    /// it. The move is atomic, so nothing can serve or sync a half-deleted repository.
    async fn remove_repo_files(&self, repo_id: i64) -> Result<(), HubError> {
        let repos_dir = self.config.repos_dir.clone();
        let path = self.repo_path(repo_id);
        tokio::task::spawn_blocking(move || remove_repo_dir(&repos_dir, &path))
            .await
            .map_err(|e| HubError::Io(std::io::Error::other(e)))??;
        Ok(())
    }

    /// Brings the queue back after a restart: stale claims released (SQLite), and every
    /// repository still waiting for its initial copy has a job.
    pub async fn recover(&self) -> Result<(), HubError> {
        let released =
            self.store.release_all_claims().await? + self.store.release_all_push_claims().await?;
        let requeued = self.store.requeue_cloning(Utc::now()).await?;
        let trash = self.config.repos_dir.join(TRASH_DIR);
        let _ = tokio::task::spawn_blocking(move || std::fs::remove_dir_all(trash)).await;
        if released + requeued > 0 {
            tracing::info!(released, requeued, "recovered interrupted work");
            self.wake.notify_one();
        }
        Ok(())
    }

    /// When the scheduler should sync a repository next after a sync that ended at `at`
    /// (`failure`: the error code when it failed; `repo`: the row as read when the job
    /// started). The policy is `schedule::next_sync_delay`: each mirror keeps a slot in its
    /// period, so mirrors created together spread out; transient failures retry with capped
    /// backoff. A migrated repository is never scheduled once copied.
    fn next_sync_at(
        &self,
        repo: &Repo,
        at: DateTime<Utc>,
        failure: Option<ErrorCode>,
    ) -> Option<DateTime<Utc>> {
        if repo.mode == Mode::Migrate && failure.is_none() {
            return None;
        }
        let delay = schedule::next_sync_delay(&schedule::SyncEnd {
            repo_id: repo.id.max(0) as u64,
            interval: Duration::from_secs(repo.sync_interval_secs.max(1) as u64),
            at: Duration::from_millis(at.timestamp_millis().max(0) as u64),
            synced_before: repo.last_success_at.is_some(),
            failures_before: repo.consecutive_failures.max(0) as u32,
            failure: failure.map(schedule::classify),
        });
        Some(at + chrono::Duration::from_std(delay).unwrap_or(chrono::Duration::days(1)))
    }
}

const TRASH_DIR: &str = ".trash";

fn remove_repo_dir(repos_dir: &Path, path: &Path) -> std::io::Result<()> {
    let trash = repos_dir.join(TRASH_DIR);
    std::fs::create_dir_all(&trash)?;
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut victims = vec![];
    for entry in std::fs::read_dir(repos_dir)? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name == file_name || name.starts_with(&format!("{file_name}.tmp")) {
            let aside = trash.join(format!("{name}-{}", uuid::Uuid::new_v4()));
            std::fs::rename(entry.path(), &aside)?;
            victims.push(aside);
        }
    }
    for victim in victims {
        // Another replica's start-up may be clearing the trash at the same moment, and a git
        // still finishing in the moved directory (a sync, housekeeping) may add a file while it
        // goes: the repository is gone either way; what is left is cleared at the next start.
        match std::fs::remove_dir_all(&victim) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                tracing::warn!(error = %e, path = %victim.display(), "a deleted repository's files could not all be removed yet; they are removed at the next start");
            }
            _ => {}
        }
    }
    Ok(())
}

/// Repositories' statuses at one moment (see [`Hub::statuses`]).
#[derive(Debug, Clone)]
pub struct Statuses {
    syncing: std::collections::HashSet<i64>,
    now: DateTime<Utc>,
    grace: Duration,
}

impl Statuses {
    /// The repository's one status word.
    pub fn of(&self, repo: &Repo) -> RepoStatus {
        schedule::repo_status(&schedule::StatusFacts {
            mode: repo.mode,
            state: repo.state,
            paused: repo.paused_reason.is_some(),
            consecutive_failures: u32::try_from(repo.consecutive_failures).unwrap_or(0),
            sync_running: self.syncing.contains(&repo.id),
            since_last_success: self.since_last_success(repo),
            interval: Self::interval(repo),
            grace: self.grace,
        })
    }

    /// Whether a mirror has gone longer than its interval plus the grace period without a
    /// successful sync (whatever its status says first). Primaries are never stale.
    pub fn is_stale(&self, repo: &Repo) -> bool {
        repo.mode == Mode::Mirror
            && schedule::is_stale(
                self.since_last_success(repo),
                Self::interval(repo),
                self.grace,
            )
    }

    fn since_last_success(&self, repo: &Repo) -> Duration {
        let since = repo.last_success_at.unwrap_or(repo.created_at);
        (self.now - since).to_std().unwrap_or_default()
    }

    fn interval(repo: &Repo) -> Duration {
        Duration::from_secs(repo.sync_interval_secs.max(1).unsigned_abs())
    }
}

/// A list filter by status: one or more status words, separated by commas
/// (`?status=failed,paused`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusFilter(Vec<RepoStatus>);

impl StatusFilter {
    /// Parses `failed,paused`. An unknown or missing word is an `invalid_request` naming the
    /// field `status` and listing the words.
    pub fn parse(text: &str) -> Result<Self, HubError> {
        let words = || {
            RepoStatus::ALL
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let mut wanted = Vec::new();
        for word in text.split(',').map(str::trim) {
            match RepoStatus::parse(&word.to_ascii_lowercase()) {
                Some(s) => wanted.push(s),
                None if word.is_empty() => {
                    return Err(HubError::invalid(
                        ErrorCode::InvalidRequest,
                        "status",
                        format!(
                            "name one or more statuses, separated by commas: {}",
                            words()
                        ),
                    ))
                }
                None => {
                    let shown: String = word.chars().take(40).collect();
                    return Err(HubError::invalid(
                        ErrorCode::InvalidRequest,
                        "status",
                        format!(
                            "unknown status {shown:?}: use one or more of {}, separated by commas",
                            words()
                        ),
                    ));
                }
            }
        }
        Ok(Self(wanted))
    }

    pub fn matches(&self, status: RepoStatus) -> bool {
        self.0.contains(&status)
    }
}

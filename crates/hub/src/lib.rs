//! The application layer between the edges (HTTP API, CLI, later webhooks, bot and UI) and
//! the adapters (store, git engine). Every way in creates, syncs and deletes repositories
//! through [`Hub`]; every sync runs on a [`worker`] that took it from the durable queue.

mod error;
mod request;
pub mod worker;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use mirrorhub_core::schedule::{self, FailureClass};
use mirrorhub_core::{ErrorCode, Mode, RepoState, SyncInterval, Trigger};
use mirrorhub_git::GitEngine;
use mirrorhub_store::{Repo, Store, SyncRun};
use tokio::sync::Notify;

pub use error::HubError;
pub use request::{CreateRepo, ValidCreateRepo};

/// Settings of the application layer, read once by the binary.
#[derive(Debug, Clone)]
pub struct HubConfig {
    /// Where the bare repositories live (`<data dir>/repos`).
    pub repos_dir: PathBuf,
    pub default_sync_interval: SyncInterval,
    pub min_sync_interval: SyncInterval,
    /// How many syncs run at once in this process.
    pub workers: usize,
    /// How long a claimed job stays ours without renewal; renewed every third of it.
    pub lease: Duration,
    /// How often an idle worker looks at the queue when nothing woke it (other replicas'
    /// requests, scheduled jobs).
    pub poll_interval: Duration,
    /// How often the scheduler looks for due mirrors.
    pub schedule_tick: Duration,
}

/// The hub's services. Cheap to share behind an `Arc`.
pub struct Hub {
    store: Arc<dyn Store>,
    engine: GitEngine,
    config: HubConfig,
    /// Wakes an idle worker when this process enqueues work.
    wake: Notify,
}

impl Hub {
    pub fn new(store: Arc<dyn Store>, engine: GitEngine, config: HubConfig) -> Self {
        Self {
            store,
            engine,
            config,
            wake: Notify::new(),
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
        let valid = request.validate(
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
        self.engine
            .probe(&valid.url, valid.credentials.as_ref())
            .await?;
        let full_name = format!("{}/{}", valid.owner, valid.name);
        let repo = self
            .store
            .create_repo(valid.into_new_repo(), Utc::now())
            .await
            .map_err(|e| HubError::from_store_create(e, full_name))?;
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
        Ok(repo)
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
        self.store
            .enqueue_sync(repo.id, trigger, Utc::now())
            .await?;
        self.wake.notify_one();
        Ok(repo)
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
        if !self.store.delete_repo(repo.id).await? {
            return Err(HubError::NotFound(format!("{owner}/{name}")));
        }
        self.remove_repo_files(repo.id).await?;
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
        let released = self.store.release_all_claims().await?;
        let mut requeued = 0;
        for repo in self.store.list_repos().await? {
            if repo.state == RepoState::Cloning
                && self
                    .store
                    .enqueue_sync(repo.id, Trigger::Recovery, Utc::now())
                    .await?
            {
                requeued += 1;
            }
        }
        let trash = self.config.repos_dir.join(TRASH_DIR);
        let _ = tokio::task::spawn_blocking(move || std::fs::remove_dir_all(trash)).await;
        if released + requeued > 0 {
            tracing::info!(released, requeued, "recovered interrupted work");
            self.wake.notify_one();
        }
        Ok(())
    }

    /// When the scheduler should sync a repository next after a sync that ended at `at`
    /// (`failure`: the error code when it failed). Successes wait the interval (jittered
    /// shorter, per repository); transient failures retry with capped exponential backoff;
    /// permanent ones wait the interval. A migrated repository is never scheduled once copied.
    fn next_sync_at(
        &self,
        repo: &Repo,
        at: DateTime<Utc>,
        failure: Option<ErrorCode>,
    ) -> Option<DateTime<Utc>> {
        if repo.mode == Mode::Migrate && failure.is_none() {
            return None;
        }
        let interval = Duration::from_secs(repo.sync_interval_secs.max(1) as u64);
        let seed = (repo.id as u64).rotate_left(32) ^ at.timestamp_millis() as u64;
        let delay = match failure.map(schedule::classify) {
            None => schedule::delay_after_success(interval, seed),
            Some(FailureClass::Transient) => {
                schedule::retry_delay(repo.consecutive_failures as u32 + 1, interval, seed)
            }
            Some(FailureClass::Permanent) => interval,
        };
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
        std::fs::remove_dir_all(victim)?;
    }
    Ok(())
}

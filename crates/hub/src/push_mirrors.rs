//! Push mirrors: any repository on the hub (a primary, or a mirror: chains are allowed) can be
//! pushed on to downstream servers at once after every change.
//!
//! Triggers only enqueue: a push to a primary (`record_push`) and a sync that moved refs
//! (`worker::try_run_job`) queue a job per enabled target (`Store::enqueue_repo_pushes`,
//! coalesced per target); the leading scheduler queues targets whose `next_push_at` passed
//! (the fallback that repairs a missed push). Push workers claim jobs from `push_jobs` with a
//! lease, like sync workers do from `sync_jobs`, run `GitEngine::push_mirror`, and record the
//! run through [`Hub::finish_push_run`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use mirrorhub_core::push_mirror::{BranchFilter, PushRefKind, PushRules, PushTrigger};
use mirrorhub_core::{schedule, ErrorCode, HostKey, Outcome, Scheme, UpstreamUrl};
use mirrorhub_git::GitError;
use mirrorhub_store::{
    NewPushMirror, PushJob, PushMirror, PushMirrorUpdate, PushRun, PushRunResult, Repo, StoreError,
};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::request::{self, Redacted};
use crate::ssh::UpstreamLogin;
use crate::{Hub, HubError};

/// A push mirror as an edge asks for it. Strings and options, because every edge sends text;
/// `Debug` never shows the token.
#[derive(Clone, Default)]
pub struct CreatePushMirror {
    pub url: String,
    pub username: Option<String>,
    pub token: Option<String>,
    /// SSH downstreams: a key of the repository owner's (`POST /api/v1/ssh-keys`).
    pub ssh_key_id: Option<i64>,
    /// SSH downstreams: the server's host keys to pin (required).
    pub known_hosts: Option<String>,
    /// Globs, or `/regex/`; `None` for every branch.
    pub only_branches: Option<Vec<String>>,
    pub tags: Option<bool>,
    pub prune: Option<bool>,
    pub force: Option<bool>,
    pub enabled: Option<bool>,
    /// The fallback interval (`24h`, `90m`); default the hub's sync interval.
    pub sync_interval: Option<String>,
}

/// A change of a push mirror. `None` leaves a field as it is.
#[derive(Clone, Default)]
pub struct UpdatePushMirror {
    /// A new downstream (what is known about the old one's refs is forgotten).
    pub url: Option<String>,
    pub username: Option<String>,
    pub token: Option<String>,
    pub remove_credentials: bool,
    pub ssh_key_id: Option<i64>,
    pub known_hosts: Option<String>,
    /// `Some(None)`: every branch again.
    pub only_branches: Option<Option<Vec<String>>>,
    pub tags: Option<bool>,
    pub prune: Option<bool>,
    pub force: Option<bool>,
    pub enabled: Option<bool>,
    pub sync_interval: Option<String>,
}

impl std::fmt::Debug for CreatePushMirror {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreatePushMirror")
            .field("url", &self.url)
            .field("username", &self.username)
            .field("token", &Redacted(&self.token))
            .field("ssh_key_id", &self.ssh_key_id)
            .field("only_branches", &self.only_branches)
            .field("tags", &self.tags)
            .field("prune", &self.prune)
            .field("force", &self.force)
            .field("enabled", &self.enabled)
            .field("sync_interval", &self.sync_interval)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for UpdatePushMirror {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpdatePushMirror")
            .field("url", &self.url)
            .field("username", &self.username)
            .field("token", &Redacted(&self.token))
            .field("remove_credentials", &self.remove_credentials)
            .field("ssh_key_id", &self.ssh_key_id)
            .field("only_branches", &self.only_branches)
            .field("enabled", &self.enabled)
            .finish_non_exhaustive()
    }
}

/// The push workers' own wake-up and the jobs this process holds (released at shutdown).
#[derive(Default)]
pub(crate) struct PushQueue {
    wake: Notify,
    held: std::sync::Mutex<std::collections::HashMap<i64, String>>,
}

/// `only_branches` checked, as stored.
fn parse_filter(patterns: Option<Vec<String>>) -> Result<Option<Vec<String>>, HubError> {
    match patterns {
        None => Ok(None),
        Some(list) => BranchFilter::parse(&list)
            .map(|f| Some(f.patterns().to_vec()))
            .map_err(|e| {
                HubError::invalid(ErrorCode::InvalidRequest, "only_branches", e.to_string())
            }),
    }
}

/// The rules a run follows.
fn rules_of(mirror: &PushMirror) -> Result<PushRules, String> {
    let only_branches = match &mirror.only_branches {
        Some(list) => Some(BranchFilter::parse(list).map_err(|e| e.to_string())?),
        None => None,
    };
    Ok(PushRules {
        only_branches,
        tags: mirror.tags,
        prune: mirror.prune,
        force: mirror.force,
    })
}

/// A push mirror's downstream address and login, checked: an SSH URL needs pinned host keys,
/// and logs in with a key, never a token.
struct Downstream {
    url: UpstreamUrl,
    credentials: Option<mirrorhub_core::Credentials>,
}

fn downstream(
    url: &str,
    username: Option<&str>,
    token: Option<&str>,
) -> Result<Downstream, HubError> {
    let (url, credentials) = request::upstream(url, username, token)?;
    Ok(Downstream { url, credentials })
}

impl Hub {
    /// A push mirror's pinned host keys, checked against its URL.
    fn push_known_hosts(url: &UpstreamUrl, text: &str) -> Result<Vec<HostKey>, HubError> {
        let keys = mirrorhub_core::parse_known_hosts(text, url).map_err(|e| {
            HubError::invalid(ErrorCode::InvalidRequest, "known_hosts", e.to_string())
        })?;
        if keys.is_empty() {
            return Err(HubError::invalid(ErrorCode::InvalidRequest, "known_hosts", "give the SSH server's host keys (known_hosts lines; POST /api/v1/ssh/host-keys shows them): an SSH push mirror trusts only pinned keys"));
        }
        Ok(keys)
    }

    /// Checks and records a push mirror of `repo`, and queues its first run when enabled.
    /// Only the address is checked here (against the policy); credentials are tried by every
    /// run, whose record says when they fail.
    #[tracing::instrument(skip_all, fields(repo_id = repo.id))]
    pub async fn create_push_mirror(
        &self,
        repo: &Repo,
        request: CreatePushMirror,
    ) -> Result<PushMirror, HubError> {
        let target = downstream(
            &request.url,
            request.username.as_deref(),
            request.token.as_deref(),
        )?;
        let ssh = target.url.scheme() == Scheme::Ssh;
        let (ssh_key_id, known_hosts) = if ssh {
            let text = request.known_hosts.as_deref().unwrap_or_default();
            let keys = Self::push_known_hosts(&target.url, text)?;
            if let Some(id) = request.ssh_key_id {
                self.owned_ssh_key(&repo.owner, id).await?;
            }
            (
                request.ssh_key_id,
                Some(mirrorhub_core::known_hosts_text(&keys)),
            )
        } else {
            if request.ssh_key_id.is_some() {
                return Err(HubError::invalid(
                    ErrorCode::InvalidRequest,
                    "ssh_key_id",
                    "an SSH key is for ssh:// downstreams: give username and token for http(s)",
                ));
            }
            (None, None)
        };
        let only_branches = parse_filter(request.only_branches)?;
        let interval = match request.sync_interval.as_deref().map(str::trim) {
            Some(text) if !text.is_empty() => {
                request::parse_interval(text, self.config.min_sync_interval)?
            }
            _ => self.config.default_sync_interval,
        };
        self.engine.check_address(&target.url).await?;
        let enabled = request.enabled.unwrap_or(true);
        let now = Utc::now();
        let new = NewPushMirror {
            repo_id: repo.id,
            url: target.url.to_string(),
            credentials: target.credentials,
            ssh_key_id,
            known_hosts,
            only_branches,
            tags: request.tags.unwrap_or(true),
            prune: request.prune.unwrap_or(true),
            force: request.force.unwrap_or(true),
            enabled,
            sync_interval_secs: interval.as_secs() as i64,
            next_push_at: enabled.then(|| now + chrono_of(interval.as_duration())),
        };
        let mirror = match self.store.create_push_mirror(&new, now).await {
            Err(StoreError::NotFound) => {
                return Err(HubError::NotFound(format!("{}/{}", repo.owner, repo.name)))
            }
            other => other?,
        };
        tracing::info!(push_mirror_id = mirror.id, url = %mirror.url, "push mirror created");
        if enabled {
            self.store
                .enqueue_push(mirror.id, PushTrigger::Create, now)
                .await?;
            self.push_queue.wake.notify_one();
        }
        Ok(mirror)
    }

    /// A repository's push mirrors, oldest first.
    pub async fn list_push_mirrors(&self, repo: &Repo) -> Result<Vec<PushMirror>, HubError> {
        Ok(self.store.list_push_mirrors(repo.id).await?)
    }

    /// One push mirror of `repo` (another repository's is not found, like a missing one).
    pub async fn get_push_mirror(&self, repo: &Repo, id: i64) -> Result<PushMirror, HubError> {
        match self.store.get_push_mirror(id).await? {
            Some(m) if m.repo_id == repo.id => Ok(m),
            _ => Err(HubError::PushMirrorNotFound(format!(
                "{}/{} has no push mirror with id {id}: list them with GET /api/v1/repos/{}/{}/push-mirrors",
                repo.owner, repo.name, repo.owner, repo.name
            ))),
        }
    }

    /// Changes a push mirror. A new URL starts over (what is known of the old downstream's
    /// refs is forgotten); a change queues a run when the target is enabled.
    pub async fn update_push_mirror(
        &self,
        repo: &Repo,
        id: i64,
        change: UpdatePushMirror,
    ) -> Result<PushMirror, HubError> {
        let mirror = self.get_push_mirror(repo, id).await?;
        let mut update = PushMirrorUpdate::default();
        let url_text = change
            .url
            .as_deref()
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .unwrap_or(&mirror.url)
            .to_owned();
        let target = downstream(&url_text, None, None)?;
        let ssh = target.url.scheme() == Scheme::Ssh;
        if change.url.as_deref().is_some_and(|u| !u.trim().is_empty()) {
            self.engine.check_address(&target.url).await?;
            update.url = Some(target.url.to_string());
            update.forget_refs = true;
            if let Some(from_url) = target.credentials.clone() {
                update.credentials = Some(Some(from_url));
            }
            if !ssh && mirror.ssh_key_id.is_some() {
                update.ssh_key_id = Some(None);
                update.known_hosts = Some(None);
            }
        }
        if change.remove_credentials {
            update.credentials = Some(None);
        } else if let Some(token) = change.token.as_deref().filter(|t| !t.is_empty()) {
            if ssh {
                return Err(HubError::invalid(
                    ErrorCode::InvalidRequest,
                    "token",
                    "an SSH downstream logs in with a key, not a token: give ssh_key_id",
                ));
            }
            update.credentials = Some(Some(request::credentials(
                change.username.as_deref(),
                token,
            )?));
        }
        if let Some(id) = change.ssh_key_id {
            if !ssh {
                return Err(HubError::invalid(
                    ErrorCode::InvalidRequest,
                    "ssh_key_id",
                    "an SSH key is for ssh:// downstreams",
                ));
            }
            self.owned_ssh_key(&repo.owner, id).await?;
            update.ssh_key_id = Some(Some(id));
        }
        if let Some(text) = change.known_hosts.as_deref() {
            let keys = Self::push_known_hosts(&target.url, text)?;
            update.known_hosts = Some(Some(mirrorhub_core::known_hosts_text(&keys)));
        } else if ssh && update.url.is_some() && mirror.known_hosts.is_none() {
            return Err(HubError::invalid(
                ErrorCode::InvalidRequest,
                "known_hosts",
                "an SSH downstream needs its pinned host keys: give known_hosts",
            ));
        }
        if let Some(only) = change.only_branches {
            update.only_branches = Some(parse_filter(only)?);
        }
        update.tags = change.tags;
        update.prune = change.prune;
        update.force = change.force;
        update.enabled = change.enabled;
        let mut interval = Duration::from_secs(mirror.sync_interval_secs.max(1) as u64);
        if let Some(text) = change
            .sync_interval
            .as_deref()
            .map(str::trim)
            .filter(|t| !t.is_empty())
        {
            let parsed = request::parse_interval(text, self.config.min_sync_interval)?;
            update.sync_interval_secs = Some(parsed.as_secs() as i64);
            interval = parsed.as_duration();
        }
        let enabled = change.enabled.unwrap_or(mirror.enabled);
        let now = Utc::now();
        update.next_push_at = Some(enabled.then(|| now + chrono_of(interval)));
        let updated = self
            .store
            .update_push_mirror(mirror.id, &update)
            .await?
            .ok_or_else(|| HubError::PushMirrorNotFound(format!("push mirror {id} is gone")))?;
        tracing::info!(push_mirror_id = id, "push mirror changed");
        if enabled {
            self.store
                .enqueue_push(updated.id, PushTrigger::Manual, now)
                .await?;
            self.push_queue.wake.notify_one();
        }
        Ok(updated)
    }

    /// Deletes a push mirror with its runs and queued jobs. The downstream is not touched.
    pub async fn delete_push_mirror(&self, repo: &Repo, id: i64) -> Result<(), HubError> {
        let mirror = self.get_push_mirror(repo, id).await?;
        self.store.delete_push_mirror(mirror.id).await?;
        tracing::info!(push_mirror_id = id, "push mirror deleted");
        Ok(())
    }

    /// Queues a run of one push mirror now ("push now"), coalescing with a queued one.
    pub async fn request_push(&self, repo: &Repo, id: i64) -> Result<PushMirror, HubError> {
        let mirror = self.get_push_mirror(repo, id).await?;
        if !mirror.enabled {
            return Err(HubError::InvalidState(format!(
                "push mirror {id} is disabled: enable it (PATCH with \"enabled\": true) to push"
            )));
        }
        self.store
            .enqueue_push(mirror.id, PushTrigger::Manual, Utc::now())
            .await?;
        self.push_queue.wake.notify_one();
        Ok(mirror)
    }

    /// A push mirror's runs, newest first.
    pub async fn list_push_runs(
        &self,
        repo: &Repo,
        id: i64,
        limit: i64,
    ) -> Result<Vec<PushRun>, HubError> {
        let mirror = self.get_push_mirror(repo, id).await?;
        Ok(self.store.list_push_runs(mirror.id, limit).await?)
    }

    /// Queues a run for every enabled push mirror of the repository (after a push to it or a
    /// sync that moved refs). Never fails the caller: a store failure is logged, and the
    /// fallback interval repairs what was missed.
    pub(crate) async fn queue_pushes(&self, repo_id: i64, trigger: PushTrigger) {
        match self
            .store
            .enqueue_repo_pushes(repo_id, trigger, Utc::now())
            .await
        {
            Ok(0) => {}
            Ok(n) => {
                tracing::debug!(queued = n, %trigger, "push mirror runs queued");
                self.wake_push_workers(n);
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not queue push mirror runs; the fallback interval will push later")
            }
        }
    }

    /// Records how a push mirror run ended: its run, refs and the target's status, in one
    /// store transaction.
    ///
    /// THE one place a push mirror run's outcome is recorded, whatever ended it (success,
    /// failure, refused refs): per target, `result.outcome` is `Success`/`Unchanged` or
    /// `Failed` with `result.error_code` and `result.error_message`. Notifications of push
    /// mirror outcomes are noted here, after the record is written.
    pub async fn finish_push_run(
        &self,
        mirror: &PushMirror,
        run_id: i64,
        result: &PushRunResult,
    ) -> Result<(), StoreError> {
        self.store
            .finish_push_run(run_id, mirror.id, result)
            .await?;
        // One notification per episode of this target's failures, and one when it recovers.
        if let Some(repo) = self.store.get_repo_by_id(mirror.repo_id).await? {
            let outcome = match result.outcome {
                Outcome::Failed => Err((
                    result
                        .error_code
                        .as_deref()
                        .and_then(ErrorCode::parse)
                        .unwrap_or(ErrorCode::GitFailed),
                    result.error_message.clone().unwrap_or_default(),
                )),
                _ => Ok(()),
            };
            // The stored URL carries no credentials (they are sealed apart).
            let label = mirror.url.clone();
            self.note_outcome(
                &repo,
                mirrorhub_core::notify::Subject::PushMirror {
                    id: mirror.id,
                    label,
                },
                outcome,
                false,
            )
            .await;
        }
        Ok(())
    }

    /// Wakes up to `n` idle push workers of this process (capped at their number).
    pub(crate) fn wake_push_workers(&self, n: u64) {
        for _ in 0..n.min(self.config.push_workers.max(1) as u64) {
            self.push_queue.wake.notify_one();
        }
    }

    /// Gives back the push jobs this process still holds (at shutdown).
    pub(crate) async fn release_held_push_jobs(&self) {
        let held: Vec<(i64, String)> = self
            .push_queue
            .held
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain()
            .collect();
        for (job, worker) in held {
            if let Err(e) = self.store.release_push_job(job, &worker, Utc::now()).await {
                tracing::warn!(job_id = job, error = %e, "could not release a push job at shutdown; its lease will expire");
            }
        }
    }

    /// What a push mirror's runs log in with.
    async fn push_login(
        &self,
        mirror: &PushMirror,
        url: &UpstreamUrl,
    ) -> Result<UpstreamLogin, HubError> {
        if url.scheme() != Scheme::Ssh {
            return Ok(UpstreamLogin::basic(mirror.credentials.clone()));
        }
        let key = match mirror.ssh_key_id {
            Some(id) => self.store.ssh_private_key(id).await?,
            None => None,
        };
        let keys = mirror
            .known_hosts
            .as_deref()
            .and_then(|t| mirrorhub_core::parse_known_hosts(t, url).ok())
            .unwrap_or_default();
        Ok(UpstreamLogin::ssh(key, keys))
    }

    /// When the fallback runs a target next after a run that ended at `at`: its interval after
    /// a success; capped backoff after a failure (`failures`: this one included).
    fn next_push_at(
        mirror: &PushMirror,
        at: DateTime<Utc>,
        failures: Option<u32>,
    ) -> Option<DateTime<Utc>> {
        if !mirror.enabled {
            return None;
        }
        let interval = Duration::from_secs(mirror.sync_interval_secs.max(1) as u64);
        let delay = match failures {
            None => interval,
            Some(n) => schedule::retry_delay(n, interval, mirror.id.max(0) as u64),
        };
        Some(at + chrono_of(delay))
    }
}

fn chrono_of(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::days(1))
}

/// A run's failure as the target's status and run record say it: the engine's message, told
/// of a downstream rather than an upstream where it matters.
fn failure_message(e: &GitError) -> String {
    match e {
        GitError::AuthFailed => "the downstream refused the credentials, or requires some: check the username and token, and that the token may push to the repository".to_owned(),
        GitError::SshAuthFailed => "the SSH server refused the hub's key: add the deploy key's public key to the downstream repository with write access".to_owned(),
        GitError::NotFound => "the downstream has no repository at this address: create it (empty) first, and check the URL's path".to_owned(),
        GitError::Io(_) => "the hub failed to read the repository; the operator's log has the cause".to_owned(),
        other => other.to_string().replace("the upstream", "the downstream"),
    }
}

/// Starts `n` push workers.
pub(crate) fn spawn_workers(
    hub: &Arc<Hub>,
    process: &str,
    shutdown: &CancellationToken,
    tasks: &mut tokio::task::JoinSet<()>,
) {
    for n in 0..hub.config.push_workers.max(1) {
        let worker_id = format!("{}-push-{n}", &process[..12.min(process.len())]);
        tasks.spawn(worker_loop(hub.clone(), worker_id, shutdown.clone()));
    }
}

async fn worker_loop(hub: Arc<Hub>, worker_id: String, shutdown: CancellationToken) {
    while !shutdown.is_cancelled() {
        match hub
            .store
            .claim_push_job(&worker_id, Utc::now(), hub.config.lease)
            .await
        {
            Ok(Some(job)) => {
                let span = tracing::info_span!("push_mirror", push_mirror_id = job.mirror_id, repo_id = job.repo_id, job_id = job.id, trigger = %job.trigger, worker = %worker_id);
                run_job(&hub, &worker_id, job).instrument(span).await;
            }
            Ok(None) => {
                tokio::select! {
                    _ = hub.push_queue.wake.notified() => {}
                    _ = tokio::time::sleep(hub.config.poll_interval) => {}
                    _ = shutdown.cancelled() => {}
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "could not claim a push job; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(hub.config.poll_interval * 5) => {}
                    _ = shutdown.cancelled() => {}
                }
            }
        }
    }
}

async fn run_job(hub: &Arc<Hub>, worker_id: &str, job: PushJob) {
    hub.push_queue
        .held
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(job.id, worker_id.to_owned());
    let result = try_run_job(hub, worker_id, &job).await;
    hub.push_queue
        .held
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(&job.id);
    if let Err(e) = result {
        tracing::error!(error = %e, "push bookkeeping failed; the job is released for a retry");
        let retry_at = Utc::now() + chrono::Duration::seconds(30);
        if let Err(e) = hub
            .store
            .release_push_job(job.id, worker_id, retry_at)
            .await
        {
            tracing::error!(error = %e, "could not release the push job; its lease will expire");
        }
    }
}

async fn try_run_job(hub: &Arc<Hub>, worker_id: &str, job: &PushJob) -> Result<(), StoreError> {
    let store = &hub.store;
    let (Some(mirror), Some(repo)) = (
        store.get_push_mirror(job.mirror_id).await?,
        store.get_repo_by_id(job.repo_id).await?,
    ) else {
        return store.complete_push_job(job.id, worker_id).await;
    };
    if !mirror.enabled {
        tracing::info!("disabled push mirror: the job is dropped");
        return store.complete_push_job(job.id, worker_id).await;
    }
    let now = Utc::now();
    let interrupted = store.fail_interrupted_push_runs(mirror.id, now).await?;
    let trigger = if interrupted > 0 || job.attempts > 1 {
        PushTrigger::Recovery
    } else {
        job.trigger
    };
    let run_id = store.start_push_run(mirror.id, trigger, now).await?;
    let lost_lease = CancellationToken::new();
    let keeper = tokio::spawn(keep_lease(
        hub.clone(),
        job.id,
        worker_id.to_owned(),
        lost_lease.clone(),
    ));
    let started = Instant::now();
    let outcome = tokio::select! {
        r = push(hub, &repo, &mirror) => Some(r),
        _ = lost_lease.cancelled() => None,
    };
    keeper.abort();
    let Some(outcome) = outcome else {
        tracing::warn!("lost the lease during the push; another worker took the job over");
        return Ok(());
    };
    let finished_at = Utc::now();
    let duration_ms = started.elapsed().as_millis() as u64;
    let failures = mirror.consecutive_failures.max(0) as u32 + 1;
    let result = match outcome {
        Ok(report) => {
            let rejected: Vec<String> = report
                .rejected()
                .map(|r| format!("{} ({})", r.name, r.reason.as_deref().unwrap_or("refused")))
                .collect();
            let changed = report.changed();
            let (outcome, code, message) = if !rejected.is_empty() {
                let shown = rejected
                    .iter()
                    .take(5)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ");
                (
                    Outcome::Failed,
                    Some(ErrorCode::PushRejected.as_str().to_owned()),
                    Some(format!(
                        "the downstream refused {} ref{}: {shown}{}",
                        rejected.len(),
                        if rejected.len() == 1 { "" } else { "s" },
                        if rejected.len() > 5 { ", …" } else { "" }
                    )),
                )
            } else if changed > 0 {
                (Outcome::Success, None, None)
            } else {
                (Outcome::Unchanged, None, None)
            };
            tracing::info!(duration_ms, changed, diverged = report.diverged.len(), rejected = rejected.len(), atomic = report.atomic, %outcome, "push mirror run finished");
            PushRunResult {
                finished_at,
                next_push_at: Hub::next_push_at(
                    &mirror,
                    finished_at,
                    (outcome == Outcome::Failed).then_some(failures),
                ),
                outcome,
                error_code: code,
                error_message: message,
                diverged: Some(report.diverged.clone()),
                known: report.known,
                forgotten: report.forgotten,
                refs: report.refs,
            }
        }
        Err((code, message)) => {
            if code == ErrorCode::Internal {
                tracing::error!(duration_ms, error = %message, "push mirror run failed on our side");
            } else {
                tracing::warn!(duration_ms, %code, error = %message, "push mirror run failed");
            }
            PushRunResult {
                finished_at,
                outcome: Outcome::Failed,
                error_code: Some(code.as_str().to_owned()),
                error_message: Some(message),
                refs: Vec::new(),
                diverged: None,
                known: Vec::new(),
                forgotten: Vec::new(),
                next_push_at: Hub::next_push_at(&mirror, finished_at, Some(failures)),
            }
        }
    };
    hub.finish_push_run(&mirror, run_id, &result).await?;
    store.complete_push_job(job.id, worker_id).await?;
    Ok(())
}

/// One run's git: what to push decided and pushed by the engine.
async fn push(
    hub: &Hub,
    repo: &Repo,
    mirror: &PushMirror,
) -> Result<mirrorhub_git::PushReport, (ErrorCode, String)> {
    let rules = rules_of(mirror).map_err(|why| (ErrorCode::InvalidRequest, why))?;
    let (url, _) = UpstreamUrl::parse(&mirror.url).map_err(|e| {
        (
            ErrorCode::InvalidUrl,
            format!("the stored URL is no longer valid: {e}"),
        )
    })?;
    let login = hub.push_login(mirror, &url).await.map_err(|e| {
        tracing::error!(error = ?e, "could not read the push mirror's login");
        (
            ErrorCode::Internal,
            "the hub could not read the push mirror's login; the operator's log has the cause"
                .to_owned(),
        )
    })?;
    let pushed = hub.store.pushed_refs(mirror.id).await.map_err(|e| {
        tracing::error!(error = ?e, "could not read the push mirror's known refs");
        (
            ErrorCode::Internal,
            "the hub could not read its records; the operator's log has the cause".to_owned(),
        )
    })?;
    let slot = hub.host_slot(&url.authority());
    let _permit = slot.acquire_owned().await.map_err(|_| {
        (
            ErrorCode::Unavailable,
            "the hub is shutting down".to_owned(),
        )
    })?;
    hub.engine
        .push_mirror(&url, login.auth(), &hub.repo_path(repo.id), &rules, &pushed)
        .await
        .map_err(|e| {
            if matches!(e, GitError::Io(_)) {
                tracing::error!(error = ?e, "push mirror run failed on our side");
            }
            (e.code(), failure_message(&e))
        })
}

async fn keep_lease(hub: Arc<Hub>, job_id: i64, worker_id: String, lost: CancellationToken) {
    let every = hub.config.lease / 3;
    loop {
        tokio::time::sleep(every).await;
        match hub
            .store
            .renew_push_lease(job_id, &worker_id, Utc::now(), hub.config.lease)
            .await
        {
            Ok(true) => {}
            Ok(false) => {
                lost.cancel();
                return;
            }
            Err(e) => tracing::warn!(error = %e, "could not renew the push lease"),
        }
    }
}

/// How many of a run's refs were of each kind, for summaries (web UI, CLI).
pub fn count_kind(run: &PushRun, kind: PushRefKind) -> usize {
    run.refs.iter().filter(|r| r.kind == kind).count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_token() {
        let create = CreatePushMirror {
            url: "https://backup.example.org/team/app.git".into(),
            token: Some("t0k-secret".into()),
            ..Default::default()
        };
        let update = UpdatePushMirror {
            token: Some("t0k-secret".into()),
            ..Default::default()
        };
        for shown in [format!("{create:?}"), format!("{update:?}")] {
            assert!(!shown.contains("t0k-secret"), "{shown}");
            assert!(shown.contains("[redacted]"), "{shown}");
        }
    }

    #[test]
    fn bad_patterns_name_the_field_and_the_pattern() {
        let e = parse_filter(Some(vec!["main".into(), "/(/".into()])).unwrap_err();
        assert_eq!(e.field(), Some("only_branches"));
        assert_eq!(e.code(), ErrorCode::InvalidRequest);
        assert!(e.to_string().contains("\"/(/\""), "{e}");
        assert_eq!(parse_filter(None).unwrap(), None);
    }

    #[test]
    fn downstream_failures_speak_of_the_downstream() {
        assert!(failure_message(&GitError::AuthFailed).contains("may push"));
        let unreachable = GitError::Unreachable {
            detail: "connection refused".into(),
        };
        assert!(failure_message(&unreachable).contains("the downstream"));
    }
}

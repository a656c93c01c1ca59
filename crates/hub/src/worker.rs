//! Workers drain the durable sync queue; the scheduler feeds it with due mirrors.
//!
//! A worker claims a job with a lease, renews the lease while git runs, records the run and
//! its ref journal, and completes the job. If the process dies, the lease runs out and
//! another worker (or this one after a restart) takes the job again; the git engine makes
//! every transfer all-or-nothing, so running a job twice does no harm.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use mirrorhub_core::schedule;
use mirrorhub_core::{Outcome, Trigger};
use mirrorhub_git::{Progress, SyncReport};
use mirrorhub_store::{Job, Repo, SyncContext, SyncResult};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::Hub;

/// Starts the workers and the scheduler. They stop claiming new work when `shutdown` is
/// cancelled; a sync already running is finished.
pub fn spawn(hub: Arc<Hub>, shutdown: CancellationToken) -> JoinSet<()> {
    let mut tasks = JoinSet::new();
    let process = uuid::Uuid::new_v4().simple().to_string();
    for n in 0..hub.config.workers.max(1) {
        let worker_id = format!("{}-{n}", &process[..12]);
        tasks.spawn(worker_loop(hub.clone(), worker_id, shutdown.clone()));
    }
    tasks.spawn(crate::mirror_sets::listing_loop(
        hub.clone(),
        format!("{}-sets", &process[..12]),
        shutdown.clone(),
    ));
    crate::push_mirrors::spawn_workers(&hub, &process, &shutdown, &mut tasks);
    crate::notifications::spawn_senders(&hub, &process, &shutdown, &mut tasks);
    tasks.spawn(scheduler_loop(hub, shutdown));
    tasks
}

async fn worker_loop(hub: Arc<Hub>, worker_id: String, shutdown: CancellationToken) {
    while !shutdown.is_cancelled() {
        match hub
            .store
            .claim_job(&worker_id, Utc::now(), hub.config.lease)
            .await
        {
            Ok(Some(job)) => {
                let span = tracing::info_span!("sync", repo_id = job.repo_id, job_id = job.id, trigger = %job.trigger, worker = %worker_id);
                run_job(&hub, &worker_id, job).instrument(span).await;
            }
            Ok(None) => {
                tokio::select! {
                    _ = hub.wake.notified() => {}
                    _ = tokio::time::sleep(hub.config.poll_interval) => {}
                    _ = shutdown.cancelled() => {}
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "could not claim a job; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(hub.config.poll_interval * 5) => {}
                    _ = shutdown.cancelled() => {}
                }
            }
        }
    }
}

/// The most push mirror runs the scheduler queues per tick (the rest wait for the next).
const PUSHES_PER_TICK: i64 = 1000;

/// Webhook silence checks (one upstream listing each) per scheduler tick at most.
const SILENCE_CHECKS_PER_TICK: i64 = 200;

/// How often the leading scheduler forgets old webhook delivery ids and log lines, and
/// expires backups.
const PRUNE_EVERY: std::time::Duration = std::time::Duration::from_secs(3600);

/// Feeds the queue with due mirrors. Only one process leads (see `Store::lead_scheduler`);
/// the pacer lets through what became due since the last tick plus some headroom, so after
/// downtime the overdue mirrors are caught up stalest first, spread over time.
async fn scheduler_loop(hub: Arc<Hub>, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(hub.config.schedule_tick);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut pacer = schedule::Pacer::default();
    let mut previous =
        Utc::now() - chrono::Duration::from_std(hub.config.schedule_tick).unwrap_or_default();
    let mut pruned_at: Option<std::time::Instant> = None;
    let mut silence = None;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.cancelled() => return,
        }
        match hub.store.lead_scheduler().await {
            Ok(true) => {}
            Ok(false) => {
                // Another replica schedules; be ready to take over from a fresh start.
                previous = Utc::now();
                continue;
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not take the scheduler lock");
                continue;
            }
        }
        if pruned_at.is_none_or(|at| at.elapsed() >= PRUNE_EVERY) {
            pruned_at = Some(std::time::Instant::now());
            if let Err(e) = hub.prune_webhook_deliveries().await {
                tracing::warn!(error = %e, "could not prune old webhook deliveries");
            }
            match hub.expire_backups(Utc::now()).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(removed = n, "expired backups removed"),
                Err(e) => tracing::warn!(error = %e, "could not expire old backups"),
            }
        }
        // In the background (each is a listing of an upstream), one round at a time.
        if silence
            .as_ref()
            .is_none_or(|h: &tokio::task::JoinHandle<()>| h.is_finished())
        {
            let hub = Arc::clone(&hub);
            silence = Some(tokio::spawn(async move {
                if let Err(e) = hub.check_silence(Utc::now(), SILENCE_CHECKS_PER_TICK).await {
                    tracing::warn!(error = %e, "could not run the webhook silence checks");
                }
            }));
        }
        hub.check_stale().await;
        let now = Utc::now();
        // Push mirrors whose fallback interval passed (a missed push is repaired).
        match hub.store.enqueue_due_pushes(now, PUSHES_PER_TICK).await {
            Ok(0) => {}
            Ok(n) => {
                tracing::debug!(queued = n, "scheduled due push mirrors");
                hub.wake_push_workers(n);
            }
            Err(e) => tracing::error!(error = %e, "could not schedule due push mirrors"),
        }
        let newly_due = match hub.store.count_due_between(previous, now).await {
            Ok(n) => n,
            Err(e) => {
                tracing::error!(error = %e, "could not count due mirrors");
                continue;
            }
        };
        let elapsed = (now - previous).to_std().unwrap_or_default();
        previous = now;
        let limit = pacer.batch(newly_due, elapsed);
        if limit == 0 {
            continue;
        }
        match hub.store.enqueue_due(now, limit as i64).await {
            Ok(0) => {}
            Ok(n) => {
                tracing::debug!(queued = n, "scheduled due mirrors");
                for _ in 0..n.min(hub.config.workers as u64) {
                    hub.wake.notify_one();
                }
            }
            Err(e) => tracing::error!(error = %e, "could not schedule due mirrors"),
        }
    }
}

async fn run_job(hub: &Arc<Hub>, worker_id: &str, job: Job) {
    // Held until the sync is over. If the task is aborted at shutdown, the entry stays and
    // `Hub::release_held_jobs` gives the job back.
    hub.held
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(job.id, worker_id.to_owned());
    let result = try_run_job(hub, worker_id, &job).await;
    hub.held
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(&job.id);
    if let Err(e) = result {
        // The store failed around the sync. Put the job back so it runs again later.
        tracing::error!(error = %e, "sync bookkeeping failed; the job is released for a retry");
        let retry_at = Utc::now() + chrono::Duration::seconds(30);
        if let Err(e) = hub.store.release_job(job.id, worker_id, retry_at).await {
            tracing::error!(error = %e, "could not release the job; its lease will expire");
        }
    }
}

async fn try_run_job(
    hub: &Arc<Hub>,
    worker_id: &str,
    job: &Job,
) -> Result<(), mirrorhub_store::StoreError> {
    let store = &hub.store;
    let Some(context) = store.sync_context(job.repo_id).await? else {
        return store.complete_job(job.id, worker_id).await;
    };
    let repo = &context.repo;
    if repo.mode == mirrorhub_core::Mode::Migrate && repo.state == mirrorhub_core::RepoState::Ready
    {
        tracing::info!("migrated repository: the job is dropped, it is never synced again");
        return store.complete_job(job.id, worker_id).await;
    }
    let promoting = job.trigger == Trigger::Promote;
    // Taken up again after a crash, a promotion is still a promotion; any other job is a
    // recovery (when the runs a dead hub left open are closed, or the job was claimed before).
    let on_recovery = if promoting {
        Trigger::Promote
    } else {
        Trigger::Recovery
    };
    let trigger = if job.attempts > 1 {
        on_recovery
    } else {
        job.trigger
    };
    let lost_lease = CancellationToken::new();
    let lease_keeper = tokio::spawn(keep_lease(
        hub.clone(),
        job.id,
        worker_id.to_owned(),
        lost_lease.clone(),
    ));
    // A stat: not worth a hop to the blocking pool.
    let first_copy = !hub.repo_path(repo.id).exists();
    let started_at = Utc::now();
    let started = Instant::now();
    let listed: crate::fidelity::ListedSlot = Default::default();

    // Most syncs find nothing new. The upstream is listed before a run is opened; when it
    // equals the mirror, the run is recorded whole in one transaction (no run is `running`
    // meanwhile: a crash now leaves nothing to clean up, as a listing writes nothing).
    // Recoveries and promotions take the full path, and so do mirrors of LFS objects, whose
    // unchanged syncs still fetch the objects earlier runs could not.
    let quick_check = !first_copy
        && !promoting
        && job.attempts <= 1
        && repo.mode == mirrorhub_core::Mode::Mirror
        && !repo.lfs.enabled;
    let listing = if quick_check {
        let listing = tokio::select! {
            r = list_upstream(hub, &context, &listed) => r,
            _ = lost_lease.cancelled() => {
                lease_keeper.abort();
                tracing::warn!("lost the lease while listing the upstream; another worker took the job over");
                return Ok(());
            }
        };
        let unchanged = listing.as_ref().ok().and_then(|(_, l)| l.unchanged());
        if let Some(report) = unchanged {
            // The host's slot is free again before the bookkeeping.
            drop(listing);
            lease_keeper.abort();
            return finish_unchanged(hub, worker_id, job, repo, started_at, started, report).await;
        }
        Some(listing)
    } else {
        None
    };

    let opened = store
        .open_run(repo.id, trigger, on_recovery, Utc::now())
        .await?;
    let run_id = opened.id;
    // A hub died during this repository's previous sync.
    let recovering = opened.interrupted > 0 || job.attempts > 1;
    if recovering {
        // The dead hub's git (its own process group) may still be writing the repository.
        hub.engine.stop_stray_git(&hub.repo_path(repo.id)).await;
    }

    let (progress_tx, progress_rx) = tokio::sync::watch::channel::<Option<Progress>>(None);
    let progress_writer = tokio::spawn(write_progress(hub.clone(), repo.id, progress_rx));

    let outcome = tokio::select! {
        r = async {
            let report = match listing {
                Some(listing) => {
                    let (upstream, listing) = listing?;
                    hub.engine
                        .sync_listed(&upstream.url, upstream.login.auth(), listing, progress(progress_tx), &upstream.options)
                        .await?
                }
                None => transfer(hub, &context, first_copy, progress_tx, &listed).await?,
            };
            // LFS objects of the commits this run brought; never fails the run.
            let warning = hub.mirror_lfs(repo, &report).await;
            Ok::<_, mirrorhub_git::GitError>((report, warning))
        } => Some(r),
        _ = lost_lease.cancelled() => None,
    };
    lease_keeper.abort();
    progress_writer.abort();
    let Some(result) = outcome else {
        // Another worker owns the job now; it records its own run. Ours is marked interrupted
        // by that worker's `fail_interrupted_runs`.
        tracing::warn!("lost the lease during the sync; another worker took the job over");
        return Ok(());
    };

    let finished_at = Utc::now();
    let duration_ms = started.elapsed().as_millis() as u64;
    // The last copy from the upstream (a migration's, a promotion's) must bring every LFS
    // object it can: while some are missing for a reason a retry can fix, it fails, to be
    // tried again (sync, or promote, again) rather than leaving a primary without them for
    // good. What no retry can bring (an object the upstream lacks or serves corrupt) is a
    // warning, as for mirrors.
    let last_copy = promoting
        || (repo.mode == mirrorhub_core::Mode::Migrate
            && repo.state != mirrorhub_core::RepoState::Ready);
    // The LFS part of the run, for notifications (only when the transfer worked).
    let lfs_outcome = match &result {
        Ok((_, lfs)) => Some(match &lfs.warning {
            Some(warning) => Err((
                lfs.transient
                    .unwrap_or(mirrorhub_core::ErrorCode::LfsObjectMissing),
                warning.clone(),
            )),
            None => Ok(()),
        }),
        Err(_) => None,
    };
    let result = match result {
        Ok((report, lfs)) => match lfs.transient {
            Some(code) if last_copy => Err((
                code,
                format!(
                    "the copy is not complete: LFS objects are missing ({}). Sync again when the upstream's LFS server answers",
                    lfs.warning.as_deref().unwrap_or(code.as_str())
                ),
            )),
            _ => Ok((report, lfs.warning)),
        },
        Err(e) => {
            let code = e.code();
            if code == mirrorhub_core::ErrorCode::Internal {
                tracing::error!(duration_ms, error = ?e, "sync failed on our side");
                Err((
                    code,
                    "the hub failed to write the repository; the operator's log has the cause"
                        .to_owned(),
                ))
            } else {
                Err((code, e.to_string()))
            }
        }
    };
    let mut note = crate::fidelity::RunNote {
        recovering,
        ..Default::default()
    };
    let sync_result = match result {
        Ok((report, warning)) => {
            note.backups = report.backups.clone();
            if let Some(warning) = &warning {
                tracing::warn!(%warning, "the sync succeeded with warnings");
                store.set_run_warnings(run_id, warning).await?;
            }
            let outcome = if !report.changes.is_empty() {
                Outcome::Success
            } else {
                Outcome::Unchanged
            };
            tracing::info!(duration_ms, changes = report.changes.len(), branches = report.branches, tags = report.tags, noop = report.noop, backups = report.backups.len(), %outcome, "sync finished");
            success(hub, repo, finished_at, outcome, report)
        }
        Err((code, message)) => {
            note.failed_behind = *listed.lock().unwrap_or_else(|e| e.into_inner());
            if code != mirrorhub_core::ErrorCode::Internal {
                tracing::warn!(duration_ms, %code, error = %message, "sync failed");
            }
            let failures = repo.consecutive_failures.max(0) as u32 + 1;
            // A changed host key is paused at once: only a person accepting the new key can
            // make the next sync different, and retrying would only knock on the door again.
            let pause = repo.mode == mirrorhub_core::Mode::Mirror
                && schedule::classify(code) == schedule::FailureClass::Permanent
                && (failures >= hub.config.pause_after
                    || code == mirrorhub_core::ErrorCode::HostKeyMismatch);
            if pause {
                tracing::warn!(%code, failures, "paused after repeated permanent failures: no more scheduled syncs until someone syncs it or changes its settings");
            }
            SyncResult {
                finished_at,
                outcome: Outcome::Failed,
                error_code: Some(code.as_str().to_owned()),
                error_message: Some(message),
                ref_changes: vec![],
                branches: repo.branches,
                tags: repo.tags,
                head_ref: repo.head_ref.clone(),
                next_sync_at: if pause {
                    None
                } else {
                    hub.next_sync_at(repo, finished_at, Some(code))
                },
                pause,
                promote: false,
            }
        }
    };
    let sync_result = if promoting {
        check_promotion(hub, repo, sync_result).await
    } else {
        sync_result
    };
    // Backups first: whoever reads the run once it is finished finds them.
    hub.record_run_note(repo, run_id, note).await;
    // Before the job is completed: a crash here runs the job again, whose outcome is noted
    // again (an episode is told once).
    hub.note_run(repo, &sync_result, lfs_outcome).await;
    if !store
        .finish_job(job.id, worker_id, run_id, repo.id, &sync_result)
        .await?
    {
        // Deleted while we worked: the clone may have put a directory back after the delete.
        let _ = hub.remove_repo_files(repo.id).await;
        return Ok(());
    }
    if sync_result.outcome == Outcome::Success {
        // The mirror moved: push it on to its push mirrors.
        hub.queue_pushes(repo.id, mirrorhub_core::push_mirror::PushTrigger::Sync)
            .await;
    }
    if sync_result.outcome == Outcome::Success {
        housekeeping(hub, repo.id, first_copy).await;
    }
    if sync_result.promote {
        tracing::info!(
            "promoted to primary: the hub's copy equals the upstream, and is never synced again"
        );
        hub.unregister_webhook(repo).await;
    }
    Ok(())
}

/// Indexes a repository after a sync or a push that changed it, outside the measured sync
/// (its run is already recorded): new commits go into the commit-graph, which makes the next sync and every
/// clone from the hub cheaper; after the first copy, reachability bitmaps are written too, so
/// clones from the hub count objects with bitmaps instead of walking the whole history. A
/// failure costs only speed, and is logged.
pub(crate) async fn housekeeping(hub: &Hub, repo_id: i64, first_copy: bool) {
    let path = hub.repo_path(repo_id);
    let started = Instant::now();
    match hub.engine.write_commit_graph(&path).await {
        Ok(()) => tracing::debug!(
            duration_ms = started.elapsed().as_millis() as u64,
            "commit-graph updated"
        ),
        Err(e) => {
            tracing::warn!(error = %e, "the commit-graph could not be updated; syncs and clones of this repository will be slower until the next sync writes it")
        }
    }
    if first_copy {
        let started = Instant::now();
        match hub.engine.write_bitmaps(&path).await {
            Ok(()) => tracing::info!(
                duration_ms = started.elapsed().as_millis() as u64,
                "reachability bitmaps written"
            ),
            Err(e) => {
                tracing::warn!(error = %e, "reachability bitmaps could not be written; clones from the hub will be slower")
            }
        }
    }
}

/// After a promotion's final sync: promote only if every branch and tag now equals the
/// upstream's; otherwise the run fails, saying why, and the repository stays a mirror.
async fn check_promotion(hub: &Hub, repo: &Repo, result: SyncResult) -> SyncResult {
    let refused = |code: mirrorhub_core::ErrorCode, why: String| SyncResult {
        outcome: Outcome::Failed,
        error_code: Some(code.as_str().to_owned()),
        error_message: Some(format!("the mirror was not promoted: {why}")),
        ..result.clone()
    };
    if result.outcome == Outcome::Failed {
        let why = format!(
            "the final sync failed ({}). Promote again when the upstream answers, or with force",
            result.error_message.as_deref().unwrap_or_default()
        );
        return SyncResult {
            error_message: Some(format!("the mirror was not promoted: {why}")),
            ..result
        };
    }
    let checked = match mirrorhub_core::UpstreamUrl::parse(&repo.upstream_url) {
        Ok((url, _)) => match (hub.login_for(repo).await, hub.stored_filter(repo).await) {
            (Ok(login), Ok(filter)) => {
                hub.engine
                    .differences(&url, login.auth(), &hub.repo_path(repo.id), &filter)
                    .await
            }
            (_, Err(e)) => Err(mirrorhub_git::GitError::Failed {
                detail: format!("the ref filter could not be read: {e}"),
            }),
            (Err(e), _) => Err(mirrorhub_git::GitError::Failed {
                detail: format!("the upstream's key could not be read: {e}"),
            }),
        },
        Err(e) => Err(mirrorhub_git::GitError::Failed {
            detail: format!("the stored upstream URL is no longer valid: {e}"),
        }),
    };
    match checked {
        Ok(differing) if differing.is_empty() => SyncResult {
            next_sync_at: None,
            promote: true,
            ..result
        },
        Ok(differing) => refused(
            mirrorhub_core::ErrorCode::InvalidState,
            format!(
                "the upstream changed during the final sync ({} differ{}, first {}). Promote again",
                if differing.len() == 1 { "1 ref".to_owned() } else { format!("{} refs", differing.len()) },
                if differing.len() == 1 { "s" } else { "" },
                differing[0]
            ),
        ),
        Err(e) => refused(
            e.code(),
            format!("the upstream could not be checked after the final sync ({e}). Promote again, or with force"),
        ),
    }
}

fn success(
    hub: &Hub,
    repo: &Repo,
    finished_at: chrono::DateTime<Utc>,
    outcome: Outcome,
    report: SyncReport,
) -> SyncResult {
    SyncResult {
        finished_at,
        outcome,
        error_code: None,
        error_message: None,
        ref_changes: report.changes,
        branches: report.branches as i64,
        tags: report.tags as i64,
        head_ref: report.head,
        next_sync_at: hub.next_sync_at(repo, finished_at, None),
        pause: false,
        promote: false,
    }
}

/// What a sync reaches its upstream with, and its turn at the upstream's host.
struct Upstream {
    url: mirrorhub_core::UpstreamUrl,
    login: crate::ssh::UpstreamLogin,
    options: mirrorhub_git::SyncOptions,
    /// Per-host limit: held (with the lease) until the sync is over.
    _slot: tokio::sync::OwnedSemaphorePermit,
}

/// Waits for a free slot at the upstream's host, and reads the login and options to use.
async fn reach_upstream(
    hub: &Hub,
    context: &SyncContext,
    listed: &crate::fidelity::ListedSlot,
) -> Result<Upstream, mirrorhub_git::GitError> {
    let repo = &context.repo;
    let (url, _) = mirrorhub_core::UpstreamUrl::parse(&repo.upstream_url).map_err(|e| {
        mirrorhub_git::GitError::Failed {
            detail: format!("the stored upstream URL is no longer valid: {e}"),
        }
    })?;
    let slot = hub
        .host_slot(&url.authority())
        .acquire_owned()
        .await
        .map_err(|_| mirrorhub_git::GitError::Failed {
            detail: "the hub is shutting down".into(),
        })?;
    let login = hub
        .login_with(repo, context.set_installation)
        .await
        .map_err(|e| {
            tracing::error!(error = ?e, "could not read the repository's upstream login");
            mirrorhub_git::GitError::Io(std::io::Error::other("reading the upstream login"))
        })?;
    let options = hub
        .sync_options(context.ref_filter.as_ref(), listed)
        .map_err(|e| match e {
            crate::HubError::InvalidState(detail) => mirrorhub_git::GitError::Failed { detail },
            e => {
                tracing::error!(error = ?e, "could not read the repository's ref filter");
                mirrorhub_git::GitError::Io(std::io::Error::other("reading the ref filter"))
            }
        })?;
    Ok(Upstream {
        url,
        login,
        options,
        _slot: slot,
    })
}

/// The first half of a sync of an existing mirror: the upstream listed and compared with it,
/// nothing written.
async fn list_upstream(
    hub: &Hub,
    context: &SyncContext,
    listed: &crate::fidelity::ListedSlot,
) -> Result<(Upstream, mirrorhub_git::SyncListing), mirrorhub_git::GitError> {
    let upstream = reach_upstream(hub, context, listed).await?;
    let listing = hub
        .engine
        .list_for_sync(
            &upstream.url,
            upstream.login.auth(),
            &hub.repo_path(context.repo.id),
            &upstream.options,
        )
        .await?;
    Ok((upstream, listing))
}

/// Records a sync whose listing found the upstream equal to the mirror: the run, the
/// repository's record and the job in one transaction; then what is rare (a dead worker's
/// runs closed, an open notification episode) as the full path does it.
async fn finish_unchanged(
    hub: &Hub,
    worker_id: &str,
    job: &Job,
    repo: &Repo,
    started_at: chrono::DateTime<Utc>,
    started: Instant,
    report: SyncReport,
) -> Result<(), mirrorhub_store::StoreError> {
    let finished_at = Utc::now();
    let duration_ms = started.elapsed().as_millis() as u64;
    tracing::info!(duration_ms, changes = 0, branches = report.branches, tags = report.tags, noop = true, backups = 0, outcome = %Outcome::Unchanged, "sync finished");
    let result = success(hub, repo, finished_at, Outcome::Unchanged, report);
    let Some(run) = hub
        .store
        .finish_unchanged_job(job.id, worker_id, repo.id, job.trigger, started_at, &result)
        .await?
    else {
        return Ok(());
    };
    if run.interrupted > 0 {
        // A hub died during this repository's previous sync: its git may still run, and
        // the backups it made are recorded now.
        hub.engine.stop_stray_git(&hub.repo_path(repo.id)).await;
        let note = crate::fidelity::RunNote {
            recovering: true,
            ..Default::default()
        };
        hub.record_run_note(repo, run.id, note).await;
    }
    if run.episode_open {
        hub.note_run(repo, &result, Some(Ok(()))).await;
    }
    Ok(())
}

/// Clones when there is no local copy yet (first sync, or an initial clone that failed or
/// was interrupted), syncs otherwise.
async fn transfer(
    hub: &Hub,
    context: &SyncContext,
    first_copy: bool,
    progress_tx: tokio::sync::watch::Sender<Option<Progress>>,
    listed: &crate::fidelity::ListedSlot,
) -> Result<SyncReport, mirrorhub_git::GitError> {
    let upstream = reach_upstream(hub, context, listed).await?;
    let path = hub.repo_path(context.repo.id);
    if !first_copy {
        hub.engine
            .sync_mirror_with(
                &upstream.url,
                upstream.login.auth(),
                &path,
                progress(progress_tx),
                &upstream.options,
            )
            .await
    } else {
        hub.engine
            .clone_mirror_with(
                &upstream.url,
                upstream.login.auth(),
                &path,
                progress(progress_tx),
                &upstream.options.filter,
            )
            .await
    }
}

/// Git's progress, passed on to the task that writes it to the repository's record.
fn progress(tx: tokio::sync::watch::Sender<Option<Progress>>) -> mirrorhub_git::ProgressFn {
    Arc::new(move |p| {
        tx.send_replace(Some(p));
    })
}

async fn keep_lease(hub: Arc<Hub>, job_id: i64, worker_id: String, lost: CancellationToken) {
    let every = hub.config.lease / 3;
    loop {
        tokio::time::sleep(every).await;
        match hub
            .store
            .renew_lease(job_id, &worker_id, Utc::now(), hub.config.lease)
            .await
        {
            Ok(true) => {}
            Ok(false) => {
                lost.cancel();
                return;
            }
            // A database hiccup: keep trying until the lease would really be gone.
            Err(e) => tracing::warn!(error = %e, "could not renew the lease"),
        }
    }
}

/// Writes the latest progress at most twice a second; intermediate values are skipped.
async fn write_progress(
    hub: Arc<Hub>,
    repo_id: i64,
    mut rx: tokio::sync::watch::Receiver<Option<Progress>>,
) {
    while rx.changed().await.is_ok() {
        let latest = rx.borrow_and_update().clone();
        if let Some(p) = latest {
            if let Err(e) = hub
                .store
                .set_progress(repo_id, Some(&p.phase), Some(i32::from(p.percent)))
                .await
            {
                tracing::debug!(error = %e, "could not record progress");
            }
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

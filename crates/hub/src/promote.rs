//! Promoting a mirror to primary: the hub becomes the repository's home for good; and the
//! record of each push to a primary.
//!
//! Unforced, the upstream must answer first (else the request is refused at once, saying how
//! to force it); a `promote` job then makes one final sync, checks that every branch and tag
//! equals the upstream's, and only then records the promotion, in the same transaction as the
//! run (`SyncResult::promote`). A forced promotion skips the final sync: for an upstream that
//! is gone.

use chrono::Utc;
use mirrorhub_core::{Mode, Outcome, RepoState, Trigger, UpstreamUrl};
use mirrorhub_store::{Repo, SyncResult};

use crate::{Hub, HubError};

impl Hub {
    /// Queues the promotion of a mirror (or, with `force`, promotes it now without a final
    /// sync). Returns the repository as it is after the call.
    #[tracing::instrument(skip(self))]
    pub async fn promote(&self, owner: &str, name: &str, force: bool) -> Result<Repo, HubError> {
        let repo = self.get_repo(owner, name).await?;
        if repo.mode == Mode::Migrate {
            return Err(HubError::InvalidState(format!(
                "{owner}/{name} is already the primary: there is nothing to promote"
            )));
        }
        if repo.state != RepoState::Ready {
            return Err(HubError::InvalidState(format!(
                "{owner}/{name} has no complete copy yet ({}): wait for the first sync to succeed, or delete it",
                repo.state
            )));
        }
        if force {
            let now = Utc::now();
            let run = self.store.start_run(repo.id, Trigger::Promote, now).await?;
            self.store
                .finish_run(
                    run,
                    repo.id,
                    &SyncResult {
                        finished_at: Utc::now(),
                        outcome: Outcome::Unchanged,
                        error_code: None,
                        error_message: None,
                        ref_changes: vec![],
                        branches: repo.branches,
                        tags: repo.tags,
                        head_ref: repo.head_ref.clone(),
                        next_sync_at: None,
                        pause: false,
                        promote: true,
                    },
                )
                .await?;
            tracing::warn!(
                repo_id = repo.id,
                "promoted to primary without a final sync (forced)"
            );
            self.unregister_webhook(&repo).await;
            return self.get_repo(owner, name).await;
        }
        let (url, _) = UpstreamUrl::parse(&repo.upstream_url).map_err(|e| {
            HubError::InvalidState(format!(
                "the stored upstream URL is no longer valid ({e}): promote with force"
            ))
        })?;
        let login = self.login_for(&repo).await?;
        if let Err(e) = self.engine.probe(&url, login.auth()).await {
            return Err(HubError::PromoteRefused(e));
        }
        self.store
            .enqueue_sync(repo.id, Trigger::Promote, Utc::now())
            .await?;
        self.wake.notify_one();
        Ok(repo)
    }
}

impl Hub {
    /// Records a push to a primary repository as a run (trigger `push`) with its ref changes,
    /// and updates the repository's counts. `before` was taken before the push started; pushes
    /// to one repository must not overlap (the git edge serialises them). Nothing is recorded
    /// when the push changed no ref.
    pub async fn record_push(
        &self,
        repo: &Repo,
        before: &mirrorhub_git::RefSnapshot,
        started_at: chrono::DateTime<Utc>,
    ) -> Result<(), HubError> {
        let (changes, summary) = self
            .engine
            .changes_since(&self.repo_path(repo.id), before)
            .await?;
        if changes.is_empty() {
            return Ok(());
        }
        let run = self
            .store
            .start_run(repo.id, Trigger::Push, started_at)
            .await?;
        let result = SyncResult {
            finished_at: Utc::now(),
            outcome: Outcome::Success,
            error_code: None,
            error_message: None,
            ref_changes: changes,
            branches: summary.branches as i64,
            tags: summary.tags as i64,
            head_ref: summary.head,
            next_sync_at: None,
            pause: false,
            promote: false,
        };
        self.store.finish_run(run, repo.id, &result).await?;
        tracing::info!(
            repo_id = repo.id,
            changes = result.ref_changes.len(),
            "push recorded"
        );
        self.queue_pushes(repo.id, mirrorhub_core::push_mirror::PushTrigger::Push)
            .await;
        // The pushed commits join the commit-graph, as a sync's do.
        crate::worker::housekeeping(self, repo.id, false).await;
        Ok(())
    }
}

//! [`PushMirrorStore`] on PostgreSQL. Claimers of several replicas take candidates with
//! `FOR UPDATE SKIP LOCKED` and serialise on the push mirror's row before taking a lease, so
//! one target is never pushed twice at once (as sync jobs serialise on the repository's row).

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use mirrorhub_core::push_mirror::{PushRefResult, PushTrigger};
use mirrorhub_core::{Outcome, RepoState};
use sqlx::postgres::PgRow;
use sqlx::{Postgres, QueryBuilder, Row};

use super::{is_retryable, PgStore};
use crate::push_mirrors::{
    join_lines, parse_push_kind, parse_push_trigger, split_lines, REFS_PER_INSERT,
};
use crate::{
    check_final, lease_end, parse_outcome, NewPushMirror, PushJob, PushMirror, PushMirrorStore,
    PushMirrorUpdate, PushRun, PushRunResult, StoreError, INTERRUPTED_CODE,
};

const COLUMNS: &str = "id, repo_id, url, credentials, ssh_key_id, known_hosts, only_branches, tags, prune, force, enabled, \
     sync_interval_secs, next_push_at, last_run_at, last_success_at, last_error_code, \
     last_error_message, consecutive_failures, diverged, created_at";

/// The message on runs that were running when the hub stopped.
const INTERRUPTED_PUSH_MESSAGE: &str = "the hub stopped during this push; it was run again";

impl PgStore {
    /// One claiming transaction: a candidate with `SKIP LOCKED`, then the push mirror's row
    /// locked to serialise its claimers, then the lease check again with what they committed.
    async fn try_claim_push(
        &self,
        worker: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Option<PushJob>, StoreError> {
        let mut skipped: Vec<i64> = Vec::new();
        for _ in 0..8 {
            let mut tx = self.pool.begin().await?;
            let candidate: Option<(i64, i64)> = sqlx::query_as(
                "SELECT j.id, j.mirror_id FROM push_jobs j JOIN repos r ON r.id = j.repo_id \
                 WHERE j.run_after <= $1 \
                   AND (j.claimed_by IS NULL OR j.lease_until <= $1) \
                   AND r.state = $3 \
                   AND NOT EXISTS ( \
                       SELECT 1 FROM push_jobs o \
                       WHERE o.mirror_id = j.mirror_id AND o.id <> j.id \
                         AND o.claimed_by IS NOT NULL AND o.lease_until > $1) \
                   AND j.mirror_id <> ALL($2) \
                 ORDER BY j.run_after, j.id \
                 LIMIT 1 \
                 FOR UPDATE OF j SKIP LOCKED",
            )
            .bind(now)
            .bind(&skipped)
            .bind(RepoState::Ready.as_str())
            .fetch_optional(&mut *tx)
            .await?;
            let Some((job_id, mirror_id)) = candidate else {
                tx.commit().await?;
                return Ok(None);
            };
            let locked: Option<i64> =
                sqlx::query_scalar("SELECT id FROM push_mirrors WHERE id = $1 FOR NO KEY UPDATE")
                    .bind(mirror_id)
                    .fetch_optional(&mut *tx)
                    .await?;
            let leased_elsewhere: bool = sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM push_jobs \
                 WHERE mirror_id = $1 AND id <> $2 AND claimed_by IS NOT NULL AND lease_until > $3)",
            )
            .bind(mirror_id)
            .bind(job_id)
            .bind(now)
            .fetch_one(&mut *tx)
            .await?;
            if locked.is_none() || leased_elsewhere {
                tx.rollback().await?;
                skipped.push(mirror_id);
                continue;
            }
            let row = sqlx::query(
                "UPDATE push_jobs SET claimed_by = $2, lease_until = $3, attempts = attempts + 1 \
                 WHERE id = $1 AND (claimed_by IS NULL OR lease_until <= $4) \
                 RETURNING id, mirror_id, repo_id, trigger, attempts",
            )
            .bind(job_id)
            .bind(worker)
            .bind(until)
            .bind(now)
            .fetch_optional(&mut *tx)
            .await?;
            let Some(row) = row else {
                tx.rollback().await?;
                skipped.push(mirror_id);
                continue;
            };
            tx.commit().await?;
            return Ok(Some(PushJob {
                id: row.try_get("id")?,
                mirror_id: row.try_get("mirror_id")?,
                repo_id: row.try_get("repo_id")?,
                trigger: parse_push_trigger(row.try_get("trigger")?)?,
                attempts: row.try_get("attempts")?,
            }));
        }
        Ok(None)
    }

    fn push_mirror_from_row(&self, row: &PgRow) -> Result<PushMirror, StoreError> {
        let credentials: Option<Vec<u8>> = row.try_get("credentials")?;
        let only: Option<String> = row.try_get("only_branches")?;
        let diverged: String = row.try_get("diverged")?;
        Ok(PushMirror {
            id: row.try_get("id")?,
            repo_id: row.try_get("repo_id")?,
            url: row.try_get("url")?,
            credentials: credentials
                .map(|c| self.key.open_credentials(&c))
                .transpose()?,
            ssh_key_id: row.try_get("ssh_key_id")?,
            known_hosts: row.try_get("known_hosts")?,
            only_branches: only.map(|t| split_lines(&t)),
            tags: row.try_get("tags")?,
            prune: row.try_get("prune")?,
            force: row.try_get("force")?,
            enabled: row.try_get("enabled")?,
            sync_interval_secs: row.try_get("sync_interval_secs")?,
            next_push_at: row.try_get("next_push_at")?,
            last_run_at: row.try_get("last_run_at")?,
            last_success_at: row.try_get("last_success_at")?,
            last_error_code: row.try_get("last_error_code")?,
            last_error_message: row.try_get("last_error_message")?,
            consecutive_failures: row.try_get("consecutive_failures")?,
            diverged: split_lines(&diverged),
            created_at: row.try_get("created_at")?,
        })
    }
}

#[async_trait]
impl PushMirrorStore for PgStore {
    async fn create_push_mirror(
        &self,
        new: &NewPushMirror,
        now: DateTime<Utc>,
    ) -> Result<PushMirror, StoreError> {
        let credentials = new
            .credentials
            .as_ref()
            .map(|c| self.key.seal_credentials(c))
            .transpose()?;
        let sql = format!(
            "INSERT INTO push_mirrors (repo_id, url, credentials, ssh_key_id, known_hosts, only_branches, tags, \
             prune, force, enabled, sync_interval_secs, next_push_at, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) RETURNING {COLUMNS}"
        );
        let row = sqlx::query(&sql)
            .bind(new.repo_id)
            .bind(&new.url)
            .bind(credentials)
            .bind(new.ssh_key_id)
            .bind(new.known_hosts.as_deref())
            .bind(new.only_branches.as_deref().map(join_lines))
            .bind(new.tags)
            .bind(new.prune)
            .bind(new.force)
            .bind(new.enabled)
            .bind(new.sync_interval_secs)
            .bind(new.next_push_at)
            .bind(now)
            .fetch_one(&self.pool)
            .await?;
        self.push_mirror_from_row(&row)
    }

    async fn get_push_mirror(&self, id: i64) -> Result<Option<PushMirror>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM push_mirrors WHERE id = $1");
        let row = sqlx::query(&sql)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| self.push_mirror_from_row(&r)).transpose()
    }

    async fn list_push_mirrors(&self, repo_id: i64) -> Result<Vec<PushMirror>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM push_mirrors WHERE repo_id = $1 ORDER BY id");
        let rows = sqlx::query(&sql)
            .bind(repo_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| self.push_mirror_from_row(r)).collect()
    }

    async fn update_push_mirror(
        &self,
        id: i64,
        update: &PushMirrorUpdate,
    ) -> Result<Option<PushMirror>, StoreError> {
        let credentials = match &update.credentials {
            Some(Some(c)) => Some(self.key.seal_credentials(c)?),
            _ => None,
        };
        let mut tx = self.pool.begin().await?;
        let sql = format!(
            "UPDATE push_mirrors SET \
               url = COALESCE($1, url), \
               credentials = CASE WHEN $2 THEN $3 ELSE credentials END, \
               only_branches = CASE WHEN $4 THEN $5 ELSE only_branches END, \
               tags = COALESCE($6, tags), prune = COALESCE($7, prune), force = COALESCE($8, force), \
               enabled = COALESCE($9, enabled), \
               sync_interval_secs = COALESCE($10, sync_interval_secs), \
               next_push_at = CASE WHEN $11 THEN $12 ELSE next_push_at END, \
               diverged = CASE WHEN $13 THEN '' ELSE diverged END, \
               ssh_key_id = CASE WHEN $15 THEN $16 ELSE ssh_key_id END, \
               known_hosts = CASE WHEN $17 THEN $18 ELSE known_hosts END \
             WHERE id = $14 RETURNING {COLUMNS}"
        );
        let row = sqlx::query(&sql)
            .bind(&update.url)
            .bind(update.credentials.is_some())
            .bind(credentials)
            .bind(update.only_branches.is_some())
            .bind(
                update
                    .only_branches
                    .as_ref()
                    .and_then(|o| o.as_deref().map(join_lines)),
            )
            .bind(update.tags)
            .bind(update.prune)
            .bind(update.force)
            .bind(update.enabled)
            .bind(update.sync_interval_secs)
            .bind(update.next_push_at.is_some())
            .bind(update.next_push_at.flatten())
            .bind(update.forget_refs)
            .bind(id)
            .bind(update.ssh_key_id.is_some())
            .bind(update.ssh_key_id.flatten())
            .bind(update.known_hosts.is_some())
            .bind(update.known_hosts.clone().flatten())
            .fetch_optional(&mut *tx)
            .await?;
        if update.forget_refs {
            sqlx::query("DELETE FROM push_mirror_refs WHERE mirror_id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        row.map(|r| self.push_mirror_from_row(&r)).transpose()
    }

    async fn delete_push_mirror(&self, id: i64) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM push_mirrors WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn enqueue_push(
        &self,
        mirror_id: i64,
        trigger: PushTrigger,
        run_after: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        // Merge into the pending job, else insert one; a concurrent insert of another request
        // wins the unique index, and this request then merges into that job.
        for _ in 0..3 {
            let merged = sqlx::query(
                "UPDATE push_jobs SET \
                   trigger = CASE WHEN $1 < run_after THEN $2 ELSE trigger END, \
                   run_after = LEAST(run_after, $1) \
                 WHERE mirror_id = $3 AND claimed_by IS NULL",
            )
            .bind(run_after)
            .bind(trigger.as_str())
            .bind(mirror_id)
            .execute(&self.pool)
            .await?
            .rows_affected();
            if merged > 0 {
                return Ok(false);
            }
            let inserted = sqlx::query(
                "INSERT INTO push_jobs (mirror_id, repo_id, trigger, run_after, created_at) \
                 SELECT id, repo_id, $1, $2, now() FROM push_mirrors WHERE id = $3 \
                 ON CONFLICT DO NOTHING",
            )
            .bind(trigger.as_str())
            .bind(run_after)
            .bind(mirror_id)
            .execute(&self.pool)
            .await?
            .rows_affected();
            if inserted > 0 {
                return Ok(true);
            }
            if self.get_push_mirror(mirror_id).await?.is_none() {
                return Err(StoreError::NotFound);
            }
        }
        Ok(false)
    }

    async fn enqueue_repo_pushes(
        &self,
        repo_id: i64,
        trigger: PushTrigger,
        run_after: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "UPDATE push_jobs SET \
               trigger = CASE WHEN $1 < run_after THEN $2 ELSE trigger END, \
               run_after = LEAST(run_after, $1) \
             WHERE repo_id = $3 AND claimed_by IS NULL \
               AND mirror_id IN (SELECT id FROM push_mirrors WHERE repo_id = $3 AND enabled)",
        )
        .bind(run_after)
        .bind(trigger.as_str())
        .bind(repo_id)
        .execute(&mut *tx)
        .await?;
        let inserted = sqlx::query(
            "INSERT INTO push_jobs (mirror_id, repo_id, trigger, run_after, created_at) \
             SELECT m.id, m.repo_id, $1, $2, $3 FROM push_mirrors m \
             WHERE m.repo_id = $4 AND m.enabled \
               AND NOT EXISTS (SELECT 1 FROM push_jobs j WHERE j.mirror_id = m.id AND j.claimed_by IS NULL) \
             ON CONFLICT DO NOTHING",
        )
        .bind(trigger.as_str())
        .bind(run_after)
        .bind(Utc::now())
        .bind(repo_id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(inserted)
    }

    async fn claim_push_job(
        &self,
        worker: &str,
        now: DateTime<Utc>,
        lease: Duration,
    ) -> Result<Option<PushJob>, StoreError> {
        let until = lease_end(now, lease)?;
        let mut tries = 0;
        loop {
            match self.try_claim_push(worker, now, until).await {
                Err(e) if is_retryable(&e) && tries < 3 => tries += 1,
                other => return other,
            }
        }
    }

    async fn renew_push_lease(
        &self,
        job_id: i64,
        worker: &str,
        now: DateTime<Utc>,
        lease: Duration,
    ) -> Result<bool, StoreError> {
        let until = lease_end(now, lease)?;
        let done =
            sqlx::query("UPDATE push_jobs SET lease_until = $1 WHERE id = $2 AND claimed_by = $3")
                .bind(until)
                .bind(job_id)
                .bind(worker)
                .execute(&self.pool)
                .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn complete_push_job(&self, job_id: i64, worker: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM push_jobs WHERE id = $1 AND claimed_by = $2")
            .bind(job_id)
            .bind(worker)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn release_push_job(
        &self,
        job_id: i64,
        worker: &str,
        run_after: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let released = sqlx::query(
            "UPDATE push_jobs SET claimed_by = NULL, lease_until = NULL, run_after = $1 \
             WHERE id = $2 AND claimed_by = $3 \
               AND NOT EXISTS (SELECT 1 FROM push_jobs p WHERE p.mirror_id = push_jobs.mirror_id AND p.claimed_by IS NULL)",
        )
        .bind(run_after)
        .bind(job_id)
        .bind(worker)
        .execute(&self.pool)
        .await;
        match released.map_err(StoreError::from) {
            Ok(done) if done.rows_affected() == 1 => return Ok(()),
            // Not ours, or the target has a pending job (perhaps queued just now): fold away.
            Ok(_) | Err(StoreError::Conflict) => {}
            Err(e) => return Err(e),
        }
        sqlx::query("DELETE FROM push_jobs WHERE id = $1 AND claimed_by = $2")
            .bind(job_id)
            .bind(worker)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn release_all_push_claims(&self) -> Result<u64, StoreError> {
        // Other replicas may hold live leases; expired ones are taken over by claim_push_job.
        Ok(0)
    }

    async fn enqueue_due_pushes(&self, now: DateTime<Utc>, limit: i64) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "INSERT INTO push_jobs (mirror_id, repo_id, trigger, run_after, created_at) \
             SELECT m.id, m.repo_id, $1, $2, $2 FROM push_mirrors m \
             WHERE m.enabled AND m.next_push_at <= $2 \
               AND NOT EXISTS (SELECT 1 FROM push_jobs j WHERE j.mirror_id = m.id) \
             ORDER BY m.next_push_at, m.id LIMIT $3 \
             ON CONFLICT DO NOTHING",
        )
        .bind(PushTrigger::Schedule.as_str())
        .bind(now)
        .bind(limit.max(0))
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    async fn start_push_run(
        &self,
        mirror_id: i64,
        trigger: PushTrigger,
        now: DateTime<Utc>,
    ) -> Result<i64, StoreError> {
        let mut tx = self.pool.begin().await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO push_runs (mirror_id, trigger, started_at, outcome) VALUES ($1, $2, $3, $4) RETURNING id",
        )
        .bind(mirror_id)
        .bind(trigger.as_str())
        .bind(now)
        .bind(Outcome::Running.as_str())
        .fetch_one(&mut *tx)
        .await?;
        sqlx::query("UPDATE push_mirrors SET last_run_at = $1 WHERE id = $2")
            .bind(now)
            .bind(mirror_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(id)
    }

    async fn fail_interrupted_push_runs(
        &self,
        mirror_id: i64,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "UPDATE push_runs SET outcome = $1, finished_at = $2, error_code = $3, error_message = $4 \
             WHERE mirror_id = $5 AND outcome = $6",
        )
        .bind(Outcome::Failed.as_str())
        .bind(now)
        .bind(INTERRUPTED_CODE)
        .bind(INTERRUPTED_PUSH_MESSAGE)
        .bind(mirror_id)
        .bind(Outcome::Running.as_str())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    async fn finish_push_run(
        &self,
        run_id: i64,
        mirror_id: i64,
        result: &PushRunResult,
    ) -> Result<(), StoreError> {
        check_final(result.outcome)?;
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(
            "UPDATE push_runs SET finished_at = $1, outcome = $2, error_code = $3, error_message = $4 \
             WHERE id = $5 AND mirror_id = $6",
        )
        .bind(result.finished_at)
        .bind(result.outcome.as_str())
        .bind(&result.error_code)
        .bind(&result.error_message)
        .bind(run_id)
        .bind(mirror_id)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        for (chunk_no, chunk) in result.refs.chunks(REFS_PER_INSERT).enumerate() {
            let mut insert = QueryBuilder::<Postgres>::new(
                "INSERT INTO push_run_refs (run_id, position, ref_name, old_oid, new_oid, kind, reason) ",
            );
            insert.push_values(chunk.iter().enumerate(), |mut b, (i, r)| {
                let position = i64::try_from(chunk_no * REFS_PER_INSERT + i).unwrap_or(i64::MAX);
                b.push_bind(run_id)
                    .push_bind(position)
                    .push_bind(&r.name)
                    .push_bind(&r.old)
                    .push_bind(&r.new)
                    .push_bind(r.kind.as_str())
                    .push_bind(&r.reason);
            });
            insert.build().execute(&mut *tx).await?;
        }
        for chunk in result.known.chunks(REFS_PER_INSERT) {
            let mut upsert = QueryBuilder::<Postgres>::new(
                "INSERT INTO push_mirror_refs (mirror_id, ref_name, oid) ",
            );
            upsert.push_values(chunk, |mut b, (name, oid)| {
                b.push_bind(mirror_id).push_bind(name).push_bind(oid);
            });
            upsert.push(" ON CONFLICT (mirror_id, ref_name) DO UPDATE SET oid = excluded.oid");
            upsert.build().execute(&mut *tx).await?;
        }
        for name in &result.forgotten {
            sqlx::query("DELETE FROM push_mirror_refs WHERE mirror_id = $1 AND ref_name = $2")
                .bind(mirror_id)
                .bind(name)
                .execute(&mut *tx)
                .await?;
        }
        let diverged = result.diverged.as_deref().map(join_lines);
        let updated = if result.outcome == Outcome::Failed {
            sqlx::query(
                "UPDATE push_mirrors SET last_error_code = $1, last_error_message = $2, \
                 consecutive_failures = consecutive_failures + 1, next_push_at = $3, \
                 diverged = COALESCE($4, diverged) WHERE id = $5",
            )
            .bind(&result.error_code)
            .bind(&result.error_message)
            .bind(result.next_push_at)
            .bind(diverged)
            .bind(mirror_id)
            .execute(&mut *tx)
            .await?
        } else {
            sqlx::query(
                "UPDATE push_mirrors SET last_success_at = $1, last_error_code = NULL, \
                 last_error_message = NULL, consecutive_failures = 0, next_push_at = $2, \
                 diverged = COALESCE($3, diverged) WHERE id = $4",
            )
            .bind(result.finished_at)
            .bind(result.next_push_at)
            .bind(diverged)
            .bind(mirror_id)
            .execute(&mut *tx)
            .await?
        };
        if updated.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        tx.commit().await?;
        Ok(())
    }

    async fn list_push_runs(&self, mirror_id: i64, limit: i64) -> Result<Vec<PushRun>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let rows = sqlx::query(
            "SELECT id, mirror_id, trigger, started_at, finished_at, outcome, error_code, error_message \
             FROM push_runs WHERE mirror_id = $1 ORDER BY started_at DESC, id DESC LIMIT $2",
        )
        .bind(mirror_id)
        .bind(limit.max(0))
        .fetch_all(&mut *tx)
        .await?;
        let mut runs = rows
            .iter()
            .map(|r| {
                Ok(PushRun {
                    id: r.try_get("id")?,
                    mirror_id: r.try_get("mirror_id")?,
                    trigger: parse_push_trigger(r.try_get("trigger")?)?,
                    started_at: r.try_get("started_at")?,
                    finished_at: r.try_get("finished_at")?,
                    outcome: parse_outcome(r.try_get("outcome")?)?,
                    error_code: r.try_get("error_code")?,
                    error_message: r.try_get("error_message")?,
                    refs: Vec::new(),
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        if runs.is_empty() {
            return Ok(runs);
        }
        let index: HashMap<i64, usize> = runs.iter().enumerate().map(|(i, r)| (r.id, i)).collect();
        let refs = sqlx::query(
            "SELECT run_id, ref_name, old_oid, new_oid, kind, reason FROM push_run_refs \
             WHERE run_id IN (SELECT id FROM push_runs WHERE mirror_id = $1 ORDER BY started_at DESC, id DESC LIMIT $2) \
             ORDER BY run_id, position",
        )
        .bind(mirror_id)
        .bind(limit.max(0))
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        for r in &refs {
            let run_id: i64 = r.try_get("run_id")?;
            if let Some(&i) = index.get(&run_id) {
                runs[i].refs.push(PushRefResult {
                    name: r.try_get("ref_name")?,
                    old: r.try_get("old_oid")?,
                    new: r.try_get("new_oid")?,
                    kind: parse_push_kind(r.try_get("kind")?)?,
                    reason: r.try_get("reason")?,
                });
            }
        }
        Ok(runs)
    }

    async fn pushed_refs(&self, mirror_id: i64) -> Result<BTreeMap<String, String>, StoreError> {
        let rows: Vec<(String, String)> =
            sqlx::query_as("SELECT ref_name, oid FROM push_mirror_refs WHERE mirror_id = $1")
                .bind(mirror_id)
                .fetch_all(&self.pool)
                .await?;
        Ok(rows.into_iter().collect())
    }
}

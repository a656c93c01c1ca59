//! The PostgreSQL store, for several hub replicas sharing one database. Workers of all
//! replicas claim from the same queue with `FOR UPDATE SKIP LOCKED`, and serialise on the
//! repository's row before taking a lease, so one repository is never synced twice at once.

mod fidelity;
mod mirror_sets;

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use mirrorhub_core::{Access, AccountKind, Outcome, RefChange, RepoState, Trigger};
use sqlx::postgres::{PgPool, PgPoolOptions, PgRow};
use sqlx::{PgConnection, Postgres, QueryBuilder, Row};

use crate::{
    check_final, hook_columns, hook_from_columns, lease_end, match_key, parse_kind, parse_mode,
    parse_outcome, parse_state, parse_text, parse_trigger, parse_visibility, AccessToken, Account,
    Delivery, DeliveryOutcome, Job, LfsCounts, LfsObject, NewAccessToken, NewAccount, NewDelivery,
    NewRepo, NewSshKey, OpenedRun, Repo, RepoCounts, RepoLfs, RepoUpdate, SecretKey, SecretString,
    SshKey, SshKeyDeletion, Store, StoreError, SyncContext, SyncResult, SyncRun, UnchangedRun,
    WebSession, WebhookHook, WebhookState, INTERRUPTED_CODE, INTERRUPTED_MESSAGE,
    REF_CHANGES_PER_INSERT,
};

mod notifications;
mod push_mirrors;

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/postgres");

/// How many candidates one claim looks at when it loses races for their repositories.
const CLAIM_CANDIDATES: usize = 8;
/// How often a claim is retried after PostgreSQL aborted it to break a deadlock.
const CLAIM_RETRIES: usize = 3;

const REPO_COLUMNS: &str = "id, owner, name, mode, visibility, description, upstream_url, credentials, state, \
     progress_phase, progress_percent, sync_interval_secs, last_sync_at, last_success_at, next_sync_at, \
     last_error_code, last_error_message, consecutive_failures, branches, tags, head_ref, created_at, \
     paused_reason, webhook_secret, webhook_last_delivery_at, webhook_last_forge, webhook_hook_forge, \
     webhook_hook_id, webhook_hook_error, ssh_key_id, known_hosts, lfs_enabled, lfs_url, lfs_last_error";

const ACCOUNT_COLUMNS: &str = "id, name, kind, site_admin, created_at";

const TOKEN_COLUMNS: &str =
    "id, user_id, name, scope, created_at, expires_at, last_used_at, revoked_at";

/// The columns of an [`SshKey`], from `ssh_keys k JOIN accounts a` (never the private key).
const SSH_KEY_COLUMNS: &str =
    "k.id, k.owner_id, a.name AS owner, k.title, k.public_key, k.fingerprint, k.created_at";

/// An SSH key from a row with [`SSH_KEY_COLUMNS`].
fn ssh_key_from_row(row: &PgRow) -> Result<SshKey, StoreError> {
    Ok(SshKey {
        id: row.try_get("id")?,
        owner_id: row.try_get("owner_id")?,
        owner: row.try_get("owner")?,
        title: row.try_get("title")?,
        public_key: row.try_get("public_key")?,
        fingerprint: row.try_get("fingerprint")?,
        created_at: row.try_get("created_at")?,
    })
}

/// An account from a row whose account columns are named `{prefix}id`, `{prefix}name`, ...
/// (`prefix` is empty unless a join renamed them).
fn account_from_row(row: &PgRow, prefix: &str) -> Result<Account, StoreError> {
    let col = |c: &str| format!("{prefix}{c}");
    Ok(Account {
        id: row.try_get(col("id").as_str())?,
        name: row.try_get(col("name").as_str())?,
        kind: parse_text(
            "account kind",
            row.try_get(col("kind").as_str())?,
            AccountKind::parse,
        )?,
        site_admin: row.try_get(col("site_admin").as_str())?,
        created_at: row.try_get(col("created_at").as_str())?,
    })
}

fn parse_access(s: &str) -> Result<Access, StoreError> {
    parse_text("access level", s, Access::parse)
}

/// A token from a row with [`TOKEN_COLUMNS`].
fn token_from_row(row: &PgRow) -> Result<AccessToken, StoreError> {
    Ok(AccessToken {
        id: row.try_get("id")?,
        user_id: row.try_get("user_id")?,
        name: row.try_get("name")?,
        scope: parse_access(row.try_get("scope")?)?,
        created_at: row.try_get("created_at")?,
        expires_at: row.try_get("expires_at")?,
        last_used_at: row.try_get("last_used_at")?,
        revoked_at: row.try_get("revoked_at")?,
    })
}

pub(crate) struct PgStore {
    pool: PgPool,
    key: SecretKey,
    /// The connection that holds the scheduler's advisory lock while this process leads.
    scheduler_lock: tokio::sync::Mutex<Option<sqlx::pool::PoolConnection<sqlx::Postgres>>>,
}

/// The advisory lock key of the scheduler ("mh-sched" in ASCII).
const SCHEDULER_LOCK_KEY: i64 = 0x6d68_2d73_6368_6564;

/// Whether PostgreSQL aborted the transaction to break a deadlock or a serialisation
/// conflict, so that running it again can succeed.
fn is_retryable(e: &StoreError) -> bool {
    match e {
        StoreError::Database(sqlx::Error::Database(db)) => {
            matches!(db.code().as_deref(), Some("40P01" | "40001"))
        }
        _ => false,
    }
}

/// Inserts a pending job or merges into the pending one (the earlier start wins, with its
/// trigger); one statement, on the caller's connection or transaction.
async fn enqueue_in(
    conn: &mut PgConnection,
    repo_id: i64,
    trigger: Trigger,
    run_after: DateTime<Utc>,
) -> Result<bool, StoreError> {
    // xmax is 0 on a freshly inserted row version, and the updater's id on an updated one.
    let inserted: bool = sqlx::query_scalar(
        "INSERT INTO sync_jobs (repo_id, trigger, run_after, created_at) VALUES ($1, $2, $3, now()) \
         ON CONFLICT (repo_id) WHERE claimed_by IS NULL DO UPDATE SET \
             trigger = CASE WHEN EXCLUDED.trigger = 'promote' \
                 OR (sync_jobs.trigger <> 'promote' AND EXCLUDED.run_after < sync_jobs.run_after) \
                 THEN EXCLUDED.trigger ELSE sync_jobs.trigger END, \
             run_after = LEAST(sync_jobs.run_after, EXCLUDED.run_after) \
         RETURNING (xmax = 0)",
    )
    .bind(repo_id)
    .bind(trigger.as_str())
    .bind(run_after)
    .fetch_one(&mut *conn)
    .await?;
    Ok(inserted)
}

impl PgStore {
    pub(crate) async fn connect(url: &str, key: SecretKey) -> Result<Self, StoreError> {
        let pool = PgPoolOptions::new().connect(url).await?;
        // sqlx holds an advisory lock while migrating: replicas starting together are safe.
        MIGRATOR.run(&pool).await?;
        let store = Self {
            pool,
            key,
            scheduler_lock: Default::default(),
        };
        store.backfill_webhook_columns().await?;
        tracing::debug!(backend = "postgres", "store ready");
        Ok(store)
    }

    /// Gives rows created before webhooks existed their match key and webhook secret.
    /// Replicas starting together may both do it: COALESCE keeps the first one's values.
    async fn backfill_webhook_columns(&self) -> Result<(), StoreError> {
        let rows = sqlx::query(
            "SELECT id, upstream_url FROM repos WHERE match_key IS NULL OR webhook_secret IS NULL",
        )
        .fetch_all(&self.pool)
        .await?;
        for row in rows {
            let url: String = row.try_get("upstream_url")?;
            sqlx::query(
                "UPDATE repos SET match_key = COALESCE(match_key, $1), \
                 webhook_secret = COALESCE(webhook_secret, $2) WHERE id = $3",
            )
            .bind(match_key(&url))
            .bind(self.key.new_sealed_webhook_secret()?)
            .bind(row.try_get::<i64, _>("id")?)
            .execute(&self.pool)
            .await?;
        }
        Ok(())
    }

    fn repo_from_row(&self, row: &PgRow) -> Result<Repo, StoreError> {
        let credentials: Option<Vec<u8>> = row.try_get("credentials")?;
        Ok(Repo {
            id: row.try_get("id")?,
            owner: row.try_get("owner")?,
            name: row.try_get("name")?,
            mode: parse_mode(row.try_get("mode")?)?,
            visibility: parse_visibility(row.try_get("visibility")?)?,
            description: row.try_get("description")?,
            upstream_url: row.try_get("upstream_url")?,
            credentials: credentials
                .map(|c| self.key.open_credentials(&c))
                .transpose()?,
            ssh_key_id: row.try_get("ssh_key_id")?,
            known_hosts: row.try_get("known_hosts")?,
            state: parse_state(row.try_get("state")?)?,
            progress_phase: row.try_get("progress_phase")?,
            progress_percent: row.try_get("progress_percent")?,
            sync_interval_secs: row.try_get("sync_interval_secs")?,
            last_sync_at: row.try_get("last_sync_at")?,
            last_success_at: row.try_get("last_success_at")?,
            next_sync_at: row.try_get("next_sync_at")?,
            last_error_code: row.try_get("last_error_code")?,
            last_error_message: row.try_get("last_error_message")?,
            consecutive_failures: row.try_get("consecutive_failures")?,
            branches: row.try_get("branches")?,
            tags: row.try_get("tags")?,
            head_ref: row.try_get("head_ref")?,
            paused_reason: row.try_get("paused_reason")?,
            created_at: row.try_get("created_at")?,
            webhook_secret: row
                .try_get::<Option<Vec<u8>>, _>("webhook_secret")?
                .map(|s| self.key.open_webhook_secret(&s))
                .transpose()?,
            webhook: WebhookState {
                last_delivery_at: row.try_get("webhook_last_delivery_at")?,
                last_forge: row.try_get("webhook_last_forge")?,
                hook: hook_from_columns(
                    row.try_get("webhook_hook_forge")?,
                    row.try_get("webhook_hook_id")?,
                    row.try_get("webhook_hook_error")?,
                ),
            },
            lfs: RepoLfs {
                enabled: row.try_get("lfs_enabled")?,
                url: row.try_get("lfs_url")?,
                last_error: row.try_get("lfs_last_error")?,
            },
        })
    }

    /// One claiming transaction. Candidates whose repository turns out to be leased by a
    /// concurrent claim are skipped, up to [`CLAIM_CANDIDATES`] of them.
    async fn try_claim(
        &self,
        worker: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Option<Job>, StoreError> {
        let mut skipped: Vec<i64> = Vec::new();
        for _ in 0..CLAIM_CANDIDATES {
            let mut tx = self.pool.begin().await?;
            let candidate: Option<(i64, i64)> = sqlx::query_as(
                "SELECT j.id, j.repo_id FROM sync_jobs j \
                 WHERE j.run_after <= $1 \
                   AND (j.claimed_by IS NULL OR j.lease_until <= $1) \
                   AND NOT EXISTS ( \
                       SELECT 1 FROM sync_jobs o \
                       WHERE o.repo_id = j.repo_id AND o.id <> j.id \
                         AND o.claimed_by IS NOT NULL AND o.lease_until > $1) \
                   AND j.repo_id <> ALL($2) \
                 ORDER BY j.run_after, j.id \
                 LIMIT 1 \
                 FOR UPDATE OF j SKIP LOCKED",
            )
            .bind(now)
            .bind(&skipped)
            .fetch_optional(&mut *tx)
            .await?;
            let Some((job_id, repo_id)) = candidate else {
                tx.commit().await?;
                return Ok(None);
            };

            // Serialise the claimers of this repository, then look again with what they
            // committed. NO KEY UPDATE: the lock does not hold up foreign-key checks of
            // concurrent inserts (enqueue_sync), which take KEY SHARE.
            let repo_locked: Option<i64> =
                sqlx::query_scalar("SELECT id FROM repos WHERE id = $1 FOR NO KEY UPDATE")
                    .bind(repo_id)
                    .fetch_optional(&mut *tx)
                    .await?;
            let leased_elsewhere: bool = sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM sync_jobs \
                 WHERE repo_id = $1 AND id <> $2 AND claimed_by IS NOT NULL AND lease_until > $3)",
            )
            .bind(repo_id)
            .bind(job_id)
            .bind(now)
            .fetch_one(&mut *tx)
            .await?;
            if repo_locked.is_none() || leased_elsewhere {
                tx.rollback().await?;
                skipped.push(repo_id);
                continue;
            }

            // The row lock makes this re-check redundant; it keeps the claim correct on its own.
            let row = sqlx::query(
                "UPDATE sync_jobs SET claimed_by = $2, lease_until = $3, attempts = attempts + 1 \
                 WHERE id = $1 AND (claimed_by IS NULL OR lease_until <= $4) \
                 RETURNING id, repo_id, trigger, attempts",
            )
            .bind(job_id)
            .bind(worker)
            .bind(until)
            .bind(now)
            .fetch_optional(&mut *tx)
            .await?;
            let Some(row) = row else {
                tx.rollback().await?;
                skipped.push(repo_id);
                continue;
            };
            tx.commit().await?;
            return Ok(Some(Job {
                id: row.try_get("id")?,
                repo_id: row.try_get("repo_id")?,
                trigger: parse_trigger(row.try_get("trigger")?)?,
                attempts: row.try_get("attempts")?,
            }));
        }
        Ok(None)
    }
}

#[async_trait]
impl Store for PgStore {
    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn create_repo(&self, new: NewRepo, now: DateTime<Utc>) -> Result<Repo, StoreError> {
        let credentials = new
            .credentials
            .as_ref()
            .map(|c| self.key.seal_credentials(c))
            .transpose()?;
        let sql = format!(
            "INSERT INTO repos (owner, name, mode, visibility, description, upstream_url, credentials, state, \
             sync_interval_secs, created_at, match_key, webhook_secret, ssh_key_id, known_hosts) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) RETURNING {REPO_COLUMNS}"
        );
        let row = sqlx::query(&sql)
            .bind(new.owner.as_str())
            .bind(new.name.as_str())
            .bind(new.mode.as_str())
            .bind(new.visibility.as_str())
            .bind(&new.description)
            .bind(&new.upstream_url)
            .bind(credentials)
            .bind(RepoState::Cloning.as_str())
            .bind(new.sync_interval_secs)
            .bind(now)
            .bind(match_key(&new.upstream_url))
            .bind(self.key.new_sealed_webhook_secret()?)
            .bind(new.ssh_key_id)
            .bind(new.known_hosts.as_deref())
            .fetch_one(&self.pool)
            .await?;
        self.repo_from_row(&row)
    }

    async fn get_repo(&self, owner: &str, name: &str) -> Result<Option<Repo>, StoreError> {
        let sql = format!(
            "SELECT {REPO_COLUMNS} FROM repos WHERE owner_key = lower($1) AND name_key = lower($2)"
        );
        let row = sqlx::query(&sql)
            .bind(owner)
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| self.repo_from_row(&r)).transpose()
    }

    async fn get_repo_by_id(&self, id: i64) -> Result<Option<Repo>, StoreError> {
        let sql = format!("SELECT {REPO_COLUMNS} FROM repos WHERE id = $1");
        let row = sqlx::query(&sql)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| self.repo_from_row(&r)).transpose()
    }

    async fn get_repos_by_ids(&self, ids: &[i64]) -> Result<Vec<Repo>, StoreError> {
        if ids.is_empty() {
            return Ok(vec![]);
        }
        let sql = format!("SELECT {REPO_COLUMNS} FROM repos WHERE id = ANY($1) ORDER BY id");
        let rows = sqlx::query(&sql).bind(ids).fetch_all(&self.pool).await?;
        rows.iter().map(|r| self.repo_from_row(r)).collect()
    }

    async fn list_repos(&self) -> Result<Vec<Repo>, StoreError> {
        let sql = format!("SELECT {REPO_COLUMNS} FROM repos ORDER BY owner_key, name_key");
        let rows = sqlx::query(&sql).fetch_all(&self.pool).await?;
        rows.iter().map(|r| self.repo_from_row(r)).collect()
    }

    async fn delete_repo(&self, id: i64) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM repos WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn set_progress(
        &self,
        id: i64,
        phase: Option<&str>,
        percent: Option<i32>,
    ) -> Result<(), StoreError> {
        let done = sqlx::query(
            "UPDATE repos SET progress_phase = $1, progress_percent = $2 WHERE id = $3",
        )
        .bind(phase)
        .bind(percent)
        .bind(id)
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn enqueue_sync(
        &self,
        repo_id: i64,
        trigger: Trigger,
        run_after: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let mut conn = self.pool.acquire().await?;
        enqueue_in(&mut conn, repo_id, trigger, run_after).await
    }

    async fn claim_job(
        &self,
        worker: &str,
        now: DateTime<Utc>,
        lease: Duration,
    ) -> Result<Option<Job>, StoreError> {
        let until = lease_end(now, lease)?;
        let mut tries = 0;
        loop {
            match self.try_claim(worker, now, until).await {
                Err(e) if is_retryable(&e) && tries < CLAIM_RETRIES => tries += 1,
                other => return other,
            }
        }
    }

    async fn renew_lease(
        &self,
        job_id: i64,
        worker: &str,
        now: DateTime<Utc>,
        lease: Duration,
    ) -> Result<bool, StoreError> {
        let until = lease_end(now, lease)?;
        let done =
            sqlx::query("UPDATE sync_jobs SET lease_until = $1 WHERE id = $2 AND claimed_by = $3")
                .bind(until)
                .bind(job_id)
                .bind(worker)
                .execute(&self.pool)
                .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn complete_job(&self, job_id: i64, worker: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM sync_jobs WHERE id = $1 AND claimed_by = $2")
            .bind(job_id)
            .bind(worker)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn release_job(
        &self,
        job_id: i64,
        worker: &str,
        run_after: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let released = sqlx::query(
            "UPDATE sync_jobs SET claimed_by = NULL, lease_until = NULL, run_after = $1 \
             WHERE id = $2 AND claimed_by = $3 \
               AND NOT EXISTS (SELECT 1 FROM sync_jobs p WHERE p.repo_id = sync_jobs.repo_id AND p.claimed_by IS NULL)",
        )
        .bind(run_after)
        .bind(job_id)
        .bind(worker)
        .execute(&self.pool)
        .await;
        match released.map_err(StoreError::from) {
            Ok(done) if done.rows_affected() == 1 => return Ok(()),
            // Not ours, or the repository has a pending job (perhaps one queued just now,
            // which the unique index reports as a conflict): fold this one away.
            Ok(_) | Err(StoreError::Conflict) => {}
            Err(e) => return Err(e),
        }
        sqlx::query("DELETE FROM sync_jobs WHERE id = $1 AND claimed_by = $2")
            .bind(job_id)
            .bind(worker)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn release_all_claims(&self) -> Result<u64, StoreError> {
        // Other replicas may hold live leases; expired ones are taken over by claim_job.
        Ok(0)
    }

    async fn enqueue_due(&self, now: DateTime<Utc>, limit: i64) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "INSERT INTO sync_jobs (repo_id, trigger, run_after, created_at) \
             SELECT r.id, $1, $2, now() FROM repos r \
             WHERE r.mode = 'mirror' AND r.next_sync_at <= $2 \
               AND NOT EXISTS (SELECT 1 FROM sync_jobs j WHERE j.repo_id = r.id) \
             ORDER BY COALESCE(r.last_success_at, r.created_at) + r.sync_interval_secs * interval '1 second', r.id \
             LIMIT $3 \
             ON CONFLICT DO NOTHING",
        )
        .bind(Trigger::Schedule.as_str())
        .bind(now)
        .bind(limit.max(0))
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    async fn count_due_between(
        &self,
        after: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM repos WHERE mode = 'mirror' AND next_sync_at > $1 AND next_sync_at <= $2",
        )
        .bind(after)
        .bind(until)
        .fetch_one(&self.pool)
        .await?;
        Ok(n.max(0) as u64)
    }

    async fn requeue_cloning(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "INSERT INTO sync_jobs (repo_id, trigger, run_after, created_at) \
             SELECT r.id, $1, $2, $2 FROM repos r WHERE r.state = $3 \
               AND NOT EXISTS (SELECT 1 FROM sync_jobs j WHERE j.repo_id = r.id AND j.claimed_by IS NULL) \
             ON CONFLICT DO NOTHING",
        )
        .bind(Trigger::Recovery.as_str())
        .bind(now)
        .bind(RepoState::Cloning.as_str())
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    async fn repo_counts(
        &self,
        now: DateTime<Utc>,
        stale_grace: Duration,
    ) -> Result<RepoCounts, StoreError> {
        let grace_secs = stale_grace.as_secs_f64();
        let row = sqlx::query(
            "SELECT \
               count(*) FILTER (WHERE mode = 'mirror') AS mirrors, count(*) FILTER (WHERE mode = 'migrate') AS migrated, \
               count(*) FILTER (WHERE state = 'cloning') AS cloning, count(*) FILTER (WHERE state = 'failed') AS failed, \
               count(*) FILTER (WHERE paused_reason IS NOT NULL) AS paused, \
               count(*) FILTER (WHERE mode = 'mirror' AND COALESCE(last_success_at, created_at) \
                   + (sync_interval_secs + $1) * interval '1 second' < $2) AS stale \
             FROM repos",
        )
        .bind(grace_secs)
        .bind(now)
        .fetch_one(&self.pool)
        .await?;
        Ok(RepoCounts {
            mirrors: row.try_get("mirrors")?,
            migrated: row.try_get("migrated")?,
            cloning: row.try_get("cloning")?,
            failed: row.try_get("failed")?,
            paused: row.try_get("paused")?,
            stale: row.try_get("stale")?,
        })
    }

    async fn lead_scheduler(&self) -> Result<bool, StoreError> {
        let mut held = self.scheduler_lock.lock().await;
        if let Some(conn) = held.as_mut() {
            // Still ours while the session lives.
            if sqlx::query("SELECT 1").execute(&mut **conn).await.is_ok() {
                return Ok(true);
            }
            *held = None;
        }
        let mut conn = self.pool.acquire().await?;
        let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
            .bind(SCHEDULER_LOCK_KEY)
            .fetch_one(&mut *conn)
            .await?;
        if got {
            // Keep the session (and so the lock) out of the pool's reach.
            *held = Some(conn);
        }
        Ok(got)
    }

    async fn start_run(
        &self,
        repo_id: i64,
        trigger: Trigger,
        now: DateTime<Utc>,
    ) -> Result<i64, StoreError> {
        let mut tx = self.pool.begin().await?;
        let id = start_run_in(&mut tx, repo_id, trigger, now).await?;
        tx.commit().await?;
        Ok(id)
    }

    async fn fail_interrupted_runs(
        &self,
        repo_id: i64,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        fail_interrupted_in(&self.pool, repo_id, now).await
    }

    async fn finish_run(
        &self,
        run_id: i64,
        repo_id: i64,
        result: &SyncResult,
    ) -> Result<(), StoreError> {
        check_final(result.outcome)?;
        let mut tx = self.pool.begin().await?;
        if !finish_run_in(&mut tx, run_id, repo_id, result).await? {
            return Err(StoreError::NotFound);
        }
        tx.commit().await?;
        Ok(())
    }

    async fn sync_context(&self, repo_id: i64) -> Result<Option<SyncContext>, StoreError> {
        let sql = format!("SELECT {REPO_COLUMNS}, {SYNC_CONTEXT_EXTRA} FROM repos WHERE id = $1");
        let row = sqlx::query(&sql)
            .bind(repo_id)
            .fetch_optional(&self.pool)
            .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let spec: Option<String> = row.try_get("ref_filter_spec")?;
        Ok(Some(SyncContext {
            repo: self.repo_from_row(&row)?,
            ref_filter: spec
                .as_deref()
                .map(crate::fidelity::spec_from_text)
                .transpose()?,
            set_installation: row.try_get("set_installation")?,
        }))
    }

    async fn open_run(
        &self,
        repo_id: i64,
        trigger: Trigger,
        on_recovery: Trigger,
        now: DateTime<Utc>,
    ) -> Result<OpenedRun, StoreError> {
        let mut tx = self.pool.begin().await?;
        let interrupted = fail_interrupted_in(&mut *tx, repo_id, now).await?;
        let trigger = if interrupted > 0 {
            on_recovery
        } else {
            trigger
        };
        let id = start_run_in(&mut tx, repo_id, trigger, now).await?;
        tx.commit().await?;
        Ok(OpenedRun { id, interrupted })
    }

    async fn finish_job(
        &self,
        job_id: i64,
        worker: &str,
        run_id: i64,
        repo_id: i64,
        result: &SyncResult,
    ) -> Result<bool, StoreError> {
        check_final(result.outcome)?;
        let mut tx = self.pool.begin().await?;
        let exists = finish_run_in(&mut tx, run_id, repo_id, result).await?;
        sqlx::query("DELETE FROM sync_jobs WHERE id = $1 AND claimed_by = $2")
            .bind(job_id)
            .bind(worker)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(exists)
    }

    async fn finish_unchanged_job(
        &self,
        job_id: i64,
        worker: &str,
        repo_id: i64,
        trigger: Trigger,
        started_at: DateTime<Utc>,
        result: &SyncResult,
    ) -> Result<Option<UnchangedRun>, StoreError> {
        check_final(result.outcome)?;
        let mut tx = self.pool.begin().await?;
        let interrupted = fail_interrupted_in(&mut *tx, repo_id, result.finished_at).await?;
        let trigger = if interrupted > 0 {
            Trigger::Recovery
        } else {
            trigger
        };
        let id = match insert_run_in(&mut tx, repo_id, trigger, started_at, Some(result)).await {
            Ok(id) => id,
            // Deleted while the upstream was listed (the rollback drops the rest).
            Err(StoreError::NotFound) => return Ok(None),
            Err(e) => return Err(e),
        };
        record_result_in(&mut tx, repo_id, result, Some(started_at)).await?;
        sqlx::query("DELETE FROM sync_jobs WHERE id = $1 AND claimed_by = $2")
            .bind(job_id)
            .bind(worker)
            .execute(&mut *tx)
            .await?;
        let episode_open: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM notification_episodes \
             WHERE repo_id = $1 AND subject IN ('sync', 'lfs'))",
        )
        .bind(repo_id)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Some(UnchangedRun {
            id,
            interrupted,
            episode_open,
        }))
    }

    async fn list_runs(&self, repo_id: i64, limit: i64) -> Result<Vec<SyncRun>, StoreError> {
        // REPEATABLE READ and read-only: both queries see the same snapshot.
        let mut tx = self
            .pool
            .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .await?;
        let rows = sqlx::query(
            "SELECT id, repo_id, trigger, started_at, finished_at, outcome, error_code, error_message, warnings \
             FROM sync_runs WHERE repo_id = $1 ORDER BY started_at DESC, id DESC LIMIT $2",
        )
        .bind(repo_id)
        .bind(limit.max(0))
        .fetch_all(&mut *tx)
        .await?;
        let mut runs = rows
            .iter()
            .map(|r| {
                Ok(SyncRun {
                    id: r.try_get("id")?,
                    repo_id: r.try_get("repo_id")?,
                    trigger: parse_trigger(r.try_get("trigger")?)?,
                    started_at: r.try_get("started_at")?,
                    finished_at: r.try_get("finished_at")?,
                    outcome: parse_outcome(r.try_get("outcome")?)?,
                    error_code: r.try_get("error_code")?,
                    error_message: r.try_get("error_message")?,
                    ref_changes: Vec::new(),
                    warnings: r.try_get("warnings")?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        if runs.is_empty() {
            tx.commit().await?;
            return Ok(runs);
        }

        let ids: Vec<i64> = runs.iter().map(|r| r.id).collect();
        let index: HashMap<i64, usize> = ids.iter().enumerate().map(|(i, id)| (*id, i)).collect();
        let changes = sqlx::query(
            "SELECT run_id, ref_name, old_oid, new_oid, kind FROM sync_ref_changes \
             WHERE run_id = ANY($1) ORDER BY run_id, position",
        )
        .bind(&ids)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        for c in &changes {
            let run_id: i64 = c.try_get("run_id")?;
            if let Some(&i) = index.get(&run_id) {
                runs[i].ref_changes.push(RefChange {
                    name: c.try_get("ref_name")?,
                    old: c.try_get("old_oid")?,
                    new: c.try_get("new_oid")?,
                    kind: parse_kind(c.try_get("kind")?)?,
                });
            }
        }
        Ok(runs)
    }

    async fn running_count(&self, repo_id: i64) -> Result<i64, StoreError> {
        let n = sqlx::query_scalar(
            "SELECT COUNT(*) FROM sync_runs WHERE repo_id = $1 AND outcome = $2",
        )
        .bind(repo_id)
        .bind(Outcome::Running.as_str())
        .fetch_one(&self.pool)
        .await?;
        Ok(n)
    }

    async fn syncing_repo_ids(&self, now: DateTime<Utc>) -> Result<Vec<i64>, StoreError> {
        let ids = sqlx::query_scalar(
            "SELECT DISTINCT repo_id FROM sync_jobs \
             WHERE claimed_by IS NOT NULL AND lease_until > $1 ORDER BY repo_id",
        )
        .bind(now)
        .fetch_all(&self.pool)
        .await?;
        Ok(ids)
    }

    async fn get_setting(&self, key: &str) -> Result<Option<String>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT value FROM settings WHERE key = $1")
                .bind(key)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    async fn put_setting_if_absent(&self, key: &str, value: &str) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
        )
        .bind(key)
        .bind(value)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn put_setting(&self, key: &str, value: &str) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO settings (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value")
            .bind(key)
            .bind(value)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn resume_repo(&self, id: i64, now: DateTime<Utc>) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE repos SET paused_reason = NULL, next_sync_at = CASE WHEN paused_reason IS NULL THEN next_sync_at ELSE $1 END \
             WHERE id = $2",
        )
        .bind(now)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn update_repo(&self, id: i64, update: &RepoUpdate) -> Result<Option<Repo>, StoreError> {
        let sealed = match &update.credentials {
            Some(Some(c)) => Some(self.key.seal_credentials(c)?),
            _ => None,
        };
        let sql = format!(
            "UPDATE repos SET credentials = CASE WHEN $1 THEN $2 ELSE credentials END, \
             sync_interval_secs = COALESCE($3, sync_interval_secs), next_sync_at = COALESCE($4, next_sync_at), \
             description = COALESCE($5, description), visibility = COALESCE($6, visibility), \
             ssh_key_id = CASE WHEN $8 THEN $9 ELSE ssh_key_id END, \
             known_hosts = CASE WHEN $10 THEN $11 ELSE known_hosts END, \
             lfs_enabled = COALESCE($12, lfs_enabled), \
             lfs_url = CASE WHEN $13 THEN $14 ELSE lfs_url END, \
             paused_reason = NULL WHERE id = $7 RETURNING {REPO_COLUMNS}"
        );
        let row = sqlx::query(&sql)
            .bind(update.credentials.is_some())
            .bind(sealed)
            .bind(update.sync_interval_secs)
            .bind(update.next_sync_at)
            .bind(update.description.as_deref())
            .bind(update.visibility.map(|v| v.as_str()))
            .bind(id)
            .bind(update.ssh_key_id.is_some())
            .bind(update.ssh_key_id.flatten())
            .bind(update.known_hosts.is_some())
            .bind(update.known_hosts.as_ref().and_then(|h| h.as_deref()))
            .bind(update.lfs_enabled)
            .bind(update.lfs_url.is_some())
            .bind(update.lfs_url.as_ref().and_then(|u| u.as_deref()))
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| self.repo_from_row(&r)).transpose()
    }

    async fn repos_by_match_keys(&self, keys: &[String]) -> Result<Vec<Repo>, StoreError> {
        if keys.is_empty() {
            return Ok(vec![]);
        }
        let sql = format!("SELECT {REPO_COLUMNS} FROM repos WHERE match_key = ANY($1) ORDER BY id");
        let rows = sqlx::query(&sql).bind(keys).fetch_all(&self.pool).await?;
        rows.iter().map(|r| self.repo_from_row(r)).collect()
    }

    async fn record_delivery(
        &self,
        delivery: &NewDelivery,
        now: DateTime<Utc>,
    ) -> Result<DeliveryOutcome, StoreError> {
        let mut tx = self.pool.begin().await?;
        if let Some(id) = &delivery.delivery_id {
            let fresh = sqlx::query(
                "INSERT INTO webhook_seen (forge, delivery_id, seen_at) VALUES ($1, $2, $3) \
                 ON CONFLICT (forge, delivery_id) DO NOTHING",
            )
            .bind(&delivery.forge)
            .bind(id)
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected()
                == 1;
            if !fresh {
                return Ok(DeliveryOutcome::Duplicate);
            }
        }
        let mut syncs_due = Vec::new();
        for entry in &delivery.entries {
            if entry.sync {
                // One statement: the job is inserted, or merged into the pending one (the
                // earlier start wins). Due at once: while a sync of the repository runs, the
                // claim refuses it, so it is the one follow-up that starts when that sync ends.
                // Not at all when a sync that started after the delivery arrived runs or ran
                // well: its fetch already sees the push.
                let due: Option<DateTime<Utc>> = sqlx::query_scalar(
                    "INSERT INTO sync_jobs (repo_id, trigger, run_after, created_at) \
                     SELECT $1, $2, $3, now() \
                     WHERE NOT EXISTS (SELECT 1 FROM sync_runs WHERE repo_id = $1 AND started_at >= $3 \
                         AND outcome IN ('running', 'success', 'unchanged')) \
                     ON CONFLICT (repo_id) WHERE claimed_by IS NULL DO UPDATE SET \
                         trigger = CASE WHEN sync_jobs.trigger <> 'promote' AND EXCLUDED.run_after < sync_jobs.run_after THEN EXCLUDED.trigger ELSE sync_jobs.trigger END, \
                         run_after = LEAST(sync_jobs.run_after, EXCLUDED.run_after) \
                     RETURNING run_after",
                )
                .bind(entry.repo_id)
                .bind(Trigger::Webhook.as_str())
                .bind(now)
                .fetch_optional(&mut *tx)
                .await?;
                syncs_due.extend(due);
            }
            sqlx::query(
                "UPDATE repos SET webhook_last_delivery_at = $1, webhook_last_forge = $2 WHERE id = $3",
            )
            .bind(now)
            .bind(&delivery.forge)
            .bind(entry.repo_id)
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "INSERT INTO webhook_deliveries (repo_id, received_at, forge, event, delivery_id, result) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(entry.repo_id)
            .bind(now)
            .bind(&delivery.forge)
            .bind(&delivery.event)
            .bind(delivery.delivery_id.as_deref())
            .bind(&entry.result)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(DeliveryOutcome::Recorded { syncs_due })
    }

    async fn list_deliveries(&self, repo_id: i64, limit: i64) -> Result<Vec<Delivery>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, repo_id, received_at, forge, event, delivery_id, result \
             FROM webhook_deliveries WHERE repo_id = $1 ORDER BY id DESC LIMIT $2",
        )
        .bind(repo_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(Delivery {
                    id: row.try_get("id")?,
                    repo_id: row.try_get("repo_id")?,
                    received_at: row.try_get("received_at")?,
                    forge: row.try_get("forge")?,
                    event: row.try_get("event")?,
                    delivery_id: row.try_get("delivery_id")?,
                    result: row.try_get("result")?,
                })
            })
            .collect()
    }

    async fn prune_deliveries(
        &self,
        seen_before: DateTime<Utc>,
        log_before: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let seen = sqlx::query("DELETE FROM webhook_seen WHERE seen_at < $1")
            .bind(seen_before)
            .execute(&self.pool)
            .await?
            .rows_affected();
        let log = sqlx::query("DELETE FROM webhook_deliveries WHERE received_at < $1")
            .bind(log_before)
            .execute(&self.pool)
            .await?
            .rows_affected();
        let commands = sqlx::query("DELETE FROM bot_commands WHERE taken_at < $1")
            .bind(log_before)
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok(seen + log + commands)
    }

    async fn take_bot_command(
        &self,
        forge: &str,
        comment: &str,
        command: &str,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "INSERT INTO bot_commands (forge, comment, command, taken_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (forge, comment, command) DO NOTHING",
        )
        .bind(forge)
        .bind(comment)
        .bind(command)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn set_webhook_hook(&self, repo_id: i64, hook: &WebhookHook) -> Result<(), StoreError> {
        let (forge, id, error) = hook_columns(hook);
        let done = sqlx::query(
            "UPDATE repos SET webhook_hook_forge = $1, webhook_hook_id = $2, webhook_hook_error = $3 \
             WHERE id = $4",
        )
        .bind(forge)
        .bind(id)
        .bind(error)
        .bind(repo_id)
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn create_web_session(&self, session: &WebSession) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO web_sessions (id_sha256, csrf_token, created_at, expires_at, user_id) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&session.id_sha256)
        .bind(&session.csrf_token)
        .bind(session.created_at)
        .bind(session.expires_at)
        .bind(session.user_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn get_web_session(
        &self,
        id_sha256: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<WebSession>, StoreError> {
        let row = sqlx::query(
            "SELECT id_sha256, csrf_token, created_at, expires_at, user_id FROM web_sessions \
             WHERE id_sha256 = $1 AND expires_at > $2",
        )
        .bind(id_sha256)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| {
            Ok(WebSession {
                id_sha256: row.try_get("id_sha256")?,
                csrf_token: row.try_get("csrf_token")?,
                user_id: row.try_get("user_id")?,
                created_at: row.try_get("created_at")?,
                expires_at: row.try_get("expires_at")?,
            })
        })
        .transpose()
    }

    async fn delete_web_session(&self, id_sha256: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM web_sessions WHERE id_sha256 = $1")
            .bind(id_sha256)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn prune_web_sessions(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM web_sessions WHERE expires_at <= $1")
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    async fn create_account(
        &self,
        new: &NewAccount,
        now: DateTime<Utc>,
    ) -> Result<Account, StoreError> {
        let sql = format!(
            "INSERT INTO accounts (name, kind, site_admin, password_hash, created_at) \
             VALUES ($1, $2, $3, $4, $5) RETURNING {ACCOUNT_COLUMNS}"
        );
        let row = sqlx::query(&sql)
            .bind(new.name.as_str())
            .bind(new.kind.as_str())
            .bind(new.site_admin)
            .bind(new.password_hash.as_deref())
            .bind(now)
            .fetch_one(&self.pool)
            .await?;
        account_from_row(&row, "")
    }

    async fn get_account(&self, name: &str) -> Result<Option<Account>, StoreError> {
        let sql = format!("SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE name_key = lower($1)");
        let row = sqlx::query(&sql)
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| account_from_row(&r, "")).transpose()
    }

    async fn get_account_by_id(&self, id: i64) -> Result<Option<Account>, StoreError> {
        let sql = format!("SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE id = $1");
        let row = sqlx::query(&sql)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| account_from_row(&r, "")).transpose()
    }

    async fn list_accounts(&self) -> Result<Vec<Account>, StoreError> {
        let sql = format!("SELECT {ACCOUNT_COLUMNS} FROM accounts ORDER BY name_key");
        let rows = sqlx::query(&sql).fetch_all(&self.pool).await?;
        rows.iter().map(|r| account_from_row(r, "")).collect()
    }

    async fn delete_account(&self, id: i64) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "DELETE FROM accounts WHERE id = $1 \
             AND NOT EXISTS (SELECT 1 FROM repos WHERE repos.owner_key = accounts.name_key) \
             AND NOT EXISTS (SELECT 1 FROM ssh_keys k JOIN repos r ON r.ssh_key_id = k.id \
                             WHERE k.owner_id = accounts.id)",
        )
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn update_user(
        &self,
        id: i64,
        password_hash: Option<Option<String>>,
        site_admin: Option<bool>,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE accounts SET \
             password_hash = CASE WHEN $2 THEN $3 ELSE password_hash END, \
             site_admin = COALESCE($4, site_admin) \
             WHERE id = $1 AND kind = 'user'",
        )
        .bind(id)
        .bind(password_hash.is_some())
        .bind(password_hash.flatten())
        .bind(site_admin)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn password_hash(&self, user_id: i64) -> Result<Option<String>, StoreError> {
        let hash: Option<Option<String>> =
            sqlx::query_scalar("SELECT password_hash FROM accounts WHERE id = $1")
                .bind(user_id)
                .fetch_optional(&self.pool)
                .await?;
        Ok(hash.flatten())
    }

    async fn set_member(&self, org_id: i64, user_id: i64, role: Access) -> Result<(), StoreError> {
        // A missing account fails the foreign key: NotFound.
        sqlx::query(
            "INSERT INTO org_members (org_id, user_id, role) VALUES ($1, $2, $3) \
             ON CONFLICT (org_id, user_id) DO UPDATE SET role = EXCLUDED.role",
        )
        .bind(org_id)
        .bind(user_id)
        .bind(role.as_str())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn remove_member(&self, org_id: i64, user_id: i64) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM org_members WHERE org_id = $1 AND user_id = $2")
            .bind(org_id)
            .bind(user_id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn list_members(&self, org_id: i64) -> Result<Vec<(Account, Access)>, StoreError> {
        let rows = sqlx::query(
            "SELECT a.id, a.name, a.kind, a.site_admin, a.created_at, m.role \
             FROM org_members m JOIN accounts a ON a.id = m.user_id \
             WHERE m.org_id = $1 ORDER BY a.name_key",
        )
        .bind(org_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((account_from_row(r, "")?, parse_access(r.try_get("role")?)?)))
            .collect()
    }

    async fn memberships(&self, user_id: i64) -> Result<Vec<(String, Access)>, StoreError> {
        let rows = sqlx::query(
            "SELECT a.name, m.role FROM org_members m JOIN accounts a ON a.id = m.org_id \
             WHERE m.user_id = $1 ORDER BY a.name_key",
        )
        .bind(user_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("name")?, parse_access(r.try_get("role")?)?)))
            .collect()
    }

    async fn create_access_token(
        &self,
        new: &NewAccessToken,
        now: DateTime<Utc>,
    ) -> Result<AccessToken, StoreError> {
        let sql = format!(
            "INSERT INTO access_tokens (user_id, name, token_sha256, scope, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING {TOKEN_COLUMNS}"
        );
        let row = sqlx::query(&sql)
            .bind(new.user_id)
            .bind(&new.name)
            .bind(&new.token_sha256)
            .bind(new.scope.as_str())
            .bind(now)
            .bind(new.expires_at)
            .fetch_one(&self.pool)
            .await?;
        token_from_row(&row)
    }

    async fn access_token_by_hash(
        &self,
        token_sha256: &str,
    ) -> Result<Option<(AccessToken, Account)>, StoreError> {
        let row = sqlx::query(
            "SELECT t.id, t.user_id, t.name, t.scope, t.created_at, t.expires_at, t.last_used_at, \
             t.revoked_at, a.id AS account_id, a.name AS account_name, a.kind AS account_kind, \
             a.site_admin AS account_site_admin, a.created_at AS account_created_at \
             FROM access_tokens t JOIN accounts a ON a.id = t.user_id WHERE t.token_sha256 = $1",
        )
        .bind(token_sha256)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| Ok((token_from_row(&r)?, account_from_row(&r, "account_")?)))
            .transpose()
    }

    async fn list_access_tokens(&self, user_id: i64) -> Result<Vec<AccessToken>, StoreError> {
        let sql = format!(
            "SELECT {TOKEN_COLUMNS} FROM access_tokens WHERE user_id = $1 \
             ORDER BY created_at DESC, id DESC"
        );
        let rows = sqlx::query(&sql)
            .bind(user_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(token_from_row).collect()
    }

    async fn revoke_access_token(
        &self,
        user_id: i64,
        token_id: i64,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE access_tokens SET revoked_at = COALESCE(revoked_at, $1) \
             WHERE id = $2 AND user_id = $3",
        )
        .bind(now)
        .bind(token_id)
        .bind(user_id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn touch_access_token(
        &self,
        token_id: i64,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE access_tokens SET last_used_at = $1 WHERE id = $2")
            .bind(now)
            .bind(token_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn create_ssh_key(
        &self,
        new: NewSshKey,
        now: DateTime<Utc>,
    ) -> Result<SshKey, StoreError> {
        let sealed = self.key.seal_ssh_key(&new.private_key)?;
        // A missing owner fails the foreign key: NotFound.
        let row = sqlx::query(
            "INSERT INTO ssh_keys (owner_id, title, public_key, fingerprint, private_key, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6) \
             RETURNING id, owner_id, (SELECT name FROM accounts WHERE accounts.id = ssh_keys.owner_id) AS owner, \
             title, public_key, fingerprint, created_at",
        )
        .bind(new.owner_id)
        .bind(&new.title)
        .bind(&new.public_key)
        .bind(&new.fingerprint)
        .bind(sealed)
        .bind(now)
        .fetch_one(&self.pool)
        .await?;
        ssh_key_from_row(&row)
    }

    async fn list_ssh_keys(&self, owner_id: i64) -> Result<Vec<SshKey>, StoreError> {
        let sql = format!(
            "SELECT {SSH_KEY_COLUMNS} FROM ssh_keys k JOIN accounts a ON a.id = k.owner_id \
             WHERE k.owner_id = $1 ORDER BY k.created_at, k.id"
        );
        let rows = sqlx::query(&sql)
            .bind(owner_id)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(ssh_key_from_row).collect()
    }

    async fn get_ssh_key(&self, id: i64) -> Result<Option<SshKey>, StoreError> {
        let sql = format!(
            "SELECT {SSH_KEY_COLUMNS} FROM ssh_keys k JOIN accounts a ON a.id = k.owner_id \
             WHERE k.id = $1"
        );
        let row = sqlx::query(&sql)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| ssh_key_from_row(&r)).transpose()
    }

    async fn ssh_private_key(&self, id: i64) -> Result<Option<SecretString>, StoreError> {
        let sealed: Option<Vec<u8>> =
            sqlx::query_scalar("SELECT private_key FROM ssh_keys WHERE id = $1")
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
        Ok(sealed.map(|s| self.key.open_ssh_key(&s)).transpose()?)
    }

    async fn delete_ssh_key(&self, id: i64) -> Result<SshKeyDeletion, StoreError> {
        let mut tx = self.pool.begin().await?;
        // FOR UPDATE conflicts with the KEY SHARE lock that the foreign-key check of a
        // repository taking the key up holds until it commits: such a writer has committed
        // before this returns (and the next statement, under READ COMMITTED, sees it), or it
        // waits for this transaction and then finds the key gone.
        let locked: Option<i64> =
            sqlx::query_scalar("SELECT id FROM ssh_keys WHERE id = $1 FOR UPDATE")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
        if locked.is_none() {
            tx.rollback().await?;
            return Ok(SshKeyDeletion::NotFound);
        }
        let repos: Vec<String> = sqlx::query_scalar(
            "SELECT label FROM ( \
             SELECT owner || '/' || name AS label, owner_key AS k1, name_key AS k2, 0::BIGINT AS k3 \
             FROM repos WHERE ssh_key_id = $1 \
             UNION ALL SELECT r.owner || '/' || r.name || ' (push mirror ' || p.id || ')', \
             r.owner_key, r.name_key, p.id \
             FROM push_mirrors p JOIN repos r ON r.id = p.repo_id WHERE p.ssh_key_id = $1 \
             ) AS users ORDER BY k1, k2, k3",
        )
        .bind(id)
        .fetch_all(&mut *tx)
        .await?;
        if !repos.is_empty() {
            tx.rollback().await?;
            return Ok(SshKeyDeletion::InUse { repos });
        }
        sqlx::query("DELETE FROM ssh_keys WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(SshKeyDeletion::Deleted)
    }

    async fn lfs_need(
        &self,
        repo_id: i64,
        objects: &[LfsObject],
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let mut added = 0;
        for chunk in objects.chunks(LFS_ROWS_PER_INSERT) {
            let mut insert = QueryBuilder::<Postgres>::new(
                "INSERT INTO repo_lfs_objects (repo_id, oid, size, present, added_at) ",
            );
            insert.push_values(chunk, |mut b, (oid, size)| {
                b.push_bind(repo_id)
                    .push_bind(oid)
                    .push_bind(*size)
                    .push_bind(false)
                    .push_bind(now);
            });
            insert.push(" ON CONFLICT (repo_id, oid) DO NOTHING");
            added += insert.build().execute(&self.pool).await?.rows_affected();
        }
        Ok(added)
    }

    async fn lfs_missing(&self, repo_id: i64, limit: i64) -> Result<Vec<LfsObject>, StoreError> {
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT oid, size FROM repo_lfs_objects WHERE repo_id = $1 AND present = FALSE \
             ORDER BY added_at, oid LIMIT $2",
        )
        .bind(repo_id)
        .bind(limit.max(0))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows)
    }

    async fn lfs_mark_present(
        &self,
        repo_id: i64,
        objects: &[LfsObject],
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        for chunk in objects.chunks(LFS_ROWS_PER_INSERT) {
            let mut insert = QueryBuilder::<Postgres>::new(
                "INSERT INTO repo_lfs_objects (repo_id, oid, size, present, added_at) ",
            );
            insert.push_values(chunk, |mut b, (oid, size)| {
                b.push_bind(repo_id)
                    .push_bind(oid)
                    .push_bind(*size)
                    .push_bind(true)
                    .push_bind(now);
            });
            insert.push(" ON CONFLICT (repo_id, oid) DO UPDATE SET present = TRUE");
            insert.build().execute(&self.pool).await?;
        }
        Ok(())
    }

    async fn lfs_mark_missing(&self, repo_id: i64, oid: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE repo_lfs_objects SET present = FALSE WHERE repo_id = $1 AND oid = $2")
            .bind(repo_id)
            .bind(oid)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn lfs_object(&self, repo_id: i64, oid: &str) -> Result<Option<(i64, bool)>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT size, present FROM repo_lfs_objects WHERE repo_id = $1 AND oid = $2",
        )
        .bind(repo_id)
        .bind(oid)
        .fetch_optional(&self.pool)
        .await?)
    }

    async fn lfs_counts(&self, repo_id: i64) -> Result<LfsCounts, StoreError> {
        let (objects, bytes, missing): (i64, i64, i64) = sqlx::query_as(
            "SELECT COUNT(*), COALESCE(SUM(CASE WHEN present THEN size ELSE 0 END), 0)::BIGINT, COUNT(*) FILTER (WHERE NOT present) \
             FROM repo_lfs_objects WHERE repo_id = $1",
        )
        .bind(repo_id)
        .fetch_one(&self.pool)
        .await?;
        Ok(LfsCounts {
            objects,
            bytes,
            missing,
        })
    }

    async fn lfs_set_error(&self, repo_id: i64, error: Option<&str>) -> Result<(), StoreError> {
        sqlx::query("UPDATE repos SET lfs_last_error = $1 WHERE id = $2")
            .bind(error)
            .bind(repo_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn lfs_repo_oids(&self, repo_id: i64) -> Result<Vec<String>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT oid FROM repo_lfs_objects WHERE repo_id = $1")
                .bind(repo_id)
                .fetch_all(&self.pool)
                .await?,
        )
    }

    async fn lfs_unreferenced(&self, oids: &[String]) -> Result<Vec<String>, StoreError> {
        let mut gone = Vec::new();
        for chunk in oids.chunks(LFS_ROWS_PER_INSERT) {
            let mut query = QueryBuilder::<Postgres>::new(
                "SELECT DISTINCT oid FROM repo_lfs_objects WHERE oid IN (",
            );
            let mut list = query.separated(", ");
            for oid in chunk {
                list.push_bind(oid);
            }
            query.push(")");
            let referenced: Vec<String> = query.build_query_scalar().fetch_all(&self.pool).await?;
            gone.extend(chunk.iter().filter(|o| !referenced.contains(o)).cloned());
        }
        Ok(gone)
    }

    async fn set_run_warnings(&self, run_id: i64, warnings: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE sync_runs SET warnings = $1 WHERE id = $2")
            .bind(warnings)
            .bind(run_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

/// Rows per multi-row statement for LFS objects (5 binds each; SQLite allows 32766).
const LFS_ROWS_PER_INSERT: usize = 500;

/// What a worker reads besides the repository's columns (see [`Store::sync_context`]).
const SYNC_CONTEXT_EXTRA: &str = "(SELECT spec FROM repo_ref_filters f WHERE f.repo_id = repos.id) AS ref_filter_spec, \
     (SELECT s.installation_id FROM mirror_set_repos m JOIN mirror_sets s ON s.id = m.set_id \
      WHERE m.repo_id = repos.id AND s.installation_id IS NOT NULL ORDER BY m.set_id LIMIT 1) AS set_installation";

/// Inserts a run: `running` when `finished` is `None`, otherwise already over with its outcome.
async fn insert_run_in(
    conn: &mut PgConnection,
    repo_id: i64,
    trigger: Trigger,
    started_at: DateTime<Utc>,
    finished: Option<&SyncResult>,
) -> Result<i64, StoreError> {
    Ok(sqlx::query_scalar(
        "INSERT INTO sync_runs (repo_id, trigger, started_at, finished_at, outcome, concurrent_at_start) \
         VALUES ($1, $2, $3, $4, $5, (SELECT count(*) FROM sync_runs WHERE repo_id = $1 AND outcome = $6)) RETURNING id",
    )
    .bind(repo_id)
    .bind(trigger.as_str())
    .bind(started_at)
    .bind(finished.map(|r| r.finished_at))
    .bind(finished.map_or(Outcome::Running, |r| r.outcome).as_str())
    .bind(Outcome::Running.as_str())
    .fetch_one(&mut *conn)
    .await?)
}

/// Records a run's start (see [`Store::start_run`]) inside the caller's transaction.
async fn start_run_in(
    conn: &mut PgConnection,
    repo_id: i64,
    trigger: Trigger,
    now: DateTime<Utc>,
) -> Result<i64, StoreError> {
    let id = insert_run_in(conn, repo_id, trigger, now, None).await?;
    sqlx::query("UPDATE repos SET last_sync_at = $1 WHERE id = $2")
        .bind(now)
        .bind(repo_id)
        .execute(&mut *conn)
        .await?;
    Ok(id)
}

/// Closes runs left `running` by dead workers (see [`Store::fail_interrupted_runs`]).
async fn fail_interrupted_in<'e, E: sqlx::Executor<'e, Database = Postgres>>(
    executor: E,
    repo_id: i64,
    now: DateTime<Utc>,
) -> Result<u64, StoreError> {
    let done = sqlx::query(
        "UPDATE sync_runs SET outcome = $1, finished_at = $2, error_code = $3, error_message = $4 \
         WHERE repo_id = $5 AND outcome = $6 \
           AND (SELECT count(*) FROM sync_jobs WHERE repo_id = $5 AND claimed_by IS NOT NULL AND lease_until > $2) <= 1",
    )
    .bind(Outcome::Failed.as_str())
    .bind(now)
    .bind(INTERRUPTED_CODE)
    .bind(INTERRUPTED_MESSAGE)
    .bind(repo_id)
    .bind(Outcome::Running.as_str())
    .execute(executor)
    .await?;
    Ok(done.rows_affected())
}

/// Records a run's end (see [`Store::finish_run`]) inside the caller's transaction. `false`:
/// the run or its repository is gone.
async fn finish_run_in(
    conn: &mut PgConnection,
    run_id: i64,
    repo_id: i64,
    result: &SyncResult,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE sync_runs SET finished_at = $1, outcome = $2, error_code = $3, error_message = $4 \
             WHERE id = $5 AND repo_id = $6",
    )
    .bind(result.finished_at)
    .bind(result.outcome.as_str())
    .bind(&result.error_code)
    .bind(&result.error_message)
    .bind(run_id)
    .bind(repo_id)
    .execute(&mut *conn)
    .await?;
    if done.rows_affected() == 0 {
        return Ok(false);
    }

    for (chunk_no, chunk) in result
        .ref_changes
        .chunks(REF_CHANGES_PER_INSERT)
        .enumerate()
    {
        let mut insert = QueryBuilder::<Postgres>::new(
            "INSERT INTO sync_ref_changes (run_id, position, ref_name, old_oid, new_oid, kind) ",
        );
        insert.push_values(chunk.iter().enumerate(), |mut b, (i, change)| {
            let position = i32::try_from(chunk_no * REF_CHANGES_PER_INSERT + i).unwrap_or(i32::MAX);
            b.push_bind(run_id)
                .push_bind(position)
                .push_bind(&change.name)
                .push_bind(&change.old)
                .push_bind(&change.new)
                .push_bind(change.kind.as_str());
        });
        insert.build().execute(&mut *conn).await?;
    }

    record_result_in(conn, repo_id, result, None).await
}

/// Records a finished run's result on its repository; a success started at `synced_at`
/// (when given) also sets `last_sync_at`. `false`: the repository is gone.
async fn record_result_in(
    conn: &mut PgConnection,
    repo_id: i64,
    result: &SyncResult,
    synced_at: Option<DateTime<Utc>>,
) -> Result<bool, StoreError> {
    let updated = if result.outcome == Outcome::Failed {
        sqlx::query(
            "UPDATE repos SET last_error_code = $1, last_error_message = $2, \
                 consecutive_failures = consecutive_failures + 1, \
                 state = CASE WHEN state = $3 THEN $4 ELSE state END, \
                 progress_phase = NULL, progress_percent = NULL, next_sync_at = $5, \
                 paused_reason = COALESCE($7, paused_reason) \
                 WHERE id = $6",
        )
        .bind(&result.error_code)
        .bind(&result.error_message)
        .bind(RepoState::Cloning.as_str())
        .bind(RepoState::Failed.as_str())
        .bind(result.next_sync_at)
        .bind(repo_id)
        .bind(
            result
                .pause
                .then(|| result.error_message.clone().unwrap_or_default()),
        )
        .execute(&mut *conn)
        .await?
    } else {
        sqlx::query(
                "UPDATE repos SET state = $1, last_success_at = $2, branches = $3, tags = $4, head_ref = $5, \
                 last_error_code = NULL, last_error_message = NULL, consecutive_failures = 0, \
                 progress_phase = NULL, progress_percent = NULL, next_sync_at = $6, paused_reason = NULL, \
                 mode = CASE WHEN $8 THEN 'migrate' ELSE mode END, \
                 credentials = CASE WHEN $8 THEN NULL ELSE credentials END, \
                 ssh_key_id = CASE WHEN $8 THEN NULL ELSE ssh_key_id END, \
                 last_sync_at = COALESCE($9, last_sync_at) \
                 WHERE id = $7",
            )
            .bind(RepoState::Ready.as_str())
            .bind(result.finished_at)
            .bind(result.branches)
            .bind(result.tags)
            .bind(&result.head_ref)
            .bind(result.next_sync_at)
            .bind(repo_id)
            .bind(result.promote)
            .bind(synced_at)
            .execute(&mut *conn)
            .await?
    };
    Ok(updated.rows_affected() > 0)
}

//! The SQLite store: the embedded default, serving one process. Timestamps are INTEGER
//! milliseconds since the epoch. Every write transaction starts with `BEGIN IMMEDIATE`, so it
//! takes the database's write lock up front (waiting up to the busy timeout) and never fails
//! half-way on a lock upgrade.

mod fidelity;
mod mirror_sets;

use std::collections::HashMap;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use mirrorhub_core::{Access, AccountKind, Outcome, RefChange, RepoState, Trigger};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{QueryBuilder, Row, Sqlite, SqliteConnection, SqlitePool};
use tokio::sync::{mpsc, oneshot};

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

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../../migrations/sqlite");

const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

const REPO_COLUMNS: &str = "id, owner, name, mode, visibility, description, upstream_url, credentials, state, \
     progress_phase, progress_percent, sync_interval_secs, last_sync_at, last_success_at, next_sync_at, \
     last_error_code, last_error_message, consecutive_failures, branches, tags, head_ref, created_at, \
     paused_reason, webhook_secret, webhook_last_delivery_at, webhook_last_forge, webhook_hook_forge, \
     webhook_hook_id, webhook_hook_error, ssh_key_id, known_hosts, lfs_enabled, lfs_url, lfs_last_error";

const ACCOUNT_COLUMNS: &str = "id, name, kind, site_admin, created_at";

/// Looks an account up by name through the unique index on `name_key`. Binds: name.
const ACCOUNT_BY_NAME_SQL: &str =
    "SELECT id, name, kind, site_admin, created_at FROM accounts WHERE name_key = lower(?1)";

const TOKEN_COLUMNS: &str =
    "id, user_id, name, scope, created_at, expires_at, last_used_at, revoked_at";

/// The columns of an [`SshKey`], from `ssh_keys k JOIN accounts a` (never the private key).
const SSH_KEY_COLUMNS: &str =
    "k.id, k.owner_id, a.name AS owner, k.title, k.public_key, k.fingerprint, k.created_at";

/// The full names of the repositories that use a key, as list_repos orders them. Binds: key id.
/// Push mirrors count too (`team/app (push mirror 4)`): a key deleted under one would leave
/// it unable to log in.
const REPOS_USING_SSH_KEY_SQL: &str = "SELECT label FROM ( \
     SELECT owner || '/' || name AS label, owner_key AS k1, name_key AS k2, 0 AS k3 \
     FROM repos WHERE ssh_key_id = ?1 \
     UNION ALL SELECT r.owner || '/' || r.name || ' (push mirror ' || p.id || ')', \
     r.owner_key, r.name_key, p.id \
     FROM push_mirrors p JOIN repos r ON r.id = p.repo_id WHERE p.ssh_key_id = ?1 \
     ) AS users ORDER BY k1, k2, k3";

/// Claims one job; a single statement, so the candidate and the claim are one write.
/// Binds: worker, lease end, now.
const CLAIM_SQL: &str =
    "UPDATE sync_jobs SET claimed_by = ?1, lease_until = ?2, attempts = attempts + 1 \
             WHERE id = ( \
                 SELECT j.id FROM sync_jobs j \
                 WHERE j.run_after <= ?3 \
                   AND (j.claimed_by IS NULL OR j.lease_until <= ?3) \
                   AND NOT EXISTS ( \
                       SELECT 1 FROM sync_jobs o \
                       WHERE o.repo_id = j.repo_id AND o.id <> j.id \
                         AND o.claimed_by IS NOT NULL AND o.lease_until > ?3) \
                 ORDER BY j.run_after, j.id LIMIT 1) \
             RETURNING id, repo_id, trigger, attempts";

/// Queues schedule jobs for due mirrors. Binds: trigger, now, created_at, limit.
const ENQUEUE_DUE_SQL: &str = "INSERT INTO sync_jobs (repo_id, trigger, run_after, created_at) \
             SELECT r.id, ?1, ?2, ?3 FROM repos r \
             WHERE r.mode = 'mirror' AND r.next_sync_at <= ?2 \
               AND NOT EXISTS (SELECT 1 FROM sync_jobs j WHERE j.repo_id = r.id) \
             ORDER BY COALESCE(r.last_success_at, r.created_at) + r.sync_interval_secs * 1000, r.id \
             LIMIT ?4 \
             ON CONFLICT DO NOTHING";

pub(crate) struct SqliteStore {
    /// Readers: WAL lets them run beside the writer.
    pool: SqlitePool,
    /// The one connection every write goes through. SQLite takes one writer at a time anyway;
    /// queueing writers here (fairly, in order) instead of letting them race for the lock and
    /// sleep in the busy handler keeps write latency flat under load.
    writer: SqlitePool,
    /// Webhook deliveries, written by one task in group commits (see [`write_deliveries`]).
    deliveries: mpsc::Sender<DeliveryRequest>,
    key: SecretKey,
}

fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

fn from_ms(ms: i64) -> Result<DateTime<Utc>, StoreError> {
    DateTime::from_timestamp_millis(ms)
        .ok_or_else(|| StoreError::Corrupt(format!("timestamp {ms} is out of range")))
}

fn from_opt_ms(ms: Option<i64>) -> Result<Option<DateTime<Utc>>, StoreError> {
    ms.map(from_ms).transpose()
}

/// An account from a row whose account columns are named `{prefix}id`, `{prefix}name`, ...
/// (`prefix` is empty unless a join renamed them).
fn account_from_row(row: &SqliteRow, prefix: &str) -> Result<Account, StoreError> {
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
        created_at: from_ms(row.try_get(col("created_at").as_str())?)?,
    })
}

fn parse_access(s: &str) -> Result<Access, StoreError> {
    parse_text("access level", s, Access::parse)
}

/// A token from a row with [`TOKEN_COLUMNS`].
fn token_from_row(row: &SqliteRow) -> Result<AccessToken, StoreError> {
    Ok(AccessToken {
        id: row.try_get("id")?,
        user_id: row.try_get("user_id")?,
        name: row.try_get("name")?,
        scope: parse_access(row.try_get("scope")?)?,
        created_at: from_ms(row.try_get("created_at")?)?,
        expires_at: from_opt_ms(row.try_get("expires_at")?)?,
        last_used_at: from_opt_ms(row.try_get("last_used_at")?)?,
        revoked_at: from_opt_ms(row.try_get("revoked_at")?)?,
    })
}

/// An SSH key from a row with [`SSH_KEY_COLUMNS`].
fn ssh_key_from_row(row: &SqliteRow) -> Result<SshKey, StoreError> {
    Ok(SshKey {
        id: row.try_get("id")?,
        owner_id: row.try_get("owner_id")?,
        owner: row.try_get("owner")?,
        title: row.try_get("title")?,
        public_key: row.try_get("public_key")?,
        fingerprint: row.try_get("fingerprint")?,
        created_at: from_ms(row.try_get("created_at")?)?,
    })
}

/// Inserts a pending job or merges into the pending one (the earlier start wins, with its
/// trigger), inside the caller's write transaction.
async fn enqueue_in(
    conn: &mut SqliteConnection,
    repo_id: i64,
    trigger: Trigger,
    run_after: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let inserted = sqlx::query(
        "INSERT INTO sync_jobs (repo_id, trigger, run_after, created_at) VALUES (?1, ?2, ?3, ?4) \
         ON CONFLICT (repo_id) WHERE claimed_by IS NULL DO NOTHING",
    )
    .bind(repo_id)
    .bind(trigger.as_str())
    .bind(ms(run_after))
    .bind(ms(Utc::now()))
    .execute(&mut *conn)
    .await?
    .rows_affected()
        == 1;
    if !inserted {
        // A promotion is never merged away: it keeps its trigger whatever joins it.
        sqlx::query(
            "UPDATE sync_jobs SET \
             trigger = CASE WHEN ?1 = 'promote' OR (trigger <> 'promote' AND run_after > ?2) THEN ?1 ELSE trigger END, \
             run_after = MIN(run_after, ?2) \
             WHERE repo_id = ?3 AND claimed_by IS NULL AND (run_after > ?2 OR ?1 = 'promote')",
        )
        .bind(trigger.as_str())
        .bind(ms(run_after))
        .bind(repo_id)
        .execute(&mut *conn)
        .await?;
    }
    Ok(inserted)
}

/// How many waiting deliveries one transaction takes at most.
const DELIVERY_BATCH: usize = 64;

struct DeliveryRequest {
    delivery: NewDelivery,
    now: DateTime<Utc>,
    reply: oneshot::Sender<Result<DeliveryOutcome, StoreError>>,
}

/// Group commit for webhook deliveries: whatever deliveries wait when the writer comes free
/// are written in one transaction, so a burst costs one BEGIN and one COMMIT per batch instead
/// of per delivery on the one writer connection. Each delivery's outcome is its own: if the
/// batch fails, each is written again alone, and only the one at fault fails.
async fn write_deliveries(writer: SqlitePool, mut requests: mpsc::Receiver<DeliveryRequest>) {
    let mut batch = Vec::with_capacity(DELIVERY_BATCH);
    while requests.recv_many(&mut batch, DELIVERY_BATCH).await > 0 {
        match record_batch(&writer, &batch).await {
            Ok(outcomes) => {
                for (request, outcome) in batch.drain(..).zip(outcomes) {
                    let _ = request.reply.send(Ok(outcome));
                }
            }
            Err(e) => {
                if batch.len() > 1 {
                    tracing::debug!(error = %e, size = batch.len(), "a batch of deliveries failed; writing each alone");
                }
                for request in batch.drain(..) {
                    let result = record_batch(&writer, std::slice::from_ref(&request))
                        .await
                        .map(|mut outcomes| outcomes.remove(0));
                    let _ = request.reply.send(result);
                }
            }
        }
    }
}

async fn record_batch(
    writer: &SqlitePool,
    batch: &[DeliveryRequest],
) -> Result<Vec<DeliveryOutcome>, StoreError> {
    let mut tx = writer.begin_with("BEGIN IMMEDIATE").await?;
    let mut outcomes = Vec::with_capacity(batch.len());
    for request in batch {
        outcomes.push(record_delivery_in(&mut tx, &request.delivery, request.now).await?);
    }
    tx.commit().await?;
    Ok(outcomes)
}

/// One delivery, inside the caller's transaction: its replay row, queued syncs, log lines.
async fn record_delivery_in(
    conn: &mut SqliteConnection,
    delivery: &NewDelivery,
    now: DateTime<Utc>,
) -> Result<DeliveryOutcome, StoreError> {
    if let Some(id) = &delivery.delivery_id {
        let fresh = sqlx::query(
            "INSERT INTO webhook_seen (forge, delivery_id, seen_at) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (forge, delivery_id) DO NOTHING",
        )
        .bind(&delivery.forge)
        .bind(id)
        .bind(ms(now))
        .execute(&mut *conn)
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
            // earlier start wins). Due at once: while a sync of the repository runs, the claim
            // refuses it, so it is the one follow-up that starts as soon as that sync ends.
            // Not at all when a sync that started after the delivery arrived runs or ran
            // well: its fetch already sees the push.
            let due: Option<i64> = sqlx::query_scalar(
                    "INSERT INTO sync_jobs (repo_id, trigger, run_after, created_at) \
                     SELECT ?1, ?2, ?3, ?3 \
                     WHERE NOT EXISTS (SELECT 1 FROM sync_runs WHERE repo_id = ?1 AND started_at >= ?3 \
                         AND outcome IN ('running', 'success', 'unchanged')) \
                     ON CONFLICT (repo_id) WHERE claimed_by IS NULL DO UPDATE SET \
                         trigger = CASE WHEN sync_jobs.trigger <> 'promote' AND excluded.run_after < sync_jobs.run_after THEN excluded.trigger ELSE sync_jobs.trigger END, \
                         run_after = MIN(sync_jobs.run_after, excluded.run_after) \
                     RETURNING run_after",
                )
                .bind(entry.repo_id)
                .bind(Trigger::Webhook.as_str())
                .bind(ms(now))
                .fetch_optional(&mut *conn)
                .await?;
            if let Some(due) = due {
                syncs_due.push(from_ms(due)?);
            }
        }
        // The trigger webhook_deliveries_mark_connected updates the repository.
        sqlx::query(
                "INSERT INTO webhook_deliveries (repo_id, received_at, forge, event, delivery_id, result) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )
            .bind(entry.repo_id)
            .bind(ms(now))
            .bind(&delivery.forge)
            .bind(&delivery.event)
            .bind(delivery.delivery_id.as_deref())
            .bind(&entry.result)
            .execute(&mut *conn)
            .await?;
    }
    Ok(DeliveryOutcome::Recorded { syncs_due })
}

impl SqliteStore {
    pub(crate) async fn connect(url: &str, key: SecretKey) -> Result<Self, StoreError> {
        let options = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true);
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        // A connection to a local file does not go stale: no ping before every use (each
        // is a round trip to the connection's thread, as costly as a small query).
        let mut pool = SqlitePoolOptions::new().test_before_acquire(false);
        if in_memory {
            // An in-memory database lives as long as one of its connections: keep one open.
            pool = pool
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None);
        }
        let pool = pool.connect_with(options.clone()).await?;
        MIGRATOR.run(&pool).await?;
        let writer = if in_memory {
            // Another pool would open another, empty, database.
            pool.clone()
        } else {
            SqlitePoolOptions::new()
                .test_before_acquire(false)
                .max_connections(1)
                .connect_with(options)
                .await?
        };
        let (deliveries, requests) = mpsc::channel(DELIVERY_BATCH * 4);
        tokio::spawn(write_deliveries(writer.clone(), requests));
        let store = Self {
            pool,
            writer,
            deliveries,
            key,
        };
        store.backfill_webhook_columns().await?;
        tracing::debug!(backend = "sqlite", "store ready");
        Ok(store)
    }

    /// Gives rows created before webhooks existed their match key and webhook secret.
    async fn backfill_webhook_columns(&self) -> Result<(), StoreError> {
        let rows = sqlx::query(
            "SELECT id, upstream_url FROM repos WHERE match_key IS NULL OR webhook_secret IS NULL",
        )
        .fetch_all(&self.pool)
        .await?;
        for row in rows {
            let url: String = row.try_get("upstream_url")?;
            sqlx::query(
                "UPDATE repos SET match_key = COALESCE(match_key, ?1), \
                 webhook_secret = COALESCE(webhook_secret, ?2) WHERE id = ?3",
            )
            .bind(match_key(&url))
            .bind(self.key.new_sealed_webhook_secret()?)
            .bind(row.try_get::<i64, _>("id")?)
            .execute(&self.writer)
            .await?;
        }
        Ok(())
    }

    async fn begin_write(&self) -> Result<sqlx::Transaction<'static, Sqlite>, StoreError> {
        Ok(self.writer.begin_with("BEGIN IMMEDIATE").await?)
    }

    fn repo_from_row(&self, row: &SqliteRow) -> Result<Repo, StoreError> {
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
            last_sync_at: from_opt_ms(row.try_get("last_sync_at")?)?,
            last_success_at: from_opt_ms(row.try_get("last_success_at")?)?,
            next_sync_at: from_opt_ms(row.try_get("next_sync_at")?)?,
            last_error_code: row.try_get("last_error_code")?,
            last_error_message: row.try_get("last_error_message")?,
            consecutive_failures: row.try_get("consecutive_failures")?,
            branches: row.try_get("branches")?,
            tags: row.try_get("tags")?,
            head_ref: row.try_get("head_ref")?,
            paused_reason: row.try_get("paused_reason")?,
            created_at: from_ms(row.try_get("created_at")?)?,
            webhook_secret: row
                .try_get::<Option<Vec<u8>>, _>("webhook_secret")?
                .map(|s| self.key.open_webhook_secret(&s))
                .transpose()?,
            webhook: WebhookState {
                last_delivery_at: from_opt_ms(row.try_get("webhook_last_delivery_at")?)?,
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
}

#[async_trait]
impl Store for SqliteStore {
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
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING {REPO_COLUMNS}"
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
            .bind(ms(now))
            .bind(match_key(&new.upstream_url))
            .bind(self.key.new_sealed_webhook_secret()?)
            .bind(new.ssh_key_id)
            .bind(new.known_hosts.as_deref())
            .fetch_one(&self.writer)
            .await?;
        self.repo_from_row(&row)
    }

    async fn get_repo(&self, owner: &str, name: &str) -> Result<Option<Repo>, StoreError> {
        let sql = format!(
            "SELECT {REPO_COLUMNS} FROM repos WHERE owner_key = lower(?) AND name_key = lower(?)"
        );
        let row = sqlx::query(&sql)
            .bind(owner)
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| self.repo_from_row(&r)).transpose()
    }

    async fn get_repo_by_id(&self, id: i64) -> Result<Option<Repo>, StoreError> {
        let sql = format!("SELECT {REPO_COLUMNS} FROM repos WHERE id = ?");
        let row = sqlx::query(&sql)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| self.repo_from_row(&r)).transpose()
    }

    async fn get_repos_by_ids(&self, ids: &[i64]) -> Result<Vec<Repo>, StoreError> {
        // Bound parameters per statement are capped (32,766 since SQLite 3.32; 999 before):
        // larger asks are read a slice per statement.
        const PER_QUERY: usize = 900;
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(PER_QUERY) {
            let mut query = QueryBuilder::<Sqlite>::new(format!(
                "SELECT {REPO_COLUMNS} FROM repos WHERE id IN ("
            ));
            let mut list = query.separated(", ");
            for id in chunk {
                list.push_bind(*id);
            }
            query.push(")");
            for row in query.build().fetch_all(&self.pool).await? {
                out.push(self.repo_from_row(&row)?);
            }
        }
        out.sort_by_key(|r| r.id);
        out.dedup_by_key(|r| r.id);
        Ok(out)
    }

    async fn list_repos(&self) -> Result<Vec<Repo>, StoreError> {
        let sql = format!("SELECT {REPO_COLUMNS} FROM repos ORDER BY owner_key, name_key");
        let rows = sqlx::query(&sql).fetch_all(&self.pool).await?;
        rows.iter().map(|r| self.repo_from_row(r)).collect()
    }

    async fn delete_repo(&self, id: i64) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM repos WHERE id = ?")
            .bind(id)
            .execute(&self.writer)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn set_progress(
        &self,
        id: i64,
        phase: Option<&str>,
        percent: Option<i32>,
    ) -> Result<(), StoreError> {
        let done =
            sqlx::query("UPDATE repos SET progress_phase = ?, progress_percent = ? WHERE id = ?")
                .bind(phase)
                .bind(percent)
                .bind(id)
                .execute(&self.writer)
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
        let mut tx = self.begin_write().await?;
        let inserted = enqueue_in(&mut tx, repo_id, trigger, run_after).await?;
        tx.commit().await?;
        Ok(inserted)
    }

    async fn claim_job(
        &self,
        worker: &str,
        now: DateTime<Utc>,
        lease: Duration,
    ) -> Result<Option<Job>, StoreError> {
        let until = lease_end(now, lease)?;
        // One statement is one write transaction: candidate and claim cannot be separated.
        let row = sqlx::query(CLAIM_SQL)
            .bind(worker)
            .bind(ms(until))
            .bind(ms(now))
            .fetch_optional(&self.writer)
            .await?;
        row.map(|r| {
            Ok(Job {
                id: r.try_get("id")?,
                repo_id: r.try_get("repo_id")?,
                trigger: parse_trigger(r.try_get("trigger")?)?,
                attempts: r.try_get("attempts")?,
            })
        })
        .transpose()
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
            sqlx::query("UPDATE sync_jobs SET lease_until = ? WHERE id = ? AND claimed_by = ?")
                .bind(ms(until))
                .bind(job_id)
                .bind(worker)
                .execute(&self.writer)
                .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn complete_job(&self, job_id: i64, worker: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM sync_jobs WHERE id = ? AND claimed_by = ?")
            .bind(job_id)
            .bind(worker)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    async fn release_job(
        &self,
        job_id: i64,
        worker: &str,
        run_after: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin_write().await?;
        let released = sqlx::query(
            "UPDATE sync_jobs SET claimed_by = NULL, lease_until = NULL, run_after = ? \
             WHERE id = ? AND claimed_by = ? \
               AND NOT EXISTS (SELECT 1 FROM sync_jobs p WHERE p.repo_id = sync_jobs.repo_id AND p.claimed_by IS NULL)",
        )
        .bind(ms(run_after))
        .bind(job_id)
        .bind(worker)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if released == 0 {
            // Either not ours (then this deletes nothing) or the repository has a pending job.
            sqlx::query("DELETE FROM sync_jobs WHERE id = ? AND claimed_by = ?")
                .bind(job_id)
                .bind(worker)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn release_all_claims(&self) -> Result<u64, StoreError> {
        let mut tx = self.begin_write().await?;
        // Claims of a repository that has a pending job, or another claim with a lower id, are
        // folded away: what is left is at most one job per repository.
        let folded = sqlx::query(
            "DELETE FROM sync_jobs WHERE claimed_by IS NOT NULL AND EXISTS ( \
                 SELECT 1 FROM sync_jobs o WHERE o.repo_id = sync_jobs.repo_id \
                   AND (o.claimed_by IS NULL OR o.id < sync_jobs.id))",
        )
        .execute(&mut *tx)
        .await?
        .rows_affected();
        let released = sqlx::query("UPDATE sync_jobs SET claimed_by = NULL, lease_until = NULL WHERE claimed_by IS NOT NULL")
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        Ok(folded + released)
    }

    async fn enqueue_due(&self, now: DateTime<Utc>, limit: i64) -> Result<u64, StoreError> {
        let done = sqlx::query(ENQUEUE_DUE_SQL)
            .bind(Trigger::Schedule.as_str())
            .bind(ms(now))
            .bind(ms(Utc::now()))
            .bind(limit.max(0))
            .execute(&self.writer)
            .await?;
        Ok(done.rows_affected())
    }

    async fn count_due_between(
        &self,
        after: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM repos WHERE mode = 'mirror' AND next_sync_at > ? AND next_sync_at <= ?",
        )
        .bind(ms(after))
        .bind(ms(until))
        .fetch_one(&self.pool)
        .await?;
        Ok(n.max(0) as u64)
    }

    async fn requeue_cloning(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "INSERT INTO sync_jobs (repo_id, trigger, run_after, created_at) \
             SELECT r.id, ?1, ?2, ?2 FROM repos r WHERE r.state = ?3 \
               AND NOT EXISTS (SELECT 1 FROM sync_jobs j WHERE j.repo_id = r.id AND j.claimed_by IS NULL) \
             ON CONFLICT DO NOTHING",
        )
        .bind(Trigger::Recovery.as_str())
        .bind(ms(now))
        .bind(RepoState::Cloning.as_str())
        .execute(&self.writer)
        .await?;
        Ok(done.rows_affected())
    }

    async fn repo_counts(
        &self,
        now: DateTime<Utc>,
        stale_grace: Duration,
    ) -> Result<RepoCounts, StoreError> {
        let grace_ms = i64::try_from(stale_grace.as_millis()).unwrap_or(i64::MAX / 2);
        let row = sqlx::query(
            "SELECT \
               COALESCE(SUM(mode = 'mirror'), 0) AS mirrors, COALESCE(SUM(mode = 'migrate'), 0) AS migrated, \
               COALESCE(SUM(state = 'cloning'), 0) AS cloning, COALESCE(SUM(state = 'failed'), 0) AS failed, \
               COALESCE(SUM(paused_reason IS NOT NULL), 0) AS paused, \
               COALESCE(SUM(mode = 'mirror' AND COALESCE(last_success_at, created_at) + sync_interval_secs * 1000 + ?1 < ?2), 0) AS stale \
             FROM repos",
        )
        .bind(grace_ms)
        .bind(ms(now))
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
        Ok(true)
    }

    async fn start_run(
        &self,
        repo_id: i64,
        trigger: Trigger,
        now: DateTime<Utc>,
    ) -> Result<i64, StoreError> {
        let mut tx = self.begin_write().await?;
        let id = start_run_in(&mut tx, repo_id, trigger, now).await?;
        tx.commit().await?;
        Ok(id)
    }

    async fn fail_interrupted_runs(
        &self,
        repo_id: i64,
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        fail_interrupted_in(&self.writer, repo_id, now).await
    }

    async fn finish_run(
        &self,
        run_id: i64,
        repo_id: i64,
        result: &SyncResult,
    ) -> Result<(), StoreError> {
        check_final(result.outcome)?;
        let mut tx = self.begin_write().await?;
        if !finish_run_in(&mut tx, run_id, repo_id, result).await? {
            return Err(StoreError::NotFound);
        }
        tx.commit().await?;
        Ok(())
    }

    async fn sync_context(&self, repo_id: i64) -> Result<Option<SyncContext>, StoreError> {
        let sql = format!("SELECT {REPO_COLUMNS}, {SYNC_CONTEXT_EXTRA} FROM repos WHERE id = ?");
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
        let mut tx = self.begin_write().await?;
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
        let mut tx = self.begin_write().await?;
        let exists = finish_run_in(&mut tx, run_id, repo_id, result).await?;
        sqlx::query("DELETE FROM sync_jobs WHERE id = ? AND claimed_by = ?")
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
        let mut tx = self.begin_write().await?;
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
        sqlx::query("DELETE FROM sync_jobs WHERE id = ?1 AND claimed_by = ?2")
            .bind(job_id)
            .bind(worker)
            .execute(&mut *tx)
            .await?;
        let episode_open: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM notification_episodes \
             WHERE repo_id = ?1 AND subject IN ('sync', 'lfs'))",
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
        // A read transaction: both queries see the same snapshot.
        let mut tx = self.pool.begin().await?;
        let rows = sqlx::query(
            "SELECT id, repo_id, trigger, started_at, finished_at, outcome, error_code, error_message, warnings \
             FROM sync_runs WHERE repo_id = ? ORDER BY started_at DESC, id DESC LIMIT ?",
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
                    started_at: from_ms(r.try_get("started_at")?)?,
                    finished_at: from_opt_ms(r.try_get("finished_at")?)?,
                    outcome: parse_outcome(r.try_get("outcome")?)?,
                    error_code: r.try_get("error_code")?,
                    error_message: r.try_get("error_message")?,
                    ref_changes: Vec::new(),
                    warnings: r.try_get("warnings")?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        if runs.is_empty() {
            return Ok(runs);
        }

        let index: HashMap<i64, usize> = runs.iter().enumerate().map(|(i, r)| (r.id, i)).collect();
        let changes = sqlx::query(
            "SELECT run_id, ref_name, old_oid, new_oid, kind FROM sync_ref_changes \
             WHERE run_id IN (SELECT id FROM sync_runs WHERE repo_id = ? ORDER BY started_at DESC, id DESC LIMIT ?) \
             ORDER BY run_id, position",
        )
        .bind(repo_id)
        .bind(limit.max(0))
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
        let n =
            sqlx::query_scalar("SELECT COUNT(*) FROM sync_runs WHERE repo_id = ? AND outcome = ?")
                .bind(repo_id)
                .bind(Outcome::Running.as_str())
                .fetch_one(&self.pool)
                .await?;
        Ok(n)
    }

    async fn syncing_repo_ids(&self, now: DateTime<Utc>) -> Result<Vec<i64>, StoreError> {
        let ids = sqlx::query_scalar(
            "SELECT DISTINCT repo_id FROM sync_jobs \
             WHERE claimed_by IS NOT NULL AND lease_until > ? ORDER BY repo_id",
        )
        .bind(ms(now))
        .fetch_all(&self.pool)
        .await?;
        Ok(ids)
    }

    async fn get_setting(&self, key: &str) -> Result<Option<String>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT value FROM settings WHERE key = ?")
                .bind(key)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    async fn put_setting_if_absent(&self, key: &str, value: &str) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING",
        )
        .bind(key)
        .bind(value)
        .execute(&self.writer)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn put_setting(&self, key: &str, value: &str) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value")
            .bind(key)
            .bind(value)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    async fn resume_repo(&self, id: i64, now: DateTime<Utc>) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE repos SET paused_reason = NULL, next_sync_at = CASE WHEN paused_reason IS NULL THEN next_sync_at ELSE ?1 END \
             WHERE id = ?2",
        )
        .bind(ms(now))
        .bind(id)
        .execute(&self.writer)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn update_repo(&self, id: i64, update: &RepoUpdate) -> Result<Option<Repo>, StoreError> {
        let sealed = match &update.credentials {
            Some(Some(c)) => Some(self.key.seal_credentials(c)?),
            _ => None,
        };
        let sql = format!(
            "UPDATE repos SET credentials = CASE WHEN ?1 THEN ?2 ELSE credentials END, \
             sync_interval_secs = COALESCE(?3, sync_interval_secs), next_sync_at = COALESCE(?4, next_sync_at), \
             description = COALESCE(?5, description), visibility = COALESCE(?6, visibility), \
             ssh_key_id = CASE WHEN ?8 THEN ?9 ELSE ssh_key_id END, \
             known_hosts = CASE WHEN ?10 THEN ?11 ELSE known_hosts END, \
             lfs_enabled = COALESCE(?12, lfs_enabled), \
             lfs_url = CASE WHEN ?13 THEN ?14 ELSE lfs_url END, \
             paused_reason = NULL WHERE id = ?7 RETURNING {REPO_COLUMNS}"
        );
        let row = sqlx::query(&sql)
            .bind(update.credentials.is_some())
            .bind(sealed)
            .bind(update.sync_interval_secs)
            .bind(update.next_sync_at.map(ms))
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
            .fetch_optional(&self.writer)
            .await?;
        row.map(|r| self.repo_from_row(&r)).transpose()
    }

    async fn repos_by_match_keys(&self, keys: &[String]) -> Result<Vec<Repo>, StoreError> {
        if keys.is_empty() {
            return Ok(vec![]);
        }
        let mut query = QueryBuilder::<Sqlite>::new(format!(
            "SELECT {REPO_COLUMNS} FROM repos WHERE match_key IN ("
        ));
        let mut list = query.separated(", ");
        for key in keys {
            list.push_bind(key);
        }
        query.push(") ORDER BY id");
        let rows = query.build().fetch_all(&self.pool).await?;
        rows.iter().map(|r| self.repo_from_row(r)).collect()
    }

    async fn record_delivery(
        &self,
        delivery: &NewDelivery,
        now: DateTime<Utc>,
    ) -> Result<DeliveryOutcome, StoreError> {
        let closed = || StoreError::Database(sqlx::Error::PoolClosed);
        let (reply, answer) = oneshot::channel();
        self.deliveries
            .send(DeliveryRequest {
                delivery: delivery.clone(),
                now,
                reply,
            })
            .await
            .map_err(|_| closed())?;
        answer.await.map_err(|_| closed())?
    }

    async fn list_deliveries(&self, repo_id: i64, limit: i64) -> Result<Vec<Delivery>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, repo_id, received_at, forge, event, delivery_id, result \
             FROM webhook_deliveries WHERE repo_id = ?1 ORDER BY id DESC LIMIT ?2",
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
                    received_at: from_ms(row.try_get("received_at")?)?,
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
        let seen = sqlx::query("DELETE FROM webhook_seen WHERE seen_at < ?1")
            .bind(ms(seen_before))
            .execute(&self.writer)
            .await?
            .rows_affected();
        let log = sqlx::query("DELETE FROM webhook_deliveries WHERE received_at < ?1")
            .bind(ms(log_before))
            .execute(&self.writer)
            .await?
            .rows_affected();
        let commands = sqlx::query("DELETE FROM bot_commands WHERE taken_at < ?1")
            .bind(ms(log_before))
            .execute(&self.writer)
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
            "INSERT INTO bot_commands (forge, comment, command, taken_at) VALUES (?1, ?2, ?3, ?4) \
             ON CONFLICT (forge, comment, command) DO NOTHING",
        )
        .bind(forge)
        .bind(comment)
        .bind(command)
        .bind(ms(now))
        .execute(&self.writer)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn set_webhook_hook(&self, repo_id: i64, hook: &WebhookHook) -> Result<(), StoreError> {
        let (forge, id, error) = hook_columns(hook);
        let done = sqlx::query(
            "UPDATE repos SET webhook_hook_forge = ?1, webhook_hook_id = ?2, webhook_hook_error = ?3 \
             WHERE id = ?4",
        )
        .bind(forge)
        .bind(id)
        .bind(error)
        .bind(repo_id)
        .execute(&self.writer)
        .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound);
        }
        Ok(())
    }

    async fn create_web_session(&self, session: &WebSession) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO web_sessions (id_sha256, csrf_token, created_at, expires_at, user_id) \
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )
        .bind(&session.id_sha256)
        .bind(&session.csrf_token)
        .bind(ms(session.created_at))
        .bind(ms(session.expires_at))
        .bind(session.user_id)
        .execute(&self.writer)
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
             WHERE id_sha256 = ?1 AND expires_at > ?2",
        )
        .bind(id_sha256)
        .bind(ms(now))
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| {
            Ok(WebSession {
                id_sha256: row.try_get("id_sha256")?,
                csrf_token: row.try_get("csrf_token")?,
                user_id: row.try_get("user_id")?,
                created_at: from_ms(row.try_get("created_at")?)?,
                expires_at: from_ms(row.try_get("expires_at")?)?,
            })
        })
        .transpose()
    }

    async fn delete_web_session(&self, id_sha256: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM web_sessions WHERE id_sha256 = ?1")
            .bind(id_sha256)
            .execute(&self.writer)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn prune_web_sessions(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM web_sessions WHERE expires_at <= ?1")
            .bind(ms(now))
            .execute(&self.writer)
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
             VALUES (?1, ?2, ?3, ?4, ?5) RETURNING {ACCOUNT_COLUMNS}"
        );
        let row = sqlx::query(&sql)
            .bind(new.name.as_str())
            .bind(new.kind.as_str())
            .bind(new.site_admin)
            .bind(new.password_hash.as_deref())
            .bind(ms(now))
            .fetch_one(&self.writer)
            .await?;
        account_from_row(&row, "")
    }

    async fn get_account(&self, name: &str) -> Result<Option<Account>, StoreError> {
        let row = sqlx::query(ACCOUNT_BY_NAME_SQL)
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| account_from_row(&r, "")).transpose()
    }

    async fn get_account_by_id(&self, id: i64) -> Result<Option<Account>, StoreError> {
        let sql = format!("SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE id = ?1");
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
            "DELETE FROM accounts WHERE id = ?1 \
             AND NOT EXISTS (SELECT 1 FROM repos WHERE repos.owner_key = accounts.name_key) \
             AND NOT EXISTS (SELECT 1 FROM ssh_keys k JOIN repos r ON r.ssh_key_id = k.id \
                             WHERE k.owner_id = accounts.id)",
        )
        .bind(id)
        .execute(&self.writer)
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
             password_hash = CASE WHEN ?2 THEN ?3 ELSE password_hash END, \
             site_admin = COALESCE(?4, site_admin) \
             WHERE id = ?1 AND kind = 'user'",
        )
        .bind(id)
        .bind(password_hash.is_some())
        .bind(password_hash.flatten())
        .bind(site_admin)
        .execute(&self.writer)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn password_hash(&self, user_id: i64) -> Result<Option<String>, StoreError> {
        let hash: Option<Option<String>> =
            sqlx::query_scalar("SELECT password_hash FROM accounts WHERE id = ?1")
                .bind(user_id)
                .fetch_optional(&self.pool)
                .await?;
        Ok(hash.flatten())
    }

    async fn set_member(&self, org_id: i64, user_id: i64, role: Access) -> Result<(), StoreError> {
        // The connection enforces foreign keys: a missing account is NotFound.
        sqlx::query(
            "INSERT INTO org_members (org_id, user_id, role) VALUES (?1, ?2, ?3) \
             ON CONFLICT (org_id, user_id) DO UPDATE SET role = excluded.role",
        )
        .bind(org_id)
        .bind(user_id)
        .bind(role.as_str())
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    async fn remove_member(&self, org_id: i64, user_id: i64) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM org_members WHERE org_id = ?1 AND user_id = ?2")
            .bind(org_id)
            .bind(user_id)
            .execute(&self.writer)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn list_members(&self, org_id: i64) -> Result<Vec<(Account, Access)>, StoreError> {
        let rows = sqlx::query(
            "SELECT a.id, a.name, a.kind, a.site_admin, a.created_at, m.role \
             FROM org_members m JOIN accounts a ON a.id = m.user_id \
             WHERE m.org_id = ?1 ORDER BY a.name_key",
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
             WHERE m.user_id = ?1 ORDER BY a.name_key",
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
             VALUES (?1, ?2, ?3, ?4, ?5, ?6) RETURNING {TOKEN_COLUMNS}"
        );
        let row = sqlx::query(&sql)
            .bind(new.user_id)
            .bind(&new.name)
            .bind(&new.token_sha256)
            .bind(new.scope.as_str())
            .bind(ms(now))
            .bind(new.expires_at.map(ms))
            .fetch_one(&self.writer)
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
             FROM access_tokens t JOIN accounts a ON a.id = t.user_id WHERE t.token_sha256 = ?1",
        )
        .bind(token_sha256)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|r| Ok((token_from_row(&r)?, account_from_row(&r, "account_")?)))
            .transpose()
    }

    async fn list_access_tokens(&self, user_id: i64) -> Result<Vec<AccessToken>, StoreError> {
        let sql = format!(
            "SELECT {TOKEN_COLUMNS} FROM access_tokens WHERE user_id = ?1 \
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
            "UPDATE access_tokens SET revoked_at = COALESCE(revoked_at, ?1) \
             WHERE id = ?2 AND user_id = ?3",
        )
        .bind(ms(now))
        .bind(token_id)
        .bind(user_id)
        .execute(&self.writer)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn touch_access_token(
        &self,
        token_id: i64,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE access_tokens SET last_used_at = ?1 WHERE id = ?2")
            .bind(ms(now))
            .bind(token_id)
            .execute(&self.writer)
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
             VALUES (?1, ?2, ?3, ?4, ?5, ?6) \
             RETURNING id, owner_id, (SELECT name FROM accounts WHERE accounts.id = ssh_keys.owner_id) AS owner, \
             title, public_key, fingerprint, created_at",
        )
        .bind(new.owner_id)
        .bind(&new.title)
        .bind(&new.public_key)
        .bind(&new.fingerprint)
        .bind(sealed)
        .bind(ms(now))
        .fetch_one(&self.writer)
        .await?;
        ssh_key_from_row(&row)
    }

    async fn list_ssh_keys(&self, owner_id: i64) -> Result<Vec<SshKey>, StoreError> {
        let sql = format!(
            "SELECT {SSH_KEY_COLUMNS} FROM ssh_keys k JOIN accounts a ON a.id = k.owner_id \
             WHERE k.owner_id = ?1 ORDER BY k.created_at, k.id"
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
             WHERE k.id = ?1"
        );
        let row = sqlx::query(&sql)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| ssh_key_from_row(&r)).transpose()
    }

    async fn ssh_private_key(&self, id: i64) -> Result<Option<SecretString>, StoreError> {
        let sealed: Option<Vec<u8>> =
            sqlx::query_scalar("SELECT private_key FROM ssh_keys WHERE id = ?1")
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
        Ok(sealed.map(|s| self.key.open_ssh_key(&s)).transpose()?)
    }

    async fn delete_ssh_key(&self, id: i64) -> Result<SshKeyDeletion, StoreError> {
        // One write transaction: no repository can take the key up between the look and the
        // delete.
        let mut tx = self.begin_write().await?;
        let repos: Vec<String> = sqlx::query_scalar(REPOS_USING_SSH_KEY_SQL)
            .bind(id)
            .fetch_all(&mut *tx)
            .await?;
        if !repos.is_empty() {
            tx.rollback().await?;
            return Ok(SshKeyDeletion::InUse { repos });
        }
        let done = sqlx::query("DELETE FROM ssh_keys WHERE id = ?1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(if done.rows_affected() == 1 {
            SshKeyDeletion::Deleted
        } else {
            SshKeyDeletion::NotFound
        })
    }

    async fn lfs_need(
        &self,
        repo_id: i64,
        objects: &[LfsObject],
        now: DateTime<Utc>,
    ) -> Result<u64, StoreError> {
        let mut added = 0;
        for chunk in objects.chunks(LFS_ROWS_PER_INSERT) {
            let mut insert = QueryBuilder::<Sqlite>::new(
                "INSERT INTO repo_lfs_objects (repo_id, oid, size, present, added_at) ",
            );
            insert.push_values(chunk, |mut b, (oid, size)| {
                b.push_bind(repo_id)
                    .push_bind(oid)
                    .push_bind(*size)
                    .push_bind(0_i64)
                    .push_bind(ms(now));
            });
            insert.push(" ON CONFLICT (repo_id, oid) DO NOTHING");
            added += insert.build().execute(&self.writer).await?.rows_affected();
        }
        Ok(added)
    }

    async fn lfs_missing(&self, repo_id: i64, limit: i64) -> Result<Vec<LfsObject>, StoreError> {
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT oid, size FROM repo_lfs_objects WHERE repo_id = ?1 AND present = 0 \
             ORDER BY added_at, oid LIMIT ?2",
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
            let mut insert = QueryBuilder::<Sqlite>::new(
                "INSERT INTO repo_lfs_objects (repo_id, oid, size, present, added_at) ",
            );
            insert.push_values(chunk, |mut b, (oid, size)| {
                b.push_bind(repo_id)
                    .push_bind(oid)
                    .push_bind(*size)
                    .push_bind(1_i64)
                    .push_bind(ms(now));
            });
            insert.push(" ON CONFLICT (repo_id, oid) DO UPDATE SET present = 1");
            insert.build().execute(&self.writer).await?;
        }
        Ok(())
    }

    async fn lfs_mark_missing(&self, repo_id: i64, oid: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE repo_lfs_objects SET present = 0 WHERE repo_id = ?1 AND oid = ?2")
            .bind(repo_id)
            .bind(oid)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    async fn lfs_object(&self, repo_id: i64, oid: &str) -> Result<Option<(i64, bool)>, StoreError> {
        Ok(sqlx::query_as(
            "SELECT size, present FROM repo_lfs_objects WHERE repo_id = ?1 AND oid = ?2",
        )
        .bind(repo_id)
        .bind(oid)
        .fetch_optional(&self.pool)
        .await?)
    }

    async fn lfs_counts(&self, repo_id: i64) -> Result<LfsCounts, StoreError> {
        let (objects, bytes, missing): (i64, i64, i64) = sqlx::query_as(
            "SELECT COUNT(*), COALESCE(SUM(CASE WHEN present THEN size ELSE 0 END), 0), COALESCE(SUM(CASE WHEN present THEN 0 ELSE 1 END), 0) \
             FROM repo_lfs_objects WHERE repo_id = ?1",
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
        sqlx::query("UPDATE repos SET lfs_last_error = ?1 WHERE id = ?2")
            .bind(error)
            .bind(repo_id)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    async fn lfs_repo_oids(&self, repo_id: i64) -> Result<Vec<String>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT oid FROM repo_lfs_objects WHERE repo_id = ?1")
                .bind(repo_id)
                .fetch_all(&self.pool)
                .await?,
        )
    }

    async fn lfs_unreferenced(&self, oids: &[String]) -> Result<Vec<String>, StoreError> {
        let mut gone = Vec::new();
        for chunk in oids.chunks(LFS_ROWS_PER_INSERT) {
            let mut query = QueryBuilder::<Sqlite>::new(
                "SELECT DISTINCT oid FROM repo_lfs_objects WHERE oid IN (",
            );
            let mut list = query.separated(", ");
            for oid in chunk {
                list.push_bind(oid);
            }
            query.push(")");
            let referenced: Vec<String> =
                query.build_query_scalar().fetch_all(&self.writer).await?;
            gone.extend(chunk.iter().filter(|o| !referenced.contains(o)).cloned());
        }
        Ok(gone)
    }

    async fn set_run_warnings(&self, run_id: i64, warnings: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE sync_runs SET warnings = ?1 WHERE id = ?2")
            .bind(warnings)
            .bind(run_id)
            .execute(&self.writer)
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
    conn: &mut SqliteConnection,
    repo_id: i64,
    trigger: Trigger,
    started_at: DateTime<Utc>,
    finished: Option<&SyncResult>,
) -> Result<i64, StoreError> {
    Ok(sqlx::query_scalar(
        "INSERT INTO sync_runs (repo_id, trigger, started_at, finished_at, outcome, concurrent_at_start) \
         VALUES (?1, ?2, ?3, ?4, ?5, (SELECT count(*) FROM sync_runs WHERE repo_id = ?1 AND outcome = ?6)) RETURNING id",
    )
    .bind(repo_id)
    .bind(trigger.as_str())
    .bind(ms(started_at))
    .bind(finished.map(|r| ms(r.finished_at)))
    .bind(finished.map_or(Outcome::Running, |r| r.outcome).as_str())
    .bind(Outcome::Running.as_str())
    .fetch_one(&mut *conn)
    .await?)
}

/// Records a run's start (see [`Store::start_run`]) inside the caller's transaction.
async fn start_run_in(
    conn: &mut SqliteConnection,
    repo_id: i64,
    trigger: Trigger,
    now: DateTime<Utc>,
) -> Result<i64, StoreError> {
    let id = insert_run_in(conn, repo_id, trigger, now, None).await?;
    sqlx::query("UPDATE repos SET last_sync_at = ? WHERE id = ?")
        .bind(ms(now))
        .bind(repo_id)
        .execute(&mut *conn)
        .await?;
    Ok(id)
}

/// Closes runs left `running` by dead workers (see [`Store::fail_interrupted_runs`]).
async fn fail_interrupted_in<'e, E: sqlx::Executor<'e, Database = Sqlite>>(
    executor: E,
    repo_id: i64,
    now: DateTime<Utc>,
) -> Result<u64, StoreError> {
    let done = sqlx::query(
        "UPDATE sync_runs SET outcome = ?1, finished_at = ?2, error_code = ?3, error_message = ?4 \
         WHERE repo_id = ?5 AND outcome = ?6 \
           AND (SELECT count(*) FROM sync_jobs WHERE repo_id = ?5 AND claimed_by IS NOT NULL AND lease_until > ?2) <= 1",
    )
    .bind(Outcome::Failed.as_str())
    .bind(ms(now))
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
    conn: &mut SqliteConnection,
    run_id: i64,
    repo_id: i64,
    result: &SyncResult,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE sync_runs SET finished_at = ?, outcome = ?, error_code = ?, error_message = ? \
             WHERE id = ? AND repo_id = ?",
    )
    .bind(ms(result.finished_at))
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
        let mut insert = QueryBuilder::<Sqlite>::new(
            "INSERT INTO sync_ref_changes (run_id, position, ref_name, old_oid, new_oid, kind) ",
        );
        insert.push_values(chunk.iter().enumerate(), |mut b, (i, change)| {
            let position = i64::try_from(chunk_no * REF_CHANGES_PER_INSERT + i).unwrap_or(i64::MAX);
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
    conn: &mut SqliteConnection,
    repo_id: i64,
    result: &SyncResult,
    synced_at: Option<DateTime<Utc>>,
) -> Result<bool, StoreError> {
    let updated = if result.outcome == Outcome::Failed {
        sqlx::query(
            "UPDATE repos SET last_error_code = ?, last_error_message = ?, \
                 consecutive_failures = consecutive_failures + 1, \
                 state = CASE WHEN state = ? THEN ? ELSE state END, \
                 progress_phase = NULL, progress_percent = NULL, next_sync_at = ?, \
                 paused_reason = COALESCE(?, paused_reason) \
                 WHERE id = ?",
        )
        .bind(&result.error_code)
        .bind(&result.error_message)
        .bind(RepoState::Cloning.as_str())
        .bind(RepoState::Failed.as_str())
        .bind(result.next_sync_at.map(ms))
        .bind(
            result
                .pause
                .then(|| result.error_message.clone().unwrap_or_default()),
        )
        .bind(repo_id)
        .execute(&mut *conn)
        .await?
    } else {
        sqlx::query(
                "UPDATE repos SET state = ?, last_success_at = ?, branches = ?, tags = ?, head_ref = ?, \
                 last_error_code = NULL, last_error_message = NULL, consecutive_failures = 0, \
                 progress_phase = NULL, progress_percent = NULL, next_sync_at = ?, paused_reason = NULL, \
                 mode = CASE WHEN ? THEN 'migrate' ELSE mode END, \
                 credentials = CASE WHEN ? THEN NULL ELSE credentials END, \
                 ssh_key_id = CASE WHEN ? THEN NULL ELSE ssh_key_id END, \
                 last_sync_at = COALESCE(?, last_sync_at) \
                 WHERE id = ?",
            )
            .bind(RepoState::Ready.as_str())
            .bind(ms(result.finished_at))
            .bind(result.branches)
            .bind(result.tags)
            .bind(&result.head_ref)
            .bind(result.next_sync_at.map(ms))
            .bind(result.promote)
            .bind(result.promote)
            .bind(result.promote)
            .bind(synced_at.map(ms))
            .bind(repo_id)
            .execute(&mut *conn)
            .await?
    };
    Ok(updated.rows_affected() > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn plan(store: &SqliteStore, sql: &str) -> String {
        let rows = sqlx::query(&format!("EXPLAIN QUERY PLAN {sql}"))
            .fetch_all(&store.pool)
            .await
            .unwrap();
        rows.iter()
            .map(|r| r.get::<String, _>("detail"))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The scheduler's and the workers' queries run often over tables that grow: they must
    /// search an index, not scan the table.
    #[tokio::test]
    async fn queue_queries_use_their_indexes() {
        let store = SqliteStore::connect("sqlite::memory:", SecretKey::generate())
            .await
            .unwrap();
        let due = plan(&store, ENQUEUE_DUE_SQL).await;
        assert!(
            due.contains("SEARCH r USING") && due.contains("INDEX repos_mirror_next_sync"),
            "{due}"
        );
        assert!(!due.contains("SCAN r"), "{due}");
        let claim = plan(&store, CLAIM_SQL).await;
        assert!(
            claim.contains("SEARCH j USING") && claim.contains("INDEX sync_jobs_run_after"),
            "{claim}"
        );
        assert!(!claim.contains("SCAN o"), "{claim}");
    }

    /// The repositories that use a key are found through the (partial) index, not a scan.
    #[tokio::test]
    async fn ssh_key_users_are_found_through_their_index() {
        let store = SqliteStore::connect("sqlite::memory:", SecretKey::generate())
            .await
            .unwrap();
        let using = plan(&store, REPOS_USING_SSH_KEY_SQL).await;
        assert!(
            using.contains("SEARCH repos USING INDEX repos_ssh_key"),
            "{using}"
        );
    }

    /// Names are looked up on every request that names an owner: through the unique index.
    #[tokio::test]
    async fn account_lookup_uses_the_name_index() {
        let store = SqliteStore::connect("sqlite::memory:", SecretKey::generate())
            .await
            .unwrap();
        let by_name = plan(&store, ACCOUNT_BY_NAME_SQL).await;
        assert!(
            by_name.contains("SEARCH accounts USING INDEX accounts_name_key"),
            "{by_name}"
        );
    }
}

//! [`FidelityStore`] on PostgreSQL: backups, ref filters, freshness and webhook silence.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use mirrorhub_core::RefFilterSpec;
use sqlx::postgres::PgRow;
use sqlx::{Postgres, QueryBuilder, Row};

use super::PgStore;
use crate::fidelity::{spec_from_text, Backup, FidelityStore, Freshness, NewBackup, Silence};
use crate::StoreError;

const BACKUP_COLUMNS: &str = "id, repo_id, run_id, ref_name, old_oid, backup_ref, created_at";

const FRESHNESS_COLUMNS: &str =
    "repo_id, behind_refs, checked_at, behind_since, silence_checked_at, \
     silence_suspected_at, silent_since, silence_notified_at";

fn backup_from_row(row: &PgRow) -> Result<Backup, StoreError> {
    Ok(Backup {
        id: row.try_get("id")?,
        repo_id: row.try_get("repo_id")?,
        run_id: row.try_get("run_id")?,
        ref_name: row.try_get("ref_name")?,
        old_oid: row.try_get("old_oid")?,
        backup_ref: row.try_get("backup_ref")?,
        created_at: row.try_get("created_at")?,
    })
}

fn freshness_from_row(row: &PgRow) -> Result<Freshness, StoreError> {
    Ok(Freshness {
        behind_refs: row.try_get("behind_refs")?,
        checked_at: row.try_get("checked_at")?,
        behind_since: row.try_get("behind_since")?,
        silence_checked_at: row.try_get("silence_checked_at")?,
        silence_suspected_at: row.try_get("silence_suspected_at")?,
        silent_since: row.try_get("silent_since")?,
        silence_notified_at: row.try_get("silence_notified_at")?,
    })
}

#[async_trait]
impl FidelityStore for PgStore {
    async fn record_backups(
        &self,
        repo_id: i64,
        run_id: Option<i64>,
        backups: &[NewBackup],
    ) -> Result<(), StoreError> {
        for chunk in backups.chunks(500) {
            let mut insert: QueryBuilder<Postgres> = QueryBuilder::new(
                "INSERT INTO repo_backups (repo_id, run_id, ref_name, old_oid, backup_ref, created_at) ",
            );
            insert.push_values(chunk, |mut row, b| {
                row.push_bind(repo_id)
                    .push_bind(run_id)
                    .push_bind(&b.ref_name)
                    .push_bind(&b.old_oid)
                    .push_bind(&b.backup_ref)
                    .push_bind(b.created_at);
            });
            insert.push(" ON CONFLICT (repo_id, backup_ref) DO NOTHING");
            insert.build().execute(&self.pool).await?;
        }
        Ok(())
    }

    async fn list_backups(&self, repo_id: i64, limit: i64) -> Result<Vec<Backup>, StoreError> {
        sqlx::query(&format!(
            "SELECT {BACKUP_COLUMNS} FROM repo_backups WHERE repo_id = $1 \
             ORDER BY created_at DESC, id DESC LIMIT $2"
        ))
        .bind(repo_id)
        .bind(limit.max(0))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(backup_from_row)
        .collect()
    }

    async fn get_backup(&self, repo_id: i64, id: i64) -> Result<Option<Backup>, StoreError> {
        sqlx::query(&format!(
            "SELECT {BACKUP_COLUMNS} FROM repo_backups WHERE repo_id = $1 AND id = $2"
        ))
        .bind(repo_id)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(backup_from_row)
        .transpose()
    }

    async fn backups_of_runs(&self, run_ids: &[i64]) -> Result<Vec<Backup>, StoreError> {
        sqlx::query(&format!(
            "SELECT {BACKUP_COLUMNS} FROM repo_backups WHERE run_id = ANY($1) ORDER BY id"
        ))
        .bind(run_ids)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(backup_from_row)
        .collect()
    }

    async fn expired_backups(
        &self,
        before: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<Backup>, StoreError> {
        sqlx::query(&format!(
            "SELECT {BACKUP_COLUMNS} FROM repo_backups WHERE created_at < $1 \
             ORDER BY created_at, id LIMIT $2"
        ))
        .bind(before)
        .bind(limit.max(0))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(backup_from_row)
        .collect()
    }

    async fn delete_backup(&self, id: i64) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM repo_backups WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn ref_filter(&self, repo_id: i64) -> Result<Option<RefFilterSpec>, StoreError> {
        let text: Option<String> =
            sqlx::query_scalar("SELECT spec FROM repo_ref_filters WHERE repo_id = $1")
                .bind(repo_id)
                .fetch_optional(&self.pool)
                .await?;
        text.as_deref().map(spec_from_text).transpose()
    }

    async fn set_ref_filter(
        &self,
        repo_id: i64,
        spec: Option<&RefFilterSpec>,
    ) -> Result<(), StoreError> {
        match spec.filter(|s| !s.is_empty()) {
            Some(spec) => {
                let text = serde_json::to_string(spec)
                    .map_err(|_| StoreError::Invalid("the ref filter does not serialise"))?;
                sqlx::query(
                    "INSERT INTO repo_ref_filters (repo_id, spec) VALUES ($1, $2) \
                     ON CONFLICT (repo_id) DO UPDATE SET spec = excluded.spec",
                )
                .bind(repo_id)
                .bind(text)
                .execute(&self.pool)
                .await?;
            }
            None => {
                let exists: Option<i64> = sqlx::query_scalar("SELECT id FROM repos WHERE id = $1")
                    .bind(repo_id)
                    .fetch_optional(&self.pool)
                    .await?;
                if exists.is_none() {
                    return Err(StoreError::NotFound);
                }
                sqlx::query("DELETE FROM repo_ref_filters WHERE repo_id = $1")
                    .bind(repo_id)
                    .execute(&self.pool)
                    .await?;
            }
        }
        Ok(())
    }

    async fn ref_filters(&self) -> Result<Vec<(i64, RefFilterSpec)>, StoreError> {
        sqlx::query("SELECT repo_id, spec FROM repo_ref_filters ORDER BY repo_id")
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|row| {
                let text: String = row.try_get("spec")?;
                Ok((row.try_get("repo_id")?, spec_from_text(&text)?))
            })
            .collect()
    }

    async fn record_behind(
        &self,
        repo_id: i64,
        behind: i64,
        at: DateTime<Utc>,
        since: Option<DateTime<Utc>>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO repo_freshness (repo_id, behind_refs, checked_at, behind_since) \
             VALUES ($1, $2, $3, $4) \
             ON CONFLICT (repo_id) DO UPDATE SET behind_refs = $2, checked_at = $3, behind_since = $4",
        )
        .bind(repo_id)
        .bind(behind)
        .bind(at)
        .bind(since)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn freshness(&self, repo_id: i64) -> Result<Option<Freshness>, StoreError> {
        sqlx::query(&format!(
            "SELECT {FRESHNESS_COLUMNS} FROM repo_freshness WHERE repo_id = $1"
        ))
        .bind(repo_id)
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(freshness_from_row)
        .transpose()
    }

    async fn all_freshness(&self) -> Result<Vec<(i64, Freshness)>, StoreError> {
        sqlx::query(&format!(
            "SELECT {FRESHNESS_COLUMNS} FROM repo_freshness ORDER BY repo_id"
        ))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|row| Ok((row.try_get("repo_id")?, freshness_from_row(row)?)))
        .collect()
    }

    async fn set_silence(&self, repo_id: i64, silence: &Silence) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO repo_freshness (repo_id, silence_checked_at, silence_suspected_at, \
                 silent_since, silence_notified_at) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (repo_id) DO UPDATE SET silence_checked_at = $2, \
                 silence_suspected_at = $3, silent_since = $4, silence_notified_at = $5",
        )
        .bind(repo_id)
        .bind(silence.checked_at)
        .bind(silence.suspected_at)
        .bind(silence.silent_since)
        .bind(silence.notified_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn due_silence_checks(
        &self,
        now: DateTime<Utc>,
        every: Duration,
        limit: i64,
    ) -> Result<Vec<i64>, StoreError> {
        let every = chrono::Duration::from_std(every).unwrap_or(chrono::Duration::days(365));
        let grace = every / 10;
        Ok(sqlx::query_scalar(
            "SELECT r.id FROM repos r LEFT JOIN repo_freshness f ON f.repo_id = r.id \
             WHERE r.mode = 'mirror' AND r.state = 'ready' AND r.paused_reason IS NULL \
               AND r.webhook_last_delivery_at IS NOT NULL \
               AND ((r.webhook_last_delivery_at <= $1 \
                     AND (f.silence_checked_at IS NULL OR f.silence_checked_at <= $1)) \
                    OR (f.silence_suspected_at IS NOT NULL AND f.silence_checked_at <= $2)) \
             ORDER BY f.silence_checked_at NULLS FIRST, r.id LIMIT $3",
        )
        .bind(now - every)
        .bind(now - grace)
        .bind(limit.max(0))
        .fetch_all(&self.pool)
        .await?)
    }
}

//! [`MirrorSetStore`] on PostgreSQL.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use mirrorhub_core::Credentials;
use sqlx::postgres::PgRow;
use sqlx::Row;

use super::PgStore;
use crate::mirror_sets::{globs_from_text, globs_to_text, parse_member_state};
use crate::{
    lease_end, parse_mode, MirrorSet, MirrorSetStore, NewMirrorSet, SetMember, StoreError,
};

const SET_COLUMNS: &str = "id, forge, api_url, namespace, owner, (credentials IS NOT NULL) AS has_credentials, \
     installation_id, include_globs, exclude_globs, archived, forks, visibility, mode, sync_interval_secs, \
     list_interval_secs, follow_renames, next_list_at, lease_until, last_listed_at, last_list_error_code, \
     last_list_error_message, list_failures, created_at";

fn set_from_row(row: &PgRow, now: DateTime<Utc>) -> Result<MirrorSet, StoreError> {
    let lease_until = row.try_get::<Option<DateTime<Utc>>, _>("lease_until")?;
    Ok(MirrorSet {
        id: row.try_get("id")?,
        forge: row.try_get("forge")?,
        api_url: row.try_get("api_url")?,
        namespace: row.try_get("namespace")?,
        owner: row.try_get("owner")?,
        has_credentials: row.try_get("has_credentials")?,
        installation_id: row.try_get("installation_id")?,
        include: globs_from_text(row.try_get("include_globs")?),
        exclude: globs_from_text(row.try_get("exclude_globs")?),
        archived: row.try_get("archived")?,
        forks: row.try_get("forks")?,
        visibility: row.try_get("visibility")?,
        mode: parse_mode(row.try_get("mode")?)?,
        sync_interval_secs: row.try_get("sync_interval_secs")?,
        list_interval_secs: row.try_get("list_interval_secs")?,
        follow_renames: row.try_get("follow_renames")?,
        next_list_at: row.try_get("next_list_at")?,
        listing: lease_until.is_some_and(|until| until > now),
        last_listed_at: row.try_get("last_listed_at")?,
        last_list_error_code: row.try_get("last_list_error_code")?,
        last_list_error_message: row.try_get("last_list_error_message")?,
        list_failures: row.try_get("list_failures")?,
        created_at: row.try_get("created_at")?,
    })
}

fn member_from_row(row: &PgRow) -> Result<SetMember, StoreError> {
    Ok(SetMember {
        set_id: row.try_get("set_id")?,
        forge_id: row.try_get("forge_id")?,
        path: row.try_get("path")?,
        repo_id: row.try_get("repo_id")?,
        state: parse_member_state(row.try_get("state")?)?,
        detail: row.try_get("detail")?,
        changed_at: row.try_get("changed_at")?,
    })
}

#[async_trait]
impl MirrorSetStore for PgStore {
    async fn create_mirror_set(
        &self,
        new: &NewMirrorSet,
        now: DateTime<Utc>,
    ) -> Result<MirrorSet, StoreError> {
        let sealed = match &new.credentials {
            Some(c) => Some(self.key.seal_credentials(c)?),
            None => None,
        };
        let sql = format!(
            "INSERT INTO mirror_sets (forge, api_url, namespace, owner, credentials, installation_id, \
             include_globs, exclude_globs, archived, forks, visibility, mode, sync_interval_secs, \
             list_interval_secs, follow_renames, next_list_at, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $16) \
             RETURNING {SET_COLUMNS}"
        );
        let row = sqlx::query(&sql)
            .bind(&new.forge)
            .bind(&new.api_url)
            .bind(&new.namespace)
            .bind(&new.owner)
            .bind(sealed)
            .bind(new.installation_id)
            .bind(globs_to_text(&new.include))
            .bind(globs_to_text(&new.exclude))
            .bind(new.archived)
            .bind(new.forks)
            .bind(&new.visibility)
            .bind(new.mode.as_str())
            .bind(new.sync_interval_secs)
            .bind(new.list_interval_secs)
            .bind(new.follow_renames)
            .bind(now)
            .fetch_one(&self.pool)
            .await?;
        set_from_row(&row, now)
    }

    async fn get_mirror_set(&self, id: i64) -> Result<Option<MirrorSet>, StoreError> {
        let sql = format!("SELECT {SET_COLUMNS} FROM mirror_sets WHERE id = $1");
        let row = sqlx::query(&sql)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| set_from_row(&r, Utc::now())).transpose()
    }

    async fn list_mirror_sets(&self) -> Result<Vec<MirrorSet>, StoreError> {
        let sql = format!("SELECT {SET_COLUMNS} FROM mirror_sets ORDER BY created_at, id");
        let rows = sqlx::query(&sql).fetch_all(&self.pool).await?;
        let now = Utc::now();
        rows.iter().map(|r| set_from_row(r, now)).collect()
    }

    async fn mirror_set_credentials(&self, id: i64) -> Result<Option<Credentials>, StoreError> {
        let sealed: Option<Option<Vec<u8>>> =
            sqlx::query_scalar("SELECT credentials FROM mirror_sets WHERE id = $1")
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
        match sealed.flatten() {
            Some(bytes) => Ok(Some(self.key.open_credentials(&bytes)?)),
            None => Ok(None),
        }
    }

    async fn delete_mirror_set(&self, id: i64) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM mirror_sets WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn claim_mirror_set_listing(
        &self,
        worker: &str,
        now: DateTime<Utc>,
        lease: Duration,
    ) -> Result<Option<MirrorSet>, StoreError> {
        let until = lease_end(now, lease)?;
        // One statement: candidate and claim are one write.
        let sql = format!(
            "UPDATE mirror_sets SET listed_by = $1, lease_until = $2, relist = FALSE \
             WHERE id = (SELECT id FROM mirror_sets \
                         WHERE next_list_at <= $3 AND (lease_until IS NULL OR lease_until <= $3) \
                         ORDER BY next_list_at, id LIMIT 1 FOR UPDATE SKIP LOCKED) \
             RETURNING {SET_COLUMNS}"
        );
        let row = sqlx::query(&sql)
            .bind(worker)
            .bind(until)
            .bind(now)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| set_from_row(&r, now)).transpose()
    }

    async fn renew_mirror_set_listing(
        &self,
        id: i64,
        worker: &str,
        now: DateTime<Utc>,
        lease: Duration,
    ) -> Result<bool, StoreError> {
        let until = lease_end(now, lease)?;
        let done = sqlx::query(
            "UPDATE mirror_sets SET lease_until = $1 WHERE id = $2 AND listed_by = $3 AND lease_until > $4",
        )
        .bind(until)
        .bind(id)
        .bind(worker)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn release_mirror_set_listing(&self, id: i64, worker: &str) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE mirror_sets SET listed_by = NULL, lease_until = NULL \
             WHERE id = $1 AND listed_by = $2",
        )
        .bind(id)
        .bind(worker)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn finish_mirror_set_listing(
        &self,
        id: i64,
        worker: &str,
        now: DateTime<Utc>,
        error: Option<(&str, &str)>,
        next_list_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        // A request that arrived during the listing (`relist`) may announce a change the
        // listing missed: the next one is due at once.
        sqlx::query(
            "UPDATE mirror_sets SET listed_by = NULL, lease_until = NULL, \
             last_listed_at = CASE WHEN $3::TEXT IS NULL THEN $1 ELSE last_listed_at END, \
             last_list_error_code = $3, last_list_error_message = $4, \
             list_failures = CASE WHEN $3::TEXT IS NULL THEN 0 ELSE list_failures + 1 END, \
             next_list_at = CASE WHEN relist THEN $1 ELSE $5 END, relist = FALSE \
             WHERE id = $2 AND listed_by = $6",
        )
        .bind(now)
        .bind(id)
        .bind(error.map(|e| e.0))
        .bind(error.map(|e| e.1))
        .bind(next_list_at)
        .bind(worker)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn request_mirror_set_listing(
        &self,
        id: i64,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE mirror_sets SET next_list_at = LEAST(next_list_at, $1), \
             relist = CASE WHEN lease_until > $1 THEN TRUE ELSE relist END WHERE id = $2",
        )
        .bind(now)
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn mirror_set_members(&self, set_id: i64) -> Result<Vec<SetMember>, StoreError> {
        let rows = sqlx::query(
            "SELECT set_id, forge_id, path, repo_id, state, detail, changed_at \
             FROM mirror_set_repos WHERE set_id = $1 ORDER BY lower(path), forge_id",
        )
        .bind(set_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(member_from_row).collect()
    }

    async fn put_mirror_set_member(&self, member: &SetMember) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO mirror_set_repos (set_id, forge_id, path, repo_id, state, detail, changed_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (set_id, forge_id) DO UPDATE SET path = excluded.path, repo_id = excluded.repo_id, \
             state = excluded.state, detail = excluded.detail, changed_at = excluded.changed_at",
        )
        .bind(member.set_id)
        .bind(&member.forge_id)
        .bind(&member.path)
        .bind(member.repo_id)
        .bind(member.state.as_str())
        .bind(&member.detail)
        .bind(member.changed_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn mirror_sets_of_repo(&self, repo_id: i64) -> Result<Vec<i64>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT set_id FROM mirror_set_repos WHERE repo_id = $1 ORDER BY set_id",
        )
        .bind(repo_id)
        .fetch_all(&self.pool)
        .await?)
    }

    async fn move_repo_upstream(
        &self,
        repo_id: i64,
        upstream_url: &str,
        new_name: Option<&str>,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE repos SET upstream_url = $1, name = COALESCE($2, name) WHERE id = $3",
        )
        .bind(upstream_url)
        .bind(new_name)
        .bind(repo_id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn pause_repo(&self, repo_id: i64, reason: &str) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE repos SET paused_reason = $1, next_sync_at = NULL WHERE id = $2 AND mode = 'mirror'",
        )
        .bind(reason)
        .bind(repo_id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }
}

//! [`NotificationStore`] on SQLite: targets, episodes and the outbox of deliveries. Writes go
//! through the one writer connection (`BEGIN IMMEDIATE`), so an episode's transition and the
//! deliveries it queues are one serialised transaction.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use mirrorhub_core::notify::{step, Episode, NotifyEvent, Seen, Subject};
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, SqliteConnection};

use super::{from_ms, from_opt_ms, ms, SqliteStore};
use crate::notifications::{
    deliveries_for, email_column, events_column, open_text, parse_email, parse_event, parse_events,
    parse_status, parse_subject, parse_target_kind, seal_text, TARGET_SECRET_AAD, TARGET_URL_AAD,
};
use crate::{
    lease_end, ClaimedDelivery, DeliveryAttempt, DeliveryStatus, NewNotificationTarget,
    NotificationDelivery, NotificationFacts, NotificationStore, NotificationTarget,
    NotificationTargetUpdate, Observation, StoreError,
};

const TARGET_SELECT: &str = "SELECT t.id, t.kind, t.owner_id, a.name AS owner, t.url_origin, \
     t.secret IS NOT NULL AS has_secret, t.email_to, t.events, t.enabled, t.description, \
     t.created_at, t.updated_at \
     FROM notification_targets t LEFT JOIN accounts a ON a.id = t.owner_id";

const DELIVERY_COLUMNS: &str = "id, target_id, event, repo_id, repo_owner, repo_name, subject, \
     subject_label, error_code, error_message, episode_started_at, occurred_at, status, attempts, \
     next_attempt_at, last_attempt_at, last_status, last_answer, delivered_at, created_at";

/// The answer recorded on the pending deliveries of a target that is disabled.
const DISABLED_ANSWER: &str = "the target was disabled";

fn target_from_row(row: &SqliteRow) -> Result<NotificationTarget, StoreError> {
    Ok(NotificationTarget {
        id: row.try_get("id")?,
        kind: parse_target_kind(row.try_get("kind")?)?,
        owner_id: row.try_get("owner_id")?,
        owner: row.try_get("owner")?,
        url_origin: row.try_get("url_origin")?,
        has_secret: row.try_get("has_secret")?,
        email_to: parse_email(row.try_get("email_to")?),
        events: parse_events(row.try_get("events")?)?,
        enabled: row.try_get("enabled")?,
        description: row.try_get("description")?,
        created_at: from_ms(row.try_get("created_at")?)?,
        updated_at: from_ms(row.try_get("updated_at")?)?,
    })
}

fn delivery_from_row(row: &SqliteRow) -> Result<NotificationDelivery, StoreError> {
    Ok(NotificationDelivery {
        id: row.try_get("id")?,
        target_id: row.try_get("target_id")?,
        facts: NotificationFacts {
            event: parse_event(row.try_get("event")?)?,
            repo_id: row.try_get("repo_id")?,
            repo_owner: row.try_get("repo_owner")?,
            repo_name: row.try_get("repo_name")?,
            subject: parse_subject(row.try_get("subject")?, row.try_get("subject_label")?)?,
            error_code: row.try_get("error_code")?,
            error_message: row.try_get("error_message")?,
            episode_started_at: from_opt_ms(row.try_get("episode_started_at")?)?,
            occurred_at: from_ms(row.try_get("occurred_at")?)?,
        },
        status: parse_status(row.try_get("status")?)?,
        attempts: row.try_get("attempts")?,
        next_attempt_at: from_opt_ms(row.try_get("next_attempt_at")?)?,
        last_attempt_at: from_opt_ms(row.try_get("last_attempt_at")?)?,
        last_status: row.try_get("last_status")?,
        last_answer: row.try_get("last_answer")?,
        delivered_at: from_opt_ms(row.try_get("delivered_at")?)?,
        created_at: from_ms(row.try_get("created_at")?)?,
    })
}

/// The episode transition and its deliveries, inside the caller's write transaction.
async fn transition(
    conn: &mut SqliteConnection,
    seen: &Observation<'_>,
) -> Result<Vec<i64>, StoreError> {
    let Some(repo) = sqlx::query("SELECT owner, name FROM repos WHERE id = ?1")
        .bind(seen.repo_id)
        .fetch_optional(&mut *conn)
        .await?
    else {
        return Ok(vec![]);
    };
    let (owner, name): (String, String) = (repo.try_get("owner")?, repo.try_get("name")?);
    let key = seen.subject.key();
    let row = sqlx::query(
        "SELECT opened_at, paused_sent, host_key_sent, stale_sent FROM notification_episodes \
         WHERE repo_id = ?1 AND subject = ?2",
    )
    .bind(seen.repo_id)
    .bind(&key)
    .fetch_optional(&mut *conn)
    .await?;
    let (open, opened_at) = match &row {
        Some(r) => (
            Some(Episode {
                paused_sent: r.try_get("paused_sent")?,
                host_key_sent: r.try_get("host_key_sent")?,
                stale_sent: r.try_get("stale_sent")?,
            }),
            from_ms(r.try_get("opened_at")?)?,
        ),
        None => (None, seen.at),
    };
    let (next, events) = step(open, seen.subject, seen.seen);
    match (open, next) {
        (Some(_), None) => {
            sqlx::query("DELETE FROM notification_episodes WHERE repo_id = ?1 AND subject = ?2")
                .bind(seen.repo_id)
                .bind(&key)
                .execute(&mut *conn)
                .await?;
        }
        (None, Some(e)) => {
            sqlx::query(
                "INSERT INTO notification_episodes \
                 (repo_id, subject, opened_at, paused_sent, host_key_sent, stale_sent) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )
            .bind(seen.repo_id)
            .bind(&key)
            .bind(ms(seen.at))
            .bind(e.paused_sent)
            .bind(e.host_key_sent)
            .bind(e.stale_sent)
            .execute(&mut *conn)
            .await?;
        }
        (Some(before), Some(e)) if before != e => {
            sqlx::query(
                "UPDATE notification_episodes SET paused_sent = ?3, host_key_sent = ?4, \
                 stale_sent = ?5 WHERE repo_id = ?1 AND subject = ?2",
            )
            .bind(seen.repo_id)
            .bind(&key)
            .bind(e.paused_sent)
            .bind(e.host_key_sent)
            .bind(e.stale_sent)
            .execute(&mut *conn)
            .await?;
        }
        _ => {}
    }
    if events.is_empty() {
        return Ok(vec![]);
    }
    let targets = sqlx::query(
        "SELECT t.id, t.events FROM notification_targets t \
         LEFT JOIN accounts a ON a.id = t.owner_id \
         WHERE t.enabled <> 0 AND (t.owner_id IS NULL OR a.name_key = lower(?1)) ORDER BY t.id",
    )
    .bind(&owner)
    .fetch_all(&mut *conn)
    .await?
    .iter()
    .map(|r| -> Result<(i64, Option<Vec<NotifyEvent>>), StoreError> {
        Ok((r.try_get("id")?, parse_events(r.try_get("events")?)?))
    })
    .collect::<Result<Vec<_>, StoreError>>()?;
    let mut ids = Vec::new();
    for (target_id, event) in deliveries_for(&targets, &events) {
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO notification_deliveries (target_id, event, repo_id, repo_owner, \
             repo_name, subject, subject_label, error_code, error_message, episode_started_at, \
             occurred_at, next_attempt_at, created_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?11, ?11) RETURNING id",
        )
        .bind(target_id)
        .bind(event.as_str())
        .bind(seen.repo_id)
        .bind(&owner)
        .bind(&name)
        .bind(&key)
        .bind(seen.subject.label())
        .bind(seen.error.map(|e| e.0))
        .bind(seen.error.map(|e| e.1))
        .bind(ms(opened_at))
        .bind(ms(seen.at))
        .fetch_one(&mut *conn)
        .await?;
        ids.push(id);
    }
    Ok(ids)
}

#[async_trait]
impl NotificationStore for SqliteStore {
    async fn create_notification_target(
        &self,
        new: &NewNotificationTarget,
        now: DateTime<Utc>,
    ) -> Result<NotificationTarget, StoreError> {
        let url = new
            .url
            .as_ref()
            .map(|u| seal_text(&self.key, TARGET_URL_AAD, u))
            .transpose()?;
        let secret = new
            .secret
            .as_ref()
            .map(|s| seal_text(&self.key, TARGET_SECRET_AAD, s))
            .transpose()?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO notification_targets (kind, owner_id, url, url_origin, secret, email_to, \
             events, enabled, description, created_at, updated_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?10) RETURNING id",
        )
        .bind(new.kind.as_str())
        .bind(new.owner_id)
        .bind(url)
        .bind(new.url_origin.as_deref())
        .bind(secret)
        .bind(email_column(&new.email_to))
        .bind(events_column(new.events.as_deref()))
        .bind(new.enabled)
        .bind(&new.description)
        .bind(ms(now))
        .fetch_one(&self.writer)
        .await?;
        self.get_notification_target(id)
            .await?
            .ok_or(StoreError::NotFound)
    }

    async fn list_notification_targets(&self) -> Result<Vec<NotificationTarget>, StoreError> {
        sqlx::query(&format!("{TARGET_SELECT} ORDER BY t.id"))
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(target_from_row)
            .collect()
    }

    async fn get_notification_target(
        &self,
        id: i64,
    ) -> Result<Option<NotificationTarget>, StoreError> {
        // The writer: a target read right after it was written must be there.
        sqlx::query(&format!("{TARGET_SELECT} WHERE t.id = ?1"))
            .bind(id)
            .fetch_optional(&self.writer)
            .await?
            .as_ref()
            .map(target_from_row)
            .transpose()
    }

    async fn update_notification_target(
        &self,
        id: i64,
        update: &NotificationTargetUpdate,
        now: DateTime<Utc>,
    ) -> Result<Option<NotificationTarget>, StoreError> {
        let url = update
            .url
            .as_ref()
            .map(|(u, _)| seal_text(&self.key, TARGET_URL_AAD, u))
            .transpose()?;
        let secret = match &update.secret {
            Some(Some(s)) => Some(seal_text(&self.key, TARGET_SECRET_AAD, s)?),
            _ => None,
        };
        let mut tx = self.begin_write().await?;
        let done = sqlx::query(
            "UPDATE notification_targets SET \
             url = CASE WHEN ?2 THEN ?3 ELSE url END, \
             url_origin = CASE WHEN ?2 THEN ?4 ELSE url_origin END, \
             secret = CASE WHEN ?5 THEN ?6 ELSE secret END, \
             email_to = CASE WHEN ?7 THEN ?8 ELSE email_to END, \
             events = CASE WHEN ?9 THEN ?10 ELSE events END, \
             enabled = COALESCE(?11, enabled), \
             description = COALESCE(?12, description), \
             updated_at = ?13 \
             WHERE id = ?1",
        )
        .bind(id)
        .bind(update.url.is_some())
        .bind(url)
        .bind(update.url.as_ref().map(|(_, origin)| origin.as_str()))
        .bind(update.secret.is_some())
        .bind(secret)
        .bind(update.email_to.is_some())
        .bind(update.email_to.as_deref().and_then(email_column))
        .bind(update.events.is_some())
        .bind(
            update
                .events
                .as_ref()
                .and_then(|e| events_column(e.as_deref())),
        )
        .bind(update.enabled)
        .bind(update.description.as_deref())
        .bind(ms(now))
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            return Ok(None);
        }
        if update.enabled == Some(false) {
            sqlx::query(
                "UPDATE notification_deliveries SET status = 'failed', next_attempt_at = NULL, \
                 last_answer = ?2 \
                 WHERE target_id = ?1 AND status = 'pending' AND claimed_by IS NULL \
                   AND event <> 'test'",
            )
            .bind(id)
            .bind(DISABLED_ANSWER)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        self.get_notification_target(id).await
    }

    async fn delete_notification_target(&self, id: i64) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM notification_targets WHERE id = ?1")
            .bind(id)
            .execute(&self.writer)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn note_observation(&self, seen: &Observation<'_>) -> Result<Vec<i64>, StoreError> {
        if seen.seen == Seen::Succeeded {
            // The common case, a success with nothing open, costs a read beside the writer.
            let open: Option<i64> = sqlx::query_scalar(
                "SELECT 1 FROM notification_episodes WHERE repo_id = ?1 AND subject = ?2",
            )
            .bind(seen.repo_id)
            .bind(seen.subject.key())
            .fetch_optional(&self.pool)
            .await?;
            if open.is_none() {
                return Ok(vec![]);
            }
        }
        let mut tx = self.begin_write().await?;
        let ids = transition(&mut tx, seen).await?;
        tx.commit().await?;
        Ok(ids)
    }

    async fn stale_unnoted(
        &self,
        now: DateTime<Utc>,
        grace: Duration,
        limit: i64,
    ) -> Result<Vec<i64>, StoreError> {
        let grace_ms = i64::try_from(grace.as_millis()).unwrap_or(i64::MAX / 2);
        Ok(sqlx::query_scalar(
            "SELECT r.id FROM repos r \
             WHERE r.mode = 'mirror' \
               AND COALESCE(r.last_success_at, r.created_at) + r.sync_interval_secs * 1000 + ?1 < ?2 \
               AND NOT EXISTS (SELECT 1 FROM notification_episodes e \
                   WHERE e.repo_id = r.id AND e.subject = 'sync' AND e.stale_sent <> 0) \
             ORDER BY COALESCE(r.last_success_at, r.created_at) + r.sync_interval_secs * 1000, r.id \
             LIMIT ?3",
        )
        .bind(grace_ms)
        .bind(ms(now))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?)
    }

    async fn note_stale(
        &self,
        repo_id: i64,
        grace: Duration,
        now: DateTime<Utc>,
    ) -> Result<Vec<i64>, StoreError> {
        let grace_ms = i64::try_from(grace.as_millis()).unwrap_or(i64::MAX / 2);
        let mut tx = self.begin_write().await?;
        // Checked again inside the transaction: a sync that succeeded meanwhile wins.
        let still = sqlx::query(
            "SELECT last_error_code, last_error_message FROM repos \
             WHERE id = ?1 AND mode = 'mirror' \
               AND COALESCE(last_success_at, created_at) + sync_interval_secs * 1000 + ?2 < ?3",
        )
        .bind(repo_id)
        .bind(grace_ms)
        .bind(ms(now))
        .fetch_optional(&mut *tx)
        .await?;
        let Some(repo) = still else {
            return Ok(vec![]);
        };
        let code: Option<String> = repo.try_get("last_error_code")?;
        let message: Option<String> = repo.try_get("last_error_message")?;
        let ids = transition(
            &mut tx,
            &Observation {
                repo_id,
                subject: &Subject::Sync,
                seen: Seen::Stale,
                error: code.as_deref().zip(message.as_deref()),
                at: now,
            },
        )
        .await?;
        tx.commit().await?;
        Ok(ids)
    }

    async fn queue_test_delivery(
        &self,
        target_id: i64,
        now: DateTime<Utc>,
    ) -> Result<Option<NotificationDelivery>, StoreError> {
        let row = sqlx::query(&format!(
            "INSERT INTO notification_deliveries (target_id, event, occurred_at, next_attempt_at, \
             created_at) SELECT id, ?2, ?3, ?3, ?3 FROM notification_targets WHERE id = ?1 \
             RETURNING {DELIVERY_COLUMNS}"
        ))
        .bind(target_id)
        .bind(NotifyEvent::Test.as_str())
        .bind(ms(now))
        .fetch_optional(&self.writer)
        .await?;
        row.as_ref().map(delivery_from_row).transpose()
    }

    async fn claim_delivery(
        &self,
        sender: &str,
        now: DateTime<Utc>,
        lease: Duration,
    ) -> Result<Option<ClaimedDelivery>, StoreError> {
        let until = lease_end(now, lease)?;
        let mut tx = self.begin_write().await?;
        let Some(row) = sqlx::query(&format!(
            "UPDATE notification_deliveries SET claimed_by = ?1, lease_until = ?2, \
             attempts = attempts + 1 \
             WHERE id = ( \
                 SELECT d.id FROM notification_deliveries d \
                 JOIN notification_targets t ON t.id = d.target_id \
                 WHERE d.status = 'pending' AND d.next_attempt_at <= ?3 \
                   AND (d.lease_until IS NULL OR d.lease_until <= ?3) \
                   AND (t.enabled <> 0 OR d.event = 'test') \
                 ORDER BY d.next_attempt_at, d.id LIMIT 1) \
             RETURNING {DELIVERY_COLUMNS}"
        ))
        .bind(sender)
        .bind(ms(until))
        .bind(ms(now))
        .fetch_optional(&mut *tx)
        .await?
        else {
            return Ok(None);
        };
        let delivery = delivery_from_row(&row)?;
        let target = sqlx::query(
            "SELECT kind, url, secret, email_to FROM notification_targets WHERE id = ?1",
        )
        .bind(delivery.target_id)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        let url: Option<Vec<u8>> = target.try_get("url")?;
        let secret: Option<Vec<u8>> = target.try_get("secret")?;
        Ok(Some(ClaimedDelivery {
            kind: parse_target_kind(target.try_get("kind")?)?,
            url: url
                .map(|u| open_text(&self.key, TARGET_URL_AAD, &u))
                .transpose()?,
            secret: secret
                .map(|s| open_text(&self.key, TARGET_SECRET_AAD, &s))
                .transpose()?,
            email_to: parse_email(target.try_get("email_to")?),
            delivery,
        }))
    }

    async fn finish_delivery(
        &self,
        id: i64,
        sender: &str,
        attempt: &DeliveryAttempt,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE notification_deliveries SET claimed_by = NULL, lease_until = NULL, \
             status = ?3, next_attempt_at = ?4, last_attempt_at = ?5, last_status = ?6, \
             last_answer = ?7, delivered_at = CASE WHEN ?3 = 'delivered' THEN ?5 ELSE NULL END \
             WHERE id = ?1 AND claimed_by = ?2",
        )
        .bind(id)
        .bind(sender)
        .bind(attempt.status.as_str())
        .bind(
            (attempt.status == DeliveryStatus::Pending)
                .then_some(attempt.next_attempt_at)
                .flatten()
                .map(ms),
        )
        .bind(ms(attempt.at))
        .bind(attempt.answer_status)
        .bind(&attempt.answer)
        .execute(&self.writer)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn list_target_deliveries(
        &self,
        target_id: i64,
        limit: i64,
    ) -> Result<Vec<NotificationDelivery>, StoreError> {
        sqlx::query(&format!(
            "SELECT {DELIVERY_COLUMNS} FROM notification_deliveries WHERE target_id = ?1 \
             ORDER BY id DESC LIMIT ?2"
        ))
        .bind(target_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(delivery_from_row)
        .collect()
    }

    async fn prune_target_deliveries(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "DELETE FROM notification_deliveries WHERE status <> 'pending' AND created_at < ?1",
        )
        .bind(ms(before))
        .execute(&self.writer)
        .await?;
        Ok(done.rows_affected())
    }
}

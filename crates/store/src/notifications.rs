//! Notification targets, the per-subject episodes that make a failure notify once, and the
//! outbox of deliveries (a durable queue with leases, like the sync queue).
//!
//! Invariants both backends keep (checked by `tests/notifications.rs` on both):
//! - an episode's transition ([`mirrorhub_core::notify::step`]) and the deliveries it queues
//!   are written in one transaction, so a failure queues its deliveries exactly once whatever
//!   the number of replicas and retries, and a crash never leaves one without the other;
//! - a delivery is handed to one sender at a time (a lease); a sender that dies loses it;
//! - target URLs (a Slack incoming-webhook URL is a credential) and webhook secrets are sealed
//!   with the store's key and opened only for a claimed delivery.

use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use mirrorhub_core::notify::{NotifyEvent, Seen, Subject, TargetKind};

use crate::{SecretString, StoreError};

/// A notification target to record. The URL and secret are sealed at rest.
#[derive(Debug, Clone)]
pub struct NewNotificationTarget {
    pub kind: TargetKind,
    /// The account whose repositories' events the target gets; `None`: every repository.
    pub owner_id: Option<i64>,
    /// webhook and slack: where to POST (sealed: it may carry a token).
    pub url: Option<SecretString>,
    /// What may be shown of the URL: its scheme, host and port.
    pub url_origin: Option<String>,
    /// webhook: the HMAC-SHA256 key of `X-Mirrorhub-Signature-256`.
    pub secret: Option<SecretString>,
    /// email: the recipients.
    pub email_to: Vec<String>,
    /// `None`: every event.
    pub events: Option<Vec<NotifyEvent>>,
    pub enabled: bool,
    pub description: String,
}

/// A target as listed: never its URL or secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotificationTarget {
    pub id: i64,
    pub kind: TargetKind,
    pub owner_id: Option<i64>,
    /// The owner account's name.
    pub owner: Option<String>,
    pub url_origin: Option<String>,
    pub has_secret: bool,
    pub email_to: Vec<String>,
    pub events: Option<Vec<NotifyEvent>>,
    pub enabled: bool,
    pub description: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A change to a target; `None` fields stay as they are.
#[derive(Debug, Clone, Default)]
pub struct NotificationTargetUpdate {
    /// The new URL and its origin.
    pub url: Option<(SecretString, String)>,
    /// `Some(None)` removes the secret.
    pub secret: Option<Option<SecretString>>,
    pub email_to: Option<Vec<String>>,
    /// `Some(None)`: every event.
    pub events: Option<Option<Vec<NotifyEvent>>>,
    /// Disabling fails the target's pending deliveries (`the target was disabled`).
    pub enabled: Option<bool>,
    pub description: Option<String>,
}

/// What a notification is about, as the payload tells it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotificationFacts {
    pub event: NotifyEvent,
    /// `None` for a test notification.
    pub repo_id: Option<i64>,
    pub repo_owner: Option<String>,
    pub repo_name: Option<String>,
    pub subject: Option<Subject>,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    /// When the episode began (on a recovery: how long the trouble lasted).
    pub episode_started_at: Option<DateTime<Utc>>,
    pub occurred_at: DateTime<Utc>,
}

/// Where a delivery is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryStatus {
    /// Waiting for its (next) attempt.
    Pending,
    /// The target took it (2xx, or the SMTP server accepted the mail).
    Delivered,
    /// Given up: no attempt succeeded within the retry window, or the target was disabled.
    Failed,
}

impl DeliveryStatus {
    pub const fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "pending" => Some(DeliveryStatus::Pending),
            "delivered" => Some(DeliveryStatus::Delivered),
            "failed" => Some(DeliveryStatus::Failed),
            _ => None,
        }
    }
}

/// One notification to one target, with its record of attempts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotificationDelivery {
    pub id: i64,
    pub target_id: i64,
    pub facts: NotificationFacts,
    pub status: DeliveryStatus,
    pub attempts: i32,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub last_attempt_at: Option<DateTime<Utc>>,
    /// The HTTP status of the last answer (webhook, slack) or the SMTP reply code (email).
    pub last_status: Option<i32>,
    /// What the last attempt got, in short (never a secret of ours).
    pub last_answer: Option<String>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

/// A claimed delivery with what its sender needs: the target's opened URL and secret.
#[derive(Debug, Clone)]
pub struct ClaimedDelivery {
    pub delivery: NotificationDelivery,
    pub kind: TargetKind,
    pub url: Option<SecretString>,
    pub secret: Option<SecretString>,
    pub email_to: Vec<String>,
}

/// How one attempt went, as [`NotificationStore::finish_delivery`] records it.
#[derive(Debug, Clone)]
pub struct DeliveryAttempt {
    pub at: DateTime<Utc>,
    pub status: DeliveryStatus,
    /// For `Pending`: when to try again.
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub answer_status: Option<i32>,
    pub answer: String,
}

/// What a repository's run (or the stale check) saw of one subject.
#[derive(Debug, Clone)]
pub struct Observation<'a> {
    pub repo_id: i64,
    pub subject: &'a Subject,
    pub seen: Seen,
    /// On a failure: its code and message, carried by the payload.
    pub error: Option<(&'a str, &'a str)>,
    pub at: DateTime<Utc>,
}

/// The notification half of the store (a supertrait of [`crate::Store`]).
#[async_trait]
pub trait NotificationStore: Send + Sync {
    /// Records a target. [`NotFound`](StoreError::NotFound) if `owner_id` names no account.
    async fn create_notification_target(
        &self,
        new: &NewNotificationTarget,
        now: DateTime<Utc>,
    ) -> Result<NotificationTarget, StoreError>;
    /// Every target, oldest first.
    async fn list_notification_targets(&self) -> Result<Vec<NotificationTarget>, StoreError>;
    async fn get_notification_target(
        &self,
        id: i64,
    ) -> Result<Option<NotificationTarget>, StoreError>;
    /// `None` if there is no such target.
    async fn update_notification_target(
        &self,
        id: i64,
        update: &NotificationTargetUpdate,
        now: DateTime<Utc>,
    ) -> Result<Option<NotificationTarget>, StoreError>;
    /// Deletes a target with its deliveries. `false` if there was none.
    async fn delete_notification_target(&self, id: i64) -> Result<bool, StoreError>;

    /// Applies the episode rule to what was seen and, in the same transaction, queues one
    /// delivery for every enabled target that covers the repository (operator-wide, or scoped
    /// to its owner) and subscribes to one of the events (the first it subscribes to).
    /// Returns the ids of the queued deliveries. A repository that no longer exists queues
    /// nothing. A success outside an episode writes nothing (the common case is a read).
    async fn note_observation(&self, seen: &Observation<'_>) -> Result<Vec<i64>, StoreError>;
    /// Mirrors whose last success (or creation) is older than their interval plus `grace` at
    /// `now` and whose sync episode has not told it yet, at most `limit`, stalest first.
    async fn stale_unnoted(
        &self,
        now: DateTime<Utc>,
        grace: Duration,
        limit: i64,
    ) -> Result<Vec<i64>, StoreError>;
    /// [`note_observation`](Self::note_observation) of [`Seen::Stale`] for the sync subject,
    /// after checking again, inside its transaction, that the mirror is still stale (a sync
    /// that just succeeded wins).
    async fn note_stale(
        &self,
        repo_id: i64,
        grace: Duration,
        now: DateTime<Utc>,
    ) -> Result<Vec<i64>, StoreError>;
    /// Queues a `test` delivery to one target (whatever its filter, enabled or not). `None`
    /// if there is no such target.
    async fn queue_test_delivery(
        &self,
        target_id: i64,
        now: DateTime<Utc>,
    ) -> Result<Option<NotificationDelivery>, StoreError>;

    /// Claims the oldest due pending delivery of an enabled target, for `lease`.
    async fn claim_delivery(
        &self,
        sender: &str,
        now: DateTime<Utc>,
        lease: Duration,
    ) -> Result<Option<ClaimedDelivery>, StoreError>;
    /// Records an attempt of a claimed delivery and lets go of it. `false` if the sender no
    /// longer held it (its lease ran out and another sender took it).
    async fn finish_delivery(
        &self,
        id: i64,
        sender: &str,
        attempt: &DeliveryAttempt,
    ) -> Result<bool, StoreError>;
    /// A target's deliveries, newest first.
    async fn list_target_deliveries(
        &self,
        target_id: i64,
        limit: i64,
    ) -> Result<Vec<NotificationDelivery>, StoreError>;
    /// Forgets finished (delivered or failed) deliveries created before `before`.
    async fn prune_target_deliveries(&self, before: DateTime<Utc>) -> Result<u64, StoreError>;
}

/// The `events` column: comma-separated words; NULL for every event.
pub(crate) fn events_column(events: Option<&[NotifyEvent]>) -> Option<String> {
    events.map(|e| e.iter().map(|e| e.as_str()).collect::<Vec<_>>().join(","))
}

pub(crate) fn parse_events(text: Option<String>) -> Result<Option<Vec<NotifyEvent>>, StoreError> {
    text.map(|t| {
        t.split(',')
            .filter(|w| !w.is_empty())
            .map(|w| crate::parse_text("notification event", w, NotifyEvent::parse))
            .collect()
    })
    .transpose()
}

pub(crate) fn parse_target_kind(s: &str) -> Result<TargetKind, StoreError> {
    crate::parse_text("notification target kind", s, TargetKind::parse)
}

pub(crate) fn parse_event(s: &str) -> Result<NotifyEvent, StoreError> {
    crate::parse_text("notification event", s, NotifyEvent::parse)
}

pub(crate) fn parse_status(s: &str) -> Result<DeliveryStatus, StoreError> {
    crate::parse_text("delivery status", s, DeliveryStatus::parse)
}

/// The `email_to` column: comma-separated addresses (a comma never appears in an address the
/// hub accepts).
pub(crate) fn email_column(to: &[String]) -> Option<String> {
    (!to.is_empty()).then(|| to.join(","))
}

pub(crate) fn parse_email(text: Option<String>) -> Vec<String> {
    text.map(|t| {
        t.split(',')
            .filter(|a| !a.is_empty())
            .map(str::to_owned)
            .collect()
    })
    .unwrap_or_default()
}

pub(crate) fn parse_subject(
    key: Option<String>,
    label: Option<String>,
) -> Result<Option<Subject>, StoreError> {
    key.map(|k| {
        Subject::from_key(&k, label)
            .ok_or_else(|| StoreError::Corrupt(format!("unknown notification subject {k:?}")))
    })
    .transpose()
}

/// What one transition queues: for each target (id, events filter), the event it gets.
pub(crate) fn deliveries_for(
    targets: &[(i64, Option<Vec<NotifyEvent>>)],
    events: &[NotifyEvent],
) -> Vec<(i64, NotifyEvent)> {
    targets
        .iter()
        .filter_map(|(id, filter)| {
            mirrorhub_core::notify::pick_for(filter.as_deref(), events).map(|e| (*id, e))
        })
        .collect()
}

/// The additional authenticated data of sealed target URLs and secrets: a value sealed for
/// one purpose never opens as another.
pub(crate) const TARGET_URL_AAD: &[u8] = b"mirrorhub notification target url v1";
pub(crate) const TARGET_SECRET_AAD: &[u8] = b"mirrorhub notification target secret v1";

pub(crate) fn seal_text(
    key: &crate::SecretKey,
    aad: &[u8],
    text: &SecretString,
) -> Result<Vec<u8>, StoreError> {
    use secrecy::ExposeSecret;
    Ok(key.seal(aad, text.expose_secret().as_bytes())?)
}

pub(crate) fn open_text(
    key: &crate::SecretKey,
    aad: &[u8],
    sealed: &[u8],
) -> Result<SecretString, StoreError> {
    let plain = key.open(aad, sealed)?;
    let text = std::str::from_utf8(&plain).map_err(|_| crate::CryptoError::Decrypt)?;
    Ok(SecretString::from(text))
}

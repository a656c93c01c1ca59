//! `/api/v1/notifications/targets`: where the hub tells of mirrors in trouble (a failed sync,
//! a pause, a changed host key, a stale mirror, Git LFS objects missing, a push mirror failing)
//! and of their recovery, once per episode: signed JSON webhooks, Slack-compatible incoming
//! webhooks, e-mail. Each target's deliveries are listed with their answers.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use mirrorhub_core::ErrorCode;
use mirrorhub_hub::{Hub, HubError, TargetChange, TargetRequest};
use mirrorhub_store::{NotificationDelivery, NotificationTarget};
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};
use secrecy::ExposeSecret;

use super::{ApiResult, ApiTags};
use crate::auth::ApiToken;

pub struct NotificationsApi {
    pub hub: Arc<Hub>,
}

/// A notification target. Its URL (a Slack incoming-webhook URL is a credential) and secret
/// are stored encrypted and never shown: only the URL's origin and `has_secret`.
#[derive(Object)]
pub struct NotificationTargetResource {
    pub id: i64,
    /// `webhook`, `slack` or `email`.
    pub kind: String,
    /// The owner (user or organization) whose repositories the target covers; absent: every
    /// repository of the hub (operator-wide).
    pub owner: Option<String>,
    /// webhook and slack: the URL's scheme, host and port.
    pub url_origin: Option<String>,
    /// webhook: deliveries carry `X-Mirrorhub-Signature-256`.
    pub has_secret: bool,
    /// email: the recipients.
    pub to: Vec<String>,
    /// The events the target gets; absent: all of them.
    pub events: Option<Vec<String>>,
    pub enabled: bool,
    pub description: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// Only in the answer to the create call of a webhook without a secret: the secret the hub
    /// generated for it. It is never shown again.
    #[oai(skip_serializing_if_is_none)]
    pub secret: Option<String>,
}

impl From<NotificationTarget> for NotificationTargetResource {
    fn from(t: NotificationTarget) -> Self {
        Self {
            id: t.id,
            kind: t.kind.as_str().to_owned(),
            owner: t.owner,
            url_origin: t.url_origin,
            has_secret: t.has_secret,
            to: t.email_to,
            events: t
                .events
                .map(|e| e.iter().map(|e| e.as_str().to_owned()).collect()),
            enabled: t.enabled,
            description: t.description,
            created_at: t.created_at,
            updated_at: t.updated_at,
            secret: None,
        }
    }
}

#[derive(Object)]
pub struct CreateNotificationTargetBody {
    /// `webhook` (JSON signed with HMAC-SHA256 in `X-Mirrorhub-Signature-256`), `slack` (an
    /// incoming webhook of Slack, Mattermost or Rocket.Chat) or `email`.
    pub kind: String,
    /// webhook and slack: where to POST (http or https; it must pass the address policy).
    pub url: Option<String>,
    /// webhook: the HMAC-SHA256 key (1-256 characters). Leave it out to have the hub
    /// generate one, shown once in the answer.
    pub secret: Option<String>,
    /// email: one address, or a list of addresses.
    pub to: Option<serde_json::Value>,
    /// Only this owner's repositories (their admins may manage the target too); absent: every
    /// repository (the hub's admins only).
    pub owner: Option<String>,
    /// The events to send (`sync_failed`, `sync_recovered`, `paused`, `host_key_changed`,
    /// `stale`, `lfs_failed`, `lfs_recovered`, `push_mirror_failed`, `push_mirror_recovered`,
    /// `webhook_silent`, `webhook_recovered`); absent or empty: all.
    pub events: Option<Vec<String>>,
    /// Default true.
    pub enabled: Option<bool>,
    /// A label for people, e.g. `#ops channel`.
    pub description: Option<String>,
}

/// A change; absent fields stay as they are.
#[derive(Object)]
pub struct UpdateNotificationTargetBody {
    pub url: Option<String>,
    /// webhook: a new secret.
    pub secret: Option<String>,
    /// email: one address, or a list of addresses.
    pub to: Option<serde_json::Value>,
    /// Empty: all events.
    pub events: Option<Vec<String>>,
    /// Disabling a target gives up its pending deliveries.
    pub enabled: Option<bool>,
    pub description: Option<String>,
}

/// One notification to one target, with its record of attempts.
#[derive(Object)]
pub struct NotificationDeliveryResource {
    pub id: i64,
    pub target_id: i64,
    /// `sync_failed`, `sync_recovered`, …, `test`.
    pub event: String,
    /// `owner/name`; absent for a test.
    pub repository: Option<String>,
    /// `sync`, `lfs`, `push_mirror` or `webhook`.
    pub subject: Option<String>,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    pub occurred_at: DateTime<Utc>,
    /// `pending` (waiting for its next attempt), `delivered` or `failed` (given up).
    pub status: String,
    pub attempts: i32,
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub last_attempt_at: Option<DateTime<Utc>>,
    /// The HTTP status (webhook, slack) or SMTP reply code (email) of the last answer.
    pub last_status: Option<i32>,
    /// What the last attempt got, in short.
    pub last_answer: Option<String>,
    pub delivered_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

impl From<NotificationDelivery> for NotificationDeliveryResource {
    fn from(d: NotificationDelivery) -> Self {
        let f = d.facts;
        Self {
            id: d.id,
            target_id: d.target_id,
            event: f.event.as_str().to_owned(),
            repository: f
                .repo_owner
                .zip(f.repo_name)
                .map(|(o, n)| format!("{o}/{n}")),
            subject: f.subject.map(|s| s.kind().to_owned()),
            error_code: f.error_code,
            error_message: f.error_message,
            occurred_at: f.occurred_at,
            status: d.status.as_str().to_owned(),
            attempts: d.attempts,
            next_attempt_at: d.next_attempt_at,
            last_attempt_at: d.last_attempt_at,
            last_status: d.last_status,
            last_answer: d.last_answer,
            delivered_at: d.delivered_at,
            created_at: d.created_at,
        }
    }
}

#[derive(ApiResponse)]
enum CreatedTarget {
    /// The target is recorded.
    #[oai(status = 201)]
    Target(Json<NotificationTargetResource>),
}

#[derive(ApiResponse)]
enum DeletedTarget {
    /// The target and its deliveries are gone.
    #[oai(status = 204)]
    NoContent,
}

#[derive(ApiResponse)]
enum QueuedTest {
    /// The test notification is queued; its outcome shows in the target's deliveries.
    #[oai(status = 202)]
    Delivery(Json<NotificationDeliveryResource>),
}

/// `"to"` as one address or a list of them.
fn recipients(to: Option<serde_json::Value>) -> Result<Option<Vec<String>>, HubError> {
    let invalid = || {
        HubError::invalid(
            ErrorCode::InvalidRequest,
            "to",
            "to must be an e-mail address or a list of them",
        )
    };
    match to {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(s)) => Ok(Some(vec![s])),
        Some(serde_json::Value::Array(items)) => items
            .into_iter()
            .map(|v| match v {
                serde_json::Value::String(s) => Ok(s),
                _ => Err(invalid()),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some),
        Some(_) => Err(invalid()),
    }
}

#[OpenApi(tag = "ApiTags::Notifications")]
impl NotificationsApi {
    /// Add a notification target.
    ///
    /// Operator-wide targets (no `owner`) get the events of every repository and are managed
    /// by the hub's admins; a target with `owner` gets only that owner's repositories' events
    /// and may also be managed by the owner's admins. A failure is told once per episode (the
    /// first failure after a success), then the recovery that ends it.
    #[oai(path = "/notifications/targets", method = "post")]
    async fn create_target(
        &self,
        auth: ApiToken,
        body: Json<CreateNotificationTargetBody>,
    ) -> ApiResult<CreatedTarget> {
        let b = body.0;
        let request = TargetRequest {
            kind: b.kind,
            url: b.url,
            secret: b.secret,
            to: recipients(b.to)?.unwrap_or_default(),
            owner: b.owner,
            events: b.events,
            enabled: b.enabled,
            description: b.description,
        };
        let created = self
            .hub
            .create_notification_target(&auth.0, request)
            .await?;
        let mut resource = NotificationTargetResource::from(created.target);
        resource.secret = created
            .generated_secret
            .map(|s| s.expose_secret().to_owned());
        Ok(CreatedTarget::Target(Json(resource)))
    }

    /// The targets the caller manages, oldest first.
    #[oai(path = "/notifications/targets", method = "get")]
    async fn list_targets(
        &self,
        auth: ApiToken,
    ) -> ApiResult<Json<Vec<NotificationTargetResource>>> {
        let targets = self.hub.list_notification_targets(&auth.0).await?;
        Ok(Json(
            targets
                .into_iter()
                .map(NotificationTargetResource::from)
                .collect(),
        ))
    }

    /// One target.
    #[oai(path = "/notifications/targets/:id", method = "get")]
    async fn get_target(
        &self,
        auth: ApiToken,
        id: Path<i64>,
    ) -> ApiResult<Json<NotificationTargetResource>> {
        let target = self.hub.notification_target(&auth.0, id.0).await?;
        Ok(Json(target.into()))
    }

    /// Change a target: its URL, secret, recipients, events, description, or whether it is
    /// enabled.
    #[oai(path = "/notifications/targets/:id", method = "patch")]
    async fn update_target(
        &self,
        auth: ApiToken,
        id: Path<i64>,
        body: Json<UpdateNotificationTargetBody>,
    ) -> ApiResult<Json<NotificationTargetResource>> {
        let b = body.0;
        let change = TargetChange {
            url: b.url,
            secret: b.secret,
            to: recipients(b.to)?,
            events: b.events,
            enabled: b.enabled,
            description: b.description,
        };
        let target = self
            .hub
            .update_notification_target(&auth.0, id.0, change)
            .await?;
        Ok(Json(target.into()))
    }

    /// Delete a target with its deliveries.
    #[oai(path = "/notifications/targets/:id", method = "delete")]
    async fn delete_target(&self, auth: ApiToken, id: Path<i64>) -> ApiResult<DeletedTarget> {
        self.hub.delete_notification_target(&auth.0, id.0).await?;
        Ok(DeletedTarget::NoContent)
    }

    /// Send a test notification.
    ///
    /// Queues a `test` event to the target (whatever its events, also while it is disabled),
    /// tried once; `GET …/deliveries` shows how it went.
    #[oai(path = "/notifications/targets/:id/test", method = "post")]
    async fn test_target(&self, auth: ApiToken, id: Path<i64>) -> ApiResult<QueuedTest> {
        let delivery = self.hub.test_notification_target(&auth.0, id.0).await?;
        Ok(QueuedTest::Delivery(Json(delivery.into())))
    }

    /// A target's deliveries, newest first (kept 30 days), each with its status, attempts and
    /// the last answer.
    #[oai(path = "/notifications/targets/:id/deliveries", method = "get")]
    async fn list_deliveries(
        &self,
        auth: ApiToken,
        id: Path<i64>,
        /// How many deliveries to return (1-200, default 50).
        limit: Query<Option<i64>>,
    ) -> ApiResult<Json<Vec<NotificationDeliveryResource>>> {
        let limit = limit.0.unwrap_or(50).clamp(1, 200);
        let deliveries = self
            .hub
            .notification_deliveries(&auth.0, id.0, limit)
            .await?;
        Ok(Json(
            deliveries
                .into_iter()
                .map(NotificationDeliveryResource::from)
                .collect(),
        ))
    }
}

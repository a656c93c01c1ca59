//! The outbox's senders: a few tasks per process claim due deliveries with a lease, make one
//! attempt each (bounded by `MIRRORHUB_NOTIFY_TIMEOUT`), and record the answer. A failed
//! attempt is tried again with backoff until `MIRRORHUB_NOTIFY_GIVE_UP_AFTER` has passed since
//! the delivery was queued; a test notification is tried once.
//!
//! Webhook and Slack requests go through the engine's egress proxy, one pass per request, so
//! the address policy applies to the address actually connected to; redirects are not
//! followed (a target answers itself). E-mail goes to the SMTP server's checked address.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use mirrorhub_core::notify::{retry_delay, NotifyEvent, TargetKind};
use mirrorhub_store::{ClaimedDelivery, DeliveryAttempt, DeliveryStatus};
use reqwest::header::{CONTENT_TYPE, USER_AGENT};
use secrecy::ExposeSecret;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::{message, origin_of};
use crate::Hub;

/// How much of a target's answer is kept (the API shows it).
const ANSWER_EXCERPT: usize = 200;
/// How often one of the senders forgets old finished deliveries.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);
/// Finished deliveries are kept this long.
const KEEP_DELIVERIES: chrono::TimeDelta = chrono::TimeDelta::days(30);

/// Starts this process's senders (`MIRRORHUB_NOTIFY_CONCURRENCY` of them). They stop claiming
/// when `shutdown` is cancelled; an attempt under way ends within its timeout.
pub(crate) fn spawn_senders(
    hub: &Arc<Hub>,
    process: &str,
    shutdown: &CancellationToken,
    tasks: &mut JoinSet<()>,
) {
    for n in 0..hub.config.notifications.concurrency.max(1) {
        let sender = format!("{}-notify-{n}", &process[..process.len().min(12)]);
        tasks.spawn(sender_loop(hub.clone(), sender, n == 0, shutdown.clone()));
    }
}

async fn sender_loop(hub: Arc<Hub>, sender: String, prunes: bool, shutdown: CancellationToken) {
    let config = &hub.config.notifications;
    // Long enough for an attempt and its bookkeeping: a sender that dies loses it after this.
    let lease = config.timeout * 3 + Duration::from_secs(30);
    let mut pruned_at: Option<Instant> = None;
    while !shutdown.is_cancelled() {
        if prunes && pruned_at.is_none_or(|at| at.elapsed() >= PRUNE_EVERY) {
            pruned_at = Some(Instant::now());
            match hub
                .store
                .prune_target_deliveries(Utc::now() - KEEP_DELIVERIES)
                .await
            {
                Ok(0) => {}
                Ok(n) => tracing::debug!(pruned = n, "old notification deliveries forgotten"),
                Err(e) => tracing::warn!(error = %e, "could not prune old notification deliveries"),
            }
        }
        match hub.store.claim_delivery(&sender, Utc::now(), lease).await {
            Ok(Some(claimed)) => {
                let span = tracing::info_span!("notify", delivery_id = claimed.delivery.id, target_id = claimed.delivery.target_id, event = %claimed.delivery.facts.event);
                attempt(&hub, &sender, claimed).instrument(span).await;
            }
            Ok(None) => {
                tokio::select! {
                    _ = hub.notifier.wake.notified() => {}
                    _ = tokio::time::sleep(hub.config.poll_interval) => {}
                    _ = shutdown.cancelled() => {}
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "could not claim a notification delivery; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(hub.config.poll_interval * 5) => {}
                    _ = shutdown.cancelled() => {}
                }
            }
        }
    }
}

/// How one attempt went.
struct Answer {
    delivered: bool,
    status: Option<i32>,
    summary: String,
}

async fn attempt(hub: &Hub, sender: &str, claimed: ClaimedDelivery) {
    let started = Instant::now();
    let answer = match claimed.kind {
        TargetKind::Webhook => post(hub, &claimed, true).await,
        TargetKind::Slack => post(hub, &claimed, false).await,
        TargetKind::Email => email(hub, &claimed).await,
    };
    let delivery = &claimed.delivery;
    let now = Utc::now();
    let config = &hub.config.notifications;
    let (status, next_attempt_at, summary) = if answer.delivered {
        (DeliveryStatus::Delivered, None, answer.summary)
    } else if delivery.facts.event == NotifyEvent::Test {
        (DeliveryStatus::Failed, None, answer.summary)
    } else {
        let attempts = u32::try_from(delivery.attempts).unwrap_or(1);
        let wait = chrono::Duration::from_std(retry_delay(attempts, config.retry_base))
            .unwrap_or(chrono::Duration::hours(1));
        let give_up_at = delivery.created_at
            + chrono::Duration::from_std(config.give_up_after).unwrap_or(chrono::Duration::days(1));
        if now + wait > give_up_at {
            let summary = format!(
                "{}; given up after {} attempts",
                answer.summary, delivery.attempts
            );
            (DeliveryStatus::Failed, None, summary)
        } else {
            (DeliveryStatus::Pending, Some(now + wait), answer.summary)
        }
    };
    let duration_ms = started.elapsed().as_millis() as u64;
    match status {
        DeliveryStatus::Delivered => {
            tracing::info!(duration_ms, attempts = delivery.attempts, answer = %summary, "notification delivered")
        }
        DeliveryStatus::Pending => {
            tracing::warn!(duration_ms, attempts = delivery.attempts, answer = %summary, next_attempt_at = ?next_attempt_at, "notification not delivered; it is tried again")
        }
        DeliveryStatus::Failed => {
            tracing::warn!(duration_ms, attempts = delivery.attempts, answer = %summary, "notification not delivered; given up")
        }
    }
    let record = DeliveryAttempt {
        at: now,
        status,
        next_attempt_at,
        answer_status: answer.status,
        answer: summary,
    };
    match hub
        .store
        .finish_delivery(delivery.id, sender, &record)
        .await
    {
        Ok(true) => {}
        Ok(false) => {
            tracing::warn!("the delivery's lease ran out during the attempt; another sender has it")
        }
        Err(e) => {
            tracing::error!(error = %e, "could not record the attempt; the delivery is tried again when its lease runs out")
        }
    }
}

/// A webhook (signed JSON) or a Slack-compatible incoming webhook (`{"text": …}`).
async fn post(hub: &Hub, claimed: &ClaimedDelivery, webhook: bool) -> Answer {
    let delivery = &claimed.delivery;
    let Some(url) = &claimed.url else {
        return failed("the target has no url");
    };
    let public_url = &hub.config.public_url;
    let body = if webhook {
        message::webhook_body(&delivery.facts, delivery.id, public_url)
    } else {
        message::slack_body(&delivery.facts, public_url)
    };
    let body = match serde_json::to_vec(&body) {
        Ok(b) => b,
        Err(e) => return failed(&format!("the payload could not be written: {e}")),
    };
    let pass = hub.engine.egress_pass();
    let client = match reqwest::Proxy::all(pass.proxy_url()).and_then(|proxy| {
        reqwest::Client::builder()
            .proxy(proxy)
            .timeout(hub.config.notifications.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
    }) {
        Ok(c) => c,
        Err(e) => {
            return failed(&format!(
                "the HTTP client could not be made: {}",
                e.without_url()
            ))
        }
    };
    let mut request = client
        .post(url.expose_secret())
        .header(CONTENT_TYPE, "application/json")
        .header(
            USER_AGENT,
            concat!("mirrorhub/", env!("CARGO_PKG_VERSION"), " notifications"),
        );
    if webhook {
        request = request
            .header("X-Mirrorhub-Event", delivery.facts.event.as_str())
            .header("X-Mirrorhub-Delivery", delivery.id.to_string());
        if let Some(secret) = &claimed.secret {
            request = request.header(
                "X-Mirrorhub-Signature-256",
                message::signature(secret.expose_secret(), &body),
            );
        }
    }
    tracing::debug!(origin = %origin_of(url), "sending a notification");
    match request.body(body).send().await {
        Ok(response) => {
            let status = response.status();
            // The proxy's own answers: the target was never reached.
            if let Some(refused) = pass.refused() {
                return failed(&format!("url_not_allowed: {refused}"));
            }
            if let Some(detail) = pass.unreachable().filter(|_| !status.is_success()) {
                return failed(&format!("could not connect: {detail}"));
            }
            let excerpt = excerpt(response).await;
            let summary = match excerpt.is_empty() {
                true => status.to_string(),
                false => format!("{status}: {excerpt}"),
            };
            Answer {
                delivered: status.is_success(),
                status: Some(i32::from(status.as_u16())),
                summary,
            }
        }
        Err(e) => {
            // Never the error's URL: a Slack URL is a credential.
            let summary = if let Some(refused) = pass.refused() {
                format!("url_not_allowed: {refused}")
            } else if e.is_timeout() {
                format!(
                    "timeout: no answer within {}s",
                    hub.config.notifications.timeout.as_secs()
                )
            } else if e.is_connect() {
                format!("could not connect: {}", root_cause(&e))
            } else {
                format!("the request failed: {}", root_cause(&e))
            };
            failed(&summary)
        }
    }
}

async fn email(hub: &Hub, claimed: &ClaimedDelivery) -> Answer {
    let Some(smtp) = &hub.config.notifications.smtp else {
        return failed("this hub has no SMTP server (MIRRORHUB_SMTP_URL) any more");
    };
    let timeout = hub.config.notifications.timeout;
    let addr = match hub.resolve_allowed(smtp.host(), smtp.port()).await {
        Ok(addrs) => match addrs.first() {
            Some(a) => *a,
            None => {
                return failed(&format!(
                    "could not resolve the SMTP server {}",
                    smtp.host()
                ))
            }
        },
        Err(e) => return failed(&format!("url_not_allowed: the SMTP server: {e}")),
    };
    let facts = &claimed.delivery.facts;
    let public_url = &hub.config.public_url;
    match smtp
        .send(
            addr,
            &claimed.email_to,
            &message::email_subject(facts),
            message::email_body(facts, public_url),
            timeout,
        )
        .await
    {
        Ok(code) => Answer {
            delivered: true,
            status: Some(code),
            summary: format!("{code}: accepted by the SMTP server"),
        },
        Err((code, summary)) => Answer {
            delivered: false,
            status: code,
            summary,
        },
    }
}

fn failed(summary: &str) -> Answer {
    Answer {
        delivered: false,
        status: None,
        summary: summary.to_owned(),
    }
}

/// The innermost cause of a request error, without its URL.
fn root_cause(e: &reqwest::Error) -> String {
    let mut cause: &dyn std::error::Error = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    let text = cause.to_string();
    if text.contains("://") {
        "the connection failed".to_owned()
    } else {
        text
    }
}

/// The start of a target's answer, on one line, without control characters.
async fn excerpt(mut response: reqwest::Response) -> String {
    let mut bytes = Vec::new();
    while bytes.len() < ANSWER_EXCERPT * 4 {
        match response.chunk().await {
            Ok(Some(chunk)) => bytes.extend_from_slice(&chunk),
            _ => break,
        }
    }
    let text = String::from_utf8_lossy(&bytes);
    let text: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    text.chars().take(ANSWER_EXCERPT).collect()
}

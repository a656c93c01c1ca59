//! Notifications: targets (webhook, Slack-compatible, e-mail) that operators and owners'
//! admins set up, the events a repository's runs produce (once per episode of trouble, see
//! `mirrorhub_core::notify::step`), and the outbox that delivers them.
//!
//! A worker never sends anything itself: the run's outcome goes to the store
//! ([`Hub::note_outcome`]), which applies the episode rule and queues the deliveries in one
//! transaction; sender tasks ([`send`]) claim them with a lease, send them with a timeout, and
//! record the answer, retrying with backoff for a day. A dead target costs a sender task some
//! seconds, never a sync.

mod message;
mod send;
mod smtp;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use mirrorhub_core::notify::{NotifyEvent, Seen, Subject, TargetKind};
use mirrorhub_core::{Access, Actor, ErrorCode};
use mirrorhub_store::{
    NewNotificationTarget, NotificationDelivery, NotificationTarget, NotificationTargetUpdate,
    Observation, Repo, SecretString, StoreError, SyncResult,
};
use secrecy::ExposeSecret;
use tokio::sync::Notify;

pub use smtp::{SmtpConfig, SmtpTls};

use crate::{Hub, HubError};

pub(crate) use send::spawn_senders;

/// Settings of the notification outbox, read once by the binary.
#[derive(Debug, Clone)]
pub struct NotifyConfig {
    /// Deliveries sent at once by this process.
    pub concurrency: usize,
    /// The longest one attempt (an HTTP request, an SMTP conversation) may take.
    pub timeout: Duration,
    /// The wait before the first retry; it doubles with each attempt, up to an hour.
    pub retry_base: Duration,
    /// A delivery still not made this long after it was queued is given up (`failed`).
    pub give_up_after: Duration,
    /// The SMTP server for e-mail targets; `None`: e-mail targets are refused.
    pub smtp: Option<SmtpConfig>,
}

impl Default for NotifyConfig {
    fn default() -> Self {
        Self {
            concurrency: 4,
            timeout: Duration::from_secs(10),
            retry_base: Duration::from_secs(10),
            give_up_after: Duration::from_secs(24 * 3600),
            smtp: None,
        }
    }
}

/// The outbox's state in this process.
#[derive(Default)]
pub(crate) struct Notifier {
    /// Wakes an idle sender when this process queues a delivery.
    wake: Arc<Notify>,
    /// When the leading scheduler last looked for stale mirrors.
    stale_checked: std::sync::Mutex<Option<Instant>>,
}

/// A target to create, as the API and the web UI receive it.
#[derive(Debug, Clone, Default)]
pub struct TargetRequest {
    pub kind: String,
    pub url: Option<String>,
    pub secret: Option<String>,
    /// E-mail recipients.
    pub to: Vec<String>,
    pub owner: Option<String>,
    /// `None` or empty: every event.
    pub events: Option<Vec<String>>,
    pub enabled: Option<bool>,
    pub description: Option<String>,
}

/// A change to a target; `None` fields stay.
#[derive(Debug, Clone, Default)]
pub struct TargetChange {
    pub url: Option<String>,
    pub secret: Option<String>,
    pub to: Option<Vec<String>>,
    /// Empty: every event.
    pub events: Option<Vec<String>>,
    pub enabled: Option<bool>,
    pub description: Option<String>,
}

/// A target just created, with the webhook secret the hub generated (shown this once).
#[derive(Debug, Clone)]
pub struct CreatedTarget {
    pub target: NotificationTarget,
    pub generated_secret: Option<SecretString>,
}

const MAX_URL_LEN: usize = 2048;
const MAX_SECRET_LEN: usize = 256;
const MAX_RECIPIENTS: usize = 20;
const MAX_DESCRIPTION_LEN: usize = 200;
/// How many stale mirrors one check notes at most (the rest at the next check).
const STALE_BATCH: i64 = 200;

impl Hub {
    /// Creates a notification target. Operator-wide targets (no `owner`) are for the hub's
    /// admins (the admin token, site admins); a target scoped to an owner is for that owner's
    /// admins too. URLs must be http(s) and pass the address policy; an e-mail target needs
    /// the hub's SMTP settings. A webhook without a secret gets a generated one, returned here
    /// once.
    pub async fn create_notification_target(
        &self,
        actor: &Actor,
        request: TargetRequest,
    ) -> Result<CreatedTarget, HubError> {
        let owner = request
            .owner
            .as_deref()
            .map(str::trim)
            .filter(|o| !o.is_empty());
        let owner_id = self.check_manager(actor, owner).await?;
        let kind = TargetKind::parse(request.kind.trim()).ok_or_else(|| {
            HubError::invalid(
                ErrorCode::InvalidRequest,
                "kind",
                "kind must be webhook, slack or email",
            )
        })?;
        let mut new = NewNotificationTarget {
            kind,
            owner_id,
            url: None,
            url_origin: None,
            secret: None,
            email_to: vec![],
            events: parse_events(request.events.as_deref())?,
            enabled: request.enabled.unwrap_or(true),
            description: check_description(request.description.as_deref().unwrap_or(""))?,
        };
        let mut generated_secret = None;
        match kind {
            TargetKind::Webhook | TargetKind::Slack => {
                let url = request.url.as_deref().map(str::trim).unwrap_or("");
                if url.is_empty() {
                    return Err(HubError::invalid(
                        ErrorCode::InvalidRequest,
                        "url",
                        format!("a {kind} target needs a url to POST to"),
                    ));
                }
                let (url, origin) = self.check_target_url(url).await?;
                new.url = Some(url);
                new.url_origin = Some(origin);
                if !request.to.is_empty() {
                    return Err(HubError::invalid(
                        ErrorCode::InvalidRequest,
                        "to",
                        "only email targets take recipients",
                    ));
                }
            }
            TargetKind::Email => {
                if self.config.notifications.smtp.is_none() {
                    return Err(HubError::invalid(
                        ErrorCode::InvalidRequest,
                        "kind",
                        "this hub sends no e-mail: its operator has not set MIRRORHUB_SMTP_URL and MIRRORHUB_SMTP_FROM",
                    ));
                }
                if request.url.is_some() {
                    return Err(HubError::invalid(
                        ErrorCode::InvalidRequest,
                        "url",
                        "an email target takes recipients in \"to\", not a url",
                    ));
                }
                new.email_to = check_recipients(&request.to)?;
            }
        }
        match (kind, request.secret.as_deref()) {
            (TargetKind::Webhook, Some(secret)) => new.secret = Some(check_secret(secret)?),
            (TargetKind::Webhook, None) => {
                let secret = SecretString::from(crate::random_token());
                generated_secret = Some(secret.clone());
                new.secret = Some(secret);
            }
            (_, Some(_)) => {
                return Err(HubError::invalid(
                    ErrorCode::InvalidRequest,
                    "secret",
                    "only webhook targets are signed with a secret",
                ))
            }
            (_, None) => {}
        }
        let target = self
            .store
            .create_notification_target(&new, Utc::now())
            .await
            .map_err(|e| match e {
                StoreError::NotFound => HubError::invalid(
                    ErrorCode::AccountNotFound,
                    "owner",
                    format!("no user or organization is named {:?}", owner.unwrap_or("")),
                ),
                other => other.into(),
            })?;
        tracing::info!(target_id = target.id, kind = %target.kind, owner = ?target.owner, origin = ?target.url_origin, "notification target created");
        Ok(CreatedTarget {
            target,
            generated_secret,
        })
    }

    /// The targets the actor manages: all of them for the hub's admins, else those scoped to
    /// owners the actor administers.
    pub async fn list_notification_targets(
        &self,
        actor: &Actor,
    ) -> Result<Vec<NotificationTarget>, HubError> {
        if *actor == Actor::Anonymous {
            return Err(HubError::Unauthorized(NEED_TOKEN.into()));
        }
        let all = self.store.list_notification_targets().await?;
        if is_site_admin(actor) {
            return Ok(all);
        }
        let memberships = match actor {
            Actor::User { id, .. } => self.store.memberships(*id).await?,
            _ => vec![],
        };
        Ok(all
            .into_iter()
            .filter(|t| {
                t.owner.as_deref().is_some_and(|owner| {
                    let role = memberships
                        .iter()
                        .find(|(org, _)| org.eq_ignore_ascii_case(owner))
                        .map(|(_, role)| *role);
                    actor
                        .owner_access(owner, role)
                        .is_some_and(|a| a.includes(Access::Admin))
                })
            })
            .collect())
    }

    /// One target the actor manages; one they may not manage is missing, like one that does
    /// not exist.
    pub async fn notification_target(
        &self,
        actor: &Actor,
        id: i64,
    ) -> Result<NotificationTarget, HubError> {
        let missing = || {
            HubError::NotificationTargetNotFound(format!(
                "there is no notification target with id {id}"
            ))
        };
        let target = self
            .store
            .get_notification_target(id)
            .await?
            .ok_or_else(missing)?;
        match self.check_manager(actor, target.owner.as_deref()).await {
            Ok(_) => Ok(target),
            Err(HubError::Unauthorized(m)) => Err(HubError::Unauthorized(m)),
            Err(_) => Err(missing()),
        }
    }

    /// Changes a target. A new URL is checked like at creation; disabling it gives up its
    /// pending deliveries.
    pub async fn update_notification_target(
        &self,
        actor: &Actor,
        id: i64,
        change: TargetChange,
    ) -> Result<NotificationTarget, HubError> {
        let target = self.notification_target(actor, id).await?;
        let mut update = NotificationTargetUpdate {
            enabled: change.enabled,
            ..NotificationTargetUpdate::default()
        };
        if let Some(url) = change.url.as_deref().map(str::trim) {
            if target.kind == TargetKind::Email {
                return Err(HubError::invalid(
                    ErrorCode::InvalidRequest,
                    "url",
                    "an email target takes recipients in \"to\", not a url",
                ));
            }
            update.url = Some(self.check_target_url(url).await?);
        }
        if let Some(secret) = change.secret.as_deref() {
            if target.kind != TargetKind::Webhook {
                return Err(HubError::invalid(
                    ErrorCode::InvalidRequest,
                    "secret",
                    "only webhook targets are signed with a secret",
                ));
            }
            update.secret = Some(Some(check_secret(secret)?));
        }
        if let Some(to) = &change.to {
            if target.kind != TargetKind::Email {
                return Err(HubError::invalid(
                    ErrorCode::InvalidRequest,
                    "to",
                    "only email targets take recipients",
                ));
            }
            update.email_to = Some(check_recipients(to)?);
        }
        if let Some(events) = &change.events {
            update.events = Some(parse_events(Some(events))?);
        }
        if let Some(d) = change.description.as_deref() {
            update.description = Some(check_description(d)?);
        }
        let updated = self
            .store
            .update_notification_target(id, &update, Utc::now())
            .await?
            .ok_or_else(|| {
                HubError::NotificationTargetNotFound(format!(
                    "there is no notification target with id {id}"
                ))
            })?;
        tracing::info!(target_id = id, "notification target changed");
        Ok(updated)
    }

    /// Deletes a target with its deliveries.
    pub async fn delete_notification_target(&self, actor: &Actor, id: i64) -> Result<(), HubError> {
        self.notification_target(actor, id).await?;
        self.store.delete_notification_target(id).await?;
        tracing::info!(target_id = id, "notification target deleted");
        Ok(())
    }

    /// The test button: queues a `test` notification to the target (whatever its filter, and
    /// also while it is disabled), sent like any other but tried once. Its outcome shows in
    /// the target's deliveries.
    pub async fn test_notification_target(
        &self,
        actor: &Actor,
        id: i64,
    ) -> Result<NotificationDelivery, HubError> {
        self.notification_target(actor, id).await?;
        let delivery = self
            .store
            .queue_test_delivery(id, Utc::now())
            .await?
            .ok_or_else(|| {
                HubError::NotificationTargetNotFound(format!(
                    "there is no notification target with id {id}"
                ))
            })?;
        self.notifier.wake.notify_one();
        Ok(delivery)
    }

    /// A target's deliveries, newest first.
    pub async fn notification_deliveries(
        &self,
        actor: &Actor,
        id: i64,
        limit: i64,
    ) -> Result<Vec<NotificationDelivery>, HubError> {
        self.notification_target(actor, id).await?;
        Ok(self.store.list_target_deliveries(id, limit).await?)
    }

    /// Tells the notification outbox how a run of one of `repo`'s subjects ended: `Ok(())`
    /// for a success, else its error code and message, and whether the failure paused it.
    /// The store applies the episode rule (only the first failure after a success, a pause, a
    /// changed host key and the recovery are told) and queues the deliveries in the same
    /// transaction; the senders are woken. Never fails the caller: a store error is logged
    /// (the next run's outcome is noted as usual).
    ///
    /// The sync worker calls it for [`Subject::Sync`] and [`Subject::Lfs`]; a push mirror's
    /// run calls it with `Subject::PushMirror { id, label }` (label: the destination's origin
    /// and path, never credentials) when it ends.
    pub async fn note_outcome(
        &self,
        repo: &Repo,
        subject: Subject,
        result: Result<(), (ErrorCode, String)>,
        paused: bool,
    ) {
        let (code, message) = match &result {
            Ok(()) => (None, None),
            Err((code, message)) => (Some(code.as_str()), Some(message.as_str())),
        };
        self.note(repo.id, &subject, code, message, paused).await;
    }

    /// What a silence check tells the outbox: the webhook silent (`Some`: why), or
    /// delivering again (`None`).
    pub(crate) async fn note_webhook(&self, repo_id: i64, silent: Option<&str>) {
        let code = silent.map(|_| "webhook_silent");
        self.note(repo_id, &Subject::Webhook, code, silent, false)
            .await;
    }

    async fn note(
        &self,
        repo_id: i64,
        subject: &Subject,
        code: Option<&str>,
        message: Option<&str>,
        paused: bool,
    ) {
        let seen = match code {
            None => Seen::Succeeded,
            Some(code) => Seen::Failed {
                host_key: code == ErrorCode::HostKeyMismatch.as_str(),
                paused,
            },
        };
        let observation = Observation {
            repo_id,
            subject,
            seen,
            error: code.zip(message),
            at: Utc::now(),
        };
        match self.store.note_observation(&observation).await {
            Ok(queued) => self.queued(repo_id, subject, &queued),
            Err(e) => {
                tracing::warn!(error = %e, repo_id, subject = %subject.key(), "could not record the run for notifications");
            }
        }
    }

    fn queued(&self, repo_id: i64, subject: &Subject, deliveries: &[i64]) {
        if deliveries.is_empty() {
            return;
        }
        tracing::info!(repo_id, subject = %subject.key(), deliveries = deliveries.len(), "notifications queued");
        for _ in 0..deliveries
            .len()
            .min(self.config.notifications.concurrency.max(1))
        {
            self.notifier.wake.notify_one();
        }
    }

    /// What a finished sync run tells the outbox: the sync's outcome, and (when the transfer
    /// worked) its Git LFS part.
    pub(crate) async fn note_run(
        &self,
        repo: &Repo,
        result: &SyncResult,
        lfs: Option<Result<(), (ErrorCode, String)>>,
    ) {
        let failed = result.outcome == mirrorhub_core::Outcome::Failed;
        let code = failed.then(|| result.error_code.as_deref().unwrap_or("git_failed"));
        let message = failed.then(|| result.error_message.as_deref().unwrap_or(""));
        self.note(repo.id, &Subject::Sync, code, message, result.pause)
            .await;
        if let Some(lfs) = lfs {
            self.note_outcome(repo, Subject::Lfs, lfs, false).await;
        }
    }

    /// Looks for mirrors that went stale (last success older than their interval plus
    /// `MIRRORHUB_STALE_GRACE`) and tells each once per episode. Called by the leading
    /// scheduler every tick; does its query at most once a minute (more often only when the
    /// grace itself is shorter, as in tests).
    pub(crate) async fn check_stale(&self) {
        let every = self
            .config
            .schedule_tick
            .max(self.config.stale_grace.min(Duration::from_secs(60)));
        {
            let mut checked = self
                .notifier
                .stale_checked
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if checked.is_some_and(|at| at.elapsed() < every) {
                return;
            }
            *checked = Some(Instant::now());
        }
        let grace = self.config.stale_grace;
        let stale = match self
            .store
            .stale_unnoted(Utc::now(), grace, STALE_BATCH)
            .await
        {
            Ok(ids) => ids,
            Err(e) => {
                tracing::warn!(error = %e, "could not look for stale mirrors");
                return;
            }
        };
        for repo_id in stale {
            match self.store.note_stale(repo_id, grace, Utc::now()).await {
                Ok(queued) => self.queued(repo_id, &Subject::Sync, &queued),
                Err(e) => tracing::warn!(error = %e, repo_id, "could not record a stale mirror"),
            }
        }
    }

    /// Who may manage targets of `owner` (`None`: operator-wide): the hub's admins, and for an
    /// owner, its admins. Returns the owner's account id.
    async fn check_manager(
        &self,
        actor: &Actor,
        owner: Option<&str>,
    ) -> Result<Option<i64>, HubError> {
        if *actor == Actor::Anonymous {
            return Err(HubError::Unauthorized(NEED_TOKEN.into()));
        }
        let Some(owner) = owner else {
            if is_site_admin(actor) {
                return Ok(None);
            }
            return Err(HubError::Forbidden(
                "only the hub's admins (the admin token, or a site admin's admin-scoped token) manage operator-wide notification targets; an owner's admins may add targets for the owner's repositories with \"owner\"".into(),
            ));
        };
        let account = self.store.get_account(owner).await?.ok_or_else(|| {
            HubError::invalid(
                ErrorCode::AccountNotFound,
                "owner",
                format!("no user or organization is named {owner:?}"),
            )
        })?;
        let role = self.org_role(actor, &account.name).await?;
        match actor.owner_access(&account.name, role) {
            Some(a) if a.includes(Access::Admin) => Ok(Some(account.id)),
            _ => Err(HubError::Forbidden(format!(
                "only admins of {} (and the hub's admins) manage its notification targets",
                account.name
            ))),
        }
    }

    /// Parses a target URL: http or https, a host, no fragment, within the length limit, and
    /// a host whose addresses the policy allows (checked again at every delivery, on the
    /// address connected to). Returns the URL and its origin (what may be shown).
    async fn check_target_url(&self, text: &str) -> Result<(SecretString, String), HubError> {
        let invalid = |code, message: String| HubError::invalid(code, "url", message);
        if text.len() > MAX_URL_LEN || text.chars().any(char::is_control) {
            return Err(invalid(
                ErrorCode::InvalidUrl,
                format!(
                    "the url must be at most {MAX_URL_LEN} characters, without control characters"
                ),
            ));
        }
        let url = url::Url::parse(text).map_err(|e| {
            invalid(
                ErrorCode::InvalidUrl,
                format!("the url is not valid ({e}): give an https:// address"),
            )
        })?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(invalid(
                ErrorCode::UnsupportedScheme,
                format!(
                    "the url's scheme {:?} is not supported: use https:// (or http://)",
                    url.scheme()
                ),
            ));
        }
        let Some(host) = url.host_str().filter(|h| !h.is_empty()) else {
            return Err(invalid(
                ErrorCode::InvalidUrl,
                "the url names no host".into(),
            ));
        };
        let port = url.port_or_known_default().unwrap_or(443);
        self.resolve_allowed(host, port).await?;
        let origin = url.origin().ascii_serialization();
        Ok((SecretString::from(url.to_string()), origin))
    }

    /// Resolves `host` and returns the addresses the policy allows; `url_not_allowed` (field
    /// `url`) when it resolves only to refused ones. A name that does not resolve now is let
    /// through: it is checked again at each delivery.
    async fn resolve_allowed(&self, host: &str, port: u16) -> Result<Vec<SocketAddr>, HubError> {
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let candidates: Vec<SocketAddr> = match bare.parse::<std::net::IpAddr>() {
            Ok(ip) => vec![SocketAddr::new(ip, port)],
            Err(_) => match tokio::time::timeout(
                self.config.notifications.timeout,
                tokio::net::lookup_host((bare, port)),
            )
            .await
            {
                Ok(Ok(addrs)) => addrs.collect(),
                _ => return Ok(vec![]),
            },
        };
        let policy = &self.engine.config().policy;
        let mut allowed = Vec::new();
        let mut refused = None;
        for addr in candidates {
            match policy.check(bare, port, addr.ip()) {
                Ok(()) => allowed.push(addr),
                Err(r) => {
                    refused.get_or_insert((addr.ip(), r));
                }
            }
        }
        match (allowed.is_empty(), refused) {
            (true, Some((ip, refusal))) => Err(HubError::invalid(
                ErrorCode::UrlNotAllowed,
                "url",
                format!(
                    "the host {bare} resolves to {ip}, {}, which this hub may not connect to: use a public address, or ask the operator to allow this host (MIRRORHUB_ALLOWED_HOSTS)",
                    refusal.describe()
                ),
            )),
            _ => Ok(allowed),
        }
    }
}

const NEED_TOKEN: &str = "send a token: `Authorization: Bearer <token>`";

fn is_site_admin(actor: &Actor) -> bool {
    actor
        .site_access()
        .is_some_and(|a| a.includes(Access::Admin))
}

/// `None` or empty: every event. Unknown words and `test` are refused, naming the words.
fn parse_events(words: Option<&[String]>) -> Result<Option<Vec<NotifyEvent>>, HubError> {
    let Some(words) = words.filter(|w| !w.is_empty()) else {
        return Ok(None);
    };
    let mut events = Vec::new();
    for word in words {
        let word = word.trim();
        match NotifyEvent::parse(word).filter(|e| *e != NotifyEvent::Test) {
            Some(e) if !events.contains(&e) => events.push(e),
            Some(_) => {}
            None => {
                let known: Vec<&str> = NotifyEvent::subscribable().map(|e| e.as_str()).collect();
                let shown: String = word.chars().take(40).collect();
                return Err(HubError::invalid(
                    ErrorCode::InvalidRequest,
                    "events",
                    format!(
                        "unknown event {shown:?}: use some of {} (or leave events out for all)",
                        known.join(", ")
                    ),
                ));
            }
        }
    }
    Ok(Some(events))
}

fn check_secret(secret: &str) -> Result<SecretString, HubError> {
    if secret.is_empty() || secret.len() > MAX_SECRET_LEN || secret.chars().any(char::is_control) {
        return Err(HubError::invalid(
            ErrorCode::InvalidRequest,
            "secret",
            format!("the secret must be 1 to {MAX_SECRET_LEN} characters without control characters (leave it out to have one generated)"),
        ));
    }
    Ok(SecretString::from(secret.to_owned()))
}

fn check_recipients(to: &[String]) -> Result<Vec<String>, HubError> {
    let invalid = |m: String| HubError::invalid(ErrorCode::InvalidRequest, "to", m);
    if to.is_empty() {
        return Err(invalid(
            "an email target needs one or more recipients in \"to\"".into(),
        ));
    }
    if to.len() > MAX_RECIPIENTS {
        return Err(invalid(format!(
            "at most {MAX_RECIPIENTS} recipients per target"
        )));
    }
    let mut addresses = Vec::new();
    for text in to {
        let address = smtp::check_address(text).map_err(invalid)?;
        if !addresses.contains(&address) {
            addresses.push(address);
        }
    }
    Ok(addresses)
}

fn check_description(text: &str) -> Result<String, HubError> {
    let text = text.trim();
    if text.chars().count() > MAX_DESCRIPTION_LEN || text.chars().any(char::is_control) {
        return Err(HubError::invalid(
            ErrorCode::InvalidRequest,
            "description",
            format!("the description must be at most {MAX_DESCRIPTION_LEN} characters on one line"),
        ));
    }
    Ok(text.to_owned())
}

/// Hides everything of a URL but its origin, for logs (a Slack URL is a credential).
pub(crate) fn origin_of(url: &SecretString) -> String {
    url::Url::parse(url.expose_secret())
        .map(|u| u.origin().ascii_serialization())
        .unwrap_or_else(|_| "(invalid url)".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_checked_words() {
        assert_eq!(parse_events(None).unwrap(), None);
        assert_eq!(parse_events(Some(&[])).unwrap(), None);
        let words = vec![
            "sync_failed".to_owned(),
            " paused ".into(),
            "sync_failed".into(),
        ];
        assert_eq!(
            parse_events(Some(&words)).unwrap(),
            Some(vec![NotifyEvent::SyncFailed, NotifyEvent::Paused])
        );
        for bad in ["test", "sync_broke", ""] {
            let e = parse_events(Some(&[bad.to_owned()])).unwrap_err();
            assert_eq!(e.field(), Some("events"), "{bad}");
        }
    }

    #[test]
    fn recipients_secrets_and_descriptions() {
        assert_eq!(
            check_recipients(&["a@example.org".into(), "a@example.org".into()]).unwrap(),
            vec!["a@example.org".to_owned()]
        );
        assert_eq!(check_recipients(&[]).unwrap_err().field(), Some("to"));
        assert!(check_secret("").is_err() && check_secret("a\nb").is_err());
        assert!(check_secret(&"x".repeat(257)).is_err());
        assert!(check_description("two\nlines").is_err());
        assert_eq!(check_description("  ops channel ").unwrap(), "ops channel");
    }

    #[test]
    fn origins_hide_paths_and_tokens() {
        let url = SecretString::from("https://hooks.slack.com/services/T0/B0/XXXX".to_owned());
        assert_eq!(origin_of(&url), "https://hooks.slack.com");
    }
}

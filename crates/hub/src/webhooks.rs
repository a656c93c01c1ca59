//! Push webhooks: a delivery is authenticated on its raw bytes, parsed, matched to the
//! repositories it concerns, and recorded with the sync it asks for in one store transaction.
//! Nothing here runs git: the workers do, woken at once.
//!
//! Two ways in: a repository's own URL (`/hooks/repos/{owner}/{name}`, signed with that
//! repository's secret, from any forge) and one URL per forge for a whole organization or
//! instance (`/hooks/{forge}`, signed with an operator secret), matched to every repository
//! whose upstream is the pushed one by `repo_match_key`.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use mirrorhub_core::repo_key::repo_match_keys;
use mirrorhub_core::Mode;
use mirrorhub_forges::{ForgeApis, ForgeKind, ForgeRepo};
use mirrorhub_store::{DeliveryEntry, DeliveryOutcome, NewDelivery, Repo, StoreError, WebhookHook};
use mirrorhub_webhooks::{Endpoint, Event, Forge};
use secrecy::{ExposeSecret, SecretString};

use crate::Hub;

/// How long a delivery id is remembered: a redelivery within this window does nothing.
pub const REPLAY_WINDOW: Duration = Duration::from_secs(3 * 24 * 3600);
/// How long delivery log lines are kept.
pub const DELIVERY_LOG_RETENTION: Duration = Duration::from_secs(30 * 24 * 3600);

/// The operator's webhook settings.
#[derive(Debug, Clone, Default)]
pub struct WebhookConfig {
    /// Secrets of the organization-level endpoints, several at once while one is rotated.
    pub github_secrets: Vec<SecretString>,
    pub gitlab_tokens: Vec<SecretString>,
    pub gitea_secrets: Vec<SecretString>,
    pub bitbucket_secrets: Vec<SecretString>,
    pub generic_secrets: Vec<SecretString>,
    /// Create the push webhook on GitHub, GitLab and Gitea upstreams when the mirror's token
    /// may, and remove it with the mirror.
    pub auto_register: bool,
    pub forges: ForgeApis,
}

impl WebhookConfig {
    fn endpoint_secrets(&self, endpoint: Endpoint) -> &[SecretString] {
        match endpoint {
            Endpoint::GitHub => &self.github_secrets,
            Endpoint::GitLab => &self.gitlab_tokens,
            Endpoint::Gitea => &self.gitea_secrets,
            Endpoint::Bitbucket => &self.bitbucket_secrets,
            Endpoint::Generic => &self.generic_secrets,
            Endpoint::Repository => &[],
        }
    }
}

/// The setting that enables an organization-level endpoint, for the operator's error message.
fn endpoint_setting(endpoint: Endpoint) -> &'static str {
    match endpoint {
        Endpoint::GitHub => "MIRRORHUB_GITHUB_WEBHOOK_SECRET",
        Endpoint::GitLab => "MIRRORHUB_GITLAB_WEBHOOK_TOKEN",
        Endpoint::Gitea => "MIRRORHUB_GITEA_WEBHOOK_SECRET",
        Endpoint::Bitbucket => "MIRRORHUB_BITBUCKET_WEBHOOK_SECRET",
        Endpoint::Generic | Endpoint::Repository => "MIRRORHUB_GENERIC_WEBHOOK_SECRET",
    }
}

/// A delivery as it arrived.
pub struct IncomingWebhook<'a> {
    pub endpoint: Endpoint,
    /// owner/name for a repository's own URL.
    pub repo: Option<(&'a str, &'a str)>,
    pub headers: &'a http::HeaderMap,
    pub body: &'a [u8],
}

/// How a delivery was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookReceipt {
    /// Authenticated and recorded. Whether it matched any repository is not told: the answer
    /// must not reveal which repositories the hub has.
    Accepted,
    /// A ping or test event.
    Pong,
    /// This delivery id was handled before; nothing was done.
    Duplicate,
}

/// Why a delivery was refused. Messages are for the sender's delivery log: they never say
/// whether a repository exists.
#[derive(Debug, thiserror::Error)]
pub enum WebhookRefusal {
    #[error("the webhook signature or token is missing or wrong")]
    Unauthorized,
    #[error("this webhook endpoint is not enabled: the operator sets {0} to enable it")]
    NotEnabled(&'static str),
    #[error("{0}")]
    Malformed(String),
    /// Our trouble (the database): the sender should retry.
    #[error("the hub cannot take deliveries right now; retry later")]
    Unavailable(#[source] StoreError),
}

impl From<StoreError> for WebhookRefusal {
    fn from(e: StoreError) -> Self {
        Self::Unavailable(e)
    }
}

impl Hub {
    /// Authenticates, parses, matches and records one delivery. Never runs git; a push wakes a
    /// worker.
    pub async fn receive_webhook(
        self: &Arc<Self>,
        incoming: IncomingWebhook<'_>,
    ) -> Result<WebhookReceipt, WebhookRefusal> {
        let forge = mirrorhub_webhooks::detect(incoming.endpoint, incoming.headers)
            .map_err(|e| WebhookRefusal::Malformed(e.to_string()))?;

        // Authenticate before anything looks at the body.
        let own_repo = match incoming.repo {
            Some((owner, name)) => {
                // An unknown repository is refused exactly like a wrong signature.
                let repo = self
                    .store
                    .get_repo(owner, name)
                    .await?
                    .ok_or(WebhookRefusal::Unauthorized)?;
                let secret = repo
                    .webhook_secret
                    .as_ref()
                    .ok_or(WebhookRefusal::Unauthorized)?;
                verify(forge, &incoming, &[secret])?;
                Some(repo)
            }
            None => {
                let secrets = self.config.webhooks.endpoint_secrets(incoming.endpoint);
                if secrets.is_empty() {
                    return Err(WebhookRefusal::NotEnabled(endpoint_setting(
                        incoming.endpoint,
                    )));
                }
                verify(forge, &incoming, &secrets.iter().collect::<Vec<_>>())?;
                None
            }
        };

        let delivery_id = mirrorhub_webhooks::delivery_id(forge, incoming.headers);
        let event_name = mirrorhub_webhooks::event_name(forge, incoming.headers)
            .unwrap_or_else(|| "unknown".to_owned());
        let payload = json_payload(incoming.headers, incoming.body)?;
        let event = mirrorhub_webhooks::parse(forge, incoming.headers, &payload)
            .map_err(|e| WebhookRefusal::Malformed(e.to_string()))?;

        let (urls, is_ping, is_push) = match &event {
            Event::Push { repo_urls, .. } => (repo_urls.as_slice(), false, true),
            Event::Ping { repo_urls } => (repo_urls.as_slice(), true, false),
            // Comments are the comment bot's; organization and installation events are mirror
            // sets'; other events are answered and ignored.
            Event::Comment(_)
            | Event::Namespace(_)
            | Event::Installation(_)
            | Event::Ignored { .. } => (&[][..], false, false),
        };
        let operator_endpoint = own_repo.is_none();
        let targets = match own_repo {
            Some(repo) => vec![repo],
            None if urls.is_empty() => vec![],
            None => {
                self.store
                    .repos_by_match_keys(&repo_match_keys(urls))
                    .await?
            }
        };
        let mut entries: Vec<DeliveryEntry> = targets
            .iter()
            .map(|repo| entry_for(repo, is_push, is_ping, &event_name))
            .collect();
        // When the delivery arrived: a sync started after this sees the push (the store
        // queues nothing then), however long the checks below and the write take.
        let now = Utc::now();
        // A push the mirror already holds (a redelivery, or one a sync already fetched) needs
        // no sync: that is what keeps a burst of deliveries to one sync and one follow-up.
        if let Some(tip) = is_push
            .then(|| mirrorhub_webhooks::pushed_tip(&payload))
            .flatten()
        {
            for entry in entries.iter_mut().filter(|e| e.sync) {
                let path = self.repo_path(entry.repo_id);
                if self
                    .engine
                    .has_ref_at(&path, &tip.name, tip.new.as_deref())
                    .await
                {
                    entry.sync = false;
                    entry.result = match &tip.new {
                        Some(id) => format!("already mirrored: {} is at {}", tip.name, &id[..12]),
                        None => format!("already mirrored: {} is deleted", tip.name),
                    };
                }
            }
        }
        let outcome = self
            .store
            .record_delivery(
                &NewDelivery {
                    forge: forge.as_str().to_owned(),
                    delivery_id: delivery_id.clone(),
                    event: event_name.clone(),
                    entries,
                },
                now,
            )
            .await?;
        let DeliveryOutcome::Recorded { syncs_due } = outcome else {
            tracing::debug!(forge = forge.as_str(), delivery_id = ?delivery_id, "webhook redelivered; ignored");
            return Ok(WebhookReceipt::Duplicate);
        };
        let queued = syncs_due.len();
        for due in syncs_due {
            self.wake_at(due, now);
        }
        match event {
            Event::Comment(comment) => self.spawn_comment(forge, comment),
            Event::Namespace(change) => {
                let forge = listing_forge(forge);
                let mut sets = self.namespace_changed(forge, &change.path).await;
                if let Some(old) = &change.old_path {
                    sets += self.namespace_changed(forge, old).await;
                }
                tracing::info!(action = %change.action, path = %change.path, sets, "organization event: mirror sets listed again");
            }
            // Only the operator's endpoint may make sets: a repository's own secret may not.
            Event::Installation(installation) if operator_endpoint => {
                self.installation_changed(&installation).await;
            }
            _ => {}
        }
        tracing::info!(
            forge = forge.as_str(),
            event = %event_name,
            delivery_id = ?delivery_id,
            matched = targets.len(),
            queued,
            "webhook received"
        );
        Ok(if is_ping {
            WebhookReceipt::Pong
        } else {
            WebhookReceipt::Accepted
        })
    }

    /// Wakes a worker when a queued job becomes due: now, or after a delay (idle workers
    /// otherwise only look at the queue every poll interval).
    fn wake_at(&self, due: chrono::DateTime<Utc>, now: chrono::DateTime<Utc>) {
        match (due - now).to_std() {
            Ok(delay) if !delay.is_zero() => {
                let wake = self.wake.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(delay).await;
                    wake.notify_one();
                });
            }
            _ => self.wake.notify_one(),
        }
    }

    /// Forgets old delivery ids and log lines; the scheduler calls it now and then.
    pub async fn prune_webhook_deliveries(&self) -> Result<u64, StoreError> {
        let now = Utc::now();
        let ago = |d: Duration| now - chrono::Duration::from_std(d).unwrap_or_default();
        self.store
            .prune_deliveries(ago(REPLAY_WINDOW), ago(DELIVERY_LOG_RETENTION))
            .await
    }

    /// The URL an upstream sends a repository's pushes to.
    pub fn webhook_url(&self, repo: &Repo) -> String {
        format!(
            "{}/hooks/repos/{}/{}",
            self.config.public_url, repo.owner, repo.name
        )
    }

    /// The forge API that can manage this repository's webhook, when auto-registration is on
    /// and the upstream is on a forge the hub knows.
    fn managed_forge(&self, repo: &Repo) -> Option<ForgeRepo> {
        if !self.config.webhooks.auto_register || repo.mode != Mode::Mirror {
            return None;
        }
        let url = url::Url::parse(&repo.upstream_url).ok()?;
        self.forges.forge_for(&url)
    }

    /// Creates the push webhook on the upstream when its forge's API allows and the mirror has
    /// a token; records the outcome on the repository. Failing here never fails the create:
    /// the user is shown why and the manual steps.
    pub(crate) async fn register_webhook(&self, repo: &Repo) -> Option<WebhookHook> {
        let forge_repo = self.managed_forge(repo)?;
        let credentials = repo.credentials.as_ref()?;
        let secret = repo.webhook_secret.as_ref()?;
        let hook = match self
            .forges
            .create_push_hook(
                &forge_repo,
                &credentials.secret,
                &self.webhook_url(repo),
                secret,
            )
            .await
        {
            Ok(id) => {
                tracing::info!(
                    repo_id = repo.id,
                    forge = forge_name(forge_repo.kind),
                    "webhook created on the upstream"
                );
                WebhookHook::Registered {
                    forge: forge_name(forge_repo.kind).to_owned(),
                    id,
                }
            }
            Err(e) => {
                tracing::warn!(repo_id = repo.id, error = %e, "could not create the webhook on the upstream");
                WebhookHook::Failed(e.to_string())
            }
        };
        if let Err(e) = self.store.set_webhook_hook(repo.id, &hook).await {
            tracing::warn!(repo_id = repo.id, error = %e, "could not record the upstream webhook");
        }
        Some(hook)
    }

    /// Removes the webhook the hub created on the upstream. A failure is logged and does not
    /// stop the deletion: the upstream then delivers to a URL that answers 401.
    pub(crate) async fn unregister_webhook(&self, repo: &Repo) {
        let WebhookHook::Registered { id, .. } = &repo.webhook.hook else {
            return;
        };
        let (Some(credentials), Ok(url)) = (
            repo.credentials.as_ref(),
            url::Url::parse(&repo.upstream_url),
        ) else {
            return;
        };
        let Some(forge_repo) = self.forges.forge_for(&url) else {
            return;
        };
        match self
            .forges
            .delete_hook(&forge_repo, &credentials.secret, id)
            .await
        {
            Ok(()) => tracing::info!(repo_id = repo.id, "webhook removed from the upstream"),
            Err(e) => {
                tracing::warn!(repo_id = repo.id, error = %e, "could not remove the webhook from the upstream; remove it by hand")
            }
        }
    }
}

fn verify(
    forge: Forge,
    incoming: &IncomingWebhook<'_>,
    secrets: &[&SecretString],
) -> Result<(), WebhookRefusal> {
    let secrets: Vec<&[u8]> = secrets
        .iter()
        .map(|s| s.expose_secret().as_bytes())
        .collect();
    mirrorhub_webhooks::verify(forge, incoming.headers, incoming.body, &secrets)
        .map_err(|_| WebhookRefusal::Unauthorized)
}

/// The JSON of a delivery. GitHub and Gitea can also send `application/x-www-form-urlencoded`
/// with the JSON in a `payload` field (the signature still covers the raw body).
fn json_payload<'a>(
    headers: &http::HeaderMap,
    body: &'a [u8],
) -> Result<std::borrow::Cow<'a, [u8]>, WebhookRefusal> {
    let is_form = headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim_start()
                .starts_with("application/x-www-form-urlencoded")
        });
    if !is_form {
        return Ok(std::borrow::Cow::Borrowed(body));
    }
    url::form_urlencoded::parse(body)
        .find(|(name, _)| name == "payload")
        .map(|(_, json)| std::borrow::Cow::Owned(json.into_owned().into_bytes()))
        .ok_or_else(|| {
            WebhookRefusal::Malformed(
                "the form-encoded delivery has no 'payload' field: set the webhook's content type to application/json".to_owned(),
            )
        })
}

/// What a delivery does to one repository it concerns.
fn entry_for(repo: &Repo, is_push: bool, is_ping: bool, event: &str) -> DeliveryEntry {
    let (sync, result) = if is_ping {
        (false, "connected".to_owned())
    } else if !is_push {
        (
            false,
            format!("ignored: {event} events do not trigger syncs"),
        )
    } else if repo.mode == Mode::Migrate {
        tracing::info!(
            repo_id = repo.id,
            "push webhook for a migrated repository ignored: it is the primary now"
        );
        (
            false,
            "ignored: the repository was migrated and is the primary now".to_owned(),
        )
    } else if let Some(reason) = &repo.paused_reason {
        (
            false,
            format!("ignored: syncing is paused ({reason}); sync by hand or change the settings to resume"),
        )
    } else {
        (true, "sync queued".to_owned())
    };
    DeliveryEntry {
        repo_id: repo.id,
        sync,
        result,
    }
}

pub(crate) fn forge_name(kind: ForgeKind) -> &'static str {
    match kind {
        ForgeKind::GitHub => "github",
        ForgeKind::GitLab => "gitlab",
        ForgeKind::Gitea => "gitea",
    }
}

/// The forge whose API lists the namespace an organization event came from.
fn listing_forge(forge: mirrorhub_webhooks::Forge) -> mirrorhub_forges::ListingForge {
    use mirrorhub_forges::ListingForge;
    use mirrorhub_webhooks::Forge;
    match forge {
        Forge::GitHub | Forge::Generic => ListingForge::GitHub,
        Forge::GitLab => ListingForge::GitLab,
        Forge::Gitea | Forge::Forgejo => ListingForge::Gitea,
        Forge::BitbucketCloud | Forge::BitbucketServer => ListingForge::Bitbucket,
    }
}

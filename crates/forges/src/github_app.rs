//! The comment bot as a GitHub App: installation access tokens, made and cached.
//!
//! The flow GitHub documents: a JWT signed with the App's private key (RS256; `iss` the App id,
//! `iat` 60 s in the past against clock drift, `exp` 9 minutes ahead, under GitHub's 10-minute
//! cap) authenticates `GET /repos/{owner}/{repo}/installation`, which names the installation;
//! `POST /app/installations/{id}/access_tokens` then gives a token for that installation's
//! repositories, valid one hour (`expires_at`). octocrab makes and signs the JWT for each
//! request (`OctocrabBuilder::app`); the cache is ours, so that the refresh margin is ours and
//! a token serves every repository of its installation.
//!
//! A mirror set made from an installation names the installation by its id instead
//! (`installation_token`): no look-up, the same `access_tokens` call and the same cache.
//!
//! Tokens are cached per installation and handed out while more than
//! [`REFRESH_MARGIN`] of their life remains; after that the next call makes a new one.
//! Which installation a repository is in is cached too, so a call within a token's life makes
//! no request at all. The cache sits behind one async mutex held across a refresh: concurrent
//! calls wait for the one refresh rather than each minting a token.

use std::collections::HashMap;
use std::fmt;

use chrono::{DateTime, TimeDelta, Utc};
use http::header::ACCEPT;
use octocrab::models::AppId;
use octocrab::{EncodingKey, Octocrab};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use url::Url;

use crate::{ForgeError, ForgeKind, ForgeRepo};

/// A cached token is refreshed when less than this remains of its life.
pub(crate) const REFRESH_MARGIN: TimeDelta = TimeDelta::minutes(5);

const MEDIA_TYPE: &str = "application/vnd.github+json";

/// One GitHub App's credentials and its installation tokens.
pub(crate) struct GitHubApp {
    app_id: u64,
    /// `None` when the configured key is not an RSA private key in PEM form: every call then
    /// fails with [`ForgeError::InvalidAppKey`], before any request.
    key: Option<EncodingKey>,
    cache: tokio::sync::Mutex<Cache>,
}

#[derive(Default)]
struct Cache {
    /// `owner/name`, lower-cased (GitHub names are case-insensitive) → installation id.
    installations: HashMap<String, u64>,
    /// Installation id → its latest token.
    tokens: HashMap<u64, InstallationToken>,
}

struct InstallationToken {
    token: SecretString,
    expires_at: DateTime<Utc>,
}

impl InstallationToken {
    fn fresh(&self, now: DateTime<Utc>) -> bool {
        self.expires_at - now > REFRESH_MARGIN
    }
}

#[derive(Deserialize)]
struct Installation {
    id: u64,
}

/// The answer of `POST /app/installations/{id}/access_tokens`. No `Debug`: it holds the token.
#[derive(Deserialize)]
struct AccessToken {
    token: String,
    expires_at: String,
}

impl GitHubApp {
    /// The App `app_id` with `private_key` (the PEM GitHub issues: PKCS#1 `RSA PRIVATE KEY`, or
    /// PKCS#8 `PRIVATE KEY`).
    pub(crate) fn new(app_id: u64, private_key: &SecretString) -> GitHubApp {
        let key = EncodingKey::from_rsa_pem(private_key.expose_secret().trim().as_bytes()).ok();
        if key.is_none() {
            tracing::warn!(
                app_id,
                "the GitHub App private key is not an RSA private key in PEM form; the comment bot cannot act on GitHub"
            );
        }
        GitHubApp {
            app_id,
            key,
            cache: tokio::sync::Mutex::new(Cache::default()),
        }
    }

    /// A token of the App's installation on `repo`, from the cache while it has more than
    /// [`REFRESH_MARGIN`] to live, else a new one.
    pub(crate) async fn token(
        &self,
        api: &Url,
        repo: &ForgeRepo,
    ) -> Result<SecretString, ForgeError> {
        let (owner, name) = repo.owner_name().ok_or_else(|| ForgeError::NotFound {
            forge: ForgeKind::GitHub,
            repo: repo.path.clone(),
            hook_id: None,
        })?;
        let repo_key = repo.path.to_ascii_lowercase();
        let mut cache = self.cache.lock().await;
        let known = cache.installations.get(&repo_key).copied();
        if let Some(token) = known.and_then(|id| cache.tokens.get(&id)) {
            if token.fresh(Utc::now()) {
                return Ok(token.token.clone());
            }
        }

        let crab = self.client(api)?;
        let installation = match known {
            Some(id) => id,
            None => {
                let found: Installation = crab
                    .get(format!("/repos/{owner}/{name}/installation"), None::<&()>)
                    .await
                    .map_err(|e| app_error(e, repo))?;
                cache.installations.insert(repo_key.clone(), found.id);
                found.id
            }
        };
        // Another repository of the same installation may have made a token already.
        if let Some(token) = cache.tokens.get(&installation) {
            if token.fresh(Utc::now()) {
                return Ok(token.token.clone());
            }
        }

        self.mint(&crab, &mut cache, installation)
            .await
            .map_err(|e| {
                // The installation may be gone (uninstalled, reinstalled under another id):
                // ask again next time.
                cache.installations.remove(&repo_key);
                match e {
                    Minting::Refused(e) => app_error(e, repo),
                    Minting::Invalid(e) => e,
                }
            })
    }

    /// A token of the App's installation `installation`, from the cache while it has more than
    /// [`REFRESH_MARGIN`] to live, else a new one.
    pub(crate) async fn installation_token(
        &self,
        api: &Url,
        installation: u64,
    ) -> Result<SecretString, ForgeError> {
        let mut cache = self.cache.lock().await;
        if let Some(token) = cache.tokens.get(&installation) {
            if token.fresh(Utc::now()) {
                return Ok(token.token.clone());
            }
        }
        let crab = self.client(api)?;
        self.mint(&crab, &mut cache, installation)
            .await
            .map_err(|e| match e {
                Minting::Refused(e) => installation_error(e, installation),
                Minting::Invalid(e) => e,
            })
    }

    /// `POST /app/installations/{id}/access_tokens`: a new token, cached. A failure drops the
    /// installation's cached token.
    async fn mint(
        &self,
        crab: &Octocrab,
        cache: &mut Cache,
        installation: u64,
    ) -> Result<SecretString, Minting> {
        let made: Result<AccessToken, _> = crab
            .post(
                format!("/app/installations/{installation}/access_tokens"),
                None::<&()>,
            )
            .await;
        let made = match made {
            Ok(made) => made,
            Err(e) => {
                cache.tokens.remove(&installation);
                return Err(Minting::Refused(e));
            }
        };
        let token = SecretString::from(made.token);
        let expires_at = DateTime::parse_from_rfc3339(&made.expires_at)
            .map_err(|e| {
                Minting::Invalid(ForgeError::InvalidResponse {
                    forge: ForgeKind::GitHub,
                    detail: format!("expires_at of the installation token: {e}"),
                })
            })?
            .with_timezone(&Utc);
        tracing::info!(
            app_id = self.app_id,
            installation,
            %expires_at,
            "made a GitHub App installation token"
        );
        cache.tokens.insert(
            installation,
            InstallationToken {
                token: token.clone(),
                expires_at,
            },
        );
        Ok(token)
    }

    /// Drops the cached token of `repo`'s installation (GitHub refused it: revoked, or the
    /// installation's permissions changed), so that the next call makes a new one.
    pub(crate) async fn forget(&self, repo: &ForgeRepo) {
        let mut cache = self.cache.lock().await;
        if let Some(id) = cache.installations.remove(&repo.path.to_ascii_lowercase()) {
            cache.tokens.remove(&id);
        }
    }

    /// Drops the cached token of installation `installation`.
    pub(crate) async fn forget_installation(&self, installation: u64) {
        self.cache.lock().await.tokens.remove(&installation);
    }

    /// An octocrab that authenticates as the App: `Authorization: Bearer <JWT>`, a JWT made for
    /// each request, sent only to the API's own host.
    fn client(&self, api: &Url) -> Result<Octocrab, ForgeError> {
        let key = self.key.clone().ok_or(ForgeError::InvalidAppKey)?;
        Octocrab::builder()
            .base_uri(api.as_str())
            .map_err(|e| ForgeError::unreachable_no_token(ForgeKind::GitHub, &e))?
            .app(AppId(self.app_id), key)
            .add_header(ACCEPT, MEDIA_TYPE.to_owned())
            .build()
            .map_err(|e| ForgeError::unreachable_no_token(ForgeKind::GitHub, &e))
    }
}

impl fmt::Debug for GitHubApp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GitHubApp")
            .field("app_id", &self.app_id)
            .field("key_usable", &self.key.is_some())
            .finish_non_exhaustive()
    }
}

/// Why no token was made.
enum Minting {
    /// GitHub refused, or could not be reached.
    Refused(octocrab::Error),
    /// GitHub answered something unreadable.
    Invalid(ForgeError),
}

/// An error of making a token for an installation named by its id.
fn installation_error(error: octocrab::Error, installation_id: u64) -> ForgeError {
    let forge = ForgeKind::GitHub;
    match error {
        octocrab::Error::GitHub { source, .. } => match source.status_code.as_u16() {
            401 => ForgeError::AppRefused,
            status @ (403 | 404) => ForgeError::InstallationUnavailable {
                installation_id,
                status,
            },
            status => ForgeError::Unexpected { forge, status },
        },
        octocrab::Error::JWT { .. } => ForgeError::InvalidAppKey,
        e @ (octocrab::Error::Json { .. } | octocrab::Error::Serde { .. }) => {
            ForgeError::invalid_response_no_token(forge, &e)
        }
        e => ForgeError::unreachable_no_token(forge, &e),
    }
}

/// An error of the App's own calls (installation look-up, token creation).
fn app_error(error: octocrab::Error, repo: &ForgeRepo) -> ForgeError {
    let forge = ForgeKind::GitHub;
    match error {
        octocrab::Error::GitHub { source, .. } => match source.status_code.as_u16() {
            401 => ForgeError::AppRefused,
            403 => ForgeError::BotForbidden {
                forge,
                repo: repo.path.clone(),
            },
            404 => ForgeError::AppNotInstalled {
                repo: repo.path.clone(),
            },
            status => ForgeError::Unexpected { forge, status },
        },
        // Signing the JWT failed: the key parsed as PEM but is no usable RSA key.
        octocrab::Error::JWT { .. } => ForgeError::InvalidAppKey,
        e @ (octocrab::Error::Json { .. } | octocrab::Error::Serde { .. }) => {
            ForgeError::invalid_response_no_token(forge, &e)
        }
        e => ForgeError::unreachable_no_token(forge, &e),
    }
}

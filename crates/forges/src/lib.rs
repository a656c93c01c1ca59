//! Clients for the REST APIs of the forges mirrorhub mirrors from: GitHub (and GitHub
//! Enterprise) through `octocrab`, GitLab through the `gitlab` crate's endpoints, Gitea and
//! Forgejo over plain HTTP.
//!
//! - [`ForgeApis`]: where the forges' APIs are, and [`ForgeApis::forge_for`]: which forge
//!   hosts an upstream clone URL, as a [`ForgeRepo`].
//! - [`Forges`]: the facade the hub keeps; it holds the HTTP client and dispatches each call to
//!   the forge's module (`github`, `gitlab`, `gitea`). [`ForgeApis`] has the same calls as
//!   conveniences that build a [`Forges`] for one call.
//! - [`ForgeError`]: what went wrong, in terms a user can act on.
//!
//! Tokens are [`SecretString`]s end to end: they go into request headers marked sensitive and
//! into no error, `Debug` output or log line. Every call is bounded by a timeout (10 s unless
//! [`Forges::with_timeout`] says otherwise).

#![forbid(unsafe_code)]

mod apis;
mod error;
mod gitea;
mod github;
mod gitlab;

use std::future::Future;
use std::time::Duration;

use secrecy::SecretString;

pub use apis::{ForgeApis, ForgeKind, ForgeRepo};
pub use error::ForgeError;

/// The `User-Agent` of the requests made with reqwest (GitLab, Gitea). octocrab sends its own
/// (`octocrab`) and would send both if we added ours.
const USER_AGENT: &str = concat!("mirrorhub/", env!("CARGO_PKG_VERSION"));

/// The forges' APIs with an HTTP client: what the hub keeps to call them. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Forges {
    apis: ForgeApis,
    http: reqwest::Client,
    timeout: Duration,
}

impl Forges {
    /// How long one call to a forge may take, connection included.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

    /// Clients for `apis`, each call bounded by [`DEFAULT_TIMEOUT`](Self::DEFAULT_TIMEOUT).
    pub fn new(apis: ForgeApis) -> Forges {
        Forges {
            apis,
            http: http_client(),
            timeout: Self::DEFAULT_TIMEOUT,
        }
    }

    /// The same clients with another bound on each call.
    pub fn with_timeout(self, timeout: Duration) -> Forges {
        Forges { timeout, ..self }
    }

    pub fn apis(&self) -> &ForgeApis {
        &self.apis
    }

    /// See [`ForgeApis::forge_for`].
    pub fn forge_for(&self, upstream: &url::Url) -> Option<ForgeRepo> {
        self.apis.forge_for(upstream)
    }

    /// Creates a webhook on `repo` that POSTs JSON to `hook_url`, signed with `secret`, for
    /// pushes (branches and tags) and comments (GitHub `push` + `issue_comment`; GitLab push,
    /// tag push and note events; Gitea `push` + `issue_comment`), active, with TLS verification.
    /// Returns the forge's id of the hook, as text, for [`delete_hook`](Self::delete_hook).
    ///
    /// Not idempotent: GitHub refuses a second hook with the same URL (`Unexpected { status:
    /// 422 }`); GitLab and Gitea create a second one.
    pub async fn create_push_hook(
        &self,
        repo: &ForgeRepo,
        token: &SecretString,
        hook_url: &str,
        secret: &SecretString,
    ) -> Result<String, ForgeError> {
        let id = match repo.kind {
            ForgeKind::GitHub => {
                self.bounded(
                    repo.kind,
                    github::create_push_hook(&self.apis.github_api, repo, token, hook_url, secret),
                )
                .await?
            }
            ForgeKind::GitLab => {
                self.bounded(
                    repo.kind,
                    gitlab::create_push_hook(
                        &self.http,
                        &self.apis.gitlab,
                        repo,
                        token,
                        hook_url,
                        secret,
                    ),
                )
                .await?
            }
            ForgeKind::Gitea => {
                let base = self.gitea_base()?;
                self.bounded(
                    repo.kind,
                    gitea::create_push_hook(&self.http, base, repo, token, hook_url, secret),
                )
                .await?
            }
        };
        tracing::info!(forge = %repo.kind, repo = %repo.path, hook_id = %id, "created webhook");
        Ok(id)
    }

    /// Deletes the webhook `hook_id` (as [`create_push_hook`](Self::create_push_hook)
    /// returned it) from `repo`. A hook that is already gone gives
    /// [`ForgeError::NotFound`], which a caller deleting a mirror may treat as done.
    pub async fn delete_hook(
        &self,
        repo: &ForgeRepo,
        token: &SecretString,
        hook_id: &str,
    ) -> Result<(), ForgeError> {
        let id = parse_hook_id(repo, hook_id)?;
        match repo.kind {
            ForgeKind::GitHub => {
                self.bounded(
                    repo.kind,
                    github::delete_hook(&self.apis.github_api, repo, token, id),
                )
                .await?
            }
            ForgeKind::GitLab => {
                self.bounded(
                    repo.kind,
                    gitlab::delete_hook(&self.http, &self.apis.gitlab, repo, token, id),
                )
                .await?
            }
            ForgeKind::Gitea => {
                let base = self.gitea_base()?;
                self.bounded(
                    repo.kind,
                    gitea::delete_hook(&self.http, base, repo, token, id),
                )
                .await?
            }
        }
        tracing::info!(forge = %repo.kind, repo = %repo.path, hook_id, "deleted webhook");
        Ok(())
    }

    fn gitea_base(&self) -> Result<&url::Url, ForgeError> {
        self.apis.gitea.as_ref().ok_or(ForgeError::NotConfigured {
            forge: ForgeKind::Gitea,
        })
    }

    /// Runs one call to `forge` within the timeout.
    async fn bounded<T>(
        &self,
        forge: ForgeKind,
        call: impl Future<Output = Result<T, ForgeError>>,
    ) -> Result<T, ForgeError> {
        match tokio::time::timeout(self.timeout, call).await {
            Ok(result) => result,
            Err(_) => Err(ForgeError::Unreachable {
                forge,
                reason: format!("no answer within {:?}", self.timeout),
            }),
        }
    }
}

impl ForgeApis {
    /// [`Forges::create_push_hook`] with a client made for this one call.
    pub async fn create_push_hook(
        &self,
        repo: &ForgeRepo,
        token: &SecretString,
        hook_url: &str,
        secret: &SecretString,
    ) -> Result<String, ForgeError> {
        Forges::new(self.clone())
            .create_push_hook(repo, token, hook_url, secret)
            .await
    }

    /// [`Forges::delete_hook`] with a client made for this one call.
    pub async fn delete_hook(
        &self,
        repo: &ForgeRepo,
        token: &SecretString,
        hook_id: &str,
    ) -> Result<(), ForgeError> {
        Forges::new(self.clone())
            .delete_hook(repo, token, hook_id)
            .await
    }
}

/// Hook ids are numbers on all three forges; anything else names no hook (and must not reach
/// a URL path).
fn parse_hook_id(repo: &ForgeRepo, hook_id: &str) -> Result<u64, ForgeError> {
    hook_id
        .parse::<u64>()
        .ok()
        .filter(|_| hook_id.bytes().all(|b| b.is_ascii_digit()))
        .ok_or_else(|| ForgeError::NotFound {
            forge: repo.kind,
            repo: repo.path.clone(),
            hook_id: Some(hook_id.to_owned()),
        })
}

/// The reqwest client for GitLab and Gitea: rustls, no redirects (a redirect would carry
/// `PRIVATE-TOKEN` to wherever it points; reqwest strips only `Authorization`), our agent. No
/// timeouts of its own: `Forges::bounded` bounds every call, octocrab's included, the same way.
fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .user_agent(USER_AGENT)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        // Only fails when the TLS backend cannot initialise, as `reqwest::Client::new` panics.
        .expect("reqwest client with rustls")
}

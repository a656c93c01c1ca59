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
//! - The comment bot's calls on [`Forges`], with its own [`BotCredentials`]
//!   ([`Forges::with_bot`]): react to a comment, reply in its [`CommentThread`] and edit the
//!   reply, ask whether a user may write to a repository, and the token to clone with. As a
//!   GitHub App the bot makes installation tokens and caches them (`github_app`), also for an
//!   installation named by id ([`Forges::installation_token`], for mirror sets).
//! - [`listing`]: the repositories of an organization, group, user or workspace, one page per
//!   call ([`list_page`]), over the caller's egress proxy.
//!
//! Tokens are [`SecretString`]s end to end: they go into request headers marked sensitive and
//! into no error, `Debug` output or log line. Every call is bounded by a timeout (10 s unless
//! [`Forges::with_timeout`] says otherwise).

#![forbid(unsafe_code)]

mod apis;
mod error;
mod gitea;
mod github;
mod github_app;
mod gitlab;
pub mod listing;

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use secrecy::SecretString;

use crate::github_app::GitHubApp;

pub use apis::{ForgeApis, ForgeKind, ForgeRepo};
pub use error::ForgeError;
pub use listing::{
    list_page, ListedPage, ListedRepo, ListingAuth, ListingError, ListingForge, NamespaceQuery,
    PageCursor,
};

/// The `User-Agent` of the requests made with reqwest (GitLab, Gitea). octocrab sends its own
/// (`octocrab`) and would send both if we added ours.
const USER_AGENT: &str = concat!("mirrorhub/", env!("CARGO_PKG_VERSION"));

/// The forges' APIs with an HTTP client: what the hub keeps to call them. Cheap to clone;
/// clones share the comment bot's token cache.
#[derive(Debug, Clone)]
pub struct Forges {
    apis: ForgeApis,
    http: reqwest::Client,
    timeout: Duration,
    bot: Arc<Bot>,
}

/// The comment bot's own credentials per forge (what `MIRRORHUB_GITHUB_APP_ID` +
/// `MIRRORHUB_GITHUB_APP_PRIVATE_KEY`, `MIRRORHUB_GITHUB_TOKEN`, `MIRRORHUB_GITLAB_TOKEN` and
/// `MIRRORHUB_GITEA_TOKEN` configure). `Debug` shows no secret.
#[derive(Debug, Clone, Default)]
pub struct BotCredentials {
    pub github: Option<GitHubAuth>,
    pub gitlab_token: Option<SecretString>,
    pub gitea_token: Option<SecretString>,
}

/// How the bot authenticates to GitHub.
#[derive(Debug, Clone)]
pub enum GitHubAuth {
    /// A personal access token (classic or fine-grained), or any token GitHub takes as
    /// `Authorization: Bearer`.
    Token(SecretString),
    /// A GitHub App: its id and its private key, the PEM GitHub issues. The bot acts on each
    /// repository with a token of the App's installation there.
    App {
        app_id: u64,
        private_key: SecretString,
    },
}

/// Where a comment was made: enough to react to it, reply in its thread and edit the reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommentThread {
    pub repo: ForgeRepo,
    /// The issue or pull request number on GitHub and Gitea; the iid on GitLab.
    pub number: u64,
    /// A merge/pull request rather than an issue. GitHub and Gitea comment on both through
    /// their issue-comment API; GitLab has separate paths.
    pub merge_request: bool,
    /// GitLab's project id: used in API paths when present, else the URL-encoded path.
    pub project_id: Option<u64>,
}

/// The bot's credentials as the calls use them.
#[derive(Default)]
struct Bot {
    github: Option<GitHubBot>,
    gitlab_token: Option<SecretString>,
    gitea_token: Option<SecretString>,
}

enum GitHubBot {
    Token(SecretString),
    App(GitHubApp),
}

impl fmt::Debug for Bot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let github = match &self.github {
            None => "none".to_owned(),
            Some(GitHubBot::Token(_)) => "token".to_owned(),
            Some(GitHubBot::App(app)) => format!("{app:?}"),
        };
        f.debug_struct("Bot")
            .field("github", &github)
            .field("gitlab", &self.gitlab_token.is_some())
            .field("gitea", &self.gitea_token.is_some())
            .finish()
    }
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
            bot: Arc::new(Bot::default()),
        }
    }

    /// The same clients with the comment bot's credentials (replacing any given before, and
    /// their cached tokens). A GitHub App key that is not an RSA private key in PEM form is
    /// logged here (without the key) and makes every GitHub bot call fail with
    /// [`ForgeError::InvalidAppKey`].
    pub fn with_bot(self, credentials: BotCredentials) -> Forges {
        let github = credentials.github.map(|auth| match auth {
            GitHubAuth::Token(token) => GitHubBot::Token(token),
            GitHubAuth::App {
                app_id,
                private_key,
            } => GitHubBot::App(GitHubApp::new(app_id, &private_key)),
        });
        Forges {
            bot: Arc::new(Bot {
                github,
                gitlab_token: credentials.gitlab_token,
                gitea_token: credentials.gitea_token,
            }),
            ..self
        }
    }

    /// Whether the bot has credentials for `kind` (and, for Gitea, an API to use them on).
    pub fn bot_enabled(&self, kind: ForgeKind) -> bool {
        match kind {
            ForgeKind::GitHub => self.bot.github.is_some(),
            ForgeKind::GitLab => self.bot.gitlab_token.is_some(),
            ForgeKind::Gitea => self.bot.gitea_token.is_some() && self.apis.gitea.is_some(),
        }
    }

    /// Whether the bot is a GitHub App on GitHub (its tokens are the installations').
    pub fn is_github_app(&self) -> bool {
        matches!(self.bot.github, Some(GitHubBot::App(_)))
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

    /// Puts 👀 on the comment `comment_id` (GitHub and Gitea: the issue comment's id; GitLab:
    /// the note's id) in `thread`. Reacting twice is no error.
    ///
    /// - GitHub: `POST /repos/{o}/{r}/issues/comments/{id}/reactions` `{"content":"eyes"}`
    /// - GitLab: `POST /api/v4/projects/{id}/{issues|merge_requests}/{iid}/notes/{note}/award_emoji`
    ///   with `name=eyes`
    /// - Gitea: `POST /api/v1/repos/{o}/{r}/issues/comments/{id}/reactions` `{"content":"eyes"}`
    pub async fn react(&self, thread: &CommentThread, comment_id: &str) -> Result<(), ForgeError> {
        let repo = &thread.repo;
        let id = parse_comment_id(repo, comment_id)?;
        self.bounded(repo.kind, async {
            match repo.kind {
                ForgeKind::GitHub => {
                    let token = self.github_token(repo).await?;
                    let result = github::react(&self.apis.github_api, repo, &token, id).await;
                    self.after_github_call(repo, result).await
                }
                ForgeKind::GitLab => {
                    let token = self.gitlab_token()?;
                    gitlab::react(&self.http, &self.apis.gitlab, thread, token, id).await
                }
                ForgeKind::Gitea => {
                    let (base, token) = self.gitea_bot()?;
                    gitea::react(&self.http, base, repo, token, id).await
                }
            }
        })
        .await
    }

    /// Posts `body` (Markdown) in `thread`; returns the new comment's id, for
    /// [`edit_reply`](Self::edit_reply).
    ///
    /// - GitHub: `POST /repos/{o}/{r}/issues/{number}/comments` `{"body": …}` (pull requests
    ///   too)
    /// - GitLab: `POST /api/v4/projects/{id}/{issues|merge_requests}/{iid}/notes` with `body`
    /// - Gitea: `POST /api/v1/repos/{o}/{r}/issues/{index}/comments` `{"body": …}`
    pub async fn reply(&self, thread: &CommentThread, body: &str) -> Result<String, ForgeError> {
        let repo = &thread.repo;
        let id = self
            .bounded(repo.kind, async {
                match repo.kind {
                    ForgeKind::GitHub => {
                        let token = self.github_token(repo).await?;
                        let result = github::reply(
                            &self.apis.github_api,
                            repo,
                            &token,
                            thread.number,
                            thread.merge_request,
                            body,
                        )
                        .await;
                        self.after_github_call(repo, result).await
                    }
                    ForgeKind::GitLab => {
                        let token = self.gitlab_token()?;
                        gitlab::reply(&self.http, &self.apis.gitlab, thread, token, body).await
                    }
                    ForgeKind::Gitea => {
                        let (base, token) = self.gitea_bot()?;
                        gitea::reply(
                            &self.http,
                            base,
                            repo,
                            token,
                            thread.number,
                            thread.merge_request,
                            body,
                        )
                        .await
                    }
                }
            })
            .await?;
        tracing::info!(forge = %repo.kind, repo = %repo.path, number = thread.number, reply_id = %id, "replied");
        Ok(id)
    }

    /// Replaces the text of the bot's reply `reply_id` (as [`reply`](Self::reply) returned it)
    /// with `body`.
    ///
    /// - GitHub: `PATCH /repos/{o}/{r}/issues/comments/{id}` `{"body": …}`
    /// - GitLab: `PUT /api/v4/projects/{id}/{issues|merge_requests}/{iid}/notes/{note}` with
    ///   `body`
    /// - Gitea: `PATCH /api/v1/repos/{o}/{r}/issues/comments/{id}` `{"body": …}`
    pub async fn edit_reply(
        &self,
        thread: &CommentThread,
        reply_id: &str,
        body: &str,
    ) -> Result<(), ForgeError> {
        let repo = &thread.repo;
        let id = parse_comment_id(repo, reply_id)?;
        self.bounded(repo.kind, async {
            match repo.kind {
                ForgeKind::GitHub => {
                    let token = self.github_token(repo).await?;
                    let result =
                        github::edit_reply(&self.apis.github_api, repo, &token, id, body).await;
                    self.after_github_call(repo, result).await
                }
                ForgeKind::GitLab => {
                    let token = self.gitlab_token()?;
                    gitlab::edit_reply(&self.http, &self.apis.gitlab, thread, token, id, body).await
                }
                ForgeKind::Gitea => {
                    let (base, token) = self.gitea_bot()?;
                    gitea::edit_reply(&self.http, base, repo, token, id, body).await
                }
            }
        })
        .await
    }

    /// Whether `user` (a login / username) may write to `repo`, as the bot's credentials can
    /// tell. A name no forge allows is `false` without a request.
    ///
    /// - GitHub: `GET /repos/{o}/{r}/collaborators/{user}/permission`: `permission` admin or
    ///   write (or `role_name` maintain); 404 → false
    /// - GitLab: `GET /api/v4/projects/{id}/members/all?query={user}`: the member whose
    ///   username is exactly `user`, at Developer (30) or above (`project_id` when known, else
    ///   the path)
    /// - Gitea: `GET /api/v1/repos/{o}/{r}/collaborators/{user}/permission`: `permission`
    ///   write, admin or owner; 404 → false
    pub async fn may_write(
        &self,
        repo: &ForgeRepo,
        project_id: Option<u64>,
        user: &str,
    ) -> Result<bool, ForgeError> {
        if !apis::valid_user_name(user) {
            return Ok(false);
        }
        self.bounded(repo.kind, async {
            match repo.kind {
                ForgeKind::GitHub => {
                    let token = self.github_token(repo).await?;
                    let result = github::may_write(&self.apis.github_api, repo, &token, user).await;
                    self.after_github_call(repo, result).await
                }
                ForgeKind::GitLab => {
                    let token = self.gitlab_token()?;
                    gitlab::may_write(&self.http, &self.apis.gitlab, repo, project_id, token, user)
                        .await
                }
                ForgeKind::Gitea => {
                    let (base, token) = self.gitea_bot()?;
                    gitea::may_write(&self.http, base, repo, token, user).await
                }
            }
        })
        .await
    }

    /// Whether `user` owns the forge namespace `namespace` (what `/mirror-org` asks of its
    /// author): their own account, or an organization or group they own. `repo` is where the
    /// command was typed (the bot's credentials for it are used). A name no forge allows is
    /// `false` without a request.
    ///
    /// - GitHub: `GET /orgs/{org}/memberships/{user}`: `role` admin, `state` active
    /// - GitLab: `GET /api/v4/groups/{path}/members/all?query={user}`: Owner (50), inherited
    ///   from a parent group too
    /// - Gitea: `GET /api/v1/users/{user}/orgs/{org}/permissions`: `is_owner`
    pub async fn owns_namespace(
        &self,
        repo: &ForgeRepo,
        namespace: &str,
        user: &str,
    ) -> Result<bool, ForgeError> {
        let segments: Vec<&str> = namespace.split('/').collect();
        let nested = repo.kind == ForgeKind::GitLab;
        if !apis::valid_user_name(user)
            || !segments.iter().all(|s| apis::valid_segment(s))
            || (segments.len() > 1 && !nested)
        {
            return Ok(false);
        }
        if namespace.eq_ignore_ascii_case(user) {
            return Ok(true);
        }
        self.bounded(repo.kind, async {
            match repo.kind {
                ForgeKind::GitHub => {
                    let token = self.github_token(repo).await?;
                    let result =
                        github::owns_org(&self.apis.github_api, repo, namespace, &token, user)
                            .await;
                    self.after_github_call(repo, result).await
                }
                ForgeKind::GitLab => {
                    let token = self.gitlab_token()?;
                    gitlab::owns_group(&self.http, &self.apis.gitlab, repo, namespace, token, user)
                        .await
                }
                ForgeKind::Gitea => {
                    let (base, token) = self.gitea_bot()?;
                    gitea::owns_org(&self.http, base, repo, namespace, token, user).await
                }
            }
        })
        .await
    }

    /// The token the bot would clone `repo` with (a private upstream), or `None` when the bot
    /// has no credentials for its forge. As a GitHub App: a token of the App's installation on
    /// the repository, made (or taken from the cache) now, valid for at least five minutes.
    pub async fn bot_token(&self, repo: &ForgeRepo) -> Result<Option<SecretString>, ForgeError> {
        match repo.kind {
            ForgeKind::GitHub => match &self.bot.github {
                None => Ok(None),
                Some(GitHubBot::Token(token)) => Ok(Some(token.clone())),
                Some(GitHubBot::App(app)) => self
                    .bounded(repo.kind, app.token(&self.apis.github_api, repo))
                    .await
                    .map(Some),
            },
            ForgeKind::GitLab => Ok(self.bot.gitlab_token.clone()),
            ForgeKind::Gitea => Ok(self.bot.gitea_token.clone()),
        }
    }

    /// A token of the GitHub App's installation `installation_id` (mirror sets made by an
    /// installation list and clone with it), from the cache while it has more than five
    /// minutes to live: `POST /app/installations/{id}/access_tokens` with the App's JWT,
    /// shared with the comment bot's cache (one token per installation).
    /// [`ForgeError::NoBotCredentials`] when the hub is not a GitHub App;
    /// [`ForgeError::InstallationUnavailable`] when GitHub answers 404 (uninstalled) or 403
    /// (suspended); [`ForgeError::AppRefused`] on 401.
    pub async fn installation_token(
        &self,
        installation_id: u64,
    ) -> Result<SecretString, ForgeError> {
        match &self.bot.github {
            Some(GitHubBot::App(app)) => {
                self.bounded(
                    ForgeKind::GitHub,
                    app.installation_token(&self.apis.github_api, installation_id),
                )
                .await
            }
            _ => Err(ForgeError::NoBotCredentials {
                forge: ForgeKind::GitHub,
            }),
        }
    }

    /// Drops the cached token of installation `installation_id` (GitHub refused it with 401:
    /// revoked, or the installation's permissions changed), so that the next
    /// [`installation_token`](Self::installation_token) makes a new one.
    pub async fn forget_installation_token(&self, installation_id: u64) {
        if let Some(GitHubBot::App(app)) = &self.bot.github {
            app.forget_installation(installation_id).await;
        }
    }

    /// The bot's GitHub token for `repo`: its own, or its App's installation token.
    async fn github_token(&self, repo: &ForgeRepo) -> Result<SecretString, ForgeError> {
        match &self.bot.github {
            None => Err(ForgeError::NoBotCredentials {
                forge: ForgeKind::GitHub,
            }),
            Some(GitHubBot::Token(token)) => Ok(token.clone()),
            Some(GitHubBot::App(app)) => app.token(&self.apis.github_api, repo).await,
        }
    }

    /// After a GitHub call with an installation token: a 401 means GitHub no longer takes the
    /// cached token (revoked, installation changed), so the next call makes a new one.
    async fn after_github_call<T>(
        &self,
        repo: &ForgeRepo,
        result: Result<T, ForgeError>,
    ) -> Result<T, ForgeError> {
        if let (Err(ForgeError::Unauthorized { .. }), Some(GitHubBot::App(app))) =
            (&result, &self.bot.github)
        {
            app.forget(repo).await;
        }
        result
    }

    fn gitlab_token(&self) -> Result<&SecretString, ForgeError> {
        self.bot
            .gitlab_token
            .as_ref()
            .ok_or(ForgeError::NoBotCredentials {
                forge: ForgeKind::GitLab,
            })
    }

    fn gitea_bot(&self) -> Result<(&url::Url, &SecretString), ForgeError> {
        let token = self
            .bot
            .gitea_token
            .as_ref()
            .ok_or(ForgeError::NoBotCredentials {
                forge: ForgeKind::Gitea,
            })?;
        Ok((self.gitea_base()?, token))
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

/// Comment (note) ids are numbers on all three forges; anything else names no comment (and
/// must not reach a URL path).
fn parse_comment_id(repo: &ForgeRepo, comment_id: &str) -> Result<u64, ForgeError> {
    comment_id
        .parse::<u64>()
        .ok()
        .filter(|_| comment_id.bytes().all(|b| b.is_ascii_digit()))
        .ok_or_else(|| ForgeError::CommentNotFound {
            forge: repo.kind,
            repo: repo.path.clone(),
            comment_id: comment_id.to_owned(),
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

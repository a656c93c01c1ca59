//! Listing the repositories of a namespace (an organization, a GitLab group with its
//! subgroups, a user, a Bitbucket workspace) page by page, for mirror sets.
//!
//! One page per call ([`list_page`]): the caller keeps the [`PageCursor`] and decides how to
//! pace the calls, so a namespace of thousands of repositories is streamed, never held whole,
//! and a rate limit is the caller's to wait out ([`ListingError::RateLimited`]).
//!
//! Every request goes through the proxy the caller names (the hub's egress proxy, with a pass
//! of its own), so the address policy applies to the address actually connected to.

use std::fmt;
use std::time::Duration;

use secrecy::SecretString;
use url::Url;

/// The forges whose namespaces can be listed. Forgejo speaks Gitea's API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ListingForge {
    GitHub,
    GitLab,
    Gitea,
    Bitbucket,
}

impl ListingForge {
    pub const ALL: [ListingForge; 4] = [
        ListingForge::GitHub,
        ListingForge::GitLab,
        ListingForge::Gitea,
        ListingForge::Bitbucket,
    ];

    /// `github`, `gitlab`, `gitea`, `bitbucket`: the API's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            ListingForge::GitHub => "github",
            ListingForge::GitLab => "gitlab",
            ListingForge::Gitea => "gitea",
            ListingForge::Bitbucket => "bitbucket",
        }
    }

    pub fn parse(text: &str) -> Option<ListingForge> {
        Self::ALL.into_iter().find(|f| f.as_str() == text)
    }

    /// The public service's API, used when a set names no `api_url`: `https://api.github.com`,
    /// `https://gitlab.com`, `https://api.bitbucket.org`; Gitea has none (`None`).
    pub fn default_api_url(self) -> Option<Url> {
        let text = match self {
            ListingForge::GitHub => "https://api.github.com",
            ListingForge::GitLab => "https://gitlab.com",
            ListingForge::Bitbucket => "https://api.bitbucket.org",
            ListingForge::Gitea => return None,
        };
        Url::parse(text).ok()
    }
}

impl fmt::Display for ListingForge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ListingForge::GitHub => "GitHub",
            ListingForge::GitLab => "GitLab",
            ListingForge::Gitea => "Gitea",
            ListingForge::Bitbucket => "Bitbucket",
        })
    }
}

/// What to list. `Debug` shows no token.
#[derive(Clone)]
pub struct NamespaceQuery {
    pub forge: ListingForge,
    /// GitHub: the REST root (`https://api.github.com`, `https://HOST/api/v3`); GitLab and
    /// Gitea: the instance's base URL (not `/api/v4`, `/api/v1`); Bitbucket: the API root
    /// (`https://api.bitbucket.org`).
    pub api_url: Url,
    /// `acme`, a GitLab group path `acme/platform`, a user name, a Bitbucket workspace.
    pub namespace: String,
    pub auth: ListingAuth,
}

impl fmt::Debug for NamespaceQuery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NamespaceQuery")
            .field("forge", &self.forge)
            .field("api_url", &self.api_url.as_str())
            .field("namespace", &self.namespace)
            .field("auth", &self.auth)
            .finish()
    }
}

/// How the listing authenticates.
#[derive(Clone)]
pub enum ListingAuth {
    /// Public repositories only.
    None,
    /// A token: GitHub/Gitea `Authorization: token|Bearer`, GitLab `PRIVATE-TOKEN`, Bitbucket
    /// `Bearer` (an access token), or `username:app_password` as Basic when it holds a colon.
    Token(SecretString),
    /// A GitHub App installation's token: lists `GET /installation/repositories` (every
    /// repository the installation was given) instead of the namespace.
    GitHubInstallation(SecretString),
}

impl fmt::Debug for ListingAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ListingAuth::None => "None",
            ListingAuth::Token(_) => "Token(***)",
            ListingAuth::GitHubInstallation(_) => "GitHubInstallation(***)",
        })
    }
}

/// Where the next page is: the forge's own `next` link (GitHub/Gitea `Link`, GitLab keyset
/// `Link` or `X-Next-Page`, Bitbucket `next`), kept opaque. Checked to stay on the API's
/// origin before it is followed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageCursor(pub String);

/// One repository as the listing names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedRepo {
    /// The forge's stable id (survives renames and transfers), as text.
    pub id: String,
    /// The repository's own name (last path segment): `api`.
    pub name: String,
    /// The full path: `acme/api`, `acme/platform/api`.
    pub path: String,
    /// The http(s) clone URL the forge gives.
    pub clone_url: String,
    pub description: String,
    pub private: bool,
    pub archived: bool,
    pub fork: bool,
}

/// One page of a listing and where the next one is.
#[derive(Debug, Clone, Default)]
pub struct ListedPage {
    pub repos: Vec<ListedRepo>,
    pub next: Option<PageCursor>,
}

/// Why a listing stopped. Never carries the token.
#[derive(Debug, thiserror::Error)]
pub enum ListingError {
    #[error(
        "{forge} refused the token (HTTP 401): give a valid token that can read the namespace"
    )]
    Unauthorized { forge: ListingForge },
    #[error("{forge} has no namespace {namespace:?} that the token can see (HTTP 404)")]
    NamespaceNotFound {
        forge: ListingForge,
        namespace: String,
    },
    #[error(
        "{forge} refused the listing (HTTP 403): the token lacks read access to the namespace"
    )]
    Forbidden { forge: ListingForge },
    /// 429, or 403 with the rate limit spent: wait `retry_after` (from `Retry-After` or
    /// `X-RateLimit-Reset`), then call again with the same cursor.
    #[error("{forge} rate-limited the listing; retry in {}s", retry_after.as_secs())]
    RateLimited {
        forge: ListingForge,
        retry_after: Duration,
    },
    #[error("{forge} could not be reached: {reason}")]
    Unreachable { forge: ListingForge, reason: String },
    /// 5xx and other statuses.
    #[error("{forge} answered HTTP {status}")]
    Unexpected { forge: ListingForge, status: u16 },
    #[error("{forge} answered with a body mirrorhub cannot read: {detail}")]
    InvalidResponse { forge: ListingForge, detail: String },
    /// The proxy (the address policy) refused the connection; `reason` is its sentence.
    #[error("the forge API address is not allowed: {reason}")]
    NotAllowed { reason: String },
}

impl ListingError {
    /// Whether trying again later may succeed (rate limits, 5xx, unreachable).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            ListingError::RateLimited { .. }
                | ListingError::Unreachable { .. }
                | ListingError::Unexpected { .. }
        )
    }
}

/// Reads one page: the first when `cursor` is `None`. `proxy`: the egress proxy URL for this
/// request (`http://user:pass@127.0.0.1:port`), or `None` to connect directly (tests of this
/// crate only). Bounded by `timeout`.
pub async fn list_page(
    query: &NamespaceQuery,
    cursor: Option<&PageCursor>,
    proxy: Option<&str>,
    timeout: Duration,
) -> Result<ListedPage, ListingError> {
    let _ = (query, cursor, proxy, timeout);
    Err(ListingError::Unexpected {
        forge: query.forge,
        status: 501,
    })
}

//! Listing the repositories of a namespace (an organization, a GitLab group with its
//! subgroups, a user, a Bitbucket workspace) page by page, for mirror sets.
//!
//! One page per call ([`list_page`]): the caller keeps the [`PageCursor`] and decides how to
//! pace the calls, so a namespace of thousands of repositories is streamed, never held whole,
//! and a rate limit is the caller's to wait out ([`ListingError::RateLimited`]).
//!
//! Every request goes through the proxy the caller names (the hub's egress proxy, with a pass
//! of its own), so the address policy applies to the address actually connected to.
//!
//! Plain reqwest for all four forges, not octocrab for GitHub: octocrab reaches the network
//! through a proxy only with its `reqwest` feature, which is built on reqwest 0.13 (a second
//! HTTP and TLS stack beside the workspace's 0.12); and its errors keep the status but drop the
//! headers, where a rate limit says how long to wait (`Retry-After`, `X-RateLimit-Reset`). The
//! gitlab crate's endpoint types make GitLab's paths and filters; its `paged` reads every page
//! at once, so the pages are read here.

mod entries;
mod transport;

use std::fmt;
use std::time::Duration;

use gitlab::api::common::SortOrder;
use gitlab::api::groups::projects::{GroupProjects, GroupProjectsOrderBy};
use gitlab::api::users::{UserProjects, UserProjectsOrderBy};
use gitlab::api::Endpoint as _;
use reqwest::StatusCode;
use secrecy::SecretString;
use serde::Deserialize;
use url::Url;

use self::entries::Entries;
use self::transport::{next_link, Answer, Api};

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
    /// Entries of the page left out because they were malformed or named something unsafe (a
    /// name that is no plain path segment, a clone URL that is not http(s)); each is logged
    /// with its reason. A listing with skipped entries is incomplete: what it does not name
    /// may still exist.
    pub skipped: usize,
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
///
/// What is asked of each forge (100 a page; Gitea 50, its usual cap):
///
/// - GitHub: `GET {api}/orgs/{ns}/repos?per_page=100&type=all`, and when there is no such
///   organization, `GET {api}/users/{ns}/repos?per_page=100&type=owner` (a user's public
///   repositories); with [`ListingAuth::GitHubInstallation`],
///   `GET {api}/installation/repositories?per_page=100`. `Authorization: Bearer`.
/// - GitLab: `GET {base}/api/v4/groups/{path}/projects?include_subgroups=true&with_shared=false`
///   (archived ones included), else `GET {base}/api/v4/users/{name}/projects`, with
///   `order_by=id&sort=asc&pagination=keyset&per_page=100`; an instance that answers 405 (no
///   keyset pagination there) is asked again page by page (`page=1`). `PRIVATE-TOKEN`.
/// - Gitea/Forgejo: `GET {base}/api/v1/orgs/{ns}/repos?limit=50&page=1`, else
///   `GET {base}/api/v1/users/{ns}/repos?limit=50&page=1`. `Authorization: token`.
/// - Bitbucket Cloud: `GET {api}/2.0/repositories/{workspace}?pagelen=100`.
///   `Authorization: Bearer`, or `Basic` for `username:app_password`.
///
/// The next page is the forge's `Link: <…>; rel="next"` (GitHub, Gitea, GitLab), GitLab's
/// `X-Next-Page`, Bitbucket's body `next`, or for Gitea without `Link` the following page
/// number after a full page. A cursor is followed only on the API's origin
/// ([`ListingError::InvalidResponse`] otherwise), and redirects only there too, so the token
/// goes nowhere else.
///
/// Statuses: 401 → `Unauthorized`; 403 → `Forbidden`; 404 → `NamespaceNotFound`; 429, or 403
/// with the limit spent or a `Retry-After` → `RateLimited` (the wait from `Retry-After`, else
/// `X-RateLimit-Reset`/`RateLimit-Reset`, within 1 s and 1 h); any other → `Unexpected`.
///
/// Through the hub's egress proxy, a connection the address policy refuses shows here as
/// `Unreachable` (https: the proxy refused the `CONNECT`) or `Forbidden` (plain http: the proxy
/// answers 403 itself): this function cannot tell, the caller holds the proxy pass and must
/// ask it (`EgressPass::refused`) first, and report [`ListingError::NotAllowed`].
///
/// Hostile answers: a page over 8 MiB, or of more than 1000 entries, is `InvalidResponse`; an
/// entry that is malformed, has a name that is no plain path segment, or a clone URL that is
/// not http(s) is skipped ([`ListedPage::skipped`]) and logged.
pub async fn list_page(
    query: &NamespaceQuery,
    cursor: Option<&PageCursor>,
    proxy: Option<&str>,
    timeout: Duration,
) -> Result<ListedPage, ListingError> {
    let forge = query.forge;
    let read = async {
        let api = Api::new(query, proxy)?;
        match forge {
            ListingForge::GitHub => github(&api, cursor).await,
            ListingForge::GitLab => gitlab(&api, cursor).await,
            ListingForge::Gitea => gitea(&api, cursor).await,
            ListingForge::Bitbucket => bitbucket(&api, cursor).await,
        }
    };
    match tokio::time::timeout(timeout, read).await {
        Ok(page) => page,
        Err(_) => Err(ListingError::Unreachable {
            forge,
            reason: format!("no answer within {} s", timeout.as_secs_f32()),
        }),
    }
}

/// The answer of `GET /installation/repositories`.
#[derive(Deserialize)]
struct InstallationPage {
    repositories: Entries,
}

/// The answer of Bitbucket's paginated endpoints.
#[derive(Deserialize)]
struct BitbucketPage {
    values: Entries,
    next: Option<String>,
}

async fn github(api: &Api<'_>, cursor: Option<&PageCursor>) -> Result<ListedPage, ListingError> {
    let installation = matches!(api.query.auth, ListingAuth::GitHubInstallation(_));
    let answer = match cursor {
        Some(cursor) => api.get(api.follow(cursor)?).await?,
        None if installation => {
            let url = with_query(
                api.endpoint(&["installation", "repositories"])?,
                &[("per_page", "100")],
            );
            api.get(url).await?
        }
        None => {
            let namespace = single_segment(api)?;
            let org = api.endpoint(&["orgs", namespace, "repos"])?;
            let answer = api
                .get(with_query(org, &[("per_page", "100"), ("type", "all")]))
                .await?;
            if answer.status == StatusCode::NOT_FOUND {
                let user = api.endpoint(&["users", namespace, "repos"])?;
                api.get(with_query(user, &[("per_page", "100"), ("type", "owner")]))
                    .await?
            } else {
                answer
            }
        }
    };
    api.check(&answer)?;
    let entries = if installation {
        parse::<InstallationPage>(api, &answer)?.repositories
    } else {
        parse::<Entries>(api, &answer)?
    };
    let next = next_link(&answer.headers, &answer.url);
    page(api, &answer, entries, next)
}

/// How many repositories a Gitea page asks for: Gitea's default `MAX_RESPONSE_ITEMS`.
const GITEA_LIMIT: usize = 50;

async fn gitea(api: &Api<'_>, cursor: Option<&PageCursor>) -> Result<ListedPage, ListingError> {
    let limit = GITEA_LIMIT.to_string();
    let answer = match cursor {
        Some(cursor) => api.get(api.follow(cursor)?).await?,
        None => {
            let namespace = single_segment(api)?;
            let params = [("limit", limit.as_str()), ("page", "1")];
            let org = api.endpoint(&["api", "v1", "orgs", namespace, "repos"])?;
            let answer = api.get(with_query(org, &params)).await?;
            if answer.status == StatusCode::NOT_FOUND {
                let user = api.endpoint(&["api", "v1", "users", namespace, "repos"])?;
                api.get(with_query(user, &params)).await?
            } else {
                answer
            }
        }
    };
    api.check(&answer)?;
    let entries = parse::<Entries>(api, &answer)?;
    // Gitea sends `Link`; without it, a full page means there may be another.
    let next = next_link(&answer.headers, &answer.url).or_else(|| {
        (entries.0.len() >= GITEA_LIMIT).then(|| {
            let number = query_number(&answer.url, "page").unwrap_or(1);
            with_page(&answer.url, number + 1)
        })
    });
    page(api, &answer, entries, next)
}

async fn gitlab(api: &Api<'_>, cursor: Option<&PageCursor>) -> Result<ListedPage, ListingError> {
    let answer = match cursor {
        Some(cursor) => api.get(api.follow(cursor)?).await?,
        None => {
            let answer = gitlab_first(api, false).await?;
            if answer.status == StatusCode::NOT_FOUND {
                gitlab_first(api, true).await?
            } else {
                answer
            }
        }
    };
    api.check(&answer)?;
    let entries = parse::<Entries>(api, &answer)?;
    let next = next_link(&answer.headers, &answer.url).or_else(|| {
        let number = answer.headers.get("x-next-page")?.to_str().ok()?.trim();
        Some(with_page(&answer.url, number.parse().ok()?))
    });
    page(api, &answer, entries, next)
}

/// The first page of a GitLab group (or, `user`, a user's projects): keyset pagination where
/// the instance has it, else by page number.
async fn gitlab_first(api: &Api<'_>, user: bool) -> Result<Answer, ListingError> {
    let namespace = api.query.namespace.as_str();
    let segments: Vec<&str> = namespace.split('/').collect();
    if namespace.len() > 1024 || !segments.iter().all(|s| crate::apis::valid_segment(s)) {
        return Err(not_found(api));
    }
    if user && segments.len() != 1 {
        return Err(not_found(api));
    }
    // The gitlab crate's endpoints make the path (the group's path URL-encoded) and the
    // filters; the pages are read here, one per call, which its `paged` cannot do.
    let v4 = api.endpoint(&["api", "v4", ""])?;
    let join = |path: &str| {
        v4.join(path)
            .map_err(|_| api.invalid("the GitLab API URL cannot take a path"))
    };
    let mut url;
    if user {
        let endpoint = UserProjects::builder()
            .user(namespace)
            .order_by(UserProjectsOrderBy::Id)
            .sort(SortOrder::Ascending)
            .build()
            .map_err(|_| not_found(api))?;
        url = join(&endpoint.endpoint())?;
        endpoint.parameters().add_to_url(&mut url);
    } else {
        let endpoint = GroupProjects::builder()
            .group(namespace)
            .include_subgroups(true)
            .with_shared(false)
            .order_by(GroupProjectsOrderBy::Id)
            .sort(SortOrder::Ascending)
            .build()
            .map_err(|_| not_found(api))?;
        url = join(&endpoint.endpoint())?;
        endpoint.parameters().add_to_url(&mut url);
    }
    let keyset = with_query(
        url.clone(),
        &[("pagination", "keyset"), ("per_page", "100")],
    );
    let answer = api.get(keyset).await?;
    // 405: "Keyset pagination is not yet available for this type of request" (older
    // instances, some endpoints).
    if matches!(answer.status.as_u16(), 400 | 405) {
        return api
            .get(with_query(url, &[("per_page", "100"), ("page", "1")]))
            .await;
    }
    Ok(answer)
}

async fn bitbucket(api: &Api<'_>, cursor: Option<&PageCursor>) -> Result<ListedPage, ListingError> {
    let url = match cursor {
        Some(cursor) => api.follow(cursor)?,
        None => {
            let workspace = single_segment(api)?;
            let url = api.endpoint(&["2.0", "repositories", workspace])?;
            with_query(url, &[("pagelen", "100")])
        }
    };
    let answer = api.get(url).await?;
    api.check(&answer)?;
    let body = parse::<BitbucketPage>(api, &answer)?;
    let next = match body.next {
        Some(next) => Some(
            answer
                .url
                .join(&next)
                .map_err(|_| api.invalid("the next page's link is not a URL"))?,
        ),
        None => None,
    };
    page(api, &answer, body.values, next)
}

/// The namespace as one path segment (GitHub, Gitea, Bitbucket); anything else names no
/// namespace there.
fn single_segment<'q>(api: &Api<'q>) -> Result<&'q str, ListingError> {
    let namespace = api.query.namespace.as_str();
    if namespace.len() <= 255 && crate::apis::valid_segment(namespace) {
        Ok(namespace)
    } else {
        Err(not_found(api))
    }
}

fn not_found(api: &Api<'_>) -> ListingError {
    ListingError::NamespaceNotFound {
        forge: api.forge(),
        namespace: api.query.namespace.clone(),
    }
}

fn parse<T: for<'de> Deserialize<'de>>(api: &Api<'_>, answer: &Answer) -> Result<T, ListingError> {
    serde_json::from_slice(&answer.body).map_err(|e| {
        // serde_json's message names the position, never the content.
        api.invalid(&format!("not the forge's listing JSON: {e}"))
    })
}

/// The checked repositories of one page, and its next cursor.
fn page(
    api: &Api<'_>,
    answer: &Answer,
    entries: Entries,
    next: Option<Url>,
) -> Result<ListedPage, ListingError> {
    let forge = api.forge();
    if next.as_ref() == Some(&answer.url) {
        return Err(api.invalid("the next page's link names the same page"));
    }
    let mut repos = Vec::with_capacity(entries.0.len());
    let mut skipped = 0;
    for (index, entry) in entries.0.into_iter().enumerate() {
        match entries::listed(forge, entry) {
            Ok(repo) => repos.push(repo),
            Err(reason) => {
                skipped += 1;
                tracing::warn!(
                    %forge,
                    namespace = %api.query.namespace,
                    index,
                    %reason,
                    "skipped an entry of a namespace listing"
                );
            }
        }
    }
    Ok(ListedPage {
        repos,
        next: next.map(|url| PageCursor(url.into())),
        skipped,
    })
}

fn with_query(mut url: Url, pairs: &[(&str, &str)]) -> Url {
    url.query_pairs_mut().extend_pairs(pairs);
    url
}

/// `url` with its `page` parameter set to `page` (added when missing), the rest kept.
fn with_page(url: &Url, page: u64) -> Url {
    let pairs: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(name, _)| name != "page")
        .map(|(name, value)| (name.into_owned(), value.into_owned()))
        .collect();
    let mut next = url.clone();
    next.query_pairs_mut()
        .clear()
        .extend_pairs(pairs)
        .append_pair("page", &page.to_string());
    next
}

fn query_number(url: &Url, name: &str) -> Option<u64> {
    url.query_pairs()
        .find(|(n, _)| n == name)
        .and_then(|(_, v)| v.parse().ok())
}

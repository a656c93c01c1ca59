//! A stand-in for one forge's repository listings (GitHub, GitLab, Gitea/Forgejo, Bitbucket
//! Cloud) on 127.0.0.1: the documented REST shapes and each forge's own pagination, answered
//! from a table of namespaces and repositories the test programs and changes while a client
//! lists. Git traffic to the clone URLs it hands out (`{server}/{path}.git`) is forwarded to a
//! real git server, so what is listed can be cloned.
//!
//! | forge | listing | next page |
//! | --- | --- | --- |
//! | GitHub | `GET /orgs/{org}/repos`, `GET /users/{user}/repos` (public only, as GitHub), `GET /installation/repositories` (an App installation's token); also under `/api/v3` | `Link` (`page`, `per_page` ≤ 100) |
//! | GitLab | `GET /api/v4/groups/{path}/projects` (`include_subgroups`, `archived`), `GET /api/v4/users/{name}/projects` | keyset (`pagination=keyset&order_by=id`: `Link` with `id_after`), else offset (`X-Next-Page`, `X-Total`, … and `Link`) |
//! | Gitea | `GET /api/v1/orgs/{org}/repos`, `GET /api/v1/users/{user}/repos` | `Link` and `X-Total-Count` (`page`, `limit` ≤ 50) |
//! | Bitbucket | `GET /2.0/repositories/{workspace}` | the body's `next` (`page`, `pagelen` ≤ 100) |
//!
//! Anonymous callers see public repositories only; the token set with
//! [`set_token`](NamespaceServer::set_token) (GitHub/Gitea `Authorization: Bearer|token`,
//! GitLab `PRIVATE-TOKEN`, Bitbucket `Bearer` or `Basic` of `user:password`) sees all; any
//! other credential gets 401 (before a token is set, any credential sees all). A GitHub App ([`set_github_app`](NamespaceServer::set_github_app))
//! mints installation tokens at `POST /app/installations/{id}/access_tokens` for a JWT whose
//! RS256 signature the test's public key verifies.
//!
//! ```no_run
//! # async fn demo() {
//! use mirrorhub_testkit::{NamespaceForge, NamespaceServer, RepoSpec};
//! let server = NamespaceServer::start(NamespaceForge::GitHub).await;
//! server.set_page_size(40);
//! for i in 0..120 {
//!     server.add_repo("acme", RepoSpec::new(&format!("repo-{i:03}")));
//! }
//! // … list `server.api_url()` as organization `acme`: three pages …
//! # }
//! ```

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderName, HeaderValue, CONTENT_TYPE};
use hyper::{Request, Response, StatusCode};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use url::Url;

use crate::forge_api::{forward, serve, RecordedRequest};

/// Which forge the server plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NamespaceForge {
    GitHub,
    GitLab,
    Gitea,
    Bitbucket,
}

/// A repository to add: its name and flags. Public, not archived, no fork, no description
/// unless said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoSpec {
    pub name: String,
    pub description: String,
    pub private: bool,
    pub archived: bool,
    pub fork: bool,
}

impl RepoSpec {
    pub fn new(name: &str) -> RepoSpec {
        RepoSpec {
            name: name.to_owned(),
            description: String::new(),
            private: false,
            archived: false,
            fork: false,
        }
    }

    pub fn description(mut self, text: &str) -> RepoSpec {
        self.description = text.to_owned();
        self
    }

    pub fn private(mut self) -> RepoSpec {
        self.private = true;
        self
    }

    pub fn archived(mut self) -> RepoSpec {
        self.archived = true;
        self
    }

    pub fn fork(mut self) -> RepoSpec {
        self.fork = true;
        self
    }
}

/// An answer the server gives instead of the real one, to the next API requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// `429 Too Many Requests` with `Retry-After: 1`.
    TooManyRequests,
    /// `503 Service Unavailable`.
    Unavailable,
    /// The rate limit spent, as the forge says it: GitHub and Gitea `403` with
    /// `X-RateLimit-Remaining: 0` and `X-RateLimit-Reset` (epoch seconds) `reset_in` from now;
    /// GitLab `429` with `RateLimit-Remaining: 0` and `RateLimit-Reset`; Bitbucket a bare `429`.
    RateLimitSpent { reset_in: Duration },
    /// The real answer, only after `delay` (a forge that hangs mid-listing).
    Slow { delay: Duration },
}

/// One repository of the table.
#[derive(Debug, Clone)]
struct Row {
    id: u64,
    /// The namespace as added: `acme`, `acme/platform`.
    owner: String,
    spec: RepoSpec,
}

impl Row {
    fn path(&self) -> String {
        format!("{}/{}", self.owner, self.spec.name)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Org,
    User,
}

struct Namespace {
    name: String,
    kind: Kind,
    id: u64,
}

struct App {
    id: u64,
    key: jsonwebtoken::DecodingKey,
}

struct Installation {
    namespaces: Vec<String>,
    suspended: bool,
}

struct Table {
    namespaces: HashMap<String, Namespace>,
    repos: BTreeMap<u64, Row>,
    next_id: u64,
    page_size: Option<usize>,
    link_headers: bool,
    gitlab_keyset: bool,
    token: Option<String>,
    app: Option<App>,
    installations: HashMap<u64, Installation>,
    /// Installation token → (installation id, expiry, epoch seconds).
    installation_tokens: HashMap<String, (u64, u64)>,
    token_lifetime: Duration,
    faults: VecDeque<Fault>,
    log: Vec<RecordedRequest>,
    git: Option<String>,
}

struct Shared {
    forge: NamespaceForge,
    base: String,
    table: Mutex<Table>,
}

impl Shared {
    fn table(&self) -> MutexGuard<'_, Table> {
        self.table.lock().expect("namespace table")
    }
}

/// The stand-in, on a free port of 127.0.0.1. Stopped on drop.
pub struct NamespaceServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: JoinHandle<()>,
}

impl NamespaceServer {
    /// Starts the server for `forge`. Must be called inside a tokio runtime, which runs it.
    pub async fn start(forge: NamespaceForge) -> NamespaceServer {
        let listener = TcpListener::bind(("127.0.0.1", 0))
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local addr");
        let shared = Arc::new(Shared {
            forge,
            base: format!("http://{addr}"),
            table: Mutex::new(Table {
                namespaces: HashMap::new(),
                repos: BTreeMap::new(),
                next_id: 1000,
                page_size: None,
                link_headers: true,
                gitlab_keyset: true,
                token: None,
                app: None,
                installations: HashMap::new(),
                installation_tokens: HashMap::new(),
                token_lifetime: Duration::from_secs(3600),
                faults: VecDeque::new(),
                log: Vec::new(),
                git: None,
            }),
        });
        let accept = tokio::spawn(serve(
            listener,
            Arc::clone(&shared),
            |request, shared: Arc<Shared>| async move { handle(request, &shared).await },
        ));
        NamespaceServer {
            addr,
            shared,
            accept,
        }
    }

    pub fn forge(&self) -> NamespaceForge {
        self.shared.forge
    }

    /// `http://127.0.0.1:PORT` (no trailing slash).
    pub fn url(&self) -> String {
        self.shared.base.clone()
    }

    /// What a client names as the forge's API: the server's URL for every forge (GitHub's REST
    /// root, GitLab's and Gitea's base URL, Bitbucket's API root). GitHub also answers under
    /// `/api/v3`, as GitHub Enterprise Server does.
    pub fn api_url(&self) -> String {
        self.url()
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The clone URL the listings give for `path` (`acme/api`): `{server}/acme/api.git`.
    pub fn clone_url(&self, path: &str) -> String {
        format!("{}/{path}.git", self.shared.base)
    }

    /// Sends git traffic (any request that is not the API's) to `base`, e.g. an
    /// [`HttpGitServer`](crate::HttpGitServer)'s URL serving `{root}/{path}.git`.
    pub fn forward_git_to(&self, base: &str) {
        self.shared.table().git = Some(base.trim_end_matches('/').to_owned());
    }

    /// The token that may list private repositories: once set, any other credential is
    /// refused with 401 (until then any credential will do). No credential lists public
    /// repositories.
    pub fn set_token(&self, token: &str) {
        self.shared.table().token = Some(token.to_owned());
    }

    /// Adds an organization (GitHub, Gitea), a group (GitLab; `a/b` is a subgroup of `a`, made
    /// too) or a workspace (Bitbucket). Adding one that exists does nothing.
    pub fn add_org(&self, namespace: &str) {
        self.shared.table().namespace(namespace, Kind::Org);
    }

    /// Adds a user account: GitHub and Gitea answer 404 for it as an organization, GitLab as a
    /// group.
    pub fn add_user(&self, name: &str) {
        self.shared.table().namespace(name, Kind::User);
    }

    /// Adds a repository to `namespace` (made an organization/group if unknown); returns its
    /// id, which stays through renames.
    pub fn add_repo(&self, namespace: &str, spec: RepoSpec) -> u64 {
        let mut table = self.shared.table();
        let owner = table.namespace(namespace, Kind::Org);
        let id = table.next_id;
        table.next_id += 1;
        table.repos.insert(id, Row { id, owner, spec });
        id
    }

    /// Adds `count` public repositories `{prefix}-0000`, `{prefix}-0001`, … to `namespace`;
    /// returns their paths in order.
    pub fn add_repos(&self, namespace: &str, prefix: &str, count: usize) -> Vec<String> {
        (0..count)
            .map(|i| {
                let name = format!("{prefix}-{i:04}");
                self.add_repo(namespace, RepoSpec::new(&name));
                format!("{namespace}/{name}")
            })
            .collect()
    }

    /// Renames the repository at `path` (`acme/api`) to `new_name`, keeping its id.
    pub fn rename(&self, path: &str, new_name: &str) {
        self.with_repo(path, |row| row.spec.name = new_name.to_owned());
    }

    /// Archives the repository at `path`.
    pub fn archive(&self, path: &str) {
        self.with_repo(path, |row| row.spec.archived = true);
    }

    /// Makes the repository at `path` private or public.
    pub fn set_private(&self, path: &str, private: bool) {
        self.with_repo(path, |row| row.spec.private = private);
    }

    /// Deletes the repository at `path`.
    pub fn remove(&self, path: &str) {
        let mut table = self.shared.table();
        let id = table
            .find(path)
            .unwrap_or_else(|| panic!("no repository {path}"));
        table.repos.remove(&id);
    }

    /// The id of the repository at `path`, if any.
    pub fn repo_id(&self, path: &str) -> Option<u64> {
        self.shared.table().find(path)
    }

    /// Caps a page at `size` repositories whatever the client asks (each forge's own cap
    /// otherwise: 100, Gitea 50).
    pub fn set_page_size(&self, size: usize) {
        assert!(size > 0, "a page holds at least one repository");
        self.shared.table().page_size = Some(size);
    }

    /// Whether answers carry `Link` headers (on by default). Off, GitLab's offset pages still
    /// say `X-Next-Page`, and a Gitea client must guess from a full page.
    pub fn set_link_headers(&self, on: bool) {
        self.shared.table().link_headers = on;
    }

    /// Whether GitLab answers keyset pagination (on by default). Off, a keyset request gets
    /// `405`, as instances and endpoints without it answer.
    pub fn set_gitlab_keyset(&self, on: bool) {
        self.shared.table().gitlab_keyset = on;
    }

    /// The next `count` API requests get `fault` instead of their answer (after any faults
    /// queued before).
    pub fn fail_next(&self, count: usize, fault: Fault) {
        self.shared
            .table()
            .faults
            .extend(std::iter::repeat_n(fault, count));
    }

    /// Makes the server a GitHub App `app_id` whose JWTs `public_key_pem` (PKCS#1 or SPKI PEM)
    /// verifies.
    pub fn set_github_app(&self, app_id: u64, public_key_pem: &str) {
        let key = jsonwebtoken::DecodingKey::from_rsa_pem(public_key_pem.as_bytes())
            .expect("an RSA public key in PEM form");
        self.shared.table().app = Some(App { id: app_id, key });
    }

    /// Adds the App's installation `installation_id`, given every repository of `namespaces`
    /// (at the time of each listing).
    pub fn add_installation(&self, installation_id: u64, namespaces: &[&str]) {
        let mut table = self.shared.table();
        for namespace in namespaces {
            table.namespace(namespace, Kind::Org);
        }
        table.installations.insert(
            installation_id,
            Installation {
                namespaces: namespaces.iter().map(|n| n.to_ascii_lowercase()).collect(),
                suspended: false,
            },
        );
    }

    /// Suspends an installation: GitHub answers 403 for its tokens, and its tokens stop
    /// working.
    pub fn suspend_installation(&self, installation_id: u64) {
        let mut table = self.shared.table();
        if let Some(installation) = table.installations.get_mut(&installation_id) {
            installation.suspended = true;
        }
    }

    /// How long the installation tokens made from now on live (an hour unless said).
    pub fn set_installation_token_lifetime(&self, lifetime: Duration) {
        self.shared.table().token_lifetime = lifetime;
    }

    /// The installation tokens made so far, in no order.
    pub fn installation_tokens(&self) -> Vec<String> {
        self.shared
            .table()
            .installation_tokens
            .keys()
            .cloned()
            .collect()
    }

    /// The API requests received so far, oldest first (git traffic is not recorded).
    pub fn recorded(&self) -> Vec<RecordedRequest> {
        self.shared.table().log.clone()
    }

    /// Forgets the requests recorded so far.
    pub fn clear_recorded(&self) {
        self.shared.table().log.clear();
    }

    fn with_repo(&self, path: &str, change: impl FnOnce(&mut Row)) {
        let mut table = self.shared.table();
        let id = table
            .find(path)
            .unwrap_or_else(|| panic!("no repository {path}"));
        change(table.repos.get_mut(&id).expect("found"));
    }
}

impl Drop for NamespaceServer {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

impl Table {
    /// The namespace `name` (made with `kind` if unknown, GitLab parents too); returns its name
    /// as first added.
    fn namespace(&mut self, name: &str, kind: Kind) -> String {
        if let Some((parent, _)) = name.rsplit_once('/') {
            self.namespace(parent, Kind::Org);
        }
        let key = name.to_ascii_lowercase();
        let id = self.next_id;
        let entry = self.namespaces.entry(key).or_insert_with(|| Namespace {
            name: name.to_owned(),
            kind,
            id,
        });
        let name = entry.name.clone();
        if entry.id == id {
            self.next_id += 1;
        }
        name
    }

    fn find(&self, path: &str) -> Option<u64> {
        self.repos
            .values()
            .find(|row| row.path().eq_ignore_ascii_case(path))
            .map(|row| row.id)
    }

    fn cap(&self, forge: NamespaceForge, asked: Option<usize>) -> usize {
        let (default, max) = match forge {
            NamespaceForge::GitHub => (30, 100),
            NamespaceForge::GitLab => (20, 100),
            NamespaceForge::Gitea => (30, 50),
            NamespaceForge::Bitbucket => (10, 100),
        };
        let asked = asked.filter(|&n| n > 0).unwrap_or(default).min(max);
        self.page_size.map_or(asked, |cap| asked.min(cap))
    }
}

/// Who a request is from.
enum Caller {
    Anonymous,
    Token,
    Installation(u64),
    /// A JWT, for the App's own endpoints.
    Bearer(String),
    Refused,
}

/// An answer before it becomes a response.
struct Answer {
    status: u16,
    body: Option<Value>,
    headers: Vec<(String, String)>,
}

impl Answer {
    fn json(status: u16, body: Value) -> Answer {
        Answer {
            status,
            body: Some(body),
            headers: Vec::new(),
        }
    }

    fn header(mut self, name: &str, value: impl Into<String>) -> Answer {
        self.headers.push((name.to_owned(), value.into()));
        self
    }
}

fn is_api(forge: NamespaceForge, path: &str) -> bool {
    match forge {
        NamespaceForge::GitHub => {
            let path = path.strip_prefix("/api/v3").unwrap_or(path);
            ["/orgs/", "/users/", "/installation/", "/app/"]
                .iter()
                .any(|p| path.starts_with(p))
        }
        NamespaceForge::GitLab => path.starts_with("/api/v4/"),
        NamespaceForge::Gitea => path.starts_with("/api/v1/"),
        NamespaceForge::Bitbucket => path.starts_with("/2.0/"),
    }
}

async fn handle(request: Request<Incoming>, shared: &Shared) -> Response<Full<Bytes>> {
    let (parts, body) = request.into_parts();
    let body = match body.collect().await {
        Ok(collected) => collected.to_bytes().to_vec(),
        Err(_) => return respond(Answer::json(400, json!({"message": "bad body"}))),
    };
    let record = RecordedRequest::new(&parts, body);
    if !is_api(shared.forge, parts.uri.path()) {
        let git = shared.table().git.clone();
        return match git {
            Some(base) => forward(&base, &parts, record.path, record.body).await,
            None => respond(not_found(shared.forge)),
        };
    }
    let fault = {
        let mut table = shared.table();
        table.log.push(record.clone());
        table.faults.pop_front()
    };
    let answer = match fault {
        Some(Fault::Slow { delay }) => {
            tokio::time::sleep(delay).await;
            answer(shared, &mut shared.table(), &record)
        }
        Some(fault) => fault_answer(shared.forge, fault),
        None => answer(shared, &mut shared.table(), &record),
    };
    respond(answer)
}

fn respond(answer: Answer) -> Response<Full<Bytes>> {
    let mut response = match answer.body {
        Some(json) => {
            let mut response = Response::new(Full::new(Bytes::from(json.to_string())));
            response.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static("application/json; charset=utf-8"),
            );
            response
        }
        None => Response::new(Full::new(Bytes::new())),
    };
    *response.status_mut() = StatusCode::from_u16(answer.status).expect("a valid status");
    for (name, value) in answer.headers {
        response.headers_mut().append(
            HeaderName::try_from(name).expect("header name"),
            HeaderValue::try_from(value).expect("header value"),
        );
    }
    response
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

fn fault_answer(forge: NamespaceForge, fault: Fault) -> Answer {
    match fault {
        Fault::Slow { .. } => unreachable!("a slow answer is the real one, given by `handle`"),
        Fault::TooManyRequests => Answer::json(
            429,
            json!({"message": "You have exceeded a secondary rate limit."}),
        )
        .header("retry-after", "1"),
        Fault::Unavailable => Answer::json(503, json!({"message": "Service Unavailable"})),
        Fault::RateLimitSpent { reset_in } => {
            let reset = (now_secs() + reset_in.as_secs()).to_string();
            match forge {
                NamespaceForge::GitHub | NamespaceForge::Gitea => Answer::json(
                    403,
                    json!({"message": "API rate limit exceeded for 127.0.0.1.",
                           "documentation_url": "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api"}),
                )
                .header("x-ratelimit-limit", "60")
                .header("x-ratelimit-remaining", "0")
                .header("x-ratelimit-used", "60")
                .header("x-ratelimit-reset", reset),
                NamespaceForge::GitLab => {
                    Answer::json(429, json!({"message": "Retry later"}))
                        .header("ratelimit-limit", "600")
                        .header("ratelimit-observed", "600")
                        .header("ratelimit-remaining", "0")
                        .header("ratelimit-reset", reset)
                }
                NamespaceForge::Bitbucket => Answer::json(
                    429,
                    json!({"type": "error", "error": {"message": "Rate limit for this resource has been exceeded"}}),
                ),
            }
        }
    }
}

fn not_found(forge: NamespaceForge) -> Answer {
    Answer::json(
        404,
        match forge {
            NamespaceForge::GitHub => json!({"message": "Not Found",
                "documentation_url": "https://docs.github.com/rest", "status": "404"}),
            NamespaceForge::GitLab => json!({"message": "404 Group Not Found"}),
            NamespaceForge::Gitea => {
                json!({"errors": [], "message": "The target couldn't be found.",
                "url": "https://gitea.example/api/swagger"})
            }
            NamespaceForge::Bitbucket => json!({"type": "error",
                "error": {"message": "No workspace with identifier 'x'."}}),
        },
    )
}

fn unauthorized(forge: NamespaceForge) -> Answer {
    Answer::json(
        401,
        match forge {
            NamespaceForge::GitHub => json!({"message": "Bad credentials",
                "documentation_url": "https://docs.github.com/rest", "status": "401"}),
            NamespaceForge::GitLab => json!({"message": "401 Unauthorized"}),
            NamespaceForge::Gitea => json!({"message": "user does not exist [uid: 0, name: ]"}),
            NamespaceForge::Bitbucket => json!({"type": "error",
                "error": {"message": "Access token expired or invalid."}}),
        },
    )
}

/// Who sent `request`, by the forge's way of carrying a token.
fn caller(forge: NamespaceForge, table: &Table, request: &RecordedRequest) -> Caller {
    let presented = match forge {
        NamespaceForge::GitLab => {
            request
                .header("private-token")
                .map(str::to_owned)
                .or_else(|| {
                    request
                        .header("authorization")?
                        .strip_prefix("Bearer ")
                        .map(str::to_owned)
                })
        }
        _ => request.header("authorization").and_then(|value| {
            let (scheme, credential) = value.split_once(' ')?;
            match scheme.to_ascii_lowercase().as_str() {
                "bearer" | "token" => Some(credential.trim().to_owned()),
                "basic" if forge == NamespaceForge::Bitbucket => {
                    let decoded = BASE64.decode(credential.trim()).ok()?;
                    String::from_utf8(decoded).ok()
                }
                _ => Some(String::new()),
            }
        }),
    };
    let Some(presented) = presented else {
        return Caller::Anonymous;
    };
    if table.token.as_deref() == Some(presented.as_str()) {
        return Caller::Token;
    }
    if let Some(&(installation, expires)) = table.installation_tokens.get(&presented) {
        let live = table
            .installations
            .get(&installation)
            .is_some_and(|i| !i.suspended);
        if live && now_secs() < expires {
            return Caller::Installation(installation);
        }
        return Caller::Refused;
    }
    if forge == NamespaceForge::GitHub && presented.starts_with("eyJ") {
        return Caller::Bearer(presented);
    }
    // No token set: any credential will do.
    if table.token.is_none() && !presented.is_empty() {
        return Caller::Token;
    }
    Caller::Refused
}

/// The query parameters of `path` (the last of a repeated name wins).
fn params(path: &str) -> HashMap<String, String> {
    let query = path.split_once('?').map(|(_, q)| q).unwrap_or_default();
    url::form_urlencoded::parse(query.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn answer(shared: &Shared, table: &mut Table, request: &RecordedRequest) -> Answer {
    let forge = shared.forge;
    let caller = caller(forge, table, request);
    if matches!(caller, Caller::Refused) {
        return unauthorized(forge);
    }
    let path = request.path_only().to_owned();
    let segments: Vec<String> = path
        .trim_start_matches('/')
        .split('/')
        .map(|s| {
            url::form_urlencoded::parse(format!("x={}", s.replace('+', "%2B")).as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default()
        })
        .collect();
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    let get = request.method == "GET";
    // A GitHub App's JWT is good for the App's own endpoints only.
    if matches!(caller, Caller::Bearer(_)) && !segments.contains(&"app") {
        return unauthorized(forge);
    }
    match (forge, segments.as_slice()) {
        (NamespaceForge::GitHub, ["api", "v3", rest @ ..]) | (NamespaceForge::GitHub, rest) => {
            match (request.method.as_str(), rest) {
                ("GET", ["orgs", org, "repos"]) => {
                    github_list(shared, table, request, &caller, org, Some(Kind::Org))
                }
                ("GET", ["users", user, "repos"]) => {
                    github_list(shared, table, request, &caller, user, None)
                }
                ("GET", ["installation", "repositories"]) => {
                    installation_repos(shared, table, request, &caller)
                }
                ("POST", ["app", "installations", id, "access_tokens"]) => {
                    mint_token(table, &caller, id)
                }
                _ => not_found(forge),
            }
        }
        (NamespaceForge::GitLab, ["api", "v4", "groups", group, "projects"]) if get => {
            gitlab_list(shared, table, request, &caller, group, Kind::Org)
        }
        (NamespaceForge::GitLab, ["api", "v4", "users", user, "projects"]) if get => {
            gitlab_list(shared, table, request, &caller, user, Kind::User)
        }
        (NamespaceForge::Gitea, ["api", "v1", "orgs", org, "repos"]) if get => {
            gitea_list(shared, table, request, &caller, org, Some(Kind::Org))
        }
        (NamespaceForge::Gitea, ["api", "v1", "users", user, "repos"]) if get => {
            gitea_list(shared, table, request, &caller, user, None)
        }
        (NamespaceForge::Bitbucket, ["2.0", "repositories", workspace]) if get => {
            bitbucket_list(shared, table, request, &caller, workspace)
        }
        _ => not_found(forge),
    }
}

/// The namespace `name` if it exists with `kind` (any kind for `None`).
fn known<'t>(table: &'t Table, name: &str, kind: Option<Kind>) -> Option<&'t Namespace> {
    table
        .namespaces
        .get(&name.to_ascii_lowercase())
        .filter(|ns| kind.is_none_or(|k| ns.kind == k))
}

fn sees_private(caller: &Caller) -> bool {
    matches!(caller, Caller::Token | Caller::Installation(_))
}

/// The repositories directly in `owner` (with its subgroups for `subgroups`), by id.
fn rows_of<'t>(table: &'t Table, owner: &str, subgroups: bool, private: bool) -> Vec<&'t Row> {
    let owner = owner.to_ascii_lowercase();
    let prefix = format!("{owner}/");
    table
        .repos
        .values()
        .filter(|row| {
            let of = row.owner.to_ascii_lowercase();
            (of == owner || (subgroups && of.starts_with(&prefix)))
                && (private || !row.spec.private)
        })
        .collect()
}

/// `request`'s URL on this server with `param` set to `value`.
fn url_with(shared: &Shared, request: &RecordedRequest, param: &str, value: &str) -> String {
    let mut url = Url::parse(&format!("{}{}", shared.base, request.path)).expect("request URL");
    let kept: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(name, _)| name != param)
        .map(|(n, v)| (n.into_owned(), v.into_owned()))
        .collect();
    url.query_pairs_mut()
        .clear()
        .extend_pairs(kept)
        .append_pair(param, value);
    url.into()
}

/// Page `page` (from 1) of `rows` at `size` a page, and the number of pages.
fn slice<T>(rows: &[T], page: usize, size: usize) -> (&[T], usize) {
    let pages = rows.len().div_ceil(size).max(1);
    let start = (page.max(1) - 1).saturating_mul(size).min(rows.len());
    let end = (start + size).min(rows.len());
    (&rows[start..end], pages)
}

/// GitHub's and Gitea's `Link`: first, prev, next, last as they apply.
fn link_header(
    shared: &Shared,
    request: &RecordedRequest,
    page_param: &str,
    page: usize,
    pages: usize,
) -> Option<String> {
    let mut links = Vec::new();
    let link = |n: usize, rel: &str| {
        format!(
            "<{}>; rel=\"{rel}\"",
            url_with(shared, request, page_param, &n.to_string())
        )
    };
    if page < pages {
        links.push(link(page + 1, "next"));
        links.push(link(pages, "last"));
    }
    if page > 1 {
        links.push(link(1, "first"));
        links.push(link(page - 1, "prev"));
    }
    (!links.is_empty()).then(|| links.join(", "))
}

fn number(params: &HashMap<String, String>, name: &str) -> Option<usize> {
    params.get(name).and_then(|v| v.parse().ok())
}

/// What a listing request asks for: the namespace, the repositories there the caller may see
/// (`private`: private ones too), in id order, and the page (number from 1, size capped).
struct Asked<'t> {
    namespace: &'t Namespace,
    rows: Vec<&'t Row>,
    params: HashMap<String, String>,
    page: usize,
    size: usize,
}

/// The [`Asked`] of a request listing `name` (a namespace of `kind`, any for `None`), its page
/// size in `size_param`; a 404 when there is no such namespace.
fn asked<'t>(
    shared: &Shared,
    table: &'t Table,
    request: &RecordedRequest,
    (name, kind): (&str, Option<Kind>),
    private: bool,
    size_param: &str,
) -> Result<Asked<'t>, Answer> {
    let namespace = known(table, name, kind).ok_or_else(|| not_found(shared.forge))?;
    let params = params(&request.path);
    Ok(Asked {
        namespace,
        rows: rows_of(table, &namespace.name, false, private),
        page: number(&params, "page").unwrap_or(1),
        size: table.cap(shared.forge, number(&params, size_param)),
        params,
    })
}

fn github_list(
    shared: &Shared,
    table: &Table,
    request: &RecordedRequest,
    caller: &Caller,
    name: &str,
    kind: Option<Kind>,
) -> Answer {
    // `/users/{user}/repos` lists public repositories only, whoever asks.
    let private = kind == Some(Kind::Org) && sees_private(caller);
    let mut asked = match asked(shared, table, request, (name, kind), private, "per_page") {
        Ok(asked) => asked,
        Err(answer) => return answer,
    };
    match asked.params.get("type").map(String::as_str) {
        Some("public") => asked.rows.retain(|r| !r.spec.private),
        Some("private") => asked.rows.retain(|r| r.spec.private),
        Some("forks") => asked.rows.retain(|r| r.spec.fork),
        Some("sources") => asked.rows.retain(|r| !r.spec.fork),
        _ => {}
    }
    let page = asked.page;
    let (rows, pages) = slice(&asked.rows, page, asked.size);
    let body: Vec<Value> = rows
        .iter()
        .map(|row| github_repo(shared, table, row))
        .collect();
    let mut answer = Answer::json(200, Value::Array(body));
    answer = github_rate_headers(answer);
    if table.link_headers {
        if let Some(link) = link_header(shared, request, "page", page, pages) {
            answer = answer.header("link", link);
        }
    }
    answer
}

fn github_rate_headers(answer: Answer) -> Answer {
    answer
        .header("x-ratelimit-limit", "5000")
        .header("x-ratelimit-remaining", "4999")
        .header("x-ratelimit-reset", (now_secs() + 3600).to_string())
        .header("x-github-media-type", "github.v3; format=json")
}

fn installation_repos(
    shared: &Shared,
    table: &Table,
    request: &RecordedRequest,
    caller: &Caller,
) -> Answer {
    let Caller::Installation(id) = caller else {
        return unauthorized(shared.forge);
    };
    let Some(installation) = table.installations.get(id) else {
        return unauthorized(shared.forge);
    };
    let rows: Vec<&Row> = table
        .repos
        .values()
        .filter(|row| {
            installation
                .namespaces
                .contains(&row.owner.to_ascii_lowercase())
        })
        .collect();
    let params = params(&request.path);
    let size = table.cap(shared.forge, number(&params, "per_page"));
    let page = number(&params, "page").unwrap_or(1);
    let total = rows.len();
    let (rows, pages) = slice(&rows, page, size);
    let repositories: Vec<Value> = rows
        .iter()
        .map(|row| github_repo(shared, table, row))
        .collect();
    let mut answer = Answer::json(
        200,
        json!({"total_count": total, "repository_selection": "selected",
               "repositories": repositories}),
    );
    if table.link_headers {
        if let Some(link) = link_header(shared, request, "page", page, pages) {
            answer = answer.header("link", link);
        }
    }
    answer
}

fn mint_token(table: &mut Table, caller: &Caller, id: &str) -> Answer {
    let forge = NamespaceForge::GitHub;
    let (Caller::Bearer(jwt), Some(app)) = (caller, &table.app) else {
        return unauthorized(forge);
    };
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::RS256);
    // `iss` is the App id as a number (what GitHub takes), which jsonwebtoken checks only as
    // a string: checked below.
    validation.set_required_spec_claims(&["exp", "iat"]);
    let Ok(claims) = jsonwebtoken::decode::<Value>(jwt, &app.key, &validation) else {
        return Answer::json(
            401,
            json!({"message": "A JSON web token could not be decoded"}),
        );
    };
    let claims = claims.claims;
    let iss_matches = claims["iss"].as_u64() == Some(app.id)
        || claims["iss"].as_str() == Some(app.id.to_string().as_str());
    let iat = claims["iat"].as_u64().unwrap_or(0);
    let exp = claims["exp"].as_u64().unwrap_or(0);
    // GitHub: at most ten minutes between issue and expiry, and not issued in the future.
    if !iss_matches || exp.saturating_sub(iat) > 660 || iat > now_secs() + 60 {
        return Answer::json(
            401,
            json!({"message": "'Expiration time' claim ('exp') is too far in the future"}),
        );
    }
    let Ok(id) = id.parse::<u64>() else {
        return not_found(forge);
    };
    match table.installations.get(&id) {
        None => return not_found(forge),
        Some(installation) if installation.suspended => {
            return Answer::json(
                403,
                json!({"message": "This installation has been suspended"}),
            )
        }
        Some(_) => {}
    }
    let lifetime = table.token_lifetime;
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    let token = format!("ghs_{id}x{:x}x{}", nanos, table.installation_tokens.len());
    let expires = SystemTime::now() + lifetime;
    let expires_secs = expires
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    table
        .installation_tokens
        .insert(token.clone(), (id, expires_secs));
    let expires_at = chrono::DateTime::<chrono::Utc>::from(expires)
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    Answer::json(
        201,
        json!({"token": token, "expires_at": expires_at,
               "permissions": {"metadata": "read", "contents": "read"},
               "repository_selection": "selected"}),
    )
}

fn github_repo(shared: &Shared, table: &Table, row: &Row) -> Value {
    let base = &shared.base;
    let path = row.path();
    let host = base.trim_start_matches("http://");
    let owner = known(table, &row.owner, None);
    let owner_type = match owner.map(|o| o.kind) {
        Some(Kind::User) => "User",
        _ => "Organization",
    };
    let login = &row.owner;
    let owner_id = owner.map_or(1, |o| o.id);
    let (description, private, archived, fork) = (
        &row.spec.description,
        row.spec.private,
        row.spec.archived,
        row.spec.fork,
    );
    let mut repo = json!({
        "id": row.id,
        "node_id": format!("R_kgDO{:08}", row.id),
        "name": row.spec.name,
        "full_name": path,
        "private": private,
        "owner": {
            "login": login, "id": owner_id, "node_id": format!("O_kgDO{owner_id:08}"),
            "avatar_url": format!("{base}/avatars/{login}"), "gravatar_id": "",
            "url": format!("{base}/users/{login}"), "html_url": format!("{base}/{login}"),
            "repos_url": format!("{base}/users/{login}/repos"),
            "type": owner_type, "user_view_type": "public", "site_admin": false
        },
        "html_url": format!("{base}/{path}"),
        "description": if description.is_empty() { Value::Null } else { json!(description) },
        "fork": fork,
        "url": format!("{base}/repos/{path}"),
        "archive_url": format!("{base}/repos/{path}/{{archive_format}}{{/ref}}"),
        "hooks_url": format!("{base}/repos/{path}/hooks"),
        "created_at": "2023-11-14T22:13:20Z",
        "updated_at": "2023-11-14T22:13:20Z",
        "pushed_at": "2023-11-14T22:13:20Z",
        "git_url": format!("git://{host}/{path}.git"),
        "ssh_url": format!("git@{host}:{path}.git"),
        "clone_url": format!("{base}/{path}.git"),
        "svn_url": format!("{base}/{path}"),
    });
    // Two halves: one `json!` of them all is past the macro's recursion limit.
    let rest = json!({
        "homepage": null,
        "size": 1,
        "stargazers_count": 0,
        "watchers_count": 0,
        "language": null,
        "has_issues": true,
        "has_projects": true,
        "has_downloads": true,
        "has_wiki": true,
        "has_pages": false,
        "has_discussions": false,
        "forks_count": 0,
        "mirror_url": null,
        "archived": archived,
        "disabled": false,
        "open_issues_count": 0,
        "license": null,
        "allow_forking": true,
        "is_template": false,
        "web_commit_signoff_required": false,
        "topics": [],
        "visibility": if private { "private" } else { "public" },
        "forks": 0,
        "open_issues": 0,
        "watchers": 0,
        "default_branch": "main",
        "permissions": {"admin": false, "maintain": false, "push": false, "triage": false,
                        "pull": true}
    });
    if let (Value::Object(repo), Value::Object(rest)) = (&mut repo, rest) {
        repo.extend(rest);
    }
    repo
}

fn gitea_list(
    shared: &Shared,
    table: &Table,
    request: &RecordedRequest,
    caller: &Caller,
    name: &str,
    kind: Option<Kind>,
) -> Answer {
    let private = sees_private(caller);
    let asked = match asked(shared, table, request, (name, kind), private, "limit") {
        Ok(asked) => asked,
        Err(answer) => return answer,
    };
    let (namespace, page, total) = (asked.namespace, asked.page, asked.rows.len());
    let (rows, pages) = slice(&asked.rows, page, asked.size);
    let base = &shared.base;
    let host = base.trim_start_matches("http://");
    let owner_id = namespace.id;
    let body: Vec<Value> = rows
        .iter()
        .map(|row| {
            let path = row.path();
            let login = &row.owner;
            json!({
                "id": row.id,
                "owner": {"id": owner_id, "login": login, "login_name": "", "full_name": "",
                          "email": "", "avatar_url": format!("{base}/avatars/{owner_id}"),
                          "username": login, "visibility": "public"},
                "name": row.spec.name,
                "full_name": path,
                "description": row.spec.description,
                "empty": false,
                "private": row.spec.private,
                "fork": row.spec.fork,
                "template": false,
                "parent": null,
                "mirror": false,
                "size": 25,
                "language": "",
                "languages_url": format!("{base}/api/v1/repos/{path}/languages"),
                "html_url": format!("{base}/{path}"),
                "url": format!("{base}/api/v1/repos/{path}"),
                "link": "",
                "ssh_url": format!("git@{host}:{path}.git"),
                "clone_url": format!("{base}/{path}.git"),
                "original_url": "",
                "website": "",
                "stars_count": 0,
                "forks_count": 0,
                "watchers_count": 1,
                "open_issues_count": 0,
                "open_pr_counter": 0,
                "release_counter": 0,
                "default_branch": "main",
                "archived": row.spec.archived,
                "created_at": "2023-11-14T22:13:20Z",
                "updated_at": "2023-11-14T22:13:20Z",
                "archived_at": "1970-01-01T00:00:00Z",
                "permissions": {"admin": false, "push": false, "pull": true},
                "has_issues": true,
                "internal": false,
                "mirror_interval": "",
                "object_format_name": "sha1"
            })
        })
        .collect();
    let mut answer =
        Answer::json(200, Value::Array(body)).header("x-total-count", total.to_string());
    if table.link_headers {
        if let Some(link) = link_header(shared, request, "page", page, pages) {
            answer = answer.header("link", link);
        }
    }
    answer
}

fn gitlab_list(
    shared: &Shared,
    table: &Table,
    request: &RecordedRequest,
    caller: &Caller,
    name: &str,
    kind: Kind,
) -> Answer {
    let Some(namespace) = known(table, name, Some(kind)) else {
        return Answer::json(
            404,
            json!({"message": if kind == Kind::Org { "404 Group Not Found" } else { "404 User Not Found" }}),
        );
    };
    let params = params(&request.path);
    let subgroups =
        kind == Kind::Org && params.get("include_subgroups").map(String::as_str) == Some("true");
    let mut rows = rows_of(table, &namespace.name, subgroups, sees_private(caller));
    match params.get("archived").map(String::as_str) {
        Some("true") => rows.retain(|r| r.spec.archived),
        Some("false") => rows.retain(|r| !r.spec.archived),
        _ => {}
    }
    let ascending = params.get("sort").map(String::as_str) == Some("asc");
    if !ascending {
        rows.reverse();
    }
    let size = table.cap(shared.forge, number(&params, "per_page"));
    let keyset = params.get("pagination").map(String::as_str) == Some("keyset");
    let mut answer;
    if keyset {
        if !table.gitlab_keyset || params.get("order_by").map(String::as_str) != Some("id") {
            return Answer::json(
                405,
                json!({"error": "Keyset pagination is not yet available for this type of request"}),
            );
        }
        let after = params.get("id_after").and_then(|v| v.parse::<u64>().ok());
        let before = params.get("id_before").and_then(|v| v.parse::<u64>().ok());
        rows.retain(|r| after.is_none_or(|a| r.id > a) && before.is_none_or(|b| r.id < b));
        let more = rows.len() > size;
        rows.truncate(size);
        answer = Answer::json(200, gitlab_projects(shared, table, &rows));
        if let (true, Some(last), true) = (more, rows.last(), table.link_headers) {
            let (param, drop) = if ascending {
                ("id_after", "id_before")
            } else {
                ("id_before", "id_after")
            };
            let mut next = Url::parse(&url_with(shared, request, param, &last.id.to_string()))
                .expect("next URL");
            let kept: Vec<(String, String)> = next
                .query_pairs()
                .filter(|(n, _)| n != drop)
                .map(|(n, v)| (n.into_owned(), v.into_owned()))
                .collect();
            next.query_pairs_mut().clear().extend_pairs(kept);
            answer = answer.header("link", format!("<{next}>; rel=\"next\""));
        }
    } else {
        let page = number(&params, "page").unwrap_or(1);
        let total = rows.len();
        let (rows, pages) = slice(&rows, page, size);
        answer = Answer::json(200, gitlab_projects(shared, table, rows));
        let next = if page < pages {
            (page + 1).to_string()
        } else {
            String::new()
        };
        let prev = if page > 1 {
            (page - 1).to_string()
        } else {
            String::new()
        };
        answer = answer
            .header("x-page", page.to_string())
            .header("x-per-page", size.to_string())
            .header("x-next-page", next)
            .header("x-prev-page", prev)
            .header("x-total", total.to_string())
            .header("x-total-pages", pages.to_string());
        if table.link_headers {
            let mut links = Vec::new();
            if page < pages {
                links.push(format!(
                    "<{}>; rel=\"next\"",
                    url_with(shared, request, "page", &(page + 1).to_string())
                ));
            }
            links.push(format!(
                "<{}>; rel=\"first\"",
                url_with(shared, request, "page", "1")
            ));
            links.push(format!(
                "<{}>; rel=\"last\"",
                url_with(shared, request, "page", &pages.to_string())
            ));
            answer = answer.header("link", links.join(", "));
        }
    }
    answer
}

fn gitlab_projects(shared: &Shared, table: &Table, rows: &[&Row]) -> Value {
    let base = &shared.base;
    let host = base.trim_start_matches("http://");
    Value::Array(
        rows.iter()
            .map(|row| {
                let path = row.path();
                let namespace = known(table, &row.owner, None);
                let namespace_id = namespace.map_or(1, |n| n.id);
                let kind = match namespace.map(|n| n.kind) {
                    Some(Kind::User) => "user",
                    _ => "group",
                };
                let short = row.owner.rsplit('/').next().unwrap_or(&row.owner);
                let mut project = json!({
                    "id": row.id,
                    "description": row.spec.description,
                    "name": row.spec.name,
                    "name_with_namespace": path.replace('/', " / "),
                    "path": row.spec.name,
                    "path_with_namespace": path,
                    "created_at": "2023-11-14T22:13:20.000Z",
                    "default_branch": "main",
                    "tag_list": [],
                    "topics": [],
                    "ssh_url_to_repo": format!("git@{host}:{path}.git"),
                    "http_url_to_repo": format!("{base}/{path}.git"),
                    "web_url": format!("{base}/{path}"),
                    "readme_url": null,
                    "forks_count": 0,
                    "avatar_url": null,
                    "star_count": 0,
                    "last_activity_at": "2023-11-14T22:13:20.000Z",
                    "namespace": {"id": namespace_id, "name": short, "path": short, "kind": kind,
                                  "full_path": row.owner, "parent_id": null, "avatar_url": null,
                                  "web_url": format!("{base}/{}", row.owner)},
                    "visibility": if row.spec.private { "private" } else { "public" },
                    "archived": row.spec.archived,
                    "empty_repo": false,
                    "repository_access_level": "enabled"
                });
                if row.spec.fork {
                    project["forked_from_project"] = json!({
                        "id": 1, "name": "upstream", "path": "upstream",
                        "path_with_namespace": "elsewhere/upstream",
                        "http_url_to_repo": format!("{base}/elsewhere/upstream.git")
                    });
                }
                project
            })
            .collect(),
    )
}

fn bitbucket_list(
    shared: &Shared,
    table: &Table,
    request: &RecordedRequest,
    caller: &Caller,
    workspace: &str,
) -> Answer {
    let private = sees_private(caller);
    let asked = match asked(
        shared,
        table,
        request,
        (workspace, None),
        private,
        "pagelen",
    ) {
        Ok(asked) => asked,
        Err(answer) => return answer,
    };
    let (namespace, page, size, total) =
        (asked.namespace, asked.page, asked.size, asked.rows.len());
    let (rows, pages) = slice(&asked.rows, page, size);
    let base = &shared.base;
    let host = base.trim_start_matches("http://");
    // Bitbucket names the caller in https clone links when it knows them.
    let user = request
        .header("authorization")
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| BASE64.decode(b.trim()).ok())
        .and_then(|d| String::from_utf8(d).ok())
        .and_then(|d| d.split_once(':').map(|(u, _)| format!("{u}@")))
        .unwrap_or_default();
    let ws_uuid = uuid(namespace.id);
    let values: Vec<Value> = rows
        .iter()
        .map(|row| {
            let path = row.path();
            let mut repo = json!({
                "type": "repository",
                "full_name": path,
                "links": {
                    "self": {"href": format!("{base}/2.0/repositories/{path}")},
                    "html": {"href": format!("{base}/{path}")},
                    "clone": [
                        {"name": "https", "href": format!("http://{user}{host}/{path}.git")},
                        {"name": "ssh", "href": format!("git@{host}:{path}.git")}
                    ]
                },
                "name": row.spec.name,
                "slug": row.spec.name,
                "description": row.spec.description,
                "scm": "git",
                "website": null,
                "owner": {"display_name": namespace.name, "type": "team",
                          "uuid": ws_uuid, "username": namespace.name},
                "workspace": {"type": "workspace", "uuid": ws_uuid, "name": namespace.name,
                              "slug": namespace.name},
                "is_private": row.spec.private,
                "project": {"type": "project", "key": "PROJ", "name": "Project"},
                "fork_policy": "allow_forks",
                "created_on": "2023-11-14T22:13:20.000000+00:00",
                "updated_on": "2023-11-14T22:13:20.000000+00:00",
                "size": 1024,
                "language": "",
                "uuid": uuid(row.id),
                "mainbranch": {"name": "main", "type": "branch"},
                "override_settings": {"default_merge_strategy": true, "branching_model": true},
                "has_issues": false,
                "has_wiki": false
            });
            if row.spec.fork {
                repo["parent"] = json!({"type": "repository", "full_name": "elsewhere/upstream",
                                        "name": "upstream", "uuid": uuid(1)});
            }
            repo
        })
        .collect();
    let mut body = json!({"pagelen": size, "size": total, "page": page, "values": values});
    if page < pages {
        body["next"] = json!(url_with(shared, request, "page", &(page + 1).to_string()));
    }
    if page > 1 {
        body["previous"] = json!(url_with(shared, request, "page", &(page - 1).to_string()));
    }
    Answer::json(200, body)
}

/// A Bitbucket-style `{uuid}` made from a number.
fn uuid(n: u64) -> String {
    format!("{{{:08x}-0000-4000-8000-{:012x}}}", n & 0xffff_ffff, n)
}

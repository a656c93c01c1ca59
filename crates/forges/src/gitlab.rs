//! GitLab (gitlab.com and self-managed), through the `gitlab` crate's endpoint types.
//!
//! The endpoints (`CreateHook`, `DeleteHook`), their form encoding, the project-path escaping and
//! the decoding of GitLab's answers are the crate's. The transport is ours: a small
//! [`gitlab::api::AsyncClient`] over the workspace's reqwest client, because the crate's own
//! `AsyncGitlab` (a) sends `GET /api/v4/user` to check the token every time one is built, which
//! would double every call, (b) takes a host rather than a base URL (no relative URL root except
//! by accident of string formatting), and (c) has no timeout setting.

use async_trait::async_trait;
use bytes::Bytes;
use gitlab::api::common::NameOrId;
use gitlab::api::projects::hooks::{CreateHook, DeleteHook};
use gitlab::api::projects::issues::notes::awards::CreateIssueNoteAward;
use gitlab::api::projects::issues::notes::{CreateIssueNote, EditIssueNote};
use gitlab::api::projects::members::AllProjectMembers;
use gitlab::api::projects::merge_requests::notes::awards::CreateMergeRequestNoteAward;
use gitlab::api::projects::merge_requests::notes::{CreateMergeRequestNote, EditMergeRequestNote};
use gitlab::api::{self, ApiError, AsyncQuery, Pagination};
use http::header::HeaderValue;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use url::Url;

use crate::error::BotTarget;
use crate::{CommentThread, ForgeError, ForgeKind, ForgeRepo};

#[derive(Deserialize)]
struct Created {
    id: u64,
}

/// `POST {base}/api/v4/projects/{url-encoded path}/hooks`, a form with `url`, `push_events`,
/// `tag_push_events`, `note_events`, `enable_ssl_verification` and `token` → 201 `{"id": …}`.
pub(crate) async fn create_push_hook(
    http: &reqwest::Client,
    base: &Url,
    repo: &ForgeRepo,
    token: &SecretString,
    hook_url: &str,
    secret: &SecretString,
) -> Result<String, ForgeError> {
    check_path(repo)?;
    let endpoint = CreateHook::builder()
        .project(repo.path.as_str())
        .url(hook_url)
        .push_events(true)
        .tag_push_events(true)
        .note_events(true)
        .enable_ssl_verification(true)
        .token(secret.expose_secret())
        .build()
        .expect("project and url are set");
    let client = Client::new(http, base, token)?;
    let created: Created = endpoint
        .query_async(&client)
        .await
        .map_err(|e| map_error(e, repo, None, token))?;
    Ok(created.id.to_string())
}

/// `DELETE {base}/api/v4/projects/{url-encoded path}/hooks/{id}` → 204.
pub(crate) async fn delete_hook(
    http: &reqwest::Client,
    base: &Url,
    repo: &ForgeRepo,
    token: &SecretString,
    hook_id: u64,
) -> Result<(), ForgeError> {
    check_path(repo)?;
    let endpoint = DeleteHook::builder()
        .project(repo.path.as_str())
        .hook_id(hook_id)
        .build()
        .expect("project and hook_id are set");
    let client = Client::new(http, base, token)?;
    api::ignore(endpoint)
        .query_async(&client)
        .await
        .map_err(|e| map_error(e, repo, Some(hook_id), token))
}

fn check_path(repo: &ForgeRepo) -> Result<(), ForgeError> {
    if repo.is_gitlab_path() {
        Ok(())
    } else {
        Err(ForgeError::NotFound {
            forge: ForgeKind::GitLab,
            repo: repo.path.clone(),
            hook_id: None,
        })
    }
}

/// GitLab's REST API at one instance, for one token.
struct Client<'a> {
    http: &'a reqwest::Client,
    /// `{base}/api/v4/`.
    v4: Url,
    /// The `PRIVATE-TOKEN` header's value, marked sensitive.
    token: HeaderValue,
}

impl<'a> Client<'a> {
    fn new(
        http: &'a reqwest::Client,
        base: &Url,
        token: &SecretString,
    ) -> Result<Client<'a>, ForgeError> {
        let mut v4 = base.clone();
        v4.path_segments_mut()
            .map_err(|()| ForgeError::NotConfigured {
                forge: ForgeKind::GitLab,
            })?
            .pop_if_empty()
            .extend(["api", "v4", ""]);
        // Not a valid header value (a newline, …): no forge would take it.
        let mut token =
            HeaderValue::from_str(token.expose_secret()).map_err(|_| ForgeError::Unauthorized {
                forge: ForgeKind::GitLab,
            })?;
        token.set_sensitive(true);
        Ok(Client { http, v4, token })
    }
}

/// Why a request did not get an answer. Holds no header, so no token.
#[derive(Debug, thiserror::Error)]
enum Transport {
    #[error("building the request: {0}")]
    Request(#[from] http::Error),
    #[error(transparent)]
    Send(reqwest::Error),
}

impl api::RestClient for Client<'_> {
    type Error = Transport;

    fn rest_endpoint(&self, endpoint: &str) -> Result<Url, ApiError<Transport>> {
        Ok(self.v4.join(endpoint)?)
    }
}

#[async_trait]
impl api::AsyncClient for Client<'_> {
    async fn rest_async(
        &self,
        mut request: http::request::Builder,
        body: Vec<u8>,
    ) -> Result<http::Response<Bytes>, ApiError<Transport>> {
        if let Some(headers) = request.headers_mut() {
            headers.insert("private-token", self.token.clone());
        }
        let mut request = request
            .body(body)
            .map_err(|e| ApiError::client(Transport::Request(e)))?;
        // The crate's queries end every URL with `?` even without parameters: drop the empty
        // query so the request is the documented one.
        if request.uri().query() == Some("") {
            let uri = request.uri().to_string();
            *request.uri_mut() =
                uri.trim_end_matches('?')
                    .parse()
                    .map_err(|e: http::uri::InvalidUri| {
                        ApiError::client(Transport::Request(e.into()))
                    })?;
        }
        let request = reqwest::Request::try_from(request)
            .map_err(|e| ApiError::client(Transport::Send(e.without_url())))?;
        let response = self
            .http
            .execute(request)
            .await
            .map_err(|e| ApiError::client(Transport::Send(e.without_url())))?;
        let mut answer = http::Response::builder()
            .status(response.status())
            .version(response.version());
        if let Some(headers) = answer.headers_mut() {
            headers.extend(
                response
                    .headers()
                    .iter()
                    .map(|(name, value)| (name.clone(), value.clone())),
            );
        }
        let body = response
            .bytes()
            .await
            .map_err(|e| ApiError::client(Transport::Send(e.without_url())))?;
        answer
            .body(body)
            .map_err(|e| ApiError::client(Transport::Request(e)))
    }
}

fn map_error(
    error: ApiError<Transport>,
    repo: &ForgeRepo,
    hook_id: Option<u64>,
    token: &SecretString,
) -> ForgeError {
    let forge = ForgeKind::GitLab;
    match error {
        ApiError::GitlabWithStatus { status, .. }
        | ApiError::GitlabObjectWithStatus { status, .. }
        | ApiError::GitlabUnrecognizedWithStatus { status, .. }
        | ApiError::GitlabService { status, .. } => {
            ForgeError::from_status(status.as_u16(), repo, hook_id)
        }
        ApiError::GitlabRateLimited { .. } => ForgeError::Unexpected { forge, status: 429 },
        ApiError::MovedPermanently { .. } => ForgeError::Unexpected { forge, status: 301 },
        ApiError::Client { source } => ForgeError::unreachable(forge, &source, token),
        e => ForgeError::invalid_response(forge, &e, token),
    }
}

// The comment bot's calls. A thread is an issue or a merge request, named by its iid; a
// comment is a note, named by its id. The project is named by its numeric id when the webhook
// gave one (it survives renames and transfers), else by its URL-encoded path.

/// The project as GitLab's API names it: its id when known, else its (checked) path.
fn project(repo: &ForgeRepo, project_id: Option<u64>) -> Result<NameOrId<'_>, ForgeError> {
    match project_id {
        Some(id) => Ok(NameOrId::Id(id)),
        None => {
            check_path(repo)?;
            Ok(NameOrId::Name(repo.path.as_str().into()))
        }
    }
}

#[derive(Deserialize)]
struct Member {
    username: String,
    access_level: u64,
}

/// GitLab's Developer role: the first that may push.
const DEVELOPER: u64 = 30;

/// `POST {base}/api/v4/projects/{id}/{issues|merge_requests}/{iid}/notes/{note}/award_emoji`,
/// a form with `name=eyes` → 201. An emoji the bot awarded already (a redelivered webhook)
/// is done: GitLab answers it `404 {"message": "404 Award Emoji Name has already been taken
/// Not Found"}`, which is no missing note.
pub(crate) async fn react(
    http: &reqwest::Client,
    base: &Url,
    thread: &CommentThread,
    token: &SecretString,
    note: u64,
) -> Result<(), ForgeError> {
    let repo = &thread.repo;
    let project = project(repo, thread.project_id)?;
    let client = Client::new(http, base, token)?;
    let answer = if thread.merge_request {
        let endpoint = CreateMergeRequestNoteAward::builder()
            .project(project)
            .merge_request(thread.number)
            .note(note)
            .name("eyes")
            .build()
            .expect("every field is set");
        api::ignore(endpoint).query_async(&client).await
    } else {
        let endpoint = CreateIssueNoteAward::builder()
            .project(project)
            .issue(thread.number)
            .note(note)
            .name("eyes")
            .build()
            .expect("every field is set");
        api::ignore(endpoint).query_async(&client).await
    };
    match answer {
        Ok(()) => Ok(()),
        Err(ApiError::GitlabWithStatus { status, msg })
            if status == http::StatusCode::NOT_FOUND && msg.contains("has already been taken") =>
        {
            Ok(())
        }
        Err(e) => Err(map_bot_error(e, repo, BotTarget::Comment(note), token)),
    }
}

/// `POST {base}/api/v4/projects/{id}/{issues|merge_requests}/{iid}/notes`, a form with `body`
/// → 201 `{"id": …}`.
pub(crate) async fn reply(
    http: &reqwest::Client,
    base: &Url,
    thread: &CommentThread,
    token: &SecretString,
    body: &str,
) -> Result<String, ForgeError> {
    let repo = &thread.repo;
    let project = project(repo, thread.project_id)?;
    let client = Client::new(http, base, token)?;
    let answer: Result<Created, _> = if thread.merge_request {
        let endpoint = CreateMergeRequestNote::builder()
            .project(project)
            .merge_request(thread.number)
            .body(body)
            .build()
            .expect("every field is set");
        endpoint.query_async(&client).await
    } else {
        let endpoint = CreateIssueNote::builder()
            .project(project)
            .issue(thread.number)
            .body(body)
            .build()
            .expect("every field is set");
        endpoint.query_async(&client).await
    };
    let target = BotTarget::Thread {
        number: thread.number,
        merge_request: thread.merge_request,
    };
    let created = answer.map_err(|e| map_bot_error(e, repo, target, token))?;
    Ok(created.id.to_string())
}

/// `PUT {base}/api/v4/projects/{id}/{issues|merge_requests}/{iid}/notes/{note}`, a form with
/// `body` → 200.
pub(crate) async fn edit_reply(
    http: &reqwest::Client,
    base: &Url,
    thread: &CommentThread,
    token: &SecretString,
    note: u64,
    body: &str,
) -> Result<(), ForgeError> {
    let repo = &thread.repo;
    let project = project(repo, thread.project_id)?;
    let client = Client::new(http, base, token)?;
    let answer = if thread.merge_request {
        let endpoint = EditMergeRequestNote::builder()
            .project(project)
            .merge_request(thread.number)
            .note(note)
            .body(body)
            .build()
            .expect("every field is set");
        api::ignore(endpoint).query_async(&client).await
    } else {
        let endpoint = EditIssueNote::builder()
            .project(project)
            .issue(thread.number)
            .note(note)
            .body(body)
            .build()
            .expect("every field is set");
        api::ignore(endpoint).query_async(&client).await
    };
    answer.map_err(|e| map_bot_error(e, repo, BotTarget::Comment(note), token))
}

/// `GET {base}/api/v4/projects/{id}/members/all?query={user}&per_page=100&page=1` (members
/// inherited from groups included) → the member whose `username` is exactly `user`, with
/// `access_level` of Developer (30) or more. GitLab lists each user once, at their highest
/// level; `query` matches names too, so the match is made here.
pub(crate) async fn may_write(
    http: &reqwest::Client,
    base: &Url,
    repo: &ForgeRepo,
    project_id: Option<u64>,
    token: &SecretString,
    user: &str,
) -> Result<bool, ForgeError> {
    let project = project(repo, project_id)?;
    let client = Client::new(http, base, token)?;
    let endpoint = AllProjectMembers::builder()
        .project(project)
        .query(user)
        .build()
        .expect("project is set");
    let members: Vec<Member> = api::paged(endpoint, Pagination::Limit(100))
        .query_async(&client)
        .await
        .map_err(|e| map_bot_error(e, repo, BotTarget::Repo, token))?;
    Ok(members
        .iter()
        .any(|m| m.username == user && m.access_level >= DEVELOPER))
}

const OWNER: u64 = 50;

/// `groups/{path}/members/all`: the members of a group, those inherited from its parent
/// groups included (the `gitlab` crate has the direct members only).
struct AllGroupMembers<'a> {
    group: NameOrId<'a>,
    query: &'a str,
}

impl api::Endpoint for AllGroupMembers<'_> {
    fn method(&self) -> http::Method {
        http::Method::GET
    }

    fn endpoint(&self) -> std::borrow::Cow<'static, str> {
        format!("groups/{}/members/all", self.group).into()
    }

    fn parameters(&self) -> api::QueryParams<'_> {
        let mut params = api::QueryParams::default();
        params.push("query", self.query);
        params
    }
}

impl api::Pageable for AllGroupMembers<'_> {}

/// `GET {base}/api/v4/groups/{path}/members/all?query={user}` → the member whose `username`
/// is exactly `user`, at Owner (50); 404 (no such group) → false.
pub(crate) async fn owns_group(
    http: &reqwest::Client,
    base: &Url,
    repo: &ForgeRepo,
    group: &str,
    token: &SecretString,
    user: &str,
) -> Result<bool, ForgeError> {
    let client = Client::new(http, base, token)?;
    let endpoint = AllGroupMembers {
        group: NameOrId::Name(group.into()),
        query: user,
    };
    let members: Result<Vec<Member>, _> = api::paged(endpoint, Pagination::Limit(100))
        .query_async(&client)
        .await;
    match members {
        Ok(members) => Ok(members
            .iter()
            .any(|m| m.username == user && m.access_level >= OWNER)),
        Err(e) => match map_bot_error(e, repo, BotTarget::Repo, token) {
            ForgeError::NotFound { .. } => Ok(false),
            e => Err(e),
        },
    }
}

fn map_bot_error(
    error: ApiError<Transport>,
    repo: &ForgeRepo,
    target: BotTarget,
    token: &SecretString,
) -> ForgeError {
    let forge = ForgeKind::GitLab;
    match error {
        ApiError::GitlabWithStatus { status, .. }
        | ApiError::GitlabObjectWithStatus { status, .. }
        | ApiError::GitlabUnrecognizedWithStatus { status, .. }
        | ApiError::GitlabService { status, .. } => {
            ForgeError::from_bot_status(status.as_u16(), repo, target)
        }
        ApiError::GitlabRateLimited { .. } => ForgeError::Unexpected { forge, status: 429 },
        ApiError::MovedPermanently { .. } => ForgeError::Unexpected { forge, status: 301 },
        ApiError::Client { source } => ForgeError::unreachable(forge, &source, token),
        e => ForgeError::invalid_response(forge, &e, token),
    }
}

//! GitHub and GitHub Enterprise Server, through octocrab.
//!
//! octocrab's typed `repos().hooks().create()` serialises its whole `Hook` model (sending
//! `"id":0`, `"type":""` and the like) and needs every field of it in the answer, and its
//! `hooks().delete()` panics (`unwrap_err` on `map_github_error`) when a server answers a 2xx
//! other than 204. So hooks go through octocrab's generic `post` with our own body and its raw
//! `_delete`; auth, base URI and error decoding stay octocrab's.

use http::header::{HeaderValue, ACCEPT};
use octocrab::Octocrab;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use url::Url;

use crate::error::BotTarget;
use crate::{ForgeError, ForgeKind, ForgeRepo};

/// The events a mirrorhub hook subscribes to: pushes (branches and tags) and, for the comment
/// bot, comments on issues and pull requests.
pub(crate) const HOOK_EVENTS: [&str; 2] = ["push", "issue_comment"];

const MEDIA_TYPE: &str = "application/vnd.github+json";

#[derive(Serialize)]
struct CreateHook<'a> {
    name: &'a str,
    active: bool,
    events: &'a [&'a str],
    config: HookConfig<'a>,
}

#[derive(Serialize)]
struct HookConfig<'a> {
    url: &'a str,
    content_type: &'a str,
    secret: &'a str,
    /// `"0"`: GitHub verifies the hook URL's certificate.
    insecure_ssl: &'a str,
}

#[derive(Deserialize)]
struct Created {
    id: u64,
}

/// `POST {api}/repos/{owner}/{repo}/hooks` → 201 `{"id": …}`.
pub(crate) async fn create_push_hook(
    api: &Url,
    repo: &ForgeRepo,
    token: &SecretString,
    hook_url: &str,
    secret: &SecretString,
) -> Result<String, ForgeError> {
    let (owner, name) = owner_name(repo)?;
    let crab = client(api, token)?;
    let body = CreateHook {
        name: "web",
        active: true,
        events: &HOOK_EVENTS,
        config: HookConfig {
            url: hook_url,
            content_type: "json",
            secret: secret.expose_secret(),
            insecure_ssl: "0",
        },
    };
    let created: Created = crab
        .post(format!("/repos/{owner}/{name}/hooks"), Some(&body))
        .await
        .map_err(|e| map_error(e, repo, None, token))?;
    Ok(created.id.to_string())
}

/// `DELETE {api}/repos/{owner}/{repo}/hooks/{id}` → 204.
pub(crate) async fn delete_hook(
    api: &Url,
    repo: &ForgeRepo,
    token: &SecretString,
    hook_id: u64,
) -> Result<(), ForgeError> {
    let (owner, name) = owner_name(repo)?;
    let crab = client(api, token)?;
    let response = crab
        ._delete(
            format!("/repos/{owner}/{name}/hooks/{hook_id}"),
            None::<&()>,
        )
        .await
        .map_err(|e| map_error(e, repo, Some(hook_id), token))?;
    let status = response.status();
    if status.is_success() {
        Ok(())
    } else {
        Err(ForgeError::from_status(
            status.as_u16(),
            repo,
            Some(hook_id),
        ))
    }
}

fn owner_name(repo: &ForgeRepo) -> Result<(&str, &str), ForgeError> {
    repo.owner_name().ok_or_else(|| ForgeError::NotFound {
        forge: ForgeKind::GitHub,
        repo: repo.path.clone(),
        hook_id: None,
    })
}

/// An octocrab for one token. It sends `Authorization: Bearer <token>` (marked sensitive) only
/// to the API's own host, `Accept: application/vnd.github+json`, `X-GitHub-Api-Version` and
/// `User-Agent: octocrab`; it follows no redirects (no `follow-redirect` feature).
fn client(api: &Url, token: &SecretString) -> Result<Octocrab, ForgeError> {
    let forge = ForgeKind::GitHub;
    // octocrab `unwrap`s the header it makes of the token: a token that is no header value
    // (a newline, …) would panic inside it.
    if HeaderValue::from_str(&format!("Bearer {}", token.expose_secret())).is_err() {
        return Err(ForgeError::Unauthorized { forge });
    }
    Octocrab::builder()
        .base_uri(api.as_str())
        .map_err(|e| ForgeError::unreachable(forge, &e, token))?
        .personal_token(token.clone())
        .add_header(ACCEPT, MEDIA_TYPE.to_owned())
        .build()
        .map_err(|e| ForgeError::unreachable(forge, &e, token))
}

fn map_error(
    error: octocrab::Error,
    repo: &ForgeRepo,
    hook_id: Option<u64>,
    token: &SecretString,
) -> ForgeError {
    let forge = ForgeKind::GitHub;
    match error {
        octocrab::Error::GitHub { source, .. } => {
            ForgeError::from_status(source.status_code.as_u16(), repo, hook_id)
        }
        e @ (octocrab::Error::Json { .. } | octocrab::Error::Serde { .. }) => {
            ForgeError::invalid_response(forge, &e, token)
        }
        // Connection, TLS, hyper and body errors.
        e => ForgeError::unreachable(forge, &e, token),
    }
}

// The comment bot's calls. Issue comments serve pull requests too: a pull request is an issue
// with the same number.

#[derive(Serialize)]
struct Reaction<'a> {
    content: &'a str,
}

#[derive(Serialize)]
struct CommentBody<'a> {
    body: &'a str,
}

#[derive(Deserialize)]
struct Permission {
    /// `admin`, `write`, `read` or `none` (maintain counts as write, triage as read).
    permission: String,
    /// The exact role: `admin`, `maintain`, `write`, `triage`, `read` or a custom role.
    #[serde(default)]
    role_name: Option<String>,
}

/// `POST {api}/repos/{owner}/{repo}/issues/comments/{id}/reactions` `{"content":"eyes"}` →
/// 201 (200 when the reaction was there already).
pub(crate) async fn react(
    api: &Url,
    repo: &ForgeRepo,
    token: &SecretString,
    comment_id: u64,
) -> Result<(), ForgeError> {
    let (owner, name) = owner_name(repo)?;
    let crab = client(api, token)?;
    let target = BotTarget::Comment(comment_id);
    let response = crab
        ._post(
            format!("/repos/{owner}/{name}/issues/comments/{comment_id}/reactions"),
            Some(&Reaction { content: "eyes" }),
        )
        .await
        .map_err(|e| map_bot_error(e, repo, target, token))?;
    check_status(response.status(), repo, target)
}

/// `POST {api}/repos/{owner}/{repo}/issues/{number}/comments` `{"body": …}` → 201
/// `{"id": …}`.
pub(crate) async fn reply(
    api: &Url,
    repo: &ForgeRepo,
    token: &SecretString,
    number: u64,
    merge_request: bool,
    body: &str,
) -> Result<String, ForgeError> {
    let (owner, name) = owner_name(repo)?;
    let crab = client(api, token)?;
    let created: Created = crab
        .post(
            format!("/repos/{owner}/{name}/issues/{number}/comments"),
            Some(&CommentBody { body }),
        )
        .await
        .map_err(|e| {
            let target = BotTarget::Thread {
                number,
                merge_request,
            };
            map_bot_error(e, repo, target, token)
        })?;
    Ok(created.id.to_string())
}

/// `PATCH {api}/repos/{owner}/{repo}/issues/comments/{id}` `{"body": …}` → 200.
pub(crate) async fn edit_reply(
    api: &Url,
    repo: &ForgeRepo,
    token: &SecretString,
    reply_id: u64,
    body: &str,
) -> Result<(), ForgeError> {
    let (owner, name) = owner_name(repo)?;
    let crab = client(api, token)?;
    let target = BotTarget::Comment(reply_id);
    let response = crab
        ._patch(
            format!("/repos/{owner}/{name}/issues/comments/{reply_id}"),
            Some(&CommentBody { body }),
        )
        .await
        .map_err(|e| map_bot_error(e, repo, target, token))?;
    check_status(response.status(), repo, target)
}

/// `GET {api}/repos/{owner}/{repo}/collaborators/{user}/permission` → `permission` admin or
/// write, or `role_name` admin, maintain or write. 404 (no such user, or one GitHub will not
/// say anything about) → false.
pub(crate) async fn may_write(
    api: &Url,
    repo: &ForgeRepo,
    token: &SecretString,
    user: &str,
) -> Result<bool, ForgeError> {
    let (owner, name) = owner_name(repo)?;
    let crab = client(api, token)?;
    let answer: Result<Permission, _> = crab
        .get(
            format!("/repos/{owner}/{name}/collaborators/{user}/permission"),
            None::<&()>,
        )
        .await;
    match answer {
        Ok(found) => Ok(matches!(found.permission.as_str(), "admin" | "write")
            || matches!(
                found.role_name.as_deref(),
                Some("admin" | "maintain" | "write")
            )),
        Err(octocrab::Error::GitHub { source, .. }) if source.status_code.as_u16() == 404 => {
            Ok(false)
        }
        Err(e) => Err(map_bot_error(e, repo, BotTarget::Repo, token)),
    }
}

#[derive(Deserialize)]
struct OrgMembership {
    /// `active` or `pending`.
    state: String,
    /// `admin` (an owner of the organization) or `member`.
    role: String,
}

/// `GET /orgs/{org}/memberships/{user}`: an active membership with role `admin`; 404 (no
/// member, or no such organization) → false.
pub(crate) async fn owns_org(
    api: &Url,
    repo: &ForgeRepo,
    org: &str,
    token: &SecretString,
    user: &str,
) -> Result<bool, ForgeError> {
    let crab = client(api, token)?;
    let answer: Result<OrgMembership, _> = crab
        .get(format!("/orgs/{org}/memberships/{user}"), None::<&()>)
        .await;
    match answer {
        Ok(found) => Ok(found.state == "active" && found.role == "admin"),
        Err(octocrab::Error::GitHub { source, .. }) if source.status_code.as_u16() == 404 => {
            Ok(false)
        }
        Err(e) => Err(map_bot_error(e, repo, BotTarget::Repo, token)),
    }
}

fn check_status(
    status: http::StatusCode,
    repo: &ForgeRepo,
    target: BotTarget,
) -> Result<(), ForgeError> {
    if status.is_success() {
        Ok(())
    } else {
        Err(ForgeError::from_bot_status(status.as_u16(), repo, target))
    }
}

fn map_bot_error(
    error: octocrab::Error,
    repo: &ForgeRepo,
    target: BotTarget,
    token: &SecretString,
) -> ForgeError {
    let forge = ForgeKind::GitHub;
    match error {
        octocrab::Error::GitHub { source, .. } => {
            ForgeError::from_bot_status(source.status_code.as_u16(), repo, target)
        }
        e @ (octocrab::Error::Json { .. } | octocrab::Error::Serde { .. }) => {
            ForgeError::invalid_response(forge, &e, token)
        }
        e => ForgeError::unreachable(forge, &e, token),
    }
}

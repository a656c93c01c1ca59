//! Gitea and Forgejo (same API), over plain HTTP with reqwest.

use reqwest::header::{HeaderValue, ACCEPT, AUTHORIZATION};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use url::Url;

use crate::error::BotTarget;
use crate::{ForgeError, ForgeKind, ForgeRepo};

/// Pushes and, for the comment bot, issue and pull request comments.
pub(crate) const HOOK_EVENTS: [&str; 2] = ["push", "issue_comment"];

#[derive(Serialize)]
struct CreateHook<'a> {
    /// `gitea`: Gitea's own payload format, signed with `X-Gitea-Signature` (Forgejo accepts it
    /// too).
    #[serde(rename = "type")]
    kind: &'a str,
    active: bool,
    events: &'a [&'a str],
    config: HookConfig<'a>,
}

#[derive(Serialize)]
struct HookConfig<'a> {
    url: &'a str,
    content_type: &'a str,
    secret: &'a str,
}

#[derive(Deserialize)]
struct Created {
    id: u64,
}

/// `POST {base}/api/v1/repos/{owner}/{repo}/hooks` → 201 `{"id": …}`.
pub(crate) async fn create_push_hook(
    http: &reqwest::Client,
    base: &Url,
    repo: &ForgeRepo,
    token: &SecretString,
    hook_url: &str,
    secret: &SecretString,
) -> Result<String, ForgeError> {
    let url = hooks_url(base, repo, None)?;
    let body = CreateHook {
        kind: "gitea",
        active: true,
        events: &HOOK_EVENTS,
        config: HookConfig {
            url: hook_url,
            content_type: "json",
            secret: secret.expose_secret(),
        },
    };
    let response = http
        .post(url)
        .header(AUTHORIZATION, auth(token)?)
        .header(ACCEPT, "application/json")
        .json(&body)
        .send()
        .await
        .map_err(|e| ForgeError::unreachable(ForgeKind::Gitea, &e.without_url(), token))?;
    let status = response.status();
    if !status.is_success() {
        return Err(ForgeError::from_status(status.as_u16(), repo, None));
    }
    let bytes = response
        .bytes()
        .await
        .map_err(|e| ForgeError::unreachable(ForgeKind::Gitea, &e.without_url(), token))?;
    let created: Created = serde_json::from_slice(&bytes)
        .map_err(|e| ForgeError::invalid_response(ForgeKind::Gitea, &e, token))?;
    Ok(created.id.to_string())
}

/// `DELETE {base}/api/v1/repos/{owner}/{repo}/hooks/{id}` → 204.
pub(crate) async fn delete_hook(
    http: &reqwest::Client,
    base: &Url,
    repo: &ForgeRepo,
    token: &SecretString,
    hook_id: u64,
) -> Result<(), ForgeError> {
    let url = hooks_url(base, repo, Some(hook_id))?;
    let response = http
        .delete(url)
        .header(AUTHORIZATION, auth(token)?)
        .header(ACCEPT, "application/json")
        .send()
        .await
        .map_err(|e| ForgeError::unreachable(ForgeKind::Gitea, &e.without_url(), token))?;
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

/// `{base}/api/v1/repos/{owner}/{name}/hooks[/{id}]`, keeping the base's sub-path.
fn hooks_url(base: &Url, repo: &ForgeRepo, hook_id: Option<u64>) -> Result<Url, ForgeError> {
    let (owner, name) = repo.owner_name().ok_or_else(|| ForgeError::NotFound {
        forge: ForgeKind::Gitea,
        repo: repo.path.clone(),
        hook_id: None,
    })?;
    let mut url = base.clone();
    {
        let mut segments = url
            .path_segments_mut()
            .map_err(|()| ForgeError::NotConfigured {
                forge: ForgeKind::Gitea,
            })?;
        segments
            .pop_if_empty()
            .extend(["api", "v1", "repos", owner, name, "hooks"]);
        if let Some(id) = hook_id {
            segments.push(&id.to_string());
        }
    }
    Ok(url)
}

/// `Authorization: token <token>`, marked sensitive.
fn auth(token: &SecretString) -> Result<HeaderValue, ForgeError> {
    let mut value =
        HeaderValue::from_str(&format!("token {}", token.expose_secret())).map_err(|_| {
            ForgeError::Unauthorized {
                forge: ForgeKind::Gitea,
            }
        })?;
    value.set_sensitive(true);
    Ok(value)
}

// The comment bot's calls. Issue comments serve pull requests too: a pull request is an issue
// with the same index.

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
    /// `none`, `read`, `write`, `admin` or `owner`.
    permission: String,
}

/// `POST {base}/api/v1/repos/{owner}/{repo}/issues/comments/{id}/reactions`
/// `{"content":"eyes"}` → 201 (200 when the reaction was there already).
pub(crate) async fn react(
    http: &reqwest::Client,
    base: &Url,
    repo: &ForgeRepo,
    token: &SecretString,
    comment_id: u64,
) -> Result<(), ForgeError> {
    let id = comment_id.to_string();
    let url = repo_url(base, repo, &["issues", "comments", &id, "reactions"])?;
    let target = BotTarget::Comment(comment_id);
    send(
        http.post(url).json(&Reaction { content: "eyes" }),
        repo,
        token,
        target,
    )
    .await
    .map(drop)
}

/// `POST {base}/api/v1/repos/{owner}/{repo}/issues/{index}/comments` `{"body": …}` → 201
/// `{"id": …}`.
pub(crate) async fn reply(
    http: &reqwest::Client,
    base: &Url,
    repo: &ForgeRepo,
    token: &SecretString,
    number: u64,
    merge_request: bool,
    body: &str,
) -> Result<String, ForgeError> {
    let index = number.to_string();
    let url = repo_url(base, repo, &["issues", &index, "comments"])?;
    let target = BotTarget::Thread {
        number,
        merge_request,
    };
    let bytes = send(
        http.post(url).json(&CommentBody { body }),
        repo,
        token,
        target,
    )
    .await?;
    let created: Created = serde_json::from_slice(&bytes)
        .map_err(|e| ForgeError::invalid_response(ForgeKind::Gitea, &e, token))?;
    Ok(created.id.to_string())
}

/// `PATCH {base}/api/v1/repos/{owner}/{repo}/issues/comments/{id}` `{"body": …}` → 200 (204
/// on older versions).
pub(crate) async fn edit_reply(
    http: &reqwest::Client,
    base: &Url,
    repo: &ForgeRepo,
    token: &SecretString,
    reply_id: u64,
    body: &str,
) -> Result<(), ForgeError> {
    let id = reply_id.to_string();
    let url = repo_url(base, repo, &["issues", "comments", &id])?;
    let target = BotTarget::Comment(reply_id);
    send(
        http.patch(url).json(&CommentBody { body }),
        repo,
        token,
        target,
    )
    .await
    .map(drop)
}

/// `GET {base}/api/v1/repos/{owner}/{repo}/collaborators/{user}/permission` → `permission`
/// write, admin or owner. 404 (no such user) → false. Gitea answers 403 unless the bot is an
/// admin of the repository (or of the site), or asks about itself.
pub(crate) async fn may_write(
    http: &reqwest::Client,
    base: &Url,
    repo: &ForgeRepo,
    token: &SecretString,
    user: &str,
) -> Result<bool, ForgeError> {
    let url = repo_url(base, repo, &["collaborators", user, "permission"])?;
    let found: Option<Permission> = get_found(http, url, repo, token).await?;
    Ok(found.is_some_and(|f| matches!(f.permission.as_str(), "write" | "admin" | "owner")))
}

#[derive(Deserialize)]
struct OrgPermissions {
    is_owner: bool,
}

/// `GET {base}/api/v1/users/{user}/orgs/{org}/permissions`: `is_owner`; 404 (no such user or
/// organization) → false.
pub(crate) async fn owns_org(
    http: &reqwest::Client,
    base: &Url,
    repo: &ForgeRepo,
    org: &str,
    token: &SecretString,
    user: &str,
) -> Result<bool, ForgeError> {
    let url = api_url(base, &["users", user, "orgs", org, "permissions"])?;
    let found: Option<OrgPermissions> = get_found(http, url, repo, token).await?;
    Ok(found.is_some_and(|f| f.is_owner))
}

/// A permission look-up: the answer read as `T`, or `None` for a 404 (no such user,
/// repository or organization).
async fn get_found<T: serde::de::DeserializeOwned>(
    http: &reqwest::Client,
    url: Url,
    repo: &ForgeRepo,
    token: &SecretString,
) -> Result<Option<T>, ForgeError> {
    let bytes = match send(http.get(url), repo, token, BotTarget::Repo).await {
        Ok(bytes) => bytes,
        Err(ForgeError::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(e),
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| ForgeError::invalid_response(ForgeKind::Gitea, &e, token))
}

/// Sends `request` with the token and `Accept: application/json`; the body of a success.
async fn send(
    request: reqwest::RequestBuilder,
    repo: &ForgeRepo,
    token: &SecretString,
    target: BotTarget,
) -> Result<bytes::Bytes, ForgeError> {
    let forge = ForgeKind::Gitea;
    let response = request
        .header(AUTHORIZATION, auth(token)?)
        .header(ACCEPT, "application/json")
        .send()
        .await
        .map_err(|e| ForgeError::unreachable(forge, &e.without_url(), token))?;
    let status = response.status();
    if !status.is_success() {
        return Err(ForgeError::from_bot_status(status.as_u16(), repo, target));
    }
    response
        .bytes()
        .await
        .map_err(|e| ForgeError::unreachable(forge, &e.without_url(), token))
}

/// `{base}/api/v1/repos/{owner}/{name}/{rest…}`, keeping the base's sub-path; each of `rest`
/// one path segment (percent-encoded).
fn repo_url(base: &Url, repo: &ForgeRepo, rest: &[&str]) -> Result<Url, ForgeError> {
    let (owner, name) = repo.owner_name().ok_or_else(|| ForgeError::NotFound {
        forge: ForgeKind::Gitea,
        repo: repo.path.clone(),
        hook_id: None,
    })?;
    let mut url = api_url(base, &["repos", owner, name])?;
    url.path_segments_mut()
        .map_err(|()| ForgeError::NotConfigured {
            forge: ForgeKind::Gitea,
        })?
        .extend(rest);
    Ok(url)
}

/// `{base}/api/v1/{segments…}`, keeping the base's sub-path; each segment percent-encoded.
fn api_url(base: &Url, segments: &[&str]) -> Result<Url, ForgeError> {
    let mut url = base.clone();
    url.path_segments_mut()
        .map_err(|()| ForgeError::NotConfigured {
            forge: ForgeKind::Gitea,
        })?
        .pop_if_empty()
        .extend(["api", "v1"])
        .extend(segments);
    Ok(url)
}

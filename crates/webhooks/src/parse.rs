//! What an authenticated delivery says. The event name (from the headers) is looked at first:
//! events that are ignored are answered without reading the body at all.

use http::HeaderMap;
use serde_json::Value;

use crate::detect::{event_header, event_name};
use crate::json::{
    get, object, present, require_id, require_name, require_str, require_u64, str_at, u64_at,
    Strings,
};
use crate::{
    Comment, CommentAction, Event, Forge, InstallationEvent, NamespaceEvent, Thread, WebhookError,
};

/// Parses an authenticated delivery (call [`crate::verify`] first).
///
/// Pushes and comments need the fields that identify them (the repository, the comment, the
/// thread): without them the delivery is refused with [`WebhookError::MissingField`]. A ping
/// is taken even with a body that says nothing. Events this crate does not act on are
/// [`Event::Ignored`] whatever their body.
pub fn parse(forge: Forge, headers: &HeaderMap, body: &[u8]) -> Result<Event, WebhookError> {
    let event =
        event_name(forge, headers).ok_or(WebhookError::MissingEventHeader(event_header(forge)))?;
    match forge {
        Forge::GitHub => github(&event, body),
        Forge::GitLab => gitlab(&event, body),
        Forge::Gitea | Forge::Forgejo => gitea(&event, body),
        Forge::BitbucketCloud => bitbucket_cloud(&event, body),
        Forge::BitbucketServer => bitbucket_server(&event, body),
        Forge::Generic => generic(body),
    }
}

fn ignored(event: &str) -> Result<Event, WebhookError> {
    Ok(Event::Ignored {
        event: event.to_owned(),
    })
}

/// A ping's repository URLs, from a body that may be empty or not JSON at all: a ping is a
/// test of the connection and is answered whatever it carries.
fn ping(body: &[u8], urls: impl Fn(&Value) -> Strings) -> Result<Event, WebhookError> {
    let repo_urls = object(body)
        .map(|v| urls(&v).into_vec())
        .unwrap_or_default();
    Ok(Event::Ping { repo_urls })
}

/// `refs/heads/x` / `refs/tags/x` for a short name and a kind (`branch`, `tag`…).
fn full_ref(kind: &str, name: &str) -> Option<String> {
    if name.starts_with("refs/") {
        return Some(name.to_owned());
    }
    match kind {
        "branch" | "named_branch" => Some(format!("refs/heads/{name}")),
        "tag" | "annotated_tag" => Some(format!("refs/tags/{name}")),
        _ => None,
    }
}

fn push(urls: Strings, refs: Strings, needed: &'static str) -> Result<Event, WebhookError> {
    if urls.is_empty() {
        return Err(WebhookError::MissingField(needed));
    }
    Ok(Event::Push {
        repo_urls: urls.into_vec(),
        refs: refs.into_vec(),
    })
}

fn action(word: &str) -> Option<CommentAction> {
    match word {
        "created" | "create" | "added" | "comment_created" => Some(CommentAction::Created),
        "edited" | "update" | "updated" | "comment_updated" => Some(CommentAction::Edited),
        "deleted" | "delete" | "comment_deleted" => Some(CommentAction::Deleted),
        _ => None,
    }
}

// ---------------------------------------------------------------------------------------------
// GitHub

/// `url` is the web page in push payloads but the API address everywhere else, so it is taken
/// for pushes only.
const GITHUB_PUSH_URLS: &[&str] = &[
    "repository.clone_url",
    "repository.git_url",
    "repository.ssh_url",
    "repository.html_url",
    "repository.url",
];
const GITHUB_REPO_URLS: &[&str] = &[
    "repository.clone_url",
    "repository.git_url",
    "repository.ssh_url",
    "repository.html_url",
];

fn github(event: &str, body: &[u8]) -> Result<Event, WebhookError> {
    match event {
        "push" => {
            let v = object(body)?;
            let mut urls = Strings::default();
            urls.push_paths(&v, GITHUB_PUSH_URLS);
            let mut refs = Strings::default();
            refs.push_paths(&v, &["ref"]);
            push(urls, refs, "repository.clone_url")
        }
        // Sent beside the push of a new or deleted branch or tag; taken as a push too (an
        // extra sync request coalesces with the push's).
        "create" | "delete" => create_or_delete(body, GITHUB_REPO_URLS),
        "ping" => ping(body, |v| {
            let mut urls = Strings::default();
            urls.push_paths(v, GITHUB_REPO_URLS);
            urls
        }),
        "issue_comment" => github_comment(body),
        "repository" => github_repository(body),
        "installation" | "installation_repositories" => github_installation(body),
        _ => ignored(event),
    }
}

/// GitHub's `repository` event (organization and App webhooks).
fn github_repository(body: &[u8]) -> Result<Event, WebhookError> {
    let v = object(body)?;
    let action = require_name(&v, "action")?.to_owned();
    let path = require_name(&v, "repository.full_name")?.to_owned();
    let old_name = str_at(&v, "changes.repository.name.from");
    let old_owner = str_at(&v, "changes.owner.from.organization.login")
        .or_else(|| str_at(&v, "changes.owner.from.user.login"));
    let old_path = match (old_owner, old_name) {
        (None, None) => None,
        (owner, name) => {
            let (now_owner, now_name) = path.split_once('/').unwrap_or(("", &path));
            Some(format!(
                "{}/{}",
                owner.unwrap_or(now_owner),
                name.unwrap_or(now_name)
            ))
        }
    };
    Ok(Event::Namespace(NamespaceEvent {
        action,
        path,
        old_path,
    }))
}

/// GitHub's `installation` and `installation_repositories` events.
fn github_installation(body: &[u8]) -> Result<Event, WebhookError> {
    let v = object(body)?;
    Ok(Event::Installation(InstallationEvent {
        action: require_name(&v, "action")?.to_owned(),
        installation_id: require_u64(&v, "installation.id")?,
        account: require_name(&v, "installation.account.login")?.to_owned(),
    }))
}

/// GitHub's and Gitea's `create` / `delete`: `ref` is a short name, `ref_type` says which kind.
fn create_or_delete(body: &[u8], url_paths: &[&str]) -> Result<Event, WebhookError> {
    let v = object(body)?;
    let mut urls = Strings::default();
    urls.push_paths(&v, url_paths);
    let mut refs = Strings::default();
    if let (Some(kind), Some(name)) = (str_at(&v, "ref_type"), str_at(&v, "ref")) {
        if let Some(r) = full_ref(kind, name) {
            refs.push(&r);
        }
    }
    push(urls, refs, "repository.clone_url")
}

fn github_comment(body: &[u8]) -> Result<Event, WebhookError> {
    let v = object(body)?;
    let word = require_str(&v, "action")?;
    let Some(action) = action(word) else {
        return ignored(&format!("issue_comment.{word}"));
    };
    let number = require_u64(&v, "issue.number")?;
    let thread = if present(&v, "issue.pull_request") {
        Thread::PullRequest { number }
    } else {
        Thread::Issue { number }
    };
    let mut urls = Strings::default();
    urls.push_paths(&v, GITHUB_REPO_URLS);
    Ok(Event::Comment(Comment {
        action,
        body: comment_text(&v, "comment.body")?,
        previous_body: str_at(&v, "changes.body.from").map(str::to_owned),
        comment_id: require_id(&v, "comment.id")?,
        author: require_name(&v, "comment.user.login")?.to_owned(),
        author_is_bot: str_at(&v, "comment.user.type") == Some("Bot"),
        author_association: str_at(&v, "comment.author_association").map(str::to_owned),
        repo_full_name: require_name(&v, "repository.full_name")?.to_owned(),
        repo_urls: urls.into_vec(),
        project_id: None,
        thread,
    }))
}

/// A comment's text: a string, or null / absent for an empty one only when the comment
/// object itself is there.
fn comment_text(v: &Value, path: &'static str) -> Result<String, WebhookError> {
    match get(v, path) {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(Value::Null) => Ok(String::new()),
        _ => Err(WebhookError::MissingField(path)),
    }
}

// ---------------------------------------------------------------------------------------------
// GitLab

const GITLAB_PROJECT_URLS: &[&str] = &[
    "project.git_http_url",
    "project.git_ssh_url",
    "project.web_url",
    "project.http_url",
    "project.ssh_url",
    "project.url",
    "project.homepage",
];
const GITLAB_REPOSITORY_URLS: &[&str] = &[
    "repository.git_http_url",
    "repository.git_ssh_url",
    "repository.url",
    "repository.homepage",
];

fn gitlab(event: &str, body: &[u8]) -> Result<Event, WebhookError> {
    match event {
        "Push Hook" | "Tag Push Hook" => gitlab_push(body),
        // An instance-wide system hook: pushes have the same shape.
        "System Hook" => {
            let v = object(body)?;
            match str_at(&v, "object_kind").or_else(|| str_at(&v, "event_name")) {
                Some("push" | "tag_push") => gitlab_push(body),
                Some(
                    "project_create" | "project_destroy" | "project_rename" | "project_transfer"
                    | "project_update",
                ) => gitlab_project(event, &v),
                _ => ignored(event),
            }
        }
        // Group webhooks' project events (GitLab 17.x+).
        "Project Hook" => gitlab_project(event, &object(body)?),
        "Note Hook" => gitlab_note(event, body),
        // "Confidential Note Hook" is ignored on purpose: a bot's answer would be public.
        _ => ignored(event),
    }
}

/// A system or group hook's `project_*` event. One that names no project path tells no set
/// anything: answered and ignored, as before mirror sets listened to these events.
fn gitlab_project(event: &str, v: &Value) -> Result<Event, WebhookError> {
    let (Some(action), Some(path)) = (
        str_at(v, "event_name").filter(|s| !s.trim().is_empty()),
        str_at(v, "path_with_namespace").filter(|s| !s.trim().is_empty()),
    ) else {
        return ignored(event);
    };
    Ok(Event::Namespace(NamespaceEvent {
        action: action.to_owned(),
        path: path.to_owned(),
        old_path: str_at(v, "old_path_with_namespace").map(str::to_owned),
    }))
}

fn gitlab_push(body: &[u8]) -> Result<Event, WebhookError> {
    let v = object(body)?;
    let mut urls = Strings::default();
    urls.push_paths(&v, GITLAB_PROJECT_URLS);
    urls.push_paths(&v, GITLAB_REPOSITORY_URLS);
    let mut refs = Strings::default();
    refs.push_paths(&v, &["ref"]);
    push(urls, refs, "project.git_http_url")
}

fn gitlab_note(event: &str, body: &[u8]) -> Result<Event, WebhookError> {
    let v = object(body)?;
    // System notes ("changed the description", "mentioned in …") are written by GitLab in
    // a user's name; they are not comments to answer.
    if get(&v, "object_attributes.system").and_then(Value::as_bool) == Some(true) {
        return ignored(event);
    }
    let thread = match str_at(&v, "object_attributes.noteable_type") {
        Some("Issue") => Thread::Issue {
            number: require_u64(&v, "issue.iid")?,
        },
        Some("MergeRequest") => Thread::PullRequest {
            number: require_u64(&v, "merge_request.iid")?,
        },
        Some(_) => return ignored(event),
        None => {
            return Err(WebhookError::MissingField(
                "object_attributes.noteable_type",
            ))
        }
    };
    let action = match str_at(&v, "object_attributes.action") {
        None => CommentAction::Created,
        Some(word) => match action(word) {
            Some(a) => a,
            None => return ignored(event),
        },
    };
    let author = require_name(&v, "user.username")?;
    // Only the project's own URLs: `repository` in note payloads is not reliable (in GitLab's
    // own example it names another project, and on some instances another host).
    let mut urls = Strings::default();
    urls.push_paths(&v, GITLAB_PROJECT_URLS);
    Ok(Event::Comment(Comment {
        action,
        body: comment_text(&v, "object_attributes.note")?,
        previous_body: None,
        comment_id: require_id(&v, "object_attributes.id")?,
        author: author.to_owned(),
        author_is_bot: gitlab_bot(author),
        author_association: None,
        repo_full_name: require_name(&v, "project.path_with_namespace")?.to_owned(),
        repo_urls: urls.into_vec(),
        project_id: u64_at(&v, "project_id").or_else(|| u64_at(&v, "project.id")),
        thread,
    }))
}

/// GitLab says nothing of bots in webhooks; the users behind project and group access tokens
/// are named `project_<id>_bot_<hex>` / `group_<id>_bot_<hex>`, and service accounts
/// `service_account_…`.
fn gitlab_bot(username: &str) -> bool {
    let token_bot = ["project_", "group_"].iter().any(|prefix| {
        username.strip_prefix(prefix).is_some_and(|rest| {
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            digits > 0 && rest[digits..].starts_with("_bot")
        })
    });
    token_bot || username.starts_with("service_account_")
}

// ---------------------------------------------------------------------------------------------
// Gitea and Forgejo

/// `original_url` is left out: on a Gitea mirror it is the mirror's source, not this repository.
const GITEA_REPO_URLS: &[&str] = &[
    "repository.clone_url",
    "repository.ssh_url",
    "repository.html_url",
];

fn gitea(event: &str, body: &[u8]) -> Result<Event, WebhookError> {
    match event {
        "push" => {
            let v = object(body)?;
            let mut urls = Strings::default();
            urls.push_paths(&v, GITEA_REPO_URLS);
            let mut refs = Strings::default();
            refs.push_paths(&v, &["ref"]);
            push(urls, refs, "repository.clone_url")
        }
        "create" | "delete" => create_or_delete(body, GITEA_REPO_URLS),
        // Comments on pull requests come as `issue_comment` (X-Gitea-Event-Type says
        // `pull_request_comment`); older versions used the latter as the event itself.
        "issue_comment" | "pull_request_comment" => gitea_comment(body),
        // Organization webhooks: a repository created or deleted.
        "repository" => {
            let v = object(body)?;
            Ok(Event::Namespace(NamespaceEvent {
                action: require_name(&v, "action")?.to_owned(),
                path: require_name(&v, "repository.full_name")?.to_owned(),
                old_path: None,
            }))
        }
        _ => ignored(event),
    }
}

fn gitea_comment(body: &[u8]) -> Result<Event, WebhookError> {
    let v = object(body)?;
    let word = require_str(&v, "action")?;
    let Some(action) = action(word) else {
        return ignored(&format!("issue_comment.{word}"));
    };
    let number = require_u64(&v, "issue.number")?;
    let is_pull = get(&v, "is_pull").and_then(Value::as_bool) == Some(true)
        || present(&v, "issue.pull_request");
    let thread = if is_pull {
        Thread::PullRequest { number }
    } else {
        Thread::Issue { number }
    };
    let author = str_at(&v, "comment.user.login")
        .or_else(|| str_at(&v, "comment.user.username"))
        .filter(|s| !s.is_empty())
        .ok_or(WebhookError::MissingField("comment.user.login"))?;
    let mut urls = Strings::default();
    urls.push_paths(&v, GITEA_REPO_URLS);
    Ok(Event::Comment(Comment {
        action,
        body: comment_text(&v, "comment.body")?,
        previous_body: str_at(&v, "changes.body.from").map(str::to_owned),
        comment_id: require_id(&v, "comment.id")?,
        author: author.to_owned(),
        author_is_bot: false,
        author_association: None,
        repo_full_name: require_name(&v, "repository.full_name")?.to_owned(),
        repo_urls: urls.into_vec(),
        project_id: None,
        thread,
    }))
}

// ---------------------------------------------------------------------------------------------
// Bitbucket Cloud

/// Cloud's payloads carry no clone URL: it is `https://bitbucket.org/{full_name}.git`. The
/// web link is taken too, as the payload gives it.
fn bitbucket_cloud_urls(v: &Value) -> Strings {
    let mut urls = Strings::default();
    if let Some(name) = str_at(v, "repository.full_name").filter(|n| valid_full_name(n)) {
        urls.push(&format!("https://bitbucket.org/{name}.git"));
    }
    urls.push_paths(v, &["repository.links.html.href"]);
    urls
}

/// `workspace/slug`: what can safely be put into a URL path.
fn valid_full_name(name: &str) -> bool {
    let mut parts = name.split('/');
    let ok = |p: Option<&str>| {
        p.is_some_and(|p| {
            !p.is_empty()
                && p != "."
                && p != ".."
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        })
    };
    ok(parts.next()) && ok(parts.next()) && parts.next().is_none()
}

fn bitbucket_cloud(event: &str, body: &[u8]) -> Result<Event, WebhookError> {
    let (thread_path, word) = match event {
        "repo:push" => return bitbucket_cloud_push(body),
        "issue:comment_created" => ("issue.id", "comment_created"),
        _ => match event.strip_prefix("pullrequest:") {
            Some(word @ ("comment_created" | "comment_updated" | "comment_deleted")) => {
                ("pullrequest.id", word)
            }
            _ => return ignored(event),
        },
    };
    let v = object(body)?;
    let number = require_u64(&v, thread_path)?;
    let thread = if thread_path == "issue.id" {
        Thread::Issue { number }
    } else {
        Thread::PullRequest { number }
    };
    // The comment's author when the payload names it, else whoever caused the event.
    let user = ["comment.user", "actor"]
        .into_iter()
        .find_map(|p| get(&v, p).filter(|u| u.is_object()))
        .ok_or(WebhookError::MissingField("actor"))?;
    let author = ["nickname", "username", "display_name"]
        .into_iter()
        .find_map(|f| {
            user.get(f)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
        })
        .ok_or(WebhookError::MissingField("actor.nickname"))?;
    Ok(Event::Comment(Comment {
        action: action(word).unwrap_or(CommentAction::Created),
        body: comment_text(&v, "comment.content.raw")?,
        previous_body: None,
        comment_id: require_id(&v, "comment.id")?,
        author: author.to_owned(),
        author_is_bot: user.get("type").and_then(Value::as_str) == Some("app_user"),
        author_association: None,
        repo_full_name: require_name(&v, "repository.full_name")?.to_owned(),
        repo_urls: bitbucket_cloud_urls(&v).into_vec(),
        project_id: None,
        thread,
    }))
}

fn bitbucket_cloud_push(body: &[u8]) -> Result<Event, WebhookError> {
    let v = object(body)?;
    let mut refs = Strings::default();
    if let Some(changes) = get(&v, "push.changes").and_then(Value::as_array) {
        for change in changes {
            // `new` is null for a deletion: the ref is then named by `old`.
            for side in ["new", "old"] {
                let named = change
                    .get(side)
                    .and_then(|s| full_ref(s.get("type")?.as_str()?, s.get("name")?.as_str()?));
                if let Some(r) = named {
                    refs.push(&r);
                    break;
                }
            }
        }
    }
    push(bitbucket_cloud_urls(&v), refs, "repository.full_name")
}

// ---------------------------------------------------------------------------------------------
// Bitbucket Server / Data Center

/// Clone URLs (HTTP and SSH, which differ in more than the scheme: `/scm/` and port 7999) and
/// the web link of the repository object at `repo`.
fn bitbucket_server_urls(v: &Value, repo: &str) -> Strings {
    let mut urls = Strings::default();
    if let Some(repo) = get(v, repo) {
        urls.push_each(repo, "links.clone", "href");
        urls.push_each(repo, "links.self", "href");
    }
    urls
}

fn bitbucket_server(event: &str, body: &[u8]) -> Result<Event, WebhookError> {
    match event {
        "repo:refs_changed" => {
            let v = object(body)?;
            let mut refs = Strings::default();
            if let Some(changes) = get(&v, "changes").and_then(Value::as_array) {
                for change in changes {
                    let id = change
                        .get("refId")
                        .and_then(Value::as_str)
                        .or_else(|| get(change, "ref.id").and_then(Value::as_str));
                    if let Some(id) = id {
                        refs.push(id);
                    }
                }
            }
            push(
                bitbucket_server_urls(&v, "repository"),
                refs,
                "repository.links.clone",
            )
        }
        "diagnostics:ping" => ping(body, |v| bitbucket_server_urls(v, "repository")),
        "pr:comment:added" | "pr:comment:edited" | "pr:comment:deleted" => {
            bitbucket_server_comment(event, body)
        }
        _ => ignored(event),
    }
}

fn bitbucket_server_comment(event: &str, body: &[u8]) -> Result<Event, WebhookError> {
    let v = object(body)?;
    let action = match event {
        "pr:comment:edited" => CommentAction::Edited,
        "pr:comment:deleted" => CommentAction::Deleted,
        _ => CommentAction::Created,
    };
    let repo = "pullRequest.toRef.repository";
    let project = require_name(&v, "pullRequest.toRef.repository.project.key")?;
    let slug = require_name(&v, "pullRequest.toRef.repository.slug")?;
    let user = ["comment.author", "actor"]
        .into_iter()
        .find_map(|p| get(&v, p).filter(|u| u.is_object()))
        .ok_or(WebhookError::MissingField("comment.author"))?;
    let author = ["slug", "name"]
        .into_iter()
        .find_map(|f| {
            user.get(f)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
        })
        .ok_or(WebhookError::MissingField("comment.author.slug"))?;
    Ok(Event::Comment(Comment {
        action,
        body: comment_text(&v, "comment.text")?,
        previous_body: str_at(&v, "previousComment").map(str::to_owned),
        comment_id: require_id(&v, "comment.id")?,
        author: author.to_owned(),
        author_is_bot: user.get("type").and_then(Value::as_str) == Some("SERVICE"),
        author_association: None,
        repo_full_name: format!("{project}/{slug}"),
        repo_urls: bitbucket_server_urls(&v, repo).into_vec(),
        project_id: None,
        thread: Thread::PullRequest {
            number: require_u64(&v, "pullRequest.id")?,
        },
    }))
}

// ---------------------------------------------------------------------------------------------
// Generic

/// A generic delivery is a request to sync. Its body is empty (the per-repository URL names the
/// repository) or a JSON object that may name it and the refs:
/// `{"repo_url": "…", "ref": "refs/heads/main"}`; `repository` may be a URL or an object with
/// GitHub/GitLab-style URL fields, and `refs` a list.
fn generic(body: &[u8]) -> Result<Event, WebhookError> {
    if body.trim_ascii().is_empty() {
        return Ok(Event::Push {
            repo_urls: Vec::new(),
            refs: Vec::new(),
        });
    }
    let v = object(body)?;
    let mut urls = Strings::default();
    urls.push_paths(
        &v,
        &[
            "repo_url",
            "repository_url",
            "clone_url",
            "url",
            "repository",
            "repository.clone_url",
            "repository.git_http_url",
            "repository.url",
            "repository.html_url",
            "repository.web_url",
            "repository.ssh_url",
            "repository.git_ssh_url",
            "repository.git_url",
        ],
    );
    let mut refs = Strings::default();
    refs.push_paths(&v, &["ref"]);
    if let Some(list) = get(&v, "refs").and_then(Value::as_array) {
        for r in list.iter().filter_map(Value::as_str) {
            refs.push(r);
        }
    }
    Ok(Event::Push {
        repo_urls: urls.into_vec(),
        refs: refs.into_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::header::{HeaderName, HeaderValue};
    use serde_json::json;

    fn headers(name: &str, value: &str) -> HeaderMap {
        let mut map = HeaderMap::new();
        map.insert(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
        map
    }

    fn parse_json(
        forge: Forge,
        header: &str,
        event: &str,
        body: Value,
    ) -> Result<Event, WebhookError> {
        parse(forge, &headers(header, event), body.to_string().as_bytes())
    }

    #[test]
    fn organization_events_name_the_repository_and_its_old_path() {
        let renamed = json!({
            "action": "renamed",
            "changes": {"repository": {"name": {"from": "old-api"}}},
            "repository": {"id": 1, "name": "api", "full_name": "acme/api"},
            "organization": {"login": "acme"}
        });
        assert_eq!(
            parse_json(Forge::GitHub, "x-github-event", "repository", renamed).unwrap(),
            Event::Namespace(NamespaceEvent {
                action: "renamed".into(),
                path: "acme/api".into(),
                old_path: Some("acme/old-api".into()),
            })
        );
        let transferred = json!({
            "action": "transferred",
            "changes": {"owner": {"from": {"organization": {"login": "acme-old"}}}},
            "repository": {"full_name": "acme/api"}
        });
        let Event::Namespace(e) =
            parse_json(Forge::GitHub, "x-github-event", "repository", transferred).unwrap()
        else {
            panic!("not a namespace event")
        };
        assert_eq!(e.old_path.as_deref(), Some("acme-old/api"));

        let gitlab = json!({
            "event_name": "project_rename",
            "path_with_namespace": "acme/platform/api",
            "old_path_with_namespace": "acme/platform/old",
            "project_id": 74
        });
        assert_eq!(
            parse_json(
                Forge::GitLab,
                "x-gitlab-event",
                "System Hook",
                gitlab.clone()
            )
            .unwrap(),
            Event::Namespace(NamespaceEvent {
                action: "project_rename".into(),
                path: "acme/platform/api".into(),
                old_path: Some("acme/platform/old".into()),
            })
        );
        assert!(matches!(
            parse_json(Forge::GitLab, "x-gitlab-event", "Project Hook", gitlab).unwrap(),
            Event::Namespace(_)
        ));
        let gitea = json!({"action": "created", "repository": {"full_name": "acme/new"}});
        assert!(matches!(
            parse_json(Forge::Gitea, "x-gitea-event", "repository", gitea).unwrap(),
            Event::Namespace(NamespaceEvent { ref path, .. }) if path == "acme/new"
        ));
        assert_eq!(
            parse_json(
                Forge::GitHub,
                "x-github-event",
                "repository",
                json!({"action": "created"})
            ),
            Err(WebhookError::MissingField("repository.full_name"))
        );
    }

    #[test]
    fn installation_events_name_the_installation_and_account() {
        let body = json!({
            "action": "added",
            "installation": {"id": 42, "account": {"login": "acme"}},
            "repositories_added": [{"full_name": "acme/api"}]
        });
        assert_eq!(
            parse_json(
                Forge::GitHub,
                "x-github-event",
                "installation_repositories",
                body
            )
            .unwrap(),
            Event::Installation(InstallationEvent {
                action: "added".into(),
                installation_id: 42,
                account: "acme".into(),
            })
        );
    }

    #[test]
    fn the_event_header_is_required() {
        assert_eq!(
            parse(Forge::GitHub, &HeaderMap::new(), b"{}"),
            Err(WebhookError::MissingEventHeader("X-GitHub-Event"))
        );
        assert_eq!(
            WebhookError::MissingEventHeader("X-GitHub-Event").to_string(),
            "the delivery has no X-GitHub-Event header naming its event"
        );
    }

    #[test]
    fn ignored_events_do_not_read_the_body() {
        let table = [
            (Forge::GitHub, "X-GitHub-Event", "pull_request"),
            (
                Forge::GitHub,
                "X-GitHub-Event",
                "pull_request_review_comment",
            ),
            (Forge::GitLab, "X-Gitlab-Event", "Merge Request Hook"),
            (Forge::GitLab, "X-Gitlab-Event", "Confidential Note Hook"),
            (Forge::Gitea, "X-Gitea-Event", "pull_request"),
            (Forge::BitbucketCloud, "X-Event-Key", "pullrequest:created"),
            (
                Forge::BitbucketCloud,
                "X-Event-Key",
                "pullrequest:comment_resolved",
            ),
            (Forge::BitbucketServer, "X-Event-Key", "pr:opened"),
        ];
        for (forge, header, event) in table {
            assert_eq!(
                parse(forge, &headers(header, event), b"not json"),
                Ok(Event::Ignored {
                    event: event.into()
                }),
                "{forge} {event}"
            );
        }
    }

    #[test]
    fn pings_are_taken_whatever_the_body() {
        for body in [&b""[..], b"not json", b"{\"test\": true}"] {
            assert_eq!(
                parse(
                    Forge::BitbucketServer,
                    &headers("X-Event-Key", "diagnostics:ping"),
                    body
                ),
                Ok(Event::Ping { repo_urls: vec![] })
            );
        }
        let with_repo = json!({"zen": "z", "repository": {"clone_url": "https://github.com/o/r.git", "url": "https://api.github.com/repos/o/r"}});
        assert_eq!(
            parse_json(Forge::GitHub, "X-GitHub-Event", "ping", with_repo),
            Ok(Event::Ping {
                repo_urls: vec!["https://github.com/o/r.git".into()]
            })
        );
    }

    #[test]
    fn pushes_need_a_repository_and_json() {
        assert_eq!(
            parse_json(
                Forge::GitHub,
                "X-GitHub-Event",
                "push",
                json!({"ref": "refs/heads/x"})
            ),
            Err(WebhookError::MissingField("repository.clone_url"))
        );
        assert!(matches!(
            parse(Forge::GitHub, &headers("X-GitHub-Event", "push"), b"{"),
            Err(WebhookError::MalformedJson { .. })
        ));
        assert_eq!(
            parse_json(
                Forge::GitLab,
                "X-Gitlab-Event",
                "Push Hook",
                json!({"project": {"web_url": 5}})
            ),
            Err(WebhookError::MissingField("project.git_http_url"))
        );
    }

    #[test]
    fn create_and_delete_events_are_pushes_of_one_ref() {
        let body = json!({
            "ref": "v1.0", "ref_type": "tag",
            "repository": {"clone_url": "https://github.com/o/r.git", "url": "https://api.github.com/repos/o/r"}
        });
        assert_eq!(
            parse_json(Forge::GitHub, "X-GitHub-Event", "delete", body),
            Ok(Event::Push {
                repo_urls: vec!["https://github.com/o/r.git".into()],
                refs: vec!["refs/tags/v1.0".into()]
            })
        );
        let body = json!({"ref": "feature", "ref_type": "branch", "repository": {"clone_url": "http://h/o/r.git"}});
        assert_eq!(
            parse_json(Forge::Gitea, "X-Gitea-Event", "create", body),
            Ok(Event::Push {
                repo_urls: vec!["http://h/o/r.git".into()],
                refs: vec!["refs/heads/feature".into()]
            })
        );
    }

    #[test]
    fn gitlab_system_hook_pushes_and_odd_notes() {
        let push = json!({"object_kind": "push", "ref": "refs/heads/main", "project": {"git_http_url": "https://gl/o/r.git"}});
        assert_eq!(
            parse_json(Forge::GitLab, "X-Gitlab-Event", "System Hook", push),
            Ok(Event::Push {
                repo_urls: vec!["https://gl/o/r.git".into()],
                refs: vec!["refs/heads/main".into()]
            })
        );
        let other = json!({"event_name": "project_create"});
        assert_eq!(
            parse_json(Forge::GitLab, "X-Gitlab-Event", "System Hook", other),
            Ok(Event::Ignored {
                event: "System Hook".into()
            })
        );
        let note = |attrs: Value| {
            json!({
                "object_kind": "note",
                "user": {"username": "project_12_bot_3f2a"},
                "project_id": 12,
                "project": {"path_with_namespace": "g/r", "git_http_url": "https://gl/g/r.git"},
                "object_attributes": attrs,
                "merge_request": {"iid": 4},
            })
        };
        let commit_note = note(json!({"id": 1, "note": "x", "noteable_type": "Commit"}));
        let system_note =
            note(json!({"id": 1, "note": "x", "noteable_type": "MergeRequest", "system": true}));
        for body in [commit_note, system_note] {
            assert_eq!(
                parse_json(Forge::GitLab, "X-Gitlab-Event", "Note Hook", body),
                Ok(Event::Ignored {
                    event: "Note Hook".into()
                })
            );
        }
        let edited = note(
            json!({"id": 9, "note": "/sync", "noteable_type": "MergeRequest", "action": "update"}),
        );
        let Ok(Event::Comment(c)) =
            parse_json(Forge::GitLab, "X-Gitlab-Event", "Note Hook", edited)
        else {
            panic!("not a comment");
        };
        assert_eq!(c.action, CommentAction::Edited);
        assert!(c.author_is_bot);
        assert_eq!(c.thread, Thread::PullRequest { number: 4 });
        assert_eq!(c.project_id, Some(12));
    }

    #[test]
    fn gitlab_bot_names() {
        for (name, bot) in [
            ("project_12_bot_3f2a", true),
            ("project_12_bot", true),
            ("group_7_bot_ab", true),
            ("service_account_group_7_abc", true),
            ("project_bot", false),
            ("projectx_12_bot", false),
            ("root", false),
            ("robot", false),
        ] {
            assert_eq!(gitlab_bot(name), bot, "{name}");
        }
    }

    #[test]
    fn github_comment_edits_bots_and_unknown_actions() {
        let body = json!({
            "action": "edited",
            "changes": {"body": {"from": "/sync pls"}},
            "issue": {"number": 12, "pull_request": {"url": "x"}},
            "comment": {"id": 5, "body": "/sync", "user": {"login": "app[bot]", "type": "Bot"}, "author_association": "NONE"},
            "repository": {"full_name": "o/r", "clone_url": "https://github.com/o/r.git", "url": "https://api.github.com/repos/o/r"},
        });
        let Ok(Event::Comment(c)) = parse_json(
            Forge::GitHub,
            "X-GitHub-Event",
            "issue_comment",
            body.clone(),
        ) else {
            panic!("not a comment");
        };
        assert_eq!(c.action, CommentAction::Edited);
        assert_eq!(c.previous_body.as_deref(), Some("/sync pls"));
        assert!(c.author_is_bot);
        assert_eq!(c.thread, Thread::PullRequest { number: 12 });
        assert_eq!(c.repo_urls, ["https://github.com/o/r.git"]);
        let mut pinned = body;
        pinned["action"] = json!("pinned");
        assert_eq!(
            parse_json(Forge::GitHub, "X-GitHub-Event", "issue_comment", pinned),
            Ok(Event::Ignored {
                event: "issue_comment.pinned".into()
            })
        );
    }

    #[test]
    fn bitbucket_cloud_push_of_a_deletion_and_of_a_tag() {
        let body = json!({
            "repository": {"full_name": "ws/repo", "links": {"html": {"href": "https://bitbucket.org/ws/repo"}}},
            "push": {"changes": [
                {"new": null, "old": {"type": "branch", "name": "gone"}},
                {"new": {"type": "tag", "name": "v2"}, "old": null},
            ]}
        });
        assert_eq!(
            parse_json(Forge::BitbucketCloud, "X-Event-Key", "repo:push", body),
            Ok(Event::Push {
                repo_urls: vec![
                    "https://bitbucket.org/ws/repo.git".into(),
                    "https://bitbucket.org/ws/repo".into()
                ],
                refs: vec!["refs/heads/gone".into(), "refs/tags/v2".into()],
            })
        );
        // A full name that would not make a URL is not made into one.
        let body = json!({"repository": {"full_name": "../x"}, "push": {"changes": []}});
        assert_eq!(
            parse_json(Forge::BitbucketCloud, "X-Event-Key", "repo:push", body),
            Err(WebhookError::MissingField("repository.full_name"))
        );
    }

    #[test]
    fn bitbucket_server_edited_comment_keeps_the_previous_text() {
        let body = json!({
            "pullRequest": {"id": 3, "toRef": {"repository": {"slug": "r", "project": {"key": "PRJ"}}}},
            "comment": {"id": 8, "text": "new", "author": {"slug": "ci", "type": "SERVICE"}},
            "previousComment": "old",
        });
        let Ok(Event::Comment(c)) = parse_json(
            Forge::BitbucketServer,
            "X-Event-Key",
            "pr:comment:edited",
            body,
        ) else {
            panic!("not a comment");
        };
        assert_eq!(c.action, CommentAction::Edited);
        assert_eq!(c.previous_body.as_deref(), Some("old"));
        assert_eq!(c.repo_full_name, "PRJ/r");
        assert!(c.author_is_bot);
    }

    #[test]
    fn generic_bodies() {
        let h = HeaderMap::new();
        assert_eq!(
            parse(Forge::Generic, &h, b""),
            Ok(Event::Push {
                repo_urls: vec![],
                refs: vec![]
            })
        );
        assert_eq!(
            parse(Forge::Generic, &h, b" \n"),
            Ok(Event::Push {
                repo_urls: vec![],
                refs: vec![]
            })
        );
        let body = br#"{"repo_url": "https://example.org/g/r.git", "ref": "refs/heads/main", "refs": ["refs/tags/v1", "refs/heads/main"]}"#;
        assert_eq!(
            parse(Forge::Generic, &h, body),
            Ok(Event::Push {
                repo_urls: vec!["https://example.org/g/r.git".into()],
                refs: vec!["refs/heads/main".into(), "refs/tags/v1".into()],
            })
        );
        let body = br#"{"repository": {"clone_url": "https://example.org/g/r.git", "ssh_url": "git@example.org:g/r.git"}}"#;
        assert_eq!(
            parse(Forge::Generic, &h, body),
            Ok(Event::Push {
                repo_urls: vec![
                    "https://example.org/g/r.git".into(),
                    "git@example.org:g/r.git".into()
                ],
                refs: vec![],
            })
        );
        assert!(matches!(
            parse(Forge::Generic, &h, b"sync please"),
            Err(WebhookError::MalformedJson { .. })
        ));
    }
}

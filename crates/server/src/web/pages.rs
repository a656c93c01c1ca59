//! The pages and the forms they post.

use std::sync::Arc;

use askama::Template;
use chrono::{TimeDelta, Utc};
use mirrorhub_core::{Access, Actor, Trigger};
use mirrorhub_hub::{CreateRepo, Hub, HubError, UpdateRepo};
use poem::http::{header, StatusCode};
use poem::web::cookie::CookieJar;
use poem::web::{Data, Form, Path, Query};
use poem::{handler, IntoResponse, Response};
use serde::Deserialize;

use super::session::{self, SignedIn};
use super::view::{ContentsView, FieldErrors, Layout, RepoRow, RepoView, RepoViewInput, RunView};
use super::{message_page, redirect, render};
use crate::auth::AdminAuth;
use crate::ServerConfig;

/// How many branches and tags, commits and sync runs a repository page lists.
const PAGE_REFS: usize = 50;
const PAGE_COMMITS: usize = 20;
const PAGE_RUNS: i64 = 20;

/// A failed sign-in waits this long: guessing tokens online stays slow.
const SIGN_IN_FAILURE_DELAY: std::time::Duration = std::time::Duration::from_millis(500);

#[derive(Template)]
#[template(path = "message.html")]
pub(super) struct MessagePage<'a> {
    pub layout: Layout,
    pub title: &'a str,
    pub message: &'a str,
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    layout: Layout,
    login_csrf: String,
    next: String,
    /// What was typed, shown again after a failure.
    username: String,
    error: Option<&'static str>,
}

#[derive(Template)]
#[template(path = "list.html")]
struct ListPage {
    layout: Layout,
    csrf: String,
    repos: Vec<RepoRow>,
}

/// The import form's fields, as typed.
#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct ImportForm {
    csrf: String,
    action: String,
    url: String,
    username: String,
    token: String,
    owner: String,
    name: String,
    visibility: String,
    description: String,
    mode: String,
    sync_interval: String,
    /// SSH addresses: a deploy key's id, or `upload` (the private key below).
    ssh_key: String,
    /// Never shown again in the page.
    ssh_private_key: String,
    /// Never shown again in the page.
    ssh_key_passphrase: String,
    /// The detected host keys, as known_hosts lines (a hidden field).
    known_hosts: String,
    /// The user confirmed the detected host keys.
    trust_host_keys: Option<String>,
}

#[derive(Template)]
#[template(path = "new.html")]
struct NewPage {
    layout: Layout,
    csrf: String,
    form: ImportForm,
    errors: FieldErrors,
    form_error: Option<String>,
    test_result: Option<String>,
    ssh: super::ssh::ImportSsh,
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct SettingsForm {
    csrf: String,
    sync_interval: String,
    description: String,
    visibility: String,
    username: String,
    token: String,
    remove_credentials: Option<String>,
    /// The ref filter, one pattern per line; `None` when the form did not carry it.
    refs_include: Option<String>,
    refs_exclude: Option<String>,
}

#[derive(Template)]
#[template(path = "repo.html")]
struct RepoPage {
    layout: Layout,
    /// Settings, webhook secret, promote and delete are shown to admins of the repository.
    can_admin: bool,
    csrf: String,
    repo: RepoView,
    contents: ContentsView,
    runs: Vec<RunView>,
    settings: SettingsForm,
    errors: FieldErrors,
    settings_error: Option<String>,
    delete_error: Option<String>,
    promote_error: Option<String>,
    /// SSH upstreams: the deploy key and pinned host keys.
    ssh: Option<super::ssh::RepoSsh>,
    /// The mirror is failing or paused because the SSH server showed another host key.
    host_key_mismatch: bool,
    host_keys: super::ssh::HostKeysForm,
    /// Admins: the repository's push mirrors and the add form.
    push_mirrors: super::push_mirrors::PushMirrorsSection,
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct PromoteForm {
    csrf: String,
    /// The "for good" checkbox.
    confirm: Option<String>,
    force: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct LoginForm {
    csrf: String,
    /// Empty: `token` is the admin token; otherwise `token` is this user's password.
    username: String,
    token: String,
    next: String,
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct NextQuery {
    next: String,
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct NoticeQuery {
    notice: String,
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct CsrfForm {
    csrf: String,
    /// Where to go back to after the action (a path on the hub).
    back: String,
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct DeleteForm {
    csrf: String,
    confirm: String,
}

/// The one-line notices an action leaves; only these fixed texts can appear (the query
/// names one, it never carries text).
pub(super) fn notice(code: &str) -> Option<&'static str> {
    Some(match code {
        "sync-queued" => "Sync queued: the page updates when it has run.",
        "created" => {
            "Import started: the first copy runs in the background and this page follows it."
        }
        "saved" => "Settings saved.",
        "promote-queued" => "Promotion started: a final sync runs, then the repository becomes the primary if it equals the upstream. The sync history below shows how it went.",
        "promoted" => "Promoted: the hub's copy is the primary now and is never synced again.",
        "deleted" => "Repository deleted.",
        "host-keys-saved" => "Host keys pinned: from now on the hub trusts only these, and a sync is queued.",
        "push-mirror-added" => "Push mirror added: the first push runs now, and then after every change.",
        "push-queued" => "Push queued: the push mirror's status updates when it has run.",
        "push-mirror-deleted" => "Push mirror deleted (the downstream is left as it is).",
        "signed-out" => "Signed out.",
        "set-created" => "Mirror set created: the namespace is listed in the background, and each repository it keeps becomes a mirror. This page follows it.",
        "set-listing" => "Listing queued: new, renamed and removed repositories show here when it has run.",
        "set-deleted" => "Mirror set deleted.",
        _ => return None,
    })
}

pub(super) fn layout(user: &SignedIn, notice_code: &str) -> Layout {
    Layout {
        csrf: Some(user.session.csrf_token.clone()),
        notice: notice(notice_code),
        who: Some(who(&user.actor)),
    }
}

/// Who is signed in, in the header.
fn who(actor: &Actor) -> String {
    match actor.user_name() {
        Some(name) => name.to_owned(),
        None => "admin token".to_owned(),
    }
}

pub(super) fn hub_error_page(e: &HubError, user: &SignedIn) -> Response {
    let status = crate::errors::status_of(e.code());
    let title = match status {
        StatusCode::NOT_FOUND => "Not found",
        StatusCode::SERVICE_UNAVAILABLE => "The hub is unavailable",
        s if s.is_server_error() => "Something failed",
        _ => "That did not work",
    };
    message_page(
        status,
        title,
        &super::view::user_message(e),
        Some(user.session.csrf_token.clone()),
    )
}

#[handler]
pub(super) async fn list(
    hub: Data<&Arc<Hub>>,
    user: SignedIn,
    Query(q): Query<NoticeQuery>,
) -> Response {
    let repos = match hub.visible_repos(&user.actor).await {
        Ok(r) => r,
        Err(e) => return hub_error_page(&e, &user),
    };
    let statuses = match hub.statuses().await {
        Ok(s) => s,
        Err(e) => return hub_error_page(&e, &user),
    };
    let freshness = match hub.all_freshness().await {
        Ok(f) => f,
        Err(e) => return hub_error_page(&e, &user),
    };
    let now = Utc::now();
    let repos = repos
        .iter()
        .map(|(r, access)| {
            let mut row = RepoRow::new(r, statuses.of(r), now);
            row.can_sync &= access.includes(Access::Write);
            row.freshness = super::fidelity::FreshnessView::of(r, freshness.get(&r.id), now);
            row
        })
        .collect();
    render(
        StatusCode::OK,
        &ListPage {
            layout: layout(&user, &q.notice),
            csrf: user.session.csrf_token.clone(),
            repos,
        },
    )
}

#[handler]
pub(super) async fn login_form(
    hub: Data<&Arc<Hub>>,
    config: Data<&Arc<ServerConfig>>,
    jar: &CookieJar,
    Query(q): Query<NextQuery>,
    Query(n): Query<NoticeQuery>,
) -> Response {
    let next = session::safe_next(&q.next).to_owned();
    if let Some(c) = jar.get(session::SESSION_COOKIE) {
        if let Ok(Some(_)) = hub.web_session(c.value_str()).await {
            return redirect(&next);
        }
    }
    let page = LoginPage {
        layout: Layout {
            notice: notice(&n.notice),
            ..Layout::default()
        },
        login_csrf: session::login_token(jar, &config.web),
        next,
        username: String::new(),
        error: None,
    };
    render(StatusCode::OK, &page)
}

#[handler]
pub(super) async fn login(
    hub: Data<&Arc<Hub>>,
    admin: Data<&Arc<AdminAuth>>,
    config: Data<&Arc<ServerConfig>>,
    jar: &CookieJar,
    Form(form): Form<LoginForm>,
) -> poem::Result<Response> {
    session::check_login_token(jar, &form.csrf)?;
    let next = session::safe_next(&form.next).to_owned();
    let username = form.username.trim();
    let signed_in = if username.is_empty() {
        admin.verify(form.token.trim()).then_some(None)
    } else {
        match hub.check_password(username, &form.token).await {
            Ok(user) => Some(Some(user.id)),
            Err(HubError::Unauthorized(_)) => None,
            Err(e) => {
                return Ok(message_page(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Sign-in failed",
                    &super::view::user_message(&e),
                    None,
                ))
            }
        }
    };
    let Some(user_id) = signed_in else {
        tokio::time::sleep(SIGN_IN_FAILURE_DELAY).await;
        tracing::warn!("a web sign-in with wrong credentials was refused");
        let page = LoginPage {
            layout: Layout::default(),
            login_csrf: session::login_token(jar, &config.web),
            next,
            username: username.to_owned(),
            error: Some(match (username.is_empty(), form.token.trim().is_empty()) {
                (_, true) => "Enter your password, or the admin token.",
                (true, false) => "That is not the admin token. Use the token set in MIRRORHUB_ADMIN_TOKEN, or the one the hub printed on its first start; or enter your username and password.",
                (false, false) => "Wrong username or password.",
            }),
        };
        return Ok(render(StatusCode::OK, &page));
    };
    let ttl = TimeDelta::from_std(config.web.session_ttl).unwrap_or(TimeDelta::hours(12));
    match hub.start_web_session(ttl, user_id).await {
        Ok(new) => {
            session::set_session_cookie(jar, &config.web, new.cookie);
            session::remove_cookie(jar, &config.web, session::LOGIN_COOKIE);
            tracing::info!("signed in to the web UI");
            Ok(redirect(&next))
        }
        Err(e) => Ok(message_page(
            StatusCode::SERVICE_UNAVAILABLE,
            "Sign-in failed",
            &super::view::user_message(&e),
            None,
        )),
    }
}

#[handler]
pub(super) async fn logout(
    hub: Data<&Arc<Hub>>,
    config: Data<&Arc<ServerConfig>>,
    jar: &CookieJar,
    user: SignedIn,
    Form(form): Form<CsrfForm>,
) -> poem::Result<Response> {
    user.check_csrf(&form.csrf)?;
    if let Err(e) = hub.end_web_session(&user.cookie).await {
        return Ok(hub_error_page(&e, &user));
    }
    session::remove_cookie(jar, &config.web, session::SESSION_COOKIE);
    Ok(redirect("/-/login?notice=signed-out"))
}

#[handler]
pub(super) async fn new_form(user: SignedIn, hub: Data<&Arc<Hub>>) -> Response {
    let form = ImportForm {
        mode: "mirror".into(),
        visibility: "private".into(),
        sync_interval: hub.config().default_sync_interval.to_string(),
        ..Default::default()
    };
    new_page(&hub, &user, form, FieldErrors::default(), None, None).await
}

/// The import form, shown again with what was typed (but never a private key or passphrase),
/// the owner's deploy keys and the host keys the form carries.
async fn new_page(
    hub: &Hub,
    user: &SignedIn,
    mut form: ImportForm,
    errors: FieldErrors,
    form_error: Option<String>,
    test_result: Option<String>,
) -> Response {
    let ssh_address = super::ssh::is_ssh_address(&form.url);
    let ssh_error = super::ssh::SSH_FIELDS.iter().any(|f| errors.has(f));
    let http_error = errors.has("token") || errors.has("username");
    let owner = form.owner.trim();
    let (keys, keys_hint) = if owner.is_empty() {
        (
            Vec::new(),
            "Enter the owner below to choose one of its deploy keys, or generate one.".to_owned(),
        )
    } else {
        let listed = match hub.authorize_owner(&user.actor, owner).await {
            Ok(()) => hub.list_ssh_keys(owner).await,
            Err(e) => Err(e),
        };
        match listed {
            Ok(keys) => (
                keys,
                format!("{owner} has no deploy keys yet: generate one."),
            ),
            Err(e) => (Vec::new(), super::view::user_message(&e)),
        }
    };
    let chosen_id = form.ssh_key.trim().parse::<i64>().ok();
    let keys: Vec<super::ssh::KeyView> = keys
        .iter()
        .map(|k| super::ssh::KeyView::new(k, Some(k.id) == chosen_id))
        .collect();
    let chosen = keys.iter().find(|k| k.selected).cloned();
    let host_keys = super::ssh::carried_host_keys(&form.url, &form.known_hosts);
    if host_keys.is_empty() {
        form.known_hosts.clear();
    }
    let ssh = super::ssh::ImportSsh {
        show_http: ssh_address != Some(true) || http_error,
        show_ssh: ssh_address != Some(false) || ssh_error,
        keys_hint,
        chosen,
        generated: form.action == "generate_key" && chosen_id.is_some(),
        upload_selected: form.ssh_key == "upload",
        ask_key_again: !form.ssh_private_key.trim().is_empty()
            || !form.ssh_key_passphrase.is_empty(),
        host_keys: super::ssh::host_key_views(&host_keys),
        trust_host_keys: form.trust_host_keys.is_some(),
        keys,
    };
    // What the user typed stays, except secrets of a key: those are asked for again.
    form.ssh_private_key.clear();
    form.ssh_key_passphrase.clear();
    render(
        StatusCode::OK,
        &NewPage {
            layout: layout(user, ""),
            csrf: user.session.csrf_token.clone(),
            form,
            errors,
            form_error,
            test_result,
            ssh,
        },
    )
}

// A form shown again with its errors is answered 200, as a page that renders fine: browsers log
// every 4xx page load as a console error.

/// The fields of the import form a hub error can be about.
const IMPORT_FIELDS: &[&str] = &[
    "url",
    "username",
    "token",
    "owner",
    "name",
    "visibility",
    "description",
    "mode",
    "sync_interval",
    "ssh_key_id",
    "ssh_private_key",
    "ssh_key_passphrase",
    "known_hosts",
];

fn optional(s: &str) -> Option<String> {
    Some(s.trim()).filter(|s| !s.is_empty()).map(str::to_owned)
}

/// "Connected: 3 branches, 2 tags, default branch main."
fn connected(info: &mirrorhub_git::RemoteInfo) -> String {
    let head = info
        .head
        .as_deref()
        .map(|h| h.strip_prefix("refs/heads/").unwrap_or(h))
        .map(|h| format!(", default branch {h}"))
        .unwrap_or_default();
    format!(
        "Connected: {} branch{}, {} tag{}{head}.",
        info.branches,
        if info.branches == 1 { "" } else { "es" },
        info.tags,
        if info.tags == 1 { "" } else { "s" },
    )
}

/// The import form's SSH key choice: a deploy key's id and a pasted private key (either may be
/// absent; the hub says what is wrong with them, by field).
fn ssh_key_choice(form: &ImportForm) -> Result<(Option<i64>, Option<String>), HubError> {
    let pasted = Some(form.ssh_private_key.clone()).filter(|k| !k.trim().is_empty());
    match form.ssh_key.trim() {
        "" => Ok((None, pasted)),
        "upload" if pasted.is_none() => Err(HubError::invalid(
            mirrorhub_core::ErrorCode::InvalidRequest,
            "ssh_private_key",
            "paste the private key (the whole OpenSSH file), or choose a deploy key",
        )),
        "upload" => Ok((None, pasted)),
        id => match id.parse::<i64>() {
            Ok(id) => Ok((Some(id), pasted)),
            Err(_) => Err(HubError::invalid(
                mirrorhub_core::ErrorCode::InvalidRequest,
                "ssh_key_id",
                "choose one of the deploy keys listed, or generate one",
            )),
        },
    }
}

#[handler]
pub(super) async fn create(
    hub: Data<&Arc<Hub>>,
    user: SignedIn,
    Form(mut form): Form<ImportForm>,
) -> poem::Result<Response> {
    user.check_csrf(&form.csrf)?;
    let ssh_address = super::ssh::is_ssh_address(&form.url) == Some(true);
    // An answer to show with the form, or the error to put next to its field.
    let outcome: Result<Option<String>, HubError> = match form.action.as_str() {
        "detect_host_keys" => match hub.detect_host_keys(&user.actor, form.url.trim()).await {
            Ok(keys) => {
                if let Ok((url, _)) = mirrorhub_core::UpstreamUrl::parse(form.url.trim()) {
                    form.known_hosts = super::ssh::known_hosts_lines(&url, &keys);
                }
                form.trust_host_keys = None;
                Ok(None)
            }
            Err(e) => Err(e),
        },
        "generate_key" => {
            let owner = form.owner.trim().to_owned();
            if owner.is_empty() {
                Err(HubError::invalid(
                    mirrorhub_core::ErrorCode::InvalidName,
                    "owner",
                    "enter the owner first: a deploy key belongs to a user or organization, whose repositories may use it",
                ))
            } else {
                let made = match hub.authorize_owner(&user.actor, &owner).await {
                    Ok(()) => hub.create_ssh_key(&owner, None).await,
                    Err(e) => Err(e),
                };
                match made {
                    Ok(key) => {
                        form.ssh_key = key.id.to_string();
                        Ok(None)
                    }
                    Err(e) => Err(e),
                }
            }
        }
        "test" if ssh_address => test_ssh(&hub, &user, &mut form).await.map(Some),
        "test" => hub
            .check_upstream(
                form.url.trim(),
                optional(&form.username).as_deref(),
                Some(form.token.as_str()).filter(|t| !t.is_empty()),
            )
            .await
            .map(|info| Some(connected(&info))),
        _ => match create_request(&hub, &form, ssh_address) {
            Ok(request) => {
                let created = match hub.authorize_owner(&user.actor, &request.owner).await {
                    Ok(()) => hub.create_repo(request).await,
                    Err(e) => Err(e),
                };
                match created {
                    Ok(repo) => {
                        return Ok(redirect(&format!(
                            "/{}/{}?notice=created",
                            repo.owner, repo.name
                        )))
                    }
                    Err(e) => Err(e),
                }
            }
            Err(e) => Err(e),
        },
    };
    Ok(match outcome {
        Ok(result) => new_page(&hub, &user, form, FieldErrors::default(), None, result).await,
        Err(e) => {
            let (errors, form_error) = FieldErrors::from_error(&e, IMPORT_FIELDS);
            new_page(&hub, &user, form, errors, form_error, None).await
        }
    })
}

/// The create request of the import form. An SSH address needs host keys the user confirmed
/// (the hub pins exactly those); that is asked once the request is otherwise valid, so the
/// errors come in the order the hub finds them.
fn create_request(hub: &Hub, form: &ImportForm, ssh_address: bool) -> Result<CreateRepo, HubError> {
    let (ssh_key_id, ssh_private_key) = if ssh_address {
        ssh_key_choice(form)?
    } else {
        // The key choice and detected host keys are the SSH part's state; a pasted key is
        // what the user gave (and is refused for this address, by field).
        (
            None,
            Some(form.ssh_private_key.clone()).filter(|k| !k.trim().is_empty()),
        )
    };
    let request = CreateRepo {
        url: form.url.trim().to_owned(),
        username: optional(&form.username),
        token: Some(form.token.clone()).filter(|t| !t.is_empty()),
        owner: form.owner.trim().to_owned(),
        name: optional(&form.name),
        visibility: optional(&form.visibility),
        description: optional(&form.description),
        mode: optional(&form.mode),
        sync_interval: optional(&form.sync_interval),
        ssh_key_id,
        ssh_key_passphrase: ssh_private_key
            .as_ref()
            .and(Some(form.ssh_key_passphrase.clone()))
            .filter(|p| !p.is_empty()),
        ssh_private_key,
        known_hosts: Some(form.known_hosts.clone()).filter(|k| ssh_address && !k.trim().is_empty()),
        ..CreateRepo::default()
    };
    if ssh_address {
        let config = hub.config();
        request
            .clone()
            .validate(config.default_sync_interval, config.min_sync_interval)?;
        let invalid = |m: &str| {
            HubError::invalid(mirrorhub_core::ErrorCode::InvalidRequest, "known_hosts", m)
        };
        if request.known_hosts.is_none() {
            return Err(invalid("press Detect host keys and confirm the server's keys first: the hub trusts exactly the keys you confirm"));
        }
        if form.trust_host_keys.is_none() {
            return Err(invalid("compare the fingerprints with the ones the server's administrators publish, then tick the box to confirm them"));
        }
    }
    Ok(request)
}

/// "Test connection" for an SSH address: the host keys it shows (kept in the form to confirm,
/// unless the form carries some already) and whether the key gets in.
async fn test_ssh(hub: &Hub, user: &SignedIn, form: &mut ImportForm) -> Result<String, HubError> {
    let (key_id, private_key) = ssh_key_choice(form)?;
    let owner = form.owner.trim().to_owned();
    if key_id.is_some() {
        hub.authorize_owner(&user.actor, &owner).await?;
    }
    let given = Some(form.known_hosts.as_str()).filter(|k| !k.trim().is_empty());
    let (keys, result) = hub
        .check_ssh_upstream(
            form.url.trim(),
            &owner,
            key_id,
            private_key.as_deref(),
            Some(form.ssh_key_passphrase.as_str()).filter(|p| !p.is_empty()),
            given,
        )
        .await;
    if given.is_none() && !keys.is_empty() {
        if let Ok((url, _)) = mirrorhub_core::UpstreamUrl::parse(form.url.trim()) {
            form.known_hosts = super::ssh::known_hosts_lines(&url, &keys);
            form.trust_host_keys = None;
        }
    }
    result.map(|info| connected(&info))
}

/// `name` or `name.git`.
pub(super) fn repo_name(name: &str) -> &str {
    name.strip_suffix(".git").unwrap_or(name)
}

#[handler]
pub(super) async fn repo_page(
    hub: Data<&Arc<Hub>>,
    config: Data<&Arc<ServerConfig>>,
    user: SignedIn,
    Path((owner, name)): Path<(String, String)>,
    Query(q): Query<NoticeQuery>,
) -> Response {
    if name.ends_with(".git") {
        // The clone URL pasted into a browser.
        return redirect(&format!("/{owner}/{}", repo_name(&name)));
    }
    let (repo, access) = match hub
        .authorize_repo(&user.actor, &owner, &name, Access::Read)
        .await
    {
        Ok(found) => found,
        Err(e) => return hub_error_page(&e, &user),
    };
    let settings = settings_of(&repo);
    repo_page_with(
        &hub,
        &config,
        &user,
        (repo, access),
        RepoPageExtras {
            notice: notice(&q.notice),
            settings,
            ..Default::default()
        },
    )
    .await
}

#[derive(Default)]
pub(super) struct RepoPageExtras {
    pub notice: Option<&'static str>,
    pub settings: SettingsForm,
    pub errors: FieldErrors,
    pub settings_error: Option<String>,
    pub delete_error: Option<String>,
    pub promote_error: Option<String>,
    pub host_keys: super::ssh::HostKeysForm,
    pub push_mirrors: super::push_mirrors::PushMirrorsSection,
}

/// The repository's page for `user`, whose `access` to it the caller has checked.
pub(super) async fn repo_page_with(
    hub: &Arc<Hub>,
    config: &ServerConfig,
    user: &SignedIn,
    (repo, access): (mirrorhub_store::Repo, Access),
    extras: RepoPageExtras,
) -> Response {
    let now = Utc::now();
    let (contents, runs, statuses) = tokio::join!(
        hub.repo_contents(&repo, PAGE_REFS, PAGE_COMMITS),
        hub.list_runs(&repo.owner, &repo.name, PAGE_RUNS),
        hub.statuses()
    );
    let contents = match contents {
        Ok(c) => c,
        Err(e) => {
            // The page stays useful (settings, delete) when the copy cannot be read.
            tracing::warn!(error = %e, repo_id = repo.id, "the repository's contents could not be read");
            Default::default()
        }
    };
    let (runs, statuses) = match (runs, statuses) {
        (Ok(r), Ok(s)) => (r, s),
        (Err(e), _) | (_, Err(e)) => return hub_error_page(&e, user),
    };
    let mut view = RepoView::new(RepoViewInput {
        repo: &repo,
        status: statuses.of(&repo),
        public_url: &config.public_url,
        webhook_url: hub.webhook_url(&repo),
        now,
    });
    view.can_sync &= access.includes(Access::Write);
    view.lfs = super::view::LfsView::new(&repo, hub.lfs_counts(repo.id).await);
    let freshness = hub.freshness(repo.id).await.ok().flatten();
    view.freshness = super::fidelity::FreshnessView::of(&repo, freshness.as_ref(), now);
    view.webhook_silent = super::fidelity::silence_of(&repo, freshness.as_ref(), now);
    let filter = hub.ref_filter(repo.id).await.unwrap_or_default();
    view.ref_include = super::fidelity::patterns_text(&filter.include);
    view.ref_exclude = super::fidelity::patterns_text(&filter.exclude);
    let ssh = super::ssh::RepoSsh::of(hub, &repo).await;
    let can_admin = access.includes(Access::Admin);
    let mut push_mirrors = extras.push_mirrors;
    if push_mirrors.error.is_none() {
        push_mirrors.form = super::push_mirrors::PushMirrorForm::fresh();
    }
    if can_admin {
        match hub.list_push_mirrors(&repo).await {
            Ok(mirrors) => {
                push_mirrors.list = mirrors
                    .iter()
                    .map(|m| super::push_mirrors::PushMirrorView::new(m, now))
                    .collect()
            }
            Err(e) => return hub_error_page(&e, user),
        }
    }
    let page = RepoPage {
        push_mirrors,
        host_key_mismatch: ssh.as_ref().is_some_and(|s| s.mismatch.is_some()),
        ssh,
        host_keys: extras.host_keys,
        layout: Layout {
            notice: extras.notice,
            ..layout(user, "")
        },
        can_admin,
        csrf: user.session.csrf_token.clone(),
        repo: view,
        contents: ContentsView::new(&contents, now),
        runs: runs.iter().map(|r| RunView::new(r, now)).collect(),
        settings: extras.settings,
        errors: extras.errors,
        settings_error: extras.settings_error,
        delete_error: extras.delete_error,
        promote_error: extras.promote_error,
    };
    render(StatusCode::OK, &page)
}

#[handler]
pub(super) async fn sync(
    hub: Data<&Arc<Hub>>,
    user: SignedIn,
    Path((owner, name)): Path<(String, String)>,
    Form(form): Form<CsrfForm>,
) -> poem::Result<Response> {
    user.check_csrf(&form.csrf)?;
    let name = repo_name(&name);
    let queued = match hub
        .authorize_repo(&user.actor, &owner, name, Access::Write)
        .await
    {
        Ok(_) => hub.request_sync(&owner, name, Trigger::Manual).await,
        Err(e) => Err(e),
    };
    if let Err(e) = queued {
        return Ok(hub_error_page(&e, &user));
    }
    let back = match session::safe_next(&form.back) {
        "/" => "/".to_owned(),
        _ => format!("/{owner}/{name}"),
    };
    let sep = if back.contains('?') { '&' } else { '?' };
    Ok(redirect(&format!("{back}{sep}notice=sync-queued")))
}

/// The repository a form acts on, once the form's CSRF token is checked and the user found to
/// administer it; or the page to answer when it does not exist, they may not (or the store
/// failed).
pub(super) async fn acted_on(
    hub: &Hub,
    user: &SignedIn,
    csrf: &str,
    owner: &str,
    name: &str,
) -> poem::Result<Result<(mirrorhub_store::Repo, Access), Response>> {
    user.check_csrf(csrf)?;
    Ok(hub
        .authorize_repo(&user.actor, owner, name, Access::Admin)
        .await
        .map_err(|e| hub_error_page(&e, user)))
}

#[handler]
pub(super) async fn save_settings(
    hub: Data<&Arc<Hub>>,
    config: Data<&Arc<ServerConfig>>,
    user: SignedIn,
    Path((owner, name)): Path<(String, String)>,
    Form(form): Form<SettingsForm>,
) -> poem::Result<Response> {
    let name = repo_name(&name);
    let (repo, access) = match acted_on(&hub, &user, &form.csrf, &owner, name).await? {
        Ok(found) => found,
        Err(page) => return Ok(page),
    };
    let token = Some(form.token.clone()).filter(|t| !t.is_empty());
    let update = UpdateRepo {
        username: token.as_ref().and_then(|_| optional(&form.username)),
        token,
        remove_credentials: form.remove_credentials.is_some(),
        sync_interval: optional(&form.sync_interval)
            .filter(|_| repo.mode == mirrorhub_core::Mode::Mirror),
        description: Some(form.description.clone()),
        visibility: optional(&form.visibility),
        refs: match (&form.refs_include, &form.refs_exclude) {
            (None, None) => None,
            (include, exclude) => Some(super::fidelity::filter_from_form(
                include.as_deref().unwrap_or_default(),
                exclude.as_deref().unwrap_or_default(),
            )),
        },
        ..UpdateRepo::default()
    };
    match hub.update_repo(&owner, name, update).await {
        Ok(repo) => Ok(redirect(&format!(
            "/{}/{}?notice=saved#settings",
            repo.owner, repo.name
        ))),
        Err(e) => {
            let (errors, settings_error) = FieldErrors::from_error(
                &e,
                &[
                    "sync_interval",
                    "description",
                    "visibility",
                    "token",
                    "refs",
                ],
            );
            Ok(repo_page_with(
                &hub,
                &config,
                &user,
                (repo, access),
                RepoPageExtras {
                    settings: SettingsForm {
                        token: String::new(),
                        ..form
                    },
                    errors,
                    settings_error,
                    ..Default::default()
                },
            )
            .await)
        }
    }
}

#[handler]
pub(super) async fn delete(
    hub: Data<&Arc<Hub>>,
    config: Data<&Arc<ServerConfig>>,
    user: SignedIn,
    Path((owner, name)): Path<(String, String)>,
    Form(form): Form<DeleteForm>,
) -> poem::Result<Response> {
    let name = repo_name(&name);
    let (repo, access) = match acted_on(&hub, &user, &form.csrf, &owner, name).await? {
        Ok(found) => found,
        Err(page) => return Ok(page),
    };
    let full_name = format!("{}/{}", repo.owner, repo.name);
    if form.confirm.trim() != full_name {
        let settings = settings_of(&repo);
        return Ok(repo_page_with(
            &hub,
            &config,
            &user,
            (repo, access),
            RepoPageExtras {
                settings,
                delete_error: Some(format!(
                    "Nothing was deleted: type {full_name} exactly to confirm."
                )),
                ..Default::default()
            },
        )
        .await);
    }
    match hub.delete_repo(&owner, name).await {
        Ok(()) => Ok(redirect("/?notice=deleted")),
        Err(e) => Ok(hub_error_page(&e, &user)),
    }
}

#[handler]
pub(super) async fn promote(
    hub: Data<&Arc<Hub>>,
    config: Data<&Arc<ServerConfig>>,
    user: SignedIn,
    Path((owner, name)): Path<(String, String)>,
    Form(form): Form<PromoteForm>,
) -> poem::Result<Response> {
    let name = repo_name(&name);
    let access = match acted_on(&hub, &user, &form.csrf, &owner, name).await? {
        Ok((_, access)) => access,
        Err(page) => return Ok(page),
    };
    let force = form.force.is_some();
    let refusal = if form.confirm.is_none() {
        "Nothing was changed: tick the box to confirm that the hub stops following the upstream for good.".to_owned()
    } else {
        match hub.promote(&owner, name, force).await {
            Ok(repo) => {
                let notice = if force { "promoted" } else { "promote-queued" };
                return Ok(redirect(&format!(
                    "/{}/{}?notice={notice}",
                    repo.owner, repo.name
                )));
            }
            Err(e) => super::view::user_message(&e),
        }
    };
    let repo = match hub.get_repo(&owner, name).await {
        Ok(r) => r,
        Err(e) => return Ok(hub_error_page(&e, &user)),
    };
    let settings = settings_of(&repo);
    Ok(repo_page_with(
        &hub,
        &config,
        &user,
        (repo, access),
        RepoPageExtras {
            settings,
            promote_error: Some(refusal),
            ..Default::default()
        },
    )
    .await)
}

/// The settings form as the repository has them.
pub(super) fn settings_of(repo: &mirrorhub_store::Repo) -> SettingsForm {
    SettingsForm {
        sync_interval: super::view::interval_text(repo.sync_interval_secs),
        description: repo.description.clone(),
        visibility: repo.visibility.as_str().to_owned(),
        username: repo
            .credentials
            .as_ref()
            .map(|c| c.username.clone())
            .unwrap_or_default(),
        ..Default::default()
    }
}

/// The stylesheet and the script, compiled into the binary: nothing to install beside it.
#[handler]
pub(super) fn asset(Path(file): Path<String>) -> Response {
    let (body, content_type) = match file.as_str() {
        "app.css" => (
            include_str!("../../static/app.css"),
            "text/css; charset=utf-8",
        ),
        "app.js" => (
            include_str!("../../static/app.js"),
            "text/javascript; charset=utf-8",
        ),
        "favicon.svg" => (include_str!("../../static/favicon.svg"), "image/svg+xml"),
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    super::secure(
        Response::builder()
            .content_type(content_type)
            .header(header::CACHE_CONTROL, "public, max-age=300")
            .body(body),
    )
}

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
fn notice(code: &str) -> Option<&'static str> {
    Some(match code {
        "sync-queued" => "Sync queued: the page updates when it has run.",
        "created" => {
            "Import started: the first copy runs in the background and this page follows it."
        }
        "saved" => "Settings saved.",
        "promote-queued" => "Promotion started: a final sync runs, then the repository becomes the primary if it equals the upstream. The sync history below shows how it went.",
        "promoted" => "Promoted: the hub's copy is the primary now and is never synced again.",
        "deleted" => "Repository deleted.",
        "signed-out" => "Signed out.",
        _ => return None,
    })
}

fn layout(user: &SignedIn, notice_code: &str) -> Layout {
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

fn hub_error_page(e: &HubError, user: &SignedIn) -> Response {
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
    let now = Utc::now();
    let repos = repos
        .iter()
        .map(|(r, access)| {
            let mut row = RepoRow::new(r, statuses.of(r), now);
            row.can_sync &= access.includes(Access::Write);
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
    new_page(&user, form, FieldErrors::default(), None, None)
}

fn new_page(
    user: &SignedIn,
    form: ImportForm,
    errors: FieldErrors,
    form_error: Option<String>,
    test_result: Option<String>,
) -> Response {
    render(
        StatusCode::OK,
        &NewPage {
            layout: layout(user, ""),
            csrf: user.session.csrf_token.clone(),
            form,
            errors,
            form_error,
            test_result,
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
];

fn optional(s: &str) -> Option<String> {
    Some(s.trim()).filter(|s| !s.is_empty()).map(str::to_owned)
}

#[handler]
pub(super) async fn create(
    hub: Data<&Arc<Hub>>,
    user: SignedIn,
    Form(form): Form<ImportForm>,
) -> poem::Result<Response> {
    user.check_csrf(&form.csrf)?;
    if form.action == "test" {
        let checked = hub
            .check_upstream(
                form.url.trim(),
                optional(&form.username).as_deref(),
                Some(form.token.as_str()).filter(|t| !t.is_empty()),
            )
            .await;
        return Ok(match checked {
            Ok(info) => {
                let head = info
                    .head
                    .as_deref()
                    .map(|h| h.strip_prefix("refs/heads/").unwrap_or(h))
                    .map(|h| format!(", default branch {h}"))
                    .unwrap_or_default();
                let result = format!(
                    "Connected: {} branch{}, {} tag{}{head}.",
                    info.branches,
                    if info.branches == 1 { "" } else { "es" },
                    info.tags,
                    if info.tags == 1 { "" } else { "s" },
                );
                new_page(&user, form, FieldErrors::default(), None, Some(result))
            }
            Err(e) => {
                let (errors, form_error) = FieldErrors::from_error(&e, IMPORT_FIELDS);
                new_page(&user, form, errors, form_error, None)
            }
        });
    }
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
        ..CreateRepo::default()
    };
    let created = match hub.authorize_owner(&user.actor, &request.owner).await {
        Ok(()) => hub.create_repo(request).await,
        Err(e) => Err(e),
    };
    match created {
        Ok(repo) => Ok(redirect(&format!(
            "/{}/{}?notice=created",
            repo.owner, repo.name
        ))),
        Err(e) => {
            let (errors, form_error) = FieldErrors::from_error(&e, IMPORT_FIELDS);
            Ok(new_page(&user, form, errors, form_error, None))
        }
    }
}

/// `name` or `name.git`.
fn repo_name(name: &str) -> &str {
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
struct RepoPageExtras {
    notice: Option<&'static str>,
    settings: SettingsForm,
    errors: FieldErrors,
    settings_error: Option<String>,
    delete_error: Option<String>,
    promote_error: Option<String>,
}

/// The repository's page for `user`, whose `access` to it the caller has checked.
async fn repo_page_with(
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
    let page = RepoPage {
        layout: Layout {
            notice: extras.notice,
            ..layout(user, "")
        },
        can_admin: access.includes(Access::Admin),
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
async fn acted_on(
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
                &["sync_interval", "description", "visibility", "token"],
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
fn settings_of(repo: &mirrorhub_store::Repo) -> SettingsForm {
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

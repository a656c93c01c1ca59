//! Mirror sets in the pages: the list with its create form (`/-/sets`), one set with every
//! repository of its namespace (`/-/sets/{id}`), and its actions (list again, delete). The
//! hub does the work, through the same methods as `/api/v1/mirror-sets`.

use std::sync::Arc;

use askama::Template;
use chrono::Utc;
use mirrorhub_core::Actor;
use mirrorhub_hub::{CreateMirrorSet, Hub, MirrorSetView, SetRepoView};
use poem::http::StatusCode;
use poem::web::{Data, Form, Path, Query};
use poem::{handler, Response};
use serde::Deserialize;

use super::pages::{hub_error_page, layout};
use super::session::SignedIn;
use super::view::{FieldErrors, Layout, When};
use super::{redirect, render};

/// The create form's fields, as typed.
#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct SetForm {
    csrf: String,
    forge: String,
    api_url: String,
    namespace: String,
    owner: String,
    username: String,
    /// Never shown again in the page.
    token: String,
    /// Globs separated by commas or new lines.
    include: String,
    exclude: String,
    archived: Option<String>,
    forks: Option<String>,
    visibility: String,
    mode: String,
    sync_interval: String,
    list_interval: String,
    follow_renames: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct SetActionForm {
    csrf: String,
    /// The delete form's "delete its mirrors too" checkbox.
    delete_mirrors: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct NoticeQuery {
    notice: String,
}

/// One set as the pages show it.
pub(super) struct SetRow {
    pub id: i64,
    pub forge: String,
    pub namespace: String,
    pub api_url: String,
    pub owner: String,
    pub listed: i64,
    pub mirrored: i64,
    pub cloning: i64,
    pub failed: i64,
    pub skipped: i64,
    pub gone: i64,
    pub listing: bool,
    pub last_listed: Option<When>,
    pub next_list: Option<When>,
    pub last_error: Option<String>,
    pub filters: String,
}

impl SetRow {
    fn new(v: &MirrorSetView) -> Self {
        let s = &v.set;
        let now = Utc::now();
        let mut filters = vec![];
        if !s.include.is_empty() {
            filters.push(format!("only {}", s.include.join(", ")));
        }
        if !s.exclude.is_empty() {
            filters.push(format!("not {}", s.exclude.join(", ")));
        }
        if s.archived {
            filters.push("archived too".into());
        }
        if s.forks {
            filters.push("forks too".into());
        }
        SetRow {
            id: s.id,
            forge: s.forge.clone(),
            namespace: s.namespace.clone(),
            api_url: s.api_url.clone(),
            owner: s.owner.clone(),
            listed: v.counts.listed,
            mirrored: v.counts.mirrored,
            cloning: v.counts.cloning,
            failed: v.counts.failed,
            skipped: v.counts.skipped,
            gone: v.counts.gone,
            listing: s.listing,
            last_listed: s.last_listed_at.map(|t| When::new(t, now)),
            next_list: Some(When::new(s.next_list_at, now)),
            last_error: s.last_list_error_code.as_ref().map(|code| {
                format!(
                    "{code}: {}",
                    s.last_list_error_message.as_deref().unwrap_or_default()
                )
            }),
            filters: if filters.is_empty() {
                "every repository".into()
            } else {
                filters.join("; ")
            },
        }
    }
}

/// One repository of a set's namespace, as its page lists it.
pub(super) struct SetRepoRow {
    pub path: String,
    pub state: String,
    pub detail: String,
    /// The hub repository, when there is one.
    pub repo: Option<RepoLink>,
    pub status: String,
}

impl SetRepoRow {
    fn new(v: &SetRepoView) -> Self {
        SetRepoRow {
            path: v.member.path.clone(),
            state: v.member.state.as_str().to_owned(),
            detail: v.member.detail.clone().unwrap_or_default(),
            repo: v.repo.as_ref().map(|r| RepoLink {
                name: format!("{}/{}", r.owner, r.name),
                href: format!("/{}/{}", r.owner, r.name),
            }),
            status: v.status.map(|s| s.as_str().to_owned()).unwrap_or_default(),
        }
    }
}

/// `owner/name` and its page.
pub(super) struct RepoLink {
    pub name: String,
    pub href: String,
}

#[derive(Template)]
#[template(path = "sets.html")]
struct SetsPage {
    layout: Layout,
    csrf: String,
    sets: Vec<SetRow>,
    form: SetForm,
    errors: FieldErrors,
    form_error: Option<String>,
}

#[derive(Template)]
#[template(path = "set.html")]
struct SetPage {
    layout: Layout,
    csrf: String,
    set: SetRow,
    repos: Vec<SetRepoRow>,
}

/// The sets the signed-in person manages.
async fn visible_sets(hub: &Hub, actor: &Actor) -> Result<Vec<SetRow>, mirrorhub_hub::HubError> {
    let mut rows = vec![];
    for set in hub.list_mirror_sets().await? {
        if hub.authorize_owner(actor, &set.owner).await.is_ok() {
            rows.push(SetRow::new(&hub.mirror_set_view(set).await?));
        }
    }
    Ok(rows)
}

async fn sets_page(
    hub: &Hub,
    user: &SignedIn,
    notice: &str,
    form: SetForm,
    refused: Option<(FieldErrors, Option<String>)>,
) -> Response {
    let sets = match visible_sets(hub, &user.actor).await {
        Ok(s) => s,
        Err(e) => return hub_error_page(&e, user),
    };
    let (status, (errors, form_error)) = match refused {
        None => (StatusCode::OK, (FieldErrors::default(), None)),
        Some(r) => (StatusCode::UNPROCESSABLE_ENTITY, r),
    };
    render(
        status,
        &SetsPage {
            layout: layout(user, notice),
            csrf: user.session.csrf_token.clone(),
            sets,
            form: SetForm {
                token: String::new(),
                ..form
            },
            errors,
            form_error,
        },
    )
}

#[handler]
pub(super) async fn list(
    hub: Data<&Arc<Hub>>,
    user: SignedIn,
    Query(q): Query<NoticeQuery>,
) -> Response {
    let form = SetForm {
        forge: "github".into(),
        visibility: "as-upstream".into(),
        mode: "mirror".into(),
        ..SetForm::default()
    };
    sets_page(&hub, &user, &q.notice, form, None).await
}

/// Globs typed one per line or separated by commas.
fn globs(text: &str) -> Vec<String> {
    text.split([',', '\n'])
        .map(str::trim)
        .filter(|g| !g.is_empty())
        .map(str::to_owned)
        .collect()
}

fn optional(text: &str) -> Option<String> {
    Some(text.trim().to_owned()).filter(|t| !t.is_empty())
}

#[handler]
pub(super) async fn create(
    hub: Data<&Arc<Hub>>,
    user: SignedIn,
    Form(form): Form<SetForm>,
) -> poem::Result<Response> {
    user.check_csrf(&form.csrf)?;
    let owner = form.owner.trim().to_owned();
    let made = match hub.authorize_owner(&user.actor, &owner).await {
        Ok(()) => {
            hub.create_mirror_set(CreateMirrorSet {
                forge: form.forge.clone(),
                api_url: optional(&form.api_url),
                namespace: form.namespace.clone(),
                owner,
                username: optional(&form.username),
                token: optional(&form.token),
                include: globs(&form.include),
                exclude: globs(&form.exclude),
                archived: Some(form.archived.is_some()),
                forks: Some(form.forks.is_some()),
                visibility: optional(&form.visibility),
                mode: optional(&form.mode),
                sync_interval: optional(&form.sync_interval),
                list_interval: optional(&form.list_interval),
                follow_renames: Some(form.follow_renames.is_some()),
            })
            .await
        }
        Err(e) => Err(e),
    };
    match made {
        Ok(set) => Ok(redirect(&format!("/-/sets/{}?notice=set-created", set.id))),
        Err(e) if e.is_internal() => Ok(hub_error_page(&e, &user)),
        Err(e) => {
            let refused = FieldErrors::from_error(
                &e,
                &[
                    "forge",
                    "api_url",
                    "namespace",
                    "owner",
                    "token",
                    "include",
                    "exclude",
                    "visibility",
                    "mode",
                    "sync_interval",
                    "list_interval",
                ],
            );
            Ok(sets_page(&hub, &user, "", form, Some(refused)).await)
        }
    }
}

/// The set, when the signed-in person manages its owner (any other is "not found").
async fn managed(
    hub: &Hub,
    user: &SignedIn,
    id: i64,
) -> Result<mirrorhub_store::MirrorSet, Response> {
    let set = hub
        .get_mirror_set(id)
        .await
        .map_err(|e| hub_error_page(&e, user))?;
    match hub.authorize_owner(&user.actor, &set.owner).await {
        Ok(()) => Ok(set),
        Err(_) => Err(hub_error_page(
            &mirrorhub_hub::HubError::invalid(
                mirrorhub_core::ErrorCode::MirrorSetNotFound,
                "id",
                format!("there is no mirror set {id}"),
            ),
            user,
        )),
    }
}

#[handler]
pub(super) async fn show(
    hub: Data<&Arc<Hub>>,
    user: SignedIn,
    Path(id): Path<i64>,
    Query(q): Query<NoticeQuery>,
) -> Response {
    let set = match managed(&hub, &user, id).await {
        Ok(set) => set,
        Err(page) => return page,
    };
    let shown = async {
        let view = hub.mirror_set_view(set).await?;
        let repos = hub.mirror_set_repos(id).await?;
        Ok::<_, mirrorhub_hub::HubError>((view, repos))
    }
    .await;
    match shown {
        Ok((view, repos)) => render(
            StatusCode::OK,
            &SetPage {
                layout: layout(&user, &q.notice),
                csrf: user.session.csrf_token.clone(),
                set: SetRow::new(&view),
                repos: repos.iter().map(SetRepoRow::new).collect(),
            },
        ),
        Err(e) => hub_error_page(&e, &user),
    }
}

#[handler]
pub(super) async fn sync(
    hub: Data<&Arc<Hub>>,
    user: SignedIn,
    Path(id): Path<i64>,
    Form(form): Form<SetActionForm>,
) -> poem::Result<Response> {
    user.check_csrf(&form.csrf)?;
    if let Err(page) = managed(&hub, &user, id).await {
        return Ok(page);
    }
    Ok(match hub.request_set_listing(id).await {
        Ok(_) => redirect(&format!("/-/sets/{id}?notice=set-listing")),
        Err(e) => hub_error_page(&e, &user),
    })
}

#[handler]
pub(super) async fn delete(
    hub: Data<&Arc<Hub>>,
    user: SignedIn,
    Path(id): Path<i64>,
    Form(form): Form<SetActionForm>,
) -> poem::Result<Response> {
    user.check_csrf(&form.csrf)?;
    if let Err(page) = managed(&hub, &user, id).await {
        return Ok(page);
    }
    Ok(
        match hub
            .delete_mirror_set(id, form.delete_mirrors.is_some())
            .await
        {
            Ok(()) => redirect("/-/sets?notice=set-deleted"),
            Err(e) => hub_error_page(&e, &user),
        },
    )
}

//! A repository's push mirrors on its page (admins only): the list with each target's status,
//! the add form, "Push now" and delete. The forms call the same `Hub` methods as
//! `/api/v1/repos/{owner}/{name}/push-mirrors`, with the same validation.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use mirrorhub_hub::{CreatePushMirror, Hub};
use mirrorhub_store::PushMirror;
use poem::web::{Data, Form, Path};
use poem::{handler, Response};
use serde::Deserialize;

use super::pages::{self, RepoPageExtras};
use super::redirect;
use super::session::SignedIn;
use super::view::{user_message, When};
use crate::ServerConfig;

/// One push mirror as the page lists it.
pub(super) struct PushMirrorView {
    pub id: i64,
    pub url: String,
    pub has_credentials: bool,
    /// e.g. `only main, release/*; no tags; no force`.
    pub options: String,
    pub enabled: bool,
    pub last_success: Option<When>,
    pub last_run: Option<When>,
    /// (code, message) of the last run's failure.
    pub last_error: Option<(String, String)>,
    pub diverged: Vec<String>,
}

impl PushMirrorView {
    pub fn new(m: &PushMirror, now: DateTime<Utc>) -> Self {
        let mut options = Vec::new();
        if let Some(only) = &m.only_branches {
            options.push(format!("only {}", only.join(", ")));
        }
        for (on, off) in [
            (m.tags, "no tags"),
            (m.prune, "no prune"),
            (m.force, "no force"),
        ] {
            if !on {
                options.push(off.to_owned());
            }
        }
        Self {
            id: m.id,
            url: m.url.clone(),
            has_credentials: m.credentials.is_some(),
            options: options.join("; "),
            enabled: m.enabled,
            last_success: m.last_success_at.map(|t| When::new(t, now)),
            last_run: m.last_run_at.map(|t| When::new(t, now)),
            last_error: m
                .last_error_code
                .clone()
                .map(|code| (code, m.last_error_message.clone().unwrap_or_default())),
            diverged: m.diverged.clone(),
        }
    }
}

/// The add form as typed, shown again after a refusal (never the token).
#[derive(Deserialize, Default, Clone)]
#[serde(default)]
pub(super) struct PushMirrorForm {
    csrf: String,
    pub url: String,
    pub username: String,
    token: String,
    /// One pattern a line.
    pub only_branches: String,
    /// Checkboxes: present when checked.
    pub tags: Option<String>,
    pub prune: Option<String>,
    pub force: Option<String>,
}

impl PushMirrorForm {
    /// The form as a new page shows it: tags, prune and force checked.
    pub fn fresh() -> Self {
        Self {
            tags: Some("true".into()),
            prune: Some("true".into()),
            force: Some("true".into()),
            ..Self::default()
        }
    }
}

/// The push mirrors part of a repository's page.
#[derive(Default)]
pub(super) struct PushMirrorsSection {
    pub list: Vec<PushMirrorView>,
    pub form: PushMirrorForm,
    /// Why the add form was refused, and which field.
    pub error: Option<(Option<String>, String)>,
}

impl PushMirrorsSection {
    pub fn has_error(&self, field: &str) -> bool {
        matches!(&self.error, Some((Some(f), _)) if f == field)
    }
}

#[handler]
pub(super) async fn add(
    hub: Data<&Arc<Hub>>,
    config: Data<&Arc<ServerConfig>>,
    user: SignedIn,
    Path((owner, name)): Path<(String, String)>,
    Form(form): Form<PushMirrorForm>,
) -> poem::Result<Response> {
    let name = pages::repo_name(&name);
    let (repo, access) = match pages::acted_on(&hub, &user, &form.csrf, &owner, name).await? {
        Ok(found) => found,
        Err(page) => return Ok(page),
    };
    let only: Vec<String> = form
        .only_branches
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect();
    let request = CreatePushMirror {
        url: form.url.trim().to_owned(),
        username: Some(form.username.trim().to_owned()).filter(|u| !u.is_empty()),
        token: Some(form.token.clone()).filter(|t| !t.is_empty()),
        only_branches: (!only.is_empty()).then_some(only),
        tags: Some(form.tags.is_some()),
        prune: Some(form.prune.is_some()),
        force: Some(form.force.is_some()),
        ..Default::default()
    };
    match hub.create_push_mirror(&repo, request).await {
        Ok(_) => Ok(redirect(&format!(
            "/{}/{}?notice=push-mirror-added#push-mirrors",
            repo.owner, repo.name
        ))),
        Err(e) if e.is_internal() => Ok(pages::hub_error_page(&e, &user)),
        Err(e) => {
            let settings = pages::settings_of(&repo);
            Ok(pages::repo_page_with(
                &hub,
                &config,
                &user,
                (repo, access),
                RepoPageExtras {
                    settings,
                    push_mirrors: PushMirrorsSection {
                        error: Some((e.field().map(str::to_owned), user_message(&e))),
                        form: PushMirrorForm {
                            token: String::new(),
                            ..form
                        },
                        list: Vec::new(),
                    },
                    ..Default::default()
                },
            )
            .await)
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct ActionForm {
    csrf: String,
}

/// "Push now".
#[handler]
pub(super) async fn push_now(
    hub: Data<&Arc<Hub>>,
    user: SignedIn,
    Path((owner, name, id)): Path<(String, String, i64)>,
    Form(form): Form<ActionForm>,
) -> poem::Result<Response> {
    let name = pages::repo_name(&name);
    let (repo, _) = match pages::acted_on(&hub, &user, &form.csrf, &owner, name).await? {
        Ok(found) => found,
        Err(page) => return Ok(page),
    };
    Ok(match hub.request_push(&repo, id).await {
        Ok(_) => redirect(&format!(
            "/{}/{}?notice=push-queued#push-mirrors",
            repo.owner, repo.name
        )),
        Err(e) => pages::hub_error_page(&e, &user),
    })
}

#[handler]
pub(super) async fn delete(
    hub: Data<&Arc<Hub>>,
    user: SignedIn,
    Path((owner, name, id)): Path<(String, String, i64)>,
    Form(form): Form<ActionForm>,
) -> poem::Result<Response> {
    let name = pages::repo_name(&name);
    let (repo, _) = match pages::acted_on(&hub, &user, &form.csrf, &owner, name).await? {
        Ok(found) => found,
        Err(page) => return Ok(page),
    };
    Ok(match hub.delete_push_mirror(&repo, id).await {
        Ok(()) => redirect(&format!(
            "/{}/{}?notice=push-mirror-deleted#push-mirrors",
            repo.owner, repo.name
        )),
        Err(e) => pages::hub_error_page(&e, &user),
    })
}

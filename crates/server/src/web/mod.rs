//! The web UI: server-rendered pages for people, beside the REST API for programs. The seed's
//! flow: sign in, *Create + → New repository → Import repository*, the repository list with a
//! sync button next to each name, and a page per repository. Pages call the hub, as the API
//! does; every page works without JavaScript (`static/app.js` adds copy buttons and live
//! refresh of the regions marked `data-live`).
//!
//! Routes under `/-/` are the hub's own (no owner may be named `-`); a repository's page is
//! `/{owner}/{name}`, its actions `/{owner}/{name}/-/{action}`.

mod fidelity;
mod pages;
mod push_mirrors;
mod session;
mod sets;
mod ssh;
mod view;

use askama::Template;
use poem::http::{header, HeaderValue, StatusCode};
use poem::{EndpointExt, IntoResponse, Response, Route};

pub use session::WebConfig;

/// Adds the UI's routes.
pub(crate) fn mount(route: Route, body_limit: usize) -> Route {
    let limit = || crate::errors::BodyLimit(body_limit);
    route
        .at("/", poem::get(pages::list))
        .at(
            "/-/login",
            poem::get(pages::login_form).post(pages::login.with(limit())),
        )
        .at("/-/logout", poem::post(pages::logout.with(limit())))
        .at(
            "/-/new",
            poem::get(pages::new_form).post(pages::create.with(limit())),
        )
        .at("/-/static/:file", poem::get(pages::asset))
        .at(
            "/-/sets",
            poem::get(sets::list).post(sets::create.with(limit())),
        )
        .at("/-/sets/:id", poem::get(sets::show))
        .at("/-/sets/:id/sync", poem::post(sets::sync.with(limit())))
        .at("/-/sets/:id/delete", poem::post(sets::delete.with(limit())))
        .at("/:owner/:repo", poem::get(pages::repo_page))
        .at(
            "/:owner/:repo/-/sync",
            poem::post(pages::sync.with(limit())),
        )
        .at(
            "/:owner/:repo/-/settings",
            poem::post(pages::save_settings.with(limit())),
        )
        .at(
            "/:owner/:repo/-/host-keys",
            poem::post(ssh::host_keys.with(limit())),
        )
        .at(
            "/:owner/:repo/-/promote",
            poem::post(pages::promote.with(limit())),
        )
        .at(
            "/:owner/:repo/-/delete",
            poem::post(pages::delete.with(limit())),
        )
        .at(
            "/:owner/:repo/-/push-mirrors",
            poem::post(push_mirrors::add.with(limit())),
        )
        .at(
            "/:owner/:repo/-/push-mirrors/:id/sync",
            poem::post(push_mirrors::push_now.with(limit())),
        )
        .at(
            "/:owner/:repo/-/push-mirrors/:id/delete",
            poem::post(push_mirrors::delete.with(limit())),
        )
}

/// The headers of every page: nothing runs or loads from elsewhere, no framing, no caching
/// (pages carry CSRF tokens and secrets).
fn secure(mut resp: Response) -> Response {
    let headers = resp.headers_mut();
    let set = |h: &mut poem::http::HeaderMap, name, value: &'static str| {
        h.insert(name, HeaderValue::from_static(value));
    };
    set(
        headers,
        header::CONTENT_SECURITY_POLICY,
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
         connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'",
    );
    set(headers, header::X_FRAME_OPTIONS, "DENY");
    set(headers, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(headers, header::REFERRER_POLICY, "same-origin");
    if !headers.contains_key(header::CACHE_CONTROL) {
        set(headers, header::CACHE_CONTROL, "no-store");
    }
    resp
}

/// Renders a page. A template that fails to render is a bug: logged, and a plain error page.
fn render(status: StatusCode, page: &impl Template) -> Response {
    match page.render() {
        Ok(html) => secure(
            Response::builder()
                .status(status)
                .content_type("text/html; charset=utf-8")
                .body(html),
        ),
        Err(e) => {
            tracing::error!(error = %e, "a page failed to render");
            secure(
                Response::builder()
                    .status(StatusCode::INTERNAL_SERVER_ERROR)
                    .content_type("text/html; charset=utf-8")
                    .body("<!doctype html><title>Error</title><p>The hub failed to show this page; the operator can find the cause in its log.</p>"),
            )
        }
    }
}

/// `303 See Other`: after a form, the browser loads `location` with GET.
fn redirect(location: &str) -> Response {
    secure(
        StatusCode::SEE_OTHER
            .with_header(header::LOCATION, location)
            .into_response(),
    )
}

/// A page with a title and one message (errors, not found).
fn message_page(status: StatusCode, title: &str, message: &str, csrf: Option<String>) -> Response {
    render(
        status,
        &pages::MessagePage {
            layout: view::Layout {
                csrf,
                notice: None,
                who: None,
            },
            title,
            message,
        },
    )
}

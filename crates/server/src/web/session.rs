//! Signing in and out of the web UI, the session cookie, and CSRF protection.
//!
//! - The session cookie holds a random id (the database keeps its SHA-256); `HttpOnly`,
//!   `SameSite=Lax`, and `Secure` whenever browsers accept it (see [`WebConfig`]).
//! - Every form of a signed-in page carries the session's synchronizer token; a POST without
//!   the right one is refused. The sign-in form, used before there is a session, is protected
//!   by a double-submit cookie instead.
//! - Sign-out deletes the session on the server: a copied cookie stops working too.

use std::sync::Arc;
use std::time::Duration;

use mirrorhub_core::Actor;
use mirrorhub_hub::Hub;
use mirrorhub_store::WebSession;
use poem::http::StatusCode;
use poem::web::cookie::{Cookie, CookieJar, SameSite};
use poem::{FromRequest, Request, RequestBody};
use subtle::ConstantTimeEq;

use super::{message_page, redirect};

pub(super) const SESSION_COOKIE: &str = "mirrorhub_session";
pub(super) const LOGIN_COOKIE: &str = "mirrorhub_login";

/// How the web UI's cookies are made.
#[derive(Debug, Clone)]
pub struct WebConfig {
    /// Mark cookies `Secure`: true when the public URL is https, or names this machine
    /// (browsers treat `http://localhost` and `http://127.0.0.1` as secure).
    pub secure_cookies: bool,
    /// How long a sign-in lasts.
    pub session_ttl: Duration,
}

impl WebConfig {
    /// `Secure` cookies unless the hub is reached over plain http on another host, where
    /// browsers would drop them and nobody could sign in.
    pub fn for_public_url(public_url: &str, session_ttl: Duration) -> Self {
        let secure_cookies = match url::Url::parse(public_url) {
            Ok(u) => {
                u.scheme() == "https"
                    || matches!(u.host_str(), Some("localhost" | "127.0.0.1" | "[::1]"))
            }
            Err(_) => false,
        };
        Self {
            secure_cookies,
            session_ttl,
        }
    }

    pub(super) fn cookie(&self, name: &str, value: String, max_age: Duration) -> Cookie {
        let mut cookie = Cookie::new_with_str(name, value);
        cookie.set_http_only(true);
        cookie.set_same_site(SameSite::Lax);
        cookie.set_secure(self.secure_cookies);
        cookie.set_path("/");
        cookie.set_max_age(max_age);
        cookie
    }
}

/// A signed-in visitor. Pages that take it redirect everyone else to the sign-in page.
pub(super) struct SignedIn {
    pub session: WebSession,
    pub cookie: String,
    /// Who the session acts for: a user with all their rights, or the admin token.
    pub actor: Actor,
}

impl SignedIn {
    /// Refuses a form that does not carry this session's token: a request another site made
    /// the browser send, or a form from before a sign-out.
    pub fn check_csrf(&self, token: &str) -> poem::Result<()> {
        if token
            .as_bytes()
            .ct_eq(self.session.csrf_token.as_bytes())
            .into()
        {
            Ok(())
        } else {
            Err(forbidden_form())
        }
    }
}

pub(super) fn forbidden_form() -> poem::Error {
    poem::Error::from_response(message_page(
        StatusCode::FORBIDDEN,
        "This form has expired",
        "The form did not come from this hub's current session (it may be from before you signed out or in again). Reload the page and send it again.",
        None,
    ))
}

impl<'a> FromRequest<'a> for SignedIn {
    async fn from_request(req: &'a Request, _body: &mut RequestBody) -> poem::Result<Self> {
        let hub = req
            .data::<Arc<Hub>>()
            .expect("the hub is attached to every request");
        let cookie = req
            .cookie()
            .get(SESSION_COOKIE)
            .map(|c| c.value_str().to_owned());
        if let Some(cookie) = cookie {
            let found = match hub.web_session(&cookie).await {
                Ok(Some(session)) => hub
                    .session_actor(&session)
                    .await
                    .map(|actor| Some((session, actor))),
                Ok(None) => Ok(None),
                Err(e) => Err(e),
            };
            match found {
                // A session whose user is gone signs in no one.
                Ok(Some((_, Actor::Anonymous))) | Ok(None) => {}
                Ok(Some((session, actor))) => {
                    return Ok(SignedIn {
                        session,
                        cookie,
                        actor,
                    })
                }
                Err(e) => {
                    return Err(poem::Error::from_response(message_page(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "The hub cannot check your session",
                        &super::view::user_message(&e),
                        None,
                    )))
                }
            }
        }
        let path = req
            .uri()
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/");
        let next = if req.method() == poem::http::Method::GET {
            path
        } else {
            "/"
        };
        Err(poem::Error::from_response(redirect(&format!(
            "/-/login?next={}",
            url::form_urlencoded::byte_serialize(next.as_bytes()).collect::<String>()
        ))))
    }
}

/// The sign-in form's double-submit token: the cookie set with the form, or a new one.
pub(super) fn login_token(jar: &CookieJar, config: &WebConfig) -> String {
    if let Some(existing) = jar.get(LOGIN_COOKIE) {
        let value = existing.value_str().to_owned();
        if value.len() == 64 && value.bytes().all(|b| b.is_ascii_hexdigit()) {
            return value;
        }
    }
    let token = mirrorhub_hub::random_token();
    jar.add(config.cookie(LOGIN_COOKIE, token.clone(), Duration::from_secs(3600)));
    token
}

pub(super) fn check_login_token(jar: &CookieJar, token: &str) -> poem::Result<()> {
    match jar.get(LOGIN_COOKIE) {
        Some(c)
            if !token.is_empty()
                && bool::from(token.as_bytes().ct_eq(c.value_str().as_bytes())) =>
        {
            Ok(())
        }
        _ => Err(forbidden_form()),
    }
}

/// Only a path on this hub: never another site (`//evil.example`, `/\evil.example`).
pub(super) fn safe_next(next: &str) -> &str {
    let local = next.starts_with('/')
        && !next.starts_with("//")
        && !next.starts_with("/\\")
        && !next.chars().any(|c| c.is_control());
    if local && !next.starts_with("/-/login") {
        next
    } else {
        "/"
    }
}

pub(super) fn remove_cookie(jar: &CookieJar, config: &WebConfig, name: &str) {
    jar.add(config.cookie(name, String::new(), Duration::ZERO));
}

pub(super) fn set_session_cookie(jar: &CookieJar, config: &WebConfig, value: String) {
    jar.add(config.cookie(SESSION_COOKIE, value, config.session_ttl));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_never_leaves_the_hub() {
        assert_eq!(safe_next("/team/app"), "/team/app");
        assert_eq!(safe_next("/team/app?x=1"), "/team/app?x=1");
        for hostile in [
            "//evil.example",
            "/\\evil.example",
            "https://evil.example",
            "javascript:alert(1)",
            "",
            "/-/login?next=/x",
            "/a\r\nSet-Cookie: x=y",
        ] {
            assert_eq!(safe_next(hostile), "/", "{hostile:?}");
        }
    }

    #[test]
    fn cookies_are_secure_where_browsers_keep_them() {
        let ttl = Duration::from_secs(60);
        assert!(WebConfig::for_public_url("https://hub.example", ttl).secure_cookies);
        assert!(WebConfig::for_public_url("http://127.0.0.1:8080", ttl).secure_cookies);
        assert!(WebConfig::for_public_url("http://localhost:8080", ttl).secure_cookies);
        assert!(!WebConfig::for_public_url("http://hub.internal:8080", ttl).secure_cookies);
    }
}

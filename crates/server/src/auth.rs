//! Who is calling: the hub's admin token (only its SHA-256 is kept: tokens are long random
//! strings, so a plain hash is enough to make a leaked database useless for logging in) or a
//! user's personal access token, checked by the hub.

use std::sync::Arc;

use base64::Engine as _;
use mirrorhub_core::Actor;
use mirrorhub_hub::{Hub, HubError};
use poem::http::header::AUTHORIZATION;
use poem::{IntoResponse, Request};
use poem_openapi::auth::{Basic, Bearer};
use poem_openapi::SecurityScheme;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::errors::ApiError;

#[derive(Clone)]
pub struct AdminAuth {
    token_sha256: [u8; 32],
}

impl AdminAuth {
    pub fn from_token(token: &str) -> Self {
        Self {
            token_sha256: hash_token(token),
        }
    }

    pub fn from_hash(token_sha256: [u8; 32]) -> Self {
        Self { token_sha256 }
    }

    pub fn verify(&self, token: &str) -> bool {
        hash_token(token).ct_eq(&self.token_sha256).into()
    }
}

pub fn hash_token(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// The actor a secret stands for: the admin token, or a user's access token.
pub async fn actor_for(admin: &AdminAuth, hub: &Hub, secret: &str) -> Result<Actor, HubError> {
    if admin.verify(secret) {
        return Ok(Actor::AdminToken);
    }
    hub.authenticate_token(secret).await
}

/// The secret a request presents in `Authorization`: the password of basic auth (any user
/// name, as git sends it) or a bearer token. `Ok(None)` without the header; `Err` when the
/// header is there but is neither.
pub fn presented_secret(req: &Request) -> Result<Option<String>, ()> {
    let Some(value) = req.headers().get(AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value.to_str().map_err(|_| ())?.trim();
    let (scheme, rest) = value.split_once(' ').unwrap_or((value, ""));
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(rest.trim())
            .map_err(|_| ())?;
        let decoded = String::from_utf8(decoded).map_err(|_| ())?;
        let (_, password) = decoded.split_once(':').ok_or(())?;
        Ok(Some(password.to_owned()))
    } else if scheme.eq_ignore_ascii_case("bearer") {
        Ok(Some(rest.trim().to_owned()))
    } else {
        Err(())
    }
}

/// `Authorization: Bearer <token>`: a personal access token or the hub's admin token. Wrong,
/// expired and revoked tokens are refused with the reason.
#[derive(SecurityScheme)]
#[oai(ty = "bearer", checker = "check_token")]
pub struct ApiToken(pub Actor);

async fn check_token(req: &Request, bearer: Bearer) -> poem::Result<Actor> {
    let (Some(admin), Some(hub)) = (req.data::<Arc<AdminAuth>>(), req.data::<Arc<Hub>>()) else {
        return Err(poem::Error::from_status(
            poem::http::StatusCode::INTERNAL_SERVER_ERROR,
        ));
    };
    actor_for(admin, hub, &bearer.token)
        .await
        .map_err(|e| poem::Error::from_response(ApiError::from(e).into_response()))
}

/// HTTP basic with a user's name and password: only to create a first access token.
#[derive(SecurityScheme)]
#[oai(ty = "basic")]
pub struct PasswordLogin(pub Basic);

/// Either way of proving who one is when creating an access token.
#[derive(SecurityScheme)]
pub enum TokenOrPassword {
    Token(ApiToken),
    Password(PasswordLogin),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_from_basic_and_bearer() {
        let with = |v: &str| Request::builder().header(AUTHORIZATION, v).finish();
        let basic = |s: &str| {
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(s)
            )
        };
        assert_eq!(presented_secret(&Request::default()), Ok(None));
        assert_eq!(
            presented_secret(&with(&basic("any:s3cret"))),
            Ok(Some("s3cret".into()))
        );
        assert_eq!(
            presented_secret(&with("Bearer s3cret")),
            Ok(Some("s3cret".into()))
        );
        for wrong in [basic("no-colon"), "Digest x".into(), "Basic !!".into()] {
            assert_eq!(presented_secret(&with(&wrong)), Err(()), "{wrong}");
        }
        assert!(AdminAuth::from_token("s3cret").verify("s3cret"));
        assert!(!AdminAuth::from_token("s3cret").verify("nope"));
    }
}

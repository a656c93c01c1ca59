//! Signed-in browser sessions of the web UI. The edge checks who signs in; this module makes
//! the session, finds it again from its cookie, and ends it. The cookie value is a random id;
//! the database keeps only its SHA-256, so a copy of the database signs no one in.

use chrono::{TimeDelta, Utc};
use mirrorhub_core::{Access, Actor};
use mirrorhub_store::WebSession;
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::{Hub, HubError};

/// A session just made: the cookie value to hand to the browser, and the session.
#[derive(Debug)]
pub struct NewWebSession {
    pub cookie: String,
    pub session: WebSession,
}

impl Hub {
    /// Starts a session that lasts `ttl`, for a user (`user_id`) or the admin token (`None`).
    pub async fn start_web_session(
        &self,
        ttl: TimeDelta,
        user_id: Option<i64>,
    ) -> Result<NewWebSession, HubError> {
        let cookie = random_token();
        let now = Utc::now();
        let session = WebSession {
            id_sha256: session_hash(&cookie),
            csrf_token: random_token(),
            user_id,
            created_at: now,
            expires_at: now + ttl,
        };
        self.store.create_web_session(&session).await?;
        // Expired sessions are swept as new ones come: no timer needed for a small table.
        if let Err(e) = self.store.prune_web_sessions(now).await {
            tracing::warn!(error = %e, "expired web sessions could not be removed");
        }
        Ok(NewWebSession { cookie, session })
    }

    /// The live session a cookie names, if any.
    pub async fn web_session(&self, cookie: &str) -> Result<Option<WebSession>, HubError> {
        if cookie.is_empty() || cookie.len() > 128 {
            return Ok(None);
        }
        Ok(self
            .store
            .get_web_session(&session_hash(cookie), Utc::now())
            .await?)
    }

    /// Who a session acts for: its user with all their rights, or the admin token. A session
    /// whose user is gone acts for no one.
    pub async fn session_actor(&self, session: &WebSession) -> Result<Actor, HubError> {
        let Some(id) = session.user_id else {
            return Ok(Actor::AdminToken);
        };
        Ok(match self.store.get_account_by_id(id).await? {
            Some(user) => Actor::User {
                id: user.id,
                name: user.name,
                site_admin: user.site_admin,
                scope: Access::Admin,
            },
            None => Actor::Anonymous,
        })
    }

    /// Signs the session out; it is refused from now on, wherever its cookie was copied.
    pub async fn end_web_session(&self, cookie: &str) -> Result<(), HubError> {
        self.store.delete_web_session(&session_hash(cookie)).await?;
        Ok(())
    }
}

/// 256 random bits, hex: session ids, CSRF tokens.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

fn session_hash(cookie: &str) -> String {
    hex::encode(Sha256::digest(cookie.as_bytes()))
}

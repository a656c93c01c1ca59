//! The admin bearer token. Only its SHA-256 is kept: tokens are long random strings, so a
//! plain hash is enough to make a leaked database useless for logging in.

use poem::Request;
use poem_openapi::auth::Bearer;
use poem_openapi::SecurityScheme;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

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

/// `Authorization: Bearer <token>`, checked against the admin token.
#[derive(SecurityScheme)]
#[oai(ty = "bearer", checker = "check_admin")]
pub struct AdminToken(());

async fn check_admin(req: &Request, bearer: Bearer) -> Option<()> {
    let auth = req.data::<std::sync::Arc<AdminAuth>>()?;
    auth.verify(&bearer.token).then_some(())
}

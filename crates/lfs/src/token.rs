//! Short-lived authorization for the object requests a client makes after the hub's batch
//! answer: an HMAC-SHA256 over (repository, operation, object, expiry), so an href handed to
//! one client for one object of one repository is good for nothing else, and not for long.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::batch::Operation;
use crate::Oid;

#[derive(Clone)]
pub struct ActionSigner {
    key: Vec<u8>,
}

impl std::fmt::Debug for ActionSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ActionSigner([redacted])")
    }
}

impl ActionSigner {
    /// The `Authorization` scheme of action headers.
    pub const SCHEME: &'static str = "MirrorhubLFS";

    /// `key`: at least 32 random bytes, the same on every replica.
    pub fn new(key: &[u8]) -> Self {
        Self { key: key.to_vec() }
    }

    fn mac(&self, repo_id: i64, op: Operation, oid: &Oid, expires_at: i64) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes any key size");
        let op = match op {
            Operation::Download => "download",
            Operation::Upload => "upload",
        };
        mac.update(format!("{repo_id}\n{op}\n{oid}\n{expires_at}").as_bytes());
        mac
    }

    /// The `Authorization` header value for one object request, valid until `expires_at`
    /// (Unix seconds).
    pub fn header(&self, repo_id: i64, op: Operation, oid: &Oid, expires_at: i64) -> String {
        let tag = self
            .mac(repo_id, op, oid, expires_at)
            .finalize()
            .into_bytes();
        format!("{} {expires_at}.{}", Self::SCHEME, hex::encode(tag))
    }

    /// Whether `header` is a valid, unexpired authorization for this request.
    pub fn verify(&self, header: &str, repo_id: i64, op: Operation, oid: &Oid, now: i64) -> bool {
        let Some(token) = header
            .split_once(' ')
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case(Self::SCHEME))
            .map(|(_, t)| t.trim())
        else {
            return false;
        };
        let Some((expires, tag)) = token.split_once('.') else {
            return false;
        };
        let (Ok(expires_at), Ok(tag)) = (expires.parse::<i64>(), hex::decode(tag)) else {
            return false;
        };
        expires_at >= now
            && self
                .mac(repo_id, op, oid, expires_at)
                .verify_slice(&tag)
                .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_good_for_its_request_only_until_it_expires() {
        let signer = ActionSigner::new(&[7; 32]);
        let oid = Oid::of(b"x");
        let other = Oid::of(b"y");
        let h = signer.header(1, Operation::Download, &oid, 1000);
        assert!(signer.verify(&h, 1, Operation::Download, &oid, 999));
        assert!(signer.verify(&h, 1, Operation::Download, &oid, 1000));
        assert!(!signer.verify(&h, 1, Operation::Download, &oid, 1001));
        assert!(!signer.verify(&h, 2, Operation::Download, &oid, 999));
        assert!(!signer.verify(&h, 1, Operation::Upload, &oid, 999));
        assert!(!signer.verify(&h, 1, Operation::Download, &other, 999));
        assert!(!ActionSigner::new(&[8; 32]).verify(&h, 1, Operation::Download, &oid, 999));
        let forged = h.replace(" 1000.", " 99999.");
        assert!(!signer.verify(&forged, 1, Operation::Download, &oid, 999));
        assert!(!signer.verify("Basic abc", 1, Operation::Download, &oid, 999));
    }
}

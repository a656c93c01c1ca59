//! Authenticating a delivery over its raw body, before anything is parsed.

use hmac::{Hmac, Mac};
use http::HeaderMap;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::{Forge, Unauthorized};

type HmacSha256 = Hmac<Sha256>;

/// Authenticates the raw `body`: `Ok` if any one of `secrets` matches (so a secret can be
/// rotated by accepting the old and the new for a while). Empty secrets never match. All
/// comparisons are constant-time; every secret is tried, whichever matches.
///
/// Per forge:
/// - GitHub: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256(secret, body)>`. The SHA-1
///   `X-Hub-Signature` is not accepted.
/// - GitLab: `X-Gitlab-Token: <secret>`, a plain shared secret.
/// - Gitea / Forgejo: `X-Forgejo-Signature` or `X-Gitea-Signature` (bare hex HMAC-SHA256), else
///   `X-Hub-Signature-256: sha256=<hex>`. The first of these that holds a value decides; an
///   empty one (or a bare `sha256=`) is what an unsigned delivery carries, and is skipped, so a
///   delivery with only empty signatures is refused.
/// - Bitbucket Cloud and Server: `X-Hub-Signature: sha256=<hex>`.
/// - Generic: `X-Hub-Signature-256: sha256=<hex>` when present, else
///   `Authorization: Bearer <secret>`.
///
/// Hex is case-insensitive. A missing, repeated or garbled header is refused.
pub fn verify(
    forge: Forge,
    headers: &HeaderMap,
    body: &[u8],
    secrets: &[&[u8]],
) -> Result<(), Unauthorized> {
    let secrets: Vec<&[u8]> = secrets.iter().copied().filter(|s| !s.is_empty()).collect();
    if secrets.is_empty() {
        return Err(Unauthorized);
    }
    let ok = match forge {
        Forge::GitHub => hmac_matches(
            prefixed(one(headers, "x-hub-signature-256")?)?,
            body,
            &secrets,
        ),
        Forge::GitLab => token_matches(one(headers, "x-gitlab-token")?, &secrets),
        Forge::Gitea | Forge::Forgejo => hmac_matches(gitea_signature(headers)?, body, &secrets),
        Forge::BitbucketCloud | Forge::BitbucketServer => {
            hmac_matches(prefixed(one(headers, "x-hub-signature")?)?, body, &secrets)
        }
        Forge::Generic if headers.contains_key("x-hub-signature-256") => hmac_matches(
            prefixed(one(headers, "x-hub-signature-256")?)?,
            body,
            &secrets,
        ),
        Forge::Generic => token_matches(bearer(one(headers, "authorization")?)?, &secrets),
    };
    if ok {
        Ok(())
    } else {
        Err(Unauthorized)
    }
}

/// The raw bytes of the one value of `name`, trimmed of spaces. Absent or repeated: refused.
fn one<'h>(headers: &'h HeaderMap, name: &str) -> Result<&'h [u8], Unauthorized> {
    let mut values = headers.get_all(name).iter();
    let value = values.next().ok_or(Unauthorized)?;
    if values.next().is_some() {
        return Err(Unauthorized);
    }
    Ok(value.as_bytes().trim_ascii())
}

/// `sha256=<hex>` → the digest bytes.
fn prefixed(value: &[u8]) -> Result<[u8; 32], Unauthorized> {
    let hex = strip_prefix_ignore_case(value, b"sha256=").ok_or(Unauthorized)?;
    bare(hex)
}

/// Bare hex → 32 bytes (either case).
fn bare(hex: &[u8]) -> Result<[u8; 32], Unauthorized> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(hex, &mut out).map_err(|_| Unauthorized)?;
    Ok(out)
}

/// Gitea's signature headers in order; the first that holds a value decides.
fn gitea_signature(headers: &HeaderMap) -> Result<[u8; 32], Unauthorized> {
    for name in ["x-forgejo-signature", "x-gitea-signature"] {
        if headers.contains_key(name) {
            let value = one(headers, name)?;
            if !value.is_empty() {
                return bare(value);
            }
        }
    }
    if headers.contains_key("x-hub-signature-256") {
        let value = one(headers, "x-hub-signature-256")?;
        let hex = strip_prefix_ignore_case(value, b"sha256=").ok_or(Unauthorized)?;
        if !hex.is_empty() {
            return bare(hex);
        }
    }
    Err(Unauthorized)
}

/// `Bearer <token>`, the scheme in any case.
fn bearer(value: &[u8]) -> Result<&[u8], Unauthorized> {
    let token = strip_prefix_ignore_case(value, b"bearer ").ok_or(Unauthorized)?;
    let token = token.trim_ascii();
    if token.is_empty() {
        return Err(Unauthorized);
    }
    Ok(token)
}

fn strip_prefix_ignore_case<'a>(value: &'a [u8], prefix: &[u8]) -> Option<&'a [u8]> {
    let head = value.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &value[prefix.len()..])
}

fn hmac_matches(signature: [u8; 32], body: &[u8], secrets: &[&[u8]]) -> bool {
    secrets.iter().fold(false, |matched, secret| {
        let Ok(mut mac) = HmacSha256::new_from_slice(secret) else {
            return matched;
        };
        mac.update(body);
        // `verify_slice` compares in constant time.
        matched | mac.verify_slice(&signature).is_ok()
    })
}

/// A plain shared secret. Both sides are hashed first so that the comparison takes the same
/// time whatever the lengths (comparing the raw bytes would reveal the secret's length).
fn token_matches(token: &[u8], secrets: &[&[u8]]) -> bool {
    let token = Sha256::digest(token);
    secrets.iter().fold(false, |matched, secret| {
        matched | bool::from(Sha256::digest(secret).ct_eq(&token))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::header::{HeaderName, HeaderValue};

    /// Headers, and what `verify` answers for them.
    type Case<'a> = (&'a [(&'a str, &'a str)], Result<(), Unauthorized>);

    const BODY: &[u8] = br#"{"ref":"refs/heads/main"}"#;
    const SECRET: &[u8] = b"s3cret";

    fn sign(secret: &[u8], body: &[u8]) -> String {
        let mut mac = HmacSha256::new_from_slice(secret).unwrap();
        mac.update(body);
        hex::encode(mac.finalize().into_bytes())
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    /// For each forge: the header carrying a good signature (or token) of BODY under `secret`.
    fn good(forge: Forge, secret: &[u8]) -> Vec<(&'static str, String)> {
        let sig = sign(secret, BODY);
        let token = String::from_utf8(secret.to_vec()).unwrap();
        match forge {
            Forge::GitHub => vec![("X-Hub-Signature-256", format!("sha256={sig}"))],
            Forge::GitLab => vec![("X-Gitlab-Token", token)],
            Forge::Gitea => vec![("X-Gitea-Signature", sig)],
            Forge::Forgejo => vec![("X-Forgejo-Signature", sig)],
            Forge::BitbucketCloud | Forge::BitbucketServer => {
                vec![("X-Hub-Signature", format!("sha256={sig}"))]
            }
            Forge::Generic => vec![("Authorization", format!("Bearer {token}"))],
        }
    }

    fn check(
        forge: Forge,
        pairs: &[(&str, String)],
        secrets: &[&[u8]],
    ) -> Result<(), Unauthorized> {
        let pairs: Vec<(&str, &str)> = pairs.iter().map(|(n, v)| (*n, v.as_str())).collect();
        verify(forge, &headers(&pairs), BODY, secrets)
    }

    #[test]
    fn each_forge_accepts_good_and_refuses_wrong_missing_and_empty() {
        for &forge in Forge::ALL {
            let pairs = good(forge, SECRET);
            assert_eq!(check(forge, &pairs, &[SECRET]), Ok(()), "{forge}: good");
            // wrong secret
            assert_eq!(
                check(forge, &pairs, &[b"other"]),
                Err(Unauthorized),
                "{forge}: wrong"
            );
            // signed with another secret
            let other = good(forge, b"other");
            assert_eq!(
                check(forge, &other, &[SECRET]),
                Err(Unauthorized),
                "{forge}: other"
            );
            // missing header
            assert_eq!(
                check(forge, &[], &[SECRET]),
                Err(Unauthorized),
                "{forge}: missing"
            );
            // rotation: the second of two secrets
            assert_eq!(
                check(forge, &pairs, &[b"old-secret", SECRET]),
                Ok(()),
                "{forge}: rotation"
            );
            // empty secrets never match, and are ignored among others
            assert_eq!(
                check(forge, &pairs, &[b"", SECRET]),
                Ok(()),
                "{forge}: empty ignored"
            );
            assert_eq!(
                check(forge, &pairs, &[]),
                Err(Unauthorized),
                "{forge}: no secrets"
            );
            let empty_signed = good(forge, b"x")
                .into_iter()
                .map(|(n, _)| (n, String::new()));
            let empty_signed: Vec<_> = empty_signed.collect();
            assert_eq!(
                check(forge, &empty_signed, &[b""]),
                Err(Unauthorized),
                "{forge}: empty secret, empty header"
            );
            // a body changed in transit
            let pairs_ref: Vec<(&str, &str)> =
                pairs.iter().map(|(n, v)| (*n, v.as_str())).collect();
            let tampered = verify(forge, &headers(&pairs_ref), b"{\"ref\":\"x\"}", &[SECRET]);
            let expect = match forge {
                // a shared token does not cover the body
                Forge::GitLab | Forge::Generic => Ok(()),
                _ => Err(Unauthorized),
            };
            assert_eq!(tampered, expect, "{forge}: tampered");
        }
    }

    #[test]
    fn hex_is_case_insensitive_and_must_be_whole() {
        let sig = sign(SECRET, BODY);
        let upper = sig.to_uppercase();
        let ok = |forge, name: &str, value: String| {
            verify(forge, &headers(&[(name, &value)]), BODY, &[SECRET])
        };
        assert_eq!(
            ok(
                Forge::GitHub,
                "X-Hub-Signature-256",
                format!("sha256={upper}")
            ),
            Ok(())
        );
        assert_eq!(
            ok(
                Forge::GitHub,
                "X-Hub-Signature-256",
                format!("SHA256={sig}")
            ),
            Ok(())
        );
        assert_eq!(ok(Forge::Gitea, "X-Gitea-Signature", upper.clone()), Ok(()));
        assert_eq!(
            ok(
                Forge::GitHub,
                "X-Hub-Signature-256",
                format!(" sha256={sig} ")
            ),
            Ok(())
        );
        let garbled = [
            sig.clone(),                        // no prefix
            format!("sha1={sig}"),              // other algorithm
            format!("sha256={}", &sig[..62]),   // short
            format!("sha256={sig}00"),          // long
            format!("sha256={}zz", &sig[..62]), // not hex
            format!("sha256= {sig}"),           // space inside
            "sha256=".to_owned(),
        ];
        for value in garbled {
            assert_eq!(
                ok(Forge::GitHub, "X-Hub-Signature-256", value.clone()),
                Err(Unauthorized),
                "{value}"
            );
        }
    }

    #[test]
    fn github_takes_only_sha256() {
        let h = headers(&[(
            "X-Hub-Signature",
            "sha1=0123456789abcdef0123456789abcdef01234567",
        )]);
        assert_eq!(
            verify(Forge::GitHub, &h, BODY, &[SECRET]),
            Err(Unauthorized)
        );
        // the Bitbucket header name on the GitHub forge is not looked at
        let sig = format!("sha256={}", sign(SECRET, BODY));
        let h = headers(&[("X-Hub-Signature", &sig)]);
        assert_eq!(
            verify(Forge::GitHub, &h, BODY, &[SECRET]),
            Err(Unauthorized)
        );
    }

    #[test]
    fn repeated_signature_headers_are_refused() {
        let sig = format!("sha256={}", sign(SECRET, BODY));
        let h = headers(&[("X-Hub-Signature-256", &sig), ("X-Hub-Signature-256", &sig)]);
        assert_eq!(
            verify(Forge::GitHub, &h, BODY, &[SECRET]),
            Err(Unauthorized)
        );
    }

    #[test]
    fn gitea_unsigned_deliveries_are_refused_and_fallbacks_apply() {
        let sig = sign(SECRET, BODY);
        let hub = format!("sha256={sig}");
        let table: &[Case] = &[
            // what Gitea sends without a secret
            (
                &[
                    ("X-Gitea-Signature", ""),
                    ("X-Hub-Signature-256", "sha256="),
                ],
                Err(Unauthorized),
            ),
            (&[("X-Gitea-Signature", "")], Err(Unauthorized)),
            (&[("X-Hub-Signature-256", "sha256=")], Err(Unauthorized)),
            (&[("X-Hub-Signature-256", "")], Err(Unauthorized)),
            // the GitHub-style header alone, or after an empty bare one
            (&[("X-Hub-Signature-256", &hub)], Ok(())),
            (
                &[("X-Gitea-Signature", ""), ("X-Hub-Signature-256", &hub)],
                Ok(()),
            ),
            // Forgejo's and Gitea's names, on either forge
            (&[("X-Forgejo-Signature", &sig)], Ok(())),
            (
                &[("X-Gitea-Signature", &sig), ("X-Forgejo-Signature", &sig)],
                Ok(()),
            ),
            // the first non-empty header decides: a garbled one is not rescued by a good one
            (
                &[("X-Gitea-Signature", "zz"), ("X-Hub-Signature-256", &hub)],
                Err(Unauthorized),
            ),
            // the bare header does not take a prefix
            (&[("X-Gitea-Signature", &hub)], Err(Unauthorized)),
        ];
        for (pairs, expect) in table {
            for forge in [Forge::Gitea, Forge::Forgejo] {
                assert_eq!(
                    verify(forge, &headers(pairs), BODY, &[SECRET]),
                    *expect,
                    "{forge} {pairs:?}"
                );
            }
        }
    }

    #[test]
    fn generic_takes_a_signature_or_a_bearer_token() {
        let hub = format!("sha256={}", sign(SECRET, BODY));
        let table: &[Case] = &[
            (&[("X-Hub-Signature-256", &hub)], Ok(())),
            (&[("Authorization", "Bearer s3cret")], Ok(())),
            (&[("Authorization", "bearer  s3cret ")], Ok(())),
            (&[("Authorization", "Basic czNjcmV0")], Err(Unauthorized)),
            (&[("Authorization", "Bearer")], Err(Unauthorized)),
            (&[("Authorization", "Bearer ")], Err(Unauthorized)),
            (&[("Authorization", "s3cret")], Err(Unauthorized)),
            (&[("Authorization", "Bearer s3cre")], Err(Unauthorized)),
            (&[("Authorization", "Bearer s3crett")], Err(Unauthorized)),
            // a signature header, when present, is what counts
            (
                &[
                    ("X-Hub-Signature-256", "sha256=00"),
                    ("Authorization", "Bearer s3cret"),
                ],
                Err(Unauthorized),
            ),
        ];
        for (pairs, expect) in table {
            assert_eq!(
                verify(Forge::Generic, &headers(pairs), BODY, &[SECRET]),
                *expect,
                "{pairs:?}"
            );
        }
    }

    #[test]
    fn gitlab_token_is_compared_whole() {
        for (token, expect) in [
            ("s3cret", Ok(())),
            ("s3cre", Err(Unauthorized)),
            ("s3cret ", Ok(())), // surrounding spaces are not part of a header value
            ("S3CRET", Err(Unauthorized)),
            ("", Err(Unauthorized)),
        ] {
            let h = headers(&[("X-Gitlab-Token", token)]);
            assert_eq!(
                verify(Forge::GitLab, &h, BODY, &[SECRET]),
                expect,
                "{token:?}"
            );
        }
    }
}

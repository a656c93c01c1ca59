//! The one ref update a push delivery names with its new tip, when the payload says it:
//! GitHub, GitLab and Gitea/Forgejo pushes carry a top-level `ref` and `after`. The hub uses it
//! to see that a mirror already holds what a delivery announces (a redelivery, or a push a
//! running sync already fetched) and needs no follow-up sync.

use crate::json::{object, str_at};

/// A ref and the object it points to after the push (`None`: the push deleted it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushedTip {
    /// Full ref name, e.g. `refs/heads/main`.
    pub name: String,
    /// The new object id (40 or 64 lowercase hex), or `None` for a deletion.
    pub new: Option<String>,
}

/// The pushed tip of a push payload (the JSON body, already unwrapped from a form), or `None`
/// when the payload does not name exactly one ref with its new object id.
pub fn pushed_tip(payload: &[u8]) -> Option<PushedTip> {
    let v = object(payload).ok()?;
    let name = str_at(&v, "ref")?;
    let after = str_at(&v, "after")?;
    let valid_name = name.starts_with("refs/")
        && name.len() <= 1024
        && !name.bytes().any(|b| b.is_ascii_control() || b == b' ');
    let valid_id = matches!(after.len(), 40 | 64)
        && after
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if !valid_name || !valid_id {
        return None;
    }
    let new = (!after.bytes().all(|b| b == b'0')).then(|| after.to_owned());
    Some(PushedTip {
        name: name.to_owned(),
        new,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA: &str = "0123456789abcdef0123456789abcdef01234567";

    #[test]
    fn a_push_names_its_ref_and_new_tip() {
        let body = format!(r#"{{"ref": "refs/heads/main", "after": "{SHA}", "before": "x"}}"#);
        assert_eq!(
            pushed_tip(body.as_bytes()),
            Some(PushedTip {
                name: "refs/heads/main".into(),
                new: Some(SHA.into())
            })
        );
        let deleted =
            r#"{"ref": "refs/tags/v1", "after": "0000000000000000000000000000000000000000"}"#;
        assert_eq!(pushed_tip(deleted.as_bytes()).unwrap().new, None);
    }

    #[test]
    fn anything_else_names_no_tip() {
        for body in [
            r#"{"ref": "main", "after": "0123456789abcdef0123456789abcdef01234567"}"#,
            r#"{"ref": "refs/heads/main"}"#,
            r#"{"ref": "refs/heads/main", "after": "0123456789ABCDEF0123456789abcdef01234567"}"#,
            r#"{"ref": "refs/heads/main", "after": "abc"}"#,
            r#"{"ref": "refs/heads/a b", "after": "0123456789abcdef0123456789abcdef01234567"}"#,
            r#"{"ref": 3, "after": "0123456789abcdef0123456789abcdef01234567"}"#,
            "[]",
            "not json",
        ] {
            assert_eq!(pushed_tip(body.as_bytes()), None, "{body}");
        }
    }

    #[test]
    fn the_fixtures_of_github_gitlab_and_gitea_name_their_tip() {
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../../fixtures/webhooks");
        for path in [
            "github/push.json",
            "gitlab/push.json",
            "gitea/push.json",
            "gitlab/tag-push.json",
        ] {
            let body = std::fs::read(format!("{root}/{path}")).expect("the fixture");
            let tip = pushed_tip(&body).unwrap_or_else(|| panic!("{path}: no tip"));
            assert!(tip.name.starts_with("refs/"), "{path}: {tip:?}");
        }
    }
}

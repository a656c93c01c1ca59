//! Owner and repository names. They become path components on disk and in URLs, so only a
//! conservative ASCII alphabet is accepted: nothing can traverse, hide or look alike.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("{what} must not be empty")]
    Empty { what: &'static str },
    #[error("{what} is longer than {max} characters")]
    TooLong { what: &'static str, max: usize },
    #[error("{what} may contain only ASCII letters, digits, '-', '_' and '.'; found {found:?}")]
    BadCharacter { what: &'static str, found: char },
    #[error("{what} must start with a letter or a digit")]
    BadStart { what: &'static str },
    #[error("{what} must not end with '.git', '.' or '-' (the '.git' suffix is added for you)")]
    BadEnd { what: &'static str },
    #[error("{what} must not contain '..'")]
    DotDot { what: &'static str },
    #[error("{what} {name:?} is reserved")]
    Reserved { what: &'static str, name: String },
}

/// Owner names that would collide with the hub's own top-level routes (`/{owner}/{name}.git`).
const RESERVED: &[&str] = &[
    "api", "hooks", "healthz", "readyz", "static", "assets", "login", "logout", "new", "settings",
    "admin", "tmp", "-",
];

fn check(what: &'static str, s: &str, max: usize, reserved: &[&str]) -> Result<(), NameError> {
    if s.is_empty() {
        return Err(NameError::Empty { what });
    }
    if s.len() > max {
        return Err(NameError::TooLong { what, max });
    }
    if let Some(found) = s
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        return Err(NameError::BadCharacter { what, found });
    }
    if !s.as_bytes()[0].is_ascii_alphanumeric() {
        return Err(NameError::BadStart { what });
    }
    if s.contains("..") {
        return Err(NameError::DotDot { what });
    }
    let lower = s.to_ascii_lowercase();
    if lower.ends_with(".git") || s.ends_with('.') || s.ends_with('-') {
        return Err(NameError::BadEnd { what });
    }
    if reserved.contains(&lower.as_str()) {
        return Err(NameError::Reserved {
            what,
            name: s.to_owned(),
        });
    }
    Ok(())
}

macro_rules! name_type {
    ($(#[$meta:meta])* $name:ident, $what:literal, $max:literal, $reserved:expr) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            pub const MAX_LEN: usize = $max;

            pub fn parse(s: &str) -> Result<Self, NameError> {
                check($what, s, $max, $reserved).map(|()| Self(s.to_owned()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

name_type!(
    /// A user or organization that owns repositories.
    OwnerName, "owner", 39, RESERVED
);
name_type!(
    /// A repository's name under its owner (without `.git`).
    RepoName, "name", 100, &[]
);

impl RepoName {
    /// The name a repository would get from an upstream path such as `/group/My.Project.git`:
    /// the last segment without `.git`, with anything outside the alphabet replaced by `-`.
    pub fn suggest_from_path(path: &str) -> Option<Self> {
        let last = path.trim_end_matches('/').rsplit('/').next()?;
        let last = last.strip_suffix(".git").unwrap_or(last);
        let cleaned: String = last
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                    c
                } else {
                    '-'
                }
            })
            .collect();
        let cleaned = cleaned
            .trim_matches(|c: char| !c.is_ascii_alphanumeric())
            .replace("..", "-");
        Self::parse(&cleaned).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_names() {
        for ok in ["a", "rust-lang", "My_Repo.v2", "x1", "0day"] {
            assert!(RepoName::parse(ok).is_ok(), "{ok}");
            assert!(OwnerName::parse(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn refuses_traversal_and_tricks() {
        for bad in [
            "",
            ".",
            "..",
            "../x",
            "a/b",
            "a\\b",
            "%2e%2e",
            ".hidden",
            "-rf",
            "repo.git",
            "repo.GIT",
            "a..b",
            "ends.",
            "ends-",
            "caf\u{e9}",
            "\u{430}pple",
            "a b",
            "a\0b",
            "a\nb",
        ] {
            assert!(RepoName::parse(bad).is_err(), "{bad:?} should be refused");
            assert!(OwnerName::parse(bad).is_err(), "{bad:?} should be refused");
        }
        for route in ["api", "API", "hooks", "healthz"] {
            assert!(OwnerName::parse(route).is_err(), "{route:?} is a route");
            assert!(
                RepoName::parse(route).is_ok(),
                "{route:?} is fine as a repository name"
            );
        }
        assert!(OwnerName::parse(&"x".repeat(40)).is_err());
        assert!(RepoName::parse(&"x".repeat(101)).is_err());
    }

    #[test]
    fn suggests_names_from_upstream_paths() {
        assert_eq!(
            RepoName::suggest_from_path("/group/My.Project.git")
                .unwrap()
                .as_str(),
            "My.Project"
        );
        assert_eq!(
            RepoName::suggest_from_path("/a/b/c/").unwrap().as_str(),
            "c"
        );
        assert_eq!(
            RepoName::suggest_from_path("/x/caf\u{e9} bar")
                .unwrap()
                .as_str(),
            "caf--bar"
        );
        assert!(RepoName::suggest_from_path("/").is_none());
    }

    proptest::proptest! {
        #[test]
        fn parsed_names_are_safe_path_components(s in "\\PC{0,60}") {
            if let Ok(n) = RepoName::parse(&s) {
                let n = n.as_str();
                proptest::prop_assert!(!n.contains('/') && !n.contains('\\') && !n.contains(".."));
                proptest::prop_assert!(!n.starts_with('.') && !n.starts_with('-'));
                proptest::prop_assert!(n.is_ascii());
            }
        }
    }
}

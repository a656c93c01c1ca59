//! The forges' repository entries as their APIs spell them, each checked on its own into a
//! [`ListedRepo`]: an entry that is malformed or names something unsafe is skipped (and
//! counted), never the page.

use std::fmt;

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::Value;
use url::Url;

use super::{ListedRepo, ListingForge};
use crate::apis::valid_segment;

/// The most repositories one page may hold: every forge caps a page at 100 (Gitea's default
/// 50), so more is a hostile or broken answer, refused whole.
pub(crate) const MAX_PAGE_REPOS: usize = 1000;

const MAX_ID: usize = 64;
const MAX_NAME: usize = 255;
const MAX_PATH: usize = 1024;
const MAX_URL: usize = 2048;
/// The hub's own limit on a repository's description.
const MAX_DESCRIPTION: usize = 2000;

/// A JSON array of at most [`MAX_PAGE_REPOS`] entries, each kept as JSON to be checked alone.
/// The cap is applied while parsing, so a page of millions of `{}` is refused before it is
/// held.
#[derive(Debug, Default)]
pub(crate) struct Entries(pub Vec<Value>);

impl<'de> Deserialize<'de> for Entries {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Entries, D::Error> {
        struct Capped;
        impl<'de> Visitor<'de> for Capped {
            type Value = Entries;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an array of repositories")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Entries, A::Error> {
                let mut entries = Vec::new();
                while let Some(entry) = seq.next_element::<Value>()? {
                    if entries.len() == MAX_PAGE_REPOS {
                        return Err(de::Error::custom(format!(
                            "more than {MAX_PAGE_REPOS} repositories in one page"
                        )));
                    }
                    entries.push(entry);
                }
                Ok(Entries(entries))
            }
        }
        deserializer.deserialize_seq(Capped)
    }
}

/// Private unless the forge says otherwise: an entry that does not say is not made public.
fn private_by_default() -> bool {
    true
}

/// GitHub's repository (`GET /orgs/{org}/repos` and the like): only what a listing needs.
///
/// Not `octocrab::models::Repository`: that model types some ninety fields (the owner's
/// seventeen URLs, the license, merge settings), and a repository whose unrelated field does
/// not match it would be skipped: dropped from a mirror set. These eight are all we read.
#[derive(Deserialize)]
struct GitHubRepo {
    id: u64,
    name: String,
    full_name: String,
    clone_url: String,
    description: Option<String>,
    #[serde(default = "private_by_default")]
    private: bool,
    #[serde(default)]
    archived: bool,
    #[serde(default)]
    fork: bool,
}

/// Gitea's and Forgejo's repository: GitHub's field names.
type GiteaRepo = GitHubRepo;

/// GitLab's project (`GET /groups/{id}/projects`, `GET /users/{id}/projects`).
#[derive(Deserialize)]
struct GitLabProject {
    id: u64,
    path: String,
    path_with_namespace: String,
    http_url_to_repo: String,
    description: Option<String>,
    /// `public`, `internal` or `private`; internal is not public to the world.
    visibility: Option<String>,
    #[serde(default)]
    archived: bool,
    /// Present (an object) on forks.
    forked_from_project: Option<Value>,
}

/// Bitbucket Cloud's repository (`GET /2.0/repositories/{workspace}`).
#[derive(Deserialize)]
struct BitbucketRepo {
    uuid: String,
    slug: String,
    full_name: String,
    description: Option<String>,
    #[serde(default = "private_by_default")]
    is_private: bool,
    links: BitbucketLinks,
    /// Present on forks.
    parent: Option<Value>,
}

#[derive(Deserialize)]
struct BitbucketLinks {
    #[serde(default)]
    clone: Vec<BitbucketClone>,
}

#[derive(Deserialize)]
struct BitbucketClone {
    name: String,
    href: String,
}

/// Checks one entry of `forge`'s listing into a [`ListedRepo`], or says why it is skipped.
pub(crate) fn listed(forge: ListingForge, entry: Value) -> Result<ListedRepo, String> {
    let unreadable = |e: serde_json::Error| format!("not a repository entry: {e}");
    match forge {
        ListingForge::GitHub | ListingForge::Gitea => {
            let repo: GiteaRepo = serde_json::from_value(entry).map_err(unreadable)?;
            checked(Unchecked {
                id: repo.id.to_string(),
                name: repo.name,
                path: repo.full_name,
                clone_url: repo.clone_url,
                description: repo.description,
                private: repo.private,
                archived: repo.archived,
                fork: repo.fork,
            })
        }
        ListingForge::GitLab => {
            let project: GitLabProject = serde_json::from_value(entry).map_err(unreadable)?;
            checked(Unchecked {
                id: project.id.to_string(),
                name: project.path,
                path: project.path_with_namespace,
                clone_url: project.http_url_to_repo,
                description: project.description,
                private: project.visibility.as_deref() != Some("public"),
                archived: project.archived,
                fork: project.forked_from_project.is_some_and(|p| !p.is_null()),
            })
        }
        ListingForge::Bitbucket => {
            let repo: BitbucketRepo = serde_json::from_value(entry).map_err(unreadable)?;
            let clone_url = repo
                .links
                .clone
                .into_iter()
                .find(|link| link.name == "https")
                .map(|link| link.href)
                .ok_or("no https clone link")?;
            checked(Unchecked {
                id: repo.uuid,
                name: repo.slug,
                path: repo.full_name,
                clone_url,
                description: repo.description,
                private: repo.is_private,
                // Bitbucket Cloud has no archived repositories.
                archived: false,
                fork: repo.parent.is_some_and(|p| !p.is_null()),
            })
        }
    }
}

struct Unchecked {
    id: String,
    name: String,
    path: String,
    clone_url: String,
    description: Option<String>,
    private: bool,
    archived: bool,
    fork: bool,
}

fn checked(repo: Unchecked) -> Result<ListedRepo, String> {
    let id = repo.id;
    if id.is_empty() || id.len() > MAX_ID || !id.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(format!("id {} is not a plain id", shown(&id)));
    }
    if !safe_name(&repo.name) {
        return Err(format!("name {} is not a safe name", shown(&repo.name)));
    }
    let segments: Vec<&str> = repo.path.split('/').collect();
    if repo.path.len() > MAX_PATH || segments.len() < 2 || !segments.iter().all(|s| safe_name(s)) {
        return Err(format!(
            "path {} is not a safe owner/name path",
            shown(&repo.path)
        ));
    }
    let clone_url = clone_url(&repo.clone_url)
        .ok_or_else(|| format!("clone URL {} is no http(s) URL", shown(&repo.clone_url)))?;
    Ok(ListedRepo {
        id,
        name: repo.name,
        path: repo.path,
        clone_url,
        description: description(repo.description.unwrap_or_default()),
        private: repo.private,
        archived: repo.archived,
        fork: repo.fork,
    })
}

/// A name that is one path segment everywhere it goes: ASCII letters, digits, `-`, `_`, `.`,
/// not `.` or `..`.
fn safe_name(name: &str) -> bool {
    name.len() <= MAX_NAME && valid_segment(name)
}

/// An http(s) URL with a host, without any `user@` (Bitbucket puts the caller's name there;
/// the hub gives its own credentials).
fn clone_url(text: &str) -> Option<String> {
    if text.len() > MAX_URL {
        return None;
    }
    let mut url = Url::parse(text).ok()?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none_or(str::is_empty) {
        return None;
    }
    url.set_username("").ok()?;
    url.set_password(None).ok()?;
    url.set_fragment(None);
    Some(url.into())
}

/// The description as the hub keeps one: no control characters but newlines, at most
/// [`MAX_DESCRIPTION`] characters.
fn description(text: String) -> String {
    let cleaned: String = text
        .chars()
        .map(|c| if c.is_control() && c != '\n' { ' ' } else { c })
        .take(MAX_DESCRIPTION)
        .collect();
    cleaned.trim().to_owned()
}

/// A value for a log line or a skip reason: quoted, at most 80 characters.
fn shown(text: &str) -> String {
    let short: String = text.chars().take(80).collect();
    if short.len() < text.len() {
        format!("{short:?}…")
    } else {
        format!("{short:?}")
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn github(name: &str, full_name: &str, clone_url: &str) -> Value {
        json!({"id": 7, "name": name, "full_name": full_name, "clone_url": clone_url,
               "description": null, "private": false, "archived": false, "fork": false})
    }

    #[test]
    fn unsafe_entries_are_skipped_with_a_reason() {
        let ok = listed(
            ListingForge::GitHub,
            github("api", "acme/api", "https://github.com/acme/api.git"),
        )
        .unwrap();
        assert_eq!(ok.description, "");
        assert_eq!(ok.path, "acme/api");
        for (name, full_name, url) in [
            ("..", "acme/..", "https://github.com/acme/x.git"),
            ("a/b", "acme/a/b", "https://github.com/acme/x.git"),
            ("-x y", "acme/-x y", "https://github.com/acme/x.git"),
            ("api", "acme/../api", "https://github.com/acme/x.git"),
            ("api", "api", "https://github.com/acme/x.git"),
            ("api", "acme/api", "file:///etc/passwd"),
            ("api", "acme/api", "ext::sh -c id"),
            ("api", "acme/api", "git@github.com:acme/api.git"),
            ("ápi", "acme/ápi", "https://github.com/acme/x.git"),
        ] {
            let skipped = listed(ListingForge::GitHub, github(name, full_name, url));
            assert!(skipped.is_err(), "{name} {full_name} {url}");
        }
        let long = "a".repeat(300);
        assert!(listed(
            ListingForge::GitHub,
            github(&long, &format!("acme/{long}"), "https://h/x.git")
        )
        .is_err());
        assert!(listed(ListingForge::GitHub, json!({"id": "x"})).is_err());
        assert!(listed(ListingForge::GitHub, json!(42)).is_err());
    }

    #[test]
    fn bitbucket_clone_links_lose_their_user_and_gitlab_visibility_maps_to_private() {
        let repo = listed(
            ListingForge::Bitbucket,
            json!({"uuid": "{0f9e}", "slug": "api", "full_name": "ws/api", "is_private": false,
                   "description": "d\u{7}x",
                   "links": {"clone": [
                       {"name": "ssh", "href": "git@bitbucket.org:ws/api.git"},
                       {"name": "https", "href": "https://someone@bitbucket.org/ws/api.git"}]},
                   "parent": {"full_name": "other/api"}}),
        )
        .unwrap();
        assert_eq!(repo.clone_url, "https://bitbucket.org/ws/api.git");
        assert_eq!(repo.description, "d x");
        assert!(repo.fork && !repo.archived && !repo.private);

        let project = |visibility: Value| {
            listed(
                ListingForge::GitLab,
                json!({"id": 3, "path": "api", "path_with_namespace": "g/sub/api",
                       "http_url_to_repo": "https://gitlab.com/g/sub/api.git",
                       "description": "", "visibility": visibility, "archived": true,
                       "forked_from_project": null}),
            )
            .unwrap()
        };
        assert!(!project(json!("public")).private);
        assert!(project(json!("internal")).private);
        assert!(project(json!("private")).private);
        assert!(project(Value::Null).private);
        assert!(project(json!("public")).archived);
        assert!(!project(json!("public")).fork);
    }

    #[test]
    fn a_page_of_too_many_entries_is_refused_while_parsing() {
        let many = format!("[{}{{}}]", "{},".repeat(MAX_PAGE_REPOS));
        assert!(serde_json::from_str::<Entries>(&many).is_err());
        let enough = format!("[{}{{}}]", "{},".repeat(MAX_PAGE_REPOS - 1));
        assert_eq!(
            serde_json::from_str::<Entries>(&enough).unwrap().0.len(),
            MAX_PAGE_REPOS
        );
    }
}

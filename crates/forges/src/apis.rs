use std::fmt;

use url::Url;

/// The forges whose APIs mirrorhub calls. Forgejo speaks Gitea's API and counts as Gitea.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ForgeKind {
    GitHub,
    GitLab,
    Gitea,
}

impl fmt::Display for ForgeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ForgeKind::GitHub => "GitHub",
            ForgeKind::GitLab => "GitLab",
            ForgeKind::Gitea => "Gitea",
        })
    }
}

/// Where the forges' APIs are. Defaults: `https://api.github.com`, `https://gitlab.com`, no
/// Gitea.
///
/// - `github_api`: the REST API root: `https://api.github.com`, or `https://HOST/api/v3` for
///   GitHub Enterprise Server.
/// - `gitlab`: the instance's base URL (not its `/api/v4`), with its relative URL root if any.
/// - `gitea`: the instance's base URL (not its `/api/v1`), with its sub-path if any.
#[derive(Debug, Clone)]
pub struct ForgeApis {
    pub github_api: Url,
    pub gitlab: Url,
    pub gitea: Option<Url>,
}

impl Default for ForgeApis {
    fn default() -> ForgeApis {
        ForgeApis {
            github_api: Url::parse("https://api.github.com").expect("static URL"),
            gitlab: Url::parse("https://gitlab.com").expect("static URL"),
            gitea: None,
        }
    }
}

/// A repository on a forge as its API names it: GitHub and Gitea `owner/name`; GitLab the full
/// path `group/sub/project` (URL-encoded as the project id in API paths).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForgeRepo {
    pub kind: ForgeKind,
    pub path: String,
}

impl ForgeRepo {
    /// `(owner, name)` of a GitHub or Gitea repository, if `path` is exactly two safe segments.
    pub(crate) fn owner_name(&self) -> Option<(&str, &str)> {
        let (owner, name) = self.path.split_once('/')?;
        (valid_segment(owner) && valid_segment(name)).then_some((owner, name))
    }

    /// Whether `path` is a GitLab project path: two or more safe segments.
    pub(crate) fn is_gitlab_path(&self) -> bool {
        let segments: Vec<&str> = self.path.split('/').collect();
        segments.len() >= 2 && segments.iter().all(|s| valid_segment(s) && *s != "-")
    }
}

/// Where a forge's web pages (and so its clone URLs) live.
struct WebRoot<'a> {
    kind: ForgeKind,
    host: &'a str,
    port: Option<u16>,
    /// The path the forge is served under, without a trailing slash (`""` at the root).
    prefix: &'a str,
}

impl ForgeApis {
    /// Which forge hosts this upstream clone URL (http or https), by host and port: github.com
    /// when the GitHub API is api.github.com, else the host of `github_api` (GitHub Enterprise:
    /// its web root is the API URL less `/api/v3`); the host of the GitLab base URL; the host of
    /// the Gitea base URL, under its sub-path if it has one. When several match, the longest
    /// sub-path wins.
    ///
    /// The path, less the sub-path, one trailing `.git` and surrounding slashes, must be
    /// `owner/name` on GitHub and Gitea and `group[/subgroup…]/project` on GitLab, each segment
    /// of letters, digits, `-`, `_` and `.` (what the forges allow); anything else is `None`.
    pub fn forge_for(&self, upstream: &Url) -> Option<ForgeRepo> {
        if !matches!(upstream.scheme(), "http" | "https") {
            return None;
        }
        let host = upstream.host_str()?;
        let port = upstream.port();
        let path = upstream.path();
        self.web_roots()
            .into_iter()
            .filter(|root| root.host == host && root.port == port)
            .filter_map(|root| {
                let rest = if root.prefix.is_empty() {
                    path
                } else {
                    path.strip_prefix(root.prefix)
                        .filter(|rest| rest.starts_with('/'))?
                };
                Some((root.prefix.len(), root.kind, rest))
            })
            .max_by_key(|(prefix_len, _, _)| *prefix_len)
            .and_then(|(_, kind, rest)| {
                let rest = rest.trim_matches('/');
                let rest = rest.strip_suffix(".git").unwrap_or(rest);
                let repo = ForgeRepo {
                    kind,
                    path: rest.to_owned(),
                };
                let valid = match kind {
                    ForgeKind::GitHub | ForgeKind::Gitea => repo.owner_name().is_some(),
                    ForgeKind::GitLab => repo.is_gitlab_path(),
                };
                valid.then_some(repo)
            })
    }

    fn web_roots(&self) -> Vec<WebRoot<'_>> {
        let mut roots = Vec::with_capacity(3);
        if let Some(api_host) = self.github_api.host_str() {
            if api_host == "api.github.com" {
                roots.push(WebRoot {
                    kind: ForgeKind::GitHub,
                    host: "github.com",
                    port: None,
                    prefix: "",
                });
            } else {
                let api_path = trim_path(&self.github_api);
                roots.push(WebRoot {
                    kind: ForgeKind::GitHub,
                    host: api_host,
                    port: self.github_api.port(),
                    prefix: api_path.strip_suffix("/api/v3").unwrap_or(api_path),
                });
            }
        }
        if let Some(host) = self.gitlab.host_str() {
            roots.push(WebRoot {
                kind: ForgeKind::GitLab,
                host,
                port: self.gitlab.port(),
                prefix: trim_path(&self.gitlab),
            });
        }
        if let Some(gitea) = &self.gitea {
            if let Some(host) = gitea.host_str() {
                roots.push(WebRoot {
                    kind: ForgeKind::Gitea,
                    host,
                    port: gitea.port(),
                    prefix: trim_path(gitea),
                });
            }
        }
        roots
    }
}

/// The URL's path without trailing slashes (`""` for the root).
fn trim_path(url: &Url) -> &str {
    url.path().trim_end_matches('/')
}

/// Whether `user` can be a login on the forges (letters, digits, `-`, `_`, `.`), and so is safe
/// in an API path. GitHub's `app[bot]` accounts are not: they are no collaborators either.
pub(crate) fn valid_user_name(user: &str) -> bool {
    valid_segment(user)
}

/// A path segment the forges allow in owner, group and repository names, and that is safe to
/// put in an API path as it is.
pub(crate) fn valid_segment(segment: &str) -> bool {
    !segment.is_empty()
        && segment != "."
        && segment != ".."
        && segment
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    fn repo(kind: ForgeKind, path: &str) -> Option<ForgeRepo> {
        Some(ForgeRepo {
            kind,
            path: path.to_owned(),
        })
    }

    fn apis_with(github_api: &str, gitlab: &str, gitea: Option<&str>) -> ForgeApis {
        ForgeApis {
            github_api: url(github_api),
            gitlab: url(gitlab),
            gitea: gitea.map(url),
        }
    }

    #[test]
    fn defaults() {
        let apis = ForgeApis::default();
        assert_eq!(apis.github_api.as_str(), "https://api.github.com/");
        assert_eq!(apis.gitlab.as_str(), "https://gitlab.com/");
        assert!(apis.gitea.is_none());
    }

    #[test]
    fn github_com() {
        let apis = ForgeApis::default();
        for upstream in [
            "https://github.com/rust-lang/rust.git",
            "https://github.com/rust-lang/rust",
            "https://github.com/rust-lang/rust/",
            "https://GitHub.com/rust-lang/rust.git",
            "http://github.com/rust-lang/rust.git",
        ] {
            assert_eq!(
                apis.forge_for(&url(upstream)),
                repo(ForgeKind::GitHub, "rust-lang/rust"),
                "{upstream}"
            );
        }
        // Names may start with a dot and hold dots, dashes and underscores.
        assert_eq!(
            apis.forge_for(&url("https://github.com/my-org/.github")),
            repo(ForgeKind::GitHub, "my-org/.github")
        );
        assert_eq!(
            apis.forge_for(&url("https://github.com/a_b/c.d-e.git")),
            repo(ForgeKind::GitHub, "a_b/c.d-e")
        );
        // Only one ".git" is stripped.
        assert_eq!(
            apis.forge_for(&url("https://github.com/o/r.git.git")),
            repo(ForgeKind::GitHub, "o/r.git")
        );
    }

    #[test]
    fn api_github_com_is_github_com() {
        // The API host itself is no clone host; github.com is.
        let apis = ForgeApis::default();
        assert_eq!(apis.forge_for(&url("https://api.github.com/o/r")), None);
        let apis = apis_with("https://api.github.com/", "https://gitlab.com", None);
        assert_eq!(
            apis.forge_for(&url("https://github.com/o/r")),
            repo(ForgeKind::GitHub, "o/r")
        );
    }

    #[test]
    fn github_needs_exactly_owner_and_name() {
        let apis = ForgeApis::default();
        for upstream in [
            "https://github.com/o/r/extra.git",
            "https://github.com/o/r/tree/main",
            "https://github.com/o",
            "https://github.com/",
            "https://github.com/o//r",
            "https://github.com/o/r%20x",
            "https://github.com/o/r/.git",
            "ssh://github.com/o/r.git",
            "git://github.com/o/r.git",
        ] {
            assert_eq!(apis.forge_for(&url(upstream)), None, "{upstream}");
        }
    }

    #[test]
    fn github_enterprise() {
        let apis = apis_with("https://ghe.example.com/api/v3", "https://gitlab.com", None);
        assert_eq!(
            apis.forge_for(&url("https://ghe.example.com/team/app.git")),
            repo(ForgeKind::GitHub, "team/app")
        );
        // github.com is not this GitHub: its API is elsewhere.
        assert_eq!(apis.forge_for(&url("https://github.com/o/r.git")), None);
        assert_eq!(
            apis.forge_for(&url("https://ghe.example.com:8443/team/app.git")),
            None
        );
        let on_port = apis_with(
            "https://ghe.example.com:8443/api/v3/",
            "https://gitlab.com",
            None,
        );
        assert_eq!(
            on_port.forge_for(&url("https://ghe.example.com:8443/team/app")),
            repo(ForgeKind::GitHub, "team/app")
        );
    }

    #[test]
    fn gitlab_com_with_subgroups() {
        let apis = ForgeApis::default();
        assert_eq!(
            apis.forge_for(&url("https://gitlab.com/gitlab-org/gitlab.git")),
            repo(ForgeKind::GitLab, "gitlab-org/gitlab")
        );
        assert_eq!(
            apis.forge_for(&url("https://gitlab.com/group/sub/subsub/project.git/")),
            repo(ForgeKind::GitLab, "group/sub/subsub/project")
        );
        assert_eq!(apis.forge_for(&url("https://gitlab.com/project")), None);
        assert_eq!(
            apis.forge_for(&url("https://gitlab.com/group/project/-/tree/main")),
            None
        );
    }

    #[test]
    fn self_managed_gitlab_on_a_port() {
        let apis = apis_with(
            "https://api.github.com",
            "https://git.example.org:8443/",
            None,
        );
        assert_eq!(
            apis.forge_for(&url("https://git.example.org:8443/infra/tools/deploy.git")),
            repo(ForgeKind::GitLab, "infra/tools/deploy")
        );
        // Same host, other port: another server.
        assert_eq!(
            apis.forge_for(&url("https://git.example.org/infra/deploy.git")),
            None
        );
        assert_eq!(apis.forge_for(&url("https://gitlab.com/a/b.git")), None);
    }

    #[test]
    fn gitlab_under_a_relative_url_root() {
        let apis = apis_with("https://api.github.com", "https://example.org/gitlab", None);
        assert_eq!(
            apis.forge_for(&url("https://example.org/gitlab/g/p.git")),
            repo(ForgeKind::GitLab, "g/p")
        );
        assert_eq!(apis.forge_for(&url("https://example.org/g/p.git")), None);
        assert_eq!(
            apis.forge_for(&url("https://example.org/gitlabx/g/p.git")),
            None
        );
    }

    #[test]
    fn gitea_under_a_sub_path() {
        let apis = apis_with(
            "https://api.github.com",
            "https://gitlab.com",
            Some("https://code.example.net/gitea/"),
        );
        assert_eq!(
            apis.forge_for(&url("https://code.example.net/gitea/alice/dotfiles.git")),
            repo(ForgeKind::Gitea, "alice/dotfiles")
        );
        assert_eq!(
            apis.forge_for(&url("https://code.example.net/alice/dotfiles.git")),
            None
        );
        assert_eq!(
            apis.forge_for(&url("https://code.example.net/gitea/alice/dotfiles/x")),
            None
        );
    }

    #[test]
    fn gitea_at_the_root_and_gitea_beside_gitlab() {
        let apis = apis_with(
            "https://api.github.com",
            "https://gitlab.com",
            Some("http://127.0.0.1:3000"),
        );
        assert_eq!(
            apis.forge_for(&url("http://127.0.0.1:3000/o/r")),
            repo(ForgeKind::Gitea, "o/r")
        );
        // GitLab at a host's root and Gitea under a sub-path of the same host: the longer
        // prefix decides.
        let shared = apis_with(
            "https://api.github.com",
            "https://git.example.com",
            Some("https://git.example.com/gitea"),
        );
        assert_eq!(
            shared.forge_for(&url("https://git.example.com/gitea/o/r.git")),
            repo(ForgeKind::Gitea, "o/r")
        );
        assert_eq!(
            shared.forge_for(&url("https://git.example.com/g/p.git")),
            repo(ForgeKind::GitLab, "g/p")
        );
    }

    #[test]
    fn unrelated_hosts() {
        let apis = apis_with(
            "https://api.github.com",
            "https://gitlab.com",
            Some("https://gitea.example.com"),
        );
        for upstream in [
            "https://bitbucket.org/o/r.git",
            "https://example.com/o/r.git",
            "https://notgithub.com/o/r.git",
            "https://github.com.evil.example/o/r.git",
            "https://sub.gitlab.com/g/p.git",
        ] {
            assert_eq!(apis.forge_for(&url(upstream)), None, "{upstream}");
        }
    }

    #[test]
    fn repo_paths_are_rechecked_before_use() {
        let ok = ForgeRepo {
            kind: ForgeKind::GitHub,
            path: "o/r".into(),
        };
        assert_eq!(ok.owner_name(), Some(("o", "r")));
        for bad in [
            "o", "o/r/x", "../r", "o/..", "o/r?x", "o/r#x", "o/%2e%2e", "",
        ] {
            let repo = ForgeRepo {
                kind: ForgeKind::Gitea,
                path: bad.into(),
            };
            assert_eq!(repo.owner_name(), None, "{bad}");
        }
        let gl = |p: &str| ForgeRepo {
            kind: ForgeKind::GitLab,
            path: p.into(),
        };
        assert!(gl("a/b/c").is_gitlab_path());
        assert!(!gl("a").is_gitlab_path());
        assert!(!gl("a/../b").is_gitlab_path());
        assert!(!gl("a/-/b").is_gitlab_path());
    }
}

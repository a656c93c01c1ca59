//! Where an upstream's LFS server is, found as git-lfs finds it.

/// `<url>/info/lfs`, with `.git` added to the path when missing; for SSH upstreams the https
/// address of the same host and path (as git-lfs derives it). `None` for git:// upstreams,
/// which have no LFS server of their own (give `lfs_url`).
pub fn default_endpoint(upstream: &str) -> Option<url::Url> {
    let (scheme, rest) = if let Some(rest) = upstream.strip_prefix("https://") {
        ("https", rest)
    } else if let Some(rest) = upstream.strip_prefix("http://") {
        ("http", rest)
    } else if let Some(rest) = upstream
        .strip_prefix("ssh://")
        .or_else(|| upstream.strip_prefix("git+ssh://"))
    {
        let (authority, path) = rest.split_once('/')?;
        let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        // The SSH port says nothing about the https one.
        let host = if host.starts_with('[') {
            host.split_inclusive(']').next().unwrap_or(host)
        } else {
            host.split(':').next().unwrap_or(host)
        };
        return with_suffix(&format!("https://{host}/{path}"));
    } else if !upstream.contains("://") {
        // scp-like user@host:path
        let (authority, path) = upstream.split_once(':')?;
        let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        return with_suffix(&format!("https://{host}/{}", path.trim_start_matches('/')));
    } else {
        return None;
    };
    with_suffix(&format!("{scheme}://{rest}"))
}

fn with_suffix(base: &str) -> Option<url::Url> {
    let mut url = url::Url::parse(base).ok()?;
    url.set_query(None);
    url.set_fragment(None);
    let path = url.path().trim_end_matches('/').to_owned();
    let path = if path.ends_with(".git") {
        path
    } else {
        format!("{path}.git")
    };
    url.set_path(&format!("{path}/info/lfs"));
    Some(url)
}

/// Whether two URLs share scheme, host and port: the mirror's credentials go only to its
/// upstream's own origin, as git sends them.
pub fn same_origin(a: &url::Url, b: &url::Url) -> bool {
    a.scheme() == b.scheme()
        && a.host_str().map(str::to_ascii_lowercase) == b.host_str().map(str::to_ascii_lowercase)
        && a.port_or_known_default() == b.port_or_known_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_endpoints_as_git_lfs_does() {
        for (upstream, endpoint) in [
            (
                "https://git.example/team/app.git",
                Some("https://git.example/team/app.git/info/lfs"),
            ),
            (
                "https://git.example/team/app",
                Some("https://git.example/team/app.git/info/lfs"),
            ),
            (
                "http://127.0.0.1:8080/up.git/",
                Some("http://127.0.0.1:8080/up.git/info/lfs"),
            ),
            (
                "ssh://git@git.example:2222/team/app.git",
                Some("https://git.example/team/app.git/info/lfs"),
            ),
            (
                "git@git.example:team/app",
                Some("https://git.example/team/app.git/info/lfs"),
            ),
            ("git://git.example/app.git", None),
        ] {
            assert_eq!(
                default_endpoint(upstream).map(|u| u.to_string()).as_deref(),
                endpoint,
                "{upstream}"
            );
        }
    }

    #[test]
    fn origins() {
        let u = |s: &str| url::Url::parse(s).unwrap();
        assert!(same_origin(
            &u("https://A.example/x"),
            &u("https://a.example:443/y")
        ));
        assert!(!same_origin(
            &u("https://a.example/x"),
            &u("http://a.example/x")
        ));
        assert!(!same_origin(
            &u("https://a.example/x"),
            &u("https://a.example:8443/x")
        ));
        assert!(!same_origin(
            &u("https://a.example/x"),
            &u("https://cdn.a.example/x")
        ));
    }
}

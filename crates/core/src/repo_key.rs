//! The identity of a repository across the ways its address can be written, so that the URLs
//! a webhook names (`https://…/o/r.git`, `git@host:o/r.git`, `git://…`, the web page) can be
//! matched against the upstream URL a mirror was created with.
//!
//! The key is `host[:port]/path`: the scheme is left out (http, https, ssh and git of the same
//! host and path are taken to be one repository), so are user names, passwords and default
//! ports, trailing slashes and one trailing `.git`. The path is percent-decoded where that
//! cannot change its meaning, and case-folded (see [`repo_match_key`]).

use url::Host;

/// Inputs longer than this are not URLs anyone wrote.
const MAX_LEN: usize = 4096;

/// The normalised identity of the repository at `url`, such as `github.com/owner/repo`
/// (`host:8443/group/repo` when the port is not the scheme's default), or `None` when `url`
/// is not an address of a remote repository.
///
/// Accepted forms: `https://`, `http://`, `git://`, `ssh://[user@]host[:port]/path` (also
/// `git+ssh://`), and git's scp-like `[user@]host:path`.
///
/// The path is lower-cased, not only the host. Paths are case-sensitive for some servers, but
/// many forges (GitHub, GitLab, Gitea, Bitbucket) resolve `Owner/Repo` and `owner/repo` to
/// the same repository, and payloads do not always spell a name the way the user typed it when
/// creating the mirror. The two possible mistakes are not equal: a false match (two
/// repositories differing only in case, on a case-sensitive server) only triggers an extra
/// sync, which is harmless; a missed match silently loses a push.
pub fn repo_match_key(url: &str) -> Option<String> {
    let url = url.trim();
    if url.is_empty()
        || url.len() > MAX_LEN
        || url
            .chars()
            .any(|c| c.is_control() || c.is_whitespace() || c == '\\')
    {
        return None;
    }
    let (host_port, path, default_port) = match url.split_once("://") {
        Some((scheme, rest)) => {
            let default_port = match scheme.to_ascii_lowercase().as_str() {
                "https" => 443,
                "http" => 80,
                "git" => 9418,
                "ssh" | "git+ssh" | "ssh+git" => 22,
                _ => return None,
            };
            // A web page URL may carry a query or fragment (`…/repo#readme`); neither is part
            // of the repository's identity.
            let rest = rest.split(['?', '#']).next().unwrap_or_default();
            let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
            let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
            (host_port, path, Some(default_port))
        }
        None => {
            let (host, path) = split_scp(url)?;
            (host, path, None)
        }
    };
    let (host, port) = split_port(host_port)?;
    let host = normalise_host(host)?;
    let port = port.filter(|p| Some(*p) != default_port);
    let path = normalise_path(path)?;
    Some(match port {
        Some(port) => format!("{host}:{port}{path}"),
        None => format!("{host}{path}"),
    })
}

/// git's scp-like syntax: `[user@]host:path`, `[user@][v6]:path`. No port can be written in
/// it (`host:22/x` is the path `22/x`).
fn split_scp(s: &str) -> Option<(&str, &str)> {
    let after_user = match s.find('@') {
        Some(i) if !s[..i].contains([':', '/', '[']) => &s[i + 1..],
        _ => s,
    };
    let (host, path) = if after_user.starts_with('[') {
        let end = after_user.find(']')?;
        let path = after_user[end + 1..].strip_prefix(':')?;
        (&after_user[..=end], path)
    } else {
        after_user.split_once(':')?
    };
    // `/local/path:x`, `./x`, and a Windows drive letter (`c:/src/repo`) are local paths.
    // `ext::cmd` is git's transport-helper syntax, not an address.
    if host.is_empty()
        || host.contains('/')
        || host.len() == 1
        || path.starts_with("//")
        || path.starts_with(':')
    {
        return None;
    }
    Some((host, path))
}

/// `host`, `host:port`, `[v6]`, `[v6]:port`. An empty port (`host:`) is no port.
fn split_port(s: &str) -> Option<(&str, Option<u16>)> {
    let (host, port) = if s.starts_with('[') {
        let end = s.find(']')?;
        let after = &s[end + 1..];
        if after.is_empty() {
            (s, "")
        } else {
            (&s[..=end], after.strip_prefix(':')?)
        }
    } else {
        s.rsplit_once(':').unwrap_or((s, ""))
    };
    if port.is_empty() {
        return Some((host, None));
    }
    if !port.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((host, Some(port.parse().ok()?)))
}

/// Lower-case domain (IDNA to ASCII, as the URL standard does), dotted IPv4, bracketed IPv6.
fn normalise_host(host: &str) -> Option<String> {
    let host = host.strip_suffix('.').unwrap_or(host);
    if host.is_empty() {
        return None;
    }
    let host = match Host::parse(host).ok()? {
        Host::Domain(d) => d.to_ascii_lowercase(),
        Host::Ipv4(ip) => ip.to_string(),
        Host::Ipv6(ip) => format!("[{ip}]"),
    };
    (!host.is_empty()).then_some(host)
}

/// `/seg/seg…`: percent-decoded where safe, case-folded, without empty or `.` segments,
/// trailing slashes or one trailing `.git`. `..` segments make the URL garbage. At least one
/// segment must remain: a host alone is not a repository.
fn normalise_path(raw: &str) -> Option<String> {
    let decoded = decode_safe(raw)?.to_lowercase();
    let mut segments = Vec::new();
    for segment in decoded.split('/') {
        match segment {
            "" | "." => {}
            ".." => return None,
            s => segments.push(s),
        }
    }
    let last = segments.pop()?;
    let last = last.strip_suffix(".git").unwrap_or(last);
    if !last.is_empty() {
        segments.push(last);
    }
    if segments.is_empty() {
        return None;
    }
    Some(format!("/{}", segments.join("/")))
}

/// Decodes `%XX` unless the byte would change how the path splits or reads (`/`, `%`, `?`,
/// `#`, `\`, whitespace, control characters): those stay escaped, in lower-case hex so that the
/// case-folding after this is a no-op on them. A `%` that starts no escape becomes `%25`.
/// `None` when the decoded bytes are not UTF-8.
fn decode_safe(raw: &str) -> Option<String> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'%' {
            out.push(bytes[i]);
            i += 1;
            continue;
        }
        let value = raw
            .get(i + 1..i + 3)
            .filter(|h| h.bytes().all(|b| b.is_ascii_hexdigit()))
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match value {
            Some(b) if keeps_escaped(b) => {
                out.extend_from_slice(format!("%{b:02x}").as_bytes());
                i += 3;
            }
            Some(b) => {
                out.push(b);
                i += 3;
            }
            None => {
                out.extend_from_slice(b"%25");
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

fn keeps_escaped(b: u8) -> bool {
    matches!(b, b'/' | b'%' | b'?' | b'#' | b'\\')
        || b.is_ascii_whitespace()
        || b.is_ascii_control()
}

/// The distinct match keys of several URLs of a repository (in first-seen order), skipping the
/// URLs that give none: what mirrors of it are looked up by.
pub fn repo_match_keys<S: AsRef<str>>(urls: &[S]) -> Vec<String> {
    let mut keys: Vec<String> = Vec::new();
    for key in urls.iter().filter_map(|u| repo_match_key(u.as_ref())) {
        if !keys.contains(&key) {
            keys.push(key);
        }
    }
    keys
}

#[cfg(test)]
mod tests {
    use super::repo_match_key;

    #[test]
    fn forms_of_one_repository_share_a_key() {
        let same = [
            "https://github.com/owner/repo",
            "https://github.com/owner/repo.git",
            "https://github.com/owner/repo/",
            "https://github.com/owner/repo.git/",
            "http://github.com/owner/repo",
            "HTTPS://GitHub.COM/Owner/Repo.git",
            "https://github.com:443/owner/repo",
            "http://github.com:80/owner/repo",
            "https://user:token@github.com/owner/repo.git",
            "https://github.com//owner/./repo",
            "https://github.com/owner/repo#readme",
            "https://github.com/owner/repo?tab=readme",
            "https://github.com./owner/repo",
            "https://github.com/%6Fwner/repo",
            "git://github.com/owner/repo.git",
            "git://github.com:9418/owner/repo.git",
            "ssh://git@github.com/owner/repo.git",
            "ssh://git@github.com:22/owner/repo.git",
            "git+ssh://git@github.com/owner/repo.git",
            "git@github.com:owner/repo.git",
            "git@github.com:/owner/repo.git",
            "github.com:owner/repo",
            "  https://github.com/owner/repo  ",
        ];
        for url in same {
            assert_eq!(
                repo_match_key(url).as_deref(),
                Some("github.com/owner/repo"),
                "{url}"
            );
        }
    }

    #[test]
    fn keys_keep_what_tells_repositories_apart() {
        let table = [
            // non-default ports are part of the identity
            (
                "https://git.example.org:8443/g/r.git",
                "git.example.org:8443/g/r",
            ),
            ("ssh://git@bb.local:7999/~me/r.git", "bb.local:7999/~me/r"),
            // a port that is the default of another scheme is not dropped
            ("https://host:80/g/r", "host:80/g/r"),
            (
                "http://localhost:3000/example/example.git",
                "localhost:3000/example/example",
            ),
            // nested groups, tildes, dots inside names
            ("https://gitlab.com/a/b/c/d.git", "gitlab.com/a/b/c/d"),
            (
                "https://example.org/~user/my.repo",
                "example.org/~user/my.repo",
            ),
            // only one .git goes
            ("https://example.org/g/r.git.git", "example.org/g/r.git"),
            // hosts: IP literals, IDNA, trailing dot
            ("http://127.0.0.1:8080/r", "127.0.0.1:8080/r"),
            ("http://[::1]/r", "[::1]/r"),
            ("ssh://git@[2001:db8::1]:2222/r", "[2001:db8::1]:2222/r"),
            ("git@[2001:db8::1]:r.git", "[2001:db8::1]/r"),
            ("https://BÜCHER.example/g/r", "xn--bcher-kva.example/g/r"),
            // percent-decoding where safe, escapes kept where not
            ("https://h.example/g/caf%C3%A9", "h.example/g/café"),
            ("https://h.example/g/CAFÉ", "h.example/g/café"),
            ("https://h.example/g/a%2Fb", "h.example/g/a%2fb"),
            ("https://h.example/g/a%2fb", "h.example/g/a%2fb"),
            ("https://h.example/g/a%20b", "h.example/g/a%20b"),
            ("https://h.example/g/100%", "h.example/g/100%25"),
            ("https://h.example/g/100%25", "h.example/g/100%25"),
            ("https://h.example/g/a+b", "h.example/g/a+b"),
        ];
        for (url, key) in table {
            assert_eq!(repo_match_key(url).as_deref(), Some(key), "{url}");
        }
        assert_ne!(
            repo_match_key("https://github.com/owner/repo"),
            repo_match_key("https://github.com/owner/repo2")
        );
        assert_ne!(
            repo_match_key("https://github.com/owner/repo"),
            repo_match_key("https://gitlab.com/owner/repo")
        );
    }

    #[test]
    fn garbage_has_no_key() {
        let garbage = [
            "",
            "   ",
            "github.com/owner/repo",
            "/srv/git/repo.git",
            "./repo",
            "../repo",
            "~/repo",
            "file:///srv/git/repo.git",
            "ftp://example.org/repo",
            "ext::sh -c touch% /tmp/x",
            "c:/src/repo",
            "C:\\src\\repo",
            "https://",
            "https:///owner/repo",
            "https://github.com",
            "https://github.com/",
            "https://github.com/.git",
            "https://github.com/a/../b",
            "https://github.com:99999/o/r",
            "https://github.com:x/o/r",
            "https://exa mple.com/o/r",
            "https://example.com/o\n/r",
            "https://[::1/r",
            "git@github.com:",
            "git@:owner/repo",
            "git@github.com://owner/repo",
            "https://example.com/%FF",
            "ext::sh",
        ];
        for url in garbage {
            assert_eq!(repo_match_key(url), None, "{url:?}");
        }
    }

    proptest::proptest! {
        #[test]
        fn never_panics(s in "\\PC{0,80}") {
            let _ = repo_match_key(&s);
        }

        #[test]
        fn every_form_gives_the_same_key(
            host in "[a-z][a-z0-9-]{0,10}(\\.[a-z]{2,5}){1,2}",
            path in "([a-zA-Z0-9_~-][a-zA-Z0-9._~-]{0,8}/){0,3}[a-zA-Z0-9_~-]{1,8}",
        ) {
            let key = repo_match_key(&format!("https://{host}/{path}"));
            proptest::prop_assert!(key.is_some());
            for form in [
                format!("http://{host}/{path}.git"),
                format!("git://{host}/{path}/"),
                format!("ssh://git@{host}:22/{path}.git"),
                format!("git@{host}:{path}.git"),
                format!("https://{}/{}", host.to_uppercase(), path.to_uppercase()),
            ] {
                proptest::prop_assert_eq!(&repo_match_key(&form), &key, "{}", form);
            }
        }
    }
}

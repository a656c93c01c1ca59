//! Upstream repository URLs: parsed once at the edge into a value that cannot be dangerous to
//! hand to git (no options, no local paths, no helper transports, no control characters).

use std::fmt;

use secrecy::{ExposeSecret, SecretString};
use url::{Host, Url};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    Http,
    Https,
    Git,
    /// `ssh://` or git's scp-like `user@host:path`.
    Ssh,
}

impl Scheme {
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
            Scheme::Git => "git",
            Scheme::Ssh => "ssh",
        }
    }

    pub fn default_port(self) -> u16 {
        match self {
            Scheme::Http => 80,
            Scheme::Https => 443,
            Scheme::Git => 9418,
            Scheme::Ssh => 22,
        }
    }
}

/// Why a URL was refused before any connection was tried.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    #[error("the URL is empty: give the address of a Git repository, such as https://example.org/group/project.git")]
    Empty,
    #[error("the URL contains a control character (such as a line break or tab); remove it")]
    ControlCharacter,
    #[error("the URL must not start with '-'")]
    LeadingDash,
    #[error("the {scheme:?} scheme is not supported: use an http://, https://, git:// or ssh:// URL (or user@host:path)")]
    UnsupportedScheme { scheme: String },
    #[error("local paths and file:// URLs are not accepted: give the address of a Git server (http://, https://, git:// or ssh://)")]
    LocalPath,
    #[error("an SSH URL takes no password: create a deploy key (POST /api/v1/ssh-keys) or upload a private key instead")]
    SshPassword,
    #[error("the SSH user name {0:?} is not valid: use letters, digits, '.', '_' and '-', not starting with '-'")]
    SshUser(String),
    #[error("the host must not start with '-'")]
    HostDash,
    #[error("the SSH repository path may hold only letters, digits and . _ ~ / + @ = , - (and must not start with '-')")]
    SshPath,
    #[error("the URL is not valid ({reason}); write it as scheme://host/path, such as https://example.org/group/project.git")]
    Malformed { reason: String },
    #[error("the URL has no host")]
    NoHost,
    #[error("the URL names no repository: add the repository's path after the host")]
    NoPath,
    #[error("the URL must not contain a query (?...) or fragment (#...)")]
    QueryOrFragment,
    #[error("the URL's path must not contain '..' segments")]
    DotSegment,
    #[error("the credentials in the URL are not valid text")]
    BadCredentials,
}

/// A username and a token or password for an upstream. The secret never shows in `Debug`.
#[derive(Clone)]
pub struct Credentials {
    pub username: String,
    pub secret: SecretString,
}

impl Credentials {
    /// Builds credentials from what a user typed. Usernames default to what forges accept
    /// with a bare token. Control characters are refused: they could inject into git's
    /// credential protocol.
    pub fn new(username: Option<&str>, secret: &str) -> Result<Self, UrlError> {
        let username = username.filter(|u| !u.is_empty()).unwrap_or("git");
        if username.chars().chain(secret.chars()).any(char::is_control) || username.contains(':') {
            return Err(UrlError::BadCredentials);
        }
        Ok(Self {
            username: username.to_owned(),
            secret: SecretString::from(secret.to_owned()),
        })
    }

    pub fn expose_secret(&self) -> &str {
        self.secret.expose_secret()
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("secret", &"[redacted]")
            .finish()
    }
}

/// A validated upstream repository address without credentials. Its `Display` is the
/// normalised form (lowercase scheme and host, no default port) and is safe to log and store.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UpstreamUrl {
    scheme: Scheme,
    /// The SSH login (`git` in `git@host:path`); never set for other schemes.
    user: Option<String>,
    /// Written in git's scp-like form (`user@host:path`), whose path is relative to the
    /// login's home unless it starts with '/': kept in that form, since `ssh://` would change
    /// what it names.
    scp: bool,
    /// Lowercase domain, dotted IPv4, or IPv6 without brackets.
    host: String,
    port: Option<u16>,
    /// Starts with '/', percent-encoded as in the URL (scp-like: as written, maybe relative).
    path: String,
}

impl UpstreamUrl {
    /// Parses what a user typed. Credentials written into the URL (`https://user:token@host/…`)
    /// are taken out and returned separately, so they are never stored inside the URL.
    pub fn parse(input: &str) -> Result<(Self, Option<Credentials>), UrlError> {
        if input.chars().any(char::is_control) {
            return Err(UrlError::ControlCharacter);
        }
        let input = input.trim();
        if input.is_empty() {
            return Err(UrlError::Empty);
        }
        if input.starts_with('-') {
            return Err(UrlError::LeadingDash);
        }
        if input.starts_with('/')
            || input.starts_with('.')
            || input.starts_with('~')
            || input.contains('\\')
        {
            return Err(UrlError::LocalPath);
        }
        let Some((scheme_text, _)) = input.split_once("://") else {
            let after_user = input.split_once('@').map_or(input, |(_, rest)| rest);
            if after_user.starts_with('[') {
                // `user@[v6]:path`: the brackets hold the colons.
                return parse_scp(input).map(|url| (url, None));
            }
            if input.contains("::") {
                // git's `<transport>::<address>` helper syntax, e.g. ext::sh -c ...
                let scheme = input.split("::").next().unwrap_or_default().to_owned();
                return Err(UrlError::UnsupportedScheme { scheme });
            }
            if looks_like_scp(input) {
                return parse_scp(input).map(|url| (url, None));
            }
            return Err(UrlError::Malformed {
                reason: "it has no scheme://".into(),
            });
        };
        let scheme = match scheme_text.to_ascii_lowercase().as_str() {
            "http" => Scheme::Http,
            "https" => Scheme::Https,
            "git" => Scheme::Git,
            "ssh" | "git+ssh" | "ssh+git" => Scheme::Ssh,
            "file" => return Err(UrlError::LocalPath),
            other => {
                return Err(UrlError::UnsupportedScheme {
                    scheme: other.to_owned(),
                })
            }
        };
        // Checked on the raw text: the parser would silently resolve them away.
        let raw_path = input[scheme_text.len() + 3..]
            .split_once('/')
            .map_or("", |(_, p)| p);
        if raw_path.split('/').any(is_dot_segment) {
            return Err(UrlError::DotSegment);
        }
        let url = Url::parse(input).map_err(|e| UrlError::Malformed {
            reason: e.to_string(),
        })?;
        if url.query().is_some() || url.fragment().is_some() {
            return Err(UrlError::QueryOrFragment);
        }
        // git:// is not a "special" scheme for the URL standard, so its host is not normalised
        // by the parser; normalise it the same way as http's (this also turns odd IPv4 forms
        // such as 0x7f.1 into dotted quads).
        let host = match url.host() {
            None => return Err(UrlError::NoHost),
            Some(Host::Domain(d)) => match Host::parse(d).map_err(|e| UrlError::Malformed {
                reason: e.to_string(),
            })? {
                Host::Domain(d) => d.to_ascii_lowercase(),
                Host::Ipv4(ip) => ip.to_string(),
                Host::Ipv6(ip) => ip.to_string(),
            },
            Some(Host::Ipv4(ip)) => ip.to_string(),
            Some(Host::Ipv6(ip)) => ip.to_string(),
        };
        if host.is_empty() {
            return Err(UrlError::NoHost);
        }
        if host.starts_with('-') {
            return Err(UrlError::HostDash);
        }
        let port = url.port().filter(|p| *p != scheme.default_port());
        let path = url.path().to_owned();
        if path.trim_matches('/').is_empty() {
            return Err(UrlError::NoPath);
        }
        if scheme == Scheme::Ssh {
            if url.password().is_some() {
                return Err(UrlError::SshPassword);
            }
            let user = match url.username() {
                "" => None,
                u => Some(ssh_user(&decode(u)?)?),
            };
            check_ssh_path(&path)?;
            return Ok((
                Self {
                    scheme,
                    user,
                    scp: false,
                    host,
                    port,
                    path,
                },
                None,
            ));
        }
        let credentials = if url.username().is_empty() && url.password().is_none() {
            None
        } else {
            let user = decode(url.username())?;
            let secret = decode(url.password().unwrap_or_default())?;
            Some(Credentials::new(Some(&user), &secret)?)
        };
        Ok((
            Self {
                scheme,
                user: None,
                scp: false,
                host,
                port,
                path,
            },
            credentials,
        ))
    }

    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    /// The host as written (lowercase), IPv6 without brackets.
    pub fn host(&self) -> &str {
        &self.host
    }

    pub fn port(&self) -> u16 {
        self.port.unwrap_or(self.scheme.default_port())
    }

    pub fn path(&self) -> &str {
        &self.path
    }

    /// The SSH login, if the URL names one.
    pub fn user(&self) -> Option<&str> {
        self.user.as_deref()
    }

    /// The host as ssh's known_hosts names it: `host`, or `[host]:port` off port 22.
    pub fn known_hosts_name(&self) -> String {
        match self.port {
            Some(p) => format!("[{}]:{p}", self.host),
            None => self.host.clone(),
        }
    }

    /// `host` or `host:port` as it appears in the URL (IPv6 bracketed).
    pub fn authority(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        match self.port {
            Some(p) => format!("{host}:{p}"),
            None => host,
        }
    }

    /// The same URL with its host replaced by an address (used to pin a checked address).
    pub fn with_host(&self, host: &str) -> Self {
        Self {
            host: host.to_owned(),
            ..self.clone()
        }
    }
}

impl fmt::Display for UpstreamUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let user = self
            .user
            .as_deref()
            .map(|u| format!("{u}@"))
            .unwrap_or_default();
        if self.scp {
            let host = if self.host.contains(':') {
                format!("[{}]", self.host)
            } else {
                self.host.clone()
            };
            return write!(f, "{user}{host}:{}", self.path);
        }
        if self.scheme == Scheme::Ssh {
            return write!(f, "ssh://{user}{}{}", self.authority(), self.path);
        }
        write!(
            f,
            "{}://{}{}",
            self.scheme.as_str(),
            self.authority(),
            self.path
        )
    }
}

fn is_dot_segment(seg: &str) -> bool {
    let lower = seg.to_ascii_lowercase().replace("%2e", ".");
    lower == "." || lower == ".."
}

fn decode(s: &str) -> Result<String, UrlError> {
    percent_decode(s).ok_or(UrlError::BadCredentials)
}

/// Userinfo is percent-encoded, where '+' is a literal plus (unlike form encoding).
fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// An SSH login as git passes it to ssh: nothing ssh could take for an option.
fn ssh_user(user: &str) -> Result<String, UrlError> {
    let ok = !user.is_empty()
        && !user.starts_with('-')
        && user.len() <= 64
        && user
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(user.to_owned())
    } else {
        Err(UrlError::SshUser(user.to_owned()))
    }
}

/// The path git asks the SSH server's `git-upload-pack` for: a narrow character set, so what
/// the server's shell gets is exactly what was written.
fn check_ssh_path(path: &str) -> Result<(), UrlError> {
    if path.trim_matches('/').is_empty() {
        return Err(UrlError::NoPath);
    }
    if path.starts_with('-') {
        return Err(UrlError::SshPath);
    }
    if path.split('/').any(is_dot_segment) {
        return Err(UrlError::DotSegment);
    }
    let ok = path.bytes().all(|b| {
        b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'.' | b'_' | b'~' | b'/' | b'+' | b'@' | b'=' | b',' | b'-'
            )
    });
    if ok {
        Ok(())
    } else {
        Err(UrlError::SshPath)
    }
}

/// git's scp-like form: `[user@]host:path`, `[user@][v6]:path`. No port can be written in it.
fn parse_scp(input: &str) -> Result<UpstreamUrl, UrlError> {
    let (user, rest) = match input.split_once('@') {
        Some((user, rest)) if !user.contains(':') && !user.contains('/') => {
            (Some(ssh_user(user)?), rest)
        }
        _ => (None, input),
    };
    let (host_text, path) = if let Some(v6) = rest.strip_prefix('[') {
        let (host, after) = v6.split_once(']').ok_or_else(|| UrlError::Malformed {
            reason: "an unclosed '[' in the host".into(),
        })?;
        let path = after.strip_prefix(':').ok_or_else(|| UrlError::Malformed {
            reason: "no ':' after the host".into(),
        })?;
        (format!("[{host}]"), path)
    } else {
        let (host, path) = rest.split_once(':').ok_or(UrlError::NoPath)?;
        (host.to_owned(), path)
    };
    if host_text.is_empty() {
        return Err(UrlError::NoHost);
    }
    if host_text.starts_with('-') {
        return Err(UrlError::HostDash);
    }
    let host = match Host::parse(&host_text).map_err(|e| UrlError::Malformed {
        reason: e.to_string(),
    })? {
        Host::Domain(d) => d.to_ascii_lowercase(),
        Host::Ipv4(ip) => ip.to_string(),
        Host::Ipv6(ip) => ip.to_string(),
    };
    if host.is_empty() {
        return Err(UrlError::NoHost);
    }
    if host.starts_with('-') {
        return Err(UrlError::HostDash);
    }
    check_ssh_path(path)?;
    Ok(UpstreamUrl {
        scheme: Scheme::Ssh,
        user,
        scp: true,
        host,
        port: None,
        path: path.to_owned(),
    })
}

/// `user@host:path` or `host:path`, git's scp-like SSH syntax.
fn looks_like_scp(s: &str) -> bool {
    match s.split_once(':') {
        Some((host, path)) => !host.is_empty() && !host.contains('/') && !path.starts_with("//"),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str) -> UpstreamUrl {
        UpstreamUrl::parse(s)
            .unwrap_or_else(|e| panic!("{s}: {e}"))
            .0
    }

    fn err(s: &str) -> UrlError {
        UpstreamUrl::parse(s)
            .err()
            .unwrap_or_else(|| panic!("{s} should be refused"))
    }

    #[test]
    fn normalises_accepted_urls() {
        let table = [
            (
                "https://GitHub.com/rust-lang/rust.git",
                "https://github.com/rust-lang/rust.git",
            ),
            ("HTTP://example.org:80/a/b", "http://example.org/a/b"),
            ("https://example.org:8443/a", "https://example.org:8443/a"),
            ("git://Example.org:9418/x.git", "git://example.org/x.git"),
            (
                "git://example.org:1234/x.git",
                "git://example.org:1234/x.git",
            ),
            ("http://0x7f.1/x", "http://127.0.0.1/x"),
            ("git://0x7f.1/x", "git://127.0.0.1/x"),
            ("http://[::1]:8080/r", "http://[::1]:8080/r"),
            ("  https://example.org/a  ", "https://example.org/a"),
        ];
        for (input, want) in table {
            assert_eq!(ok(input).to_string(), want, "{input}");
        }
    }

    #[test]
    fn refuses_dangerous_and_malformed_urls() {
        assert_eq!(err(""), UrlError::Empty);
        assert_eq!(err("-uhttps://x/y"), UrlError::LeadingDash);
        assert_eq!(err("https://x/y\n"), UrlError::ControlCharacter);
        assert_eq!(err("https://x/y\r\nHost: z"), UrlError::ControlCharacter);
        assert_eq!(err("https://x/\ty"), UrlError::ControlCharacter);
        assert_eq!(err("file:///etc/passwd"), UrlError::LocalPath);
        assert_eq!(err("/srv/git/repo.git"), UrlError::LocalPath);
        assert_eq!(err("../repo"), UrlError::LocalPath);
        assert!(matches!(
            err("ext::sh -c touch% /tmp/pwned"),
            UrlError::UnsupportedScheme { .. }
        ));
        assert!(matches!(
            err("fd::17/foo"),
            UrlError::UnsupportedScheme { .. }
        ));
        assert!(matches!(
            err("ftp://x/y"),
            UrlError::UnsupportedScheme { .. }
        ));
        assert_eq!(
            err("ssh://git:pw@github.com/a/b.git"),
            UrlError::SshPassword
        );
        assert_eq!(err("https://example.org"), UrlError::NoPath);
        assert_eq!(err("https://example.org/"), UrlError::NoPath);
        assert_eq!(err("https://example.org/a?x=1"), UrlError::QueryOrFragment);
        assert_eq!(err("https://example.org/a#frag"), UrlError::QueryOrFragment);
        assert_eq!(err("git://example.org/a/../b"), UrlError::DotSegment);
        assert_eq!(err("git://example.org/a/%2e%2e/b"), UrlError::DotSegment);
        assert!(matches!(err("not a url"), UrlError::Malformed { .. }));
    }

    #[test]
    fn accepts_ssh_in_both_forms() {
        let table = [
            (
                "ssh://git@GitHub.com/a/b.git",
                "ssh://git@github.com/a/b.git",
            ),
            (
                "ssh://git@github.com:22/a/b.git",
                "ssh://git@github.com/a/b.git",
            ),
            (
                "git+ssh://git@bb.local:7999/~me/r.git",
                "ssh://git@bb.local:7999/~me/r.git",
            ),
            (
                "ssh://gerrit.example.org:29418/project",
                "ssh://gerrit.example.org:29418/project",
            ),
            ("git@github.com:a/b.git", "git@github.com:a/b.git"),
            ("Git.Example.org:srv/r.git", "git.example.org:srv/r.git"),
            (
                "deploy@[2001:db8::1]:/srv/r.git",
                "deploy@[2001:db8::1]:/srv/r.git",
            ),
            ("ssh://u@[::1]:2222/r", "ssh://u@[::1]:2222/r"),
        ];
        for (input, want) in table {
            let url = ok(input);
            assert_eq!(url.scheme(), Scheme::Ssh, "{input}");
            assert_eq!(url.to_string(), want, "{input}");
            assert_eq!(ok(want), url, "{want} parses to itself");
        }
        let url = ok("ssh://git@bb.local:7999/x/r.git");
        assert_eq!((url.user(), url.port()), (Some("git"), 7999));
        assert_eq!(url.known_hosts_name(), "[bb.local]:7999");
        assert_eq!(ok("git@h.org:r").known_hosts_name(), "h.org");
        let pinned = ok("git@h.org:r").with_host("192.0.2.7");
        assert_eq!(pinned.to_string(), "git@192.0.2.7:r");
    }

    #[test]
    fn refuses_ssh_option_injection() {
        for bad in [
            "ssh://-oProxyCommand=touch%20x/a/b",
            "-oProxyCommand=x@host:path",
            "ssh://-l@host/a",
        ] {
            let e = UpstreamUrl::parse(bad).unwrap_err();
            assert!(
                matches!(
                    e,
                    UrlError::HostDash
                        | UrlError::LeadingDash
                        | UrlError::SshUser(_)
                        | UrlError::Malformed { .. }
                ),
                "{bad}: {e:?}"
            );
        }
        assert!(matches!(err("-x@host:path"), UrlError::LeadingDash));
        assert!(matches!(
            err("git@-oProxyCommand=sh:path"),
            UrlError::HostDash
        ));
        assert!(matches!(
            err("ssh://git@-host/a"),
            UrlError::HostDash | UrlError::Malformed { .. }
        ));
        assert!(matches!(
            err("git@host:-upload-pack=touch"),
            UrlError::SshPath
        ));
        assert!(matches!(err("git@host:a b"), UrlError::SshPath));
        assert!(matches!(err("ssh://git@host/a%20b"), UrlError::SshPath));
        assert!(matches!(err("git@host:a;rm"), UrlError::SshPath));
        assert!(matches!(err("git@host:a/$(id)"), UrlError::SshPath));
        assert!(matches!(err("a%20b@host:r"), UrlError::SshUser(_)));
        assert_eq!(err("git@host:a/../b"), UrlError::DotSegment);
        assert_eq!(err("git@host:\tx"), UrlError::ControlCharacter);
        assert_eq!(err("git@host:r\n"), UrlError::ControlCharacter);
        assert_eq!(err("git@host:"), UrlError::NoPath);
    }

    #[test]
    fn takes_credentials_out_of_the_url() {
        let (url, creds) =
            UpstreamUrl::parse("https://alice:s%40cret+1@example.org/a.git").unwrap();
        assert_eq!(url.to_string(), "https://example.org/a.git");
        let creds = creds.unwrap();
        assert_eq!(creds.username, "alice");
        assert_eq!(creds.expose_secret(), "s@cret+1");
        assert!(!format!("{creds:?}").contains("s@cret"), "{creds:?}");
        let (_, token_only) = UpstreamUrl::parse("https://ghp_abc@example.org/a.git").unwrap();
        assert_eq!(token_only.unwrap().username, "ghp_abc");
    }

    proptest::proptest! {
        #[test]
        fn parse_never_panics(s in "\\PC{0,80}") {
            let _ = UpstreamUrl::parse(&s);
        }

        #[test]
        fn accepted_ssh_urls_give_ssh_no_option(s in "(ssh://)?[a-zA-Z0-9.@:%\\[\\] -]{0,20}[:/][a-zA-Z0-9./%_ ;$-]{0,20}") {
            if let Ok((url, creds)) = UpstreamUrl::parse(&s) {
                proptest::prop_assert!(creds.is_none() || url.scheme() != Scheme::Ssh);
                if url.scheme() == Scheme::Ssh {
                    proptest::prop_assert!(!url.host().starts_with('-'));
                    proptest::prop_assert!(!url.user().unwrap_or_default().starts_with('-'));
                    proptest::prop_assert!(!url.path().starts_with('-'));
                    proptest::prop_assert!(!url.to_string().contains(' '));
                    let again = UpstreamUrl::parse(&url.to_string()).unwrap().0;
                    proptest::prop_assert_eq!(again, url);
                }
            }
        }

        #[test]
        fn accepted_urls_are_safe_for_git(s in "(https?|git|HTTP|Git)://[a-zA-Z0-9.:@%\\[\\]-]{0,30}/[a-zA-Z0-9./%_-]{0,30}") {
            if let Ok((url, _)) = UpstreamUrl::parse(&s) {
                let text = url.to_string();
                proptest::prop_assert!(!text.starts_with('-'));
                proptest::prop_assert!(!text.chars().any(char::is_control));
                proptest::prop_assert!(url.scheme() == Scheme::Ssh || !text.contains('@'), "credentials left in {}", text);
                proptest::prop_assert!(!url.path().split('/').any(|s| s == ".."));
                // Normalisation is idempotent: the normalised form parses to itself.
                let again = UpstreamUrl::parse(&text).unwrap().0;
                proptest::prop_assert_eq!(again, url);
            }
        }
    }
}

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
}

impl Scheme {
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
            Scheme::Git => "git",
        }
    }

    pub fn default_port(self) -> u16 {
        match self {
            Scheme::Http => 80,
            Scheme::Https => 443,
            Scheme::Git => 9418,
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
    #[error("the {scheme:?} scheme is not supported: use an http://, https:// or git:// URL")]
    UnsupportedScheme { scheme: String },
    #[error("local paths and file:// URLs are not accepted: give the address of a Git server (http://, https:// or git://)")]
    LocalPath,
    #[error("SSH and scp-style addresses (user@host:path) are not supported yet: use the server's https:// URL")]
    Ssh,
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
    /// Lowercase domain, dotted IPv4, or IPv6 without brackets.
    host: String,
    port: Option<u16>,
    /// Starts with '/', percent-encoded as in the URL.
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
            if input.contains("::") {
                // git's `<transport>::<address>` helper syntax, e.g. ext::sh -c ...
                let scheme = input.split("::").next().unwrap_or_default().to_owned();
                return Err(UrlError::UnsupportedScheme { scheme });
            }
            if looks_like_scp(input) {
                return Err(UrlError::Ssh);
            }
            return Err(UrlError::Malformed {
                reason: "it has no scheme://".into(),
            });
        };
        let scheme = match scheme_text.to_ascii_lowercase().as_str() {
            "http" => Scheme::Http,
            "https" => Scheme::Https,
            "git" => Scheme::Git,
            "file" => return Err(UrlError::LocalPath),
            "ssh" | "git+ssh" | "ssh+git" => return Err(UrlError::Ssh),
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
        let port = url.port().filter(|p| *p != scheme.default_port());
        let path = url.path().to_owned();
        if path.trim_matches('/').is_empty() {
            return Err(UrlError::NoPath);
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
        assert_eq!(err("git@github.com:a/b.git"), UrlError::Ssh);
        assert_eq!(err("ssh://git@github.com/a/b.git"), UrlError::Ssh);
        assert_eq!(err("https://example.org"), UrlError::NoPath);
        assert_eq!(err("https://example.org/"), UrlError::NoPath);
        assert_eq!(err("https://example.org/a?x=1"), UrlError::QueryOrFragment);
        assert_eq!(err("https://example.org/a#frag"), UrlError::QueryOrFragment);
        assert_eq!(err("git://example.org/a/../b"), UrlError::DotSegment);
        assert_eq!(err("git://example.org/a/%2e%2e/b"), UrlError::DotSegment);
        assert!(matches!(err("not a url"), UrlError::Malformed { .. }));
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
        fn accepted_urls_are_safe_for_git(s in "(https?|git|HTTP|Git)://[a-zA-Z0-9.:@%\\[\\]-]{0,30}/[a-zA-Z0-9./%_-]{0,30}") {
            if let Ok((url, _)) = UpstreamUrl::parse(&s) {
                let text = url.to_string();
                proptest::prop_assert!(!text.starts_with('-'));
                proptest::prop_assert!(!text.chars().any(char::is_control));
                proptest::prop_assert!(!text.contains('@'), "credentials left in {}", text);
                proptest::prop_assert!(!url.path().split('/').any(|s| s == ".."));
                // Normalisation is idempotent: the normalised form parses to itself.
                let again = UpstreamUrl::parse(&text).unwrap().0;
                proptest::prop_assert_eq!(again, url);
            }
        }
    }
}

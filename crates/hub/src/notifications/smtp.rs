//! Notification e-mail through the operator's SMTP server (`MIRRORHUB_SMTP_URL`,
//! `MIRRORHUB_SMTP_FROM`), with lettre over tokio and rustls.
//!
//! The hub resolves the server's name itself, checks the address against the address policy
//! and hands lettre that checked address, keeping the name for the TLS certificate check: the
//! SMTP connection obeys the policy like every other connection of the hub.

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use lettre::message::{header::ContentType, Mailbox};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::{Address, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use secrecy::{ExposeSecret, SecretString};

/// How the connection to the SMTP server is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    /// `smtp://` (port 587 by default): STARTTLS, required; a server that does not offer it
    /// is refused.
    StartTls,
    /// `smtps://` (port 465 by default): TLS from the first byte.
    Implicit,
    /// `smtp://…?tls=none`: no encryption at all. Only for a relay on the same machine or a
    /// trusted local network (tests use it); never across the internet.
    None,
}

/// The SMTP server and sender, parsed from the settings once at start.
#[derive(Clone)]
pub struct SmtpConfig {
    host: String,
    port: u16,
    tls: SmtpTls,
    username: Option<String>,
    password: Option<SecretString>,
    /// The EHLO name: the URL's path if it has one (as lettre reads it), else set by the hub.
    hello: Option<String>,
    from: Mailbox,
}

/// Never shows the password.
impl fmt::Debug for SmtpConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SmtpConfig")
            .field("server", &self.describe())
            .field("from", &self.from.to_string())
            .finish()
    }
}

impl SmtpConfig {
    /// Parses `MIRRORHUB_SMTP_URL` (`smtp://user:pass@host:587`, `smtps://user:pass@host:465`,
    /// `smtp://127.0.0.1:2525?tls=none`) and `MIRRORHUB_SMTP_FROM` (`mirrorhub
    /// <hub@example.org>` or a bare address). The error never repeats the URL (it may hold a
    /// password).
    pub fn parse(url: &SecretString, from: &str) -> Result<Self, String> {
        let parsed = url::Url::parse(url.expose_secret().trim()).map_err(|e| {
            format!("MIRRORHUB_SMTP_URL is not a URL ({e}): use smtp://user:password@host:587 or smtps://user:password@host:465")
        })?;
        let tls_param: Vec<String> = parsed
            .query_pairs()
            .filter(|(k, _)| k == "tls")
            .map(|(_, v)| v.into_owned())
            .collect();
        if parsed.query_pairs().any(|(k, _)| k != "tls") {
            return Err("MIRRORHUB_SMTP_URL takes no query parameter but tls=none".into());
        }
        let (tls, default_port) = match (parsed.scheme(), tls_param.as_slice()) {
            ("smtp", []) => (SmtpTls::StartTls, 587),
            ("smtp", [v]) if v == "required" || v == "starttls" => (SmtpTls::StartTls, 587),
            ("smtp", [v]) if v == "none" => (SmtpTls::None, 25),
            ("smtps", []) => (SmtpTls::Implicit, 465),
            ("smtp" | "smtps", _) => {
                return Err("MIRRORHUB_SMTP_URL: tls= takes `none` (plain, for a local relay only) or `required` (the default of smtp://)".into())
            }
            (other, _) => {
                return Err(format!(
                    "MIRRORHUB_SMTP_URL has the scheme {other:?}: use smtp:// (STARTTLS) or smtps:// (implicit TLS)"
                ))
            }
        };
        let host = parsed
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or("MIRRORHUB_SMTP_URL names no host")?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let decode = |s: &str| {
            percent_decode(s).ok_or("MIRRORHUB_SMTP_URL: the user or password is not valid UTF-8")
        };
        let username = match parsed.username() {
            "" => None,
            u => Some(decode(u)?),
        };
        let password = parsed
            .password()
            .map(decode)
            .transpose()?
            .map(SecretString::from);
        if password.is_some() && username.is_none() {
            return Err("MIRRORHUB_SMTP_URL has a password but no user".into());
        }
        let hello = Some(parsed.path().trim_matches('/'))
            .filter(|p| !p.is_empty())
            .map(str::to_owned);
        let from = parse_mailbox(from).map_err(|e| format!("MIRRORHUB_SMTP_FROM: {e}"))?;
        Ok(Self {
            port: parsed.port().unwrap_or(default_port),
            host,
            tls,
            username,
            password,
            hello,
            from,
        })
    }

    /// `smtps://user:***@host:465`, for logs.
    pub fn describe(&self) -> String {
        let scheme = match self.tls {
            SmtpTls::Implicit => "smtps",
            _ => "smtp",
        };
        let login = match (&self.username, &self.password) {
            (Some(u), Some(_)) => format!("{u}:***@"),
            (Some(u), None) => format!("{u}@"),
            _ => String::new(),
        };
        let plain = if self.tls == SmtpTls::None {
            "?tls=none"
        } else {
            ""
        };
        format!("{scheme}://{login}{}:{}{plain}", self.host, self.port)
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Uses `name` for EHLO unless the URL named one.
    pub fn with_default_hello(mut self, name: Option<String>) -> Self {
        if self.hello.is_none() {
            self.hello = name;
        }
        self
    }

    /// Sends one plain-text message to `to` through the server at `addr` (the checked address
    /// of [`host`](Self::host)). Returns the server's reply code; an error is a short
    /// sentence without secrets, with the reply code when the server gave one.
    pub(crate) async fn send(
        &self,
        addr: SocketAddr,
        to: &[String],
        subject: &str,
        body: String,
        timeout: Duration,
    ) -> Result<i32, (Option<i32>, String)> {
        let mut builder = Message::builder()
            .from(self.from.clone())
            .subject(subject)
            .header(ContentType::TEXT_PLAIN);
        for address in to {
            let address: Address = address
                .parse()
                .map_err(|e| (None, format!("the recipient {address:?} is not valid: {e}")))?;
            builder = builder.to(Mailbox::new(None, address));
        }
        let message = builder
            .body(body)
            .map_err(|e| (None, format!("the message could not be built: {e}")))?;
        let tls = match self.tls {
            SmtpTls::None => Tls::None,
            SmtpTls::StartTls | SmtpTls::Implicit => {
                let params = TlsParameters::new(self.host.clone())
                    .map_err(|e| (None, format!("TLS could not be set up: {e}")))?;
                if self.tls == SmtpTls::Implicit {
                    Tls::Wrapper(params)
                } else {
                    Tls::Required(params)
                }
            }
        };
        let mut transport =
            AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(addr.ip().to_string())
                .port(addr.port())
                .tls(tls)
                .timeout(Some(timeout));
        if let Some(name) = &self.hello {
            transport = transport.hello_name(match name.parse::<std::net::IpAddr>() {
                Ok(std::net::IpAddr::V4(ip)) => ClientId::Ipv4(ip),
                Ok(std::net::IpAddr::V6(ip)) => ClientId::Ipv6(ip),
                Err(_) => ClientId::Domain(name.clone()),
            });
        }
        if let (Some(user), Some(password)) = (&self.username, &self.password) {
            transport = transport.credentials(Credentials::new(
                user.clone(),
                password.expose_secret().to_owned(),
            ));
        }
        let mailer: AsyncSmtpTransport<Tokio1Executor> = transport.build();
        match tokio::time::timeout(timeout, mailer.send(message)).await {
            Ok(Ok(response)) => Ok(reply_code(&response.code())),
            Ok(Err(e)) => {
                let code = e.status().map(|c| reply_code(&c));
                Err((code, describe_error(&e)))
            }
            Err(_) => Err((
                None,
                format!(
                    "timeout: the SMTP server did not finish within {}s",
                    timeout.as_secs()
                ),
            )),
        }
    }
}

fn reply_code(code: &lettre::transport::smtp::response::Code) -> i32 {
    code.to_string().parse().unwrap_or(0)
}

/// lettre's error in a sentence; its text names no credential (lettre never prints them).
fn describe_error(e: &lettre::transport::smtp::Error) -> String {
    let kind = if e.is_permanent() {
        "the SMTP server refused the message"
    } else if e.is_transient() {
        "the SMTP server deferred the message"
    } else if e.is_tls() {
        "TLS with the SMTP server failed"
    } else if e.is_timeout() {
        "timeout talking to the SMTP server"
    } else {
        "the SMTP conversation failed"
    };
    let mut text = format!("{kind}: {e}");
    text.truncate(300);
    text
}

/// `Name <a@b>` or `a@b`.
fn parse_mailbox(text: &str) -> Result<Mailbox, String> {
    text.trim().parse::<Mailbox>().map_err(|e| {
        format!(
            "{:?} is not an address such as `mirrorhub <hub@example.org>` ({e})",
            text.trim()
        )
    })
}

/// Checks one recipient address as the hub accepts them: a bare `local@domain`, no name.
pub(crate) fn check_address(text: &str) -> Result<String, String> {
    let text = text.trim();
    if text.is_empty() || text.contains(',') || text.contains('<') {
        return Err(format!(
            "{text:?} is not a bare e-mail address such as ops@example.org"
        ));
    }
    text.parse::<Address>()
        .map(|a| a.to_string())
        .map_err(|e| format!("{text:?} is not an e-mail address ({e})"))
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(url: &str) -> Result<SmtpConfig, String> {
        SmtpConfig::parse(
            &SecretString::from(url.to_owned()),
            "mirrorhub <hub@example.org>",
        )
    }

    #[test]
    fn the_url_forms() {
        let c = parse("smtp://ops:s%40cret@mail.example.org").unwrap();
        assert_eq!(
            (c.host(), c.port(), c.tls),
            ("mail.example.org", 587, SmtpTls::StartTls)
        );
        assert_eq!(c.password.as_ref().unwrap().expose_secret(), "s@cret");
        let c = parse("smtps://ops:pw@mail.example.org").unwrap();
        assert_eq!((c.port(), c.tls), (465, SmtpTls::Implicit));
        let c = parse("smtp://127.0.0.1:2525?tls=none").unwrap();
        assert_eq!((c.port(), c.tls), (2525, SmtpTls::None));
        assert!(c.username.is_none());
        let c = parse("smtp://mail.example.org:25/hub.example.org?tls=required").unwrap();
        assert_eq!(c.hello.as_deref(), Some("hub.example.org"));
        assert_eq!(c.tls, SmtpTls::StartTls);
    }

    #[test]
    fn bad_urls_are_refused_without_repeating_them() {
        for bad in [
            "http://ops:topsecret@mail.example.org",
            "smtp://ops:topsecret@mail.example.org?tls=maybe",
            "smtps://ops:topsecret@mail.example.org?tls=none",
            "smtp://:topsecret@mail.example.org",
            "smtp://ops:topsecret@mail.example.org?x=1",
            "not a url topsecret",
        ] {
            let e = parse(bad).unwrap_err();
            assert!(!e.contains("topsecret"), "{bad}: {e}");
        }
        assert!(SmtpConfig::parse(&SecretString::from("smtp://h".to_owned()), "nobody").is_err());
    }

    #[test]
    fn debug_and_describe_mask_the_password() {
        let c = parse("smtp://ops:topsecret@mail.example.org").unwrap();
        assert_eq!(c.describe(), "smtp://ops:***@mail.example.org:587");
        assert!(!format!("{c:?}").contains("topsecret"));
    }

    #[test]
    fn recipients_are_bare_addresses() {
        assert_eq!(
            check_address(" ops@example.org ").unwrap(),
            "ops@example.org"
        );
        for bad in [
            "",
            "ops",
            "Ops <ops@example.org>",
            "a@b.org,c@d.org",
            "@example.org",
        ] {
            assert!(check_address(bad).is_err(), "{bad}");
        }
    }
}

//! The HTTP side of a listing: one client per page (through the caller's proxy), the forge's
//! auth header, a capped body, what a refusal status means, and the `Link` header.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, ACCEPT, AUTHORIZATION, RETRY_AFTER};
use reqwest::StatusCode;
use secrecy::ExposeSecret;
use url::Url;

use super::{ListingAuth, ListingError, ListingForge, NamespaceQuery, PageCursor};
use crate::error::{self, cause_chain};

/// The most one page's body may take. GitHub's 100 repositories are ~600 KiB.
pub(crate) const MAX_PAGE_BYTES: usize = 8 << 20;

/// A rate limit's wait is kept within these bounds: a forge asking for less gets a second, one
/// asking for more (or a clock far off) an hour, after which the caller asks again.
const MIN_WAIT: Duration = Duration::from_secs(1);
const MAX_WAIT: Duration = Duration::from_secs(3600);
/// A rate limit that says nothing of when it ends.
const DEFAULT_WAIT: Duration = Duration::from_secs(60);

const GITHUB_MEDIA_TYPE: &str = "application/vnd.github+json";
const GITHUB_API_VERSION: &str = "2022-11-28";

/// One forge's API for one page: the client (with the proxy) and the headers every request
/// carries. The auth header goes only to the API's own origin (see [`Api::follow`]).
pub(crate) struct Api<'a> {
    pub query: &'a NamespaceQuery,
    http: reqwest::Client,
    headers: HeaderMap,
}

/// A response read whole (up to [`MAX_PAGE_BYTES`]).
pub(crate) struct Answer {
    pub url: Url,
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl<'a> Api<'a> {
    pub fn new(query: &'a NamespaceQuery, proxy: Option<&str>) -> Result<Api<'a>, ListingError> {
        let forge = query.forge;
        let origin = query.api_url.origin();
        // Redirects stay on the API's origin (a renamed organization answers 301 on GitHub):
        // `PRIVATE-TOKEN` and the like would follow a redirect anywhere, as reqwest strips
        // only `Authorization`.
        let redirects = reqwest::redirect::Policy::custom(move |attempt| {
            if attempt.previous().len() < 5 && attempt.url().origin() == origin {
                attempt.follow()
            } else {
                attempt.stop()
            }
        });
        let mut builder = reqwest::Client::builder()
            .user_agent(crate::USER_AGENT)
            .redirect(redirects);
        builder = match proxy {
            Some(proxy) => builder.proxy(reqwest::Proxy::all(proxy).map_err(|_| {
                ListingError::Unreachable {
                    forge,
                    reason: "the egress proxy address is not a URL".into(),
                }
            })?),
            None => builder.no_proxy(),
        };
        let http = builder.build().map_err(|e| ListingError::Unreachable {
            forge,
            reason: cause_chain(&e.without_url()),
        })?;
        Ok(Api {
            query,
            http,
            headers: headers(query)?,
        })
    }

    pub fn forge(&self) -> ListingForge {
        self.query.forge
    }

    /// The API's URL with `segments` appended (each percent-encoded as one segment), keeping
    /// its own path (`/api/v3`, a relative URL root).
    pub fn endpoint(&self, segments: &[&str]) -> Result<Url, ListingError> {
        let mut url = self.query.api_url.clone();
        url.set_query(None);
        url.set_fragment(None);
        url.path_segments_mut()
            .map_err(|()| self.invalid("the API URL cannot take a path"))?
            .pop_if_empty()
            .extend(segments);
        Ok(url)
    }

    /// The next page's URL from a cursor, refused unless it is on the API's origin: the token
    /// goes nowhere else, whatever a forge's `next` says.
    pub fn follow(&self, cursor: &PageCursor) -> Result<Url, ListingError> {
        let url =
            Url::parse(&cursor.0).map_err(|_| self.invalid("the next page's link is not a URL"))?;
        if !matches!(url.scheme(), "http" | "https")
            || url.origin() != self.query.api_url.origin()
            || !url.username().is_empty()
            || url.password().is_some()
        {
            return Err(self.invalid(&format!(
                "the next page's link leaves the API's origin ({}): not followed",
                url.origin().ascii_serialization()
            )));
        }
        Ok(url)
    }

    /// GETs `url` and reads the body, whatever the status.
    pub async fn get(&self, url: Url) -> Result<Answer, ListingError> {
        let forge = self.forge();
        let mut response = self
            .http
            .get(url.clone())
            .headers(self.headers.clone())
            .send()
            .await
            .map_err(|e| self.unreachable(&e))?;
        let status = response.status();
        let headers = response.headers().clone();
        if response
            .content_length()
            .is_some_and(|len| len > MAX_PAGE_BYTES as u64)
        {
            return Err(too_big(forge));
        }
        let mut body = BytesMut::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| self.unreachable(&e))? {
            if body.len() + chunk.len() > MAX_PAGE_BYTES {
                return Err(too_big(forge));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Answer {
            url: response.url().clone(),
            status,
            headers,
            body: body.freeze(),
        })
    }

    /// `Ok` for a 2xx, else the error its status (and rate-limit headers) mean.
    pub fn check(&self, answer: &Answer) -> Result<(), ListingError> {
        let forge = self.forge();
        let status = answer.status;
        if status.is_success() {
            return Ok(());
        }
        if let Some(retry_after) = rate_limit_wait(status, &answer.headers, SystemTime::now()) {
            return Err(ListingError::RateLimited { forge, retry_after });
        }
        Err(match status.as_u16() {
            401 => ListingError::Unauthorized { forge },
            403 => ListingError::Forbidden { forge },
            404 | 410 => ListingError::NamespaceNotFound {
                forge,
                namespace: self.query.namespace.clone(),
            },
            status => ListingError::Unexpected { forge, status },
        })
    }

    pub fn invalid(&self, detail: &str) -> ListingError {
        ListingError::InvalidResponse {
            forge: self.forge(),
            detail: detail.to_owned(),
        }
    }

    /// A transport failure: no URL (a cursor's query may say anything), no header, and the
    /// token scrubbed should any cause ever hold it.
    fn unreachable(&self, error: &reqwest::Error) -> ListingError {
        let reason = if error.is_timeout() {
            "timed out".to_owned()
        } else {
            let text = cause_chain(error);
            match error.url() {
                Some(url) => text.replace(url.as_str(), "[address]"),
                None => text,
            }
        };
        ListingError::Unreachable {
            forge: self.forge(),
            reason: scrub(reason, &self.query.auth),
        }
    }
}

/// The headers of every request: the forge's media type and its way of taking the token.
fn headers(query: &NamespaceQuery) -> Result<HeaderMap, ListingError> {
    let forge = query.forge;
    let mut headers = HeaderMap::new();
    let accept = match forge {
        ListingForge::GitHub => GITHUB_MEDIA_TYPE,
        _ => "application/json",
    };
    headers.insert(ACCEPT, HeaderValue::from_static(accept));
    if forge == ListingForge::GitHub {
        headers.insert(
            HeaderName::from_static("x-github-api-version"),
            HeaderValue::from_static(GITHUB_API_VERSION),
        );
    }
    let token = match &query.auth {
        ListingAuth::None => return Ok(headers),
        ListingAuth::Token(token) => token,
        ListingAuth::GitHubInstallation(token) if forge == ListingForge::GitHub => token,
        // An installation token is GitHub's: never sent to another forge.
        ListingAuth::GitHubInstallation(_) => return Err(ListingError::Unauthorized { forge }),
    };
    let secret = token.expose_secret();
    let (name, value) = match forge {
        ListingForge::GitHub => (AUTHORIZATION, format!("Bearer {secret}")),
        ListingForge::Gitea => (AUTHORIZATION, format!("token {secret}")),
        ListingForge::GitLab => (HeaderName::from_static("private-token"), secret.to_owned()),
        // `username:app_password`, else an access token.
        ListingForge::Bitbucket if secret.contains(':') => {
            use base64::Engine as _;
            let basic = base64::engine::general_purpose::STANDARD.encode(secret);
            (AUTHORIZATION, format!("Basic {basic}"))
        }
        ListingForge::Bitbucket => (AUTHORIZATION, format!("Bearer {secret}")),
    };
    // Not a valid header value (a newline, …): no forge would take it.
    let mut value =
        HeaderValue::from_str(&value).map_err(|_| ListingError::Unauthorized { forge })?;
    value.set_sensitive(true);
    headers.insert(name, value);
    Ok(headers)
}

fn too_big(forge: ListingForge) -> ListingError {
    ListingError::InvalidResponse {
        forge,
        detail: format!(
            "a page of the listing is larger than {} MiB",
            MAX_PAGE_BYTES >> 20
        ),
    }
}

/// How long to wait when `status` with `headers` is a rate limit: 429 always; 403 when the
/// limit is spent (`X-RateLimit-Remaining: 0`, GitLab's `RateLimit-Remaining: 0`) or the
/// forge says when to come back (`Retry-After`, GitHub's secondary limits). The wait is
/// `Retry-After` (seconds or an HTTP date), else the reset time (`X-RateLimit-Reset`,
/// `RateLimit-Reset`: epoch seconds) minus `now`, else a minute; within [1 s, 1 h].
pub(crate) fn rate_limit_wait(
    status: StatusCode,
    headers: &HeaderMap,
    now: SystemTime,
) -> Option<Duration> {
    let text = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    let spent = ["x-ratelimit-remaining", "ratelimit-remaining"]
        .iter()
        .any(|name| text(name) == Some("0"));
    let limited = status == StatusCode::TOO_MANY_REQUESTS
        || (status == StatusCode::FORBIDDEN && (spent || headers.contains_key(RETRY_AFTER)));
    if !limited {
        return None;
    }
    let now_secs = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
    let retry_after = text(RETRY_AFTER.as_str()).and_then(|value| match value.parse::<u64>() {
        Ok(seconds) => Some(seconds),
        Err(_) => chrono::DateTime::parse_from_rfc2822(value).ok().map(|at| {
            u64::try_from(at.timestamp())
                .unwrap_or(0)
                .saturating_sub(now_secs)
        }),
    });
    let reset = || {
        ["x-ratelimit-reset", "ratelimit-reset"]
            .iter()
            .find_map(|name| text(name)?.parse::<u64>().ok())
            .map(|at| at.saturating_sub(now_secs))
    };
    let wait = retry_after
        .or_else(reset)
        .map(Duration::from_secs)
        .unwrap_or(DEFAULT_WAIT);
    Some(wait.clamp(MIN_WAIT, MAX_WAIT))
}

/// The `rel="next"` target of the `Link` header (GitLab's keyset answers once spelled it
/// `Links`), resolved against `base`.
pub(crate) fn next_link(headers: &HeaderMap, base: &Url) -> Option<Url> {
    headers
        .get_all("link")
        .iter()
        .chain(headers.get_all("links").iter())
        .filter_map(|value| value.to_str().ok())
        .flat_map(parse_link)
        .find(|(_, rels)| rels.split_ascii_whitespace().any(|r| r == "next"))
        .and_then(|(target, _)| base.join(&target).ok())
}

/// The links of one `Link` header value (RFC 8288): `<target>; rel="a b", <target>; rel=c`, as
/// (target, rel) pairs. Tolerant: a malformed link is skipped.
fn parse_link(value: &str) -> Vec<(String, String)> {
    let mut links = Vec::new();
    let mut rest = value;
    while let Some(open) = rest.find('<') {
        let Some(close) = rest[open..].find('>') else {
            break;
        };
        let target = rest[open + 1..open + close].trim().to_owned();
        rest = &rest[open + close + 1..];
        // The parameters run to the next link: a comma outside quotes.
        let mut quoted = false;
        let end = rest
            .char_indices()
            .find(|&(_, c)| {
                if c == '"' {
                    quoted = !quoted;
                }
                c == ',' && !quoted
            })
            .map_or(rest.len(), |(i, _)| i);
        let params = &rest[..end];
        rest = &rest[end..];
        let rel = params.split(';').find_map(|param| {
            let (name, value) = param.split_once('=')?;
            name.trim()
                .eq_ignore_ascii_case("rel")
                .then(|| value.trim().trim_matches('"').to_ascii_lowercase())
        });
        if let Some(rel) = rel {
            links.push((target, rel));
        }
    }
    links
}

/// The token scrubbed from `text`, should a transport error ever show it.
fn scrub(text: String, auth: &ListingAuth) -> String {
    match auth {
        ListingAuth::None => text,
        ListingAuth::Token(token) | ListingAuth::GitHubInstallation(token) => {
            error::scrub(text, token)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header_map(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn link_headers_give_the_next_page() {
        let base = Url::parse("https://api.github.com/orgs/acme/repos?per_page=100").unwrap();
        let headers = header_map(&[(
            "link",
            r#"<https://api.github.com/organizations/9/repos?per_page=100&page=2>; rel="next", <https://api.github.com/organizations/9/repos?per_page=100&page=5>; rel="last""#,
        )]);
        assert_eq!(
            next_link(&headers, &base).unwrap().as_str(),
            "https://api.github.com/organizations/9/repos?per_page=100&page=2"
        );
        let last_only = header_map(&[("link", r#"<https://x/?page=1>; rel="first""#)]);
        assert_eq!(next_link(&last_only, &base), None);
        // Several rels, unquoted rel, a comma inside a quoted parameter, relative targets.
        let odd = header_map(&[(
            "links",
            r#"</a?p=1>; title="x, y"; rel="prev first", </a?p=3>; rel=next"#,
        )]);
        assert_eq!(
            next_link(&odd, &base).unwrap().as_str(),
            "https://api.github.com/a?p=3"
        );
        assert_eq!(next_link(&header_map(&[("link", "<broken")]), &base), None);
    }

    #[test]
    fn rate_limits_are_told_from_refusals() {
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let wait = |status: u16, pairs: &[(&'static str, &str)]| {
            rate_limit_wait(
                StatusCode::from_u16(status).unwrap(),
                &header_map(pairs),
                now,
            )
        };
        assert_eq!(
            wait(429, &[("retry-after", "7")]),
            Some(Duration::from_secs(7))
        );
        assert_eq!(wait(429, &[]), Some(DEFAULT_WAIT));
        assert_eq!(
            wait(
                403,
                &[
                    ("x-ratelimit-remaining", "0"),
                    ("x-ratelimit-reset", "1700000030")
                ]
            ),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            wait(
                429,
                &[
                    ("ratelimit-remaining", "0"),
                    ("ratelimit-reset", "1700000100")
                ]
            ),
            Some(Duration::from_secs(100))
        );
        // Bounded: a reset in the past is a second, one far ahead an hour.
        assert_eq!(
            wait(429, &[("x-ratelimit-reset", "1600000000")]),
            Some(MIN_WAIT)
        );
        assert_eq!(wait(429, &[("retry-after", "999999")]), Some(MAX_WAIT));
        assert_eq!(
            wait(429, &[("retry-after", "Tue, 14 Nov 2023 22:15:00 GMT")]),
            Some(Duration::from_secs(100))
        );
        // A 403 with the limit not spent is a refusal.
        assert_eq!(wait(403, &[("x-ratelimit-remaining", "42")]), None);
        assert_eq!(wait(403, &[]), None);
        assert_eq!(
            wait(403, &[("retry-after", "5")]),
            Some(Duration::from_secs(5))
        );
        assert_eq!(wait(503, &[("retry-after", "5")]), None);
    }
}

//! Which forge sent a delivery, its delivery id and its event name: all from the headers.

use http::HeaderMap;

use crate::{Endpoint, Forge, WebhookError};

const GITHUB_EVENT: &str = "x-github-event";
const GITLAB_EVENT: &str = "x-gitlab-event";
const GITEA_EVENT: &str = "x-gitea-event";
const FORGEJO_EVENT: &str = "x-forgejo-event";
const FORGEJO_DELIVERY: &str = "x-forgejo-delivery";
const BITBUCKET_EVENT: &str = "x-event-key";

/// Delivery ids longer than this are refused (they are stored for replay detection).
const MAX_DELIVERY_ID: usize = 200;

/// Tells the forge from the headers, within what `endpoint` accepts.
///
/// Order matters for [`Endpoint::Repository`]: Gitea and Forgejo also send `X-GitHub-Event`
/// (and Forgejo also `X-Gitea-Event`) for compatibility, so the most specific header wins.
/// Bitbucket Cloud and Server share `X-Event-Key`; see [`bitbucket`].
pub fn detect(endpoint: Endpoint, headers: &HeaderMap) -> Result<Forge, WebhookError> {
    let has = |name: &str| headers.contains_key(name);
    let forgejo = has(FORGEJO_EVENT) || has(FORGEJO_DELIVERY);
    let refused = |expected| Err(WebhookError::UnknownForge { expected });
    match endpoint {
        Endpoint::GitHub if has(GITHUB_EVENT) => Ok(Forge::GitHub),
        Endpoint::GitHub => refused("GitHub (X-GitHub-Event)"),
        Endpoint::GitLab if has(GITLAB_EVENT) => Ok(Forge::GitLab),
        Endpoint::GitLab => refused("GitLab (X-Gitlab-Event)"),
        Endpoint::Gitea if forgejo => Ok(Forge::Forgejo),
        Endpoint::Gitea if has(GITEA_EVENT) => Ok(Forge::Gitea),
        Endpoint::Gitea => refused("Gitea or Forgejo (X-Gitea-Event or X-Forgejo-Event)"),
        Endpoint::Bitbucket => bitbucket(headers).ok_or(WebhookError::UnknownForge {
            expected: BITBUCKET_EXPECTED,
        }),
        Endpoint::Generic => Ok(Forge::Generic),
        Endpoint::Repository if forgejo => Ok(Forge::Forgejo),
        Endpoint::Repository if has(GITEA_EVENT) => Ok(Forge::Gitea),
        Endpoint::Repository if has(GITLAB_EVENT) => Ok(Forge::GitLab),
        Endpoint::Repository if has(GITHUB_EVENT) => Ok(Forge::GitHub),
        Endpoint::Repository if has(BITBUCKET_EVENT) => {
            bitbucket(headers).ok_or(WebhookError::UnknownForge {
                expected: BITBUCKET_EXPECTED,
            })
        }
        Endpoint::Repository => Ok(Forge::Generic),
    }
}

const BITBUCKET_EXPECTED: &str = "Bitbucket Cloud or Bitbucket Server (X-Event-Key, with \
     X-Request-UUID from Cloud or X-Request-Id from Server)";

/// Bitbucket Cloud or Server, when `X-Event-Key` is present. Cloud alone sends
/// `X-Request-UUID`; then the event key tells (the two name their events differently:
/// `repo:push` / `repo:refs_changed`); then Cloud's `User-Agent: Bitbucket-Webhooks/2.0`; then
/// Server's `X-Request-Id`, last because reverse proxies add that header to everything.
fn bitbucket(headers: &HeaderMap) -> Option<Forge> {
    let key = text(headers, BITBUCKET_EVENT)?;
    if headers.contains_key("x-request-uuid") {
        return Some(Forge::BitbucketCloud);
    }
    if let Some(forge) = bitbucket_by_event_key(key) {
        return Some(forge);
    }
    let user_agent = text(headers, "user-agent").unwrap_or_default();
    if user_agent.starts_with("Bitbucket-Webhooks/") {
        return Some(Forge::BitbucketCloud);
    }
    if headers.contains_key("x-request-id") {
        return Some(Forge::BitbucketServer);
    }
    None
}

fn bitbucket_by_event_key(key: &str) -> Option<Forge> {
    const SERVER_PREFIXES: [&str; 5] = [
        "pr:",
        "diagnostics:",
        "mirror:",
        "project:",
        "repo:comment:",
    ];
    const SERVER_REPO_EVENTS: [&str; 4] = [
        "repo:refs_changed",
        "repo:modified",
        "repo:forked",
        "repo:secret_detected",
    ];
    const CLOUD_PREFIXES: [&str; 3] = ["pullrequest:", "issue:", "repo:"];
    if SERVER_PREFIXES.iter().any(|p| key.starts_with(p)) || SERVER_REPO_EVENTS.contains(&key) {
        Some(Forge::BitbucketServer)
    } else if CLOUD_PREFIXES.iter().any(|p| key.starts_with(p)) {
        Some(Forge::BitbucketCloud)
    } else {
        None
    }
}

/// The delivery id, for replay detection: the first of the forge's id headers that holds a
/// usable value (trimmed, 1 to 200 printable ASCII characters).
pub fn delivery_id(forge: Forge, headers: &HeaderMap) -> Option<String> {
    let names: &[&str] = match forge {
        Forge::GitHub => &["x-github-delivery"],
        Forge::GitLab => &["idempotency-key", "x-gitlab-event-uuid"],
        Forge::Gitea => &["x-gitea-delivery"],
        Forge::Forgejo => &["x-forgejo-delivery", "x-gitea-delivery"],
        Forge::BitbucketCloud => &["x-request-uuid"],
        Forge::BitbucketServer => &["x-request-id"],
        Forge::Generic => &["x-delivery-id", "x-request-id"],
    };
    names
        .iter()
        .filter_map(|name| text(headers, name))
        .find(|id| id.len() <= MAX_DELIVERY_ID)
        .map(str::to_owned)
}

/// The header that names the event, per forge (for [`event_name`] and error messages).
pub(crate) fn event_header(forge: Forge) -> &'static str {
    match forge {
        Forge::GitHub => "X-GitHub-Event",
        Forge::GitLab => "X-Gitlab-Event",
        Forge::Gitea => "X-Gitea-Event",
        Forge::Forgejo => "X-Forgejo-Event",
        Forge::BitbucketCloud | Forge::BitbucketServer => "X-Event-Key",
        Forge::Generic => "X-Event",
    }
}

/// The event name the forge sent (`push`, `Push Hook`, `repo:refs_changed`…). A generic
/// delivery is always a `push`.
pub fn event_name(forge: Forge, headers: &HeaderMap) -> Option<String> {
    let value = match forge {
        Forge::Generic => return Some("push".to_owned()),
        Forge::Forgejo => text(headers, FORGEJO_EVENT).or_else(|| text(headers, GITEA_EVENT)),
        _ => text(headers, &event_header(forge).to_ascii_lowercase()),
    };
    value.filter(|v| v.len() <= 100).map(str::to_owned)
}

/// The single value of header `name`, trimmed, when it is non-empty printable ASCII (no
/// tabs). `None` when absent, repeated, empty or not text.
pub(crate) fn text<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    let mut values = headers.get_all(name).iter();
    let value = values.next()?;
    if values.next().is_some() {
        return None;
    }
    let value = std::str::from_utf8(value.as_bytes()).ok()?.trim();
    let printable = value.bytes().all(|b| (0x20..0x7f).contains(&b));
    (printable && !value.is_empty()).then_some(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::header::{HeaderName, HeaderValue};

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    #[test]
    fn detects_each_forge_on_its_endpoint_and_on_a_repository_url() {
        let gitea = [
            ("X-Gitea-Event", "push"),
            ("X-Gitea-Delivery", "d"),
            ("X-GitHub-Event", "push"),
            ("X-Gogs-Event", "push"),
        ];
        let forgejo = [
            ("X-Forgejo-Event", "push"),
            ("X-Forgejo-Delivery", "d"),
            ("X-Gitea-Event", "push"),
            ("X-GitHub-Event", "push"),
        ];
        let forgejo_delivery_only = [("X-Forgejo-Delivery", "d"), ("X-Gitea-Event", "push")];
        let bb_cloud = [
            ("X-Event-Key", "repo:push"),
            ("X-Request-UUID", "u"),
            ("User-Agent", "Bitbucket-Webhooks/2.0"),
        ];
        let bb_cloud_proxied = [
            ("X-Event-Key", "repo:push"),
            ("X-Request-UUID", "u"),
            ("X-Request-Id", "added-by-a-proxy"),
        ];
        let bb_cloud_by_agent = [
            ("X-Event-Key", "something:new"),
            ("User-Agent", "Bitbucket-Webhooks/2.0"),
        ];
        let bb_cloud_by_key = [("X-Event-Key", "pullrequest:comment_created")];
        let bb_server = [("X-Event-Key", "repo:refs_changed"), ("X-Request-Id", "i")];
        let bb_server_ping = [("X-Event-Key", "diagnostics:ping")];
        let bb_server_by_id = [("X-Event-Key", "something:new"), ("X-Request-Id", "i")];
        type Case<'a> = (Endpoint, &'a [(&'a str, &'a str)], Forge);
        let table: &[Case] = &[
            (
                Endpoint::GitHub,
                &[("X-GitHub-Event", "push")],
                Forge::GitHub,
            ),
            (
                Endpoint::GitLab,
                &[("X-Gitlab-Event", "Push Hook")],
                Forge::GitLab,
            ),
            (Endpoint::Gitea, &gitea, Forge::Gitea),
            (Endpoint::Gitea, &forgejo, Forge::Forgejo),
            (Endpoint::Gitea, &forgejo_delivery_only, Forge::Forgejo),
            (Endpoint::Bitbucket, &bb_cloud, Forge::BitbucketCloud),
            (
                Endpoint::Bitbucket,
                &bb_cloud_proxied,
                Forge::BitbucketCloud,
            ),
            (
                Endpoint::Bitbucket,
                &bb_cloud_by_agent,
                Forge::BitbucketCloud,
            ),
            (Endpoint::Bitbucket, &bb_cloud_by_key, Forge::BitbucketCloud),
            (Endpoint::Bitbucket, &bb_server, Forge::BitbucketServer),
            (Endpoint::Bitbucket, &bb_server_ping, Forge::BitbucketServer),
            (
                Endpoint::Bitbucket,
                &bb_server_by_id,
                Forge::BitbucketServer,
            ),
            (Endpoint::Generic, &[], Forge::Generic),
            (
                Endpoint::Generic,
                &[("X-GitHub-Event", "push")],
                Forge::Generic,
            ),
            (
                Endpoint::Repository,
                &[("X-GitHub-Event", "push")],
                Forge::GitHub,
            ),
            (
                Endpoint::Repository,
                &[("X-Gitlab-Event", "Push Hook")],
                Forge::GitLab,
            ),
            (Endpoint::Repository, &gitea, Forge::Gitea),
            (Endpoint::Repository, &forgejo, Forge::Forgejo),
            (Endpoint::Repository, &bb_cloud, Forge::BitbucketCloud),
            (Endpoint::Repository, &bb_server, Forge::BitbucketServer),
            (Endpoint::Repository, &[], Forge::Generic),
            (
                Endpoint::Repository,
                &[("Authorization", "Bearer x")],
                Forge::Generic,
            ),
            (
                Endpoint::Repository,
                &[("X-Gogs-Event", "push")],
                Forge::Generic,
            ),
        ];
        for (endpoint, pairs, forge) in table {
            assert_eq!(
                detect(*endpoint, &headers(pairs)),
                Ok(*forge),
                "{endpoint:?} {pairs:?}"
            );
        }
    }

    #[test]
    fn refuses_deliveries_without_the_endpoints_headers() {
        let table: &[(Endpoint, &[(&str, &str)])] = &[
            (Endpoint::GitHub, &[]),
            (Endpoint::GitHub, &[("X-Gitlab-Event", "Push Hook")]),
            (Endpoint::GitLab, &[("X-GitHub-Event", "push")]),
            (Endpoint::Gitea, &[("X-GitHub-Event", "push")]),
            (Endpoint::Gitea, &[("X-Gogs-Event", "push")]),
            (Endpoint::Bitbucket, &[]),
            (Endpoint::Bitbucket, &[("X-Request-UUID", "u")]),
            (Endpoint::Bitbucket, &[("X-GitHub-Event", "push")]),
            // an event key that neither names nor the other headers place
            (Endpoint::Bitbucket, &[("X-Event-Key", "something:new")]),
            (Endpoint::Repository, &[("X-Event-Key", "something:new")]),
        ];
        for (endpoint, pairs) in table {
            assert!(
                matches!(
                    detect(*endpoint, &headers(pairs)),
                    Err(WebhookError::UnknownForge { .. })
                ),
                "{endpoint:?} {pairs:?}"
            );
        }
        let message = detect(Endpoint::GitHub, &HeaderMap::new())
            .unwrap_err()
            .to_string();
        assert_eq!(
            message,
            "this endpoint takes deliveries from GitHub (X-GitHub-Event); the request has none \
             of its headers"
        );
    }

    #[test]
    fn delivery_ids_per_forge_with_fallbacks() {
        let h = headers(&[
            (
                "X-GitHub-Delivery",
                " 72d3162e-cc78-11e3-81ab-4c9367dc0958 ",
            ),
            ("X-Gitlab-Event-UUID", "gitlab-uuid"),
            ("X-Gitea-Delivery", "gitea-id"),
            ("X-Request-UUID", "{bb-cloud}"),
            ("X-Request-Id", "bb-server"),
        ]);
        let table = [
            (Forge::GitHub, Some("72d3162e-cc78-11e3-81ab-4c9367dc0958")),
            (Forge::GitLab, Some("gitlab-uuid")),
            (Forge::Gitea, Some("gitea-id")),
            (Forge::Forgejo, Some("gitea-id")),
            (Forge::BitbucketCloud, Some("{bb-cloud}")),
            (Forge::BitbucketServer, Some("bb-server")),
            (Forge::Generic, Some("bb-server")),
        ];
        for (forge, id) in table {
            assert_eq!(delivery_id(forge, &h).as_deref(), id, "{forge}");
        }
        let preferred = headers(&[
            ("Idempotency-Key", "idem"),
            ("X-Gitlab-Event-UUID", "uuid"),
            ("X-Forgejo-Delivery", "fj"),
            ("X-Gitea-Delivery", "gt"),
            ("X-Delivery-Id", "mine"),
            ("X-Request-Id", "proxy"),
        ]);
        assert_eq!(
            delivery_id(Forge::GitLab, &preferred).as_deref(),
            Some("idem")
        );
        assert_eq!(
            delivery_id(Forge::Forgejo, &preferred).as_deref(),
            Some("fj")
        );
        assert_eq!(
            delivery_id(Forge::Generic, &preferred).as_deref(),
            Some("mine")
        );
    }

    #[test]
    fn unusable_delivery_ids_are_none() {
        let long = "a".repeat(201);
        let exact = "a".repeat(200);
        for bad in ["", "   ", long.as_str(), "a\tb", "é"] {
            let mut h = HeaderMap::new();
            h.insert(
                "x-github-delivery",
                HeaderValue::from_bytes(bad.as_bytes()).unwrap(),
            );
            assert_eq!(delivery_id(Forge::GitHub, &h), None, "{bad:?}");
        }
        let h = headers(&[("X-GitHub-Delivery", &exact)]);
        assert_eq!(delivery_id(Forge::GitHub, &h), Some(exact.clone()));
        let repeated = headers(&[("X-GitHub-Delivery", "a"), ("X-GitHub-Delivery", "b")]);
        assert_eq!(delivery_id(Forge::GitHub, &repeated), None);
        assert_eq!(delivery_id(Forge::GitHub, &HeaderMap::new()), None);
        // A bad first choice falls back to the next header.
        let h = headers(&[("Idempotency-Key", &long), ("X-Gitlab-Event-UUID", "u")]);
        assert_eq!(delivery_id(Forge::GitLab, &h).as_deref(), Some("u"));
    }

    #[test]
    fn event_names_per_forge() {
        let h = headers(&[
            ("X-GitHub-Event", "issue_comment"),
            ("X-Gitlab-Event", "Note Hook"),
            ("X-Gitea-Event", "push"),
            ("X-Event-Key", "repo:refs_changed"),
        ]);
        assert_eq!(
            event_name(Forge::GitHub, &h).as_deref(),
            Some("issue_comment")
        );
        assert_eq!(event_name(Forge::GitLab, &h).as_deref(), Some("Note Hook"));
        assert_eq!(event_name(Forge::Gitea, &h).as_deref(), Some("push"));
        assert_eq!(event_name(Forge::Forgejo, &h).as_deref(), Some("push"));
        assert_eq!(
            event_name(Forge::BitbucketServer, &h).as_deref(),
            Some("repo:refs_changed")
        );
        assert_eq!(
            event_name(Forge::Generic, &HeaderMap::new()).as_deref(),
            Some("push")
        );
        assert_eq!(event_name(Forge::GitHub, &HeaderMap::new()), None);
        let fj = headers(&[("X-Forgejo-Event", "issue_comment"), ("X-Gitea-Event", "x")]);
        assert_eq!(
            event_name(Forge::Forgejo, &fj).as_deref(),
            Some("issue_comment")
        );
    }
}

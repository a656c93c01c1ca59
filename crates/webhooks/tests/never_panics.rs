//! Whatever arrives (any bytes, any headers, JSON of any shape under the field names the
//! parsers read), `detect`, `verify`, `delivery_id`, `event_name` and `parse` return; they
//! never panic.

use http::header::{HeaderName, HeaderValue};
use http::HeaderMap;
use mirrorhub_webhooks::{delivery_id, detect, event_name, parse, verify, Endpoint, Event, Forge};
use proptest::prelude::*;
use serde_json::Value;

const HEADER_NAMES: &[&str] = &[
    "x-github-event",
    "x-github-delivery",
    "x-hub-signature",
    "x-hub-signature-256",
    "x-gitlab-event",
    "x-gitlab-token",
    "x-gitlab-event-uuid",
    "idempotency-key",
    "x-gitea-event",
    "x-gitea-delivery",
    "x-gitea-signature",
    "x-forgejo-event",
    "x-forgejo-delivery",
    "x-forgejo-signature",
    "x-event-key",
    "x-request-uuid",
    "x-request-id",
    "x-delivery-id",
    "user-agent",
    "authorization",
];

const EVENTS: &[&str] = &[
    "push",
    "ping",
    "create",
    "delete",
    "issue_comment",
    "pull_request_comment",
    "Push Hook",
    "Tag Push Hook",
    "System Hook",
    "Note Hook",
    "repo:push",
    "repo:refs_changed",
    "diagnostics:ping",
    "issue:comment_created",
    "pullrequest:comment_created",
    "pullrequest:comment_updated",
    "pr:comment:added",
    "pr:comment:edited",
    "Bearer s",
    "sha256=",
];

/// Keys the parsers look up, so that random JSON reaches deep into them.
const KEYS: &[&str] = &[
    "ref",
    "ref_type",
    "refs",
    "action",
    "repository",
    "project",
    "project_id",
    "clone_url",
    "ssh_url",
    "html_url",
    "git_url",
    "url",
    "full_name",
    "path_with_namespace",
    "git_http_url",
    "issue",
    "pull_request",
    "is_pull",
    "number",
    "iid",
    "id",
    "comment",
    "body",
    "user",
    "login",
    "type",
    "changes",
    "from",
    "object_kind",
    "object_attributes",
    "noteable_type",
    "note",
    "system",
    "merge_request",
    "username",
    "push",
    "new",
    "old",
    "name",
    "links",
    "html",
    "href",
    "clone",
    "self",
    "content",
    "raw",
    "actor",
    "nickname",
    "pullRequest",
    "toRef",
    "slug",
    "key",
    "text",
    "author",
    "refId",
    "previousComment",
    "repo_url",
];

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        "\\PC{0,12}".prop_map(Value::String),
        prop::sample::select(EVENTS).prop_map(|s| Value::String(s.to_owned())),
        Just(Value::String("branch".into())),
        Just(Value::String("MergeRequest".into())),
        Just(Value::String("Issue".into())),
        Just(Value::String("https://github.com/o/r.git".into())),
    ];
    leaf.prop_recursive(5, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((prop::sample::select(KEYS), inner), 0..6).prop_map(|pairs| {
                Value::Object(pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
            }),
        ]
    })
}

/// A top-level object, as every payload is.
fn json_object() -> impl Strategy<Value = Value> {
    prop::collection::vec((prop::sample::select(KEYS), json_value()), 0..10).prop_map(|pairs| {
        Value::Object(pairs.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
    })
}

fn header_map() -> impl Strategy<Value = HeaderMap> {
    let value = prop_oneof![
        prop::collection::vec(any::<u8>(), 0..40),
        prop::sample::select(EVENTS).prop_map(|s| s.as_bytes().to_vec()),
    ];
    prop::collection::vec((prop::sample::select(HEADER_NAMES), value), 0..8).prop_map(|pairs| {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            if let Ok(value) = HeaderValue::from_bytes(&value) {
                map.append(HeaderName::from_static(name), value);
            }
        }
        map
    })
}

const ENDPOINTS: &[Endpoint] = &[
    Endpoint::GitHub,
    Endpoint::GitLab,
    Endpoint::Gitea,
    Endpoint::Bitbucket,
    Endpoint::Generic,
    Endpoint::Repository,
];

fn exercise(headers: &HeaderMap, body: &[u8], secrets: &[&[u8]]) {
    for &endpoint in ENDPOINTS {
        let _ = detect(endpoint, headers);
    }
    for &forge in Forge::ALL {
        let _ = verify(forge, headers, body, secrets);
        if let Some(id) = delivery_id(forge, headers) {
            assert!(!id.is_empty() && id.len() <= 200);
            assert!(id.bytes().all(|b| (0x20..0x7f).contains(&b)));
        }
        let _ = event_name(forge, headers);
        if let Ok(Event::Push { repo_urls, refs }) = parse(forge, headers, body) {
            assert!(repo_urls.iter().chain(&refs).all(|s| !s.is_empty()));
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_bytes(headers in header_map(), body in prop::collection::vec(any::<u8>(), 0..256), secret in prop::collection::vec(any::<u8>(), 0..8)) {
        exercise(&headers, &body, &[&secret, b""]);
    }

    #[test]
    fn arbitrary_json(headers in header_map(), event in prop::sample::select(EVENTS), value in json_object()) {
        let body = serde_json::to_vec(&value).unwrap();
        let mut headers = headers;
        for name in ["x-github-event", "x-gitlab-event", "x-gitea-event", "x-event-key"] {
            headers.insert(name, HeaderValue::from_static(event));
        }
        exercise(&headers, &body, &[b"s"]);
    }
}

//! What a notification says, for each kind of target: the webhook's JSON and its signature,
//! the Slack text, the e-mail's subject and body. Pure functions of the delivery's facts.

use chrono::{DateTime, SecondsFormat, Utc};
use hmac::{Hmac, Mac};
use mirrorhub_core::notify::NotifyEvent;
use mirrorhub_store::NotificationFacts;
use serde_json::{json, Value};
use sha2::Sha256;

/// `sha256=<hex HMAC-SHA256 of the raw body>`, GitHub's `X-Hub-Signature-256` form.
pub(crate) fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// The hub's page of the repository.
fn repo_url(public_url: &str, f: &NotificationFacts) -> Option<String> {
    Some(format!(
        "{public_url}/{}/{}",
        f.repo_owner.as_deref()?,
        f.repo_name.as_deref()?
    ))
}

/// The webhook's JSON body.
pub(crate) fn webhook_body(f: &NotificationFacts, delivery_id: i64, public_url: &str) -> Value {
    let repository = match (&f.repo_owner, &f.repo_name) {
        (Some(owner), Some(name)) => json!({
            "owner": owner,
            "name": name,
            "full_name": format!("{owner}/{name}"),
            "url": repo_url(public_url, f),
        }),
        _ => Value::Null,
    };
    let subject = match &f.subject {
        Some(s) => {
            let mut v = json!({ "kind": s.kind() });
            if let mirrorhub_core::notify::Subject::PushMirror { id, label } = s {
                v["push_mirror_id"] = json!(id);
                v["label"] = json!(label);
            }
            v
        }
        None => Value::Null,
    };
    let error = match (&f.error_code, &f.error_message) {
        (Some(code), Some(message)) => json!({ "code": code, "message": message }),
        _ => Value::Null,
    };
    json!({
        "event": f.event.as_str(),
        "delivery_id": delivery_id,
        "occurred_at": time(f.occurred_at),
        "repository": repository,
        "subject": subject,
        "error": error,
        "episode_started_at": f.episode_started_at.map(time),
        "hub": public_url,
        "text": plain_text(f, public_url),
    })
}

fn icon(event: NotifyEvent) -> &'static str {
    match event {
        NotifyEvent::SyncFailed | NotifyEvent::LfsFailed | NotifyEvent::PushMirrorFailed => "❌",
        NotifyEvent::SyncRecovered
        | NotifyEvent::LfsRecovered
        | NotifyEvent::PushMirrorRecovered => "✅",
        NotifyEvent::Paused => "⏸️",
        NotifyEvent::HostKeyChanged => "🔑",
        NotifyEvent::Stale => "⚠️",
        NotifyEvent::WebhookSilent => "🔕",
        NotifyEvent::WebhookRecovered => "🔔",
        NotifyEvent::Test => "🔔",
    }
}

/// `team/app: sync failed` (with the push mirror's label when there is one).
pub(crate) fn headline(f: &NotificationFacts) -> String {
    let what = f.event.describe();
    match (&f.repo_owner, &f.repo_name) {
        (Some(owner), Some(name)) => {
            let label = f
                .subject
                .as_ref()
                .and_then(|s| s.label())
                .filter(|l| !l.is_empty())
                .map(|l| format!(" ({l})"))
                .unwrap_or_default();
            format!("{owner}/{name}: {what}{label}")
        }
        _ => "mirrorhub test notification".to_owned(),
    }
}

/// How long the trouble lasted, in words: `3h 12m`, `45s`.
fn lasted(from: DateTime<Utc>, to: DateTime<Utc>) -> String {
    let secs = (to - from).num_seconds().max(0);
    let (d, h, m, s) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m {s}s"),
        (0, _, _) => format!("{h}h {m}m"),
        _ => format!("{d}d {h}h"),
    }
}

/// The lines below the headline: the error, how long, the link.
fn detail_lines(f: &NotificationFacts, public_url: &str) -> Vec<String> {
    let mut lines = Vec::new();
    if f.event == NotifyEvent::Test {
        lines.push(format!(
            "This target of the hub at {public_url} works: it will get the events it subscribes to."
        ));
        return lines;
    }
    if let (Some(code), Some(message)) = (&f.error_code, &f.error_message) {
        lines.push(format!("{code}: {message}"));
    }
    match (f.event.is_trouble(), f.episode_started_at) {
        (false, Some(since)) => lines.push(format!(
            "Back to normal after {}.",
            lasted(since, f.occurred_at)
        )),
        (true, Some(since)) if since < f.occurred_at => {
            lines.push(format!("In trouble since {}.", time(since)))
        }
        _ => {}
    }
    if let Some(url) = repo_url(public_url, f) {
        lines.push(url);
    }
    lines
}

/// Text for people: the headline and its details, as e-mail bodies and the webhook's `text`.
pub(crate) fn plain_text(f: &NotificationFacts, public_url: &str) -> String {
    let mut text = headline(f);
    for line in detail_lines(f, public_url) {
        text.push('\n');
        text.push_str(&line);
    }
    text
}

/// Slack's incoming-webhook body (Mattermost and Rocket.Chat read the same `text`). What an
/// upstream wrote (error messages quote git's output) is defused: `&`, `<` and `>` escaped as
/// Slack asks, so `<!channel>` stays text, and `@` followed by a zero-width space, so no
/// `@channel`/`@here` mention pings a channel on Mattermost or Rocket.Chat.
pub(crate) fn slack_body(f: &NotificationFacts, public_url: &str) -> Value {
    let mut text = format!("{} *{}*", icon(f.event), defuse(&headline(f)));
    for line in detail_lines(f, public_url) {
        text.push('\n');
        text.push_str(&defuse(&line));
    }
    json!({ "text": text })
}

fn defuse(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('@', "@\u{200B}")
}

/// The e-mail's subject: `[mirrorhub] team/app: sync failed`.
pub(crate) fn email_subject(f: &NotificationFacts) -> String {
    let subject = format!("[mirrorhub] {}", headline(f));
    // One line, whatever a label or name held.
    subject.replace(['\r', '\n'], " ")
}

/// The e-mail's plain-text body.
pub(crate) fn email_body(f: &NotificationFacts, public_url: &str) -> String {
    format!(
        "{}\n\n--\nSent by the mirrorhub at {public_url} to a notification target of its operator or of the repository's owner.\n",
        plain_text(f, public_url)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use mirrorhub_core::notify::Subject;

    fn facts(event: NotifyEvent) -> NotificationFacts {
        let at = Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap();
        NotificationFacts {
            event,
            repo_id: Some(7),
            repo_owner: Some("team".into()),
            repo_name: Some("app".into()),
            subject: Some(Subject::Sync),
            error_code: Some("upstream_auth_failed".into()),
            error_message: Some("the upstream refused <!channel> @here & more".into()),
            episode_started_at: Some(at - chrono::TimeDelta::minutes(75)),
            occurred_at: at,
        }
    }

    #[test]
    fn the_signature_is_githubs() {
        // GitHub's documented example: secret "It's a Secret to Everybody", body "Hello, World!".
        assert_eq!(
            signature("It's a Secret to Everybody", b"Hello, World!"),
            "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
        );
    }

    #[test]
    fn the_webhook_body_names_the_repository_the_error_and_the_episode() {
        let body = webhook_body(&facts(NotifyEvent::SyncFailed), 42, "https://hub.example");
        assert_eq!(body["event"], "sync_failed");
        assert_eq!(body["delivery_id"], 42);
        assert_eq!(body["occurred_at"], "2026-01-02T03:04:05Z");
        assert_eq!(body["repository"]["full_name"], "team/app");
        assert_eq!(body["repository"]["url"], "https://hub.example/team/app");
        assert_eq!(body["subject"]["kind"], "sync");
        assert_eq!(body["error"]["code"], "upstream_auth_failed");
        assert_eq!(body["episode_started_at"], "2026-01-02T01:49:05Z");
        let test = NotificationFacts {
            repo_id: None,
            repo_owner: None,
            repo_name: None,
            subject: None,
            error_code: None,
            error_message: None,
            episode_started_at: None,
            ..facts(NotifyEvent::Test)
        };
        let body = webhook_body(&test, 1, "https://hub.example");
        assert!(body["repository"].is_null() && body["error"].is_null());
        let push = NotificationFacts {
            subject: Some(Subject::PushMirror {
                id: 3,
                label: "https://gitlab.example/team/app".into(),
            }),
            ..facts(NotifyEvent::PushMirrorFailed)
        };
        let body = webhook_body(&push, 2, "https://hub.example");
        assert_eq!(body["subject"]["push_mirror_id"], 3);
        assert!(body["text"]
            .as_str()
            .unwrap()
            .starts_with("team/app: push mirror failed (https://gitlab.example/team/app)"));
    }

    #[test]
    fn slack_text_is_defused() {
        let body = slack_body(&facts(NotifyEvent::SyncFailed), "https://hub.example");
        let text = body["text"].as_str().unwrap();
        assert!(text.starts_with("❌ *team/app: sync failed*"), "{text}");
        assert!(!text.contains("<!channel>") && text.contains("&lt;!channel&gt;"));
        assert!(!text.contains("@here") && text.contains("&amp; more"));
        assert!(text.contains("https://hub.example/team/app"));
    }

    #[test]
    fn a_recovery_says_how_long_it_lasted() {
        let text = plain_text(&facts(NotifyEvent::SyncRecovered), "https://hub.example");
        assert!(text.contains("Back to normal after 1h 15m."), "{text}");
        let failed = plain_text(&facts(NotifyEvent::Paused), "https://hub.example");
        assert!(
            failed.contains("In trouble since 2026-01-02T01:49:05Z."),
            "{failed}"
        );
        assert_eq!(
            email_subject(&facts(NotifyEvent::Stale)),
            "[mirrorhub] team/app: stale"
        );
        assert_eq!(
            lasted(Utc::now(), Utc::now() + chrono::TimeDelta::days(2)),
            "2d 0h"
        );
    }
}

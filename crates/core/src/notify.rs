//! Notifications as data: the events a target can receive, what an event is about (a
//! repository's sync, its Git LFS objects, one of its push mirrors), the **episode** rule that
//! makes a failure notify once however many retries follow, and the retry policy of the
//! outbox. The store applies [`step`] inside the transaction that records its result, so the
//! rule holds across replicas and crashes.

use std::time::Duration;

use serde::{Deserialize, Serialize};

string_enum! {
    /// What a notification says happened. The string form is the webhook's `event` field, the
    /// `X-Mirrorhub-Event` header and the words of a target's `events` filter.
    NotifyEvent {
        /// A repository's sync failed, the first time since it last succeeded.
        SyncFailed => "sync_failed",
        /// A sync succeeded after failures (or after the mirror went stale).
        SyncRecovered => "sync_recovered",
        /// Git LFS objects could not be fetched, the first time since they last all were.
        LfsFailed => "lfs_failed",
        /// Every LFS object is fetched again.
        LfsRecovered => "lfs_recovered",
        /// A push mirror failed, the first time since it last succeeded.
        PushMirrorFailed => "push_mirror_failed",
        /// A push mirror succeeded again.
        PushMirrorRecovered => "push_mirror_recovered",
        /// Scheduled syncs stopped after repeated permanent failures (or a changed host key).
        Paused => "paused",
        /// The SSH server's host key is not the pinned one; the mirror is paused.
        HostKeyChanged => "host_key_changed",
        /// The mirror's last success is older than its interval plus the stale grace.
        Stale => "stale",
        /// The upstream changed without a push webhook delivery: the webhook is silent, and
        /// the mirror is polled until a delivery arrives again.
        WebhookSilent => "webhook_silent",
        /// A push webhook delivery arrived after a silence.
        WebhookRecovered => "webhook_recovered",
        /// Sent by the test button; always delivered, whatever the target's filter.
        Test => "test",
    }
}

string_enum! {
    /// How a notification target is reached.
    TargetKind {
        /// A JSON POST signed with HMAC-SHA256 (`X-Mirrorhub-Signature-256`), like GitHub's.
        Webhook => "webhook",
        /// A Slack incoming webhook (`{"text": …}`; Mattermost and Rocket.Chat take it too).
        Slack => "slack",
        /// Mail through the operator's SMTP server.
        Email => "email",
    }
}

impl NotifyEvent {
    /// The events a target can choose from (everything but `test`).
    pub fn subscribable() -> impl Iterator<Item = NotifyEvent> {
        NotifyEvent::ALL
            .iter()
            .copied()
            .filter(|e| *e != NotifyEvent::Test)
    }

    /// A few words for people: `sync failed`, `host key changed`.
    pub fn describe(self) -> &'static str {
        match self {
            NotifyEvent::SyncFailed => "sync failed",
            NotifyEvent::SyncRecovered => "sync recovered",
            NotifyEvent::LfsFailed => "Git LFS objects missing",
            NotifyEvent::LfsRecovered => "Git LFS objects recovered",
            NotifyEvent::PushMirrorFailed => "push mirror failed",
            NotifyEvent::PushMirrorRecovered => "push mirror recovered",
            NotifyEvent::Paused => "paused",
            NotifyEvent::HostKeyChanged => "SSH host key changed",
            NotifyEvent::Stale => "stale",
            NotifyEvent::WebhookSilent => "push webhook silent",
            NotifyEvent::WebhookRecovered => "push webhook delivering again",
            NotifyEvent::Test => "test notification",
        }
    }

    /// Whether the event tells of trouble (rather than of its end, or a test).
    pub fn is_trouble(self) -> bool {
        !matches!(
            self,
            NotifyEvent::SyncRecovered
                | NotifyEvent::LfsRecovered
                | NotifyEvent::PushMirrorRecovered
                | NotifyEvent::WebhookRecovered
                | NotifyEvent::Test
        )
    }
}

/// What one of a repository's episodes is about. Each subject has its own episodes: an LFS
/// failure beside a good sync of refs is its own story.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Subject {
    /// Syncing the repository's refs from its upstream (also a migration's copy, a promotion).
    Sync,
    /// Fetching the Git LFS objects a sync brought.
    Lfs,
    /// One push mirror of the repository (`id`), with a label for people (its URL's origin
    /// and path, never credentials).
    PushMirror { id: i64, label: String },
    /// The upstream's push webhook: silent (the upstream changed without a delivery) is its
    /// failure, a delivery after that its recovery.
    Webhook,
}

impl Subject {
    /// The stored key: `sync`, `lfs`, `push_mirror:7`.
    pub fn key(&self) -> String {
        match self {
            Subject::Sync => "sync".to_owned(),
            Subject::Lfs => "lfs".to_owned(),
            Subject::Webhook => "webhook".to_owned(),
            Subject::PushMirror { id, .. } => format!("push_mirror:{id}"),
        }
    }

    /// The kind word of the webhook's `subject.kind`: `sync`, `lfs`, `push_mirror`,
    /// `webhook`.
    pub fn kind(&self) -> &'static str {
        match self {
            Subject::Sync => "sync",
            Subject::Lfs => "lfs",
            Subject::Webhook => "webhook",
            Subject::PushMirror { .. } => "push_mirror",
        }
    }

    pub fn label(&self) -> Option<&str> {
        match self {
            Subject::PushMirror { label, .. } => Some(label),
            _ => None,
        }
    }

    /// Reads a stored key and label back.
    pub fn from_key(key: &str, label: Option<String>) -> Option<Subject> {
        match key {
            "sync" => Some(Subject::Sync),
            "lfs" => Some(Subject::Lfs),
            "webhook" => Some(Subject::Webhook),
            _ => {
                let id = key.strip_prefix("push_mirror:")?.parse().ok()?;
                Some(Subject::PushMirror {
                    id,
                    label: label.unwrap_or_default(),
                })
            }
        }
    }

    fn failed(&self) -> NotifyEvent {
        match self {
            Subject::Sync => NotifyEvent::SyncFailed,
            Subject::Lfs => NotifyEvent::LfsFailed,
            Subject::Webhook => NotifyEvent::WebhookSilent,
            Subject::PushMirror { .. } => NotifyEvent::PushMirrorFailed,
        }
    }

    fn recovered(&self) -> NotifyEvent {
        match self {
            Subject::Sync => NotifyEvent::SyncRecovered,
            Subject::Lfs => NotifyEvent::LfsRecovered,
            Subject::Webhook => NotifyEvent::WebhookRecovered,
            Subject::PushMirror { .. } => NotifyEvent::PushMirrorRecovered,
        }
    }
}

/// An open episode of trouble: from the first failure (or staleness) after a success until the
/// next success. What it has already told, so each thing is told once.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Episode {
    pub paused_sent: bool,
    pub host_key_sent: bool,
    pub stale_sent: bool,
}

/// What was seen of a subject.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    Succeeded,
    Failed {
        /// The failure was a changed SSH host key.
        host_key: bool,
        /// The failure paused the mirror (no more scheduled runs).
        paused: bool,
    },
    /// The mirror's last success is older than its interval plus the grace.
    Stale,
}

/// The episode rule. From the episode as it is (`None`: none open, all is well) and what was
/// seen, the episode after it and the events to tell, **most specific first**: a target gets
/// the first of them it subscribes to, so one run never sends one target two messages.
///
/// - the first failure opens an episode (`*_failed`); failures within it tell nothing more;
/// - a pause, a changed host key and staleness are told once each within an episode;
/// - staleness opens an episode too (a mirror can go stale without failing: never scheduled);
/// - the next success closes the episode with one `*_recovered`; a success outside an episode
///   tells nothing.
pub fn step(
    open: Option<Episode>,
    subject: &Subject,
    seen: Seen,
) -> (Option<Episode>, Vec<NotifyEvent>) {
    match seen {
        Seen::Succeeded => match open {
            Some(_) => (None, vec![subject.recovered()]),
            None => (None, vec![]),
        },
        Seen::Failed { host_key, paused } => {
            let mut episode = open.unwrap_or_default();
            let mut events = Vec::new();
            if host_key && !episode.host_key_sent {
                episode.host_key_sent = true;
                events.push(NotifyEvent::HostKeyChanged);
            }
            if paused && !episode.paused_sent {
                episode.paused_sent = true;
                events.push(NotifyEvent::Paused);
            }
            if open.is_none() {
                events.push(subject.failed());
            }
            (Some(episode), events)
        }
        Seen::Stale => {
            let mut episode = open.unwrap_or_default();
            if episode.stale_sent {
                return (Some(episode), vec![]);
            }
            episode.stale_sent = true;
            (Some(episode), vec![NotifyEvent::Stale])
        }
    }
}

/// The event a target with this filter gets of `events` (as [`step`] ordered them): the first
/// it subscribes to. `None` as the filter means every event.
pub fn pick_for(filter: Option<&[NotifyEvent]>, events: &[NotifyEvent]) -> Option<NotifyEvent> {
    events
        .iter()
        .copied()
        .find(|e| filter.is_none_or(|f| f.contains(e)))
}

/// How long the outbox waits before trying a failed delivery again: `base` after the first
/// attempt, doubling, at most an hour.
pub fn retry_delay(attempts: u32, base: Duration) -> Duration {
    const CAP: Duration = Duration::from_secs(3600);
    let doublings = attempts.saturating_sub(1).min(20);
    base.saturating_mul(1u32 << doublings).min(CAP)
}

#[cfg(test)]
mod tests {
    use super::*;
    use NotifyEvent::*;

    const FAIL: Seen = Seen::Failed {
        host_key: false,
        paused: false,
    };
    const PAUSE: Seen = Seen::Failed {
        host_key: false,
        paused: true,
    };
    const HOST_KEY: Seen = Seen::Failed {
        host_key: true,
        paused: true,
    };

    /// Runs a story of observations from a good state and returns what each told.
    fn story(subject: &Subject, seen: &[Seen]) -> Vec<Vec<NotifyEvent>> {
        let mut open = None;
        seen.iter()
            .map(|s| {
                let (next, events) = step(open, subject, *s);
                open = next;
                events
            })
            .collect()
    }

    #[test]
    fn a_failure_is_told_once_per_episode_and_its_end_once() {
        let told = story(
            &Subject::Sync,
            &[
                Seen::Succeeded,
                FAIL,
                FAIL,
                FAIL,
                Seen::Succeeded,
                Seen::Succeeded,
                FAIL,
            ],
        );
        assert_eq!(
            told,
            vec![
                vec![],
                vec![SyncFailed],
                vec![],
                vec![],
                vec![SyncRecovered],
                vec![],
                vec![SyncFailed]
            ]
        );
    }

    #[test]
    fn pause_host_key_and_staleness_are_told_once_within_an_episode() {
        let told = story(
            &Subject::Sync,
            &[
                FAIL,
                PAUSE,
                PAUSE,
                Seen::Stale,
                Seen::Stale,
                Seen::Succeeded,
            ],
        );
        assert_eq!(
            told,
            vec![
                vec![SyncFailed],
                vec![Paused],
                vec![],
                vec![Stale],
                vec![],
                vec![SyncRecovered]
            ]
        );
        // A changed host key opens the episode: the most specific event comes first.
        assert_eq!(
            story(&Subject::Sync, &[HOST_KEY, HOST_KEY]),
            vec![vec![HostKeyChanged, Paused, SyncFailed], vec![]]
        );
        // Staleness alone opens an episode, which a success closes.
        assert_eq!(
            story(&Subject::Sync, &[Seen::Stale, FAIL, Seen::Succeeded]),
            vec![vec![Stale], vec![], vec![SyncRecovered]]
        );
    }

    #[test]
    fn each_subject_has_its_own_words() {
        let lfs = story(&Subject::Lfs, &[FAIL, Seen::Succeeded]);
        assert_eq!(lfs, vec![vec![LfsFailed], vec![LfsRecovered]]);
        let push = Subject::PushMirror {
            id: 7,
            label: "https://gitlab.example/team/app".into(),
        };
        assert_eq!(
            story(&push, &[FAIL, Seen::Succeeded]),
            vec![vec![PushMirrorFailed], vec![PushMirrorRecovered]]
        );
        assert_eq!(push.key(), "push_mirror:7");
        assert_eq!(
            Subject::from_key(
                "push_mirror:7",
                Some("https://gitlab.example/team/app".into())
            ),
            Some(push)
        );
        assert_eq!(Subject::from_key("sync", None), Some(Subject::Sync));
        assert_eq!(Subject::from_key("push_mirror:x", None), None);
        assert_eq!(Subject::from_key("other", None), None);
    }

    #[test]
    fn a_target_gets_the_first_event_it_subscribes_to() {
        let events = [HostKeyChanged, Paused, SyncFailed];
        assert_eq!(pick_for(None, &events), Some(HostKeyChanged));
        assert_eq!(pick_for(Some(&[SyncFailed, Paused]), &events), Some(Paused));
        assert_eq!(pick_for(Some(&[SyncFailed]), &events), Some(SyncFailed));
        assert_eq!(pick_for(Some(&[Stale]), &events), None);
        assert_eq!(pick_for(None, &[]), None);
    }

    #[test]
    fn retries_back_off_to_an_hour() {
        let base = Duration::from_secs(10);
        let delays: Vec<u64> = (1..=11).map(|n| retry_delay(n, base).as_secs()).collect();
        assert_eq!(
            delays,
            vec![10, 20, 40, 80, 160, 320, 640, 1280, 2560, 3600, 3600]
        );
        assert_eq!(retry_delay(u32::MAX, base), Duration::from_secs(3600));
        assert_eq!(retry_delay(0, base), base);
    }

    #[test]
    fn event_words_round_trip_and_test_is_not_subscribable() {
        for e in NotifyEvent::ALL {
            assert_eq!(NotifyEvent::parse(e.as_str()), Some(*e));
        }
        assert!(NotifyEvent::subscribable().all(|e| e != Test));
        assert!(SyncFailed.is_trouble() && !SyncRecovered.is_trouble() && !Test.is_trouble());
    }
}

//! The notification half of the store's conformance suite, on SQLite and on PostgreSQL (when
//! `MIRRORHUB_TEST_POSTGRES_URL` names a server): targets sealed at rest, the episode rule
//! applied with its deliveries in one transaction (once per episode, also with many writers
//! at once), owner scoping and event filters, the outbox's leases and retries, and stale
//! mirrors noted once.

#[macro_use]
#[allow(dead_code)]
mod harness;

use std::time::Duration;

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use harness::{Backend, TestDb};
use mirrorhub_core::notify::{NotifyEvent, Seen, Subject, TargetKind};
use mirrorhub_core::{Mode, Outcome, OwnerName, RepoName, Visibility};
use mirrorhub_store::{
    DeliveryAttempt, DeliveryStatus, NewNotificationTarget, NewRepo, NotificationTargetUpdate,
    Observation, SecretString, Store, StoreError, SyncResult,
};
use secrecy::ExposeSecret;

conformance!(
    targets_are_sealed_scoped_and_changed,
    an_episode_is_told_once_per_target,
    one_episode_whatever_the_number_of_writers,
    the_outbox_leases_retries_and_gives_up,
    stale_mirrors_are_noted_once,
);

const LEASE: Duration = Duration::from_secs(60);
const SECRET: &str = "hmac-key-never-stored-in-clear";
const SLACK_URL: &str = "https://hooks.slack.com/services/T0/B0/token-never-stored-in-clear";

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 3, 1, 12, 0, 0).unwrap() + TimeDelta::milliseconds(123)
}

fn secs(n: i64) -> TimeDelta {
    TimeDelta::seconds(n)
}

async fn mirror(store: &dyn Store, owner: &str, name: &str) -> i64 {
    let new = NewRepo {
        owner: OwnerName::parse(owner).unwrap(),
        name: RepoName::parse(name).unwrap(),
        mode: Mode::Mirror,
        visibility: Visibility::Public,
        description: String::new(),
        upstream_url: format!("https://example.org/{owner}/{name}.git"),
        credentials: None,
        sync_interval_secs: 86_400,
        ssh_key_id: None,
        known_hosts: None,
    };
    store.create_repo(new, t0()).await.unwrap().id
}

async fn account(store: &dyn Store, name: &str) -> i64 {
    let new = mirrorhub_store::NewAccount {
        name: OwnerName::parse(name).unwrap(),
        kind: mirrorhub_core::AccountKind::Org,
        site_admin: false,
        password_hash: None,
    };
    store.create_account(&new, t0()).await.unwrap().id
}

fn webhook(owner_id: Option<i64>, events: Option<Vec<NotifyEvent>>) -> NewNotificationTarget {
    NewNotificationTarget {
        kind: TargetKind::Webhook,
        owner_id,
        url: Some(SecretString::from(
            "https://receiver.example/hook?key=abc".to_owned(),
        )),
        url_origin: Some("https://receiver.example".into()),
        secret: Some(SecretString::from(SECRET.to_owned())),
        email_to: vec![],
        events,
        enabled: true,
        description: String::new(),
    }
}

fn failed() -> Seen {
    Seen::Failed {
        host_key: false,
        paused: false,
    }
}

async fn observe(store: &dyn Store, repo_id: i64, subject: &Subject, seen: Seen) -> Vec<i64> {
    store
        .note_observation(&Observation {
            repo_id,
            subject,
            seen,
            error: match seen {
                Seen::Failed { .. } => Some(("upstream_auth_failed", "refused")),
                _ => None,
            },
            at: t0(),
        })
        .await
        .unwrap()
}

/// (target id, event) of every delivery, oldest first.
async fn queued(store: &dyn Store, targets: &[i64]) -> Vec<(i64, NotifyEvent)> {
    let mut all = Vec::new();
    for t in targets {
        for d in store.list_target_deliveries(*t, 100).await.unwrap() {
            all.push((d.id, d.target_id, d.facts.event));
        }
    }
    all.sort_by_key(|(id, _, _)| *id);
    all.into_iter().map(|(_, t, e)| (t, e)).collect()
}

async fn targets_are_sealed_scoped_and_changed(db: TestDb) {
    let s = db.store.as_ref();
    let team = account(s, "team").await;
    let made = s
        .create_notification_target(
            &webhook(Some(team), Some(vec![NotifyEvent::SyncFailed])),
            t0(),
        )
        .await
        .unwrap();
    assert_eq!(made.kind, TargetKind::Webhook);
    assert_eq!(made.owner.as_deref(), Some("team"));
    assert_eq!(made.url_origin.as_deref(), Some("https://receiver.example"));
    assert!(made.has_secret && made.enabled);
    assert_eq!(made.events, Some(vec![NotifyEvent::SyncFailed]));
    let slack = s
        .create_notification_target(
            &NewNotificationTarget {
                kind: TargetKind::Slack,
                url: Some(SecretString::from(SLACK_URL.to_owned())),
                url_origin: Some("https://hooks.slack.com".into()),
                secret: None,
                ..webhook(None, None)
            },
            t0(),
        )
        .await
        .unwrap();
    assert!(!slack.has_secret && slack.owner.is_none() && slack.events.is_none());
    let mail = s
        .create_notification_target(
            &NewNotificationTarget {
                kind: TargetKind::Email,
                url: None,
                url_origin: None,
                secret: None,
                email_to: vec!["a@example.org".into(), "b@example.org".into()],
                ..webhook(None, None)
            },
            t0(),
        )
        .await
        .unwrap();
    assert_eq!(mail.email_to, ["a@example.org", "b@example.org"]);
    let listed = s.list_notification_targets().await.unwrap();
    assert_eq!(listed, vec![made.clone(), slack.clone(), mail.clone()]);

    // Sealed at rest: neither the secret nor the URL's token is in the table.
    let leaks = match db.backend {
        Backend::Sqlite => format!(
            "notification_targets WHERE instr(secret, CAST('{SECRET}' AS BLOB)) > 0 \
             OR instr(url, CAST('token-never' AS BLOB)) > 0"
        ),
        Backend::Postgres => format!(
            "notification_targets WHERE position(convert_to('{SECRET}', 'UTF8') in secret) > 0 \
             OR position(convert_to('token-never', 'UTF8') in url) > 0"
        ),
    };
    assert_eq!(db.count(&leaks).await, 0);

    // An owner that does not exist.
    let e = s
        .create_notification_target(&webhook(Some(9999), None), t0())
        .await
        .unwrap_err();
    assert!(matches!(e, StoreError::NotFound), "{e:?}");

    // Changes, field by field.
    let changed = s
        .update_notification_target(
            made.id,
            &NotificationTargetUpdate {
                url: Some((
                    SecretString::from("http://other.example:8080/x".to_owned()),
                    "http://other.example:8080".into(),
                )),
                secret: Some(None),
                events: Some(None),
                description: Some("ops".into()),
                ..Default::default()
            },
            t0() + secs(5),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        changed.url_origin.as_deref(),
        Some("http://other.example:8080")
    );
    assert!(!changed.has_secret && changed.events.is_none());
    assert_eq!(changed.description, "ops");
    assert_eq!(changed.updated_at, t0() + secs(5));
    assert_eq!(changed.created_at, made.created_at);
    assert!(s
        .update_notification_target(9999, &NotificationTargetUpdate::default(), t0())
        .await
        .unwrap()
        .is_none());

    // The claimed delivery carries the opened URL and secret.
    let test = s
        .queue_test_delivery(slack.id, t0())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(test.facts.event, NotifyEvent::Test);
    assert!(test.facts.repo_id.is_none());
    let claimed = s
        .claim_delivery("sender", t0(), LEASE)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(claimed.delivery.id, test.id);
    assert_eq!(claimed.kind, TargetKind::Slack);
    assert_eq!(claimed.url.unwrap().expose_secret(), SLACK_URL);
    assert!(s.queue_test_delivery(9999, t0()).await.unwrap().is_none());

    // Deleting a target deletes its deliveries; deleting its owner deletes the target.
    assert!(s.delete_notification_target(slack.id).await.unwrap());
    assert!(!s.delete_notification_target(slack.id).await.unwrap());
    assert_eq!(db.count("notification_deliveries").await, 0);
    assert!(s.delete_account(team).await.unwrap());
    assert!(s.get_notification_target(made.id).await.unwrap().is_none());
}

async fn an_episode_is_told_once_per_target(db: TestDb) {
    let s = db.store.as_ref();
    let team = account(s, "team").await;
    let repo = mirror(s, "Team", "app").await;
    let other = mirror(s, "other", "lib").await;
    let everything = s
        .create_notification_target(&webhook(None, None), t0())
        .await
        .unwrap()
        .id;
    let team_failures = s
        .create_notification_target(
            &webhook(Some(team), Some(vec![NotifyEvent::SyncFailed])),
            t0(),
        )
        .await
        .unwrap()
        .id;
    let disabled = s
        .create_notification_target(
            &NewNotificationTarget {
                enabled: false,
                ..webhook(None, None)
            },
            t0(),
        )
        .await
        .unwrap()
        .id;
    let targets = [everything, team_failures, disabled];
    use NotifyEvent::*;

    // A success outside an episode tells nothing and writes nothing.
    assert!(observe(s, repo, &Subject::Sync, Seen::Succeeded)
        .await
        .is_empty());
    assert_eq!(db.count("notification_episodes").await, 0);
    // The first failure: one delivery to each enabled target covering the repository
    // (owners match regardless of case).
    assert_eq!(observe(s, repo, &Subject::Sync, failed()).await.len(), 2);
    assert!(observe(s, repo, &Subject::Sync, failed()).await.is_empty());
    // The pause: to the target of every event only.
    let paused = Seen::Failed {
        host_key: false,
        paused: true,
    };
    assert_eq!(observe(s, repo, &Subject::Sync, paused).await.len(), 1);
    assert!(observe(s, repo, &Subject::Sync, paused).await.is_empty());
    // LFS has its own episodes (and its own words, which the team's target does not want).
    assert_eq!(observe(s, repo, &Subject::Lfs, failed()).await.len(), 1);
    // Another owner's repository: the operator-wide target only.
    assert_eq!(observe(s, other, &Subject::Sync, failed()).await.len(), 1);
    // The recovery, once.
    assert_eq!(
        observe(s, repo, &Subject::Sync, Seen::Succeeded)
            .await
            .len(),
        1
    );
    assert!(observe(s, repo, &Subject::Sync, Seen::Succeeded)
        .await
        .is_empty());
    let push = Subject::PushMirror {
        id: 4,
        label: "https://gitlab.example/team/app".into(),
    };
    assert_eq!(observe(s, repo, &push, failed()).await.len(), 1);
    assert_eq!(
        queued(s, &targets).await,
        vec![
            (everything, SyncFailed),
            (team_failures, SyncFailed),
            (everything, Paused),
            (everything, LfsFailed),
            (everything, SyncFailed),
            (everything, SyncRecovered),
            (everything, PushMirrorFailed),
        ]
    );
    // What a delivery says.
    let list = s.list_target_deliveries(everything, 100).await.unwrap();
    let pushed = &list[0];
    assert_eq!(pushed.facts.subject, Some(push));
    assert_eq!(pushed.facts.repo_owner.as_deref(), Some("Team"));
    assert_eq!(pushed.facts.repo_name.as_deref(), Some("app"));
    assert_eq!(
        pushed.facts.error_code.as_deref(),
        Some("upstream_auth_failed")
    );
    assert_eq!(pushed.status, DeliveryStatus::Pending);
    assert_eq!((pushed.attempts, pushed.next_attempt_at), (0, Some(t0())));
    let recovered = &list[1];
    assert_eq!(recovered.facts.event, SyncRecovered);
    assert!(recovered.facts.error_code.is_none());
    assert_eq!(recovered.facts.episode_started_at, Some(t0()));

    // A changed host key opens with the most specific event the target wants.
    assert_eq!(
        observe(
            s,
            repo,
            &Subject::Sync,
            Seen::Failed {
                host_key: true,
                paused: true
            }
        )
        .await
        .len(),
        2
    );
    let events = queued(s, &targets).await;
    assert_eq!(
        &events[events.len() - 2..],
        [(everything, HostKeyChanged), (team_failures, SyncFailed)]
    );

    // A deleted repository tells nothing more, and its episodes go with it.
    assert!(s.delete_repo(repo).await.unwrap());
    assert!(observe(s, repo, &Subject::Sync, failed()).await.is_empty());
    assert_eq!(
        db.count(&format!("notification_episodes WHERE repo_id = {repo}"))
            .await,
        0
    );
}

async fn one_episode_whatever_the_number_of_writers(db: TestDb) {
    let repo = mirror(db.store.as_ref(), "team", "app").await;
    let target = db
        .store
        .create_notification_target(&webhook(None, None), t0())
        .await
        .unwrap()
        .id;
    let mut stores = vec![db.store.clone()];
    for _ in 0..3 {
        stores.push(db.reopen().await);
    }
    for round in 0..3 {
        let seen = if round % 2 == 0 {
            failed()
        } else {
            Seen::Succeeded
        };
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..16 {
            let store = stores[i % stores.len()].clone();
            tasks.spawn(async move {
                observe(store.as_ref(), repo, &Subject::Sync, seen)
                    .await
                    .len()
            });
        }
        let mut told = 0;
        while let Some(n) = tasks.join_next().await {
            told += n.unwrap();
        }
        assert_eq!(told, 1, "round {round}: one delivery whatever the writers");
    }
    let events: Vec<NotifyEvent> = queued(db.store.as_ref(), &[target])
        .await
        .into_iter()
        .map(|(_, e)| e)
        .collect();
    assert_eq!(
        events,
        [
            NotifyEvent::SyncFailed,
            NotifyEvent::SyncRecovered,
            NotifyEvent::SyncFailed
        ]
    );
}

async fn the_outbox_leases_retries_and_gives_up(db: TestDb) {
    let s = db.store.as_ref();
    let repo = mirror(s, "team", "app").await;
    let target = s
        .create_notification_target(&webhook(None, None), t0())
        .await
        .unwrap()
        .id;
    let ids = observe(s, repo, &Subject::Sync, failed()).await;
    assert_eq!(ids.len(), 1);

    // One sender at a time, for its lease.
    let first = s.claim_delivery("a", t0(), LEASE).await.unwrap().unwrap();
    assert_eq!((first.delivery.id, first.delivery.attempts), (ids[0], 1));
    assert_eq!(first.secret.unwrap().expose_secret(), SECRET);
    assert!(s.claim_delivery("b", t0(), LEASE).await.unwrap().is_none());
    // A sender that died loses it when the lease runs out; its late answer is refused.
    let later = t0() + secs(61);
    let again = s.claim_delivery("b", later, LEASE).await.unwrap().unwrap();
    assert_eq!(again.delivery.attempts, 2);
    let retry = DeliveryAttempt {
        at: later,
        status: DeliveryStatus::Pending,
        next_attempt_at: Some(later + secs(10)),
        answer_status: Some(503),
        answer: "503 Service Unavailable".into(),
    };
    assert!(!s.finish_delivery(ids[0], "a", &retry).await.unwrap());
    assert!(s.finish_delivery(ids[0], "b", &retry).await.unwrap());
    // Not before its next attempt.
    assert!(s
        .claim_delivery("c", later + secs(9), LEASE)
        .await
        .unwrap()
        .is_none());
    let third = s
        .claim_delivery("c", later + secs(10), LEASE)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(third.delivery.attempts, 3);
    assert_eq!(third.delivery.last_status, Some(503));
    let done = DeliveryAttempt {
        at: later + secs(11),
        status: DeliveryStatus::Delivered,
        next_attempt_at: None,
        answer_status: Some(200),
        answer: "200 OK".into(),
    };
    assert!(s.finish_delivery(ids[0], "c", &done).await.unwrap());
    let d = &s.list_target_deliveries(target, 10).await.unwrap()[0];
    assert_eq!(d.status, DeliveryStatus::Delivered);
    assert_eq!(d.delivered_at, Some(later + secs(11)));
    assert_eq!(d.last_attempt_at, Some(later + secs(11)));
    assert_eq!(d.last_answer.as_deref(), Some("200 OK"));
    assert!(d.next_attempt_at.is_none());
    assert!(s
        .claim_delivery("c", later + secs(3600), LEASE)
        .await
        .unwrap()
        .is_none());

    // Given up.
    assert!(
        observe(s, repo, &Subject::Sync, Seen::Succeeded)
            .await
            .len()
            == 1
    );
    let claimed = s.claim_delivery("a", later, LEASE).await.unwrap().unwrap();
    let give_up = DeliveryAttempt {
        at: later,
        status: DeliveryStatus::Failed,
        next_attempt_at: Some(later + secs(10)),
        answer_status: None,
        answer: "could not connect; given up after 1 attempts".into(),
    };
    assert!(s
        .finish_delivery(claimed.delivery.id, "a", &give_up)
        .await
        .unwrap());
    let d = &s.list_target_deliveries(target, 10).await.unwrap()[0];
    assert_eq!(d.status, DeliveryStatus::Failed);
    assert!(d.next_attempt_at.is_none() && d.delivered_at.is_none());

    // A disabled target's pending deliveries are given up, and nothing of it is claimed but
    // a test.
    observe(s, repo, &Subject::Sync, failed()).await;
    s.update_notification_target(
        target,
        &NotificationTargetUpdate {
            enabled: Some(false),
            ..Default::default()
        },
        later,
    )
    .await
    .unwrap()
    .unwrap();
    let d = &s.list_target_deliveries(target, 10).await.unwrap()[0];
    assert_eq!(
        (d.status, d.last_answer.as_deref()),
        (DeliveryStatus::Failed, Some("the target was disabled"))
    );
    assert!(observe(s, repo, &Subject::Sync, Seen::Succeeded)
        .await
        .is_empty());
    let test = s.queue_test_delivery(target, later).await.unwrap().unwrap();
    let claimed = s.claim_delivery("a", later, LEASE).await.unwrap().unwrap();
    assert_eq!(claimed.delivery.id, test.id);

    // Finished deliveries are pruned; pending ones never.
    assert_eq!(s.prune_target_deliveries(later + secs(1)).await.unwrap(), 3);
    assert_eq!(db.count("notification_deliveries").await, 1);
}

async fn stale_mirrors_are_noted_once(db: TestDb) {
    let s = db.store.as_ref();
    let repo = mirror(s, "team", "app").await;
    let primary = mirror(s, "team", "moved").await;
    let run = s
        .start_run(primary, mirrorhub_core::Trigger::Create, t0())
        .await
        .unwrap();
    let promoted = SyncResult {
        finished_at: t0(),
        outcome: Outcome::Success,
        error_code: None,
        error_message: None,
        ref_changes: vec![],
        branches: 1,
        tags: 0,
        head_ref: None,
        next_sync_at: None,
        pause: false,
        promote: true,
    };
    s.finish_run(run, primary, &promoted).await.unwrap();
    let target = s
        .create_notification_target(&webhook(None, Some(vec![NotifyEvent::Stale])), t0())
        .await
        .unwrap()
        .id;
    let grace = Duration::from_secs(3600);
    // Not yet: the interval (a day) plus the grace has not passed.
    let soon = t0() + secs(86_400 + 3599);
    assert!(s.stale_unnoted(soon, grace, 10).await.unwrap().is_empty());
    assert!(s.note_stale(repo, grace, soon).await.unwrap().is_empty());
    // Stale: noted once; a primary never is.
    let late = t0() + secs(86_400 + 3601);
    assert_eq!(s.stale_unnoted(late, grace, 10).await.unwrap(), vec![repo]);
    assert_eq!(s.note_stale(repo, grace, late).await.unwrap().len(), 1);
    assert!(s.note_stale(repo, grace, late).await.unwrap().is_empty());
    assert!(s.stale_unnoted(late, grace, 10).await.unwrap().is_empty());
    assert_eq!(s.list_target_deliveries(target, 10).await.unwrap().len(), 1);
    // A success ends the episode; the next staleness is told again.
    let run = s
        .start_run(repo, mirrorhub_core::Trigger::Manual, late)
        .await
        .unwrap();
    s.finish_run(
        run,
        repo,
        &SyncResult {
            promote: false,
            next_sync_at: Some(late + secs(86_400)),
            finished_at: late,
            ..promoted
        },
    )
    .await
    .unwrap();
    // A success recorded meanwhile wins over a stale check that found it stale before.
    assert!(s.note_stale(repo, grace, late).await.unwrap().is_empty());
    observe(s, repo, &Subject::Sync, Seen::Succeeded).await;
    let much_later = late + secs(86_400 + 3601);
    assert_eq!(
        s.stale_unnoted(much_later, grace, 10).await.unwrap(),
        vec![repo]
    );
    assert_eq!(
        s.note_stale(repo, grace, much_later).await.unwrap().len(),
        1
    );
    assert_eq!(s.list_target_deliveries(target, 10).await.unwrap().len(), 2);
}

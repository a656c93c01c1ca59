//! Conformance of [`FidelityStore`] (backups, ref filters, freshness, webhook silence) on
//! SQLite and, with `MIRRORHUB_TEST_POSTGRES_URL`, PostgreSQL. Time is passed in: expiry and
//! silence checks are tested with a clock the test moves.

// The harness serves the conformance suite too; this file uses part of it.
#[allow(dead_code)]
#[macro_use]
mod harness;

use std::time::Duration;

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use harness::TestDb;
use mirrorhub_core::{
    Mode, Outcome, OwnerName, RefFilterSpec, RepoName, RepoState, Trigger, Visibility,
};
use mirrorhub_store::{
    DeliveryEntry, NewBackup, NewDelivery, NewRepo, Silence, Store, StoreError, SyncResult,
};

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 3, 1, 12, 0, 0).unwrap() + TimeDelta::milliseconds(123)
}

fn secs(n: i64) -> TimeDelta {
    TimeDelta::seconds(n)
}

async fn mirror(store: &dyn Store, name: &str) -> i64 {
    store
        .create_repo(
            NewRepo {
                owner: OwnerName::parse("team").unwrap(),
                name: RepoName::parse(name).unwrap(),
                mode: Mode::Mirror,
                visibility: Visibility::Public,
                description: String::new(),
                upstream_url: format!("https://example.org/team/{name}.git"),
                credentials: None,
                sync_interval_secs: 86_400,
                ssh_key_id: None,
                known_hosts: None,
            },
            t0(),
        )
        .await
        .unwrap()
        .id
}

/// Finishes a first copy, so the repository is `ready`.
async fn copied(store: &dyn Store, repo_id: i64, at: DateTime<Utc>) -> i64 {
    let run = store.start_run(repo_id, Trigger::Create, at).await.unwrap();
    store
        .finish_run(
            run,
            repo_id,
            &SyncResult {
                finished_at: at,
                outcome: Outcome::Success,
                error_code: None,
                error_message: None,
                ref_changes: vec![],
                branches: 1,
                tags: 0,
                head_ref: Some("refs/heads/main".into()),
                next_sync_at: Some(at + secs(86_400)),
                pause: false,
                promote: false,
            },
        )
        .await
        .unwrap();
    run
}

fn backup(name: &str, at: DateTime<Utc>) -> NewBackup {
    NewBackup {
        ref_name: format!("refs/heads/{name}"),
        old_oid: "1111111111111111111111111111111111111111".into(),
        backup_ref: format!("refs/mirrorhub/backup/{}/refs/heads/{name}", at.timestamp()),
        created_at: at,
    }
}

async fn backups_are_recorded_listed_linked_and_expired(db: TestDb) {
    let s = db.store.as_ref();
    let a = mirror(s, "a").await;
    let b = mirror(s, "b").await;
    let run = copied(s, a, t0()).await;
    let first = vec![backup("main", t0()), backup("dev", t0() + secs(1))];
    s.record_backups(a, Some(run), &first).await.unwrap();
    // Recorded again (a crash recovery finding the same refs): nothing doubles.
    s.record_backups(a, None, &first).await.unwrap();
    s.record_backups(b, None, &[backup("main", t0() + secs(100))])
        .await
        .unwrap();
    assert_eq!(db.count("repo_backups").await, 3);

    let listed = s.list_backups(a, 10).await.unwrap();
    assert_eq!(
        listed
            .iter()
            .map(|x| x.ref_name.as_str())
            .collect::<Vec<_>>(),
        ["refs/heads/dev", "refs/heads/main"],
        "newest first"
    );
    assert_eq!(listed[0].run_id, Some(run));
    assert_eq!(listed[1].created_at, t0());
    assert_eq!(s.list_backups(a, 1).await.unwrap().len(), 1);
    let one = s.get_backup(a, listed[0].id).await.unwrap().unwrap();
    assert_eq!(one, listed[0]);
    assert_eq!(
        s.get_backup(b, listed[0].id).await.unwrap(),
        None,
        "another repository's"
    );
    let of_run = s.backups_of_runs(&[run, 99_999]).await.unwrap();
    assert_eq!(of_run.len(), 2);
    assert!(s.backups_of_runs(&[]).await.unwrap().is_empty());

    // Expiry with a moving clock: oldest first, only those made before the cutoff.
    assert!(s.expired_backups(t0(), 10).await.unwrap().is_empty());
    let due = s.expired_backups(t0() + secs(2), 10).await.unwrap();
    assert_eq!(due.len(), 2);
    assert_eq!(due[0].ref_name, "refs/heads/main");
    assert_eq!(
        s.expired_backups(t0() + secs(1000), 1).await.unwrap().len(),
        1
    );
    assert!(s.delete_backup(due[0].id).await.unwrap());
    assert!(!s.delete_backup(due[0].id).await.unwrap());
    assert_eq!(s.list_backups(a, 10).await.unwrap().len(), 1);

    // They go with their repository.
    assert!(s.delete_repo(a).await.unwrap());
    assert_eq!(db.count("repo_backups").await, 1);
}

async fn ref_filters_are_set_replaced_and_removed(db: TestDb) {
    let s = db.store.as_ref();
    let a = mirror(s, "a").await;
    assert_eq!(s.ref_filter(a).await.unwrap(), None);
    let spec = RefFilterSpec {
        include: vec!["main".into(), "release/*".into()],
        exclude: vec!["re:tmp-.*".into()],
    };
    s.set_ref_filter(a, Some(&spec)).await.unwrap();
    assert_eq!(s.ref_filter(a).await.unwrap(), Some(spec.clone()));
    let narrower = RefFilterSpec {
        include: vec!["main".into()],
        exclude: vec![],
    };
    s.set_ref_filter(a, Some(&narrower)).await.unwrap();
    assert_eq!(s.ref_filters().await.unwrap(), vec![(a, narrower)]);
    // An empty spec is no filter.
    s.set_ref_filter(a, Some(&RefFilterSpec::default()))
        .await
        .unwrap();
    assert_eq!(s.ref_filter(a).await.unwrap(), None);
    assert!(matches!(
        s.set_ref_filter(9999, None).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        s.set_ref_filter(9999, Some(&spec)).await,
        Err(StoreError::NotFound)
    ));
    s.set_ref_filter(a, Some(&spec)).await.unwrap();
    assert!(s.delete_repo(a).await.unwrap());
    assert_eq!(db.count("repo_ref_filters").await, 0);
}

async fn freshness_and_silence_round_trip(db: TestDb) {
    let s = db.store.as_ref();
    let a = mirror(s, "a").await;
    assert_eq!(s.freshness(a).await.unwrap(), None);
    s.record_behind(a, 3, t0(), Some(t0())).await.unwrap();
    let f = s.freshness(a).await.unwrap().unwrap();
    assert_eq!(
        (f.behind_refs, f.checked_at, f.behind_since),
        (3, Some(t0()), Some(t0()))
    );
    s.record_behind(a, 0, t0() + secs(5), None).await.unwrap();
    let silence = Silence {
        checked_at: Some(t0() + secs(6)),
        suspected_at: Some(t0() + secs(6)),
        silent_since: None,
        notified_at: None,
    };
    s.set_silence(a, &silence).await.unwrap();
    let f = s.freshness(a).await.unwrap().unwrap();
    assert_eq!((f.behind_refs, f.behind_since), (0, None));
    assert_eq!(f.silence_suspected_at, Some(t0() + secs(6)));
    // Silence and freshness are written apart and keep each other.
    s.record_behind(a, 1, t0() + secs(7), Some(t0() + secs(7)))
        .await
        .unwrap();
    assert_eq!(
        s.freshness(a).await.unwrap().unwrap().silence_checked_at,
        Some(t0() + secs(6))
    );
    let all = s.all_freshness().await.unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].0, a);
}

async fn silence_checks_are_due_for_connected_copied_mirrors(db: TestDb) {
    let s = db.store.as_ref();
    let every = Duration::from_secs(3600);
    let connected = mirror(s, "connected").await;
    let quiet = mirror(s, "never-delivered").await;
    let cloning = mirror(s, "cloning").await;
    copied(s, connected, t0()).await;
    copied(s, quiet, t0()).await;
    for repo in [connected, cloning] {
        s.record_delivery(
            &NewDelivery {
                forge: "github".into(),
                delivery_id: None,
                event: "ping".into(),
                entries: vec![DeliveryEntry {
                    repo_id: repo,
                    sync: false,
                    result: "connected".into(),
                }],
            },
            t0(),
        )
        .await
        .unwrap();
    }
    // Not while the webhook's own delivery is recent: the first check comes one interval
    // after it (a delivery shows the webhook alive).
    assert!(s
        .due_silence_checks(t0() + secs(10), every, 10)
        .await
        .unwrap()
        .is_empty());
    let now = t0() + secs(3600);
    assert_eq!(
        s.due_silence_checks(now, every, 10).await.unwrap(),
        [connected]
    );
    s.set_silence(
        connected,
        &Silence {
            checked_at: Some(now),
            ..Silence::default()
        },
    )
    .await
    .unwrap();
    assert!(s
        .due_silence_checks(now, every, 10)
        .await
        .unwrap()
        .is_empty());
    assert!(s
        .due_silence_checks(now + secs(3599), every, 10)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        s.due_silence_checks(now + secs(3600), every, 10)
            .await
            .unwrap(),
        [connected]
    );
    // A suspicion is looked at again after a tenth of the interval.
    s.set_silence(
        connected,
        &Silence {
            checked_at: Some(now),
            suspected_at: Some(now),
            ..Silence::default()
        },
    )
    .await
    .unwrap();
    assert!(s
        .due_silence_checks(now + secs(359), every, 10)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        s.due_silence_checks(now + secs(360), every, 10)
            .await
            .unwrap(),
        [connected]
    );
    // Paused mirrors are not checked.
    let repo = s.get_repo_by_id(connected).await.unwrap().unwrap();
    assert_eq!(repo.state, RepoState::Ready);
    let run = s
        .start_run(connected, Trigger::Schedule, now)
        .await
        .unwrap();
    s.finish_run(
        run,
        connected,
        &SyncResult {
            finished_at: now,
            outcome: Outcome::Failed,
            error_code: Some("upstream_auth_failed".into()),
            error_message: Some("no".into()),
            ref_changes: vec![],
            branches: 1,
            tags: 0,
            head_ref: None,
            next_sync_at: None,
            pause: true,
            promote: false,
        },
    )
    .await
    .unwrap();
    assert!(s
        .due_silence_checks(now + secs(99_999), every, 10)
        .await
        .unwrap()
        .is_empty());
}

conformance!(
    backups_are_recorded_listed_linked_and_expired,
    ref_filters_are_set_replaced_and_removed,
    freshness_and_silence_round_trip,
    silence_checks_are_due_for_connected_copied_mirrors,
);

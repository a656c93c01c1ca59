//! The push mirror half of the store, on both backends: targets, their queue (the sync
//! queue's discipline: coalescing, one live lease per target, nothing before the first copy),
//! and their runs with what is known downstream.

// The harness is shared with the conformance suite, which uses the rest of it.
#[macro_use]
#[allow(dead_code)]
mod harness;

use std::time::Duration;

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use harness::{Backend, TestDb};
use mirrorhub_core::push_mirror::{PushRefKind, PushRefResult, PushTrigger};
use mirrorhub_core::{Credentials, Mode, Outcome, OwnerName, RepoName, Trigger, Visibility};
use mirrorhub_store::{NewPushMirror, NewRepo, PushMirrorUpdate, PushRunResult, Store, SyncResult};

conformance!(
    push_mirrors_are_created_listed_changed_and_deleted,
    push_jobs_coalesce_wait_for_the_first_copy_and_hold_one_lease_per_target,
    push_runs_record_refs_status_and_known_refs_together,
    due_push_mirrors_are_queued_by_the_scheduler,
);

const LEASE: Duration = Duration::from_secs(60);

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 3, 1, 12, 0, 0).unwrap() + TimeDelta::milliseconds(123)
}

fn secs(n: i64) -> TimeDelta {
    TimeDelta::seconds(n)
}

async fn repo(s: &dyn Store, name: &str, ready: bool) -> i64 {
    let id = s
        .create_repo(
            NewRepo {
                owner: OwnerName::parse("team").unwrap(),
                name: RepoName::parse(name).unwrap(),
                mode: Mode::Migrate,
                visibility: Visibility::Private,
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
        .id;
    if ready {
        make_ready(s, id).await;
    }
    id
}

async fn make_ready(s: &dyn Store, id: i64) {
    let run = s.start_run(id, Trigger::Create, t0()).await.unwrap();
    s.finish_run(
        run,
        id,
        &SyncResult {
            finished_at: t0(),
            outcome: Outcome::Success,
            error_code: None,
            error_message: None,
            ref_changes: vec![],
            branches: 1,
            tags: 0,
            head_ref: Some("refs/heads/main".into()),
            next_sync_at: None,
            pause: false,
            promote: false,
        },
    )
    .await
    .unwrap();
}

fn new_mirror(repo_id: i64, url: &str) -> NewPushMirror {
    NewPushMirror {
        repo_id,
        url: url.into(),
        credentials: None,
        ssh_key_id: None,
        known_hosts: None,
        only_branches: None,
        tags: true,
        prune: true,
        force: true,
        enabled: true,
        sync_interval_secs: 86_400,
        next_push_at: Some(t0() + secs(86_400)),
    }
}

async fn push_mirrors_are_created_listed_changed_and_deleted(db: TestDb) {
    let s = db.store.as_ref();
    let r = repo(s, "app", true).await;
    let created = s
        .create_push_mirror(
            &NewPushMirror {
                credentials: Some(Credentials::new(Some("ci"), "t0ken-secret").unwrap()),
                only_branches: Some(vec!["main".into(), "release/*".into()]),
                force: false,
                ..new_mirror(r, "https://backup.example.org/app.git")
            },
            t0(),
        )
        .await
        .unwrap();
    assert_eq!(created.repo_id, r);
    assert_eq!(
        created.only_branches.as_deref(),
        Some(&["main".to_owned(), "release/*".to_owned()][..])
    );
    assert!(!created.force && created.prune && created.tags && created.enabled);
    assert_eq!(created.created_at, t0());
    assert_eq!(created.next_push_at, Some(t0() + secs(86_400)));
    assert!(created.diverged.is_empty());
    let creds = created.credentials.clone().unwrap();
    assert_eq!(
        (creds.username.as_str(), creds.expose_secret()),
        ("ci", "t0ken-secret")
    );
    let second = s
        .create_push_mirror(&new_mirror(r, "git://b.example.org/app.git"), t0())
        .await
        .unwrap();
    let listed: Vec<i64> = s
        .list_push_mirrors(r)
        .await
        .unwrap()
        .iter()
        .map(|m| m.id)
        .collect();
    assert_eq!(listed, [created.id, second.id]);
    assert!(matches!(
        s.create_push_mirror(&new_mirror(r + 100, "git://x/y.git"), t0())
            .await,
        Err(mirrorhub_store::StoreError::NotFound)
    ));

    let changed = s
        .update_push_mirror(
            created.id,
            &PushMirrorUpdate {
                credentials: Some(None),
                only_branches: Some(None),
                force: Some(true),
                enabled: Some(false),
                next_push_at: Some(None),
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .unwrap();
    assert!(changed.credentials.is_none() && changed.only_branches.is_none());
    assert!(changed.force && !changed.enabled && changed.next_push_at.is_none());
    assert_eq!(changed.url, created.url, "untouched fields stay");
    assert!(s
        .update_push_mirror(9999, &PushMirrorUpdate::default())
        .await
        .unwrap()
        .is_none());

    // Deleting the repository takes its push mirrors, jobs and runs along.
    s.enqueue_push(second.id, PushTrigger::Manual, t0())
        .await
        .unwrap();
    assert!(s.delete_push_mirror(created.id).await.unwrap());
    assert!(!s.delete_push_mirror(created.id).await.unwrap());
    assert!(s.delete_repo(r).await.unwrap());
    assert!(s.get_push_mirror(second.id).await.unwrap().is_none());
    assert_eq!(db.count("push_jobs").await, 0);
}

async fn push_jobs_coalesce_wait_for_the_first_copy_and_hold_one_lease_per_target(db: TestDb) {
    let s = db.store.as_ref();
    let r = repo(s, "app", false).await;
    let a = s
        .create_push_mirror(&new_mirror(r, "git://a/x.git"), t0())
        .await
        .unwrap();
    let b = s
        .create_push_mirror(&new_mirror(r, "git://b/x.git"), t0())
        .await
        .unwrap();
    let off = s
        .create_push_mirror(
            &NewPushMirror {
                enabled: false,
                ..new_mirror(r, "git://c/x.git")
            },
            t0(),
        )
        .await
        .unwrap();
    assert!(s
        .enqueue_push(a.id, PushTrigger::Create, t0() + secs(5))
        .await
        .unwrap());
    assert!(
        !s.enqueue_push(a.id, PushTrigger::Push, t0()).await.unwrap(),
        "merged"
    );
    assert_eq!(
        s.enqueue_repo_pushes(r, PushTrigger::Push, t0() + secs(1))
            .await
            .unwrap(),
        1,
        "only b is new; the disabled target is left out"
    );
    assert_eq!(db.count("push_jobs").await, 2);
    assert!(matches!(
        s.enqueue_push(9999, PushTrigger::Manual, t0()).await,
        Err(mirrorhub_store::StoreError::NotFound)
    ));
    let _ = off;

    let now = t0() + secs(10);
    assert!(
        s.claim_push_job("w", now, LEASE).await.unwrap().is_none(),
        "nothing runs before the repository's first copy is complete"
    );
    make_ready(s, r).await;
    let first = s.claim_push_job("w1", now, LEASE).await.unwrap().unwrap();
    assert_eq!(
        (
            first.mirror_id,
            first.repo_id,
            first.trigger,
            first.attempts
        ),
        (a.id, r, PushTrigger::Push, 1),
        "the earliest due job, with the trigger of the earlier request"
    );
    // A follow-up for a target that runs waits for its lease.
    assert!(s.enqueue_push(a.id, PushTrigger::Sync, t0()).await.unwrap());
    let second = s.claim_push_job("w2", now, LEASE).await.unwrap().unwrap();
    assert_eq!(second.mirror_id, b.id);
    assert!(s.claim_push_job("w3", now, LEASE).await.unwrap().is_none());
    assert!(s
        .renew_push_lease(first.id, "w1", now, LEASE)
        .await
        .unwrap());
    assert!(!s
        .renew_push_lease(first.id, "other", now, LEASE)
        .await
        .unwrap());

    // After the lease runs out, another worker takes the job over (not the follow-up beside it).
    let later = now + secs(61);
    let taken = s.claim_push_job("w4", later, LEASE).await.unwrap().unwrap();
    assert_eq!((taken.id, taken.attempts), (first.id, 2));
    assert!(!s
        .renew_push_lease(first.id, "w1", later, LEASE)
        .await
        .unwrap());
    s.complete_push_job(taken.id, "w4").await.unwrap();
    let follow_up = s.claim_push_job("w4", later, LEASE).await.unwrap().unwrap();
    assert_eq!(
        (follow_up.mirror_id, follow_up.trigger),
        (a.id, PushTrigger::Sync)
    );

    // Released: back in the queue, or folded into a pending job of the same target.
    s.release_push_job(follow_up.id, "w4", later).await.unwrap();
    let again = s.claim_push_job("w5", later, LEASE).await.unwrap();
    assert!(again.is_some_and(|j| j.mirror_id == b.id || j.id == follow_up.id));
    let released = s.release_all_push_claims().await.unwrap();
    match db.backend {
        Backend::Sqlite => assert!(released >= 1),
        Backend::Postgres => assert_eq!(released, 0),
    }
}

fn pushed(name: &str, old: Option<&str>, new: Option<&str>, kind: PushRefKind) -> PushRefResult {
    PushRefResult {
        name: name.into(),
        old: old.map(Into::into),
        new: new.map(Into::into),
        kind,
        reason: None,
    }
}

async fn push_runs_record_refs_status_and_known_refs_together(db: TestDb) {
    let s = db.store.as_ref();
    let r = repo(s, "app", true).await;
    let m = s
        .create_push_mirror(&new_mirror(r, "git://a/x.git"), t0())
        .await
        .unwrap();
    let run = s
        .start_push_run(m.id, PushTrigger::Push, t0())
        .await
        .unwrap();
    assert_eq!(
        s.get_push_mirror(m.id).await.unwrap().unwrap().last_run_at,
        Some(t0())
    );
    let refs = vec![
        pushed(
            "refs/heads/main",
            Some("a1"),
            Some("b2"),
            PushRefKind::FastForward,
        ),
        pushed("refs/heads/old", Some("c3"), None, PushRefKind::Deleted),
        pushed(
            "refs/heads/theirs",
            Some("d4"),
            Some("e5"),
            PushRefKind::Diverged,
        ),
        PushRefResult {
            reason: Some("pre-receive hook declined".into()),
            ..pushed("refs/tags/v1", None, Some("f6"), PushRefKind::Rejected)
        },
    ];
    s.finish_push_run(
        run,
        m.id,
        &PushRunResult {
            finished_at: t0() + secs(1),
            outcome: Outcome::Success,
            error_code: None,
            error_message: None,
            refs: refs.clone(),
            diverged: Some(vec!["refs/heads/theirs".into()]),
            known: vec![
                ("refs/heads/main".into(), "b2".into()),
                ("refs/heads/same".into(), "s7".into()),
            ],
            forgotten: vec!["refs/heads/old".into()],
            next_push_at: Some(t0() + secs(86_401)),
        },
    )
    .await
    .unwrap();
    let after = s.get_push_mirror(m.id).await.unwrap().unwrap();
    assert_eq!(after.last_success_at, Some(t0() + secs(1)));
    assert_eq!(after.diverged, ["refs/heads/theirs"]);
    assert_eq!(after.next_push_at, Some(t0() + secs(86_401)));
    let known = s.pushed_refs(m.id).await.unwrap();
    assert_eq!(known.get("refs/heads/main").map(String::as_str), Some("b2"));
    assert_eq!(known.len(), 2);
    let runs = s.list_push_runs(m.id, 10).await.unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].refs, refs);
    assert_eq!(runs[0].outcome, Outcome::Success);

    // A failure keeps the diverged refs it could not look at, counts, and says why.
    let run2 = s
        .start_push_run(m.id, PushTrigger::Schedule, t0() + secs(2))
        .await
        .unwrap();
    s.finish_push_run(
        run2,
        m.id,
        &PushRunResult {
            finished_at: t0() + secs(3),
            outcome: Outcome::Failed,
            error_code: Some("upstream_auth_failed".into()),
            error_message: Some("wrong token".into()),
            refs: vec![],
            diverged: None,
            known: vec![("refs/heads/main".into(), "c9".into())],
            forgotten: vec![],
            next_push_at: Some(t0() + secs(60)),
        },
    )
    .await
    .unwrap();
    let failed = s.get_push_mirror(m.id).await.unwrap().unwrap();
    assert_eq!(
        failed.last_error_code.as_deref(),
        Some("upstream_auth_failed")
    );
    assert_eq!(failed.consecutive_failures, 1);
    assert_eq!(failed.diverged, ["refs/heads/theirs"]);
    assert_eq!(failed.last_success_at, Some(t0() + secs(1)));
    assert_eq!(s.pushed_refs(m.id).await.unwrap()["refs/heads/main"], "c9");
    let runs = s.list_push_runs(m.id, 10).await.unwrap();
    assert_eq!(runs.iter().map(|r| r.id).collect::<Vec<_>>(), [run2, run]);

    // A run left running by a dead worker is closed as interrupted.
    let run3 = s
        .start_push_run(m.id, PushTrigger::Manual, t0() + secs(4))
        .await
        .unwrap();
    assert_eq!(
        s.fail_interrupted_push_runs(m.id, t0() + secs(5))
            .await
            .unwrap(),
        1
    );
    let runs = s.list_push_runs(m.id, 1).await.unwrap();
    assert_eq!((runs[0].id, runs[0].outcome), (run3, Outcome::Failed));
    assert_eq!(runs[0].error_code.as_deref(), Some("interrupted"));
    assert!(s
        .finish_push_run(
            run3,
            m.id,
            &PushRunResult {
                finished_at: t0(),
                outcome: Outcome::Running,
                error_code: None,
                error_message: None,
                refs: vec![],
                diverged: None,
                known: vec![],
                forgotten: vec![],
                next_push_at: None,
            }
        )
        .await
        .is_err());

    // A new downstream forgets what was known about the old one.
    s.update_push_mirror(
        m.id,
        &PushMirrorUpdate {
            url: Some("git://new/x.git".into()),
            forget_refs: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert!(s.pushed_refs(m.id).await.unwrap().is_empty());
    assert!(s
        .get_push_mirror(m.id)
        .await
        .unwrap()
        .unwrap()
        .diverged
        .is_empty());
}

async fn due_push_mirrors_are_queued_by_the_scheduler(db: TestDb) {
    let s = db.store.as_ref();
    let r = repo(s, "app", true).await;
    let due = s
        .create_push_mirror(
            &NewPushMirror {
                next_push_at: Some(t0()),
                ..new_mirror(r, "git://a/x.git")
            },
            t0(),
        )
        .await
        .unwrap();
    let later = s
        .create_push_mirror(
            &NewPushMirror {
                next_push_at: Some(t0() + secs(3600)),
                ..new_mirror(r, "git://b/x.git")
            },
            t0(),
        )
        .await
        .unwrap();
    s.create_push_mirror(
        &NewPushMirror {
            enabled: false,
            next_push_at: Some(t0()),
            ..new_mirror(r, "git://c/x.git")
        },
        t0(),
    )
    .await
    .unwrap();
    assert_eq!(s.enqueue_due_pushes(t0() + secs(1), 10).await.unwrap(), 1);
    assert_eq!(
        s.enqueue_due_pushes(t0() + secs(1), 10).await.unwrap(),
        0,
        "it has a job"
    );
    let job = s
        .claim_push_job("w", t0() + secs(1), LEASE)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (job.mirror_id, job.trigger),
        (due.id, PushTrigger::Schedule)
    );
    s.complete_push_job(job.id, "w").await.unwrap();
    // The first is due again (no run recorded a next time for it), and the second now.
    assert_eq!(
        s.enqueue_due_pushes(t0() + secs(7200), 10).await.unwrap(),
        2
    );
    let mut claimed = Vec::new();
    while let Some(j) = s
        .claim_push_job("w", t0() + secs(7200), LEASE)
        .await
        .unwrap()
    {
        claimed.push(j.mirror_id);
    }
    claimed.sort();
    assert_eq!(claimed, [due.id, later.id]);
}

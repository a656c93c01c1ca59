//! The store's conformance suite: every scenario is written once, against `Arc<dyn Store>`,
//! and run on SQLite (a fresh file per test) and on PostgreSQL (a fresh database per test)
//! when `MIRRORHUB_TEST_POSTGRES_URL` names a server, e.g.
//! `MIRRORHUB_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/postgres`.
//! Without it the `postgres::*` tests say so and pass; with it, an unreachable server fails them.

#[macro_use]
mod harness;

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use harness::TestDb;
use mirrorhub_core::notify::{Seen, Subject};
use mirrorhub_core::{
    Access, AccountKind, Credentials, Mode, Outcome, OwnerName, RefChange, RefChangeKind, RepoName,
    RepoState, Trigger, Visibility,
};
use mirrorhub_store::{
    connect, AccessToken, Account, CryptoError, DeliveryEntry, DeliveryOutcome, NewAccessToken,
    NewAccount, NewDelivery, NewPushMirror, NewRepo, NewSshKey, Observation, RepoUpdate, SecretKey,
    SecretString, SshKey, SshKeyDeletion, Store, StoreError, SyncResult, WebSession, WebhookHook,
    INTERRUPTED_CODE, INTERRUPTED_MESSAGE,
};
use secrecy::ExposeSecret;

const LEASE: Duration = Duration::from_secs(60);

/// A fixed, millisecond-precise instant: both backends round-trip it exactly.
fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 3, 1, 12, 0, 0).unwrap() + TimeDelta::milliseconds(123)
}

fn secs(n: i64) -> TimeDelta {
    TimeDelta::seconds(n)
}

fn new_repo(owner: &str, name: &str, mode: Mode) -> NewRepo {
    NewRepo {
        owner: OwnerName::parse(owner).unwrap(),
        name: RepoName::parse(name).unwrap(),
        mode,
        visibility: Visibility::Public,
        description: format!("{owner}/{name} for tests"),
        upstream_url: format!("https://example.org/{owner}/{name}.git"),
        credentials: None,
        sync_interval_secs: 86_400,
        ssh_key_id: None,
        known_hosts: None,
    }
}

async fn mirror(store: &dyn Store, owner: &str, name: &str) -> i64 {
    store
        .create_repo(new_repo(owner, name, Mode::Mirror), t0())
        .await
        .unwrap()
        .id
}

fn success(at: DateTime<Utc>, changes: Vec<RefChange>) -> SyncResult {
    SyncResult {
        finished_at: at,
        outcome: Outcome::Success,
        error_code: None,
        error_message: None,
        ref_changes: changes,
        branches: 3,
        tags: 2,
        head_ref: Some("refs/heads/main".into()),
        next_sync_at: Some(at + secs(86_400)),
        pause: false,
        promote: false,
    }
}

fn failure(at: DateTime<Utc>, code: &str) -> SyncResult {
    SyncResult {
        finished_at: at,
        outcome: Outcome::Failed,
        error_code: Some(code.into()),
        error_message: Some(format!("{code} happened")),
        ref_changes: Vec::new(),
        branches: 99,
        tags: 99,
        head_ref: Some("refs/heads/ignored".into()),
        next_sync_at: Some(at + secs(300)),
        pause: false,
        promote: false,
    }
}

fn change(name: &str, old: Option<&str>, new: Option<&str>, kind: RefChangeKind) -> RefChange {
    RefChange {
        name: name.into(),
        old: old.map(Into::into),
        new: new.map(Into::into),
        kind,
    }
}

// ---- repositories ---------------------------------------------------------------------------

async fn create_get_list_and_delete(db: TestDb) {
    let s = db.store.as_ref();
    let created = s
        .create_repo(new_repo("Alice", "Tools", Mode::Mirror), t0())
        .await
        .unwrap();
    assert_eq!(
        (created.owner.as_str(), created.name.as_str()),
        ("Alice", "Tools")
    );
    assert_eq!(created.state, RepoState::Cloning);
    assert_eq!(created.mode, Mode::Mirror);
    assert_eq!(created.visibility, Visibility::Public);
    assert_eq!(created.description, "Alice/Tools for tests");
    assert_eq!(created.upstream_url, "https://example.org/Alice/Tools.git");
    assert_eq!(created.sync_interval_secs, 86_400);
    assert_eq!(created.created_at, t0());
    assert!(created.credentials.is_none());
    assert_eq!(
        (created.consecutive_failures, created.branches, created.tags),
        (0, 0, 0)
    );
    assert!(
        created.last_sync_at.is_none()
            && created.last_success_at.is_none()
            && created.next_sync_at.is_none()
    );
    assert!(
        created.progress_phase.is_none()
            && created.progress_percent.is_none()
            && created.head_ref.is_none()
    );

    for (owner, name) in [("Alice", "Tools"), ("alice", "tools"), ("ALICE", "tOOLS")] {
        let got = s
            .get_repo(owner, name)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("{owner}/{name} not found"));
        assert_eq!(got.id, created.id);
        assert_eq!(
            got.owner, "Alice",
            "the name keeps the case it was created with"
        );
    }
    assert!(s.get_repo("alice", "tool").await.unwrap().is_none());
    assert!(s.get_repo("bob", "tools").await.unwrap().is_none());
    assert_eq!(
        s.get_repo_by_id(created.id).await.unwrap().unwrap().name,
        "Tools"
    );
    assert!(s.get_repo_by_id(created.id + 1000).await.unwrap().is_none());

    let mut migrate = new_repo("bob", "b", Mode::Migrate);
    migrate.visibility = Visibility::Private;
    let b = s.create_repo(migrate, t0()).await.unwrap();
    assert_eq!((b.mode, b.visibility), (Mode::Migrate, Visibility::Private));
    s.create_repo(new_repo("alice", "alpha", Mode::Mirror), t0())
        .await
        .unwrap();
    s.create_repo(new_repo("Bob", "a", Mode::Mirror), t0())
        .await
        .unwrap();
    let listed: Vec<String> = s
        .list_repos()
        .await
        .unwrap()
        .into_iter()
        .map(|r| format!("{}/{}", r.owner, r.name))
        .collect();
    assert_eq!(listed, ["alice/alpha", "Alice/Tools", "Bob/a", "bob/b"]);

    // Deleting cascades to jobs, runs and their journals.
    s.enqueue_sync(created.id, Trigger::Create, t0())
        .await
        .unwrap();
    let run = s
        .start_run(created.id, Trigger::Create, t0())
        .await
        .unwrap();
    s.finish_run(
        run,
        created.id,
        &success(
            t0(),
            vec![change(
                "refs/heads/main",
                None,
                Some("a1"),
                RefChangeKind::Created,
            )],
        ),
    )
    .await
    .unwrap();
    s.start_run(created.id, Trigger::Manual, t0())
        .await
        .unwrap();
    s.enqueue_sync(b.id, Trigger::Create, t0()).await.unwrap();
    assert_eq!(db.count("sync_ref_changes").await, 1);

    assert!(s.delete_repo(created.id).await.unwrap());
    assert!(
        !s.delete_repo(created.id).await.unwrap(),
        "a second delete finds nothing"
    );
    assert!(s.get_repo("alice", "tools").await.unwrap().is_none());
    assert_eq!(s.list_repos().await.unwrap().len(), 3);
    assert_eq!(db.count("sync_jobs").await, 1, "only bob/b's job is left");
    assert_eq!(db.count("sync_runs").await, 0);
    assert_eq!(db.count("sync_ref_changes").await, 0);
    assert!(s.list_runs(created.id, 10).await.unwrap().is_empty());

    // The name is free again; the new repository gets a new id.
    let again = s
        .create_repo(new_repo("alice", "tools", Mode::Mirror), t0())
        .await
        .unwrap();
    assert_ne!(again.id, created.id);
}

async fn a_taken_name_is_a_conflict_in_any_case(db: TestDb) {
    let s = db.store.as_ref();
    s.create_repo(new_repo("Alice", "Tools", Mode::Mirror), t0())
        .await
        .unwrap();
    for (owner, name) in [("Alice", "Tools"), ("alice", "tools"), ("ALICE", "TOOLS")] {
        let err = s
            .create_repo(new_repo(owner, name, Mode::Migrate), t0())
            .await
            .unwrap_err();
        assert!(
            matches!(err, StoreError::Conflict),
            "{owner}/{name}: {err:?}"
        );
    }
    // Same name under another owner, or another name under the same owner, is fine.
    s.create_repo(new_repo("bob", "tools", Mode::Mirror), t0())
        .await
        .unwrap();
    s.create_repo(new_repo("alice", "tools2", Mode::Mirror), t0())
        .await
        .unwrap();
    assert_eq!(s.list_repos().await.unwrap().len(), 3);
}

async fn credentials_round_trip_and_are_encrypted_at_rest(db: TestDb) {
    let s = db.store.as_ref();
    let secret = "ghp_Zx9SuperSecretToken1234567890";
    let mut new = new_repo("alice", "private", Mode::Mirror);
    new.credentials = Some(Credentials::new(Some("alice-bot"), secret).unwrap());
    let repo = s.create_repo(new, t0()).await.unwrap();
    let creds = repo.credentials.as_ref().unwrap();
    assert_eq!(
        (creds.username.as_str(), creds.expose_secret()),
        ("alice-bot", secret)
    );
    assert!(
        !format!("{repo:?}").contains(secret),
        "Debug must not show the secret: {repo:?}"
    );

    let back = s
        .get_repo("alice", "private")
        .await
        .unwrap()
        .unwrap()
        .credentials
        .unwrap();
    assert_eq!(
        (back.username.as_str(), back.expose_secret()),
        ("alice-bot", secret)
    );

    let raw = db
        .raw_credentials(repo.id)
        .await
        .expect("the credentials column is filled");
    let contains = |needle: &[u8]| raw.windows(needle.len()).any(|w| w == needle);
    assert!(
        !contains(secret.as_bytes()),
        "the secret is stored in plaintext"
    );
    assert!(
        !contains(b"SuperSecret"),
        "part of the secret is stored in plaintext"
    );
    assert!(
        !contains(b"alice-bot"),
        "the username is stored in plaintext"
    );
    assert!(
        raw.len() >= 1 + 24 + 16 + secret.len(),
        "nonce, tag and ciphertext are all there"
    );

    // Each write draws a new nonce: the same credentials give different bytes.
    let mut twin = new_repo("alice", "twin", Mode::Mirror);
    twin.credentials = Some(Credentials::new(Some("alice-bot"), secret).unwrap());
    let twin = s.create_repo(twin, t0()).await.unwrap();
    assert_ne!(db.raw_credentials(twin.id).await.unwrap(), raw);

    // Without credentials the column stays NULL.
    let open = mirror(s, "alice", "open").await;
    assert!(db.raw_credentials(open).await.is_none());
}

async fn a_wrong_key_is_refused_at_connect(db: TestDb) {
    let mut new = new_repo("alice", "private", Mode::Mirror);
    new.credentials = Some(Credentials::new(None, "token").unwrap());
    db.store.create_repo(new, t0()).await.unwrap();

    let err = connect(&db.url, SecretKey::generate())
        .await
        .err()
        .expect("another key must be refused");
    assert!(
        matches!(err, StoreError::Crypto(CryptoError::WrongKey)),
        "{err:?}"
    );
    let same = connect(&db.url, db.key.clone()).await.unwrap();
    assert_eq!(
        same.get_repo("alice", "private")
            .await
            .unwrap()
            .unwrap()
            .credentials
            .unwrap()
            .expose_secret(),
        "token"
    );
}

async fn unknown_text_in_the_database_is_an_error(db: TestDb) {
    let s = db.store.as_ref();
    let id = mirror(s, "alice", "odd").await;
    db.exec(&format!(
        "UPDATE repos SET state = 'sleeping' WHERE id = {id}"
    ))
    .await;
    let err = s.get_repo_by_id(id).await.unwrap_err();
    assert!(
        matches!(&err, StoreError::Corrupt(m) if m.contains("sleeping")),
        "{err:?}"
    );
    assert!(matches!(
        s.list_repos().await.unwrap_err(),
        StoreError::Corrupt(_)
    ));
}

async fn progress_is_recorded_and_cleared_by_finish(db: TestDb) {
    let s = db.store.as_ref();
    let id = mirror(s, "alice", "p").await;
    s.set_progress(id, Some("receiving objects"), Some(42))
        .await
        .unwrap();
    let r = s.get_repo_by_id(id).await.unwrap().unwrap();
    assert_eq!(
        (r.progress_phase.as_deref(), r.progress_percent),
        (Some("receiving objects"), Some(42))
    );
    assert!(matches!(
        s.set_progress(id + 1000, None, None).await,
        Err(StoreError::NotFound)
    ));

    let run = s.start_run(id, Trigger::Create, t0()).await.unwrap();
    s.finish_run(run, id, &success(t0() + secs(5), vec![]))
        .await
        .unwrap();
    let r = s.get_repo_by_id(id).await.unwrap().unwrap();
    assert_eq!((r.progress_phase, r.progress_percent), (None, None));
}

// ---- the queue ------------------------------------------------------------------------------

async fn enqueues_coalesce_into_one_pending_job(db: TestDb) {
    let s = db.store.as_ref();
    let id = mirror(s, "alice", "busy").await;
    let other = mirror(s, "bob", "quiet").await;
    assert!(
        s.enqueue_sync(id, Trigger::Webhook, t0() + secs(30))
            .await
            .unwrap(),
        "the first request queues a job"
    );
    assert!(
        !s.enqueue_sync(id, Trigger::Manual, t0() + secs(10))
            .await
            .unwrap(),
        "the second one folds into it"
    );
    assert!(!s
        .enqueue_sync(id, Trigger::Schedule, t0() + secs(60))
        .await
        .unwrap());
    assert_eq!(db.count("sync_jobs").await, 1);

    // The pending job runs at the earliest time asked for, with that request's trigger.
    assert!(
        s.claim_job("w1", t0() + secs(9), LEASE)
            .await
            .unwrap()
            .is_none(),
        "not due before the earliest time"
    );
    let job = s
        .claim_job("w1", t0() + secs(10), LEASE)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (job.repo_id, job.trigger, job.attempts),
        (id, Trigger::Manual, 1)
    );

    // A burst of 500 requests while that sync runs: one follow-up job, never more.
    let created = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for i in 0..500 {
        let store = db.store.clone();
        let created = created.clone();
        tasks.push(tokio::spawn(async move {
            let trigger = if i % 2 == 0 {
                Trigger::Webhook
            } else {
                Trigger::Bot
            };
            if store
                .enqueue_sync(id, trigger, t0() + secs(20))
                .await
                .unwrap()
            {
                created.fetch_add(1, Ordering::SeqCst);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(
        created.load(Ordering::SeqCst),
        1,
        "exactly one request created the follow-up"
    );
    assert_eq!(db.count_jobs(id).await, (1, 1), "one running + one pending");

    // The follow-up waits for the running sync; other repositories are not held up.
    assert!(s
        .claim_job("w2", t0() + secs(20), LEASE)
        .await
        .unwrap()
        .is_none());
    s.enqueue_sync(other, Trigger::Manual, t0()).await.unwrap();
    assert_eq!(
        s.claim_job("w2", t0() + secs(20), LEASE)
            .await
            .unwrap()
            .unwrap()
            .repo_id,
        other
    );

    s.complete_job(job.id, "w1").await.unwrap();
    let follow_up = s
        .claim_job("w1", t0() + secs(20), LEASE)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(follow_up.repo_id, id);
    assert_ne!(follow_up.id, job.id);
    assert!(matches!(
        s.enqueue_sync(id + 1000, Trigger::Manual, t0()).await,
        Err(StoreError::NotFound)
    ));
}

async fn claims_oldest_due_first_and_never_two_of_one_repo(db: TestDb) {
    let s = db.store.as_ref();
    let a = mirror(s, "o", "a").await;
    let b = mirror(s, "o", "b").await;
    let c = mirror(s, "o", "c").await;
    s.enqueue_sync(b, Trigger::Manual, t0() + secs(2))
        .await
        .unwrap();
    s.enqueue_sync(a, Trigger::Manual, t0() + secs(1))
        .await
        .unwrap();
    s.enqueue_sync(c, Trigger::Manual, t0() + secs(100))
        .await
        .unwrap();

    let now = t0() + secs(10);
    assert!(
        s.claim_job("w", t0(), LEASE).await.unwrap().is_none(),
        "nothing is due yet"
    );
    let first = s.claim_job("w1", now, LEASE).await.unwrap().unwrap();
    let second = s.claim_job("w2", now, LEASE).await.unwrap().unwrap();
    assert_eq!(
        (first.repo_id, second.repo_id),
        (a, b),
        "oldest run_after first"
    );
    assert!(
        s.claim_job("w3", now, LEASE).await.unwrap().is_none(),
        "c is not due, a and b are taken"
    );

    // A follow-up for a running repository is not handed out while the lease lives.
    s.enqueue_sync(a, Trigger::Webhook, t0()).await.unwrap();
    assert!(s.claim_job("w3", now, LEASE).await.unwrap().is_none());
    s.complete_job(first.id, "w1").await.unwrap();
    let next = s.claim_job("w3", now, LEASE).await.unwrap().unwrap();
    assert_eq!(
        (next.repo_id, next.trigger, next.attempts),
        (a, Trigger::Webhook, 1)
    );
}

async fn syncing_repos_are_those_with_a_live_lease(db: TestDb) {
    let s = db.store.as_ref();
    let running = mirror(s, "alice", "running").await;
    let queued = mirror(s, "alice", "queued").await;
    let _idle = mirror(s, "alice", "idle").await;
    assert!(s.syncing_repo_ids(t0()).await.unwrap().is_empty());
    s.enqueue_sync(running, Trigger::Create, t0())
        .await
        .unwrap();
    let job = s
        .claim_job("w1", t0(), Duration::from_secs(30))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(job.repo_id, running);
    // A pending job (a follow-up, or one not yet due) is not a running sync.
    s.enqueue_sync(running, Trigger::Webhook, t0())
        .await
        .unwrap();
    s.enqueue_sync(queued, Trigger::Manual, t0() + secs(60))
        .await
        .unwrap();
    assert_eq!(
        s.syncing_repo_ids(t0() + secs(29)).await.unwrap(),
        [running]
    );
    // A worker that died stops counting when its lease runs out.
    assert!(s
        .syncing_repo_ids(t0() + secs(30))
        .await
        .unwrap()
        .is_empty());
    assert!(s
        .renew_lease(job.id, "w1", t0() + secs(20), Duration::from_secs(30))
        .await
        .unwrap());
    assert_eq!(
        s.syncing_repo_ids(t0() + secs(40)).await.unwrap(),
        [running]
    );
    s.complete_job(job.id, "w1").await.unwrap();
    assert!(s
        .syncing_repo_ids(t0() + secs(40))
        .await
        .unwrap()
        .is_empty());
}

async fn an_expired_lease_is_taken_over(db: TestDb) {
    let s = db.store.as_ref();
    let id = mirror(s, "alice", "slow").await;
    s.enqueue_sync(id, Trigger::Create, t0()).await.unwrap();
    let job = s
        .claim_job("w1", t0(), Duration::from_secs(30))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(job.attempts, 1);

    assert!(
        s.claim_job("w2", t0() + secs(29), LEASE)
            .await
            .unwrap()
            .is_none(),
        "the lease is live"
    );
    assert!(
        s.renew_lease(job.id, "w1", t0() + secs(20), Duration::from_secs(30))
            .await
            .unwrap(),
        "w1 renews to +50s"
    );
    assert!(
        s.claim_job("w2", t0() + secs(49), LEASE)
            .await
            .unwrap()
            .is_none(),
        "the renewed lease is live"
    );
    assert!(
        !s.renew_lease(job.id, "w2", t0() + secs(49), LEASE)
            .await
            .unwrap(),
        "only the holder renews"
    );

    let taken = s
        .claim_job("w2", t0() + secs(50), LEASE)
        .await
        .unwrap()
        .expect("the lease expired at +50s");
    assert_eq!(
        (taken.id, taken.repo_id, taken.trigger, taken.attempts),
        (job.id, id, Trigger::Create, 2)
    );

    // The first worker finds out it lost the job, and can neither complete nor release it.
    assert!(!s
        .renew_lease(job.id, "w1", t0() + secs(51), LEASE)
        .await
        .unwrap());
    s.complete_job(job.id, "w1").await.unwrap();
    s.release_job(job.id, "w1", t0()).await.unwrap();
    assert_eq!(db.count_jobs(id).await, (1, 0), "w2 still holds the job");
    assert!(s
        .renew_lease(job.id, "w2", t0() + secs(52), LEASE)
        .await
        .unwrap());
    s.complete_job(job.id, "w2").await.unwrap();
    assert_eq!(db.count_jobs(id).await, (0, 0));
    assert!(
        !s.renew_lease(job.id, "w2", t0() + secs(53), LEASE)
            .await
            .unwrap(),
        "a completed job is gone"
    );
}

async fn an_expired_claim_does_not_let_a_second_job_run_beside_a_live_one(db: TestDb) {
    let s = db.store.as_ref();
    let id = mirror(s, "alice", "r").await;
    s.enqueue_sync(id, Trigger::Manual, t0()).await.unwrap();
    let old = s
        .claim_job("w1", t0(), Duration::from_secs(10))
        .await
        .unwrap()
        .unwrap();
    s.enqueue_sync(id, Trigger::Webhook, t0()).await.unwrap();
    // w1's lease expired: the oldest due job (w1's) is taken over; the pending one must wait.
    let later = t0() + secs(11);
    let taken = s.claim_job("w2", later, LEASE).await.unwrap().unwrap();
    assert_eq!(taken.id, old.id);
    assert!(
        s.claim_job("w3", later, LEASE).await.unwrap().is_none(),
        "the repository is leased again"
    );
}

async fn concurrent_claimers_never_share_a_repository(db: TestDb) {
    const REPOS: usize = 6;
    const ROUNDS: usize = 5;
    const WORKERS: usize = 8;
    let mut ids = Vec::new();
    for i in 0..REPOS {
        let id = mirror(db.store.as_ref(), "load", &format!("r{i}")).await;
        db.store
            .enqueue_sync(id, Trigger::Manual, t0())
            .await
            .unwrap();
        ids.push(id);
    }
    // Half of the workers go through stores of their own: separate pools, as separate
    // processes (replicas) would have.
    let mut stores = vec![db.store.clone()];
    for _ in 0..3 {
        stores.push(db.reopen().await);
    }

    let in_flight = Arc::new(Mutex::new(HashSet::new()));
    let rounds = Arc::new(Mutex::new(std::collections::HashMap::<i64, usize>::new()));
    let done = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for w in 0..WORKERS {
        let store = stores[w % stores.len()].clone();
        let (in_flight, rounds, done) = (in_flight.clone(), rounds.clone(), done.clone());
        tasks.push(tokio::spawn(async move {
            let worker = format!("worker-{w}");
            let mut idle_spins = 0u64;
            while done.load(Ordering::SeqCst) < REPOS * ROUNDS {
                let Some(job) = store.claim_job(&worker, t0(), LEASE).await.unwrap() else {
                    idle_spins += 1;
                    assert!(idle_spins < 200_000, "{worker} found no work for too long");
                    tokio::task::yield_now().await;
                    continue;
                };
                assert!(
                    in_flight.lock().unwrap().insert(job.repo_id),
                    "repo {} handed out twice at once",
                    job.repo_id
                );
                let round = {
                    let mut r = rounds.lock().unwrap();
                    let n = r.entry(job.repo_id).or_default();
                    *n += 1;
                    *n
                };
                // While this sync "runs", a follow-up arrives that others must not take.
                if round < ROUNDS {
                    store
                        .enqueue_sync(job.repo_id, Trigger::Webhook, t0())
                        .await
                        .unwrap();
                }
                for _ in 0..3 {
                    tokio::task::yield_now().await;
                }
                assert!(in_flight.lock().unwrap().remove(&job.repo_id));
                store.complete_job(job.id, &worker).await.unwrap();
                done.fetch_add(1, Ordering::SeqCst);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    assert_eq!(db.count("sync_jobs").await, 0);
    let rounds = rounds.lock().unwrap();
    for id in &ids {
        assert_eq!(rounds.get(id), Some(&ROUNDS), "repo {id}");
    }
}

async fn racing_claimers_take_over_each_repository_once(db: TestDb) {
    // Every repository has an expired claim and a pending job: the two are the first and
    // second candidates of concurrent claimers, and only one of them may be handed out.
    const REPOS: usize = 24;
    const WORKERS: usize = 8;
    let mut ids = Vec::new();
    for i in 0..REPOS {
        let id = mirror(db.store.as_ref(), "race", &format!("r{i}")).await;
        db.store
            .enqueue_sync(id, Trigger::Manual, t0())
            .await
            .unwrap();
        ids.push(id);
    }
    for _ in 0..REPOS {
        db.store
            .claim_job("dead", t0(), Duration::from_secs(1))
            .await
            .unwrap()
            .unwrap();
    }
    for id in &ids {
        db.store
            .enqueue_sync(*id, Trigger::Webhook, t0())
            .await
            .unwrap();
    }
    let mut stores = Vec::new();
    for _ in 0..WORKERS {
        stores.push(db.reopen().await);
    }
    let later = t0() + secs(10);
    let start = Arc::new(tokio::sync::Barrier::new(WORKERS));
    let mut tasks = Vec::new();
    for (w, store) in stores.into_iter().enumerate() {
        let start = start.clone();
        tasks.push(tokio::spawn(async move {
            start.wait().await;
            let mut got = Vec::new();
            while let Some(job) = store
                .claim_job(&format!("w{w}"), later, LEASE)
                .await
                .unwrap()
            {
                got.push(job.repo_id);
            }
            got
        }));
    }
    let mut claimed = Vec::new();
    for t in tasks {
        claimed.extend(t.await.unwrap());
    }
    claimed.sort_unstable();
    assert_eq!(claimed, ids, "each repository is taken over exactly once");
}

async fn release_job_requeues_or_coalesces(db: TestDb) {
    let s = db.store.as_ref();
    let id = mirror(s, "alice", "flaky").await;
    s.enqueue_sync(id, Trigger::Webhook, t0()).await.unwrap();
    let job = s.claim_job("w1", t0(), LEASE).await.unwrap().unwrap();

    // No other pending job: it goes back to the queue, due at the new time, attempts kept.
    s.release_job(job.id, "w1", t0() + secs(120)).await.unwrap();
    assert_eq!(db.count_jobs(id).await, (0, 1));
    assert!(s
        .claim_job("w2", t0() + secs(119), LEASE)
        .await
        .unwrap()
        .is_none());
    let again = s
        .claim_job("w2", t0() + secs(120), LEASE)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (again.id, again.trigger, again.attempts),
        (job.id, Trigger::Webhook, 2)
    );

    // A pending follow-up exists: the released job is folded into it.
    assert!(s
        .enqueue_sync(id, Trigger::Manual, t0() + secs(130))
        .await
        .unwrap());
    s.release_job(again.id, "w2", t0() + secs(500))
        .await
        .unwrap();
    assert_eq!(db.count_jobs(id).await, (0, 1));
    let follow_up = s
        .claim_job("w3", t0() + secs(130), LEASE)
        .await
        .unwrap()
        .unwrap();
    assert_ne!(follow_up.id, job.id);
    assert_eq!(
        (follow_up.trigger, follow_up.attempts),
        (Trigger::Manual, 1)
    );
}

async fn release_all_claims_frees_stale_claims_on_sqlite_only(db: TestDb) {
    let s = db.store.as_ref();
    let a = mirror(s, "o", "a").await;
    let b = mirror(s, "o", "b").await;
    let c = mirror(s, "o", "c").await;
    let d = mirror(s, "o", "d").await;
    for id in [a, b] {
        s.enqueue_sync(id, Trigger::Manual, t0()).await.unwrap();
    }
    let ja = s.claim_job("dead", t0(), LEASE).await.unwrap().unwrap();
    let jb = s.claim_job("dead", t0(), LEASE).await.unwrap().unwrap();
    assert_eq!((ja.repo_id, jb.repo_id), (a, b));
    s.enqueue_sync(b, Trigger::Webhook, t0()).await.unwrap(); // b: claimed + pending

    // d: two claims, an expired one and the one that took over after it.
    s.enqueue_sync(d, Trigger::Manual, t0() + secs(5))
        .await
        .unwrap();
    let jd = s
        .claim_job("dead", t0() + secs(5), Duration::from_secs(1))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(jd.repo_id, d);
    s.enqueue_sync(d, Trigger::Webhook, t0()).await.unwrap();
    let jd2 = s
        .claim_job("dead", t0() + secs(10), LEASE)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (jd2.repo_id, jd2.attempts),
        (d, 1),
        "the older pending job goes first"
    );
    assert_eq!(db.count_jobs(d).await, (2, 0));

    s.enqueue_sync(c, Trigger::Manual, t0()).await.unwrap(); // c: pending only
    assert_eq!(db.count("sync_jobs").await, 6);

    let released = s.release_all_claims().await.unwrap();
    if db.backend == harness::Backend::Postgres {
        assert_eq!(released, 0, "other replicas' leases are live");
        assert_eq!(db.count_jobs(a).await, (1, 0));
        assert_eq!(db.count_jobs(d).await, (2, 0));
        let next = s.claim_job("fresh", t0(), LEASE).await.unwrap().unwrap();
        assert_eq!(next.repo_id, c);
        return;
    }
    assert_eq!(released, 4);
    assert_eq!(db.count_jobs(a).await, (0, 1), "a's claim is pending again");
    assert_eq!(
        db.count_jobs(b).await,
        (0, 1),
        "b's claim folded into its pending job"
    );
    assert_eq!(db.count_jobs(c).await, (0, 1));
    assert_eq!(
        db.count_jobs(d).await,
        (0, 1),
        "d's two claims became one pending job"
    );
    let mut claimed = Vec::new();
    while let Some(job) = s.claim_job("fresh", t0() + secs(10), LEASE).await.unwrap() {
        claimed.push((job.repo_id, job.attempts));
    }
    claimed.sort();
    assert_eq!(claimed, [(a, 2), (b, 1), (c, 1), (d, 2)]);
    assert_eq!(s.release_all_claims().await.unwrap(), 4);
}

async fn enqueue_due_picks_due_mirrors_without_jobs(db: TestDb) {
    let s = db.store.as_ref();
    let now = t0() + secs(3600);
    // Due at various times; each gets a next_sync_at through a finished run.
    let due = |name: &'static str, mode: Mode, next: Option<DateTime<Utc>>| {
        let store = db.store.clone();
        async move {
            let id = store
                .create_repo(new_repo("sched", name, mode), t0())
                .await
                .unwrap()
                .id;
            let run = store.start_run(id, Trigger::Create, t0()).await.unwrap();
            let mut result = success(t0(), vec![]);
            result.next_sync_at = next;
            store.finish_run(run, id, &result).await.unwrap();
            id
        }
    };
    let oldest = due("oldest", Mode::Mirror, Some(now - secs(600))).await;
    let older = due("older", Mode::Mirror, Some(now - secs(300))).await;
    let exactly = due("exactly", Mode::Mirror, Some(now)).await;
    let future = due("future", Mode::Mirror, Some(now + secs(1))).await;
    let never = due("never", Mode::Mirror, None).await;
    let migrated = due("migrated", Mode::Migrate, Some(now - secs(900))).await;
    let pending = due("pending", Mode::Mirror, Some(now - secs(900))).await;
    let running = due("running", Mode::Mirror, Some(now - secs(900))).await;
    s.enqueue_sync(pending, Trigger::Webhook, now + secs(50))
        .await
        .unwrap();
    s.enqueue_sync(running, Trigger::Webhook, now)
        .await
        .unwrap();
    let held = s.claim_job("w", now, LEASE).await.unwrap().unwrap();
    assert_eq!(held.repo_id, running);

    // The limit takes the oldest first.
    assert_eq!(s.enqueue_due(now, 2).await.unwrap(), 2);
    assert_eq!(db.count_jobs(oldest).await, (0, 1));
    assert_eq!(db.count_jobs(older).await, (0, 1));
    assert_eq!(db.count_jobs(exactly).await, (0, 0));
    assert_eq!(
        s.enqueue_due(now, 100).await.unwrap(),
        1,
        "only `exactly` is left"
    );
    assert_eq!(
        s.enqueue_due(now, 100).await.unwrap(),
        0,
        "due mirrors with a pending job are skipped"
    );
    for id in [future, never, migrated] {
        assert_eq!(
            db.count_jobs(id).await,
            (0, 0),
            "repo {id} must not be queued"
        );
    }
    assert_eq!(
        db.count_jobs(pending).await,
        (0, 1),
        "the pending job was left alone"
    );
    assert_eq!(
        db.count_jobs(running).await,
        (1, 0),
        "a running sync sets the next time itself"
    );

    let mut jobs = Vec::new();
    while let Some(job) = s.claim_job("w", now, LEASE).await.unwrap() {
        jobs.push((job.repo_id, job.trigger));
    }
    assert_eq!(
        jobs,
        [
            (oldest, Trigger::Schedule),
            (older, Trigger::Schedule),
            (exactly, Trigger::Schedule)
        ]
    );
    assert_eq!(s.enqueue_due(now, 0).await.unwrap(), 0);
}

// ---- runs -----------------------------------------------------------------------------------

async fn finish_run_success_updates_repo_and_journal(db: TestDb) {
    let s = db.store.as_ref();
    let id = mirror(s, "alice", "tools").await;
    let started = t0() + secs(1);
    let run = s.start_run(id, Trigger::Create, started).await.unwrap();
    assert_eq!(s.running_count(id).await.unwrap(), 1);
    assert_eq!(
        s.get_repo_by_id(id).await.unwrap().unwrap().last_sync_at,
        Some(started)
    );

    let changes = vec![
        change(
            "refs/heads/main",
            None,
            Some("1111"),
            RefChangeKind::Created,
        ),
        change(
            "refs/heads/dev",
            Some("2222"),
            Some("3333"),
            RefChangeKind::FastForward,
        ),
        change(
            "refs/tags/v1",
            Some("4444"),
            Some("5555"),
            RefChangeKind::Forced,
        ),
        change("refs/heads/old", Some("6666"), None, RefChangeKind::Deleted),
        change(
            "refs/heads/a-last-but-sorted-first",
            None,
            Some("7777"),
            RefChangeKind::Created,
        ),
    ];
    let finished = started + secs(7);
    s.set_progress(id, Some("resolving deltas"), Some(90))
        .await
        .unwrap();
    s.finish_run(run, id, &success(finished, changes.clone()))
        .await
        .unwrap();

    let r = s.get_repo_by_id(id).await.unwrap().unwrap();
    assert_eq!(r.state, RepoState::Ready);
    assert_eq!(r.last_success_at, Some(finished));
    assert_eq!(r.last_sync_at, Some(started));
    assert_eq!(
        (r.branches, r.tags, r.head_ref.as_deref()),
        (3, 2, Some("refs/heads/main"))
    );
    assert_eq!(r.next_sync_at, Some(finished + secs(86_400)));
    assert_eq!((r.progress_phase, r.progress_percent), (None, None));
    assert_eq!(s.running_count(id).await.unwrap(), 0);

    let runs = s.list_runs(id, 10).await.unwrap();
    assert_eq!(runs.len(), 1);
    let r0 = &runs[0];
    assert_eq!(
        (r0.id, r0.repo_id, r0.trigger, r0.outcome),
        (run, id, Trigger::Create, Outcome::Success)
    );
    assert_eq!((r0.started_at, r0.finished_at), (started, Some(finished)));
    assert_eq!(
        (r0.error_code.as_deref(), r0.error_message.as_deref()),
        (None, None)
    );
    assert_eq!(
        r0.ref_changes, changes,
        "the journal comes back complete and in order"
    );

    // A later failure, then a recovery: errors are set and cleared, failures counted.
    let run2 = s
        .start_run(id, Trigger::Schedule, finished + secs(10))
        .await
        .unwrap();
    s.finish_run(
        run2,
        id,
        &failure(finished + secs(11), "upstream_unreachable"),
    )
    .await
    .unwrap();
    let run3 = s
        .start_run(id, Trigger::Schedule, finished + secs(20))
        .await
        .unwrap();
    s.finish_run(run3, id, &failure(finished + secs(21), "timeout"))
        .await
        .unwrap();
    let r = s.get_repo_by_id(id).await.unwrap().unwrap();
    assert_eq!(
        r.state,
        RepoState::Ready,
        "a ready repository stays ready when a sync fails"
    );
    assert_eq!(
        (
            r.last_error_code.as_deref(),
            r.last_error_message.as_deref()
        ),
        (Some("timeout"), Some("timeout happened"))
    );
    assert_eq!(r.consecutive_failures, 2);
    assert_eq!(
        r.last_success_at,
        Some(finished),
        "a failure keeps the last success"
    );
    assert_eq!(
        (r.branches, r.tags, r.head_ref.as_deref()),
        (3, 2, Some("refs/heads/main")),
        "a failure keeps the counts"
    );
    assert_eq!(r.next_sync_at, Some(finished + secs(21 + 300)));

    let run4 = s
        .start_run(id, Trigger::Manual, finished + secs(30))
        .await
        .unwrap();
    let mut unchanged = success(finished + secs(31), vec![]);
    unchanged.outcome = Outcome::Unchanged;
    s.finish_run(run4, id, &unchanged).await.unwrap();
    let r = s.get_repo_by_id(id).await.unwrap().unwrap();
    assert_eq!(
        (
            r.state,
            r.consecutive_failures,
            r.last_error_code,
            r.last_error_message
        ),
        (RepoState::Ready, 0, None, None)
    );
    assert_eq!(r.last_success_at, Some(finished + secs(31)));

    let runs = s.list_runs(id, 10).await.unwrap();
    let summary: Vec<_> = runs
        .iter()
        .map(|r| (r.id, r.outcome, r.ref_changes.len()))
        .collect();
    assert_eq!(
        summary,
        [
            (run4, Outcome::Unchanged, 0),
            (run3, Outcome::Failed, 0),
            (run2, Outcome::Failed, 0),
            (run, Outcome::Success, 5)
        ],
        "newest first"
    );
    assert_eq!(runs[1].error_code.as_deref(), Some("timeout"));
    let two = s.list_runs(id, 2).await.unwrap();
    assert_eq!(two.iter().map(|r| r.id).collect::<Vec<_>>(), [run4, run3]);
    assert!(s.list_runs(id, 0).await.unwrap().is_empty());
}

async fn finish_run_failure_on_first_clone_marks_the_repo_failed(db: TestDb) {
    let s = db.store.as_ref();
    let id = mirror(s, "alice", "broken").await;
    let run = s.start_run(id, Trigger::Create, t0()).await.unwrap();
    s.set_progress(id, Some("counting objects"), Some(5))
        .await
        .unwrap();
    s.finish_run(run, id, &failure(t0() + secs(3), "upstream_auth_failed"))
        .await
        .unwrap();
    let r = s.get_repo_by_id(id).await.unwrap().unwrap();
    assert_eq!(r.state, RepoState::Failed);
    assert_eq!(r.last_error_code.as_deref(), Some("upstream_auth_failed"));
    assert_eq!(r.consecutive_failures, 1);
    assert_eq!(
        (r.last_success_at, r.branches, r.tags, r.head_ref),
        (None, 0, 0, None)
    );
    assert_eq!((r.progress_phase, r.progress_percent), (None, None));
    assert_eq!(r.next_sync_at, Some(t0() + secs(303)));

    let runs = s.list_runs(id, 5).await.unwrap();
    assert_eq!(
        (runs[0].outcome, runs[0].error_code.as_deref()),
        (Outcome::Failed, Some("upstream_auth_failed"))
    );

    // A failed repository becomes ready on its first success.
    let run = s
        .start_run(id, Trigger::Manual, t0() + secs(10))
        .await
        .unwrap();
    s.finish_run(run, id, &success(t0() + secs(12), vec![]))
        .await
        .unwrap();
    assert_eq!(
        s.get_repo_by_id(id).await.unwrap().unwrap().state,
        RepoState::Ready
    );
}

async fn finish_run_is_all_or_nothing(db: TestDb) {
    let s = db.store.as_ref();
    let id = mirror(s, "alice", "atomic").await;
    let other = mirror(s, "bob", "other").await;
    let run = s.start_run(id, Trigger::Create, t0()).await.unwrap();

    // The run belongs to another repository: nothing changes.
    let err = s
        .finish_run(
            run,
            other,
            &success(
                t0(),
                vec![change(
                    "refs/heads/x",
                    None,
                    Some("1"),
                    RefChangeKind::Created,
                )],
            ),
        )
        .await;
    assert!(matches!(err, Err(StoreError::NotFound)), "{err:?}");
    // Make the journal insert fail half-way through a finish: finishing the same run a
    // second time collides with the first journal. The run row was already updated in that
    // transaction; nothing of it may remain, nor may the repository change.
    s.finish_run(
        run,
        id,
        &success(
            t0() + secs(1),
            vec![change(
                "refs/heads/x",
                None,
                Some("1"),
                RefChangeKind::Created,
            )],
        ),
    )
    .await
    .unwrap();
    let before = s.get_repo_by_id(id).await.unwrap().unwrap();
    let mut twice = failure(t0() + secs(3), "timeout");
    twice.ref_changes = vec![change(
        "refs/heads/x",
        Some("1"),
        Some("2"),
        RefChangeKind::FastForward,
    )];
    let err = s.finish_run(run, id, &twice).await.unwrap_err();
    assert!(matches!(err, StoreError::Conflict), "{err:?}");
    let after = s.get_repo_by_id(id).await.unwrap().unwrap();
    assert_eq!(after.state, RepoState::Ready);
    assert_eq!(
        (after.last_error_code, after.consecutive_failures),
        (None, 0),
        "the refused finish changed the repository"
    );
    assert_eq!(after.next_sync_at, before.next_sync_at);
    let runs = s.list_runs(id, 1).await.unwrap();
    assert_eq!(
        (runs[0].outcome, runs[0].error_code.as_deref()),
        (Outcome::Success, None),
        "the refused finish changed the run"
    );
    assert_eq!(runs[0].finished_at, Some(t0() + secs(1)));
    assert_eq!(runs[0].ref_changes.len(), 1);

    let mut running = success(t0(), vec![]);
    running.outcome = Outcome::Running;
    assert!(matches!(
        s.finish_run(run, id, &running).await,
        Err(StoreError::Invalid(_))
    ));
    assert!(matches!(
        s.start_run(id + 1000, Trigger::Manual, t0()).await,
        Err(StoreError::NotFound)
    ));
}

async fn a_large_journal_round_trips(db: TestDb) {
    let s = db.store.as_ref();
    let id = mirror(s, "alice", "big").await;
    let run = s.start_run(id, Trigger::Create, t0()).await.unwrap();
    let changes: Vec<_> = (0..2500)
        .map(|i| {
            change(
                &format!("refs/heads/b{:05}", 2500 - i),
                None,
                Some(&format!("{i:040x}")),
                RefChangeKind::Created,
            )
        })
        .collect();
    s.finish_run(run, id, &success(t0(), changes.clone()))
        .await
        .unwrap();
    assert_eq!(s.list_runs(id, 1).await.unwrap()[0].ref_changes, changes);
}

async fn interrupted_runs_are_failed(db: TestDb) {
    let s = db.store.as_ref();
    let id = mirror(s, "alice", "crash").await;
    let other = mirror(s, "bob", "busy").await;
    let done = s.start_run(id, Trigger::Manual, t0()).await.unwrap();
    s.finish_run(done, id, &success(t0() + secs(1), vec![]))
        .await
        .unwrap();
    let r1 = s
        .start_run(id, Trigger::Schedule, t0() + secs(10))
        .await
        .unwrap();
    let r2 = s
        .start_run(id, Trigger::Webhook, t0() + secs(20))
        .await
        .unwrap();
    let elsewhere = s.start_run(other, Trigger::Manual, t0()).await.unwrap();
    assert_eq!(s.running_count(id).await.unwrap(), 2);

    assert_eq!(
        s.fail_interrupted_runs(id, t0() + secs(60)).await.unwrap(),
        2
    );
    assert_eq!(s.running_count(id).await.unwrap(), 0);
    assert_eq!(
        s.running_count(other).await.unwrap(),
        1,
        "other repositories' runs are untouched"
    );
    for run in s.list_runs(id, 10).await.unwrap() {
        if run.id == done {
            assert_eq!(run.outcome, Outcome::Success);
            continue;
        }
        assert!(run.id == r1 || run.id == r2);
        assert_eq!(run.outcome, Outcome::Failed);
        assert_eq!(run.finished_at, Some(t0() + secs(60)));
        assert_eq!(run.error_code.as_deref(), Some(INTERRUPTED_CODE));
        assert_eq!(run.error_message.as_deref(), Some(INTERRUPTED_MESSAGE));
    }
    assert_eq!(INTERRUPTED_CODE, "interrupted");
    assert_eq!(
        s.fail_interrupted_runs(id, t0() + secs(61)).await.unwrap(),
        0
    );
    assert_eq!(s.list_runs(other, 1).await.unwrap()[0].id, elsewhere);
}

/// A worker's one read, one write to start and one to end a run: the same records as the
/// separate calls.
async fn a_worker_reads_once_and_writes_a_run_in_two_transactions(db: TestDb) {
    use mirrorhub_core::RefFilterSpec;
    use mirrorhub_store::{MemberState, OpenedRun, SetMember};
    let s = db.store.as_ref();
    let id = mirror(s, "alice", "ctx").await;
    assert!(s.sync_context(9999).await.unwrap().is_none());
    let plain = s.sync_context(id).await.unwrap().unwrap();
    assert_eq!(
        format!("{:?}", plain.repo),
        format!("{:?}", s.get_repo_by_id(id).await.unwrap().unwrap())
    );
    assert_eq!((plain.ref_filter, plain.set_installation), (None, None));
    // Its filter, and the installation of the first set holding it that has one.
    let spec = RefFilterSpec {
        include: vec!["main".into()],
        ..Default::default()
    };
    s.set_ref_filter(id, Some(&spec)).await.unwrap();
    let token_set = s.create_mirror_set(&new_set("Tokens"), t0()).await.unwrap();
    let app_set = s
        .create_mirror_set(
            &mirrorhub_store::NewMirrorSet {
                credentials: None,
                installation_id: Some(77),
                ..new_set("App")
            },
            t0(),
        )
        .await
        .unwrap();
    for set in [&token_set, &app_set] {
        s.put_mirror_set_member(&SetMember {
            set_id: set.id,
            forge_id: "1".into(),
            path: "alice/ctx".into(),
            repo_id: Some(id),
            state: MemberState::Mirrored,
            detail: None,
            changed_at: t0(),
        })
        .await
        .unwrap();
    }
    let full = s.sync_context(id).await.unwrap().unwrap();
    assert_eq!(full.ref_filter, Some(spec));
    assert_eq!(full.set_installation, Some(77));

    // Opening a run closes what a dead worker left running, and says so in its trigger.
    s.enqueue_sync(id, Trigger::Webhook, t0()).await.unwrap();
    let job = s.claim_job("w1", t0(), LEASE).await.unwrap().unwrap();
    let first = s
        .open_run(id, Trigger::Webhook, Trigger::Recovery, t0())
        .await
        .unwrap();
    assert_eq!(first.interrupted, 0);
    let again = s
        .open_run(id, Trigger::Webhook, Trigger::Recovery, t0() + secs(5))
        .await
        .unwrap();
    assert_eq!(
        again,
        OpenedRun {
            id: again.id,
            interrupted: 1
        }
    );
    let runs = s.list_runs(id, 10).await.unwrap();
    assert_eq!(runs[0].trigger, Trigger::Recovery);
    assert_eq!(runs[1].error_code.as_deref(), Some(INTERRUPTED_CODE));
    assert_eq!(s.running_count(id).await.unwrap(), 1);

    // Finishing the run completes the job, in one transaction.
    assert!(s
        .finish_job(job.id, "w1", again.id, id, &success(t0() + secs(6), vec![]))
        .await
        .unwrap());
    assert_eq!(s.running_count(id).await.unwrap(), 0);
    assert_eq!(
        s.list_runs(id, 1).await.unwrap()[0].outcome,
        Outcome::Success
    );
    let repo = s.get_repo_by_id(id).await.unwrap().unwrap();
    assert_eq!(repo.last_success_at, Some(t0() + secs(6)));
    assert!(s
        .claim_job("w2", t0() + secs(600), LEASE)
        .await
        .unwrap()
        .is_none());

    // A repository deleted while its run went on: its job is gone, and the worker is told.
    s.enqueue_sync(id, Trigger::Manual, t0() + secs(10))
        .await
        .unwrap();
    let job = s
        .claim_job("w1", t0() + secs(10), LEASE)
        .await
        .unwrap()
        .unwrap();
    let run = s
        .open_run(id, Trigger::Manual, Trigger::Recovery, t0() + secs(10))
        .await
        .unwrap();
    assert!(s.delete_repo(id).await.unwrap());
    assert!(!s
        .finish_job(job.id, "w1", run.id, id, &success(t0() + secs(11), vec![]))
        .await
        .unwrap());
    assert!(s
        .claim_job("w2", t0() + secs(600), LEASE)
        .await
        .unwrap()
        .is_none());
}

/// The no-op path: a run recorded whole, already over, in one transaction with the
/// repository's record and the job.
async fn an_unchanged_sync_is_recorded_whole_in_one_transaction(db: TestDb) {
    let s = db.store.as_ref();
    let id = mirror(s, "alice", "quiet").await;
    let unchanged = |at| SyncResult {
        outcome: Outcome::Unchanged,
        ..success(at, vec![])
    };

    s.enqueue_sync(id, Trigger::Schedule, t0()).await.unwrap();
    let job = s.claim_job("w1", t0(), LEASE).await.unwrap().unwrap();
    let run = s
        .finish_unchanged_job(
            job.id,
            "w1",
            id,
            Trigger::Schedule,
            t0(),
            &unchanged(t0() + secs(1)),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!((run.interrupted, run.episode_open), (0, false));
    assert_eq!(s.running_count(id).await.unwrap(), 0);
    let runs = s.list_runs(id, 10).await.unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].id, run.id);
    assert_eq!(runs[0].trigger, Trigger::Schedule);
    assert_eq!(runs[0].outcome, Outcome::Unchanged);
    assert_eq!(runs[0].started_at, t0());
    assert_eq!(runs[0].finished_at, Some(t0() + secs(1)));
    let repo = s.get_repo_by_id(id).await.unwrap().unwrap();
    assert_eq!(repo.last_sync_at, Some(t0()));
    assert_eq!(repo.last_success_at, Some(t0() + secs(1)));
    assert_eq!(repo.next_sync_at, Some(t0() + secs(1) + secs(86_400)));
    assert_eq!(repo.state, RepoState::Ready);
    assert_eq!((repo.branches, repo.tags), (3, 2));
    assert!(s
        .claim_job("w2", t0() + secs(600), LEASE)
        .await
        .unwrap()
        .is_none());

    // A dead worker's run is closed as interrupted, and the run says it recovered; an open
    // notification episode is reported so that the success closes it.
    s.note_observation(&Observation {
        repo_id: id,
        subject: &Subject::Sync,
        seen: Seen::Failed {
            host_key: false,
            paused: false,
        },
        error: Some(("upstream_unreachable", "refused")),
        at: t0() + secs(5),
    })
    .await
    .unwrap();
    let dead = s
        .open_run(id, Trigger::Webhook, Trigger::Recovery, t0() + secs(10))
        .await
        .unwrap();
    s.enqueue_sync(id, Trigger::Webhook, t0() + secs(20))
        .await
        .unwrap();
    let job = s
        .claim_job("w1", t0() + secs(20), LEASE)
        .await
        .unwrap()
        .unwrap();
    let run = s
        .finish_unchanged_job(
            job.id,
            "w1",
            id,
            Trigger::Webhook,
            t0() + secs(20),
            &unchanged(t0() + secs(21)),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!((run.interrupted, run.episode_open), (1, true));
    let runs = s.list_runs(id, 10).await.unwrap();
    assert_eq!(runs[0].trigger, Trigger::Recovery);
    assert_eq!(runs[1].id, dead.id);
    assert_eq!(runs[1].error_code.as_deref(), Some(INTERRUPTED_CODE));
    assert_eq!(s.running_count(id).await.unwrap(), 0);

    // A repository deleted while its upstream was listed: nothing is recorded.
    s.enqueue_sync(id, Trigger::Manual, t0() + secs(30))
        .await
        .unwrap();
    let job = s
        .claim_job("w1", t0() + secs(30), LEASE)
        .await
        .unwrap()
        .unwrap();
    assert!(s.delete_repo(id).await.unwrap());
    assert_eq!(
        s.finish_unchanged_job(
            job.id,
            "w1",
            id,
            Trigger::Manual,
            t0() + secs(30),
            &unchanged(t0() + secs(31)),
        )
        .await
        .unwrap(),
        None
    );
    assert!(s.list_runs(id, 10).await.unwrap().is_empty());
}

// ---- settings -------------------------------------------------------------------------------

async fn settings_put_get_and_put_if_absent(db: TestDb) {
    let s = db.store.as_ref();
    s.ping().await.unwrap();
    assert_eq!(s.get_setting("admin_token_hash").await.unwrap(), None);
    assert!(s
        .put_setting_if_absent("admin_token_hash", "h1")
        .await
        .unwrap());
    assert!(!s
        .put_setting_if_absent("admin_token_hash", "h2")
        .await
        .unwrap());
    assert_eq!(
        s.get_setting("admin_token_hash").await.unwrap().as_deref(),
        Some("h1")
    );
    s.put_setting("admin_token_hash", "h3").await.unwrap();
    assert_eq!(
        s.get_setting("admin_token_hash").await.unwrap().as_deref(),
        Some("h3")
    );
    s.put_setting("other", "x").await.unwrap();
    assert_eq!(s.get_setting("other").await.unwrap().as_deref(), Some("x"));

    // Many racing first writers: exactly one wins.
    let mut tasks = Vec::new();
    for i in 0..20 {
        let store = db.store.clone();
        tasks.push(tokio::spawn(async move {
            store
                .put_setting_if_absent("race", &format!("v{i}"))
                .await
                .unwrap()
        }));
    }
    let mut winners = 0;
    for t in tasks {
        winners += usize::from(t.await.unwrap());
    }
    assert_eq!(winners, 1);
}

// ---- pausing, settings, the concurrency record ---------------------------------------------

async fn a_paused_mirror_is_not_scheduled_until_resumed(db: TestDb) {
    let s = db.store.as_ref();
    let id = mirror(s, "team", "gone").await;
    let run = s.start_run(id, Trigger::Schedule, t0()).await.unwrap();
    let mut result = failure(t0(), "upstream_not_found");
    result.pause = true;
    result.next_sync_at = None;
    s.finish_run(run, id, &result).await.unwrap();
    let repo = s.get_repo_by_id(id).await.unwrap().unwrap();
    assert_eq!(
        repo.paused_reason.as_deref(),
        Some("upstream_not_found happened")
    );
    assert_eq!(repo.next_sync_at, None);
    assert_eq!(
        s.enqueue_due(t0() + secs(10 * 86_400), 100).await.unwrap(),
        0
    );

    // A later failure without `pause` keeps the reason; resuming makes it due at once.
    assert!(s.resume_repo(id, t0() + secs(60)).await.unwrap());
    let repo = s.get_repo_by_id(id).await.unwrap().unwrap();
    assert_eq!(
        (repo.paused_reason, repo.next_sync_at),
        (None, Some(t0() + secs(60)))
    );
    assert_eq!(s.enqueue_due(t0() + secs(61), 100).await.unwrap(), 1);
    assert!(!s.resume_repo(id + 1000, t0()).await.unwrap());

    // A success clears a pause too.
    let run = s.start_run(id, Trigger::Manual, t0()).await.unwrap();
    let mut result = failure(t0(), "upstream_auth_failed");
    result.pause = true;
    s.finish_run(run, id, &result).await.unwrap();
    let run = s.start_run(id, Trigger::Manual, t0()).await.unwrap();
    s.finish_run(run, id, &success(t0(), vec![])).await.unwrap();
    assert_eq!(
        s.get_repo_by_id(id).await.unwrap().unwrap().paused_reason,
        None
    );
}

async fn update_repo_changes_settings_and_resumes(db: TestDb) {
    let s = db.store.as_ref();
    let id = mirror(s, "team", "settings").await;
    let run = s.start_run(id, Trigger::Schedule, t0()).await.unwrap();
    let mut result = failure(t0(), "upstream_auth_failed");
    result.pause = true;
    s.finish_run(run, id, &result).await.unwrap();

    let creds = Credentials::new(Some("bob"), "new-token").unwrap();
    let update = mirrorhub_store::RepoUpdate {
        credentials: Some(Some(creds)),
        sync_interval_secs: Some(3600),
        next_sync_at: Some(t0() + secs(3600)),
        description: Some("changed".into()),
        visibility: Some(Visibility::Private),
        ssh_key_id: None,
        known_hosts: None,
        lfs_enabled: None,
        lfs_url: None,
    };
    let repo = s.update_repo(id, &update).await.unwrap().unwrap();
    assert_eq!(repo.paused_reason, None);
    assert_eq!(repo.sync_interval_secs, 3600);
    assert_eq!(repo.next_sync_at, Some(t0() + secs(3600)));
    assert_eq!(
        (repo.description.as_str(), repo.visibility),
        ("changed", Visibility::Private)
    );
    let c = repo.credentials.unwrap();
    assert_eq!(
        (c.username.as_str(), c.expose_secret()),
        ("bob", "new-token")
    );

    // Untouched fields stay; `Some(None)` removes credentials.
    let repo = s
        .update_repo(
            id,
            &mirrorhub_store::RepoUpdate {
                credentials: Some(None),
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .unwrap();
    assert!(repo.credentials.is_none());
    assert_eq!(repo.sync_interval_secs, 3600);
    assert_eq!(repo.description, "changed");
    assert!(s
        .update_repo(id + 1000, &Default::default())
        .await
        .unwrap()
        .is_none());
}

async fn each_run_records_how_many_others_were_running(db: TestDb) {
    let s = db.store.as_ref();
    let id = mirror(s, "team", "overlap").await;
    let first = s.start_run(id, Trigger::Manual, t0()).await.unwrap();
    let second = s.start_run(id, Trigger::Manual, t0()).await.unwrap();
    s.finish_run(first, id, &success(t0(), vec![]))
        .await
        .unwrap();
    s.finish_run(second, id, &success(t0(), vec![]))
        .await
        .unwrap();
    let third = s.start_run(id, Trigger::Manual, t0()).await.unwrap();
    let counts = db.concurrent_at_start(&[first, second, third]).await;
    assert_eq!(counts, vec![0, 1, 0]);

    // A run left `running` by a dead worker is closed by the next worker, whose run then
    // records no overlap...
    s.enqueue_sync(id, Trigger::Manual, t0()).await.unwrap();
    let job = s.claim_job("w1", t0(), LEASE).await.unwrap().unwrap();
    assert_eq!(s.fail_interrupted_runs(id, t0()).await.unwrap(), 1);
    let fourth = s.start_run(id, Trigger::Recovery, t0()).await.unwrap();
    assert_eq!(db.concurrent_at_start(&[fourth]).await, vec![0]);
    // ...but while a second live claim exists (forced here; the queue never hands one out),
    // the other run is not closed and the overlap is on record.
    db.exec(&format!(
        "INSERT INTO sync_jobs (repo_id, trigger, run_after, claimed_by, lease_until, attempts, created_at) \
         SELECT repo_id, trigger, run_after, 'w2', lease_until, 1, created_at FROM sync_jobs WHERE id = {}",
        job.id
    ))
    .await;
    assert_eq!(s.fail_interrupted_runs(id, t0()).await.unwrap(), 0);
    let fifth = s.start_run(id, Trigger::Manual, t0()).await.unwrap();
    assert_eq!(db.concurrent_at_start(&[fifth]).await, vec![1]);
}

async fn counts_due_mirrors_and_elects_one_scheduler(db: TestDb) {
    let s = db.store.as_ref();
    for (name, due_in) in [("a", 10), ("b", 20), ("c", 30)] {
        let id = mirror(s, "team", name).await;
        let run = s.start_run(id, Trigger::Create, t0()).await.unwrap();
        let mut result = success(t0(), vec![]);
        result.next_sync_at = Some(t0() + secs(due_in));
        s.finish_run(run, id, &result).await.unwrap();
    }
    assert_eq!(s.count_due_between(t0(), t0() + secs(10)).await.unwrap(), 1);
    assert_eq!(
        s.count_due_between(t0() + secs(10), t0() + secs(30))
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        s.count_due_between(t0() + secs(30), t0() + secs(99))
            .await
            .unwrap(),
        0
    );

    assert!(s.lead_scheduler().await.unwrap());
    assert!(
        s.lead_scheduler().await.unwrap(),
        "the leader keeps leading"
    );
    let other = db.reopen().await;
    let expected = db.backend == harness::Backend::Sqlite;
    assert_eq!(
        other.lead_scheduler().await.unwrap(),
        expected,
        "one scheduler on PostgreSQL"
    );
}

async fn requeues_cloning_repos_and_counts_for_metrics(db: TestDb) {
    let s = db.store.as_ref();
    let waiting = mirror(s, "team", "waiting").await;
    let queued = mirror(s, "team", "queued").await;
    s.enqueue_sync(queued, Trigger::Create, t0()).await.unwrap();
    let synced = mirror(s, "team", "synced").await;
    let run = s.start_run(synced, Trigger::Create, t0()).await.unwrap();
    s.finish_run(run, synced, &success(t0(), vec![]))
        .await
        .unwrap();
    let moved = s
        .create_repo(new_repo("team", "moved", Mode::Migrate), t0())
        .await
        .unwrap()
        .id;
    let run = s.start_run(moved, Trigger::Create, t0()).await.unwrap();
    s.finish_run(run, moved, &failure(t0(), "timeout"))
        .await
        .unwrap();

    // Only the cloning repository without a pending job gets one.
    assert_eq!(s.requeue_cloning(t0()).await.unwrap(), 1);
    assert_eq!(db.count_jobs(waiting).await, (0, 1));
    assert_eq!(db.count_jobs(queued).await, (0, 1));
    assert_eq!(s.requeue_cloning(t0()).await.unwrap(), 0);

    let grace = Duration::from_secs(3600);
    let counts = s.repo_counts(t0(), grace).await.unwrap();
    assert_eq!(
        (
            counts.mirrors,
            counts.migrated,
            counts.cloning,
            counts.failed,
            counts.paused,
            counts.stale
        ),
        (3, 1, 2, 1, 0, 0)
    );
    // A day and an hour later, every mirror is stale (the synced one succeeded at t0).
    let later = s
        .repo_counts(t0() + secs(86_400 + 3601), grace)
        .await
        .unwrap();
    assert_eq!(later.stale, 3);
    let just_before = s
        .repo_counts(t0() + secs(86_400 + 3599), grace)
        .await
        .unwrap();
    assert_eq!(just_before.stale, 0);
}

// ---- webhooks -------------------------------------------------------------------------------

fn delivery(id: Option<&str>, entries: Vec<DeliveryEntry>) -> NewDelivery {
    NewDelivery {
        forge: "github".into(),
        delivery_id: id.map(str::to_owned),
        event: "push".into(),
        entries,
    }
}

fn recorded(outcome: DeliveryOutcome) -> Vec<DateTime<Utc>> {
    match outcome {
        DeliveryOutcome::Recorded { syncs_due } => syncs_due,
        DeliveryOutcome::Duplicate => panic!("taken for a replay"),
    }
}

fn entry(repo_id: i64, sync: bool) -> DeliveryEntry {
    DeliveryEntry {
        repo_id,
        sync,
        result: if sync { "sync queued" } else { "connected" }.into(),
    }
}

async fn every_repo_gets_a_webhook_secret_and_a_match_key(db: TestDb) {
    let s = db.store.as_ref();
    let a = s
        .create_repo(new_repo("team", "a", Mode::Mirror), t0())
        .await
        .unwrap();
    let b = s
        .create_repo(new_repo("team", "b", Mode::Mirror), t0())
        .await
        .unwrap();
    let secret_a = a
        .webhook_secret
        .as_ref()
        .unwrap()
        .expose_secret()
        .to_owned();
    let secret_b = b
        .webhook_secret
        .as_ref()
        .unwrap()
        .expose_secret()
        .to_owned();
    assert_eq!(secret_a.len(), 64, "256 bits in hex");
    assert!(secret_a.bytes().all(|c| c.is_ascii_hexdigit()));
    assert_ne!(secret_a, secret_b);
    // Stored sealed, read back the same.
    let again = s.get_repo_by_id(a.id).await.unwrap().unwrap();
    assert_eq!(again.webhook_secret.unwrap().expose_secret(), secret_a);
    assert_eq!(again.webhook, Default::default());

    // Any form of the upstream's URL finds it (and its namesake mirror of the same upstream).
    let mut twin = new_repo("other", "a-copy", Mode::Mirror);
    twin.upstream_url = "https://example.org/team/a.git".into();
    let twin = s.create_repo(twin, t0()).await.unwrap();
    let found = s
        .repos_by_match_keys(&["example.org/team/a".into(), "nowhere/x".into()])
        .await
        .unwrap();
    assert_eq!(
        found.iter().map(|r| r.id).collect::<Vec<_>>(),
        vec![a.id, twin.id]
    );
    assert!(s.repos_by_match_keys(&[]).await.unwrap().is_empty());

    // Rows from before webhooks existed are given both at the next start.
    db.exec("UPDATE repos SET webhook_secret = NULL, match_key = NULL")
        .await;
    let reopened = db.reopen().await;
    let b2 = reopened.get_repo_by_id(b.id).await.unwrap().unwrap();
    assert_eq!(b2.webhook_secret.unwrap().expose_secret().len(), 64);
    assert_eq!(
        reopened
            .repos_by_match_keys(&["example.org/team/b".into()])
            .await
            .unwrap()
            .len(),
        1
    );
}

async fn deliveries_queue_syncs_log_and_refuse_replays(db: TestDb) {
    let s = db.store.as_ref();
    let a = mirror(s, "team", "a").await;
    let b = mirror(s, "team", "b").await;

    // One delivery for two repositories: one sync queued (at once: it never synced), one
    // only logged.
    let due = recorded(
        s.record_delivery(
            &delivery(Some("d-1"), vec![entry(a, true), entry(b, false)]),
            t0(),
        )
        .await
        .unwrap(),
    );
    assert_eq!(due, vec![t0()]);
    assert_eq!(db.count_jobs(a).await, (0, 1), "(claimed, pending)");
    assert_eq!(db.count_jobs(b).await, (0, 0));
    let job = s.claim_job("w", t0(), LEASE).await.unwrap().unwrap();
    assert_eq!((job.repo_id, job.trigger), (a, Trigger::Webhook));
    // A push while that sync runs: one follow-up, due at once, which the claim refuses until
    // the running sync ends.
    s.start_run(a, Trigger::Webhook, t0() + secs(1))
        .await
        .unwrap();
    let due = recorded(
        s.record_delivery(&delivery(Some("d-0"), vec![entry(a, true)]), t0() + secs(2))
            .await
            .unwrap(),
    );
    assert_eq!(due, vec![t0() + secs(2)]);
    assert_eq!(db.count_jobs(a).await, (1, 1));
    assert!(s
        .claim_job("w2", t0() + secs(2), LEASE)
        .await
        .unwrap()
        .is_none());
    // Another push meanwhile merges into that pending job, due when it was.
    let due = recorded(
        s.record_delivery(&delivery(None, vec![entry(a, true)]), t0() + secs(60))
            .await
            .unwrap(),
    );
    assert_eq!(due, vec![t0() + secs(2)]);
    assert_eq!(
        db.count_jobs(a).await,
        (1, 1),
        "merged: still one follow-up"
    );
    // The running sync ends: the follow-up is claimed at once.
    s.complete_job(job.id, "w").await.unwrap();
    let follow_up = s
        .claim_job("w2", t0() + secs(61), LEASE)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(follow_up.repo_id, a);
    // Long after the previous start, with nothing pending: at once.
    let c = mirror(s, "team", "c").await;
    s.start_run(c, Trigger::Webhook, t0()).await.unwrap();
    let due = recorded(
        s.record_delivery(&delivery(None, vec![entry(c, true)]), t0() + secs(60))
            .await
            .unwrap(),
    );
    assert_eq!(due, vec![t0() + secs(60)]);

    // The same id again (any repository, any time in the window) does nothing at all.
    assert_eq!(
        s.record_delivery(&delivery(Some("d-1"), vec![entry(b, true)]), t0() + secs(5))
            .await
            .unwrap(),
        DeliveryOutcome::Duplicate
    );
    assert_eq!(db.count_jobs(b).await, (0, 0));
    // The same id from another forge is another delivery.
    let mut gitlab = delivery(Some("d-1"), vec![entry(b, true)]);
    gitlab.forge = "gitlab".into();
    recorded(s.record_delivery(&gitlab, t0() + secs(6)).await.unwrap());
    // Bursts coalesce into the one pending job; deliveries without an id are never replays.
    for i in 0..20 {
        recorded(
            s.record_delivery(&delivery(None, vec![entry(b, true)]), t0() + secs(7 + i))
                .await
                .unwrap(),
        );
    }
    assert_eq!(db.count_jobs(b).await, (0, 1));
    // A delivery that matched nothing is still remembered.
    assert!(recorded(
        s.record_delivery(&delivery(Some("d-2"), vec![]), t0())
            .await
            .unwrap()
    )
    .is_empty());
    assert_eq!(
        s.record_delivery(&delivery(Some("d-2"), vec![]), t0())
            .await
            .unwrap(),
        DeliveryOutcome::Duplicate
    );

    let log = s.list_deliveries(b, 5).await.unwrap();
    assert_eq!(log.len(), 5, "limited");
    assert!(log.windows(2).all(|w| w[0].id > w[1].id), "newest first");
    assert_eq!(log[0].received_at, t0() + secs(26));
    assert_eq!(log[0].delivery_id, None);
    let all_b = s.list_deliveries(b, 100).await.unwrap();
    assert_eq!(all_b.len(), 22);
    let first = all_b.last().unwrap();
    assert_eq!(
        (
            first.forge.as_str(),
            first.event.as_str(),
            first.delivery_id.as_deref(),
            first.result.as_str()
        ),
        ("github", "push", Some("d-1"), "connected")
    );
    let repo_b = s.get_repo_by_id(b).await.unwrap().unwrap();
    assert_eq!(repo_b.webhook.last_delivery_at, Some(t0() + secs(26)));
    assert_eq!(repo_b.webhook.last_forge.as_deref(), Some("github"));

    // Pruning forgets old ids (so they count as new again) and old log lines.
    let pruned = s
        .prune_deliveries(t0() + secs(1), t0() + secs(10))
        .await
        .unwrap();
    assert_eq!(pruned, 2 + 7, "two ids; five lines of b and two of a");
    recorded(
        s.record_delivery(&delivery(Some("d-1"), vec![]), t0() + secs(100))
            .await
            .unwrap(),
    );
    assert_eq!(
        s.list_deliveries(b, 100).await.unwrap().len(),
        22 - 5,
        "t0, +6..+9 gone"
    );

    // Deleting a repository deletes its log.
    assert!(s.delete_repo(b).await.unwrap());
    assert!(s.list_deliveries(b, 100).await.unwrap().is_empty());
}

async fn a_registered_webhook_is_recorded(db: TestDb) {
    let s = db.store.as_ref();
    let a = mirror(s, "team", "a").await;
    let hook = WebhookHook::Registered {
        forge: "gitlab".into(),
        id: "42".into(),
    };
    s.set_webhook_hook(a, &hook).await.unwrap();
    assert_eq!(
        s.get_repo_by_id(a).await.unwrap().unwrap().webhook.hook,
        hook
    );
    let failed = WebhookHook::Failed("the token may not manage webhooks".into());
    s.set_webhook_hook(a, &failed).await.unwrap();
    assert_eq!(
        s.get_repo_by_id(a).await.unwrap().unwrap().webhook.hook,
        failed
    );
    s.set_webhook_hook(a, &WebhookHook::None).await.unwrap();
    assert_eq!(
        s.get_repo_by_id(a).await.unwrap().unwrap().webhook.hook,
        WebhookHook::None
    );
    assert!(matches!(
        s.set_webhook_hook(a + 1000, &hook).await,
        Err(StoreError::NotFound)
    ));
}

async fn a_bot_command_is_taken_once(db: TestDb) {
    let s = db.store.as_ref();
    let take = |forge: &'static str, comment: &'static str, command: &'static str, at| async move {
        s.take_bot_command(forge, comment, command, at)
            .await
            .unwrap()
    };
    assert!(take("github", "o/r#1", "/mirror", t0()).await);
    assert!(
        !take("github", "o/r#1", "/mirror", t0() + secs(1)).await,
        "redelivered"
    );
    assert!(
        take("github", "o/r#1", "/sync", t0()).await,
        "another command of the comment"
    );
    assert!(
        take("github", "o/r#2", "/mirror", t0()).await,
        "another comment"
    );
    assert!(
        take("gitea", "o/r#1", "/mirror", t0()).await,
        "another forge"
    );
    // Racing replicas: exactly one takes it.
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let store = db.store.clone();
        tasks.push(tokio::spawn(async move {
            store
                .take_bot_command("gitlab", "g/p#9", "/sync", t0())
                .await
                .unwrap()
        }));
    }
    let mut winners = 0;
    for t in tasks {
        winners += usize::from(t.await.unwrap());
    }
    assert_eq!(winners, 1);
    // Pruned with the delivery log.
    s.prune_deliveries(t0(), t0() + secs(10)).await.unwrap();
    assert!(take("github", "o/r#1", "/mirror", t0() + secs(20)).await);
}

async fn web_sessions_expire_and_sign_out(db: TestDb) {
    let s = db.store.as_ref();
    let session = WebSession {
        id_sha256: "ab".repeat(32),
        csrf_token: "csrf-1".into(),
        user_id: None,
        created_at: t0(),
        expires_at: t0() + secs(3600),
    };
    s.create_web_session(&session).await.unwrap();
    assert!(matches!(
        s.create_web_session(&session).await,
        Err(StoreError::Conflict)
    ));
    assert_eq!(
        s.get_web_session(&session.id_sha256, t0() + secs(10))
            .await
            .unwrap(),
        Some(session.clone())
    );
    assert_eq!(
        s.get_web_session(&session.id_sha256, t0() + secs(3600))
            .await
            .unwrap(),
        None,
        "expired"
    );
    assert_eq!(s.get_web_session("cd", t0()).await.unwrap(), None);
    let other = WebSession {
        id_sha256: "cd".repeat(32),
        expires_at: t0() + secs(10),
        ..session.clone()
    };
    s.create_web_session(&other).await.unwrap();
    assert_eq!(s.prune_web_sessions(t0() + secs(20)).await.unwrap(), 1);
    assert!(s.delete_web_session(&session.id_sha256).await.unwrap());
    assert!(!s.delete_web_session(&session.id_sha256).await.unwrap());
    // A user's session names the user.
    let ana = account(s, "ana", AccountKind::User).await;
    let hers = WebSession {
        id_sha256: "ef".repeat(32),
        user_id: Some(ana.id),
        ..session.clone()
    };
    s.create_web_session(&hers).await.unwrap();
    let found = s.get_web_session(&hers.id_sha256, t0()).await.unwrap();
    assert_eq!(found.and_then(|f| f.user_id), Some(ana.id));
    assert_eq!(s.get_account_by_id(ana.id).await.unwrap(), Some(ana));
    assert_eq!(s.get_account_by_id(-1).await.unwrap(), None);
    assert_eq!(
        s.get_web_session(&session.id_sha256, t0()).await.unwrap(),
        None
    );
}

async fn a_promotion_is_never_merged_away_and_is_recorded_with_its_run(db: TestDb) {
    let s = db.store.as_ref();
    let with_credentials = |owner: &str, name: &str| NewRepo {
        credentials: Some(Credentials::new(Some("bot"), "s3cret").unwrap()),
        ..new_repo(owner, name, Mode::Mirror)
    };
    let id = s
        .create_repo(with_credentials("alice", "moving"), t0())
        .await
        .unwrap()
        .id;
    s.enqueue_sync(id, Trigger::Schedule, t0()).await.unwrap();
    s.enqueue_sync(id, Trigger::Promote, t0() + secs(5))
        .await
        .unwrap();
    s.enqueue_sync(id, Trigger::Webhook, t0() - secs(5))
        .await
        .unwrap();
    // A push webhook arriving meanwhile joins it too.
    let push = NewDelivery {
        forge: "github".into(),
        delivery_id: Some("d-promote".into()),
        event: "push".into(),
        entries: vec![DeliveryEntry {
            repo_id: id,
            sync: true,
            result: "sync queued".into(),
        }],
    };
    s.record_delivery(&push, t0() - secs(10)).await.unwrap();
    assert_eq!(db.count("sync_jobs").await, 1);
    let job = s
        .claim_job("w1", t0(), LEASE)
        .await
        .unwrap()
        .expect("due at the earliest time asked for");
    assert_eq!(
        job.trigger,
        Trigger::Promote,
        "the promotion kept its trigger"
    );

    let run = s.start_run(id, Trigger::Promote, t0()).await.unwrap();
    s.finish_run(
        run,
        id,
        &SyncResult {
            next_sync_at: None,
            promote: true,
            ..success(t0() + secs(1), vec![])
        },
    )
    .await
    .unwrap();
    let repo = s.get_repo_by_id(id).await.unwrap().unwrap();
    assert_eq!(repo.mode, Mode::Migrate);
    assert_eq!(repo.next_sync_at, None);
    assert!(
        repo.credentials.is_none(),
        "upstream credentials are forgotten"
    );
    assert_eq!(
        s.list_runs(id, 1).await.unwrap()[0].trigger,
        Trigger::Promote
    );

    // A failed promotion changes nothing but the failure count.
    let other = s
        .create_repo(with_credentials("bob", "staying"), t0())
        .await
        .unwrap()
        .id;
    let run = s.start_run(other, Trigger::Promote, t0()).await.unwrap();
    s.finish_run(
        run,
        other,
        &SyncResult {
            promote: true,
            ..failure(t0() + secs(1), "upstream_unreachable")
        },
    )
    .await
    .unwrap();
    let repo = s.get_repo_by_id(other).await.unwrap().unwrap();
    assert_eq!(repo.mode, Mode::Mirror);
    assert!(repo.credentials.is_some());
}

async fn concurrent_deliveries_each_get_their_own_outcome(db: TestDb) {
    let s = db.store.clone();
    let id = mirror(s.as_ref(), "alice", "busy").await;
    let delivery = |delivery_id: String, repo_id: i64| NewDelivery {
        forge: "github".into(),
        delivery_id: Some(delivery_id),
        event: "push".into(),
        entries: vec![DeliveryEntry {
            repo_id,
            sync: true,
            result: "sync queued".into(),
        }],
    };
    // A burst: the same delivery twenty times (one is recorded), twenty distinct ones (all
    // are), and one for a repository that does not exist (it alone fails).
    let mut tasks = Vec::new();
    for n in 0..41 {
        let s = s.clone();
        let d = match n {
            0..20 => delivery("same".into(), id),
            20..40 => delivery(format!("distinct-{n}"), id),
            _ => delivery("orphan".into(), id + 1000),
        };
        tasks.push(tokio::spawn(async move {
            (n, s.record_delivery(&d, t0()).await)
        }));
    }
    let (mut recorded_same, mut recorded_distinct) = (0, 0);
    for task in tasks {
        match task.await.unwrap() {
            (0..20, Ok(DeliveryOutcome::Recorded { .. })) => recorded_same += 1,
            (0..20, Ok(DeliveryOutcome::Duplicate)) => {}
            (20..40, Ok(DeliveryOutcome::Recorded { .. })) => recorded_distinct += 1,
            (40, Err(StoreError::NotFound)) => {}
            (n, other) => panic!("delivery {n}: {other:?}"),
        }
    }
    assert_eq!((recorded_same, recorded_distinct), (1, 20));
    assert_eq!(s.list_deliveries(id, 100).await.unwrap().len(), 21);
}

// ---- accounts, organizations, access tokens ------------------------------------------------

fn new_account(name: &str, kind: AccountKind) -> NewAccount {
    NewAccount {
        name: OwnerName::parse(name).unwrap(),
        kind,
        site_admin: false,
        password_hash: None,
    }
}

async fn account(s: &dyn Store, name: &str, kind: AccountKind) -> Account {
    s.create_account(&new_account(name, kind), t0())
        .await
        .unwrap()
}

fn new_token(user_id: i64, name: &str, sha: &str) -> NewAccessToken {
    NewAccessToken {
        user_id,
        name: name.into(),
        token_sha256: sha.repeat(32),
        scope: Access::Write,
        expires_at: None,
    }
}

async fn account_names_are_unique_in_any_case_across_users_and_orgs(db: TestDb) {
    let s = db.store.as_ref();
    let alice = s
        .create_account(
            &NewAccount {
                site_admin: true,
                password_hash: Some("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into()),
                ..new_account("Alice", AccountKind::User)
            },
            t0(),
        )
        .await
        .unwrap();
    assert_eq!(
        (
            alice.name.as_str(),
            alice.kind,
            alice.site_admin,
            alice.created_at
        ),
        ("Alice", AccountKind::User, true, t0())
    );
    let team = account(s, "team", AccountKind::Org).await;
    assert_eq!((team.kind, team.site_admin), (AccountKind::Org, false));

    // One namespace for users and organizations, whatever the case.
    for (name, kind) in [
        ("alice", AccountKind::Org),
        ("ALICE", AccountKind::User),
        ("Team", AccountKind::User),
        ("team", AccountKind::Org),
    ] {
        let err = s
            .create_account(&new_account(name, kind), t0())
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Conflict), "{name}: {err:?}");
    }
    assert_eq!(db.count("accounts").await, 2);

    for name in ["Alice", "alice", "aLICE"] {
        assert_eq!(s.get_account(name).await.unwrap().as_ref(), Some(&alice));
    }
    assert_eq!(s.get_account("TEAM").await.unwrap(), Some(team.clone()));
    assert_eq!(s.get_account("alic").await.unwrap(), None);

    let bob = account(s, "bob", AccountKind::User).await;
    let carol = account(s, "Carol", AccountKind::Org).await;
    assert_eq!(
        s.list_accounts().await.unwrap(),
        [alice.clone(), bob.clone(), carol, team.clone()],
        "by name, ignoring case"
    );

    assert_eq!(
        s.password_hash(alice.id).await.unwrap().as_deref(),
        Some("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA")
    );
    assert_eq!(s.password_hash(bob.id).await.unwrap(), None, "no password");
    assert_eq!(s.password_hash(team.id).await.unwrap(), None);
    assert_eq!(
        s.password_hash(bob.id + 1000).await.unwrap(),
        None,
        "no account"
    );

    // Users change: a new password, none, site admin; organizations are not users.
    assert!(s
        .update_user(bob.id, Some(Some("$argon2id$new".into())), Some(true))
        .await
        .unwrap());
    assert_eq!(
        s.password_hash(bob.id).await.unwrap().as_deref(),
        Some("$argon2id$new")
    );
    assert!(
        s.get_account_by_id(bob.id)
            .await
            .unwrap()
            .unwrap()
            .site_admin
    );
    assert!(s.update_user(bob.id, Some(None), None).await.unwrap());
    assert_eq!(s.password_hash(bob.id).await.unwrap(), None);
    assert!(
        s.get_account_by_id(bob.id)
            .await
            .unwrap()
            .unwrap()
            .site_admin
    );
    assert!(!s.update_user(team.id, None, Some(true)).await.unwrap());

    // An account that owns repositories (under its name, in any case) is not deleted.
    let repo = s
        .create_repo(new_repo("TEAM", "app", Mode::Mirror), t0())
        .await
        .unwrap();
    assert!(!s.delete_account(team.id).await.unwrap());
    assert!(s.delete_repo(repo.id).await.unwrap());
    assert!(s.delete_account(team.id).await.unwrap());
    assert_eq!(s.get_account("team").await.unwrap(), None);
    assert!(!s.delete_account(team.id).await.unwrap(), "gone already");
}

async fn members_are_upserted_listed_and_removed(db: TestDb) {
    let s = db.store.as_ref();
    let team = account(s, "team", AccountKind::Org).await;
    let other = account(s, "Other", AccountKind::Org).await;
    let ana = account(s, "ana", AccountKind::User).await;
    let bob = account(s, "Bob", AccountKind::User).await;
    assert_eq!(s.list_members(team.id).await.unwrap(), []);
    assert_eq!(s.memberships(ana.id).await.unwrap(), []);

    s.set_member(team.id, bob.id, Access::Write).await.unwrap();
    s.set_member(team.id, ana.id, Access::Read).await.unwrap();
    s.set_member(team.id, ana.id, Access::Admin).await.unwrap();
    assert_eq!(
        db.count("org_members").await,
        2,
        "the second set changed the role"
    );
    assert_eq!(
        s.list_members(team.id).await.unwrap(),
        [(ana.clone(), Access::Admin), (bob.clone(), Access::Write)],
        "by name, ignoring case"
    );
    s.set_member(other.id, ana.id, Access::Read).await.unwrap();
    assert_eq!(
        s.memberships(ana.id).await.unwrap(),
        [
            ("Other".to_owned(), Access::Read),
            ("team".to_owned(), Access::Admin)
        ]
    );
    assert_eq!(
        s.memberships(bob.id).await.unwrap(),
        [("team".to_owned(), Access::Write)]
    );

    assert!(s.remove_member(team.id, ana.id).await.unwrap());
    assert!(!s.remove_member(team.id, ana.id).await.unwrap());
    assert!(!s.remove_member(other.id, bob.id).await.unwrap());
    assert_eq!(
        s.list_members(team.id).await.unwrap(),
        [(bob.clone(), Access::Write)]
    );
    assert_eq!(
        s.memberships(ana.id).await.unwrap(),
        [("Other".to_owned(), Access::Read)]
    );

    let missing = ana.id.max(bob.id).max(team.id).max(other.id) + 1000;
    for (org_id, user_id) in [(missing, ana.id), (team.id, missing)] {
        let err = s
            .set_member(org_id, user_id, Access::Read)
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::NotFound), "{err:?}");
    }
    assert_eq!(db.count("org_members").await, 2);
    assert_eq!(s.list_members(missing).await.unwrap(), []);
}

async fn access_tokens_are_found_by_hash_revoked_and_named_again(db: TestDb) {
    let s = db.store.as_ref();
    let ana = account(s, "Ana", AccountKind::User).await;
    let bob = account(s, "bob", AccountKind::User).await;

    let laptop = s
        .create_access_token(
            &NewAccessToken {
                scope: Access::Admin,
                expires_at: Some(t0() + secs(30 * 86_400)),
                ..new_token(ana.id, "laptop", "a1")
            },
            t0(),
        )
        .await
        .unwrap();
    assert_eq!(
        laptop,
        AccessToken {
            id: laptop.id,
            user_id: ana.id,
            name: "laptop".into(),
            scope: Access::Admin,
            created_at: t0(),
            expires_at: Some(t0() + secs(30 * 86_400)),
            last_used_at: None,
            revoked_at: None,
        }
    );
    assert_eq!(
        s.access_token_by_hash(&"a1".repeat(32)).await.unwrap(),
        Some((laptop.clone(), ana.clone()))
    );
    assert_eq!(
        s.access_token_by_hash(&"ff".repeat(32)).await.unwrap(),
        None
    );

    // Names are per user and unique among live tokens; hashes are unique.
    let err = s
        .create_access_token(&new_token(ana.id, "laptop", "a2"), t0())
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict), "{err:?}");
    let bobs = s
        .create_access_token(&new_token(bob.id, "laptop", "b1"), t0())
        .await
        .unwrap();
    let err = s
        .create_access_token(&new_token(bob.id, "desktop", "a1"), t0())
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict), "{err:?}");
    let err = s
        .create_access_token(&new_token(bob.id + 1000, "ci", "c1"), t0())
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound), "{err:?}");
    // Created at the same instant as `laptop`, later: listed before it.
    let ci = s
        .create_access_token(&new_token(ana.id, "ci", "a3"), t0())
        .await
        .unwrap();

    // Only the owner revokes; a revoked token stays revoked at its first time.
    assert!(!s
        .revoke_access_token(bob.id, laptop.id, t0() + secs(5))
        .await
        .unwrap());
    assert!(!s
        .revoke_access_token(ana.id, ci.id + 1000, t0() + secs(5))
        .await
        .unwrap());
    assert!(s
        .revoke_access_token(ana.id, laptop.id, t0() + secs(10))
        .await
        .unwrap());
    assert!(s
        .revoke_access_token(ana.id, laptop.id, t0() + secs(20))
        .await
        .unwrap());
    let (revoked, user) = s
        .access_token_by_hash(&"a1".repeat(32))
        .await
        .unwrap()
        .expect("a revoked token is still found");
    assert_eq!(revoked.revoked_at, Some(t0() + secs(10)));
    assert_eq!(user, ana);
    assert_eq!(
        s.access_token_by_hash(&"b1".repeat(32)).await.unwrap(),
        Some((bobs.clone(), bob.clone())),
        "bob's token of the same name is untouched"
    );

    // The name is free again once revoked.
    let laptop2 = s
        .create_access_token(&new_token(ana.id, "laptop", "a4"), t0() + secs(30))
        .await
        .unwrap();
    assert_eq!(laptop2.revoked_at, None);
    let err = s
        .create_access_token(&new_token(ana.id, "laptop", "a5"), t0() + secs(31))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Conflict), "{err:?}");

    s.touch_access_token(laptop2.id, t0() + secs(40))
        .await
        .unwrap();
    s.touch_access_token(laptop2.id, t0() + secs(50))
        .await
        .unwrap();
    let (touched, _) = s
        .access_token_by_hash(&"a4".repeat(32))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(touched.last_used_at, Some(t0() + secs(50)));

    let listed = s.list_access_tokens(ana.id).await.unwrap();
    let ids: Vec<i64> = listed.iter().map(|t| t.id).collect();
    assert_eq!(ids, [laptop2.id, ci.id, laptop.id], "newest first");
    assert_eq!(listed[0], touched);
    assert_eq!(listed[2], revoked);
    assert_eq!(s.list_access_tokens(bob.id).await.unwrap(), [bobs]);
    assert_eq!(s.list_access_tokens(bob.id + 1000).await.unwrap(), []);
}

// ---- SSH keys -------------------------------------------------------------------------------

/// The private key text of test key `n` (not a real key: the store never parses it).
fn private_key_text(n: &str) -> String {
    format!(
        "-----BEGIN OPENSSH PRIVATE KEY-----\n\
         b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW{n}\n\
         -----END OPENSSH PRIVATE KEY-----\n"
    )
}

const HOSTS: &str = "git.example.org ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHostKey\n\
                     [git.example.org]:2222 ssh-rsa AAAAB3NzaC1yc2EAAAADAQABHostKey\n";

fn new_ssh_key(owner_id: i64, title: &str) -> NewSshKey {
    NewSshKey {
        owner_id,
        title: title.into(),
        public_key: format!("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI{title} mirrorhub"),
        fingerprint: format!("SHA256:{title}Fingerprint"),
        private_key: SecretString::from(private_key_text(title)),
    }
}

async fn ssh_key(s: &dyn Store, owner_id: i64, title: &str, at: DateTime<Utc>) -> SshKey {
    s.create_ssh_key(new_ssh_key(owner_id, title), at)
        .await
        .unwrap()
}

async fn ssh_keys_are_listed_per_owner_and_hide_the_private_key(db: TestDb) {
    let s = db.store.as_ref();
    let ana = account(s, "Ana", AccountKind::User).await;
    let team = account(s, "team", AccountKind::Org).await;

    let laptop = ssh_key(s, ana.id, "laptop", t0()).await;
    assert_eq!(
        laptop,
        SshKey {
            id: laptop.id,
            owner_id: ana.id,
            owner: "Ana".into(),
            title: "laptop".into(),
            public_key: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIlaptop mirrorhub".into(),
            fingerprint: "SHA256:laptopFingerprint".into(),
            created_at: t0(),
        }
    );
    let deploy = ssh_key(s, team.id, "deploy", t0()).await;
    assert_eq!(deploy.owner, "team");
    // At the same instant as `laptop`, later: listed after it; an older one comes first.
    let ci = ssh_key(s, ana.id, "ci", t0()).await;
    let old = ssh_key(s, ana.id, "old", t0() - secs(10)).await;
    assert_eq!(
        s.list_ssh_keys(ana.id).await.unwrap(),
        [old.clone(), laptop.clone(), ci.clone()],
        "oldest first"
    );
    assert_eq!(
        s.list_ssh_keys(team.id).await.unwrap(),
        std::slice::from_ref(&deploy)
    );
    assert_eq!(s.list_ssh_keys(team.id + 1000).await.unwrap(), []);
    assert_eq!(
        s.get_ssh_key(laptop.id).await.unwrap(),
        Some(laptop.clone())
    );
    assert_eq!(
        s.get_ssh_key(deploy.id).await.unwrap(),
        Some(deploy.clone())
    );
    assert_eq!(s.get_ssh_key(old.id + 1000).await.unwrap(), None);

    // No owner, no key.
    let err = s
        .create_ssh_key(new_ssh_key(team.id + 1000, "orphan"), t0())
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound), "{err:?}");
    assert_eq!(db.count("ssh_keys").await, 4);

    // The private key opens back exactly; it shows nowhere else.
    let text = private_key_text("laptop");
    assert_eq!(
        s.ssh_private_key(laptop.id)
            .await
            .unwrap()
            .unwrap()
            .expose_secret(),
        text
    );
    assert_eq!(
        s.ssh_private_key(deploy.id)
            .await
            .unwrap()
            .unwrap()
            .expose_secret(),
        private_key_text("deploy")
    );
    assert!(s.ssh_private_key(old.id + 1000).await.unwrap().is_none());
    let secret_part = "AAAAtzc2gtZWlaptop";
    assert!(text.contains(secret_part));
    for shown in [
        format!("{laptop:?}"),
        format!("{:?}", s.list_ssh_keys(ana.id).await.unwrap()),
        format!("{:?}", new_ssh_key(ana.id, "laptop")),
    ] {
        assert!(!shown.contains(secret_part), "{shown}");
        assert!(!shown.contains("PRIVATE KEY"), "{shown}");
    }

    // Sealed at rest: nothing of the text in the column, and a fresh nonce per key.
    let raw = db.raw_ssh_private_key(laptop.id).await;
    let contains = |needle: &[u8]| raw.windows(needle.len()).any(|w| w == needle);
    assert!(
        !contains(b"PRIVATE KEY"),
        "the private key is stored in plaintext"
    );
    assert!(!contains(secret_part.as_bytes()));
    assert!(raw.len() >= 1 + 24 + 16 + text.len());
    let twin = ssh_key(s, ana.id, "laptop", t0()).await;
    assert_ne!(db.raw_ssh_private_key(twin.id).await, raw);

    // Another store with the same key opens it; the account's keys go with the account.
    let again = db.reopen().await;
    assert_eq!(
        again
            .ssh_private_key(old.id)
            .await
            .unwrap()
            .unwrap()
            .expose_secret(),
        private_key_text("old")
    );
    assert!(s.delete_account(ana.id).await.unwrap());
    assert_eq!(s.get_ssh_key(laptop.id).await.unwrap(), None);
    assert_eq!(s.list_ssh_keys(ana.id).await.unwrap(), []);
    assert_eq!(s.list_ssh_keys(team.id).await.unwrap(), [deploy]);
}

async fn repos_use_ssh_keys_and_a_key_in_use_is_not_deleted(db: TestDb) {
    let s = db.store.as_ref();
    let ana = account(s, "ana", AccountKind::User).await;
    let deploy = ssh_key(s, ana.id, "deploy", t0()).await;
    let spare = ssh_key(s, ana.id, "spare", t0()).await;

    // Created with a key and pinned host keys, read back everywhere.
    let with_key = |owner: &str, name: &str| NewRepo {
        upstream_url: format!("ssh://git@git.example.org/{owner}/{name}.git"),
        ssh_key_id: Some(deploy.id),
        known_hosts: Some(HOSTS.into()),
        ..new_repo(owner, name, Mode::Mirror)
    };
    let b = s.create_repo(with_key("ana", "b-app"), t0()).await.unwrap();
    assert_eq!(
        (b.ssh_key_id, b.known_hosts.as_deref()),
        (Some(deploy.id), Some(HOSTS))
    );
    let got = s.get_repo("ana", "b-app").await.unwrap().unwrap();
    assert_eq!(
        (got.ssh_key_id, got.known_hosts.as_deref()),
        (Some(deploy.id), Some(HOSTS))
    );
    let a = s
        .create_repo(with_key("Team", "a-app"), t0())
        .await
        .unwrap();
    let plain = s
        .create_repo(new_repo("ana", "plain", Mode::Mirror), t0())
        .await
        .unwrap();
    assert_eq!((plain.ssh_key_id, plain.known_hosts), (None, None));
    let listed: Vec<(String, Option<i64>)> = s
        .list_repos()
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.name, r.ssh_key_id))
        .collect();
    assert_eq!(
        listed,
        [
            ("b-app".to_owned(), Some(deploy.id)),
            ("plain".to_owned(), None),
            ("a-app".to_owned(), Some(deploy.id)),
        ]
    );

    // A key that does not exist is refused, and nothing is created.
    let mut missing = with_key("ana", "missing");
    missing.ssh_key_id = Some(spare.id + 1000);
    let err = s.create_repo(missing, t0()).await.unwrap_err();
    assert!(matches!(err, StoreError::NotFound), "{err:?}");
    assert!(s.get_repo("ana", "missing").await.unwrap().is_none());

    // Updates set and clear each independently; untouched fields stay.
    let update = |ssh_key_id, known_hosts| RepoUpdate {
        ssh_key_id,
        known_hosts,
        ..Default::default()
    };
    let r = s
        .update_repo(
            plain.id,
            &update(Some(Some(spare.id)), Some(Some(HOSTS.into()))),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (r.ssh_key_id, r.known_hosts.as_deref()),
        (Some(spare.id), Some(HOSTS))
    );
    let r = s
        .update_repo(plain.id, &update(Some(Some(deploy.id)), None))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (r.ssh_key_id, r.known_hosts.as_deref()),
        (Some(deploy.id), Some(HOSTS)),
        "the host keys stay"
    );
    let r = s
        .update_repo(plain.id, &update(None, Some(None)))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (r.ssh_key_id, r.known_hosts.as_deref()),
        (Some(deploy.id), None)
    );
    let r = s
        .update_repo(
            plain.id,
            &update(None, Some(Some("h ssh-ed25519 AAAA\n".into()))),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(r.known_hosts.as_deref(), Some("h ssh-ed25519 AAAA\n"));
    let r = s
        .update_repo(plain.id, &update(Some(None), None))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (r.ssh_key_id, r.known_hosts.as_deref()),
        (None, Some("h ssh-ed25519 AAAA\n"))
    );
    assert_eq!(r.description, plain.description);
    let err = s
        .update_repo(plain.id, &update(Some(Some(spare.id + 1000)), Some(None)))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound), "{err:?}");
    let r = s.get_repo_by_id(plain.id).await.unwrap().unwrap();
    assert_eq!(
        (r.ssh_key_id, r.known_hosts.as_deref()),
        (None, Some("h ssh-ed25519 AAAA\n")),
        "a refused update changes nothing"
    );

    // A key in use stays, and says who uses it (as list_repos orders them).
    assert_eq!(
        s.delete_ssh_key(deploy.id).await.unwrap(),
        SshKeyDeletion::InUse {
            repos: vec!["ana/b-app".into(), "Team/a-app".into()]
        }
    );
    assert_eq!(
        s.get_ssh_key(deploy.id).await.unwrap(),
        Some(deploy.clone())
    );
    assert!(s.ssh_private_key(deploy.id).await.unwrap().is_some());
    // Nor does the account that owns it go, while another owner's repository uses it.
    assert!(s.delete_repo(b.id).await.unwrap());
    assert!(s.delete_repo(plain.id).await.unwrap());
    assert!(!s.delete_account(ana.id).await.unwrap());
    assert_eq!(
        s.delete_ssh_key(deploy.id).await.unwrap(),
        SshKeyDeletion::InUse {
            repos: vec!["Team/a-app".into()]
        }
    );

    // Once its last repository stops using it, it is deleted, once.
    s.update_repo(a.id, &update(Some(None), None))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        s.delete_ssh_key(deploy.id).await.unwrap(),
        SshKeyDeletion::Deleted
    );
    assert_eq!(s.get_ssh_key(deploy.id).await.unwrap(), None);
    assert!(s.ssh_private_key(deploy.id).await.unwrap().is_none());
    assert_eq!(
        s.delete_ssh_key(deploy.id).await.unwrap(),
        SshKeyDeletion::NotFound
    );
    assert_eq!(
        s.delete_ssh_key(spare.id + 1000).await.unwrap(),
        SshKeyDeletion::NotFound
    );
    // The id of a deleted key is not handed out again.
    let next = ssh_key(s, ana.id, "next", t0()).await;
    assert!(next.id > spare.id);

    // A deleted repository no longer holds its key.
    let c = s
        .create_repo(
            NewRepo {
                ssh_key_id: Some(spare.id),
                ..new_repo("ana", "c-app", Mode::Mirror)
            },
            t0(),
        )
        .await
        .unwrap();
    assert!(matches!(
        s.delete_ssh_key(spare.id).await.unwrap(),
        SshKeyDeletion::InUse { .. }
    ));
    assert!(s.delete_repo(c.id).await.unwrap());
    // A push mirror logging in with it holds it too.
    let pushing = s
        .create_push_mirror(
            &NewPushMirror {
                repo_id: a.id,
                url: "ssh://git@example.org/backup/app.git".into(),
                credentials: None,
                ssh_key_id: Some(spare.id),
                known_hosts: None,
                only_branches: None,
                tags: true,
                prune: true,
                force: true,
                enabled: true,
                sync_interval_secs: 86_400,
                next_push_at: None,
            },
            t0(),
        )
        .await
        .unwrap();
    assert_eq!(
        s.delete_ssh_key(spare.id).await.unwrap(),
        SshKeyDeletion::InUse {
            repos: vec![format!("Team/a-app (push mirror {})", pushing.id)]
        }
    );
    assert!(s.delete_push_mirror(pushing.id).await.unwrap());
    assert_eq!(
        s.delete_ssh_key(spare.id).await.unwrap(),
        SshKeyDeletion::Deleted
    );
}

async fn a_promoted_mirror_forgets_its_ssh_key(db: TestDb) {
    let s = db.store.as_ref();
    let ana = account(s, "ana", AccountKind::User).await;
    let key = ssh_key(s, ana.id, "deploy", t0()).await;
    let repo = s
        .create_repo(
            NewRepo {
                ssh_key_id: Some(key.id),
                known_hosts: Some(HOSTS.into()),
                ..new_repo("team", "moving", Mode::Mirror)
            },
            t0(),
        )
        .await
        .unwrap();

    // A plain success keeps the key.
    let run = s.start_run(repo.id, Trigger::Create, t0()).await.unwrap();
    s.finish_run(run, repo.id, &success(t0(), Vec::new()))
        .await
        .unwrap();
    let r = s.get_repo_by_id(repo.id).await.unwrap().unwrap();
    assert_eq!(r.ssh_key_id, Some(key.id));

    let run = s.start_run(repo.id, Trigger::Promote, t0()).await.unwrap();
    let mut result = success(t0() + secs(1), Vec::new());
    result.promote = true;
    s.finish_run(run, repo.id, &result).await.unwrap();
    let r = s.get_repo_by_id(repo.id).await.unwrap().unwrap();
    assert_eq!(r.mode, Mode::Migrate);
    assert_eq!(
        (r.ssh_key_id, r.known_hosts.as_deref()),
        (None, Some(HOSTS)),
        "the key is forgotten, the pinned host keys stay"
    );
    assert_eq!(
        s.delete_ssh_key(key.id).await.unwrap(),
        SshKeyDeletion::Deleted
    );
}

async fn deleting_a_key_races_a_repository_taking_it_up_consistently(db: TestDb) {
    let ana = account(db.store.as_ref(), "ana", AccountKind::User).await;
    let other = db.reopen().await;
    for i in 0..20 {
        let key = ssh_key(db.store.as_ref(), ana.id, &format!("k{i}"), t0()).await;
        let repo = mirror(db.store.as_ref(), "ana", &format!("r{i}")).await;
        let take_up = {
            let s = Arc::clone(&db.store);
            tokio::spawn(async move {
                let update = RepoUpdate {
                    ssh_key_id: Some(Some(key.id)),
                    ..Default::default()
                };
                s.update_repo(repo, &update).await
            })
        };
        let deleted = other.delete_ssh_key(key.id).await.unwrap();
        let taken = take_up.await.unwrap();
        let now = db.store.get_repo_by_id(repo).await.unwrap().unwrap();
        match deleted {
            SshKeyDeletion::Deleted => {
                assert!(matches!(taken, Err(StoreError::NotFound)), "{taken:?}");
                assert_eq!(now.ssh_key_id, None);
            }
            SshKeyDeletion::InUse { repos } => {
                assert_eq!(repos, [format!("ana/r{i}")]);
                assert_eq!(taken.unwrap().unwrap().ssh_key_id, Some(key.id));
                assert_eq!(now.ssh_key_id, Some(key.id));
            }
            SshKeyDeletion::NotFound => panic!("the key existed"),
        }
    }
}

conformance!(
    deleting_a_key_races_a_repository_taking_it_up_consistently,
    ssh_keys_are_listed_per_owner_and_hide_the_private_key,
    repos_use_ssh_keys_and_a_key_in_use_is_not_deleted,
    a_promoted_mirror_forgets_its_ssh_key,
    account_names_are_unique_in_any_case_across_users_and_orgs,
    members_are_upserted_listed_and_removed,
    access_tokens_are_found_by_hash_revoked_and_named_again,
    concurrent_deliveries_each_get_their_own_outcome,
    a_promotion_is_never_merged_away_and_is_recorded_with_its_run,
    web_sessions_expire_and_sign_out,
    a_bot_command_is_taken_once,
    every_repo_gets_a_webhook_secret_and_a_match_key,
    deliveries_queue_syncs_log_and_refuse_replays,
    a_registered_webhook_is_recorded,
    requeues_cloning_repos_and_counts_for_metrics,
    counts_due_mirrors_and_elects_one_scheduler,
    a_paused_mirror_is_not_scheduled_until_resumed,
    update_repo_changes_settings_and_resumes,
    each_run_records_how_many_others_were_running,
    create_get_list_and_delete,
    a_taken_name_is_a_conflict_in_any_case,
    credentials_round_trip_and_are_encrypted_at_rest,
    a_wrong_key_is_refused_at_connect,
    unknown_text_in_the_database_is_an_error,
    progress_is_recorded_and_cleared_by_finish,
    enqueues_coalesce_into_one_pending_job,
    claims_oldest_due_first_and_never_two_of_one_repo,
    an_expired_lease_is_taken_over,
    syncing_repos_are_those_with_a_live_lease,
    an_expired_claim_does_not_let_a_second_job_run_beside_a_live_one,
    concurrent_claimers_never_share_a_repository,
    racing_claimers_take_over_each_repository_once,
    release_job_requeues_or_coalesces,
    release_all_claims_frees_stale_claims_on_sqlite_only,
    enqueue_due_picks_due_mirrors_without_jobs,
    finish_run_success_updates_repo_and_journal,
    finish_run_failure_on_first_clone_marks_the_repo_failed,
    finish_run_is_all_or_nothing,
    a_large_journal_round_trips,
    interrupted_runs_are_failed,
    a_worker_reads_once_and_writes_a_run_in_two_transactions,
    an_unchanged_sync_is_recorded_whole_in_one_transaction,
    settings_put_get_and_put_if_absent,
    lfs_objects_are_needed_fetched_counted_and_released,
    mirror_sets_are_leased_listed_and_remember_their_repositories,
    repos_are_read_by_ids_in_one_call,
);

async fn repos_are_read_by_ids_in_one_call(db: TestDb) {
    let s = db.store.as_ref();
    assert!(s.get_repos_by_ids(&[]).await.unwrap().is_empty());
    // More than one SQLite statement's worth of ids (it reads them a slice at a time).
    let mut ids = Vec::new();
    for i in 0..1000 {
        ids.push(mirror(s, "team", &format!("r{i:04}")).await);
    }
    let mut asked: Vec<i64> = ids.iter().rev().copied().collect();
    asked.push(ids[3]);
    asked.push(i64::MAX);
    let found = s.get_repos_by_ids(&asked).await.unwrap();
    assert_eq!(found.iter().map(|r| r.id).collect::<Vec<_>>(), ids);
    let one = s.get_repo_by_id(ids[7]).await.unwrap().unwrap();
    let seventh = &found[7];
    assert_eq!(
        (
            seventh.owner.as_str(),
            seventh.name.as_str(),
            &seventh.upstream_url,
            seventh.state
        ),
        (
            one.owner.as_str(),
            one.name.as_str(),
            &one.upstream_url,
            one.state
        ),
        "the same repository as read alone"
    );
}

async fn lfs_objects_are_needed_fetched_counted_and_released(db: TestDb) {
    let s = db.store.as_ref();
    let a = mirror(s, "team", "a").await;
    let b = mirror(s, "team", "b").await;
    let oid = |n: u8| format!("{n:02x}").repeat(32);
    let repo = s.get_repo_by_id(a).await.unwrap().unwrap();
    assert!(repo.lfs.enabled && repo.lfs.url.is_none() && repo.lfs.last_error.is_none());

    let needed: Vec<(String, i64)> = (1..=3).map(|n| (oid(n), 100 * n as i64)).collect();
    assert_eq!(s.lfs_need(a, &needed, t0()).await.unwrap(), 3);
    // Needing them again adds nothing and keeps what is known.
    assert_eq!(s.lfs_need(a, &needed[..2], t0()).await.unwrap(), 0);
    assert_eq!(s.lfs_missing(a, 10).await.unwrap().len(), 3);
    assert_eq!(s.lfs_missing(a, 2).await.unwrap().len(), 2);
    s.lfs_mark_present(a, &needed[..2], t0()).await.unwrap();
    assert_eq!(s.lfs_missing(a, 10).await.unwrap(), vec![needed[2].clone()]);
    assert_eq!(s.lfs_object(a, &oid(1)).await.unwrap(), Some((100, true)));
    assert_eq!(s.lfs_object(a, &oid(3)).await.unwrap(), Some((300, false)));
    assert_eq!(s.lfs_object(b, &oid(1)).await.unwrap(), None);
    let counts = s.lfs_counts(a).await.unwrap();
    assert_eq!((counts.objects, counts.bytes, counts.missing), (3, 300, 1));
    assert_eq!(s.lfs_counts(b).await.unwrap().objects, 0);
    // A needed object marked present later (an upload) and needed again stays present.
    s.lfs_need(a, &needed, t0()).await.unwrap();
    assert_eq!(s.lfs_object(a, &oid(1)).await.unwrap(), Some((100, true)));
    // A file found gone: missing again, so the next sync fetches it.
    s.lfs_mark_missing(a, &oid(1)).await.unwrap();
    assert_eq!(s.lfs_object(a, &oid(1)).await.unwrap(), Some((100, false)));
    assert_eq!(s.lfs_counts(a).await.unwrap().missing, 2);
    s.lfs_mark_present(a, &needed[..1], t0()).await.unwrap();

    s.lfs_set_error(a, Some("the upstream said no"))
        .await
        .unwrap();
    let repo = s.get_repo_by_id(a).await.unwrap().unwrap();
    assert_eq!(repo.lfs.last_error.as_deref(), Some("the upstream said no"));
    s.lfs_set_error(a, None).await.unwrap();
    let repo = s
        .update_repo(
            a,
            &RepoUpdate {
                lfs_enabled: Some(false),
                lfs_url: Some(Some("https://lfs.example/x/info/lfs".into())),
                ..RepoUpdate::default()
            },
        )
        .await
        .unwrap()
        .unwrap();
    assert!(!repo.lfs.enabled && repo.lfs.last_error.is_none());
    assert_eq!(
        repo.lfs.url.as_deref(),
        Some("https://lfs.example/x/info/lfs")
    );
    let repo = s
        .update_repo(
            a,
            &RepoUpdate {
                lfs_url: Some(None),
                ..RepoUpdate::default()
            },
        )
        .await
        .unwrap()
        .unwrap();
    assert!(repo.lfs.url.is_none() && !repo.lfs.enabled);

    // b shares object 1; deleting a releases 2 and 3 only.
    s.lfs_mark_present(b, &needed[..1], t0()).await.unwrap();
    let mut of_a = s.lfs_repo_oids(a).await.unwrap();
    of_a.sort();
    assert_eq!(of_a, vec![oid(1), oid(2), oid(3)]);
    assert!(s.delete_repo(a).await.unwrap());
    let mut gone = s.lfs_unreferenced(&of_a).await.unwrap();
    gone.sort();
    assert_eq!(gone, vec![oid(2), oid(3)]);
    assert!(s.lfs_unreferenced(&[]).await.unwrap().is_empty());

    // Warnings ride on a run.
    let run = s.start_run(b, Trigger::Manual, t0()).await.unwrap();
    s.set_run_warnings(run, "lfs_missing: 1").await.unwrap();
    s.finish_run(run, b, &success(t0() + secs(1), vec![]))
        .await
        .unwrap();
    let runs = s.list_runs(b, 1).await.unwrap();
    assert_eq!(runs[0].warnings.as_deref(), Some("lfs_missing: 1"));
}

fn new_set(namespace: &str) -> mirrorhub_store::NewMirrorSet {
    mirrorhub_store::NewMirrorSet {
        forge: "github".into(),
        api_url: "https://api.github.com".into(),
        namespace: namespace.into(),
        owner: "acme".into(),
        credentials: Some(Credentials::new(Some("x-access-token"), "set-token-1").unwrap()),
        installation_id: None,
        include: vec!["api-*".into(), "web".into()],
        exclude: vec!["*-old".into()],
        archived: false,
        forks: true,
        visibility: "as-upstream".into(),
        mode: Mode::Mirror,
        sync_interval_secs: Some(3600),
        list_interval_secs: 600,
        follow_renames: false,
    }
}

async fn mirror_sets_are_leased_listed_and_remember_their_repositories(db: TestDb) {
    use mirrorhub_store::{MemberState, SetMember};
    let s = db.store.as_ref();
    let set = s.create_mirror_set(&new_set("Acme"), t0()).await.unwrap();
    assert_eq!(set.namespace, "Acme");
    assert!(set.has_credentials && !set.listing);
    assert_eq!(set.include, vec!["api-*", "web"]);
    assert_eq!(set.exclude, vec!["*-old"]);
    assert_eq!((set.forks, set.archived), (true, false));
    assert_eq!(set.next_list_at, t0());
    // One set per namespace (any case), forge, API and owner.
    assert!(matches!(
        s.create_mirror_set(&new_set("ACME"), t0()).await,
        Err(StoreError::Conflict)
    ));
    let creds = s.mirror_set_credentials(set.id).await.unwrap().unwrap();
    assert_eq!(creds.secret.expose_secret(), "set-token-1");
    assert_eq!(
        db.count("mirror_sets WHERE CAST(credentials AS TEXT) LIKE '%set-token-1%'")
            .await,
        0,
        "the token is sealed at rest"
    );

    // One listing at a time: the lease holds the set until it ends or runs out.
    let claimed = s
        .claim_mirror_set_listing("w1", t0(), LEASE)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(claimed.id, set.id);
    assert!(s
        .claim_mirror_set_listing("w2", t0() + secs(1), LEASE)
        .await
        .unwrap()
        .is_none());
    assert!(s
        .renew_mirror_set_listing(set.id, "w1", t0() + secs(30), LEASE)
        .await
        .unwrap());
    assert!(!s
        .renew_mirror_set_listing(set.id, "w2", t0() + secs(30), LEASE)
        .await
        .unwrap());
    // A request during the listing makes the next one due at its end.
    assert!(s
        .request_mirror_set_listing(set.id, t0() + secs(40))
        .await
        .unwrap());
    s.finish_mirror_set_listing(set.id, "w1", t0() + secs(50), None, t0() + secs(650))
        .await
        .unwrap();
    let after = s.get_mirror_set(set.id).await.unwrap().unwrap();
    assert_eq!(after.next_list_at, t0() + secs(50));
    assert_eq!(after.last_listed_at, Some(t0() + secs(50)));
    assert!(!after.listing);

    // A failed listing is recorded and counted; the next success clears it.
    s.claim_mirror_set_listing("w1", t0() + secs(60), LEASE)
        .await
        .unwrap()
        .unwrap();
    s.finish_mirror_set_listing(
        set.id,
        "w1",
        t0() + secs(61),
        Some(("upstream_auth_failed", "GitHub refused the token")),
        t0() + secs(121),
    )
    .await
    .unwrap();
    let failed = s.get_mirror_set(set.id).await.unwrap().unwrap();
    assert_eq!(
        failed.last_list_error_code.as_deref(),
        Some("upstream_auth_failed")
    );
    assert_eq!(failed.list_failures, 1);
    assert_eq!(failed.next_list_at, t0() + secs(121));
    assert_eq!(
        failed.last_listed_at,
        Some(t0() + secs(50)),
        "only successes count"
    );
    // A listing given back unfinished (its process stopping) is free at once, its outcome
    // and schedule untouched; only its holder can give it back.
    s.claim_mirror_set_listing("w1", t0() + secs(121), LEASE)
        .await
        .unwrap()
        .unwrap();
    assert!(!s.release_mirror_set_listing(set.id, "w2").await.unwrap());
    assert!(s.release_mirror_set_listing(set.id, "w1").await.unwrap());
    assert!(!s.release_mirror_set_listing(set.id, "w1").await.unwrap());
    let released = s.get_mirror_set(set.id).await.unwrap().unwrap();
    assert!(!released.listing);
    assert_eq!(released.next_list_at, t0() + secs(121));
    assert_eq!(released.list_failures, 1);
    // A lease that ran out is taken over.
    s.claim_mirror_set_listing("w1", t0() + secs(121), LEASE)
        .await
        .unwrap()
        .unwrap();
    let taken = s
        .claim_mirror_set_listing("w2", t0() + secs(121) + secs(61), LEASE)
        .await
        .unwrap();
    assert_eq!(taken.map(|t| t.id), Some(set.id));
    s.finish_mirror_set_listing(set.id, "w2", t0() + secs(200), None, t0() + secs(800))
        .await
        .unwrap();
    let ok = s.get_mirror_set(set.id).await.unwrap().unwrap();
    assert_eq!((ok.list_failures, ok.last_list_error_code), (0, None));

    // Members by the forge's id; a deleted hub repository leaves its member without one.
    let repo = mirror(s, "acme", "api-core").await;
    let member = SetMember {
        set_id: set.id,
        forge_id: "101".into(),
        path: "Acme/api-core".into(),
        repo_id: Some(repo),
        state: MemberState::Mirrored,
        detail: None,
        changed_at: t0(),
    };
    s.put_mirror_set_member(&member).await.unwrap();
    s.put_mirror_set_member(&SetMember {
        forge_id: "102".into(),
        path: "Acme/docs".into(),
        repo_id: None,
        state: MemberState::Skipped,
        detail: Some("not matched by the set's include globs".into()),
        ..member.clone()
    })
    .await
    .unwrap();
    s.put_mirror_set_member(&SetMember {
        path: "Acme/api-core2".into(),
        ..member.clone()
    })
    .await
    .unwrap();
    let members = s.mirror_set_members(set.id).await.unwrap();
    assert_eq!(members.len(), 2);
    assert_eq!(members[0].path, "Acme/api-core2");
    assert_eq!(members[1].state, MemberState::Skipped);
    assert_eq!(s.mirror_sets_of_repo(repo).await.unwrap(), vec![set.id]);

    // Renamed upstream: the address follows; the name too when asked, unless taken.
    assert!(s
        .move_repo_upstream(
            repo,
            "https://example.org/acme/api-next.git",
            Some("api-next")
        )
        .await
        .unwrap());
    let moved = s.get_repo_by_id(repo).await.unwrap().unwrap();
    assert_eq!(
        (moved.name.as_str(), moved.upstream_url.as_str()),
        ("api-next", "https://example.org/acme/api-next.git")
    );
    mirror(s, "acme", "taken").await;
    assert!(matches!(
        s.move_repo_upstream(repo, "https://example.org/x.git", Some("TAKEN"))
            .await,
        Err(StoreError::Conflict)
    ));
    // Gone upstream: paused, never deleted; resumed when it is back.
    assert!(s
        .pause_repo(repo, "upstream_gone: not listed")
        .await
        .unwrap());
    let paused = s.get_repo_by_id(repo).await.unwrap().unwrap();
    assert_eq!(
        paused.paused_reason.as_deref(),
        Some("upstream_gone: not listed")
    );
    assert_eq!(paused.next_sync_at, None);
    s.resume_repo(repo, t0()).await.unwrap();
    assert!(s
        .get_repo_by_id(repo)
        .await
        .unwrap()
        .unwrap()
        .paused_reason
        .is_none());

    s.delete_repo(repo).await.unwrap();
    let members = s.mirror_set_members(set.id).await.unwrap();
    assert_eq!(members[0].repo_id, None);
    assert!(s.delete_mirror_set(set.id).await.unwrap());
    assert!(!s.delete_mirror_set(set.id).await.unwrap());
    assert_eq!(db.count("mirror_set_repos").await, 0);
    assert!(s.get_mirror_set(set.id).await.unwrap().is_none());
}

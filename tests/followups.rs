//! Push webhooks without a fixed spacing, end to end: the real binary, a real git server
//! behind a gate (a sync is held "running" exactly as long as the test needs), real databases.
//!
//! - idle: a delivery right after a sync starts its sync at once (the old spacing made it
//!   wait 2 s);
//! - running: deliveries during a sync make exactly one follow-up row, which runs after that
//!   sync ends, and nothing more;
//! - restart: the hub that ran the sync is killed with SIGKILL while the follow-up waits; after
//!   the restart the follow-up still runs and the mirror ends equal to the upstream.
//!
//! Every scenario runs on SQLite, and on PostgreSQL when `MIRRORHUB_TEST_POSTGRES_URL` names a
//! server.

#[macro_use]
mod common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use common::{refs, Db, Hub, TestDb};
use mirrorhub_testkit::{git, init_bare, try_git, GateProxy, HttpGitServer, Scratch};
use serde_json::{json, Value};

on_both_databases!(
    a_push_to_an_idle_mirror_syncs_at_once,
    pushes_during_a_sync_make_exactly_one_follow_up,
    the_follow_up_survives_killing_the_hub_that_ran_the_sync
);

/// A mirror of a one-commit upstream, reached through a gate; the gate starts open.
struct Setup {
    _root: tempfile::TempDir,
    upstream: PathBuf,
    work: Scratch,
    _server: HttpGitServer,
    gate: GateProxy,
    hub: Hub,
    secret: String,
}

impl Setup {
    async fn start(db: &TestDb, env: &[(&str, &str)]) -> Setup {
        let root = tempfile::tempdir().unwrap();
        let upstream = root.path().join("project.git");
        init_bare(&upstream);
        let work = Scratch::new();
        work.commit_file("README.md", "hello\n", "first");
        work.push(upstream.to_str().unwrap(), &["main"]);
        git(&upstream, ["symbolic-ref", "HEAD", "refs/heads/main"]);
        let server = HttpGitServer::start(root.path(), None).await;
        let gate = GateProxy::start(server.addr()).await;
        let hub = Hub::start(db, env).await;
        let (status, repo) = hub
            .post(
                "/api/v1/repos",
                json!({"url": gate.http_url("project.git"), "owner": "team", "name": "project", "mode": "mirror"}),
            )
            .await;
        assert_eq!(status, 202, "{repo}");
        let (_, run) = hub.wait_for_run("team/project", None).await;
        assert_eq!(run["outcome"], "success", "{run}");
        Setup {
            _root: root,
            upstream,
            work,
            _server: server,
            gate,
            hub,
            secret: repo["webhook"]["secret"].as_str().unwrap().to_owned(),
        }
    }

    fn mirror(&self) -> PathBuf {
        self.hub.repo_dir(1)
    }

    /// A new commit on the upstream's main branch; its id.
    fn push(&self, file: &str) -> String {
        let commit = self.work.commit_file(file, file, file);
        self.work.push(self.upstream.to_str().unwrap(), &["main"]);
        commit
    }

    /// Delivers a GitLab push event of `main` at `commit` to the repository's webhook URL.
    async fn deliver(&self, id: &str, commit: &str) {
        let body = serde_json::to_vec(&json!({
            "object_kind": "push",
            "ref": "refs/heads/main",
            "before": "0000000000000000000000000000000000000000",
            "after": commit,
            "checkout_sha": commit,
            "project": {"git_http_url": "http://example.com/team/project.git"},
            "repository": {"git_http_url": "http://example.com/team/project.git"},
            "commits": [],
            "total_commits_count": 0
        }))
        .unwrap();
        let headers = [
            ("content-type", "application/json"),
            ("x-gitlab-event", "Push Hook"),
            ("x-gitlab-event-uuid", id),
            ("x-gitlab-token", self.secret.as_str()),
        ]
        .map(|(k, v)| (k.to_owned(), v.to_owned()));
        let (status, answer) = self
            .hub
            .post_raw("/hooks/repos/team/project", &headers, &body)
            .await;
        assert_eq!(status, 202, "delivery {id}: {answer}");
    }

    /// Waits (bounded) until a sync of the mirror is held at the closed gate, i.e. running.
    async fn wait_held(&self, at_least: usize) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.gate.held() < at_least {
            assert!(
                Instant::now() < deadline,
                "no sync reached the upstream; log:\n{}",
                self.hub.log_text()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Waits (bounded) until a run newer than `after` has started and not finished: the sync
    /// the gate holds is the repository's (the gate may also hold another listing of the
    /// upstream, such as the webhook silence check's).
    async fn wait_run_started(&self, after: Option<i64>) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (_, runs) = self
                .hub
                .get("/api/v1/repos/team/project/syncs?limit=1")
                .await;
            let run = &runs[0];
            if run["id"].as_i64() > after && run["finished_at"].is_null() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "no sync started; log:\n{}",
                self.hub.log_text()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Waits (bounded) until the mirror's main branch is `commit`.
    async fn wait_main(&self, commit: &str) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let main = try_git(&self.mirror(), ["rev-parse", "refs/heads/main"]);
            if String::from_utf8_lossy(&main.stdout).trim() == commit {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the mirror never got {commit}; log:\n{}",
                self.hub.log_text()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits (bounded) until the queue holds no job of any kind, then returns the runs newer
    /// than `after`, oldest first, all finished.
    async fn wait_quiet(&self, db: &TestDb, after: Option<i64>) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            // The queue first, then the runs: a job is deleted only after its run is
            // recorded, so an empty queue seen first means the list read next is whole. (Read
            // the other way round, a 20 ms no-op follow-up could start and end in between.)
            let quiet = jobs(db, &self.hub) == (0, 0);
            let (_, runs) = self
                .hub
                .get("/api/v1/repos/team/project/syncs?limit=200")
                .await;
            let mut runs: Vec<Value> = runs
                .as_array()
                .unwrap()
                .iter()
                .filter(|r| r["id"].as_i64() > after)
                .cloned()
                .collect();
            runs.reverse();
            if quiet && runs.iter().all(|r| !r["finished_at"].is_null()) {
                return runs;
            }
            assert!(
                Instant::now() < deadline,
                "the queue never emptied: jobs {:?}, runs {runs:#?}; log:\n{}",
                jobs(db, &self.hub),
                self.hub.log_text()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// (pending, claimed) rows of the sync queue, read from the database itself.
fn jobs(db: &TestDb, hub: &Hub) -> (i64, i64) {
    let sql = "SELECT COALESCE(SUM(CASE WHEN claimed_by IS NULL THEN 1 ELSE 0 END), 0), \
               COALESCE(SUM(CASE WHEN claimed_by IS NULL THEN 0 ELSE 1 END), 0) FROM sync_jobs";
    let text = db.rows(hub, sql);
    let (pending, claimed) = text.trim().split_once('|').expect("two columns");
    (pending.parse().unwrap(), claimed.parse().unwrap())
}

fn started_at(run: &Value) -> DateTime<Utc> {
    run["started_at"].as_str().unwrap().parse().unwrap()
}

fn finished_at(run: &Value) -> DateTime<Utc> {
    run["finished_at"].as_str().unwrap().parse().unwrap()
}

async fn a_push_to_an_idle_mirror_syncs_at_once(db: TestDb) {
    let s = Setup::start(&db, &[]).await;
    for round in 0..3 {
        // Right after a sync ended: the old fixed spacing held this one back by 2 s.
        let before = s.hub.latest_run_id("team/project").await;
        let commit = s.push(&format!("idle-{round}"));
        let delivered = Utc::now();
        s.deliver(&format!("idle-{round}"), &commit).await;
        s.wait_main(&commit).await;
        let runs = s.wait_quiet(&db, before).await;
        assert_eq!(runs.len(), 1, "one push, one sync: {runs:#?}");
        assert_eq!(
            (runs[0]["trigger"].as_str(), runs[0]["outcome"].as_str()),
            (Some("webhook"), Some("success")),
            "{runs:#?}"
        );
        let waited = (started_at(&runs[0]) - delivered)
            .to_std()
            .unwrap_or_default();
        assert!(
            waited < Duration::from_millis(1500),
            "the sync started {waited:?} after the delivery"
        );
    }
}

async fn pushes_during_a_sync_make_exactly_one_follow_up(db: TestDb) {
    let s = Setup::start(&db, &[]).await;
    let before = s.hub.latest_run_id("team/project").await;
    s.gate.close();
    let first = s.push("one");
    s.deliver("running-1", &first).await;
    s.wait_held(1).await;
    s.wait_run_started(before).await;
    assert_eq!(jobs(&db, &s.hub), (0, 1), "the sync is claimed");

    // Pushes while it runs: each delivery merges into one follow-up row.
    let mut last = first;
    for i in 2..=5 {
        last = s.push(&format!("more-{i}"));
        s.deliver(&format!("running-{i}"), &last).await;
        assert_eq!(
            jobs(&db, &s.hub),
            (1, 1),
            "one follow-up after delivery {i}"
        );
    }
    s.gate.open();
    s.wait_main(&last).await;
    let runs = s.wait_quiet(&db, before).await;
    assert_eq!(
        runs.len(),
        2,
        "the sync and its one follow-up: {runs:#?}\nlog:\n{}",
        s.hub.log_text()
    );
    assert!(runs.iter().all(|r| r["trigger"] == "webhook"), "{runs:#?}");
    assert!(
        started_at(&runs[1]) >= finished_at(&runs[0]),
        "the follow-up ran beside the sync: {runs:#?}"
    );
    assert_eq!(refs(&s.mirror()), refs(&s.upstream));
}

async fn the_follow_up_survives_killing_the_hub_that_ran_the_sync(db: TestDb) {
    // A short lease, so that on PostgreSQL the restarted hub takes the dead claim over soon.
    let mut s = Setup::start(&db, &[("MIRRORHUB_SYNC_LEASE", "3s")]).await;
    let before = s.hub.latest_run_id("team/project").await;
    s.gate.close();
    let first = s.push("one");
    s.deliver("restart-1", &first).await;
    s.wait_held(1).await;
    s.wait_run_started(before).await;
    let second = s.push("two");
    s.deliver("restart-2", &second).await;
    assert_eq!(
        jobs(&db, &s.hub),
        (1, 1),
        "the sync runs and one follow-up waits"
    );

    s.hub.kill9();
    let killed_at = Utc::now();
    let accepted = s.gate.accepted();
    s.hub.spawn();
    // The restarted hub's sync reaches the upstream (the killed hub's git may still wait at
    // the gate; the restarted hub stops it before it touches the repository).
    let deadline = Instant::now() + Duration::from_secs(60);
    while s.gate.accepted() == accepted {
        assert!(
            Instant::now() < deadline,
            "the restarted hub never synced; log:\n{}",
            s.hub.log_text()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    s.gate.open();
    s.wait_main(&second).await;
    let runs = s.wait_quiet(&db, before).await;
    assert_eq!(refs(&s.mirror()), refs(&s.upstream));
    let killed = &runs[0];
    assert_eq!(
        (killed["outcome"].as_str(), killed["error"]["code"].as_str()),
        (Some("failed"), Some("interrupted")),
        "{runs:#?}"
    );
    let after_restart: Vec<&Value> = runs[1..]
        .iter()
        .filter(|r| started_at(r) >= killed_at)
        .collect();
    assert!(
        !after_restart.is_empty() && after_restart.len() == runs.len() - 1,
        "{runs:#?}"
    );
    // The follow-up's work ran: `second` was pushed after the killed sync started, and only a
    // sync after the restart brought it. (On SQLite the restart folds the dead claim into the
    // follow-up row, which then runs as `recovery`; on PostgreSQL the dead claim is taken over
    // as `recovery` when its lease runs out, and the follow-up row runs after it.)
    assert!(
        after_restart.iter().any(|r| r["ref_changes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["ref"] == "refs/heads/main" && c["new"] == second.as_str())),
        "no sync after the restart brought the follow-up's push: {runs:#?}"
    );
    assert!(
        after_restart.iter().all(|r| r["outcome"] != "failed"),
        "{runs:#?}"
    );
    println!(
        "runs after the kill: {:?}",
        after_restart
            .iter()
            .map(|r| format!(
                "{}/{}",
                r["trigger"].as_str().unwrap_or_default(),
                r["outcome"].as_str().unwrap_or_default()
            ))
            .collect::<Vec<_>>()
    );
    assert!(
        after_restart.len() <= 2,
        "the killed sync and its follow-up at most: {runs:#?}"
    );
}

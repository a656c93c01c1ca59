//! The durable queue when hub processes die.
//!
//! - Three hubs share one PostgreSQL database and one data directory, as replicas do. Several
//!   clients send them sync requests for many mirrors while the upstreams keep changing, and one
//!   hub is killed with SIGKILL halfway. Afterwards every mirror equals its upstream, no request
//!   was lost, requests coalesced, and the runs recorded in the database show that no repository
//!   was ever synced by two workers at once. Runs when `MIRRORHUB_TEST_POSTGRES_URL` names a
//!   server (and fails when that server cannot be reached).
//! - A hub on SQLite is killed in the middle of a sync of an existing mirror; after the restart
//!   the sync runs again and completes.
//!
//! The cluster test's size is the by default: `MIRRORHUB_CLUSTER_REPOS` (200 upstreams),
//! `MIRRORHUB_CLUSTER_REQUESTS` (10,000 sync requests), `MIRRORHUB_CLUSTER_CLIENTS` (8
//! concurrent clients). `MIRRORHUB_CLUSTER_SEED` repeats a run's random choices.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use common::{call_base, fsck, process_alive, processes_under, refs, Db, Hub, TestDb, TOKEN};
use mirrorhub_testkit::{
    add_commit, git, init_bare, rewrite_branch, synthetic_upstream, try_git, GitDaemon, Scratch,
    Spec,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

/// One key for all replicas (they must share it); base64 of 32 bytes.
const SECRET_KEY: &str = "bWlycm9yaHViLWNsdXN0ZXItdGVzdC1rZXktMzJieXQ=";
const HUBS: usize = 3;
/// The hub killed halfway through the burst.
const VICTIM: usize = 1;

fn env_number(name: &str, default: usize) -> usize {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v}: not a number")),
        Err(_) => default,
    }
}

fn upstream_name(i: usize) -> String {
    format!("up-{i:04}.git")
}

fn mirror_name(i: usize) -> String {
    format!("m{i:04}")
}

fn parse_time(v: &Value) -> Option<DateTime<Utc>> {
    v.as_str()
        .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.with_timezone(&Utc))
}

/// Runs blocking work (git, psql) off the runtime the clients use.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.expect("blocking task")
}

/// A small upstream (two branches, a lightweight and an annotated tag) copied `count` times.
fn make_upstreams(root: &Path, count: usize) {
    let template = root.join("template.git");
    init_bare(&template);
    let work = Scratch::new();
    work.commit_file("README.md", "hello\n", "first");
    work.tag("v1");
    work.commit_file("src/lib.rs", "pub fn a() {}\n", "second");
    work.tag_annotated("v2", "release 2");
    work.branch("dev")
        .commit_file("dev.txt", "dev\n", "dev work");
    work.checkout("main");
    work.push_mirror(template.to_str().unwrap());
    git(&template, ["symbolic-ref", "HEAD", "refs/heads/main"]);
    for i in 0..count {
        let status = std::process::Command::new("cp")
            .arg("-a")
            .arg(&template)
            .arg(root.join(upstream_name(i)))
            .status()
            .expect("run cp");
        assert!(status.success(), "copy the template upstream");
    }
}

/// One change to an upstream, as a push would make it: a new commit, a force-push (rewritten
/// branch tip), or a tag or branch created or deleted.
fn change_upstream(repo: &Path, rng: &mut StdRng, n: usize) {
    let exists = |r: &str| {
        try_git(repo, ["rev-parse", "--verify", "--quiet", r])
            .status
            .success()
    };
    match rng.gen_range(0..5) {
        0 | 1 => {
            add_commit(repo, "main", &format!("change {n}"));
        }
        2 => {
            rewrite_branch(repo, "dev", &format!("force-push {n}"));
        }
        3 => {
            let tag = format!("refs/tags/t{}", rng.gen_range(0..3));
            if exists(&tag) {
                git(repo, ["update-ref", "-d", &tag]);
            } else {
                git(repo, ["update-ref", &tag, "refs/heads/main"]);
            }
        }
        _ => {
            let branch = format!("refs/heads/topic{}", rng.gen_range(0..3));
            if exists(&branch) {
                git(repo, ["update-ref", "-d", &branch]);
            } else {
                git(repo, ["update-ref", &branch, "refs/heads/dev"]);
            }
        }
    }
}

/// What the clients share: where the hubs are, which are alive, and what was acknowledged.
struct Burst {
    bases: Vec<String>,
    alive: Vec<AtomicBool>,
    total: usize,
    repos: usize,
    issued: AtomicUsize,
    acked: AtomicUsize,
    /// Requests that reached no hub (the killed one): retried elsewhere, not counted.
    unreachable: AtomicUsize,
    /// Per repository: when the last acknowledged request was sent (before sending it).
    last_request: Mutex<Vec<Option<DateTime<Utc>>>>,
    per_hub: Vec<AtomicUsize>,
}

impl Burst {
    fn pick_hub(&self, rng: &mut StdRng) -> usize {
        let alive: Vec<usize> = (0..self.bases.len())
            .filter(|&h| self.alive[h].load(Ordering::SeqCst))
            .collect();
        alive[rng.gen_range(0..alive.len())]
    }

    /// Sends one sync request for `repo` to live hubs until one acknowledges it (202).
    async fn request(&self, http: &reqwest::Client, rng: &mut StdRng, repo: usize) {
        let path = format!("/api/v1/repos/team/{}/sync", mirror_name(repo));
        loop {
            let hub = self.pick_hub(rng);
            let sent_at = Utc::now();
            match call_base(
                http,
                &self.bases[hub],
                reqwest::Method::POST,
                &path,
                Some(json!({})),
                Some(TOKEN),
            )
            .await
            {
                Ok((202, _)) => {
                    let mut last = self.last_request.lock().unwrap();
                    if last[repo].is_none_or(|t| t < sent_at) {
                        last[repo] = Some(sent_at);
                    }
                    self.acked.fetch_add(1, Ordering::SeqCst);
                    self.per_hub[hub].fetch_add(1, Ordering::SeqCst);
                    return;
                }
                Ok((status, body)) => panic!("sync request to hub {hub}: {status} {body}"),
                Err(_) => {
                    self.unreachable.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        }
    }

    async fn client(self: Arc<Self>, seed: u64) {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        let mut rng = StdRng::seed_from_u64(seed);
        while self.issued.fetch_add(1, Ordering::SeqCst) < self.total {
            let repo = rng.gen_range(0..self.repos);
            self.request(&http, &mut rng, repo).await;
        }
    }
}

/// Waits until the queue is empty and no run is `running`: every request has been served.
async fn wait_quiet(db_url: &str, hubs: &[Hub], what: &str) {
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let url = db_url.to_owned();
        let counts = blocking(move || {
            common::psql_rows(
                &url,
                "SELECT (SELECT count(*) FROM sync_jobs) || '|' || \
                 (SELECT count(*) FROM sync_runs WHERE outcome = 'running')",
            )
        })
        .await;
        if counts.trim() == "0|0" {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: the queue did not drain (jobs|running = {}); logs:\n{}",
            counts.trim(),
            hubs.iter()
                .map(|h| h.log_text())
                .collect::<Vec<_>>()
                .join("\n----\n")
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Waits until `hub` runs git in a repository under `data_dir` (a sync under way), failing at
/// `deadline`.
async fn wait_for_git_of(hub: &Hub, data_dir: &Path, deadline: Instant) {
    let pid = hub.pid().expect("the hub runs");
    while !processes_under(data_dir)
        .iter()
        .any(|(_, ppid, _)| *ppid == pid)
    {
        assert!(
            Instant::now() < deadline,
            "the hub (pid {pid}) ran no git in a repository under {}",
            data_dir.display()
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Every run of the repository (the API lists at most 200, newest first).
async fn runs_of(hub: &Hub, repo: usize) -> Vec<Value> {
    let (status, runs) = hub
        .get(&format!(
            "/api/v1/repos/team/{}/syncs?limit=200",
            mirror_name(repo)
        ))
        .await;
    assert_eq!(status, 200, "{runs}");
    runs.as_array().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_three_hubs_one_killed_no_request_lost_no_concurrent_sync() {
    let Some(db) = TestDb::create(Db::Postgres) else {
        return;
    };
    let db_url = db.url().unwrap().to_owned();
    let repos = env_number("MIRRORHUB_CLUSTER_REPOS", 200).max(1);
    let total = env_number("MIRRORHUB_CLUSTER_REQUESTS", 10_000).max(2);
    let clients = env_number("MIRRORHUB_CLUSTER_CLIENTS", 8).max(1);
    let seed = std::env::var("MIRRORHUB_CLUSTER_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| rand::thread_rng().gen::<u64>());
    eprintln!("cluster: {repos} repos, {total} requests, {clients} clients, seed {seed}");
    let started = Instant::now();

    let root = tempfile::tempdir().unwrap();
    let upstream_root = root.path().join("upstreams");
    std::fs::create_dir(&upstream_root).unwrap();
    {
        let r = upstream_root.clone();
        blocking(move || make_upstreams(&r, repos)).await;
    }
    let daemon = GitDaemon::start(&upstream_root).await;

    // Three replicas: one database, one repository volume, one key.
    let shared = root.path().join("shared");
    let data_dir = shared.join("data");
    std::fs::create_dir_all(&data_dir).unwrap();
    let env = [
        ("MIRRORHUB_SYNC_LEASE", "3s"),
        ("MIRRORHUB_POLL_INTERVAL", "1s"),
        ("MIRRORHUB_SECRET_KEY", SECRET_KEY),
    ];
    let mut hubs = Vec::new();
    for h in 0..HUBS {
        let log = shared.join(format!("hub{h}.log"));
        hubs.push(Hub::start_shared(&db, &data_dir, &log, &env).await);
    }

    // The mirrors, created through the API, spread over the hubs.
    let creator = Arc::new(hubs.iter().map(|h| h.base.clone()).collect::<Vec<String>>());
    let mut creates = tokio::task::JoinSet::new();
    let next = Arc::new(AtomicUsize::new(0));
    for _ in 0..8 {
        let (bases, next) = (creator.clone(), next.clone());
        let urls: Vec<String> = (0..repos).map(|i| daemon.url(&upstream_name(i))).collect();
        creates.spawn(async move {
            let http = reqwest::Client::new();
            loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i >= urls.len() {
                    return;
                }
                let body = json!({"url": urls[i], "owner": "team", "name": mirror_name(i), "mode": "mirror"});
                let (status, repo) = call_base(
                    &http,
                    &bases[i % bases.len()],
                    reqwest::Method::POST,
                    "/api/v1/repos",
                    Some(body),
                    Some(TOKEN),
                )
                .await
                .expect("create a mirror");
                assert_eq!(status, 202, "{repo}");
            }
        });
    }
    while let Some(r) = creates.join_next().await {
        r.unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let (_, list) = hubs[0].get("/api/v1/repos").await;
        let list = list.as_array().unwrap();
        let ready = list.iter().filter(|r| r["state"] == "ready").count();
        if list.len() == repos && ready == repos {
            break;
        }
        assert!(
            !list.iter().any(|r| r["state"] == "failed"),
            "a clone failed: {list:?}"
        );
        assert!(
            Instant::now() < deadline,
            "only {ready} of {repos} mirrors ready"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let ready_after = started.elapsed();
    let create_runs: usize = db
        .query("SELECT count(*) FROM sync_runs")
        .trim()
        .parse()
        .unwrap();

    // The burst: many clients, every hub, upstreams changing; one hub killed halfway.
    let burst = Arc::new(Burst {
        bases: hubs.iter().map(|h| h.base.clone()).collect(),
        alive: (0..HUBS).map(|_| AtomicBool::new(true)).collect(),
        total,
        repos,
        issued: AtomicUsize::new(0),
        acked: AtomicUsize::new(0),
        unreachable: AtomicUsize::new(0),
        last_request: Mutex::new(vec![None; repos]),
        per_hub: (0..HUBS).map(|_| AtomicUsize::new(0)).collect(),
    });
    let stop_changes = Arc::new(AtomicBool::new(false));
    let changer = {
        let (stop, root) = (stop_changes.clone(), upstream_root.clone());
        std::thread::spawn(move || {
            let mut rng = StdRng::seed_from_u64(seed ^ 0x5eed);
            let mut n = 0;
            while !stop.load(Ordering::SeqCst) {
                let repo = rng.gen_range(0..repos);
                change_upstream(&root.join(upstream_name(repo)), &mut rng, n);
                n += 1;
                std::thread::sleep(Duration::from_millis(5));
            }
            n
        })
    };
    let burst_started = Instant::now();
    let mut client_tasks = tokio::task::JoinSet::new();
    for c in 0..clients {
        client_tasks.spawn(burst.clone().client(seed.wrapping_add(c as u64 + 1)));
    }
    while burst.acked.load(Ordering::SeqCst) < total / 2 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Killed mid-sync: the victim is killed while it runs git in a repository (its sync's run
    // is open, for another hub to take over), not at whatever instant half the burst is
    // acknowledged, when all of its syncs may have just finished.
    wait_for_git_of(
        &hubs[VICTIM],
        &data_dir,
        Instant::now() + Duration::from_secs(60),
    )
    .await;
    let running_before_kill = db
        .query("SELECT count(*) FROM sync_jobs WHERE claimed_by IS NOT NULL")
        .trim()
        .to_owned();
    hubs[VICTIM].kill9();
    burst.alive[VICTIM].store(false, Ordering::SeqCst);
    let killed_at = burst_started.elapsed();
    let live_pids: Vec<u32> = hubs.iter().filter_map(Hub::pid).collect();
    let orphans: Vec<_> = processes_under(&data_dir)
        .into_iter()
        .filter(|(_, ppid, _)| !live_pids.contains(ppid))
        .collect();
    while let Some(r) = client_tasks.join_next().await {
        r.unwrap();
    }
    let burst_time = burst_started.elapsed();
    stop_changes.store(true, Ordering::SeqCst);
    let changes = changer.join().unwrap();
    let acked = burst.acked.load(Ordering::SeqCst);
    assert_eq!(acked, total);

    // No burst request lost: once the queue is empty, every repository's last run started after
    // the last request for it was sent.
    wait_quiet(&db_url, &hubs, "after the burst").await;
    let survivor = &hubs[0];
    let last_request = burst.last_request.lock().unwrap().clone();
    let mut lost = Vec::new();
    for (repo, last) in last_request.iter().enumerate() {
        let Some(last) = last else { continue };
        let runs = runs_of(survivor, repo).await;
        let newest = runs
            .iter()
            .filter_map(|r| parse_time(&r["started_at"]))
            .max();
        if newest.is_none_or(|t| t <= *last) {
            lost.push((mirror_name(repo), *last, newest));
        }
    }
    assert!(
        lost.is_empty(),
        "requests lost (repo, last request, last run start): {lost:?}"
    );

    // After the last upstream change: one more request per repository, to the survivors; each
    // repository gets a run that started after it.
    let survivors: Vec<usize> = (0..HUBS).filter(|&h| h != VICTIM).collect();
    let mut final_request = Vec::with_capacity(repos);
    let http = reqwest::Client::new();
    for repo in 0..repos {
        let hub = survivors[repo % survivors.len()];
        final_request.push(Utc::now());
        let (status, body) = call_base(
            &http,
            &hubs[hub].base,
            reqwest::Method::POST,
            &format!("/api/v1/repos/team/{}/sync", mirror_name(repo)),
            Some(json!({})),
            Some(TOKEN),
        )
        .await
        .expect("final sync request");
        assert_eq!(status, 202, "{body}");
    }
    let deadline = Instant::now() + Duration::from_secs(180);
    let mut waiting: Vec<usize> = (0..repos).collect();
    while !waiting.is_empty() {
        let mut still = Vec::new();
        for &repo in &waiting {
            let runs = runs_of(survivor, repo).await;
            let served = runs.iter().any(|r| {
                parse_time(&r["started_at"]).is_some_and(|t| t > final_request[repo])
                    && !r["finished_at"].is_null()
            });
            if !served {
                still.push(repo);
            }
        }
        waiting = still;
        if !waiting.is_empty() {
            assert!(
                Instant::now() < deadline,
                "no run after the final request for {} repos, e.g. {}",
                waiting.len(),
                mirror_name(waiting[0])
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
    wait_quiet(&db_url, &hubs, "after the final requests").await;

    // Every mirror equals its upstream; nothing pending, claimed or running; the final runs
    // succeeded.
    let ids: HashMap<String, i64> = db
        .query("SELECT name, id FROM repos")
        .lines()
        .filter_map(|l| {
            let (name, id) = l.split_once('|')?;
            Some((name.to_owned(), id.parse().ok()?))
        })
        .collect();
    assert_eq!(ids.len(), repos);
    let mut differ = Vec::new();
    let mut final_outcomes: BTreeMap<String, usize> = BTreeMap::new();
    for repo in 0..repos {
        let mirror = data_dir
            .join("repos")
            .join(format!("{}.git", ids[&mirror_name(repo)]));
        let upstream = upstream_root.join(upstream_name(repo));
        if refs(&mirror) != refs(&upstream) {
            differ.push(mirror_name(repo));
        }
        if repo % 10 == 0 {
            fsck(&mirror);
        }
        let runs = runs_of(survivor, repo).await;
        assert!(
            runs.iter().all(|r| r["outcome"] != "running"),
            "{}: {runs:?}",
            mirror_name(repo)
        );
        let newest = &runs[0];
        assert!(
            parse_time(&newest["started_at"]).is_some_and(|t| t > final_request[repo]),
            "{}: the newest run started before the last request: {newest}",
            mirror_name(repo)
        );
        *final_outcomes
            .entry(newest["outcome"].as_str().unwrap_or("?").to_owned())
            .or_default() += 1;
    }
    assert!(
        differ.is_empty(),
        "mirrors differ from their upstreams: {differ:?}"
    );
    assert!(
        final_outcomes
            .keys()
            .all(|o| o == "success" || o == "unchanged"),
        "final runs: {final_outcomes:?}"
    );
    assert_eq!(db.query("SELECT count(*) FROM sync_jobs").trim(), "0");

    // Never two syncs of one repository at once, from the runs' own records: taken in the
    // order they were started (id), each run began only after every earlier run of the same
    // repository had ended, either finished by its worker or declared interrupted by the worker
    // that took its job over (which closes it at the instant its own run starts). A worker
    // that kept syncing after another took over would overwrite its run's end with a later
    // time and show up here.
    let overlaps = db.query(
        "SELECT p.repo_id, p.id, p.outcome, coalesce(p.error_code, ''), p.started_at, \
                coalesce(p.finished_at::text, 'never'), r.id, r.started_at \
         FROM sync_runs p JOIN sync_runs r ON r.repo_id = p.repo_id AND r.id > p.id \
         WHERE p.finished_at IS NULL OR p.finished_at > r.started_at \
         ORDER BY p.repo_id, p.id LIMIT 20",
    );
    assert!(
        overlaps.trim().is_empty(),
        "runs of one repository overlapped (repo|run|outcome|error|started|finished|later run|its start):\n{overlaps}"
    );
    // The store's own record of the same: every run notes how many other runs of its
    // repository were still running, with a live claim, when it started.
    assert_eq!(
        db.query("SELECT count(*) FROM sync_runs WHERE concurrent_at_start <> 0")
            .trim(),
        "0",
        "a run started while another run of the same repository was live"
    );

    // The killed hub's syncs were taken over: their runs are marked interrupted, each closed at
    // the start of the run that took over.
    let interrupted: usize = db
        .query("SELECT count(*) FROM sync_runs WHERE error_code = 'interrupted'")
        .trim()
        .parse()
        .unwrap();
    let takeovers_unmatched = db.query(
        "SELECT p.id FROM sync_runs p WHERE p.error_code = 'interrupted' AND NOT EXISTS ( \
             SELECT 1 FROM sync_runs r WHERE r.repo_id = p.repo_id AND r.id > p.id \
               AND r.started_at = p.finished_at AND r.trigger = 'recovery')",
    );
    assert!(
        interrupted > 0,
        "the killed hub had no sync running ({running_before_kill} claimed jobs before the kill)"
    );
    assert!(
        takeovers_unmatched.trim().is_empty(),
        "interrupted runs not closed by a recovery run: {takeovers_unmatched}"
    );

    // Coalescing: far fewer runs than requests.
    let by_outcome = db.query(
        "SELECT outcome || ':' || coalesce(error_code, '-') || '=' || count(*) FROM sync_runs \
         WHERE trigger <> 'create' GROUP BY outcome, error_code ORDER BY 1",
    );
    let by_trigger =
        db.query("SELECT trigger || '=' || count(*) FROM sync_runs GROUP BY trigger ORDER BY 1");
    let all_runs: usize = db
        .query("SELECT count(*) FROM sync_runs")
        .trim()
        .parse()
        .unwrap();
    let runs = all_runs - create_runs;
    let requests = total + repos;
    let ratio = requests as f64 / runs as f64;
    let max_per_repo = db.query(
        "SELECT max(n) FROM (SELECT count(*) AS n FROM sync_runs WHERE trigger <> 'create' GROUP BY repo_id) c",
    );
    let per_hub: Vec<usize> = burst
        .per_hub
        .iter()
        .map(|n| n.load(Ordering::SeqCst))
        .collect();
    let orphan_text = if orphans.is_empty() {
        "none".to_owned()
    } else {
        format!(
            "{}: {:?}",
            orphans.len(),
            orphans
                .iter()
                .map(|(pid, ppid, cmd)| format!("{pid}<-{ppid} {cmd}"))
                .collect::<Vec<_>>()
        )
    };
    println!(
        "\n== three hubs on PostgreSQL, one SIGKILLed ==\n\
         repos {repos}, clients {clients}, seed {seed}\n\
         mirrors ready after {:.1}s\n\
         burst: {total} requests acknowledged in {:.1}s (per hub {per_hub:?}; {} attempts hit the dead hub), \
         {changes} upstream changes; hub {VICTIM} SIGKILLed at {:.1}s with {running_before_kill} jobs claimed cluster-wide\n\
         git processes of the killed hub still running after the kill: {orphan_text}\n\
         final: {repos} more requests; every mirror equal to its upstream; queue empty\n\
         runs after creation: {runs} for {requests} requests: one run per {ratio:.1} requests \
         (most runs of one repo: {})\n\
         runs by trigger: {}\nruns by outcome: {}\n\
         interrupted runs taken over: {interrupted}; overlapping runs: none\n\
         total time {:.1}s",
        ready_after.as_secs_f64(),
        burst_time.as_secs_f64(),
        burst.unreachable.load(Ordering::SeqCst),
        killed_at.as_secs_f64(),
        max_per_repo.trim(),
        by_trigger.split_whitespace().collect::<Vec<_>>().join(" "),
        by_outcome.split_whitespace().collect::<Vec<_>>().join(" "),
        started.elapsed().as_secs_f64(),
    );
    assert!(
        runs * 2 < requests,
        "requests did not coalesce: {runs} runs for {requests} requests"
    );
    drop(hubs);
    drop(daemon);
}

/// Sizes a sync that is still running when the test looks: the upstream is replaced by a
/// history of this many commits that the mirror has not seen.
const BIG_CHANGE_COMMITS: usize = 30_000;

#[tokio::test(flavor = "multi_thread")]
async fn sqlite_kill9_during_sync_of_existing_mirror_recovers() {
    let db = TestDb::create(Db::Sqlite).unwrap();
    let root = tempfile::tempdir().unwrap();
    let upstream = root.path().join("big.git");
    {
        let u = upstream.clone();
        blocking(move || synthetic_upstream(&u, Spec::small())).await;
    }
    let daemon = GitDaemon::start(root.path()).await;
    let mut hub = Hub::start(&db, &[]).await;
    let (status, repo) = hub
        .post(
            "/api/v1/repos",
            json!({"url": daemon.url("big.git"), "owner": "team", "name": "big", "mode": "mirror"}),
        )
        .await;
    assert_eq!(status, 202, "{repo}");
    let (repo, run) = hub.wait_for_run("team/big", None).await;
    assert_eq!(
        (repo["state"].as_str(), run["outcome"].as_str()),
        (Some("ready"), Some("success")),
        "{run}"
    );
    let mirror = hub.repo_dir(1);
    let old_refs = refs(&upstream);
    assert_eq!(refs(&mirror), old_refs);

    // A large upstream change: a long history the mirror has none of, as after a big push.
    let generated = {
        let u = upstream.clone();
        blocking(move || {
            let t = Instant::now();
            synthetic_upstream(
                &u,
                Spec {
                    commits: BIG_CHANGE_COMMITS,
                    ..Spec::small()
                },
            );
            t.elapsed()
        })
        .await
    };
    let new_refs = refs(&upstream);
    assert_ne!(new_refs, old_refs);

    let before = hub.latest_run_id("team/big").await;
    let (status, _) = hub.post("/api/v1/repos/team/big/sync", json!({})).await;
    assert_eq!(status, 202);
    let deadline = Instant::now() + Duration::from_secs(30);
    let killed_run = loop {
        let (_, runs) = hub.get("/api/v1/repos/team/big/syncs?limit=1").await;
        let newest = &runs[0];
        if newest["id"].as_i64() > before {
            assert_eq!(
                newest["outcome"], "running",
                "the sync ended before the hub could be killed: make BIG_CHANGE_COMMITS larger"
            );
            break newest["id"].as_i64().unwrap();
        }
        assert!(Instant::now() < deadline, "the sync did not start");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let sync_seen = Instant::now();
    // Into the transfer, not at its very first step: once the hub runs git in the repository.
    wait_for_git_of(&hub, &hub.data_dir, deadline).await;
    hub.kill9();
    let left_running = processes_under(&hub.data_dir);

    // Killed mid-sync: the mirror holds the old refs or the new ones, nothing in between.
    let after_kill = refs(&mirror);
    assert!(
        after_kill == old_refs || after_kill == new_refs,
        "the mirror is half-updated after the kill"
    );

    hub.spawn();
    // What the killed hub's git was still doing when the new one took the job up again.
    let alive_at_restart = left_running
        .iter()
        .filter(|(pid, _, _)| process_alive(*pid))
        .count();
    let (repo, run) = hub.wait_for_run("team/big", Some(killed_run)).await;
    let recovered_after = sync_seen.elapsed();
    // The recovery stopped whatever git the killed hub left writing the repository before it
    // touched it (two gits in one repository could break its all-or-nothing update).
    assert!(
        left_running.iter().all(|(pid, _, _)| !process_alive(*pid)),
        "git left by the killed hub still runs: {left_running:?}"
    );
    if alive_at_restart > 0 {
        assert!(
            hub.log_text()
                .contains("stopping git left running by a hub that was killed"),
            "{}",
            hub.log_text()
        );
    }
    assert_eq!(repo["state"], "ready", "{repo}");
    assert_eq!(
        (run["trigger"].as_str(), run["outcome"].as_str()),
        (Some("recovery"), Some("success")),
        "{run}\n{}",
        hub.log_text()
    );
    assert_eq!(
        refs(&mirror),
        new_refs,
        "the mirror does not equal the upstream"
    );
    fsck(&mirror);
    let (_, runs) = hub.get("/api/v1/repos/team/big/syncs").await;
    let runs = runs.as_array().unwrap();
    assert!(runs.iter().all(|r| r["outcome"] != "running"), "{runs:?}");
    let killed = runs
        .iter()
        .find(|r| r["id"].as_i64() == Some(killed_run))
        .expect("the killed run is in the history");
    assert_eq!(
        (killed["outcome"].as_str(), killed["error"]["code"].as_str()),
        (Some("failed"), Some("interrupted")),
        "{killed}"
    );
    assert_eq!(
        runs.len(),
        3,
        "the initial clone, the killed sync and its recovery: {runs:?}"
    );
    println!(
        "\n== SIGKILL mid-sync on SQLite ==\n\
         upstream change: {BIG_CHANGE_COMMITS} commits (generated in {:.1}s); killed 150 ms after the run showed `running`; \
         recovered (run {} recovery/success) {:.1}s later\n\
         git processes still running in the data dir after the kill: {} ({alive_at_restart} of them still running when the hub restarted)",
        generated.as_secs_f64(),
        run["id"],
        recovered_after.as_secs_f64(),
        if left_running.is_empty() {
            "none".to_owned()
        } else {
            format!("{left_running:?}")
        }
    );
    drop(daemon);
}

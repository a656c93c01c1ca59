//! The mirror set benchmark (issue 17): a namespace of 5,000 repositories mirrored through one
//! mirror set by the real `mirrorhub serve` (SQLite, default workers).
//!
//! `cargo bench --bench mirror_sets`. Knobs:
//! - `MIRRORHUB_BENCH_SET_REPOS` (default 5000): repositories in the namespace;
//! - `MIRRORHUB_BENCH_RELISTS` (default 3): re-listings of the unchanged namespace measured;
//! - `MIRRORHUB_BENCH_READY_TIMEOUT` (seconds, default 3600): how long every mirror may take
//!   to become ready before the bench fails;
//! - `MIRRORHUB_BENCH_HUB_ENV` (`K=V,K2=V2`): more environment for the hub (e.g.
//!   `MIRRORHUB_WORKERS=8`). Without it the hub runs with its defaults (4 workers, 2 syncs per
//!   upstream host).
//!
//! Setup: testkit's forge API stand-in (`NamespaceServer`, GitHub shapes, its own cap of 100
//! repositories a page) lists organization `acme` of `repo-0000` … ; its clone URLs are
//! forwarded to a real `git http-backend` on 127.0.0.1, where every path is a symbolic link to
//! one tiny real repository (`tiny_repo_aliases`: one commit, one branch). Every mirror's first
//! copy is a real clone over http.
//!
//! Measured:
//! - the latency of `POST /api/v1/mirror-sets` (it lists the first page, then answers);
//! - (a) from that POST until `GET /api/v1/mirror-sets/{id}` counts every repository listed
//!   and made a mirror (`mirrored + cloning`);
//! - (b) the hub's RSS meanwhile (sampled every 50 ms from `/proc`, and the kernel's peak);
//! - (c) from the POST until every mirror is ready (`counts.mirrored`);
//! - (d) the hub's own CPU time (utime + stime from `/proc`, its git children excluded) for
//!   one re-listing of the unchanged namespace: from just before `POST …/{id}/sync` until the
//!   set says that listing finished (`last_listed_at` moved, `listing` false), polled every
//!   100 ms; the status polls are part of the figure, and their own cost is measured and
//!   printed beside it. Target: under 1 s.

mod support;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mirrorhub_testkit::{tiny_repo_aliases, HttpGitServer, NamespaceForge, NamespaceServer};
use serde_json::{json, Value};
use support::{
    clock_ticks, cpu_seconds, env_number, extra_hub_env, load_average, status_mb, HubProcess,
    ADMIN_TOKEN,
};

const NAMESPACE: &str = "acme";

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(run());
}

/// One API call; panics on an answer that is not a success.
async fn api(
    client: &reqwest::Client,
    base: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> Value {
    let mut req = client
        .request(method, format!("{base}/api/v1{path}"))
        .bearer_auth(ADMIN_TOKEN);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.expect("call the hub");
    let status = resp.status();
    let text = resp.text().await.unwrap_or_default();
    assert!(status.is_success(), "{path}: {status} {text}");
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

fn count(set: &Value, field: &str) -> i64 {
    set["counts"][field].as_i64().unwrap_or(0)
}

/// Samples the process's RSS every 50 ms until stopped; keeps the highest, in kB.
struct RssSampler {
    peak_kb: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl RssSampler {
    fn start(pid: u32) -> RssSampler {
        let peak_kb = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let task = {
            let (peak_kb, stop) = (peak_kb.clone(), stop.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let kb = (status_mb(pid, "VmRSS:") * 1024.0) as u64;
                    peak_kb.fetch_max(kb, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            })
        };
        RssSampler {
            peak_kb,
            stop,
            task,
        }
    }

    /// The highest sample so far, in MB.
    fn peak_mb(&self) -> f64 {
        self.peak_kb.load(Ordering::Relaxed) as f64 / 1024.0
    }

    async fn finish(self) -> f64 {
        self.stop.store(true, Ordering::Relaxed);
        let peak = self.peak_kb.clone();
        let _ = self.task.await;
        peak.load(Ordering::Relaxed) as f64 / 1024.0
    }
}

async fn run() {
    let repos = env_number("MIRRORHUB_BENCH_SET_REPOS", 5000).max(1);
    let relists = env_number("MIRRORHUB_BENCH_RELISTS", 3).max(1);
    let ready_timeout =
        Duration::from_secs(env_number("MIRRORHUB_BENCH_READY_TIMEOUT", 3600) as u64);
    let ticks = clock_ticks();
    let tmp = tempfile::tempdir().expect("temp dir");

    // The forge: its API stand-in, and a real git server behind its clone URLs.
    let git_root = tmp.path().join("git");
    std::fs::create_dir_all(&git_root).unwrap();
    let api_server = NamespaceServer::start(NamespaceForge::GitHub).await;
    let paths = api_server.add_repos(NAMESPACE, "repo", repos);
    tiny_repo_aliases(&git_root, &paths);
    let git_server = HttpGitServer::start(&git_root, None).await;
    api_server.forward_git_to(&git_server.url(""));

    let data = tmp.path().join("data");
    let log = tmp.path().join("hub.log");
    let mut env: Vec<(String, String)> = vec![
        ("MIRRORHUB_ALLOWED_HOSTS".into(), "127.0.0.1".into()),
        ("RUST_LOG".into(), "info".into()),
    ];
    env.extend(extra_hub_env());
    let hub = HubProcess::start(&data, &log, env);
    let base = hub.base.clone();
    let pid = hub.pid();
    let client = reqwest::Client::new();
    println!(
        "mirror sets bench: {repos} repositories, load {}, hub RSS at start {:.1} MB, extra hub env {:?}",
        load_average(),
        status_mb(pid, "VmRSS:"),
        extra_hub_env()
    );

    // (a) list and enqueue all, (b) RSS meanwhile.
    let sampler = RssSampler::start(pid);
    let cpu_start = cpu_seconds(pid, ticks);
    let started = Instant::now();
    let set = api(
        &client,
        &base,
        reqwest::Method::POST,
        "/mirror-sets",
        Some(json!({
            "forge": "github",
            "api_url": api_server.api_url(),
            "namespace": NAMESPACE,
            "owner": NAMESPACE,
        })),
    )
    .await;
    let post_latency = started.elapsed();
    let id = set["id"].as_i64().expect("the set's id");
    let set_path = format!("/mirror-sets/{id}");
    let deadline = started + ready_timeout;
    let mut last;
    let enqueued = loop {
        last = api(&client, &base, reqwest::Method::GET, &set_path, None).await;
        if count(&last, "listed") == repos as i64
            && count(&last, "mirrored") + count(&last, "cloning") == repos as i64
        {
            break started.elapsed();
        }
        assert!(
            Instant::now() < deadline,
            "the set never listed every repository: {last}\n{}",
            hub.log_text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let cpu_enqueued = cpu_seconds(pid, ticks) - cpu_start;
    let rss_enqueued = status_mb(pid, "VmRSS:");
    let peak_enqueued = sampler.peak_mb();
    println!(
        "  listed and enqueued: {:.2} s (POST answered in {:.1} ms); hub CPU {:.2} s; RSS now {:.1} MB, peak so far {:.1} MB; counts {}",
        enqueued.as_secs_f64(),
        post_latency.as_secs_f64() * 1000.0,
        cpu_enqueued,
        rss_enqueued,
        peak_enqueued,
        last["counts"]
    );

    // (c) every mirror ready with the default workers.
    let mut progress_at = Instant::now();
    let ready = loop {
        last = api(&client, &base, reqwest::Method::GET, &set_path, None).await;
        if count(&last, "mirrored") == repos as i64 {
            break started.elapsed();
        }
        assert!(
            count(&last, "failed") == 0,
            "mirrors failed: {last}\n{}",
            hub.log_text()
        );
        assert!(
            Instant::now() < deadline,
            "not every mirror became ready within {ready_timeout:?}: {last}"
        );
        if progress_at.elapsed() > Duration::from_secs(60) {
            println!(
                "    {:.0} s: {} ready, RSS {:.1} MB",
                started.elapsed().as_secs_f64(),
                count(&last, "mirrored"),
                status_mb(pid, "VmRSS:")
            );
            progress_at = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let cpu_ready = cpu_seconds(pid, ticks) - cpu_start;
    let rss_ready = status_mb(pid, "VmRSS:");
    let peak_sampled = sampler.finish().await;
    let peak_kernel = status_mb(pid, "VmHWM:");
    println!(
        "  all ready: {:.1} s ({:.1} mirrors/s); hub CPU {:.1} s (its git children excluded); RSS at end {:.1} MB, peak {:.1} MB sampled, {:.1} MB VmHWM",
        ready.as_secs_f64(),
        repos as f64 / ready.as_secs_f64(),
        cpu_ready,
        rss_ready,
        peak_sampled,
        peak_kernel
    );

    // What one status poll costs the hub (the re-listing below polls).
    let polls = 10;
    let before = cpu_seconds(pid, ticks);
    let t = Instant::now();
    for _ in 0..polls {
        api(&client, &base, reqwest::Method::GET, &set_path, None).await;
    }
    let poll_cpu = (cpu_seconds(pid, ticks) - before) / polls as f64;
    let poll_wall = t.elapsed().as_secs_f64() / polls as f64;
    // What the idle hub costs over a second (its scheduler, leases), to read the delta by.
    let before = cpu_seconds(pid, ticks);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle_cpu_per_s = (cpu_seconds(pid, ticks) - before) / 2.0;
    println!(
        "  one GET {set_path}: {:.1} ms, {:.1} ms of hub CPU; idle hub: {:.1} ms of CPU a second",
        poll_wall * 1000.0,
        poll_cpu * 1000.0,
        idle_cpu_per_s * 1000.0
    );

    // (d) re-listing the unchanged namespace.
    let mut cpu_runs = Vec::with_capacity(relists);
    for round in 0..relists {
        let listed_before = last["last_listed_at"].clone();
        let cpu_before = cpu_seconds(pid, ticks);
        let t = Instant::now();
        api(
            &client,
            &base,
            reqwest::Method::POST,
            &format!("{set_path}/sync"),
            None,
        )
        .await;
        let mut n_polls = 0;
        loop {
            last = api(&client, &base, reqwest::Method::GET, &set_path, None).await;
            n_polls += 1;
            if last["last_listed_at"] != listed_before && last["listing"] == false {
                break;
            }
            assert!(
                t.elapsed() < Duration::from_secs(600),
                "the re-listing never finished: {last}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let wall = t.elapsed();
        let cpu = cpu_seconds(pid, ticks) - cpu_before;
        assert_eq!(count(&last, "mirrored"), repos as i64, "{last}");
        assert!(last["last_error"].is_null(), "{last}");
        println!(
            "  re-listing {}: {:.2} s wall, hub CPU {:.3} s (of which ~{:.3} s for {n_polls} status polls)",
            round + 1,
            wall.as_secs_f64(),
            cpu,
            poll_cpu * n_polls as f64
        );
        cpu_runs.push(cpu);
    }
    cpu_runs.sort_by(f64::total_cmp);
    let relist_cpu = cpu_runs[cpu_runs.len() / 2];

    println!();
    println!("| {repos} repositories, one mirror set | measured | target |");
    println!("|---|---|---|");
    println!(
        "| `POST /api/v1/mirror-sets` answered | {:.1} ms | at once |",
        post_latency.as_secs_f64() * 1000.0
    );
    println!(
        "| listed, every mirror created and queued | {:.2} s | |",
        enqueued.as_secs_f64()
    );
    println!(
        "| hub RSS while listing and cloning: peak / at end | {:.1} MB / {:.1} MB | none set |",
        peak_sampled.max(peak_kernel),
        rss_ready
    );
    println!(
        "| every mirror ready (default workers) | {:.1} s | |",
        ready.as_secs_f64()
    );
    println!(
        "| hub CPU for one re-listing of the unchanged namespace (median of {relists}) | {:.3} s | < 1 s: {} |",
        relist_cpu,
        if relist_cpu < 1.0 { "met" } else { "NOT met" }
    );
    hub.stop();
}

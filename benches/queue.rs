//! The queue benchmark: how fast the store hands out jobs, on SQLite and PostgreSQL, and what
//! an idle hub with 100,000 registered mirrors costs.
//!
//! `cargo bench --bench queue`. PostgreSQL is measured when `MIRRORHUB_BENCH_POSTGRES_URL` or
//! `MIRRORHUB_TEST_POSTGRES_URL` names a server (a database is created and dropped). Knobs:
//! - `MIRRORHUB_BENCH_JOBS` (default 10000): jobs per claim run, one per repository;
//! - `MIRRORHUB_BENCH_MIXED_REPOS` (default 500): repositories the mixed run's requests go to;
//! - `MIRRORHUB_BENCH_CLAIMERS` (default `1,4,16`): concurrent claimers per run;
//! - `MIRRORHUB_BENCH_IDLE_MIRRORS` (default 100000), `MIRRORHUB_BENCH_IDLE_SECS` (default 30):
//!   the idle hub; `MIRRORHUB_BENCH_HUB_ENV` (`K=V,K2=V2`) adds to its environment;
//!   `MIRRORHUB_BENCH_SKIP_IDLE=1` or `MIRRORHUB_BENCH_SKIP_CLAIM=1` leave a part out.
//!
//! Claim runs (each on a fresh database):
//! - **drain**: N repositories with one pending job each; W claimers claim and complete until
//!   the queue is empty. Jobs/s = N / time.
//! - **mixed**: one producer sends N sync requests spread at random over R repositories (they
//!   coalesce into at most one pending job per repository) while W claimers claim and complete;
//!   it ends when the producer is done and the queue is empty. Reports requests/s and jobs/s.
//!
//! Idle hub: 100,000 mirrors are written into a fresh SQLite file through the `Store` API
//! (created, then a successful first run recorded with the next sync a year away), the real
//! `mirrorhub serve` is started on that data directory, and its resident memory (`VmRSS`,
//! `VmHWM` from `/proc/<pid>/status`) and CPU time (`utime + stime` from `/proc/<pid>/stat`)
//! are read after start-up and over the idle window.

mod support;

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use mirrorhub_core::Trigger;
use mirrorhub_store::{SecretKey, Store};
use rand::{Rng, SeedableRng};
use support::{
    clock_ticks, cpu_seconds, env_flag, env_number, extra_hub_env, new_repo, postgres_admin_url,
    seed_ready_mirror, status_mb, BenchDb, HubProcess,
};

const LEASE: Duration = Duration::from_secs(60);

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(run());
}

async fn run() {
    if !env_flag("MIRRORHUB_BENCH_SKIP_CLAIM") {
        claim_bench().await;
    }
    if !env_flag("MIRRORHUB_BENCH_SKIP_IDLE") {
        idle_bench().await;
    }
}

/// Creates `count` repositories with `writers` concurrent writers; returns their ids.
async fn create_repos(store: &Arc<dyn Store>, count: usize, writers: usize) -> Vec<i64> {
    let next = Arc::new(AtomicU64::new(0));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..writers.max(1) {
        let (store, next) = (store.clone(), next.clone());
        tasks.spawn(async move {
            let mut ids = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                if i >= count {
                    return ids;
                }
                let repo = store
                    .create_repo(new_repo(i), Utc::now())
                    .await
                    .expect("create a repository");
                ids.push(repo.id);
            }
        });
    }
    let mut ids = Vec::with_capacity(count);
    while let Some(part) = tasks.join_next().await {
        ids.extend(part.expect("writer task"));
    }
    ids.sort_unstable();
    ids
}

// ---- claim throughput -------------------------------------------------------------------

struct ClaimRow {
    backend: &'static str,
    scenario: &'static str,
    claimers: usize,
    requests: u64,
    jobs: u64,
    elapsed: Duration,
}

async fn claim_bench() {
    let jobs = env_number("MIRRORHUB_BENCH_JOBS", 10_000).max(1);
    let mixed_repos = env_number("MIRRORHUB_BENCH_MIXED_REPOS", 500).max(1);
    let claimers: Vec<usize> = std::env::var("MIRRORHUB_BENCH_CLAIMERS")
        .unwrap_or_else(|_| "1,4,16".into())
        .split(',')
        .map(|w| w.trim().parse().expect("MIRRORHUB_BENCH_CLAIMERS: numbers"))
        .collect();
    let pg_url = postgres_admin_url();
    if pg_url.is_none() {
        eprintln!("PostgreSQL not measured: set MIRRORHUB_BENCH_POSTGRES_URL (or MIRRORHUB_TEST_POSTGRES_URL)");
    }
    let mut rows = Vec::new();
    let backends: Vec<&'static str> = if pg_url.is_some() {
        vec!["sqlite", "postgres"]
    } else {
        vec!["sqlite"]
    };
    for &backend in &backends {
        for &w in &claimers {
            let fresh = || match backend {
                "sqlite" => BenchDb::sqlite(),
                _ => BenchDb::postgres(pg_url.as_deref().unwrap()),
            };
            let db = fresh();
            let row = drain(backend, &db, jobs, w).await;
            eprintln!(
                "{backend} drain W={w}: {:.0} jobs/s",
                row.jobs as f64 / row.elapsed.as_secs_f64()
            );
            rows.push(row);
            drop(db);
            let db = fresh();
            let row = mixed(backend, &db, jobs, mixed_repos, w).await;
            eprintln!(
                "{backend} mixed W={w}: {:.0} jobs/s",
                row.jobs as f64 / row.elapsed.as_secs_f64()
            );
            rows.push(row);
        }
    }
    println!("\nClaim throughput ({jobs} jobs per drain run; mixed: {jobs} requests over {mixed_repos} repositories), each claim followed by complete:\n");
    println!(
        "| backend | run | claimers | requests | jobs claimed | seconds | requests/s | jobs/s |"
    );
    println!("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |");
    for r in &rows {
        let secs = r.elapsed.as_secs_f64();
        println!(
            "| {} | {} | {} | {} | {} | {:.2} | {:.0} | {:.0} |",
            r.backend,
            r.scenario,
            r.claimers,
            r.requests,
            r.jobs,
            secs,
            r.requests as f64 / secs,
            r.jobs as f64 / secs
        );
    }
}

/// Claims and completes until `done` says the producer is finished and a claim finds nothing.
async fn claimer(
    store: Arc<dyn Store>,
    worker: String,
    done: Arc<AtomicBool>,
    claimed: Arc<AtomicU64>,
) {
    loop {
        let producer_done = done.load(Ordering::SeqCst);
        match store
            .claim_job(&worker, Utc::now(), LEASE)
            .await
            .expect("claim")
        {
            Some(job) => {
                store.complete_job(job.id, &worker).await.expect("complete");
                claimed.fetch_add(1, Ordering::Relaxed);
            }
            None if producer_done => return,
            None => tokio::time::sleep(Duration::from_millis(1)).await,
        }
    }
}

async fn drain(backend: &'static str, db: &BenchDb, jobs: usize, claimers: usize) -> ClaimRow {
    let store = db.open(SecretKey::generate()).await;
    let ids = create_repos(&store, jobs, 8).await;
    for &id in &ids {
        store
            .enqueue_sync(id, Trigger::Manual, Utc::now())
            .await
            .expect("enqueue");
    }
    let claimed = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(true));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..claimers {
        tasks.spawn(claimer(
            store.clone(),
            format!("bench-{w}"),
            done.clone(),
            claimed.clone(),
        ));
    }
    while let Some(r) = tasks.join_next().await {
        r.expect("claimer");
    }
    let elapsed = started.elapsed();
    let jobs_claimed = claimed.load(Ordering::SeqCst);
    assert_eq!(
        jobs_claimed as usize, jobs,
        "every job claimed exactly once"
    );
    ClaimRow {
        backend,
        scenario: "drain",
        claimers,
        requests: jobs as u64,
        jobs: jobs_claimed,
        elapsed,
    }
}

async fn mixed(
    backend: &'static str,
    db: &BenchDb,
    requests: usize,
    repos: usize,
    claimers: usize,
) -> ClaimRow {
    let store = db.open(SecretKey::generate()).await;
    let ids = create_repos(&store, repos, 8).await;
    let claimed = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..claimers {
        tasks.spawn(claimer(
            store.clone(),
            format!("bench-{w}"),
            done.clone(),
            claimed.clone(),
        ));
    }
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    for _ in 0..requests {
        let id = ids[rng.gen_range(0..ids.len())];
        store
            .enqueue_sync(id, Trigger::Manual, Utc::now())
            .await
            .expect("enqueue");
    }
    done.store(true, Ordering::SeqCst);
    while let Some(r) = tasks.join_next().await {
        r.expect("claimer");
    }
    // A claimer may have stopped on an empty answer while another held the last repository's
    // lease; whatever is left is claimed here, so the count is complete.
    while let Some(job) = store
        .claim_job("bench-tail", Utc::now(), LEASE)
        .await
        .expect("claim")
    {
        store.complete_job(job.id, "bench-tail").await.unwrap();
        claimed.fetch_add(1, Ordering::Relaxed);
    }
    ClaimRow {
        backend,
        scenario: "mixed",
        claimers,
        requests: requests as u64,
        jobs: claimed.load(Ordering::SeqCst),
        elapsed: started.elapsed(),
    }
}

// ---- idle hub ---------------------------------------------------------------------------

async fn seed_idle_mirrors(data_dir: &Path, key: &SecretKey, count: usize) -> (Duration, u64) {
    let url = format!(
        "sqlite://{}?mode=rwc",
        data_dir.join("mirrorhub.db").display()
    );
    let store = mirrorhub_store::connect(&url, key.clone())
        .await
        .expect("open the store");
    let started = Instant::now();
    let now = Utc::now();
    let mut progress = Instant::now();
    for i in 0..count {
        // Ready, next sync spread over a day a year from now: nothing is due while the bench
        // watches.
        seed_ready_mirror(&*store, i, now).await;
        if progress.elapsed() > Duration::from_secs(10) {
            eprintln!(
                "  seeded {} of {count} ({:.0} mirrors/s)",
                i + 1,
                (i + 1) as f64 / started.elapsed().as_secs_f64()
            );
            progress = Instant::now();
        }
    }
    let elapsed = started.elapsed();
    let file_bytes = std::fs::metadata(data_dir.join("mirrorhub.db"))
        .map(|m| m.len())
        .unwrap_or(0);
    (elapsed, file_bytes)
}

async fn idle_bench() {
    let count = env_number("MIRRORHUB_BENCH_IDLE_MIRRORS", 100_000);
    let idle_secs = env_number("MIRRORHUB_BENCH_IDLE_SECS", 30).max(1);
    let dir = tempfile::Builder::new()
        .prefix("mirrorhub-bench-idle")
        .tempdir()
        .expect("temporary directory");
    let data_dir = dir.path().join("data");
    std::fs::create_dir_all(data_dir.join("repos")).unwrap();
    let key = SecretKey::generate();
    eprintln!("idle hub: seeding {count} mirrors through the Store API (create_repo, start_run, finish_run each)");
    let (seed_time, db_bytes) = seed_idle_mirrors(&data_dir, &key, count).await;
    eprintln!(
        "idle hub: seeded in {:.1}s ({:.0} mirrors/s), database {:.1} MB",
        seed_time.as_secs_f64(),
        count as f64 / seed_time.as_secs_f64(),
        db_bytes as f64 / 1e6
    );

    let log = dir.path().join("hub.log");
    let hub = HubProcess::start(
        &data_dir,
        &log,
        [
            ("MIRRORHUB_SECRET_KEY".to_owned(), key.to_base64()),
            ("RUST_LOG".to_owned(), "info".to_owned()),
        ]
        .into_iter()
        .chain(extra_hub_env()),
    );
    let pid = hub.pid();
    let ticks = clock_ticks();
    let startup = hub.startup;
    let cpu_startup = cpu_seconds(pid, ticks);
    let rss_startup = status_mb(pid, "VmRSS:");

    // Settle, then watch it idle.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let cpu_0 = cpu_seconds(pid, ticks);
    let watch = Instant::now();
    let mut rss_max: f64 = 0.0;
    while watch.elapsed() < Duration::from_secs(idle_secs as u64) {
        rss_max = rss_max.max(status_mb(pid, "VmRSS:"));
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let cpu_idle = cpu_seconds(pid, ticks) - cpu_0;
    let watched = watch.elapsed().as_secs_f64();
    let rss_end = status_mb(pid, "VmRSS:");
    let hwm = status_mb(pid, "VmHWM:");
    let threads = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Threads:").map(|t| t.trim().to_owned()))
        })
        .unwrap_or_default();
    hub.stop();
    let hub_log = std::fs::read_to_string(&log).unwrap_or_default();
    let scheduled = hub_log.matches("scheduled due mirrors").count();
    let recovered = hub_log.contains("recovered interrupted work");

    let verdict = |ok: bool| if ok { "ok" } else { "OVER TARGET" };
    let extra = std::env::var("MIRRORHUB_BENCH_HUB_ENV").unwrap_or_default();
    println!(
        "\nIdle hub with {count} mirrors (SQLite, default settings{}):\n",
        if extra.is_empty() {
            String::new()
        } else {
            format!(" plus {extra}")
        }
    );
    println!("| measure | value | target |");
    println!("| --- | ---: | --- |");
    println!(
        "| seeding through the Store API | {:.1} s ({:.0} mirrors/s, 3 transactions each) | |",
        seed_time.as_secs_f64(),
        count as f64 / seed_time.as_secs_f64()
    );
    println!(
        "| start-up to listening | {:.2} s, {:.2} s CPU | |",
        startup.as_secs_f64(),
        cpu_startup
    );
    println!("| resident memory after start-up | {rss_startup:.1} MB | |");
    println!(
        "| resident memory while idle (max / end) | {rss_max:.1} / {rss_end:.1} MB | <= 100 MB: {} |",
        verdict(rss_max <= 100.0)
    );
    println!(
        "| peak resident memory (VmHWM) | {hwm:.1} MB | <= 100 MB: {} |",
        verdict(hwm <= 100.0)
    );
    println!(
        "| CPU while idle | {cpu_idle:.3} s over {watched:.0} s ({:.2} %) | near zero: {} |",
        100.0 * cpu_idle / watched,
        verdict(cpu_idle / watched < 0.01)
    );
    println!("| threads | {threads} | |");
    println!(
        "| scheduler batches queued while idle | {scheduled} | 0 |{}",
        if recovered {
            " (the hub re-queued work at start-up)"
        } else {
            ""
        }
    );
}

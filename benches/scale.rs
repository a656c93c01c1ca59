//! The scale benchmark: the real `mirrorhub serve` with its default workers on a SQLite store
//! of 100,000 registered mirrors, every one of which the scheduler finds due within a few
//! minutes, against a few real local upstreams (`git http-backend` and `git daemon` on
//! 127.0.0.1). Every mirror already holds its upstream's refs, so every sync is a no-op: the
//! listing in process, the comparison, the run recorded. What is measured is how many of
//! those the hub sustains per second, the hub's CPU time per sync and its resident memory.
//!
//! `cargo bench --bench scale`. Knobs:
//! - `MIRRORHUB_BENCH_MIRRORS` (default 100000): registered mirrors;
//! - `MIRRORHUB_BENCH_UPSTREAMS` (default 8): upstreams, every other one served by
//!   `git http-backend` (http://), the rest by `git daemon` (git://); mirror `i` follows
//!   upstream `i % n`;
//! - `MIRRORHUB_BENCH_DUE_WINDOW_SECS` (default 240, at most 600): every mirror becomes due
//!   within this window, evenly spread (100,000 in 240 s ask for 417 syncs/s, more than the
//!   target; a hub that keeps up shows the rate asked, so 150 s, 667/s, shows what it
//!   sustains);
//! - `MIRRORHUB_BENCH_WARMUP_SECS` (default 20) and `MIRRORHUB_BENCH_MEASURE_SECS` (default
//!   60): the window measured starts this long after the first mirror became due;
//! - `MIRRORHUB_BENCH_HUB_ENV` (`K=V,K2=V2`): more environment for the hub (`MIRRORHUB_WORKERS`
//!   to compare worker counts, `RUST_LOG`).
//!
//! How the hub is set up (nothing of it is mocked; only the schedule is compressed):
//! 1. The upstreams are tiny real repositories (`mirrorhub_testkit::tiny_repos`: one branch,
//!    one commit, packed).
//! 2. The mirrors are registered through the `Store` API, each as the hub leaves a mirror
//!    after its first copy (`create_repo`, `start_run`, `finish_run` with a success and the
//!    next sync a year away), and each gets its bare repository where the hub keeps it
//!    (`<data>/repos/<id>.git`): `HEAD`, `config`, `packed-refs` and the pack of the upstream,
//!    hard-linked where the file system allows (git never rewrites these in place), copied
//!    otherwise. The no-op check reads only the refs (git2, `refs::read_state`).
//! 3. The schedule is compressed with one SQL statement: `next_sync_at` of mirror `k` of `n` is
//!    `start + k * window / n`, `start` a few seconds after the hub is up. The scheduler then
//!    sees mirrors become due at `n / window` a second and queues them as it would at any time
//!    (its pacer lets through what became due plus 15%).
//! 4. Syncs per second are counted from the store (`sync_runs` finished in the window, by
//!    outcome: every one must be `unchanged`); CPU is `utime + stime` of the hub's process
//!    from `/proc` (the upstreams' `git` processes are not in it), memory its `VmRSS`/`VmHWM`;
//!    the machine's whole CPU (`/proc/stat`) is split into the hub, everything else (mostly
//!    the upstreams' `git` processes, on the same cores) and idle.

mod support;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use mirrorhub_core::{Mode, OwnerName, RepoName, UpstreamUrl, Visibility};
use mirrorhub_store::{NewRepo, SecretKey, Store};
use mirrorhub_testkit::{for_each_ref, tiny_repos, GitDaemon, HttpGitServer};
use support::{
    clock_ticks, cpu_seconds, env_number, extra_hub_env, load_average, machine_cpu_seconds,
    seed_ready, status_mb, HubProcess,
};

/// The target: no-op syncs a second on 2 cores, with the default workers.
const TARGET_PER_SEC: f64 = 300.0;

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(run());
}

/// One upstream repository and the server that serves it.
enum Server {
    Http(HttpGitServer),
    Daemon(GitDaemon),
}

impl Server {
    fn url(&self, repo: &str) -> String {
        match self {
            Server::Http(s) => s.url(repo),
            Server::Daemon(d) => d.url(repo),
        }
    }
}

async fn run() {
    let count = env_number("MIRRORHUB_BENCH_MIRRORS", 100_000).max(1);
    let upstreams = env_number("MIRRORHUB_BENCH_UPSTREAMS", 8).max(1);
    let window_secs = env_number("MIRRORHUB_BENCH_DUE_WINDOW_SECS", 240).clamp(1, 600);
    let warmup_secs = env_number("MIRRORHUB_BENCH_WARMUP_SECS", 20);
    let measure_secs = env_number("MIRRORHUB_BENCH_MEASURE_SECS", 60).max(1);

    let dir = tempfile::Builder::new()
        .prefix("mirrorhub-bench-scale")
        .tempdir()
        .expect("temporary directory");
    let root = dir.path().join("upstreams");
    let data_dir = dir.path().join("data");
    let repos_dir = data_dir.join("repos");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::create_dir_all(&repos_dir).unwrap();

    // The upstreams, and their servers.
    let names: Vec<String> = (0..upstreams).map(|k| format!("upstream-{k}")).collect();
    let commit = tiny_repos(&root, &names);
    let mut servers = Vec::new();
    for k in 0..upstreams {
        servers.push(if k % 2 == 0 {
            Server::Http(HttpGitServer::start(&root, None).await)
        } else {
            Server::Daemon(GitDaemon::start(&root).await)
        });
    }
    let urls: Vec<String> = (0..upstreams)
        .map(|k| {
            let url = servers[k].url(&format!("{}.git", names[k]));
            UpstreamUrl::parse(&url)
                .expect("an upstream URL the hub accepts")
                .0
                .to_string()
        })
        .collect();
    let template = root.join(format!("{}.git", names[0]));
    eprintln!(
        "scale: {upstreams} upstreams ({} http, {} git://), each with main at {}",
        upstreams.div_ceil(2),
        upstreams / 2,
        &commit[..12]
    );

    // The mirrors in the store.
    let key = SecretKey::generate();
    let db_path = data_dir.join("mirrorhub.db");
    let db_url = format!("sqlite://{}?mode=rwc", db_path.display());
    let store = mirrorhub_store::connect(&db_url, key.clone())
        .await
        .expect("open the store");
    eprintln!("scale: registering {count} mirrors through the Store API (create_repo, start_run, finish_run each)");
    let started = Instant::now();
    let ids = register(&store, count, Arc::new(urls.clone())).await;
    let register_time = started.elapsed();
    eprintln!(
        "scale: registered in {:.1} s ({:.0} mirrors/s)",
        register_time.as_secs_f64(),
        count as f64 / register_time.as_secs_f64()
    );

    // Their repositories on disk.
    let started = Instant::now();
    let (linked, copied) = tokio::task::spawn_blocking({
        let (ids, template, repos_dir) = (ids.clone(), template.clone(), repos_dir.clone());
        move || lay_out(&template, &repos_dir, &ids)
    })
    .await
    .expect("lay out the repositories");
    let layout_time = started.elapsed();
    let disk_mb = du_mb(&repos_dir);
    eprintln!(
        "scale: {count} bare repositories laid out in {:.1} s ({linked} files hard-linked, {copied} copied; {disk_mb:.0} MB)",
        layout_time.as_secs_f64()
    );
    // The mirror holds what the upstream holds: every sync is a no-op.
    let sample = repos_dir.join(format!("{}.git", ids[ids.len() / 2]));
    assert_eq!(for_each_ref(&sample), for_each_ref(&template));

    // Compress the schedule: every mirror due within the window, starting shortly after the
    // hub is up (the hub starts in well under a second on this database).
    let lead = Duration::from_secs(5);
    let first_due = Utc::now() + chrono::Duration::from_std(lead).unwrap();
    compress_schedule(
        &db_path,
        &ids,
        first_due,
        Duration::from_secs(window_secs as u64),
    )
    .await;
    drop(store);

    let log = dir.path().join("hub.log");
    let hub = HubProcess::start(
        &data_dir,
        &log,
        [
            ("MIRRORHUB_SECRET_KEY".to_owned(), key.to_base64()),
            ("MIRRORHUB_ALLOWED_HOSTS".to_owned(), "127.0.0.1".to_owned()),
        ]
        .into_iter()
        .chain(extra_hub_env()),
    );
    let pid = hub.pid();
    let ticks = clock_ticks();
    let reader = sqlx::SqlitePool::connect(&format!("sqlite://{}?mode=ro", db_path.display()))
        .await
        .expect("open the database to read the runs");

    // Warm-up: from the first due time on.
    let measure_from = first_due + chrono::Duration::seconds(warmup_secs as i64);
    wait_until(measure_from).await;
    let cpu_0 = cpu_seconds(pid, ticks);
    let machine_0 = machine_cpu_seconds(ticks);
    let at_0 = Instant::now();
    let from = Utc::now();
    let mut rss_max: f64 = 0.0;
    let mut per_second = Vec::new();
    let mut last = runs_between(&reader, from, Utc::now()).await.total();
    while at_0.elapsed() < Duration::from_secs(measure_secs as u64) {
        tokio::time::sleep(Duration::from_secs(1)).await;
        rss_max = rss_max.max(status_mb(pid, "VmRSS:"));
        let now = runs_between(&reader, from, Utc::now()).await.total();
        per_second.push(now - last);
        last = now;
    }
    let until = Utc::now();
    let cpu = cpu_seconds(pid, ticks) - cpu_0;
    let machine_1 = machine_cpu_seconds(ticks);
    let (machine_busy, machine_total) = (machine_1.0 - machine_0.0, machine_1.1 - machine_0.1);
    let watched = at_0.elapsed().as_secs_f64();
    let runs = runs_between(&reader, from, until).await;
    let rss_end = status_mb(pid, "VmRSS:");
    let hwm = status_mb(pid, "VmHWM:");
    let threads = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Threads:").map(|t| t.trim().to_owned()))
        })
        .unwrap_or_default();
    let done_total = runs_between(&reader, first_due - chrono::Duration::hours(1), Utc::now())
        .await
        .total();
    let load = load_average();
    hub.stop();
    drop(servers);

    let rate = runs.total() as f64 / watched;
    let asked = count as f64 / window_secs as f64;
    let cpu_per_sync_ms = if runs.total() > 0 {
        1000.0 * cpu / runs.total() as f64
    } else {
        f64::NAN
    };
    let (lo, hi) = per_second
        .iter()
        .fold((u64::MAX, 0), |(lo, hi), n| (lo.min(*n), hi.max(*n)));
    let verdict = |ok: bool| if ok { "ok" } else { "BELOW TARGET" };
    let extra = std::env::var("MIRRORHUB_BENCH_HUB_ENV").unwrap_or_default();
    println!(
        "\nScale: {count} mirrors on SQLite, {upstreams} local upstreams, every mirror due within {window_secs} s ({asked:.0}/s asked), default settings{}; load average {load} at the end:\n",
        if extra.is_empty() {
            String::new()
        } else {
            format!(" plus {extra}")
        }
    );
    println!("| measure | value | target |");
    println!("| --- | ---: | --- |");
    println!(
        "| registering through the Store API | {:.1} s ({:.0} mirrors/s, 3 transactions each) | |",
        register_time.as_secs_f64(),
        count as f64 / register_time.as_secs_f64()
    );
    println!(
        "| bare repositories on disk | {:.1} s, {disk_mb:.0} MB | |",
        layout_time.as_secs_f64()
    );
    println!(
        "| no-op syncs per second, {measure_secs} s after {warmup_secs} s of warm-up | {rate:.1} (per second: {lo} to {hi}) | >= {TARGET_PER_SEC:.0}: {} |",
        verdict(rate >= TARGET_PER_SEC)
    );
    println!(
        "| runs in the window: unchanged / success / failed | {} / {} / {} | all unchanged |",
        runs.unchanged, runs.success, runs.failed
    );
    println!(
        "| hub CPU per no-op sync | {cpu_per_sync_ms:.2} ms ({cpu:.1} s over {watched:.0} s, {:.0}% of one core) | |",
        100.0 * cpu / watched
    );
    // The upstreams run on the same cores: how the machine's CPU was shared says whether the
    // hub or they bound the rate.
    let share = |seconds: f64| 100.0 * seconds / machine_total;
    println!(
        "| the machine's CPU in the window ({} cores): hub / everything else (the upstreams' git processes, the bench) / idle | {:.0}% / {:.0}% / {:.0}% | |",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        share(cpu),
        share(machine_busy - cpu),
        share(machine_total - machine_busy)
    );
    println!("| hub resident memory (max in the window / end / VmHWM) | {rss_max:.1} / {rss_end:.1} / {hwm:.1} MB | |");
    println!("| hub threads | {threads} | |");
    println!("| syncs finished by the end, of {count} | {done_total} | |");
    assert_eq!(
        runs.failed,
        0,
        "syncs failed; the hub's log is in {}",
        log.display()
    );
    assert_eq!(
        runs.success, 0,
        "syncs fetched: a mirror did not hold its upstream's refs"
    );
}

/// Registers `count` mirrors, each as the hub leaves one after its first copy, with a few
/// concurrent writers (SQLite takes one at a time); returns their ids in order.
async fn register(store: &Arc<dyn Store>, count: usize, urls: Arc<Vec<String>>) -> Vec<i64> {
    let next = Arc::new(AtomicUsize::new(0));
    let now = Utc::now();
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..4 {
        let (store, next, urls) = (store.clone(), next.clone(), urls.clone());
        tasks.spawn(async move {
            let mut ids = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= count {
                    return ids;
                }
                if i > 0 && i % 20_000 == 0 {
                    eprintln!(
                        "  registered {i} of {count} ({:.0} mirrors/s)",
                        i as f64 / started.elapsed().as_secs_f64()
                    );
                }
                ids.push(register_one(&*store, i, &urls[i % urls.len()], now).await);
            }
        });
    }
    let mut ids = Vec::with_capacity(count);
    while let Some(part) = tasks.join_next().await {
        ids.extend(part.expect("registering task"));
    }
    ids.sort_unstable();
    ids
}

async fn register_one(store: &dyn Store, i: usize, url: &str, now: DateTime<Utc>) -> i64 {
    let new = NewRepo {
        owner: OwnerName::parse("scale").unwrap(),
        name: RepoName::parse(&format!("mirror-{i:07}")).unwrap(),
        mode: Mode::Mirror,
        visibility: Visibility::Private,
        description: String::new(),
        upstream_url: url.to_owned(),
        credentials: None,
        sync_interval_secs: 86_400,
        ssh_key_id: None,
        known_hosts: None,
    };
    // Nothing due until the schedule is compressed.
    seed_ready(store, new, now + chrono::Duration::days(365), now)
        .await
        .id
}

/// Gives each mirror the bare repository its first copy would have left: the template's
/// `HEAD`, `config`, `packed-refs` and pack, hard-linked (ext4 allows 65,000 links a file;
/// past that, copied). Returns (linked, copied) file counts.
fn lay_out(template: &Path, repos_dir: &Path, ids: &[i64]) -> (u64, u64) {
    let mut files: Vec<(PathBuf, &str)> = ["HEAD", "config", "packed-refs"]
        .iter()
        .map(|name| (template.join(name), ""))
        .collect();
    for entry in std::fs::read_dir(template.join("objects/pack")).expect("template packs") {
        files.push((entry.expect("pack").path(), "objects/pack"));
    }
    // One source per file per 60,000 links: a fresh copy becomes the next source.
    let mut sources: Vec<PathBuf> = files.iter().map(|(p, _)| p.clone()).collect();
    let mut uses = 0usize;
    let (mut linked, mut copied) = (0, 0);
    for id in ids {
        let repo = repos_dir.join(format!("{id}.git"));
        std::fs::create_dir_all(repo.join("objects/pack")).expect("create objects/pack");
        std::fs::create_dir(repo.join("refs")).expect("create refs");
        uses += 1;
        for (n, (path, sub)) in files.iter().enumerate() {
            let target = repo.join(sub).join(path.file_name().unwrap());
            if uses >= 60_000 {
                std::fs::copy(&sources[n], &target).expect("copy a repository file");
                sources[n] = target;
                copied += 1;
            } else if std::fs::hard_link(&sources[n], &target).is_ok() {
                linked += 1;
            } else {
                std::fs::copy(&sources[n], &target).expect("copy a repository file");
                copied += 1;
            }
        }
        if uses >= 60_000 {
            uses = 0;
        }
    }
    (linked, copied)
}

/// Disk use of a directory tree, from `du` (hard links counted once).
fn du_mb(dir: &Path) -> f64 {
    std::process::Command::new("du")
        .arg("-sk")
        .arg(dir)
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.split_whitespace().next()?.parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
}

/// Mirror `k` of `n` (in id order) becomes due at `start + k * window / n`.
async fn compress_schedule(db: &Path, ids: &[i64], start: DateTime<Utc>, window: Duration) {
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", db.display()))
        .await
        .expect("open the database");
    let (first, n) = (ids[0], ids.len() as i64);
    let span = ids[ids.len() - 1] - first + 1;
    let done = sqlx::query(
        "UPDATE repos SET next_sync_at = ?1 + (id - ?2) * ?3 / ?4 WHERE mode = 'mirror'",
    )
    .bind(start.timestamp_millis())
    .bind(first)
    .bind(window.as_millis() as i64)
    .bind(span)
    .execute(&pool)
    .await
    .expect("compress the schedule");
    assert_eq!(done.rows_affected() as i64, n);
    pool.close().await;
}

#[derive(Debug, Default)]
struct Runs {
    unchanged: u64,
    success: u64,
    failed: u64,
}

impl Runs {
    fn total(&self) -> u64 {
        self.unchanged + self.success + self.failed
    }
}

/// Scheduled runs finished in [from, until), by outcome.
async fn runs_between(pool: &sqlx::SqlitePool, from: DateTime<Utc>, until: DateTime<Utc>) -> Runs {
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT outcome, count(*) FROM sync_runs WHERE trigger = 'schedule' \
         AND finished_at >= ?1 AND finished_at < ?2 GROUP BY outcome",
    )
    .bind(from.timestamp_millis())
    .bind(until.timestamp_millis())
    .fetch_all(pool)
    .await
    .expect("count the runs");
    let mut runs = Runs::default();
    for (outcome, n) in rows {
        match outcome.as_str() {
            "unchanged" => runs.unchanged = n as u64,
            "success" => runs.success = n as u64,
            _ => runs.failed += n as u64,
        }
    }
    runs
}

async fn wait_until(at: DateTime<Utc>) {
    if let Ok(wait) = (at - Utc::now()).to_std() {
        tokio::time::sleep(wait).await;
    }
}

//! The webhook benchmark: how many signed push deliveries the real hub verifies and records per
//! second, and how long a push takes to reach a mirror compared with a plain `git fetch`.
//!
//! `cargo bench --bench webhooks`. Knobs:
//! - `MIRRORHUB_BENCH_DELIVERIES` (default 20000): deliveries per throughput row;
//! - `MIRRORHUB_BENCH_SENDERS` (default 16): concurrent keep-alive HTTP clients;
//! - `MIRRORHUB_BENCH_MIRRORS` (default 1000): mirrors seeded for the throughput rows;
//! - `MIRRORHUB_BENCH_COMMITS` (default 100000): the push-to-mirror upstream, the sync bench's
//!   synthetic repository (generated once under `target/bench-data/`, shared with it);
//! - `MIRRORHUB_BENCH_ROUNDS` (default 10): pushes measured;
//! - `MIRRORHUB_BENCH_HUB_ENV` (`K=V,K2=V2`): more environment for the hubs (e.g.
//!   `RUST_LOG=debug`); `MIRRORHUB_BENCH_SKIP_DELIVERIES=1` or `MIRRORHUB_BENCH_SKIP_PUSH=1`
//!   leave a part out.
//!
//! PostgreSQL is measured when `MIRRORHUB_BENCH_POSTGRES_URL` or `MIRRORHUB_TEST_POSTGRES_URL`
//! names a server (a database is created and dropped).
//!
//! **Deliveries.** The mirrors are written through the `Store` API (ready, next sync a year
//! away, so the scheduler stays quiet), then `mirrorhub serve` is started on that database and
//! sent GitHub `push` deliveries (the fixture with the repository URL replaced by a seeded
//! mirror's, picked at random), each with its own `X-GitHub-Delivery` and a correct
//! `X-Hub-Signature-256`, computed before the clock starts. Two rows: the organization endpoint
//! (`/hooks/github`, matched by upstream URL) and each repository's own URL (its own secret).
//! Every answer must be 202. The hub runs its default 4 workers (`MIRRORHUB_WORKERS=0` still
//! starts one), and each delivery queues or coalesces a sync of its mirror; the workers' git is
//! a stub that fails at once as an unresolvable host would, so nothing leaves the machine.
//!
//! **Push to mirror.** A mirror of the synthetic upstream (served by `git http-backend` on
//! 127.0.0.1) is created through the API, and a plain `git clone --mirror` made beside it. Each
//! round adds one commit to `main` upstream right after the previous round ended (back-to-back
//! pushes, each delivered as soon as it is made, with its real `ref` and `after`), then times a
//! `git fetch` of the CLI mirror, and the hub from just before the delivery is sent until its
//! bare repository's `refs/heads/main` is the new commit.

mod support;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use mirrorhub_store::SecretKey;
use mirrorhub_testkit::{
    add_commit, for_each_ref, git, synthetic_upstream, HttpGitServer, Spec, Synthetic,
};
use rand::{Rng, SeedableRng};
use secrecy::ExposeSecret;
use serde_json::{json, Value};
use sha2::Sha256;
use support::{
    bench_repo_name, clock_ticks, cpu_seconds, env_flag, env_number, extra_hub_env, git_cli,
    load_average, postgres_admin_url, seed_ready_mirror, BenchDb, HubProcess, ADMIN_TOKEN,
};

/// The organization-level GitHub secret of the throughput hubs.
const GITHUB_SECRET: &str = "bench-github-org-secret";
/// How long the delivery rows let the syncs they queued finish before the next row.
const SETTLE: Duration = Duration::from_secs(3);
/// The repository the GitHub fixture is about.
const FIXTURE_REPO: &str = "github.com/binkkatal/sample_app";
const UPSTREAM_REPO: &str = "synthetic.git";

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(run());
}

async fn run() {
    if !env_flag("MIRRORHUB_BENCH_SKIP_DELIVERIES") {
        delivery_bench().await;
    }
    if !env_flag("MIRRORHUB_BENCH_SKIP_PUSH") {
        push_bench().await;
    }
}

/// Runs blocking work (git, file reads) off the runtime that sends HTTP.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.expect("blocking task")
}

fn hmac_hex(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// `fixtures/webhooks/github/push.json`, byte for byte.
fn push_fixture() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/webhooks/github/push.json");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The `q` quantile (0..=1) of sorted samples, nearest rank.
fn quantile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "ok"
    } else {
        "MISSED"
    }
}

// ---- deliveries per second ----------------------------------------------------------------

/// One delivery, ready to send: everything computed before the clock starts.
struct Delivery {
    url: String,
    id: String,
    signature: String,
    body: Arc<Vec<u8>>,
}

struct DeliveryRow {
    backend: &'static str,
    endpoint: &'static str,
    deliveries: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
    hub_cpu: f64,
    client_cpu: f64,
    syncs: usize,
}

async fn delivery_bench() {
    let deliveries = env_number("MIRRORHUB_BENCH_DELIVERIES", 20_000).max(1);
    let senders = env_number("MIRRORHUB_BENCH_SENDERS", 16).max(1);
    let mirrors = env_number("MIRRORHUB_BENCH_MIRRORS", 1_000).max(1);
    let pg_url = postgres_admin_url();
    if pg_url.is_none() {
        eprintln!("PostgreSQL not measured: set MIRRORHUB_BENCH_POSTGRES_URL (or MIRRORHUB_TEST_POSTGRES_URL)");
    }
    let mut rows = Vec::new();
    let mut loads = Vec::new();
    for pg in std::iter::once(None).chain(pg_url.map(Some)) {
        let db = match &pg {
            None => BenchDb::sqlite(),
            Some(url) => BenchDb::postgres(url),
        };
        loads.push(format!("{} {}", db.backend(), load_average()));
        rows.extend(delivery_runs(&db, mirrors, deliveries, senders).await);
    }

    println!(
        "\nVerified webhook deliveries: GitHub `push` ({} bytes), {deliveries} per row after a \
         warm-up, {senders} keep-alive senders, {mirrors} ready mirrors; every answer 202. \
         The hub and the sending client share the machine's {} cores (load average before \
         each backend: {}):\n",
        push_fixture().len(),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        loads.join(", ")
    );
    println!("| backend | endpoint | deliveries/s | p50 ms | p90 ms | p99 ms | max ms | hub CPU s | client CPU s | syncs run meanwhile | target (SQLite: >= 2000/s, p99 <= 20 ms) |");
    println!("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |");
    for r in &mut rows {
        r.latencies.sort();
        let rate = r.deliveries as f64 / r.elapsed.as_secs_f64();
        let p99 = quantile(&r.latencies, 0.99);
        let target = if r.backend == "sqlite" {
            verdict(rate >= 2000.0 && p99 <= Duration::from_millis(20))
        } else {
            "(none set)"
        };
        println!(
            "| {} | {} | {:.0} | {:.1} | {:.1} | {:.1} | {:.1} | {:.2} over {:.1} s | {:.2} | {} | {} |",
            r.backend,
            r.endpoint,
            rate,
            ms(quantile(&r.latencies, 0.5)),
            ms(quantile(&r.latencies, 0.9)),
            ms(p99),
            ms(*r.latencies.last().unwrap()),
            r.hub_cpu,
            r.elapsed.as_secs_f64(),
            r.client_cpu,
            r.syncs,
            target
        );
    }
    println!(
        "\nEach delivery matches one mirror and queues a sync of it or merges into its pending \
         one (a webhook sync starts >= 2 s after the mirror's previous one). \
         MIRRORHUB_WORKERS=0 would still start one worker, so the hub runs its default 4 \
         workers (2 per upstream host); their git is a stub that fails at once like the \
         unresolvable git.example.org would, so the syncs are quick failures (their CPU is \
         the hub's, the stub processes' is not counted)."
    );
}

/// Seeds the mirrors, starts a hub on the database and measures both endpoints.
async fn delivery_runs(
    db: &BenchDb,
    mirrors: usize,
    deliveries: usize,
    senders: usize,
) -> Vec<DeliveryRow> {
    let backend = db.backend();
    let key = SecretKey::generate();
    let store = db.open(key.clone()).await;
    let seeding = Instant::now();
    let now = chrono::Utc::now();
    let mut secrets = Vec::with_capacity(mirrors);
    for i in 0..mirrors {
        seed_ready_mirror(&*store, i, now).await;
        let repo = store
            .get_repo("bench", &bench_repo_name(i))
            .await
            .expect("read a mirror")
            .expect("the mirror just created");
        let secret = repo
            .webhook_secret
            .expect("every repository has a webhook secret");
        secrets.push(secret.expose_secret().to_owned());
    }
    drop(store);
    eprintln!(
        "{backend}: seeded {mirrors} mirrors in {:.1} s",
        seeding.elapsed().as_secs_f64()
    );

    let dir = tempfile::Builder::new()
        .prefix("mirrorhub-bench-webhooks")
        .tempdir()
        .expect("temporary directory");
    let data_dir = dir.path().join("data");
    std::fs::create_dir_all(&data_dir).unwrap();
    let stub = failing_git_stub(dir.path());
    let log = dir.path().join("hub.log");
    let env: Vec<(String, String)> = [
        ("DATABASE_URL", db.url.as_str()),
        ("MIRRORHUB_SECRET_KEY", &key.to_base64()),
        ("MIRRORHUB_GITHUB_WEBHOOK_SECRET", GITHUB_SECRET),
        ("MIRRORHUB_GIT", stub.to_str().unwrap()),
        ("RUST_LOG", "info"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .chain(extra_hub_env())
    .collect();
    let hub = HubProcess::start(&data_dir, &log, env);

    // The bodies differ only by repository; a GitHub signature covers the body alone.
    let fixture = push_fixture();
    let bodies: Vec<Arc<Vec<u8>>> = (0..mirrors)
        .map(|i| {
            let name = bench_repo_name(i);
            Arc::new(
                fixture
                    .replace(FIXTURE_REPO, &format!("git.example.org/bench/{name}"))
                    .into_bytes(),
            )
        })
        .collect();
    let org_signatures: Vec<String> = bodies
        .iter()
        .map(|b| format!("sha256={}", hmac_hex(GITHUB_SECRET, b)))
        .collect();
    let repo_signatures: Vec<String> = bodies
        .iter()
        .zip(&secrets)
        .map(|(b, s)| format!("sha256={}", hmac_hex(s, b)))
        .collect();
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let mut plan = |label: &str, count: usize, per_repo: bool| -> Arc<Vec<Delivery>> {
        Arc::new(
            (0..count)
                .map(|n| {
                    let i = rng.gen_range(0..mirrors);
                    Delivery {
                        url: if per_repo {
                            format!("{}/hooks/repos/bench/{}", hub.base, bench_repo_name(i))
                        } else {
                            format!("{}/hooks/github", hub.base)
                        },
                        id: format!("bench-{label}-{n}"),
                        signature: if per_repo {
                            repo_signatures[i].clone()
                        } else {
                            org_signatures[i].clone()
                        },
                        body: bodies[i].clone(),
                    }
                })
                .collect(),
        )
    };
    let warm_up = (senders * 20).max(200);
    let runs = [
        (
            "/hooks/github (organization secret)",
            plan("org-warm", warm_up, false),
            plan("org", deliveries, false),
        ),
        (
            "/hooks/repos/bench/NAME (the repository's secret)",
            plan("repo-warm", warm_up, true),
            plan("repo", deliveries, true),
        ),
    ];
    let clients: Vec<reqwest::Client> = (0..senders)
        .map(|_| {
            reqwest::Client::builder()
                .pool_max_idle_per_host(1)
                .timeout(Duration::from_secs(60))
                .build()
                .expect("HTTP client")
        })
        .collect();

    let ticks = clock_ticks();
    let mut rows = Vec::new();
    for (endpoint, warm, timed) in runs {
        send_all(&clients, warm, &hub).await;
        // Let the warm-up's syncs run before the clock starts.
        tokio::time::sleep(SETTLE).await;
        let syncs_before = syncs_run(&hub);
        let cpu_before = cpu_seconds(hub.pid(), ticks);
        let client_before = cpu_seconds(std::process::id(), ticks);
        let (elapsed, latencies) = send_all(&clients, timed, &hub).await;
        let hub_cpu = cpu_seconds(hub.pid(), ticks) - cpu_before;
        let client_cpu = cpu_seconds(std::process::id(), ticks) - client_before;
        let syncs = syncs_run(&hub) - syncs_before;
        eprintln!(
            "{backend} {endpoint}: {:.0} deliveries/s",
            deliveries as f64 / elapsed.as_secs_f64()
        );
        rows.push(DeliveryRow {
            backend,
            endpoint,
            deliveries,
            elapsed,
            latencies,
            hub_cpu,
            client_cpu,
            syncs,
        });
        tokio::time::sleep(SETTLE).await;
    }
    hub.stop();
    rows
}

/// Syncs the hub's workers have finished (all fail, on the stub git), from its log.
fn syncs_run(hub: &HubProcess) -> usize {
    hub.log_text().matches("sync failed").count()
}

/// A `git` for the throughput hubs: `--version` answers as git does; anything else fails at
/// once with git's message for a host that does not resolve. The bench's upstreams are made
/// up; with the stub no sync sends a DNS query or a connection off the machine.
fn failing_git_stub(dir: &Path) -> PathBuf {
    let real = String::from_utf8(
        std::process::Command::new("sh")
            .args(["-c", "command -v git"])
            .output()
            .expect("find git")
            .stdout,
    )
    .unwrap();
    let path = dir.join("git-stub");
    std::fs::write(
        &path,
        format!(
            "#!/bin/sh\n\
             for arg in \"$@\"; do [ \"$arg\" = --version ] && exec {} --version; done\n\
             echo \"fatal: unable to access 'https://git.example.org/': Could not resolve host: git.example.org\" >&2\n\
             exit 128\n",
            real.trim()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

/// Sends every delivery, each client taking the next one in turn; returns the wall time and
/// each delivery's latency. Panics unless every answer is 202.
async fn send_all(
    clients: &[reqwest::Client],
    deliveries: Arc<Vec<Delivery>>,
    hub: &HubProcess,
) -> (Duration, Vec<Duration>) {
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for client in clients {
        let (client, next, deliveries) = (client.clone(), next.clone(), deliveries.clone());
        tasks.spawn(async move {
            let mut latencies = Vec::with_capacity(deliveries.len() / 4);
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                let Some(d) = deliveries.get(n) else {
                    return Ok(latencies);
                };
                let sent = Instant::now();
                let resp = client
                    .post(&d.url)
                    .header("content-type", "application/json")
                    .header("user-agent", "GitHub-Hookshot/bench")
                    .header("x-github-event", "push")
                    .header("x-github-delivery", &d.id)
                    .header("x-hub-signature-256", &d.signature)
                    .body(d.body.as_ref().clone())
                    .send()
                    .await
                    .map_err(|e| format!("{}: {e}", d.url))?;
                let status = resp.status();
                let text = resp.text().await.unwrap_or_default();
                latencies.push(sent.elapsed());
                if status != reqwest::StatusCode::ACCEPTED {
                    return Err(format!("{} answered {status}: {text}", d.url));
                }
            }
        });
    }
    let mut latencies = Vec::with_capacity(deliveries.len());
    let mut failure = None;
    while let Some(done) = tasks.join_next().await {
        match done.expect("sender task") {
            Ok(part) => latencies.extend(part),
            Err(e) => failure = failure.or(Some(e)),
        }
    }
    let elapsed = started.elapsed();
    if let Some(e) = failure {
        panic!(
            "a delivery was not accepted: {e}\nhub log (tail):\n{}",
            tail(&hub.log_text(), 40)
        );
    }
    (elapsed, latencies)
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

// ---- push to mirror -------------------------------------------------------------------------

async fn push_bench() {
    let commits = env_number("MIRRORHUB_BENCH_COMMITS", 100_000);
    let rounds = env_number("MIRRORHUB_BENCH_ROUNDS", 10).max(1);

    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-data");
    let served = data.join(format!("upstream-{commits}"));
    std::fs::create_dir_all(&served).expect("create bench data dir");
    eprintln!(
        "upstream: {commits} commits under {} (generated once, then reused; shared with the sync bench)",
        served.display()
    );
    let started = Instant::now();
    let upstream = {
        let path = served.join(UPSTREAM_REPO);
        blocking(move || synthetic_upstream(&path, Spec::with_commits(commits))).await
    };
    eprintln!(
        "upstream {} in {:.1} s",
        if upstream.reused {
            "reused"
        } else {
            "generated"
        },
        started.elapsed().as_secs_f64()
    );
    let http = HttpGitServer::start(&served, None).await;
    let url = http.url(UPSTREAM_REPO);
    let work = tempfile::Builder::new()
        .prefix("webhooks-")
        .tempdir_in(&data)
        .expect("work dir");
    let data_dir = work.path().join("hub");
    std::fs::create_dir_all(&data_dir).unwrap();
    let log = work.path().join("hub.log");
    let env: Vec<(String, String)> = [
        ("MIRRORHUB_ALLOWED_HOSTS", "127.0.0.1"),
        ("MIRRORHUB_LOG_FORMAT", "json"),
        ("RUST_LOG", "info"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .chain(extra_hub_env())
    .collect();
    let hub = HubProcess::start(&data_dir, &log, env);
    let api = reqwest::Client::new();

    // The mirror, through the API, and the git CLI's, side by side.
    let creating = Instant::now();
    let (status, created) = call(
        &api,
        reqwest::Method::POST,
        &format!("{}/api/v1/repos", hub.base),
        Some(json!({"url": url, "owner": "bench", "name": "large", "mode": "mirror"})),
    )
    .await;
    assert!(
        (200..300).contains(&status),
        "creating the mirror: {status} {created}"
    );
    let repo = wait_until_ready(&api, &hub).await;
    let hub_clone = creating.elapsed();
    let id = repo["id"].as_i64().unwrap_or(1);
    let hook_url = repo["webhook"]["url"]
        .as_str()
        .expect("webhook.url")
        .to_owned();
    let secret = repo["webhook"]["secret"]
        .as_str()
        .expect("webhook.secret")
        .to_owned();
    let hub_mirror = data_dir.join("repos").join(format!("{id}.git"));
    let cli_mirror = work.path().join("cli.git");
    let cli_clone = git_cli(
        work.path(),
        &[
            "clone",
            "--mirror",
            "--quiet",
            &url,
            cli_mirror.to_str().unwrap(),
        ],
    )
    .await;
    eprintln!(
        "initial clone: hub {:.1} s (create to ready), git CLI {:.1} s",
        hub_clone.as_secs_f64(),
        cli_clone.as_secs_f64()
    );

    let fixture = push_fixture().replace(FIXTURE_REPO, "git.example.org/bench/large");
    let mut fetch_times = Vec::new();
    let mut hub_times = Vec::new();
    for round in 0..rounds {
        // No quiet spell: the push comes right after the previous round's sync.
        let new_tip = {
            let path = upstream.path.clone();
            blocking(move || {
                add_commit(
                    &path,
                    Synthetic::MAIN,
                    &format!("benchmark: webhook round {round}"),
                )
            })
            .await
        };
        // Alternate who goes first, so neither always finds the upstream's pages warmer.
        for hub_turn in if round % 2 == 0 {
            [false, true]
        } else {
            [true, false]
        } {
            if hub_turn {
                let mut payload: Value = serde_json::from_str(&fixture).expect("the fixture");
                payload["ref"] = Value::from("refs/heads/main");
                payload["after"] = Value::from(new_tip.clone());
                let body = serde_json::to_vec(&payload).expect("JSON");
                let signature = format!("sha256={}", hmac_hex(&secret, &body));
                let sent = Instant::now();
                let resp = api
                    .post(&hook_url)
                    .header("content-type", "application/json")
                    .header("user-agent", "GitHub-Hookshot/bench")
                    .header("x-github-event", "push")
                    .header("x-github-delivery", format!("bench-push-{round}"))
                    .header("x-hub-signature-256", signature)
                    .body(body)
                    .send()
                    .await
                    .expect("deliver the push");
                let status = resp.status();
                assert_eq!(
                    status,
                    reqwest::StatusCode::ACCEPTED,
                    "{}",
                    resp.text().await.unwrap_or_default()
                );
                let mirror = hub_mirror.clone();
                let tip = new_tip.clone();
                let updated =
                    blocking(move || wait_for_ref(&mirror, "refs/heads/main", &tip)).await;
                let Some(at) = updated else {
                    panic!(
                        "round {round}: the hub's mirror did not get {new_tip} within 120 s; log (tail):\n{}",
                        tail(&hub.log_text(), 40)
                    );
                };
                hub_times.push(at - sent);
            } else {
                let took = git_cli(
                    &cli_mirror,
                    &[
                        "fetch",
                        "--prune",
                        "origin",
                        "+refs/heads/*:refs/heads/*",
                        "+refs/tags/*:refs/tags/*",
                    ],
                )
                .await;
                let main = git(&cli_mirror, ["rev-parse", "refs/heads/main"]);
                assert_eq!(main.trim(), new_tip, "the CLI fetch missed the new commit");
                fetch_times.push(took);
            }
        }
        eprintln!(
            "round {}: git fetch {:.0} ms, hub (delivery to ref) {:.0} ms",
            round + 1,
            ms(fetch_times[round]),
            ms(hub_times[round])
        );
    }

    // Exactly the upstream's branches and tags, in both mirrors.
    let expected = for_each_ref(&upstream.path);
    for (who, mirror) in [("the hub", &hub_mirror), ("the git CLI", &cli_mirror)] {
        let found = for_each_ref(mirror);
        assert!(
            found == expected,
            "{who}'s mirror {} differs from the upstream",
            mirror.display()
        );
    }
    // Give the last sync time to log its end, then read the hub's own account.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let breakdown = hub_breakdown(&hub.log_text());
    hub.stop();
    upstream.reset_refs();

    let version = git(&data, ["--version"]);
    let version = version.trim().trim_start_matches("git version ");
    let refs = expected.lines().count();
    let mut fetch_sorted = fetch_times.clone();
    fetch_sorted.sort();
    let mut hub_sorted = hub_times.clone();
    hub_sorted.sort();
    let (f50, h50) = (quantile(&fetch_sorted, 0.5), quantile(&hub_sorted, 0.5));
    let diff = ms(h50) - ms(f50);
    println!(
        "\nPush to mirror: {} commits, {refs} branches and tags, over http (git http-backend on \
         127.0.0.1); git {version}; {rounds} rounds, one new commit on main each, SQLite. \
         Back-to-back: each push is made and delivered right after the previous round's \
         mirror was updated. Load average before: {}.\n",
        upstream.commit_count(),
        load_average()
    );
    println!("| measure | git fetch (CLI mirror) | mirrorhub: delivery sent to refs/heads/main updated |");
    println!("| --- | ---: | ---: |");
    println!("| p50 ms | {:.0} | {:.0} |", ms(f50), ms(h50));
    let (f99, h99) = (quantile(&fetch_sorted, 0.99), quantile(&hub_sorted, 0.99));
    println!("| p99 ms | {:.0} | {:.0} |", ms(f99), ms(h99));
    println!(
        "| max ms | {:.0} | {:.0} |",
        ms(*fetch_sorted.last().unwrap()),
        ms(*hub_sorted.last().unwrap())
    );
    println!(
        "\np50(hub) - p50(fetch) = {diff:.1} ms (target <= 50 ms: {}); ratio {:.2}x. \
         p99(hub) {:.0} ms against 2 x p99(fetch) + 100 ms = {:.0} ms: {}.",
        verdict(diff <= 50.0),
        h50.as_secs_f64() / f50.as_secs_f64(),
        ms(h99),
        2.0 * ms(f99) + 100.0,
        verdict(ms(h99) <= 2.0 * ms(f99) + 100.0)
    );
    let list = |v: &[Duration]| {
        v.iter()
            .map(|d| format!("{:.0}", ms(*d)))
            .collect::<Vec<_>>()
            .join(" ")
    };
    println!(
        "Samples (ms), in round order: git fetch {} / hub {}",
        list(&fetch_times),
        list(&hub_times)
    );
    if let Some(b) = breakdown {
        println!("{b}");
    }
}

async fn call(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = client.request(method, url).bearer_auth(ADMIN_TOKEN);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.expect("request to the hub");
    let status = resp.status().as_u16();
    let text = resp.text().await.unwrap_or_default();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// Polls the mirror's resource until it is `ready` (the initial clone may take minutes).
async fn wait_until_ready(api: &reqwest::Client, hub: &HubProcess) -> Value {
    let deadline = Instant::now() + Duration::from_secs(3600);
    loop {
        let (status, repo) = call(
            api,
            reqwest::Method::GET,
            &format!("{}/api/v1/repos/bench/large", hub.base),
            None,
        )
        .await;
        assert_eq!(status, 200, "{repo}");
        match repo["state"].as_str() {
            Some("ready") => return repo,
            Some("cloning") if Instant::now() < deadline => {}
            _ => panic!(
                "the mirror is not ready: {repo}\nlog (tail):\n{}",
                tail(&hub.log_text(), 40)
            ),
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Reads `refname` of `repo` every 2 ms (with libgit2, in this process: no git to spawn
/// competing with the hub for the CPU) until it is `target`; returns when it was seen, or
/// `None` after 120 s.
fn wait_for_ref(repo: &Path, refname: &str, target: &str) -> Option<Instant> {
    let target = git2::Oid::from_str(target).expect("commit id");
    let repo = git2::Repository::open_bare(repo).expect("open the hub's mirror");
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline {
        if let Ok(oid) = repo.refname_to_id(refname) {
            if oid == target {
                return Some(Instant::now());
            }
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    None
}

/// From the hub's JSON log: per webhook sync, the time from "webhook received" to the sync's
/// start (the worker claiming it) and the sync's own `duration_ms`; medians, as one line.
fn hub_breakdown(log: &str) -> Option<String> {
    let mut received = Vec::new();
    let mut finished = Vec::new();
    for line in log.lines() {
        let Ok(v) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        let Some(at) = v["timestamp"]
            .as_str()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        else {
            continue;
        };
        match v["fields"]["message"].as_str() {
            Some("webhook received") => received.push(at),
            Some("sync finished") if v["span"]["trigger"] == "webhook" => {
                if let Some(d) = v["fields"]["duration_ms"].as_u64() {
                    finished.push((at, d));
                }
            }
            _ => {}
        }
    }
    if received.is_empty() || received.len() != finished.len() {
        return None;
    }
    let mut waits = Vec::new();
    let mut gits = Vec::new();
    for (r, (f, d)) in received.iter().zip(&finished) {
        let total = (*f - *r).to_std().unwrap_or_default();
        let git = Duration::from_millis(*d);
        waits.push(total.saturating_sub(git));
        gits.push(git);
    }
    waits.sort();
    gits.sort();
    Some(format!(
        "From the hub's log (medians of {}): webhook received to sync started {:.0} ms; the sync itself (list + fetch + ref update, `duration_ms`) {:.0} ms.",
        gits.len(),
        ms(quantile(&waits, 0.5)),
        ms(quantile(&gits, 0.5))
    ))
}

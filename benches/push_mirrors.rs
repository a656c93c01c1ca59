//! The push mirror benchmark: how soon a push to a primary on the hub reaches a push mirror,
//! against a plain `git push` of the same change in the same run; and 100 push mirrors of one
//! repository updated after one push (total time, the hub's memory).
//!
//! `cargo bench --bench push_mirrors`. Knobs:
//! - `MIRRORHUB_BENCH_ROUNDS` (default 20): pushes measured for the latency rows;
//! - `MIRRORHUB_BENCH_TARGETS` (default 100): push mirrors of the fan-out row;
//! - `MIRRORHUB_BENCH_HUB_ENV` (`K=V,K2=V2`): more environment for the hub (e.g.
//!   `MIRRORHUB_PUSH_WORKERS=8`).
//!
//! Setup: a small repository is migrated onto the real `mirrorhub serve` (SQLite) from
//! `git http-backend` on 127.0.0.1; its push mirror is another repository of a second
//! `git http-backend` (basic auth, as a forge would be). Each round commits once to `main` in a
//! client clone, then times
//! - **git push**: `git push` of that commit by the git command line straight to a third
//!   repository of the downstream server (what the hub has to do for its push mirror);
//! - **push → downstream**: from the moment the client's `git push` to the hub returns until
//!   the push mirror's `refs/heads/main` is the new commit (read with git2 in a tight loop):
//!   the hub's queue, its listing of the downstream and its own `git push`.
//!
//! The target: push → downstream p50 within git push p50 + 50 ms.

mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use mirrorhub_testkit::{git, init_bare, HttpGitServer, Scratch};
use serde_json::{json, Value};
use support::{
    env_number, extra_hub_env, git_cli, load_average, status_mb, HubProcess, ADMIN_TOKEN,
};

const USER: &str = "bench";
const PASSWORD: &str = "bench-downstream-password";

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(run());
}

async fn api(base: &str, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
    let client = reqwest::Client::new();
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

/// The commit `refs/heads/main` of a bare repository names, if any.
fn main_of(repo: &Path) -> Option<String> {
    let r = git2::Repository::open_bare(repo).ok()?;
    let id = r.refname_to_id("refs/heads/main").ok()?;
    Some(id.to_string())
}

async fn wait_main(repos: &[PathBuf], commit: &str, limit: Duration) -> Duration {
    let started = Instant::now();
    let mut pending: Vec<&PathBuf> = repos.iter().collect();
    while !pending.is_empty() {
        pending.retain(|r| main_of(r).as_deref() != Some(commit));
        assert!(
            started.elapsed() < limit,
            "{} downstreams never got {commit}",
            pending.len()
        );
        if !pending.is_empty() {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    started.elapsed()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

async fn run() {
    let rounds = env_number("MIRRORHUB_BENCH_ROUNDS", 20).max(1);
    let targets = env_number("MIRRORHUB_BENCH_TARGETS", 100).max(1);
    let tmp = tempfile::tempdir().expect("temp dir");
    let up_root = tmp.path().join("up");
    let down_root = tmp.path().join("down");
    std::fs::create_dir_all(&up_root).unwrap();
    std::fs::create_dir_all(&down_root).unwrap();

    // The repository to migrate, and the client's clone of it.
    let work = Scratch::new();
    for i in 0..20 {
        work.commit_file(
            &format!("f{i}.txt"),
            format!("{i}\n"),
            &format!("commit {i}"),
        );
    }
    let src = up_root.join("src.git");
    init_bare(&src);
    work.push_mirror(src.to_str().unwrap());
    git(&src, ["symbolic-ref", "HEAD", "refs/heads/main"]);
    let upstream = HttpGitServer::start(&up_root, None).await;
    for name in ["mirror.git", "plain.git"] {
        init_bare(&down_root.join(name));
    }
    for i in 0..targets {
        init_bare(&down_root.join(format!("fan-{i}.git")));
    }
    let downstream =
        HttpGitServer::start(&down_root, Some((USER.to_owned(), PASSWORD.to_owned()))).await;

    let data = tmp.path().join("data");
    let log = tmp.path().join("hub.log");
    let mut env: Vec<(String, String)> = vec![
        ("MIRRORHUB_ALLOWED_HOSTS".into(), "127.0.0.1".into()),
        ("RUST_LOG".into(), "warn".into()),
    ];
    env.extend(extra_hub_env());
    let hub = HubProcess::start(&data, &log, env);
    let base = hub.base.clone();
    api(
        &base,
        reqwest::Method::POST,
        "/repos",
        Some(json!({"url": upstream.url("src.git"), "owner": "bench", "name": "app", "mode": "migrate"})),
    )
    .await;
    let deadline = Instant::now() + Duration::from_secs(120);
    while api(&base, reqwest::Method::GET, "/repos/bench/app", None).await["state"] != "ready" {
        assert!(
            Instant::now() < deadline,
            "the migration never finished:\n{}",
            hub.log_text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mirror_repo = down_root.join("mirror.git");
    api(
        &base,
        reqwest::Method::POST,
        "/repos/bench/app/push-mirrors",
        Some(json!({"url": downstream.url("mirror.git"), "username": USER, "token": PASSWORD})),
    )
    .await;
    let head = work.head();
    wait_main(
        std::slice::from_ref(&mirror_repo),
        head.trim(),
        Duration::from_secs(60),
    )
    .await;

    let bearer = format!("http.extraHeader=Authorization: Bearer {ADMIN_TOKEN}");
    let hub_url = format!("{base}/bench/app.git");
    let plain_url = downstream.url_with_credentials("plain.git", USER, PASSWORD);
    git_cli(work.path(), &["push", "--quiet", &plain_url, "main"]).await;

    println!(
        "push mirrors bench: {rounds} rounds, load {}, {}",
        load_average(),
        std::process::Command::new("git")
            .arg("--version")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_default()
    );
    let mut plain = Vec::with_capacity(rounds);
    let mut propagation = Vec::with_capacity(rounds);
    let mut end_to_end = Vec::with_capacity(rounds);
    for i in 0..rounds {
        let commit = work.commit_file("round.txt", format!("{i}\n"), &format!("round {i}"));
        let commit = commit.trim().to_owned();
        plain.push(git_cli(work.path(), &["push", "--quiet", &plain_url, "main"]).await);
        let started = Instant::now();
        git_cli(
            work.path(),
            &["-c", &bearer, "push", "--quiet", &hub_url, "main"],
        )
        .await;
        let pushed = started.elapsed();
        let after = wait_main(
            std::slice::from_ref(&mirror_repo),
            &commit,
            Duration::from_secs(60),
        )
        .await;
        propagation.push(after);
        end_to_end.push(pushed + after);
    }
    for list in [&mut plain, &mut propagation, &mut end_to_end] {
        list.sort();
    }
    let row = |name: &str, d: &[Duration]| {
        println!(
            "  {name:<34} p50 {:>7.1} ms  p90 {:>7.1} ms  max {:>7.1} ms",
            ms(percentile(d, 0.5)),
            ms(percentile(d, 0.9)),
            ms(*d.last().unwrap())
        )
    };
    row("git push (straight to downstream)", &plain);
    row("push to hub -> downstream updated", &propagation);
    row("client push + propagation", &end_to_end);
    let (p50_plain, p50_hub) = (percentile(&plain, 0.5), percentile(&propagation, 0.5));
    println!(
        "  propagation p50 = git push p50 {:+.1} ms ({:.2}x); target: within +50 ms: {}",
        ms(p50_hub) - ms(p50_plain),
        p50_hub.as_secs_f64() / p50_plain.as_secs_f64(),
        if ms(p50_hub) <= ms(p50_plain) + 50.0 {
            "met"
        } else {
            "NOT met"
        }
    );

    // Fan-out: `targets` push mirrors of the same repository, one push.
    let fan: Vec<PathBuf> = (0..targets)
        .map(|i| down_root.join(format!("fan-{i}.git")))
        .collect();
    for i in 0..targets {
        api(
            &base,
            reqwest::Method::POST,
            "/repos/bench/app/push-mirrors",
            Some(json!({"url": downstream.url(&format!("fan-{i}.git")), "username": USER, "token": PASSWORD})),
        )
        .await;
    }
    let head = work.head();
    let first = wait_main(&fan, head.trim(), Duration::from_secs(600)).await;
    let rss_before = status_mb(hub.pid(), "VmRSS:");
    let commit = work.commit_file("fan.txt", "fan\n", "fan-out");
    let started = Instant::now();
    git_cli(
        work.path(),
        &["-c", &bearer, "push", "--quiet", &hub_url, "main"],
    )
    .await;
    let pushed = started.elapsed();
    let all = wait_main(&fan, commit.trim(), Duration::from_secs(600)).await;
    println!(
        "  {targets} push mirrors: first pushes (new downstreams) done in {:.2} s; after one push all {targets} updated in {:.2} s ({:.1} ms each, client push {:.1} ms); hub RSS {:.0} MB before, {:.0} MB after, peak {:.0} MB",
        first.as_secs_f64(),
        all.as_secs_f64(),
        ms(all) / targets as f64,
        ms(pushed),
        rss_before,
        status_mb(hub.pid(), "VmRSS:"),
        status_mb(hub.pid(), "VmHWM:"),
    );
    hub.stop();
}

//! The serving benchmark: `git clone` of the large synthetic repository from the hub against
//! the same bare repository behind `git http-backend` (a plain CGI server), in the same run,
//! alternating, plus the hub's memory while it serves.
//!
//! `cargo bench --bench serve`. Knobs: `MIRRORHUB_BENCH_COMMITS` (default 100000),
//! `MIRRORHUB_BENCH_CLONE_RUNS` (clones per side, default 5). The upstream is generated once
//! under `target/bench-data/` (shared with the sync bench) and reused.
//!
//! Target (issue "Serve and push"): cloning from the hub within 1.1x of `git http-backend`,
//! with the hub's memory flat (no pack held in memory).

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use mirrorhub_testkit::{for_each_ref, synthetic_upstream, HttpGitServer, Spec};
use support::{env_number, git_cli, status_mb, HubProcess, ADMIN_TOKEN};

const REPO: &str = "synthetic.git";

fn main() {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
        .block_on(run());
}

fn median(samples: &[Duration]) -> Duration {
    let mut sorted = samples.to_vec();
    sorted.sort();
    sorted[sorted.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.0}", d.as_secs_f64() * 1000.0)
}

async fn run() {
    let commits = env_number("MIRRORHUB_BENCH_COMMITS", 100_000);
    let runs = env_number("MIRRORHUB_BENCH_CLONE_RUNS", 5).max(1);
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-data");
    let served = data.join(format!("upstream-{commits}"));
    std::fs::create_dir_all(&served).expect("create bench data dir");
    let upstream = {
        let path = served.join(REPO);
        tokio::task::spawn_blocking(move || synthetic_upstream(&path, Spec::with_commits(commits)))
            .await
            .expect("generate the upstream")
    };
    let pack_mb = upstream.pack_bytes() as f64 / (1024.0 * 1024.0);
    let expected = for_each_ref(&upstream.path);
    let http = HttpGitServer::start(&served, None).await;

    // The hub holds a migrated copy of the same repository (its first copy is not measured).
    let work = tempfile::Builder::new()
        .prefix("serve-")
        .tempdir_in(&data)
        .expect("work dir");
    let hub = HubProcess::start(
        &work.path().join("hub"),
        &work.path().join("hub.log"),
        [("MIRRORHUB_ALLOWED_HOSTS", "127.0.0.1")],
    );
    let client = reqwest::Client::new();
    let created = client
        .post(format!("{}/api/v1/repos", hub.base))
        .bearer_auth(ADMIN_TOKEN)
        .json(&serde_json::json!({"url": http.url(REPO), "owner": "bench", "name": "synthetic", "mode": "migrate", "visibility": "public"}))
        .send()
        .await
        .expect("create the repository");
    assert_eq!(
        created.status().as_u16(),
        202,
        "{}",
        created.text().await.unwrap_or_default()
    );
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let repo: serde_json::Value = client
            .get(format!("{}/api/v1/repos/bench/synthetic", hub.base))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .expect("the repository")
            .json()
            .await
            .expect("JSON");
        match repo["state"].as_str() {
            Some("ready") => break,
            Some("failed") => panic!("the hub's copy failed: {repo}\n{}", hub.log_text()),
            _ => assert!(Instant::now() < deadline, "the hub's copy never finished"),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let hub_url = format!("{}/bench/synthetic.git", hub.base);
    let rss_before = status_mb(hub.pid(), "VmRSS:");

    let (mut cgi, mut ours) = (Vec::new(), Vec::new());
    for n in 0..runs {
        for (url, samples, side) in [
            (http.url(REPO), &mut cgi, "http-backend"),
            (hub_url.clone(), &mut ours, "hub"),
        ] {
            let dest = work.path().join(format!("{side}-{n}.git"));
            let took = git_cli(
                work.path(),
                &["clone", "--bare", "--quiet", &url, dest.to_str().unwrap()],
            )
            .await;
            assert_eq!(
                for_each_ref(&dest),
                expected,
                "{side}: a complete, exact clone"
            );
            std::fs::remove_dir_all(&dest).expect("remove the clone");
            eprintln!("clone {n} {side}: {} ms", ms(took));
            samples.push(took);
        }
    }
    let peak = status_mb(hub.pid(), "VmHWM:");
    let rss_after = status_mb(hub.pid(), "VmRSS:");
    let (cgi_median, our_median) = (median(&cgi), median(&ours));
    println!();
    println!(
        "`git clone --bare` of the synthetic repository ({commits} commits, {pack_mb:.0} MB pack), \
         {runs} runs each, alternating, same machine, same run:"
    );
    println!();
    println!("| served by | median ms | min ms | max ms | ratio |");
    println!("|---|---|---|---|---|");
    for (name, samples, median) in [
        ("`git http-backend` (CGI)", &cgi, cgi_median),
        ("mirrorhub", &ours, our_median),
    ] {
        println!(
            "| {name} | {} | {} | {} | {:.2}x |",
            ms(median),
            ms(*samples.iter().min().unwrap()),
            ms(*samples.iter().max().unwrap()),
            median.as_secs_f64() / cgi_median.as_secs_f64()
        );
    }
    println!();
    println!(
        "Hub memory: RSS {rss_before:.0} MB before the clones, {rss_after:.0} MB after, peak {peak:.0} MB over its life \
         (the pack is streamed; target: within 1.10x of http-backend)."
    );
    hub.stop();
}

//! The Git LFS benchmark: a repository with many LFS objects mirrored by the hub against
//! `git clone --mirror` + `git lfs fetch --all` of the same upstream, a `git clone` (smudge
//! filter, files checked out) from the hub against the same clone from the upstream, both in
//! the same run, alternating; and the hub's memory while a client downloads one large object.
//!
//! `cargo bench --bench lfs`. Knobs: `MIRRORHUB_BENCH_LFS_OBJECTS` (default 200),
//! `MIRRORHUB_BENCH_LFS_TOTAL_MB` (their total size, default 1024), `MIRRORHUB_BENCH_LFS_BIG_MB`
//! (the single large object, default 1024), `MIRRORHUB_BENCH_LFS_RUNS` (runs per side, default
//! 3), `MIRRORHUB_BENCH_HUB_ENV` (more environment for the hub). The upstreams (bare
//! repositories of pointer files, and the objects) are generated once under
//! `target/bench-data/lfs/` and reused; each run serves them with a git server
//! (`git http-backend`) behind the testkit's LFS server, one origin for git and LFS.
//!
//! Every side is checked, so a fast wrong answer fails: every object present in the hub's
//! store (and in the git-lfs mirror) with the right SHA-256 and size; every file of a clone
//! byte-equal to its object.
//!
//! Targets (issue 15, "How fast"): mirroring within 1.0x of git-lfs, cloning from the hub
//! within 1.1x of cloning from the upstream, the hub's RSS under 64 MB while it serves a 1 GB
//! object.

mod support;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mirrorhub_testkit::{HttpGitServer, LfsHome, LfsOptions, LfsServer};
use rand::{RngCore, SeedableRng};
use sha2::{Digest, Sha256};
use support::{env_number, extra_hub_env, load_average, status_mb, HubProcess, ADMIN_TOKEN};

/// How long one mirror or clone may take before the bench gives up.
const DEADLINE: Duration = Duration::from_secs(1800);
const MB: u64 = 1024 * 1024;

fn main() {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
        .block_on(run());
}

// ---- the upstream data --------------------------------------------------------------------

/// One LFS file of an upstream: its path in the work tree and its object.
#[derive(Clone)]
struct LfsFile {
    path: String,
    oid: String,
    size: u64,
}

/// An upstream repository under the bench data's git root, and where its objects are.
struct Generated {
    /// `name.git` under the git root.
    repo: String,
    objects: PathBuf,
    files: Vec<LfsFile>,
}

impl Generated {
    fn object(&self, oid: &str) -> PathBuf {
        self.objects.join(oid)
    }

    fn total_bytes(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }
}

/// Writes `size` pseudo-random (incompressible) bytes, deterministic in `seed`, to `path`;
/// returns their SHA-256 (hex).
fn write_noise(path: &Path, size: u64, seed: u64) -> String {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut out = std::io::BufWriter::with_capacity(
        MB as usize,
        std::fs::File::create(path).unwrap_or_else(|e| panic!("create {}: {e}", path.display())),
    );
    let mut hash = Sha256::new();
    let mut buf = vec![0u8; MB as usize];
    let mut left = size;
    while left > 0 {
        let n = left.min(MB) as usize;
        rng.fill_bytes(&mut buf[..n]);
        hash.update(&buf[..n]);
        out.write_all(&buf[..n]).expect("write object");
        left -= n as u64;
    }
    out.flush().expect("flush object");
    hex::encode(hash.finalize())
}

/// SHA-256 (hex) and size of a file, streaming.
fn sha256_file(path: &Path) -> (String, u64) {
    let mut file =
        std::fs::File::open(path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    let mut hash = Sha256::new();
    let mut buf = vec![0u8; MB as usize];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buf).expect("read");
        if n == 0 {
            break;
        }
        hash.update(&buf[..n]);
        size += n as u64;
    }
    (hex::encode(hash.finalize()), size)
}

/// The upstream `name.git` under `root` with `count` LFS files of `total` bytes in all (one
/// commit on `main`: `.gitattributes`, a README, `data/obj-NNNN.bin` pointers), generated once:
/// its manifest, written last, marks it complete.
fn generate(root: &Path, name: &str, count: usize, total: u64, seed: u64) -> Generated {
    let repo = format!("{name}.git");
    let objects = root.join(format!("{name}.objects"));
    let manifest = root.join(format!("{name}.manifest"));
    if let Ok(text) = std::fs::read_to_string(&manifest) {
        let files = text
            .lines()
            .map(|line| {
                let mut f = line.split(' ');
                LfsFile {
                    path: f.next().unwrap().to_owned(),
                    oid: f.next().unwrap().to_owned(),
                    size: f.next().unwrap().parse().unwrap(),
                }
            })
            .collect();
        return Generated {
            repo,
            objects,
            files,
        };
    }
    eprintln!(
        "generating {name}: {count} LFS objects, {} MB in all…",
        total / MB
    );
    for dir in [
        root.join(&repo),
        objects.clone(),
        root.join(format!("{name}.work")),
    ] {
        let _ = std::fs::remove_dir_all(&dir);
    }
    std::fs::create_dir_all(&objects).expect("create objects dir");
    let work = root.join(format!("{name}.work"));
    std::fs::create_dir_all(work.join("data")).expect("create work dir");
    let each = total / count as u64;
    let mut files = Vec::with_capacity(count);
    for i in 0..count {
        let size = if i + 1 == count {
            total - each * (count as u64 - 1)
        } else {
            each
        };
        let tmp = objects.join("incoming");
        let oid = write_noise(&tmp, size, seed.wrapping_mul(1_000_003) + i as u64);
        std::fs::rename(&tmp, objects.join(&oid)).expect("name the object");
        let path = format!("data/obj-{i:04}.bin");
        std::fs::write(
            work.join(&path),
            format!("version https://git-lfs.github.com/spec/v1\noid sha256:{oid}\nsize {size}\n"),
        )
        .expect("write pointer");
        files.push(LfsFile { path, oid, size });
    }
    std::fs::write(
        work.join(".gitattributes"),
        "*.bin filter=lfs diff=lfs merge=lfs -text\n",
    )
    .unwrap();
    std::fs::write(
        work.join("README.md"),
        format!("{count} LFS objects, {total} bytes\n"),
    )
    .unwrap();
    // Plain git, no LFS filter: the pointer files are committed as they are.
    let git = |args: &[&str]| mirrorhub_testkit::git(&work, args);
    git(&["init", "--quiet", "--initial-branch=main"]);
    git(&["add", "--all"]);
    git(&[
        "-c",
        "user.name=bench",
        "-c",
        "user.email=bench@example.org",
        "commit",
        "--quiet",
        "-m",
        "LFS objects",
    ]);
    mirrorhub_testkit::git(
        root,
        [
            "clone",
            "--quiet",
            "--bare",
            work.to_str().unwrap(),
            root.join(&repo).to_str().unwrap(),
        ],
    );
    std::fs::remove_dir_all(&work).expect("remove work dir");
    let text: String = files
        .iter()
        .map(|f| format!("{} {} {}\n", f.path, f.oid, f.size))
        .collect();
    std::fs::write(&manifest, text).expect("write manifest");
    Generated {
        repo,
        objects,
        files,
    }
}

// ---- checks -------------------------------------------------------------------------------

/// Every object of `files` at `path_of(oid)`, with its size and SHA-256.
fn check_objects(side: &str, files: &[LfsFile], path_of: impl Fn(&str) -> PathBuf) {
    for f in files {
        let path = path_of(&f.oid);
        assert!(path.is_file(), "{side}: object {} is missing", f.oid);
        let (oid, size) = sha256_file(&path);
        assert_eq!(
            (oid.as_str(), size),
            (f.oid.as_str(), f.size),
            "{side}: object {} is wrong",
            f.oid
        );
    }
}

/// `<repo>/lfs/objects/aa/bb/<oid>`: where git-lfs (and the hub's store) keep an object.
fn lfs_object_path(lfs_dir: &Path, oid: &str) -> PathBuf {
    lfs_dir
        .join("objects")
        .join(&oid[0..2])
        .join(&oid[2..4])
        .join(oid)
}

// ---- git and the hub ----------------------------------------------------------------------

/// Runs git with git-lfs's filters (`home`) in `dir`; returns how long it took. Panics with
/// git's stderr if it fails.
async fn lfs_git(home: &LfsHome, dir: &Path, args: &[&str]) -> Duration {
    let mut cmd = home.command(dir);
    cmd.args(args)
        .env("GIT_TERMINAL_PROMPT", "0")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    let mut cmd = tokio::process::Command::from(cmd);
    cmd.kill_on_drop(true);
    let started = Instant::now();
    let output = tokio::time::timeout(DEADLINE, cmd.output())
        .await
        .unwrap_or_else(|_| panic!("git {args:?} took more than {DEADLINE:?}"))
        .expect("run git");
    let took = started.elapsed();
    assert!(
        output.status.success(),
        "git {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    took
}

fn start_hub(dir: &Path) -> HubProcess {
    let mut env = vec![("MIRRORHUB_ALLOWED_HOSTS".to_owned(), "127.0.0.1".to_owned())];
    env.extend(extra_hub_env());
    HubProcess::start(&dir.join("hub"), &dir.join("hub.log"), env)
}

/// Creates the public mirror `bench/{name}` of `url` and waits until it is ready with all
/// `objects` LFS objects on the hub (none missing); returns the time from the request to that.
async fn mirror_on_hub(
    client: &reqwest::Client,
    hub: &HubProcess,
    url: &str,
    name: &str,
    objects: usize,
    bytes: u64,
) -> Duration {
    let started = Instant::now();
    let created = client
        .post(format!("{}/api/v1/repos", hub.base))
        .bearer_auth(ADMIN_TOKEN)
        .json(&serde_json::json!({"url": url, "owner": "bench", "name": name, "mode": "mirror", "visibility": "public"}))
        .send()
        .await
        .expect("create the mirror");
    assert_eq!(
        created.status().as_u16(),
        202,
        "{}",
        created.text().await.unwrap_or_default()
    );
    loop {
        let repo: serde_json::Value = client
            .get(format!("{}/api/v1/repos/bench/{name}", hub.base))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .expect("the repository")
            .json()
            .await
            .expect("JSON");
        let lfs = &repo["lfs"];
        if repo["state"] == "ready"
            && lfs["missing"] == 0
            && lfs["objects"].as_u64() == Some(objects as u64)
        {
            let took = started.elapsed();
            assert_eq!(lfs["bytes"].as_u64(), Some(bytes), "{repo}");
            assert!(lfs["last_error"].is_null(), "{repo}");
            return took;
        }
        assert!(
            repo["state"] != "failed" && lfs["last_error"].is_null(),
            "the hub's mirror of {name} failed: {repo}\n{}",
            hub.log_text()
        );
        assert!(
            started.elapsed() < DEADLINE,
            "the hub's mirror of {name} did not finish in {DEADLINE:?}: {repo}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The peak resident memory of `pid` while `work` runs, in MB: the kernel's high-water mark
/// (VmHWM) reset just before (`/proc/<pid>/clear_refs`), and VmRSS sampled every 10 ms beside
/// it, whichever is higher (the reset needs Linux 4.0 and the right to write the file).
async fn peak_rss_during<F: std::future::Future>(pid: u32, work: F) -> (F::Output, f64) {
    let reset = std::fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok();
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let done = Arc::clone(&done);
        std::thread::spawn(move || {
            let mut peak = 0.0f64;
            while !done.load(Ordering::Relaxed) {
                peak = peak.max(status_mb(pid, "VmRSS:"));
                std::thread::sleep(Duration::from_millis(10));
            }
            peak
        })
    };
    let out = work.await;
    done.store(true, Ordering::Relaxed);
    let sampled = sampler.join().expect("RSS sampler");
    let hwm = if reset { status_mb(pid, "VmHWM:") } else { 0.0 };
    (out, sampled.max(hwm))
}

// ---- figures ------------------------------------------------------------------------------

fn median(samples: &[Duration]) -> Duration {
    let mut sorted = samples.to_vec();
    sorted.sort();
    sorted[sorted.len() / 2]
}

fn secs(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64())
}

fn print_row(what: &str, base_name: &str, base: &[Duration], ours: &[Duration], target: f64) {
    let ratio = median(ours).as_secs_f64() / median(base).as_secs_f64();
    for (name, samples, ratio_text) in [
        (base_name, base, "1.00x".to_owned()),
        (
            "mirrorhub",
            ours,
            format!(
                "**{ratio:.2}x** ({} target ≤ {target:.1}x)",
                if ratio <= target { "meets" } else { "misses" }
            ),
        ),
    ] {
        println!(
            "| {what} | {name} | {} | {} | {} | {ratio_text} |",
            secs(median(samples)),
            secs(*samples.iter().min().unwrap()),
            secs(*samples.iter().max().unwrap()),
        );
    }
}

// ---- the bench ----------------------------------------------------------------------------

async fn run() {
    let count = env_number("MIRRORHUB_BENCH_LFS_OBJECTS", 200).max(1);
    let total_mb = env_number("MIRRORHUB_BENCH_LFS_TOTAL_MB", 1024).max(1) as u64;
    let big_mb = env_number("MIRRORHUB_BENCH_LFS_BIG_MB", 1024).max(1) as u64;
    let runs = env_number("MIRRORHUB_BENCH_LFS_RUNS", 3).max(1);
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-data");
    let root = data.join("lfs");
    std::fs::create_dir_all(&root).expect("create bench data dir");

    let (many, big) = {
        let root = root.clone();
        tokio::task::spawn_blocking(move || {
            (
                generate(
                    &root,
                    &format!("up-{count}x-{total_mb}mb"),
                    count,
                    total_mb * MB,
                    1,
                ),
                generate(&root, &format!("big-{big_mb}mb"), 1, big_mb * MB, 2),
            )
        })
        .await
        .expect("generate the upstreams")
    };

    // One origin for git and LFS: the LFS server forwards git's requests to http-backend.
    let git_server = HttpGitServer::start(&root, None).await;
    let lfs_server = LfsServer::start(LfsOptions {
        auth: None,
        forward_git_to: Some(git_server.url("")),
        separate_storage: false,
    })
    .await;
    for upstream in [&many, &big] {
        for f in &upstream.files {
            let (oid, _) = lfs_server.insert_file(&upstream.object(&f.oid));
            assert_eq!(oid, f.oid, "the generated object {} changed", f.oid);
        }
    }
    let many_url = format!("{}/{}", lfs_server.url(), many.repo);
    let big_url = format!("{}/{}", lfs_server.url(), big.repo);
    let home = LfsHome::new();
    let client = reqwest::Client::new();
    let work = tempfile::Builder::new()
        .prefix("lfs-")
        .tempdir_in(&data)
        .expect("work dir");
    let load_before = load_average();

    // Row 1: the first copy, every LFS object included.
    let (mut git_lfs, mut ours) = (Vec::new(), Vec::new());
    let mut last_hub: Option<HubDir> = None;
    for n in 0..runs {
        let dest = work.path().join(format!("mirror-{n}.git"));
        let dest_str = dest.to_str().unwrap();
        let took = lfs_git(
            &home,
            work.path(),
            &["clone", "--quiet", "--mirror", &many_url, dest_str],
        )
        .await
            + lfs_git(&home, &dest, &["lfs", "fetch", "--all"]).await;
        let files = many.files.clone();
        let lfs_dir = dest.join("lfs");
        tokio::task::spawn_blocking(move || {
            check_objects("git lfs fetch --all", &files, |oid| {
                lfs_object_path(&lfs_dir, oid)
            })
        })
        .await
        .expect("check");
        std::fs::remove_dir_all(&dest).expect("remove the mirror");
        eprintln!("mirror {n} git-lfs: {} s", secs(took));
        git_lfs.push(took);

        // The previous hub (and its copy) goes before this one starts.
        if let Some(old) = last_hub.take() {
            old.stop();
        }
        let dir = work.path().join(format!("hub-{n}"));
        std::fs::create_dir_all(&dir).expect("hub dir");
        let hub = start_hub(&dir);
        let took = mirror_on_hub(
            &client,
            &hub,
            &many_url,
            "lfs",
            many.files.len(),
            many.total_bytes(),
        )
        .await;
        let files = many.files.clone();
        let lfs_dir = dir.join("hub/lfs");
        tokio::task::spawn_blocking(move || {
            check_objects("mirrorhub", &files, |oid| lfs_object_path(&lfs_dir, oid))
        })
        .await
        .expect("check");
        eprintln!("mirror {n} hub: {} s", secs(took));
        ours.push(took);
        last_hub = Some(HubDir { hub, dir });
    }
    let hub = last_hub.expect("a hub");
    let hub_url = format!("{}/bench/lfs.git", hub.hub.base);

    // Row 2: a clone with the smudge filter, files checked out.
    let (mut upstream_clones, mut hub_clones) = (Vec::new(), Vec::new());
    for n in 0..runs {
        for (url, samples, side) in [
            (&many_url, &mut upstream_clones, "upstream"),
            (&hub_url, &mut hub_clones, "hub"),
        ] {
            let dest = work.path().join(format!("clone-{side}-{n}"));
            let took = lfs_git(
                &home,
                work.path(),
                &["clone", "--quiet", url, dest.to_str().unwrap()],
            )
            .await;
            let files = many.files.clone();
            let checked = dest.clone();
            tokio::task::spawn_blocking(move || {
                check_objects(&format!("clone from the {side}"), &files, |oid| {
                    let f = files.iter().find(|f| f.oid == oid).unwrap();
                    checked.join(&f.path)
                })
            })
            .await
            .expect("check");
            std::fs::remove_dir_all(&dest).expect("remove the clone");
            eprintln!("clone {n} {side}: {} s", secs(took));
            samples.push(took);
        }
    }

    // Row 3: the hub's memory while it fetches, then serves, one large object.
    let pid = hub.hub.pid();
    let (fetch_took, fetch_peak) = peak_rss_during(
        pid,
        mirror_on_hub(&client, &hub.hub, &big_url, "big", 1, big.total_bytes()),
    )
    .await;
    let big_files = big.files.clone();
    let lfs_dir = hub.dir.join("hub/lfs");
    tokio::task::spawn_blocking(move || {
        check_objects("mirrorhub (large object)", &big_files, |oid| {
            lfs_object_path(&lfs_dir, oid)
        })
    })
    .await
    .expect("check");
    let dest = work.path().join("clone-big");
    let big_hub_url = format!("{}/bench/big.git", hub.hub.base);
    let (serve_took, serve_peak) = peak_rss_during(
        pid,
        lfs_git(
            &home,
            work.path(),
            &["clone", "--quiet", &big_hub_url, dest.to_str().unwrap()],
        ),
    )
    .await;
    let big_files = big.files.clone();
    let checked = dest.clone();
    tokio::task::spawn_blocking(move || {
        check_objects("clone of the large object", &big_files, |_| {
            checked.join(&big_files[0].path)
        })
    })
    .await
    .expect("check");
    std::fs::remove_dir_all(&dest).expect("remove the clone");
    let rss_after = status_mb(pid, "VmRSS:");
    let load_after = load_average();
    hub.stop();

    println!();
    println!(
        "Git LFS: a repository of {count} LFS objects ({} MB in all) and one of a single \
         {big_mb} MB object, served by `git http-backend` behind the testkit's LFS server on \
         127.0.0.1; {runs} runs per side, alternating, same run; seconds. Load average {load_before} \
         before, {load_after} after.",
        many.total_bytes() / MB
    );
    println!();
    println!("| row | side | median s | min s | max s | ratio |");
    println!("|---|---|---|---|---|---|");
    print_row(
        "mirror (first copy with every LFS object)",
        "`git clone --mirror` + `git lfs fetch --all`",
        &git_lfs,
        &ours,
        1.0,
    );
    print_row(
        "`git clone` with git-lfs (files checked out)",
        "from the upstream",
        &upstream_clones,
        &hub_clones,
        1.1,
    );
    println!();
    println!(
        "Hub memory: peak RSS {serve_peak:.0} MB while a `git clone` downloaded the {big_mb} MB \
         object from it in {} s ({} target < 64 MB); peak {fetch_peak:.0} MB while it mirrored \
         that object in {} s; {rss_after:.0} MB after.",
        secs(serve_took),
        if serve_peak < 64.0 { "meets" } else { "misses" },
        secs(fetch_took),
    );
}

/// A hub and the directory that holds its data and log.
struct HubDir {
    hub: HubProcess,
    dir: PathBuf,
}

impl HubDir {
    /// Kills the hub and removes its data.
    fn stop(self) {
        self.hub.stop();
        std::fs::remove_dir_all(&self.dir).expect("remove the hub's data");
    }
}

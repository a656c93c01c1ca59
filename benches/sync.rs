//! The sync benchmark: mirrorhub's engine against the git command line, side by side, on a
//! large synthetic upstream served by real git servers on 127.0.0.1: `git http-backend`,
//! `git daemon`, and OpenSSH's `sshd` (ssh://, with a key and a known_hosts file on both sides).
//!
//! `cargo bench --bench sync`. Knobs: `MIRRORHUB_BENCH_COMMITS` (default 100000),
//! `MIRRORHUB_BENCH_RUNS` (measured runs per sync scenario, default 7),
//! `MIRRORHUB_BENCH_CLONE_RUNS` (per initial clone, default 5), `MIRRORHUB_BENCH_TRANSPORTS`
//! (which of `http,git,ssh` to measure, default all). The upstream is generated once under
//! `target/bench-data/` and reused by later runs.
//!
//! Every scenario starts both tools from identical state: each syncs its own fresh copy of a
//! mirror it cloned itself, against the same upstream change, which is undone afterwards. After
//! every run both mirrors must list exactly the upstream's branches and tags, and the objects
//! they fetched must be complete: a fast wrong answer fails the benchmark.

mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use mirrorhub_testkit::{
    add_commit, delete_branch, delete_tag, for_each_ref, git, git_with_stdin, rewrite_branch,
    synthetic_upstream, GitDaemon, HttpGitServer, RefSnapshot, Spec, SshKeyPair, SshServer,
    Synthetic,
};
use support::git_cli;

const REPO: &str = "synthetic.git";

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(run());
}

fn env_number(name: &str, default: usize) -> usize {
    match std::env::var(name) {
        Ok(value) => value
            .parse()
            .unwrap_or_else(|_| panic!("{name}={value}: not a number")),
        Err(_) => default,
    }
}

/// Runs blocking work (git plumbing, file copies) off the runtime that serves HTTP.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f).await.expect("blocking task")
}

struct Row {
    scenario: &'static str,
    transport: &'static str,
    git: Vec<Duration>,
    engine: Vec<Duration>,
}

fn median(samples: &[Duration]) -> Duration {
    let mut sorted = samples.to_vec();
    sorted.sort();
    let n = sorted.len();
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2
    }
}

fn ms(d: Duration) -> String {
    format!("{:.0}", d.as_secs_f64() * 1000.0)
}

async fn run() {
    let commits = env_number("MIRRORHUB_BENCH_COMMITS", 100_000);
    let sync_runs = env_number("MIRRORHUB_BENCH_RUNS", 7).max(1);
    let clone_runs = env_number("MIRRORHUB_BENCH_CLONE_RUNS", 5).max(1);

    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-data");
    let served = data.join(format!("upstream-{commits}"));
    std::fs::create_dir_all(&served).expect("create bench data dir");
    eprintln!(
        "upstream: {commits} commits under {} (generated once, then reused)",
        served.display()
    );
    let started = Instant::now();
    let upstream = {
        let path = served.join(REPO);
        blocking(move || synthetic_upstream(&path, Spec::with_commits(commits))).await
    };
    let upstream_refs = upstream.ref_count();
    let pack_mb = upstream.pack_bytes() as f64 / (1024.0 * 1024.0);
    eprintln!(
        "upstream {} in {:.1} s",
        if upstream.reused {
            "reused"
        } else {
            "generated"
        },
        started.elapsed().as_secs_f64()
    );

    let transports =
        std::env::var("MIRRORHUB_BENCH_TRANSPORTS").unwrap_or_else(|_| "http,git,ssh".to_owned());
    let wanted = |name: &str| transports.split(',').any(|t| t.trim() == name);
    let daemon = GitDaemon::start(&served).await;
    let http = HttpGitServer::start(&served, None).await;
    let engine = engine::Engine::start().await;
    let work = tempfile::Builder::new()
        .prefix("run-")
        .tempdir_in(&data)
        .expect("work dir");
    // sshd only when ssh:// is measured, so the other rows need no openssh-server.
    let sshd = if wanted("ssh") {
        Some(SshServer::start(&served).await)
    } else {
        None
    };
    // Both tools log in to sshd with the same key and trust only its host key, from files.
    let ssh = sshd.as_ref().map(|sshd| {
        let key = SshKeyPair::generate("mirrorhub-bench");
        sshd.authorize(&key.public_key);
        SshLogin::new(key, sshd, work.path())
    });

    let mut rows = Vec::new();
    for (transport, dir, url) in [
        ("http", "http", Some(http.url(REPO))),
        ("git://", "git", Some(daemon.url(REPO))),
        ("ssh", "ssh", sshd.as_ref().map(|sshd| sshd.url(REPO))),
    ] {
        let Some(url) = url.filter(|_| wanted(dir)) else {
            continue;
        };
        let work = work.path().join(dir);
        let bench = Bench {
            upstream: &upstream,
            url,
            transport,
            work,
            engine: &engine,
            ssh: ssh.as_ref().filter(|_| dir == "ssh"),
        };
        std::fs::create_dir_all(&bench.work).expect("create work dir");
        rows.extend(bench.run_all(clone_runs, sync_runs).await);
    }

    println!();
    println!(
        "Upstream: {} commits, {} refs (branches + tags), pack {:.1} MB; git {}; {} runs per sync, {} per clone (median)",
        upstream.commit_count(),
        upstream_refs,
        pack_mb,
        git(&data, ["--version"]).trim().trim_start_matches("git version "),
        sync_runs,
        clone_runs
    );
    println!();
    println!("| scenario | transport | git CLI (ms) | mirrorhub (ms) | ratio |");
    println!("|---|---|---|---|---|");
    for row in &rows {
        let (g, e) = (median(&row.git), median(&row.engine));
        println!(
            "| {} | {} | {} | {} | {:.2}x |",
            row.scenario,
            row.transport,
            ms(g),
            ms(e),
            e.as_secs_f64() / g.as_secs_f64()
        );
    }
    println!();
    println!("Samples (ms), git CLI / mirrorhub:");
    for row in &rows {
        let list =
            |samples: &[Duration]| samples.iter().map(|d| ms(*d)).collect::<Vec<_>>().join(" ");
        println!(
            "- {} ({}): {} / {}",
            row.scenario,
            row.transport,
            list(&row.git),
            list(&row.engine)
        );
    }
}

/// One transport's scenarios.
struct Bench<'a> {
    upstream: &'a Synthetic,
    url: String,
    transport: &'static str,
    work: PathBuf,
    engine: &'a engine::Engine,
    /// For ssh://: the key and pinned host key both tools use.
    ssh: Option<&'a SshLogin>,
}

/// How both tools reach the bench's sshd: the same private key, the same single host key.
pub struct SshLogin {
    /// The private key, for the hub's engine (which writes it to a 0600 file per run).
    key: secrecy::SecretString,
    /// The server's host key, pinned for the engine.
    known_hosts: Vec<mirrorhub_core::HostKey>,
    /// `core.sshCommand=…` for the git CLI: that key, a known_hosts file with that host key,
    /// strict checking, no user config, no agent, as the hub runs ssh.
    git_ssh_config: String,
    /// The key's file, which the git CLI reads at every run: removed when this drops.
    _key_file: SshKeyPair,
}

impl SshLogin {
    fn new(key: SshKeyPair, sshd: &SshServer, dir: &Path) -> Self {
        let known_hosts_file = dir.join("known_hosts");
        std::fs::write(&known_hosts_file, format!("{}\n", sshd.known_hosts_line()))
            .expect("write known_hosts");
        let (url, _) =
            mirrorhub_core::UpstreamUrl::parse(&sshd.url(REPO)).expect("the sshd URL parses");
        let known_hosts = mirrorhub_core::parse_known_hosts(&sshd.known_hosts_line(), &url)
            .expect("the host key parses");
        SshLogin {
            key: secrecy::SecretString::from(key.private_key.clone()),
            known_hosts,
            git_ssh_config: format!(
                "core.sshCommand=ssh -F /dev/null -i {} -o IdentitiesOnly=yes -o IdentityAgent=none \
                 -o BatchMode=yes -o StrictHostKeyChecking=yes -o UserKnownHostsFile={} \
                 -o GlobalKnownHostsFile=/dev/null",
                path_str(key.path()),
                path_str(&known_hosts_file)
            ),
            _key_file: key,
        }
    }

    fn access(&self) -> mirrorhub_git::SshAccess<'_> {
        mirrorhub_git::SshAccess {
            key: Some(&self.key),
            known_hosts: &self.known_hosts,
        }
    }
}

/// A change made to the upstream before a measured sync (and undone after it).
type Mutation = fn(&Synthetic);

impl Bench<'_> {
    async fn run_all(&self, clone_runs: usize, sync_runs: usize) -> Vec<Row> {
        let (clone_row, git_base, engine_base) = self.initial_clone(clone_runs).await;
        let mut rows = vec![clone_row];
        let scenarios: [(&'static str, Mutation); 3] = [
            ("no-op sync", |_| {}),
            ("sync after 1 new commit", |up| {
                add_commit(&up.path, Synthetic::MAIN, "benchmark: one more commit");
            }),
            (
                "sync after force-push + deleted branch + deleted tag",
                |up| {
                    rewrite_branch(
                        &up.path,
                        &up.branches_with_commits()[1],
                        "benchmark: rewritten history",
                    );
                    delete_branch(&up.path, &up.branches_with_commits()[2]);
                    delete_tag(&up.path, &up.annotated_tags()[10]);
                },
            ),
        ];
        for (scenario, mutation) in scenarios {
            rows.push(
                self.sync_scenario(scenario, mutation, &git_base, &engine_base, sync_runs)
                    .await,
            );
        }
        rows
    }

    /// Times both full mirror clones; returns the row and each tool's last mirror, kept as the
    /// starting point of the sync scenarios.
    async fn initial_clone(&self, runs: usize) -> (Row, PathBuf, PathBuf) {
        let expected = for_each_ref(&self.upstream.path);
        let mut row = Row {
            scenario: "initial mirror clone",
            transport: self.transport,
            git: vec![],
            engine: vec![],
        };
        let git_base = self.work.join("base-git.git");
        let engine_base = self.work.join("base-engine.git");
        for run in 0..runs {
            for dest in [&git_base, &engine_base] {
                if dest.exists() {
                    std::fs::remove_dir_all(dest).expect("remove previous clone");
                }
            }
            // Alternate who goes first, so neither always gets the warmer caches.
            for engine_turn in if run % 2 == 0 {
                [false, true]
            } else {
                [true, false]
            } {
                if engine_turn {
                    let took = self
                        .engine
                        .clone_mirror(&self.url, self.ssh, &engine_base)
                        .await;
                    check_mirror("mirrorhub", &engine_base, &expected);
                    row.engine.push(took);
                } else {
                    let took = git_cli(
                        &self.work,
                        &self.git_args(&[
                            "clone",
                            "--mirror",
                            "--quiet",
                            &self.url,
                            path_str(&git_base),
                        ]),
                    )
                    .await;
                    check_mirror("git CLI", &git_base, &expected);
                    row.git.push(took);
                }
            }
            eprintln!(
                "{} {}: run {}: git {} ms, mirrorhub {} ms",
                row.scenario,
                self.transport,
                run + 1,
                ms(row.git[run]),
                ms(row.engine[run])
            );
        }
        // The hub indexes a mirror after its first copy, once it is ready to serve: the syncs
        // below start from a mirror as the hub keeps it.
        let took = self.engine.housekeeping(&engine_base).await;
        eprintln!(
            "housekeeping after the first copy ({}): {} ms (commit-graph and bitmaps, after the clone)",
            self.transport,
            ms(took)
        );
        // Once per tool: every object reachable from every ref is there.
        for base in [&git_base, &engine_base] {
            let base = base.clone();
            blocking(move || git(&base, ["rev-list", "--objects", "--all", "--quiet"])).await;
        }
        (row, git_base, engine_base)
    }

    async fn sync_scenario(
        &self,
        scenario: &'static str,
        mutation: Mutation,
        git_base: &Path,
        engine_base: &Path,
        runs: usize,
    ) -> Row {
        let mut row = Row {
            scenario,
            transport: self.transport,
            git: vec![],
            engine: vec![],
        };
        let snapshot = RefSnapshot::take(&self.upstream.path);
        let base_tips: Vec<String> = RefSnapshot::take(git_base)
            .refs()
            .values()
            .cloned()
            .collect();
        let git_mirror = self.work.join("sync-git.git");
        let engine_mirror = self.work.join("sync-engine.git");
        for run in 0..runs {
            copy_dir(git_base, &git_mirror).await;
            copy_dir(engine_base, &engine_mirror).await;
            let upstream = self.upstream.clone();
            let expected = blocking(move || {
                mutation(&upstream);
                for_each_ref(&upstream.path)
            })
            .await;

            for engine_turn in if run % 2 == 0 {
                [false, true]
            } else {
                [true, false]
            } {
                if engine_turn {
                    let took = self
                        .engine
                        .sync_mirror(&self.url, self.ssh, &engine_mirror)
                        .await;
                    check_mirror("mirrorhub", &engine_mirror, &expected);
                    check_fetched(&engine_mirror, &base_tips);
                    row.engine.push(took);
                } else {
                    let took = git_cli(
                        &git_mirror,
                        &self.git_args(&[
                            "fetch",
                            "--prune",
                            &self.url,
                            "+refs/heads/*:refs/heads/*",
                            "+refs/tags/*:refs/tags/*",
                        ]),
                    )
                    .await;
                    check_mirror("git CLI", &git_mirror, &expected);
                    check_fetched(&git_mirror, &base_tips);
                    row.git.push(took);
                }
            }

            snapshot.restore(&self.upstream.path);
            for dir in [&git_mirror, &engine_mirror] {
                std::fs::remove_dir_all(dir).expect("remove sync copy");
            }
        }
        eprintln!(
            "{scenario} {}: git {} ms, mirrorhub {} ms (medians of {runs})",
            self.transport,
            ms(median(&row.git)),
            ms(median(&row.engine))
        );
        row
    }
}

impl Bench<'_> {
    /// The git CLI's arguments: over ssh, with the same key and known_hosts as the engine.
    fn git_args<'a>(&'a self, args: &[&'a str]) -> Vec<&'a str> {
        let mut all = Vec::new();
        if let Some(ssh) = self.ssh {
            all.extend(["-c", ssh.git_ssh_config.as_str()]);
        }
        all.extend_from_slice(args);
        all
    }
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("UTF-8 path")
}

/// The mirror lists exactly the upstream's branches and tags (reading each object's type, so a
/// missing tip fails too).
fn check_mirror(tool: &str, mirror: &Path, expected: &str) {
    let found = for_each_ref(mirror);
    if found != expected {
        let missing: Vec<&str> = expected.lines().filter(|l| !found.contains(l)).collect();
        let extra: Vec<&str> = found.lines().filter(|l| !expected.contains(l)).collect();
        panic!(
            "{tool}'s mirror {} differs from the upstream:\nmissing {missing:?}\nextra {extra:?}",
            mirror.display()
        );
    }
}

/// Every object reachable from the mirror's refs but not from the refs it started from is in it.
fn check_fetched(mirror: &Path, base_tips: &[String]) {
    let exclude: String = base_tips.iter().map(|tip| format!("^{tip}\n")).collect();
    git_with_stdin(
        mirror,
        ["rev-list", "--objects", "--quiet", "--all", "--stdin"],
        exclude.as_bytes(),
    );
}

async fn copy_dir(from: &Path, to: &Path) {
    let status = tokio::process::Command::new("cp")
        .args(["-a", "--reflink=auto"])
        .arg(from)
        .arg(to)
        .status()
        .await
        .expect("run cp");
    assert!(
        status.success(),
        "cp -a {} {} failed",
        from.display(),
        to.display()
    );
}

/// mirrorhub's sync engine, as the hub's workers call it.
mod engine {
    use std::path::Path;
    use std::time::{Duration, Instant};

    use mirrorhub_core::{AddressPolicy, Credentials, UpstreamUrl};
    use mirrorhub_git::{no_progress, Auth, CopyEngine, EngineConfig, GitEngine};

    use super::SshLogin;

    pub struct Engine(GitEngine);

    fn parse(url: &str) -> (UpstreamUrl, Option<Credentials>) {
        UpstreamUrl::parse(url).unwrap_or_else(|e| panic!("{url}: {e:?}"))
    }

    impl Engine {
        pub async fn start() -> Self {
            let config = EngineConfig {
                git_program: "git".into(),
                // The test servers are on loopback, refused by default.
                policy: AddressPolicy::parse_list("127.0.0.1").expect("policy"),
                timeout: Duration::from_secs(30 * 60),
                probe_timeout: Duration::from_secs(60),
                low_speed_limit: 1000,
                low_speed_time: Duration::from_secs(60),
                first_copy: CopyEngine::Gix,
                ssh_program: "ssh".into(),
                ssh_connection_reuse: Duration::from_secs(60),
            };
            Engine(GitEngine::start(config).await.expect("start the engine"))
        }

        fn auth<'a>(creds: &'a Option<Credentials>, ssh: Option<&'a SshLogin>) -> Auth<'a> {
            match ssh {
                Some(login) => Auth::from(login.access()),
                None => Auth::from(creds.as_ref()),
            }
        }

        pub async fn clone_mirror(
            &self,
            url: &str,
            ssh: Option<&SshLogin>,
            dest: &Path,
        ) -> Duration {
            let (url, creds) = parse(url);
            let started = Instant::now();
            let report = self
                .0
                .clone_mirror(&url, Self::auth(&creds, ssh), dest, no_progress())
                .await
                .unwrap_or_else(|e| panic!("mirrorhub clone of {url} failed: {e:?}"));
            let took = started.elapsed();
            // The row is about the hub's first-copy engine, not its fallback. Over ssh the
            // hub always copies with git clone (ssh runs as git runs it: pinned keys, the
            // checked address).
            let expected = if ssh.is_some() {
                CopyEngine::Git
            } else {
                CopyEngine::Gix
            };
            assert_eq!(
                report.engine, expected,
                "the engine that made the copy of {url}"
            );
            took
        }

        /// What the hub does after a first copy, once the mirror is ready (not part of the
        /// clone's time): commit-graph and reachability bitmaps.
        pub async fn housekeeping(&self, repo: &Path) -> Duration {
            let started = Instant::now();
            self.0
                .write_commit_graph(repo)
                .await
                .expect("write the commit-graph");
            self.0.write_bitmaps(repo).await.expect("write bitmaps");
            started.elapsed()
        }

        pub async fn sync_mirror(
            &self,
            url: &str,
            ssh: Option<&SshLogin>,
            repo: &Path,
        ) -> Duration {
            let (url, creds) = parse(url);
            let started = Instant::now();
            self.0
                .sync_mirror(&url, Self::auth(&creds, ssh), repo, no_progress())
                .await
                .unwrap_or_else(|e| panic!("mirrorhub sync of {url} failed: {e:?}"));
            started.elapsed()
        }
    }
}

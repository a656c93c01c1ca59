//! What the benchmarks share: knobs from the environment, throwaway databases (a SQLite file,
//! or a PostgreSQL database created and dropped), mirrors seeded through the `Store` API, the
//! real `mirrorhub serve` started on port 0, and a process's CPU time from `/proc`.
//!
//! Each bench uses part of it (`mod support;`), hence `dead_code` is allowed here.

#![allow(dead_code)]

use std::ffi::OsStr;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use mirrorhub_core::{Mode, Outcome, OwnerName, RepoName, Trigger, Visibility};
use mirrorhub_store::{NewRepo, Repo, SecretKey, Store, SyncResult};
use rand::Rng;

// ---- knobs ------------------------------------------------------------------------------

/// A number from the environment (`_` allowed as a digit separator), or `default`.
pub fn env_number(name: &str, default: usize) -> usize {
    match std::env::var(name) {
        Ok(value) => value
            .replace('_', "")
            .parse()
            .unwrap_or_else(|_| panic!("{name}={value}: not a number")),
        Err(_) => default,
    }
}

/// Set, not empty and not `0`.
pub fn env_flag(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| !v.is_empty() && v != "0")
}

/// The PostgreSQL server to measure on (`MIRRORHUB_BENCH_POSTGRES_URL`, else
/// `MIRRORHUB_TEST_POSTGRES_URL`): a URL with a database the benches may create databases from.
pub fn postgres_admin_url() -> Option<String> {
    std::env::var("MIRRORHUB_BENCH_POSTGRES_URL")
        .or_else(|_| std::env::var("MIRRORHUB_TEST_POSTGRES_URL"))
        .ok()
        .filter(|url| !url.is_empty())
}

/// `MIRRORHUB_BENCH_HUB_ENV="K=V,K2=V2"`: more environment for the hubs a bench starts (a
/// setting to compare, `RUST_LOG=debug`, or an allocator knob such as `MALLOC_ARENA_MAX=2`).
pub fn extra_hub_env() -> Vec<(String, String)> {
    std::env::var("MIRRORHUB_BENCH_HUB_ENV")
        .unwrap_or_default()
        .split(',')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect()
}

// ---- databases --------------------------------------------------------------------------

/// A fresh database for one run: a SQLite file in a temporary directory, or a PostgreSQL
/// database created for it and dropped afterwards.
pub struct BenchDb {
    pub url: String,
    _dir: Option<tempfile::TempDir>,
    pg: Option<(String, String)>,
}

impl BenchDb {
    pub fn sqlite() -> BenchDb {
        let dir = tempfile::Builder::new()
            .prefix("mirrorhub-bench-db")
            .tempdir()
            .expect("temporary directory");
        BenchDb {
            url: format!(
                "sqlite://{}?mode=rwc",
                dir.path().join("mirrorhub.db").display()
            ),
            _dir: Some(dir),
            pg: None,
        }
    }

    /// Creates a database on the server `admin_url` names (with `psql`).
    pub fn postgres(admin_url: &str) -> BenchDb {
        let name = format!(
            "mirrorhub_bench_{}_{}",
            std::process::id(),
            rand::thread_rng().gen::<u32>()
        );
        psql(admin_url, &format!("CREATE DATABASE {name}"));
        let (base, _) = admin_url
            .rsplit_once('/')
            .expect("postgres URL with a database");
        BenchDb {
            url: format!("{base}/{name}"),
            _dir: None,
            pg: Some((admin_url.to_owned(), name)),
        }
    }

    /// `sqlite` or `postgres`.
    pub fn backend(&self) -> &'static str {
        if self.pg.is_some() {
            "postgres"
        } else {
            "sqlite"
        }
    }

    pub async fn open(&self, key: SecretKey) -> Arc<dyn Store> {
        mirrorhub_store::connect(&self.url, key)
            .await
            .expect("open the store")
    }
}

impl Drop for BenchDb {
    fn drop(&mut self) {
        if let Some((admin, name)) = &self.pg {
            let _ = Command::new("psql")
                .arg(admin)
                .arg("-qc")
                .arg(format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .output();
        }
    }
}

pub fn psql(url: &str, sql: &str) {
    let out = Command::new("psql")
        .arg(url)
        .arg("-qc")
        .arg(sql)
        .output()
        .expect("run psql");
    assert!(
        out.status.success(),
        "psql {sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

// ---- seeded mirrors ---------------------------------------------------------------------

/// The name of bench mirror `i`: `repo-000042`, owner `bench`.
pub fn bench_repo_name(i: usize) -> String {
    format!("repo-{i:06}")
}

/// Bench mirror `i`, of `https://git.example.org/bench/repo-{i:06}.git` (a name that never
/// resolves), synced daily.
pub fn new_repo(i: usize) -> NewRepo {
    let name = bench_repo_name(i);
    NewRepo {
        owner: OwnerName::parse("bench").unwrap(),
        name: RepoName::parse(&name).unwrap(),
        mode: Mode::Mirror,
        visibility: Visibility::Private,
        description: String::new(),
        upstream_url: format!("https://git.example.org/bench/{name}.git"),
        credentials: None,
        sync_interval_secs: 86_400,
        ssh_key_id: None,
        known_hosts: None,
    }
}

/// Creates bench mirror `i` and records a successful first run, so that it is `ready` with its
/// next sync a year from `now` (spread over a day): a hub started on the database has nothing
/// due. Three transactions.
pub async fn seed_ready_mirror(store: &dyn Store, i: usize, now: DateTime<Utc>) -> Repo {
    let next = now + chrono::Duration::days(365) + chrono::Duration::seconds((i % 86_400) as i64);
    seed_ready(store, new_repo(i), next, now).await
}

/// Creates `new` and records a successful first run ending `now`, with its next sync at
/// `next_sync_at`. Three transactions.
pub async fn seed_ready(
    store: &dyn Store,
    new: NewRepo,
    next_sync_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Repo {
    let repo = store.create_repo(new, now).await.expect("create a mirror");
    // A repository is created `cloning` with no next sync; only a finished first run makes
    // it `ready` with a next sync time (a `cloning` one would be re-queued at start-up).
    let run = store
        .start_run(repo.id, Trigger::Create, now)
        .await
        .expect("start run");
    store
        .finish_run(
            run,
            repo.id,
            &SyncResult {
                finished_at: now,
                outcome: Outcome::Success,
                error_code: None,
                error_message: None,
                ref_changes: Vec::new(),
                branches: 1,
                tags: 0,
                head_ref: Some("refs/heads/main".into()),
                next_sync_at: Some(next_sync_at),
                pause: false,
                promote: false,
            },
        )
        .await
        .expect("finish run");
    repo
}

// ---- the hub ----------------------------------------------------------------------------

/// The admin token of every hub a bench starts.
pub const ADMIN_TOKEN: &str = "bench-admin-token-0123456789";

/// A running `mirrorhub serve`, killed when dropped.
pub struct HubProcess {
    child: Child,
    /// `http://127.0.0.1:PORT`
    pub base: String,
    /// From spawning the process to its listening line.
    pub startup: Duration,
    /// Where its stderr (the log) goes.
    pub log: PathBuf,
}

impl HubProcess {
    /// Starts the real binary on `data_dir` with an empty environment but `PATH`, listening on
    /// 127.0.0.1:0 with [`ADMIN_TOKEN`], plus `env`; waits (up to 120 s) for the line
    /// `mirrorhub listening on http://ADDR ...`. Panics with the log if it does not come.
    pub fn start<I, K, V>(data_dir: &Path, log: &Path, env: I) -> HubProcess
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<OsStr>,
        V: AsRef<OsStr>,
    {
        let mut child = Command::new(env!("CARGO_BIN_EXE_mirrorhub"))
            .arg("serve")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("MIRRORHUB_LISTEN", "127.0.0.1:0")
            .env("MIRRORHUB_DATA_DIR", data_dir)
            .env("MIRRORHUB_ADMIN_TOKEN", ADMIN_TOKEN)
            .envs(env)
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(log).expect("create the hub's log"))
            .spawn()
            .expect("start mirrorhub");
        let spawned = Instant::now();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(rest) = line.strip_prefix("mirrorhub listening on ") {
                    let _ = tx.send(
                        rest.split_whitespace()
                            .next()
                            .unwrap_or_default()
                            .to_owned(),
                    );
                }
            }
        });
        match rx.recv_timeout(Duration::from_secs(120)) {
            Ok(base) => HubProcess {
                child,
                base,
                startup: spawned.elapsed(),
                log: log.to_owned(),
            },
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "the hub did not start; log:\n{}",
                    std::fs::read_to_string(log).unwrap_or_default()
                );
            }
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Kills the process (SIGKILL) and waits for it.
    pub fn stop(mut self) {
        self.kill();
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for HubProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

// ---- /proc ------------------------------------------------------------------------------

pub fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// utime + stime of the process, in seconds.
pub fn cpu_seconds(pid: u32, ticks: f64) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("read /proc/pid/stat");
    let after = stat.rsplit_once(") ").expect("stat format").1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    // After the command: state(0) ppid(1) ... utime(11) stime(12).
    let utime: f64 = fields[11].parse().unwrap();
    let stime: f64 = fields[12].parse().unwrap();
    (utime + stime) / ticks
}

/// A `kB` field of /proc/<pid>/status, in MB.
pub fn status_mb(pid: u32, field: &str) -> f64 {
    let status =
        std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read /proc/pid/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|rest| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<f64>()
                .ok()
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
}

/// The whole machine's CPU from `/proc/stat`, in seconds since boot: `(busy, total)`, busy
/// being everything but idle and I/O wait, summed over all cores.
pub fn machine_cpu_seconds(ticks: f64) -> (f64, f64) {
    let stat = std::fs::read_to_string("/proc/stat").expect("read /proc/stat");
    let fields: Vec<f64> = stat
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("cpu "))
        .expect("/proc/stat starts with the cpu line")
        .split_whitespace()
        .map(|f| f.parse().expect("a number of ticks"))
        .collect();
    // user nice system idle iowait irq softirq steal (guest time is already in user).
    let total: f64 = fields.iter().take(8).sum();
    let idle = fields[3] + fields.get(4).copied().unwrap_or(0.0);
    ((total - idle) / ticks, total / ticks)
}

/// The 1-minute load average, to print beside figures taken on a shared machine.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".into())
}

/// Runs the git command line as an operator would (clean config, no prompts) and returns how
/// long it took. Panics with git's stderr if it fails.
pub async fn git_cli(dir: &Path, args: &[&str]) -> Duration {
    let mut cmd = std::process::Command::new("git");
    mirrorhub_testkit::clean_git_env(&mut cmd);
    cmd.current_dir(dir)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut cmd = tokio::process::Command::from(cmd);
    let started = Instant::now();
    let output = cmd.output().await.expect("run git");
    let took = started.elapsed();
    assert!(
        output.status.success(),
        "git {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    took
}

//! Runs the real `mirrorhub` binary on port 0 with a fresh data directory and database,
//! and talks to it over HTTP like any client.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const TOKEN: &str = "test-admin-token-0123456789";

/// A key for hubs of one test that share a PostgreSQL database (each would otherwise generate
/// its own, and the second would refuse the first one's database).
#[allow(dead_code)]
pub const SECRET_KEY: &str = "c2l4dHktZm91ci1ieXRlcy1vZi10ZXN0LWtleS0wMDA=";

/// Runs each scenario `async fn name(db: TestDb)` of the including test file twice: on SQLite,
/// and on PostgreSQL when `MIRRORHUB_TEST_POSTGRES_URL` names a server. The file must have
/// `TestDb` and `Db` in scope.
#[allow(unused_macros)]
macro_rules! on_both_databases {
    ($($name:ident),+ $(,)?) => {
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread")] async fn $name() { if let Some(db) = super::TestDb::create(super::Db::Sqlite) { super::$name(db).await } })+
        }
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread")] async fn $name() { if let Some(db) = super::TestDb::create(super::Db::Postgres) { super::$name(db).await } })+
        }
    };
}

/// Which database a hub under test uses. Postgres runs only when the environment names a
/// server (`MIRRORHUB_TEST_POSTGRES_URL`); when it is named but unreachable, the test fails.
pub enum Db {
    Sqlite,
    Postgres,
}

pub struct TestDb {
    url: Option<String>,
    admin_url: Option<String>,
    name: String,
}

impl TestDb {
    /// `None` when the test should not run on this backend here.
    pub fn create(db: Db) -> Option<TestDb> {
        match db {
            Db::Sqlite => Some(TestDb {
                url: None,
                admin_url: None,
                name: String::new(),
            }),
            Db::Postgres => {
                let Ok(admin_url) = std::env::var("MIRRORHUB_TEST_POSTGRES_URL") else {
                    eprintln!("MIRRORHUB_TEST_POSTGRES_URL is not set: the PostgreSQL variant does not run here");
                    return None;
                };
                let name = format!("mirrorhub_e2e_{}", uuid_like());
                psql(&admin_url, &format!("CREATE DATABASE {name}"));
                let (base, _) = admin_url
                    .rsplit_once('/')
                    .expect("postgres URL with a database");
                Some(TestDb {
                    url: Some(format!("{base}/{name}")),
                    admin_url: Some(admin_url),
                    name,
                })
            }
        }
    }

    /// The `DATABASE_URL` the hubs get: `None` on SQLite (each hub's default file in its data
    /// directory).
    pub fn url(&self) -> Option<&str> {
        self.url.as_deref()
    }

    /// Runs one SQL statement on this test's PostgreSQL database with `psql`; returns its rows,
    /// one line each, columns separated by `|`. Panics on SQLite and on any error.
    pub fn query(&self, sql: &str) -> String {
        let url = self
            .url
            .as_deref()
            .expect("TestDb::query needs a PostgreSQL database");
        psql_rows(url, sql)
    }

    /// Runs one SQL statement on the database of `hub`: with `psql` on PostgreSQL, with
    /// `sqlite3` on the hub's SQLite file. Rows one line each, columns separated by `|`.
    pub fn rows(&self, hub: &Hub, sql: &str) -> String {
        if self.url.is_some() {
            return self.query(sql);
        }
        let out = Command::new("sqlite3")
            .arg("-cmd")
            .arg(".timeout 10000")
            .arg(hub.data_dir.join("mirrorhub.db"))
            .arg(sql)
            .output()
            .expect("run sqlite3");
        assert!(
            out.status.success(),
            "sqlite3 {sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("sqlite3 printed non-UTF-8 output")
    }
}

impl TestDb {
    /// PostgreSQL only: refuses new connections to this test's database and ends the open ones
    /// (`false`), or lets them in again (`true`): a database outage, as the hub sees one.
    pub fn allow_connections(&self, allow: bool) {
        let admin = self
            .admin_url
            .as_deref()
            .expect("allow_connections needs a PostgreSQL database");
        psql(
            admin,
            &format!("ALTER DATABASE {} ALLOW_CONNECTIONS {allow}", self.name),
        );
        if !allow {
            psql_rows(
                admin,
                &format!(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{}'",
                    self.name
                ),
            );
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some(admin) = &self.admin_url {
            let _ = Command::new("psql")
                .arg(admin)
                .arg("-qc")
                .arg(format!(
                    "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                    self.name
                ))
                .output();
        }
    }
}

fn psql(url: &str, sql: &str) {
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

/// Runs one SQL statement with `psql` and returns its rows (unaligned, tuples only: one line
/// per row, columns separated by `|`). Panics when psql fails.
pub fn psql_rows(url: &str, sql: &str) -> String {
    let out = Command::new("psql")
        .arg(url)
        .args(["-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1", "-c", sql])
        .output()
        .expect("run psql");
    assert!(
        out.status.success(),
        "psql {sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("psql printed non-UTF-8 output")
}

fn uuid_like() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos(),
    );
    h.write_u32(std::process::id());
    format!("{:016x}", h.finish())
}

pub struct Hub {
    child: Option<Child>,
    pub base: String,
    pub data_dir: PathBuf,
    _dir: Option<tempfile::TempDir>,
    pub log: PathBuf,
    db_url: Option<String>,
    extra_env: Vec<(String, String)>,
    http: reqwest::Client,
}

impl Hub {
    pub async fn start(db: &TestDb, extra_env: &[(&str, &str)]) -> Hub {
        let dir = tempfile::Builder::new()
            .prefix("mirrorhub-e2e")
            .tempdir()
            .unwrap();
        let data_dir = dir.path().join("data");
        let log = dir.path().join("hub.log");
        let mut hub = Hub::new(db, data_dir, log, extra_env);
        hub._dir = Some(dir);
        hub.spawn();
        hub
    }

    /// Starts a hub on a data directory that outlives it and that other hubs may share (replicas
    /// of one deployment: one database, one repository volume). Its log goes to `log`.
    pub async fn start_shared(
        db: &TestDb,
        data_dir: &Path,
        log: &Path,
        extra_env: &[(&str, &str)],
    ) -> Hub {
        let mut hub = Hub::new(db, data_dir.to_owned(), log.to_owned(), extra_env);
        hub.spawn();
        hub
    }

    fn new(db: &TestDb, data_dir: PathBuf, log: PathBuf, extra_env: &[(&str, &str)]) -> Hub {
        Hub {
            child: None,
            base: String::new(),
            data_dir,
            _dir: None,
            log,
            db_url: db.url.clone(),
            extra_env: extra_env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            http: reqwest::Client::new(),
        }
    }

    /// The process id while the hub runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// (Re)starts the process on the same data directory and database.
    pub fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_mirrorhub"));
        cmd.arg("serve")
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("MIRRORHUB_LISTEN", "127.0.0.1:0")
            .env("MIRRORHUB_DATA_DIR", &self.data_dir)
            .env("MIRRORHUB_ADMIN_TOKEN", TOKEN)
            .env("MIRRORHUB_ALLOWED_HOSTS", "127.0.0.1")
            .env("MIRRORHUB_POLL_INTERVAL", "1s")
            .env("MIRRORHUB_PROBE_TIMEOUT", "10s")
            .env("RUST_LOG", "info,mirrorhub=debug")
            .stdout(Stdio::piped())
            .stderr(log);
        if let Some(url) = &self.db_url {
            cmd.env("DATABASE_URL", url);
        }
        for (k, v) in &self.extra_env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("start mirrorhub");
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
        self.base = rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("hub did not start; log:\n{}", self.log_text()));
        self.child = Some(child);
    }

    /// Sends SIGTERM and waits, at most `within`, for the process to exit.
    pub async fn terminate(&mut self, within: Duration) {
        let pid = self.pid().expect("the hub runs");
        let term = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .unwrap();
        assert!(term.success());
        let deadline = Instant::now() + within;
        while process_alive(pid) {
            assert!(
                Instant::now() < deadline,
                "the hub did not exit within {within:?} of SIGTERM; log:\n{}",
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap(); // SIGKILL
            child.wait().unwrap();
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Runs `mirrorhub admin <args>` on this hub's data directory and database.
    pub fn admin(&self, db: &TestDb, args: &[&str]) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_mirrorhub"));
        cmd.arg("admin")
            .args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("MIRRORHUB_DATA_DIR", &self.data_dir)
            .env("RUST_LOG", "warn");
        if let Some(url) = db.url() {
            cmd.env("DATABASE_URL", url);
        }
        for (k, v) in &self.extra_env {
            cmd.env(k, v);
        }
        cmd.output().expect("run mirrorhub admin")
    }

    pub fn repo_dir(&self, id: i64) -> PathBuf {
        self.data_dir.join("repos").join(format!("{id}.git"))
    }

    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        self.call_with_token(method, path, body, Some(TOKEN)).await
    }

    pub async fn call_with_token(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
        token: Option<&str>,
    ) -> (u16, Value) {
        call_base(&self.http, &self.base, method, path, body, token)
            .await
            .expect("request to the hub")
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.call(reqwest::Method::GET, path, None).await
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.call(reqwest::Method::POST, path, Some(body)).await
    }

    /// Waits until the repository's newest run is newer than `after_run` and finished; returns
    /// (repo, newest run). Bounded, so a broken hub fails the test instead of hanging it.
    pub async fn wait_for_run(&self, repo: &str, after_run: Option<i64>) -> (Value, Value) {
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let (status, runs) = self
                .get(&format!("/api/v1/repos/{repo}/syncs?limit=1"))
                .await;
            assert_eq!(status, 200, "{runs}");
            let run = runs[0].clone();
            if run["id"].as_i64().is_some_and(|id| Some(id) > after_run)
                && !run["finished_at"].is_null()
            {
                let (_, r) = self.get(&format!("/api/v1/repos/{repo}")).await;
                if r["state"] != "cloning" {
                    return (r, run);
                }
            }
            assert!(
                Instant::now() < deadline,
                "no finished run for {repo}; log:\n{}",
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// POSTs raw bytes with the given headers (a webhook delivery); returns status and JSON.
    pub async fn post_raw(
        &self,
        path: &str,
        headers: &[(String, String)],
        body: &[u8],
    ) -> (u16, Value) {
        let mut req = self.http.post(format!("{}{path}", self.base));
        for (name, value) in headers {
            req = req.header(name, value);
        }
        let resp = req
            .body(body.to_vec())
            .send()
            .await
            .expect("request to the hub");
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    pub async fn latest_run_id(&self, repo: &str) -> Option<i64> {
        let (_, runs) = self
            .get(&format!("/api/v1/repos/{repo}/syncs?limit=1"))
            .await;
        runs[0]["id"].as_i64()
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// One API call to the hub at `base` (`http://127.0.0.1:PORT`) with `client`. An error when the
/// hub cannot be reached (or dies while answering): clients of a hub that may be killed retry
/// elsewhere.
pub async fn call_base(
    client: &reqwest::Client,
    base: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
    token: Option<&str>,
) -> Result<(u16, Value), reqwest::Error> {
    let mut req = client.request(method, format!("{base}{path}"));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await?;
    let status = resp.status().as_u16();
    let text = resp.text().await?;
    let json = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON ({status}): {text}"))
    };
    Ok((status, json))
}

/// Processes (other than this test's) whose working directory is under `dir`, as `(pid, parent
/// pid, command line)`: git processes a hub started in its repositories, still running.
pub fn processes_under(dir: &Path) -> Vec<(u32, u32, String)> {
    let Ok(dir) = dir.canonicalize() else {
        return Vec::new();
    };
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return found;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(cwd) = std::fs::read_link(entry.path().join("cwd")) else {
            continue;
        };
        if !cwd.starts_with(&dir) {
            continue;
        }
        let cmdline = std::fs::read(entry.path().join("cmdline"))
            .map(|b| {
                b.split(|&c| c == 0)
                    .map(|a| String::from_utf8_lossy(a).into_owned())
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .unwrap_or_default();
        let ppid = std::fs::read_to_string(entry.path().join("stat"))
            .ok()
            .and_then(|stat| {
                // `pid (comm) state ppid ...`: comm may hold spaces and parentheses.
                let after = stat.rsplit_once(") ")?.1.to_owned();
                after.split_whitespace().nth(1)?.parse().ok()
            })
            .unwrap_or(0);
        found.push((pid, ppid, cmdline.trim().to_owned()));
    }
    found
}

/// Whether the process runs (exists and is not a zombie).
pub fn process_alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit_once(") ")
            .is_some_and(|(_, rest)| !rest.starts_with('Z'))
    })
}

/// `git for-each-ref` over branches and tags, the definition of "exactly equal".
pub fn refs(repo: &Path) -> String {
    mirrorhub_testkit::for_each_ref(repo)
}

pub fn symbolic_head(repo: &Path) -> String {
    mirrorhub_testkit::git(repo, ["symbolic-ref", "HEAD"])
        .trim()
        .to_owned()
}

pub fn fsck(repo: &Path) {
    let out = mirrorhub_testkit::try_git(repo, ["fsck", "--full", "--strict"]);
    assert!(
        out.status.success(),
        "git fsck failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs the git client (a clean environment, never a prompt) in `dir`.
pub async fn git_client(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let dir = dir.to_owned();
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    tokio::task::spawn_blocking(move || {
        let mut cmd = mirrorhub_testkit::git_command(&dir);
        cmd.args(&args).env("GIT_TERMINAL_PROMPT", "0");
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().expect("run git")
    })
    .await
    .unwrap()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[track_caller]
pub fn ok(out: &Output) -> String {
    assert!(out.status.success(), "git failed: {}", stderr(out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

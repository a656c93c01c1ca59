//! The testkit's LFS server against the real `git-lfs` client (push, clone, basic auth,
//! separate object storage, a corrupt object), and its protocol and faults over raw HTTP.

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use mirrorhub_testkit::{
    init_bare, noise, HttpGitServer, LfsFault, LfsHome, LfsOptions, LfsServer, LFS_MEDIA_TYPE,
};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tempfile::TempDir;

/// The most one git command may take here.
const GIT_DEADLINE: Duration = Duration::from_secs(120);

/// Runs git with `home` in `dir`, killed past [`GIT_DEADLINE`]; returns its output whatever
/// its status.
async fn lfs_git(home: &LfsHome, dir: &Path, args: &[&str]) -> Output {
    lfs_git_env(home, dir, args, &[]).await
}

async fn lfs_git_env(home: &LfsHome, dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    home.run(dir, args, env, GIT_DEADLINE).await
}

#[track_caller]
fn assert_ok(output: &Output) -> String {
    assert!(
        output.status.success(),
        "git failed ({}):\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stderr),
        String::from_utf8_lossy(&output.stdout)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The LFS files every push test commits: one of 3 MB, two small ones, one in a directory.
fn lfs_files() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("big.bin", noise(3 * 1024 * 1024, 1)),
        ("small.bin", b"a small LFS object\n".to_vec()),
        ("data/weights.bin", noise(70_000, 2)),
    ]
}

/// A git server with an empty `up.git` and an LFS server in front of it.
struct Upstream {
    base: TempDir,
    _git: HttpGitServer,
    lfs: LfsServer,
}

async fn upstream(auth: Option<(&str, &str)>, separate_storage: bool) -> Upstream {
    let base = TempDir::new().unwrap();
    init_bare(&base.path().join("up.git"));
    let auth = auth.map(|(user, password)| (user.to_owned(), password.to_owned()));
    let git = HttpGitServer::start(base.path(), auth.clone()).await;
    let lfs = LfsServer::start(LfsOptions {
        auth,
        forward_git_to: Some(git.url("")),
        separate_storage,
    })
    .await;
    Upstream {
        base,
        _git: git,
        lfs,
    }
}

/// Makes a work tree tracking `*.bin` with LFS, commits [`lfs_files`] and a README, and pushes
/// `main` to `url`; returns the work tree.
async fn push_lfs_repository(home: &LfsHome, url: &str) -> TempDir {
    let work = TempDir::new().unwrap();
    let dir = work.path();
    assert_ok(&lfs_git(home, dir, &["init", "--quiet", "--initial-branch=main"]).await);
    assert_ok(&lfs_git(home, dir, &["lfs", "track", "*.bin"]).await);
    std::fs::write(dir.join("README.md"), "not in LFS\n").unwrap();
    for (name, content) in lfs_files() {
        let path = dir.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
    }
    assert_ok(&lfs_git(home, dir, &["add", "--all"]).await);
    assert_ok(&lfs_git(home, dir, &["commit", "--quiet", "-m", "LFS files"]).await);
    let listed = assert_ok(&lfs_git(home, dir, &["lfs", "ls-files", "--long"]).await);
    assert_eq!(listed.lines().count(), 3, "git lfs ls-files: {listed}");
    assert_ok(&lfs_git(home, dir, &["push", "--quiet", url, "main"]).await);
    work
}

/// Clones `url` with git-lfs and checks every LFS file (and the README) byte for byte.
async fn clone_and_compare(home: &LfsHome, url: &str) {
    let dest = TempDir::new().unwrap();
    let clone = dest.path().join("clone");
    assert_ok(
        &lfs_git(
            home,
            dest.path(),
            &["clone", "--quiet", url, clone.to_str().unwrap()],
        )
        .await,
    );
    assert_eq!(
        std::fs::read(clone.join("README.md")).unwrap(),
        b"not in LFS\n"
    );
    for (name, content) in lfs_files() {
        let got = std::fs::read(clone.join(name)).unwrap();
        assert!(
            got == content,
            "{name}: {} bytes checked out, want {} (a pointer left?)",
            got.len(),
            content.len()
        );
    }
}

fn every_oid() -> Vec<String> {
    lfs_files().iter().map(|(_, c)| sha256_hex(c)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn git_lfs_pushes_to_and_clones_from_the_server_beside_git() {
    let up = upstream(None, false).await;
    let home = LfsHome::new();
    let url = format!("{}/up.git", up.lfs.url());
    push_lfs_repository(&home, &url).await;

    for (name, content) in lfs_files() {
        let oid = sha256_hex(&content);
        assert!(up.lfs.has(&oid), "{name} ({oid}) was not uploaded");
        let stored = std::fs::read(up.lfs.object_path(&oid).unwrap()).unwrap();
        assert!(stored == content, "{name} stored with other bytes");
    }
    // The git server holds pointers, not the files.
    let pointer = mirrorhub_testkit::git(
        &up.base.path().join("up.git"),
        ["cat-file", "-p", "main:big.bin"],
    );
    assert!(
        pointer.starts_with("version https://git-lfs.github.com/spec/v1\n"),
        "{pointer}"
    );

    let requests = up.lfs.requests();
    let lfs_path = |rest: &str| format!("/up.git/info/lfs/{rest}");
    assert!(requests
        .iter()
        .any(|r| r.listener == "git" && r.path == "/up.git/git-receive-pack" && r.status == 200));
    assert!(requests
        .iter()
        .any(|r| r.path == lfs_path("locks/verify") && r.status == 404));
    assert!(requests
        .iter()
        .any(|r| r.method == "POST" && r.path == lfs_path("objects/batch") && r.status == 200));
    for oid in every_oid() {
        let path = lfs_path(&format!("objects/{oid}"));
        assert!(
            requests.iter().any(|r| r.listener == "api"
                && r.method == "PUT"
                && r.path == path
                && r.status == 200),
            "no upload of {oid}: {requests:#?}"
        );
    }
    assert!(requests
        .iter()
        .any(|r| r.method == "POST" && r.path == lfs_path("verify") && r.status == 200));

    up.lfs.clear_requests();
    clone_and_compare(&LfsHome::new(), &url).await;
    let requests = up.lfs.requests();
    let downloads = requests
        .iter()
        .filter(|r| r.method == "GET" && r.path.starts_with(&lfs_path("objects/")))
        .count();
    assert_eq!(downloads, 3, "{requests:#?}");
    assert!(requests.iter().all(|r| r.status < 400), "{requests:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_auth_is_required_and_git_lfs_uses_the_credentials_in_the_url() {
    let up = upstream(Some(("alice", "s3cret")), false).await;
    let http = reqwest::Client::new();
    let batch_url = format!("{}/objects/batch", up.lfs.endpoint("up.git"));
    let body = json!({"operation": "download", "objects": []});
    for auth in [None, Some(("alice", "wrong")), Some(("bob", "s3cret"))] {
        let mut request = http
            .post(&batch_url)
            .header("accept", LFS_MEDIA_TYPE)
            .json(&body);
        if let Some((user, password)) = auth {
            request = request.basic_auth(user, Some(password));
        }
        let answer = request.send().await.unwrap();
        assert_eq!(answer.status(), 401, "{auth:?}");
        assert_eq!(answer.headers()["www-authenticate"], "Basic realm=\"lfs\"");
        let message: Value = answer.json().await.unwrap();
        assert!(message["message"].is_string());
    }

    let home = LfsHome::new();
    let base = up.lfs.url().replace("http://", "http://alice:s3cret@");
    let url = format!("{base}/up.git");
    push_lfs_repository(&home, &url).await;
    for oid in every_oid() {
        assert!(up.lfs.has(&oid));
    }
    up.lfs.clear_requests();
    clone_and_compare(&LfsHome::new(), &url).await;
    let requests = up.lfs.requests();
    let basic = format!("Basic {}", base64_encode(b"alice:s3cret"));
    // git-lfs tries each object without credentials first (401), then with them.
    let downloads: Vec<_> = requests
        .iter()
        .filter(|r| r.method == "GET" && r.path.contains("/info/lfs/objects/"))
        .collect();
    let served: Vec<_> = downloads.iter().filter(|r| r.status == 200).collect();
    assert_eq!(served.len(), 3, "{requests:#?}");
    for r in &served {
        assert_eq!(r.authorization.as_deref(), Some(basic.as_str()));
    }
    for r in downloads.iter().filter(|r| r.status != 200) {
        assert_eq!((r.status, r.authorization.as_deref()), (401, None));
    }

    // Wrong credentials: the push is refused.
    let work = TempDir::new().unwrap();
    let bad = format!(
        "{}/up.git",
        up.lfs.url().replace("http://", "http://alice:nope@")
    );
    let dir = work.path();
    assert_ok(&lfs_git(&home, dir, &["init", "--quiet", "--initial-branch=main"]).await);
    assert_ok(&lfs_git(&home, dir, &["lfs", "track", "*.bin"]).await);
    std::fs::write(dir.join("x.bin"), b"refused").unwrap();
    assert_ok(&lfs_git(&home, dir, &["add", "--all"]).await);
    assert_ok(&lfs_git(&home, dir, &["commit", "--quiet", "-m", "x"]).await);
    let lfs_only = lfs_git(&home, dir, &["lfs", "push", &bad, "main"]).await;
    assert!(
        !lfs_only.status.success(),
        "git lfs push with a wrong password succeeded"
    );
    let stderr = String::from_utf8_lossy(&lfs_only.stderr);
    assert!(stderr.contains("credentials needed"), "{stderr}");
    assert!(!up.lfs.has(&sha256_hex(b"refused")));
}

fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn separate_storage_wants_the_action_header_and_gets_no_basic_credentials() {
    let up = upstream(Some(("alice", "s3cret")), true).await;
    let storage = up.lfs.storage_url().expect("a storage listener");
    assert_ne!(storage, up.lfs.url());
    let home = LfsHome::new();
    let url = format!(
        "{}/up.git",
        up.lfs.url().replace("http://", "http://alice:s3cret@")
    );
    push_lfs_repository(&home, &url).await;
    clone_and_compare(&LfsHome::new(), &url).await;

    let requests = up.lfs.requests();
    let on_storage: Vec<_> = requests
        .iter()
        .filter(|r| r.listener == "storage")
        .collect();
    // Three uploads, three downloads.
    assert_eq!(on_storage.len(), 6, "{requests:#?}");
    for r in &on_storage {
        assert_eq!(r.status, 200, "{r:?}");
        assert_eq!(
            r.authorization.as_deref(),
            Some(up.lfs.storage_authorization().as_str())
        );
        assert!(r
            .authorization
            .as_deref()
            .unwrap()
            .starts_with("RemoteAuth "));
    }
    assert!(requests
        .iter()
        .filter(|r| r.listener == "api")
        .all(|r| !r.path.contains("/info/lfs/objects/") || r.path.ends_with("/batch")));

    // Without the header, or with the basic credentials instead: 403.
    let http = reqwest::Client::new();
    let oid = sha256_hex(b"a small LFS object\n");
    let object = format!("{storage}/objects/{oid}");
    let answer = http.get(&object).send().await.unwrap();
    assert_eq!(answer.status(), 403);
    let answer = http
        .get(&object)
        .basic_auth("alice", Some("s3cret"))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 403);
    let answer = http
        .get(&object)
        .header("authorization", up.lfs.storage_authorization())
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(
        answer.bytes().await.unwrap().as_ref(),
        b"a small LFS object\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn git_lfs_fetch_refuses_a_corrupt_object() {
    let up = upstream(None, false).await;
    let home = LfsHome::new();
    let url = format!("{}/up.git", up.lfs.url());
    push_lfs_repository(&home, &url).await;
    let small = sha256_hex(&noise(70_000, 2));
    up.lfs.set_fault(LfsFault::CorruptContent(small.clone()));

    let dest = TempDir::new().unwrap();
    let clone = dest.path().join("clone");
    let skip = [("GIT_LFS_SKIP_SMUDGE", "1")];
    assert_ok(
        &lfs_git_env(
            &home,
            dest.path(),
            &["clone", "--quiet", &url, clone.to_str().unwrap()],
            &skip,
        )
        .await,
    );
    let fetch = lfs_git(&home, &clone, &["lfs", "fetch"]).await;
    assert!(
        !fetch.status.success(),
        "git lfs fetch took a corrupt object"
    );
    // git-lfs checks the SHA-256 of what it got against the oid.
    let stderr = String::from_utf8_lossy(&fetch.stderr);
    assert!(
        stderr.contains(&format!("expected OID {small}, got")),
        "{stderr}"
    );
    let cached = clone
        .join(".git/lfs/objects")
        .join(&small[0..2])
        .join(&small[2..4])
        .join(&small);
    assert!(!cached.exists(), "the corrupt object was kept");

    up.lfs.set_fault(LfsFault::None);
    assert_ok(&lfs_git(&home, &clone, &["lfs", "fetch"]).await);
    assert_eq!(std::fs::read(&cached).unwrap(), noise(70_000, 2));
}

// ---- The protocol over raw HTTP ----

struct Raw {
    lfs: LfsServer,
    http: reqwest::Client,
}

impl Raw {
    async fn start(options: LfsOptions) -> Raw {
        Raw {
            lfs: LfsServer::start(options).await,
            http: reqwest::Client::new(),
        }
    }

    async fn batch(&self, body: Value) -> reqwest::Response {
        self.http
            .post(format!("{}/objects/batch", self.lfs.endpoint("org/up.git")))
            .header("accept", LFS_MEDIA_TYPE)
            .header("content-type", LFS_MEDIA_TYPE)
            .body(body.to_string())
            .send()
            .await
            .unwrap()
    }

    async fn batch_json(&self, operation: &str, objects: Value) -> Value {
        let answer = self
            .batch(json!({"operation": operation, "transfers": ["basic"], "objects": objects}))
            .await;
        assert_eq!(answer.status(), 200);
        assert_eq!(answer.headers()["content-type"], LFS_MEDIA_TYPE);
        answer.json().await.unwrap()
    }

    async fn get(&self, url: &str) -> reqwest::Response {
        self.http.get(url).send().await.unwrap()
    }
}

#[tokio::test]
async fn the_batch_api_answers_per_object_as_the_spec_shows() {
    let raw = Raw::start(LfsOptions::default()).await;
    let content = b"stored object".to_vec();
    let oid = raw.lfs.insert(&content);
    assert_eq!(oid, sha256_hex(&content));
    let missing = sha256_hex(b"never stored");

    let answer = raw
        .batch_json(
            "download",
            json!([
                {"oid": oid, "size": content.len()},
                {"oid": missing, "size": 12},
                {"oid": "ABC", "size": 1},
                {"oid": oid, "size": 999},
            ]),
        )
        .await;
    assert_eq!(answer["transfer"], "basic");
    assert_eq!(answer["hash_algo"], "sha256");
    let objects = answer["objects"].as_array().unwrap();
    let href = objects[0]["actions"]["download"]["href"].as_str().unwrap();
    assert_eq!(
        href,
        format!("{}/org/up.git/info/lfs/objects/{oid}", raw.lfs.url())
    );
    assert!(
        objects[0]["actions"]["download"]["expires_in"]
            .as_u64()
            .unwrap()
            > 0
    );
    assert!(objects[0].get("error").is_none());
    assert_eq!(objects[1]["error"]["code"], 404);
    assert!(objects[1].get("actions").is_none());
    assert_eq!(objects[2]["error"]["code"], 422);
    assert_eq!(objects[3]["error"]["code"], 422);
    let answer = raw.get(href).await;
    assert_eq!(answer.status(), 200);
    assert_eq!(
        answer.headers()["content-length"],
        content.len().to_string()
    );
    assert_eq!(answer.bytes().await.unwrap().as_ref(), content.as_slice());

    // Upload: nothing to do for what it has; upload and verify for what it lacks.
    let answer = raw
        .batch_json(
            "upload",
            json!([{"oid": oid, "size": content.len()}, {"oid": missing, "size": 12}]),
        )
        .await;
    let objects = answer["objects"].as_array().unwrap();
    assert!(objects[0].get("actions").is_none() && objects[0].get("error").is_none());
    let upload = objects[1]["actions"]["upload"]["href"].as_str().unwrap();
    let verify = objects[1]["actions"]["verify"]["href"].as_str().unwrap();
    let verify_body = json!({"oid": missing, "size": 12}).to_string();
    let answer = raw
        .http
        .post(verify)
        .body(verify_body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 404);
    // Wrong bytes are refused and not stored.
    let answer = raw
        .http
        .put(upload)
        .body("wrong bytes!")
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 422);
    assert!(!raw.lfs.has(&missing));
    let answer = raw
        .http
        .put(upload)
        .body("never stored")
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    assert!(raw.lfs.has(&missing));
    let answer = raw
        .http
        .post(verify)
        .body(verify_body)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    raw.lfs.remove(&missing);
    assert!(!raw.lfs.has(&missing) && raw.lfs.object_path(&missing).is_none());

    // Malformed requests.
    let answer = raw
        .http
        .post(format!("{}/objects/batch", raw.lfs.endpoint("up.git")))
        .body(json!({"operation": "download", "objects": []}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 406, "no Accept header");
    let answer = raw
        .batch(json!({"operation": "delete", "objects": []}))
        .await;
    assert_eq!(answer.status(), 422);
    let answer = raw.batch(json!({"operation": "download"})).await;
    assert_eq!(answer.status(), 422);
    let answer = raw
        .batch(json!({"operation": "download", "transfers": ["tus"], "objects": []}))
        .await;
    assert_eq!(answer.status(), 422);
    let answer = raw
        .batch(json!({"operation": "download", "hash_algo": "sha512", "objects": []}))
        .await;
    assert_eq!(answer.status(), 409);
    let object_url = |oid: &str| format!("{}/objects/{oid}", raw.lfs.endpoint("up.git"));
    assert_eq!(raw.get(&object_url("not-an-oid")).await.status(), 422);
    assert_eq!(raw.get(&object_url(&"A".repeat(64))).await.status(), 422);
    assert_eq!(raw.get(&object_url(&missing)).await.status(), 404);

    // No locking; no git server behind it.
    let answer = raw
        .http
        .post(format!("{}/locks/verify", raw.lfs.endpoint("up.git")))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 404);
    let message: Value = answer.json().await.unwrap();
    assert!(message["message"].as_str().unwrap().contains("locking"));
    let answer = raw
        .get(&format!("{}/up.git/info/refs", raw.lfs.url()))
        .await;
    assert_eq!(answer.status(), 404);

    let logged = raw.lfs.requests();
    assert!(logged.iter().all(|r| r.authorization.is_none()));
    assert_eq!(logged.last().unwrap().listener, "git");
    raw.lfs.clear_requests();
    assert!(raw.lfs.requests().is_empty());
}

#[tokio::test]
async fn insert_file_streams_a_file_in() {
    let raw = Raw::start(LfsOptions::default()).await;
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("model.bin");
    let content = noise(1_000_003, 9);
    std::fs::write(&path, &content).unwrap();
    let (oid, size) = raw.lfs.insert_file(&path);
    assert_eq!(
        (oid.as_str(), size),
        (sha256_hex(&content).as_str(), 1_000_003)
    );
    assert_eq!(
        std::fs::read(raw.lfs.object_path(&oid).unwrap()).unwrap(),
        content
    );
}

#[tokio::test]
async fn faults_in_the_batch_answer() {
    let raw = Raw::start(LfsOptions::default()).await;
    let content = b"faulty".to_vec();
    let oid = raw.lfs.insert(&content);
    let objects = json!([{"oid": oid, "size": content.len()}]);
    let download = |answer: &Value| answer["objects"][0]["actions"]["download"].clone();

    raw.lfs.set_fault(LfsFault::WrongSizeInBatch);
    let answer = raw.batch_json("download", objects.clone()).await;
    assert_eq!(answer["objects"][0]["size"], content.len() + 1);

    raw.lfs.set_fault(LfsFault::MissingActions);
    let answer = raw.batch_json("download", objects.clone()).await;
    assert!(answer["objects"][0].get("actions").is_none());
    assert!(answer["objects"][0].get("error").is_none());

    raw.lfs.set_fault(LfsFault::CrLfHref);
    let answer = raw.batch_json("download", objects.clone()).await;
    let href = download(&answer)["href"].as_str().unwrap().to_owned();
    assert!(href.ends_with("\r\nX-Evil: 1"), "{href:?}");

    raw.lfs.set_fault(LfsFault::HrefTo(
        "http://169.254.169.254/latest/meta-data/".into(),
    ));
    let answer = raw.batch_json("download", objects.clone()).await;
    assert_eq!(
        download(&answer)["href"],
        "http://169.254.169.254/latest/meta-data/"
    );

    raw.lfs.set_fault(LfsFault::ObjectError(oid.clone()));
    let answer = raw.batch_json("download", objects.clone()).await;
    assert_eq!(answer["objects"][0]["error"]["code"], 404);
    assert!(raw.lfs.has(&oid));

    raw.lfs.set_fault(LfsFault::HugeBatch(300_000));
    let answer = raw
        .batch(json!({"operation": "download", "objects": objects.clone()}))
        .await;
    assert_eq!(answer.headers()["content-length"], "300000");
    let bytes = answer.bytes().await.unwrap();
    assert_eq!(bytes.len(), 300_000);
    let answer: Value = serde_json::from_slice(&bytes).unwrap();
    assert!(download(&answer)["href"].is_string());

    raw.lfs.set_fault(LfsFault::Unavailable(2));
    for _ in 0..2 {
        let answer = raw
            .batch(json!({"operation": "download", "objects": objects.clone()}))
            .await;
        assert_eq!(answer.status(), 503);
        assert_eq!(answer.headers()["retry-after"], "1");
    }
    let answer = raw.batch_json("download", objects.clone()).await;
    assert!(download(&answer)["href"].is_string());

    raw.lfs.set_fault(LfsFault::None);
    let answer = raw.batch_json("download", objects).await;
    assert!(download(&answer)["href"].is_string());
    assert_eq!(answer["objects"][0]["size"], content.len());
}

#[tokio::test]
async fn faults_in_object_downloads() {
    let raw = Raw::start(LfsOptions::default()).await;
    let content = noise(300_000, 5);
    let oid = raw.lfs.insert(&content);
    let url = format!("{}/objects/{oid}", raw.lfs.endpoint("up.git"));

    raw.lfs.set_fault(LfsFault::CorruptContent(oid.clone()));
    let corrupt = raw.get(&url).await.bytes().await.unwrap();
    assert_eq!(corrupt.len(), content.len());
    assert_ne!(sha256_hex(&corrupt), oid);

    raw.lfs.set_fault(LfsFault::ShortContent(oid.clone()));
    let short = raw.get(&url).await.bytes().await.unwrap();
    assert!(short.len() < content.len());
    assert_eq!(short.as_ref(), &content[..short.len()]);

    raw.lfs.set_fault(LfsFault::StallAfter(100_000));
    let mut answer = raw.get(&url).await;
    assert_eq!(answer.status(), 200);
    let mut received = 0;
    while received < 100_000 {
        let chunk = tokio::time::timeout(Duration::from_secs(10), answer.chunk())
            .await
            .expect("the first bytes come")
            .unwrap()
            .expect("the body goes on");
        received += chunk.len();
    }
    assert_eq!(received, 100_000);
    // Nothing more comes, and the connection stays open.
    let more = tokio::time::timeout(Duration::from_millis(300), answer.chunk()).await;
    assert!(more.is_err(), "the download went on: {more:?}");

    raw.lfs.set_fault(LfsFault::None);
    let whole = raw.get(&url).await.bytes().await.unwrap();
    assert!(whole.as_ref() == content.as_slice());

    // Dropping the server ends the stalled download and closes the port.
    let addr = raw.lfs.addr();
    drop(raw);
    let ended = tokio::time::timeout(Duration::from_secs(10), answer.chunk())
        .await
        .expect("the stalled download ends when the server is dropped");
    assert!(ended.is_err(), "{ended:?}");
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

//! Git LFS end to end: the real binary, a real git server with an LFS server in front of it
//! (`mirrorhub_testkit::LfsServer`), the real `git-lfs` client, both databases.

#[macro_use]
mod common;

use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use common::{Db, Hub, TestDb, TOKEN};
use mirrorhub_testkit::{
    init_bare, noise, HttpGitServer, LfsFault, LfsHome, LfsOptions, LfsServer,
};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tempfile::TempDir;

on_both_databases!(
    a_mirror_copies_every_lfs_object_and_serves_them_alone,
    bad_objects_are_refused_reported_and_retried,
    a_migrated_repository_takes_lfs_pushes_from_writers_only,
    a_hub_killed_during_a_download_leaves_no_partial_object,
    a_migration_is_not_done_while_its_lfs_server_is_down
);

const GIT_DEADLINE: Duration = Duration::from_secs(120);
const USER: &str = "lfs-user";
const PASSWORD: &str = "upstream-secret-password-4711";

async fn lfs_git(home: &LfsHome, dir: &Path, args: &[&str]) -> Output {
    home.run(dir, args, &[], GIT_DEADLINE).await
}

#[track_caller]
fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "git failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn oid(content: &[u8]) -> String {
    hex::encode(Sha256::digest(content))
}

/// A git server with `up.git` behind an LFS server with basic auth, and a work tree that
/// tracks `*.bin` with LFS.
struct Upstream {
    base: TempDir,
    _git: HttpGitServer,
    lfs: LfsServer,
    home: LfsHome,
    work: TempDir,
}

impl Upstream {
    async fn start() -> Upstream {
        let base = TempDir::new().unwrap();
        init_bare(&base.path().join("up.git"));
        let auth = Some((USER.to_owned(), PASSWORD.to_owned()));
        let git = HttpGitServer::start(base.path(), auth.clone()).await;
        let lfs = LfsServer::start(LfsOptions {
            auth,
            forward_git_to: Some(git.url("")),
            separate_storage: false,
        })
        .await;
        let home = LfsHome::new();
        let work = TempDir::new().unwrap();
        let up = Upstream {
            base,
            _git: git,
            lfs,
            home,
            work,
        };
        up.git(&["init", "--quiet", "--initial-branch=main"]).await;
        up.git(&["lfs", "track", "*.bin"]).await;
        up
    }

    /// The URL a mirror is created from (no credentials in it).
    fn url(&self) -> String {
        format!("{}/up.git", self.lfs.url())
    }

    fn push_url(&self) -> String {
        self.url()
            .replace("http://", &format!("http://{USER}:{PASSWORD}@"))
    }

    async fn git(&self, args: &[&str]) -> String {
        ok(&lfs_git(&self.home, self.work.path(), args).await)
    }

    async fn commit(&self, files: &[(&str, &[u8])], message: &str) {
        for (name, content) in files {
            let path = self.work.path().join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, content).unwrap();
        }
        self.git(&["add", "--all"]).await;
        self.git(&["commit", "--quiet", "-m", message]).await;
    }

    async fn push(&self, refs: &[&str]) {
        let url = self.push_url();
        let mut args = vec!["push", "--quiet", url.as_str()];
        args.extend_from_slice(refs);
        self.git(&args).await;
        // The upstream's default branch, as a forge sets it.
        mirrorhub_testkit::git(
            &self.base.path().join("up.git"),
            ["symbolic-ref", "HEAD", "refs/heads/main"],
        );
    }
}

async fn wait_until(hub: &Hub, repo: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let (_, r) = hub.get(&format!("/api/v1/repos/{repo}")).await;
        if done(&r) {
            return r;
        }
        assert!(
            Instant::now() < deadline,
            "{repo}: never {what}: {r}\n{}",
            hub.log_text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Clones `owner/name` from the hub with git-lfs into a new directory.
async fn clone_from_hub(hub: &Hub, home: &LfsHome, repo: &str, token: &str) -> (TempDir, Output) {
    let dest = TempDir::new().unwrap();
    let url = hub.base.replace("http://", &format!("http://x:{token}@")) + &format!("/{repo}.git");
    let out = lfs_git(home, dest.path(), &["clone", "--quiet", &url, "clone"]).await;
    (dest, out)
}

/// Asks the hub's LFS batch API of `repo` for `operation` on `objects` (`[(oid, size)]`), with
/// `token` as bearer credentials when given.
async fn batch(
    hub: &Hub,
    repo: &str,
    operation: &str,
    objects: &[(String, usize)],
    token: Option<&str>,
) -> reqwest::Response {
    let objects: Vec<Value> = objects
        .iter()
        .map(|(oid, size)| json!({"oid": oid, "size": size}))
        .collect();
    let mut request = reqwest::Client::new()
        .post(format!("{}/{repo}.git/info/lfs/objects/batch", hub.base))
        .header("Accept", "application/vnd.git-lfs+json")
        .json(&json!({"operation": operation, "objects": objects}));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.unwrap()
}

/// Where the hub keeps an object's file.
fn object_file(hub: &Hub, oid: &str) -> std::path::PathBuf {
    hub.data_dir
        .join("lfs/objects")
        .join(&oid[0..2])
        .join(&oid[2..4])
        .join(oid)
}

fn object_files(hub: &Hub) -> usize {
    fn count(dir: &Path) -> usize {
        std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| {
                if e.path().is_dir() {
                    count(&e.path())
                } else {
                    1
                }
            })
            .sum()
    }
    count(&hub.data_dir.join("lfs/objects"))
}

async fn a_mirror_copies_every_lfs_object_and_serves_them_alone(db: TestDb) {
    let up = Upstream::start().await;
    let big = noise(5 * 1024 * 1024, 1);
    let model = noise(80_000, 2);
    let old = noise(30_000, 3);
    let dev = noise(40_000, 4);
    up.commit(&[("README.md", b"plain\n"), ("old.bin", &old)], "first")
        .await;
    up.git(&["tag", "v1"]).await;
    // old.bin survives only in v1's history.
    up.git(&["rm", "--quiet", "old.bin"]).await;
    up.commit(&[("big.bin", &big), ("data/model.bin", &model)], "models")
        .await;
    up.git(&["checkout", "--quiet", "-b", "dev"]).await;
    up.commit(&[("dev.bin", &dev)], "dev data").await;
    up.git(&["checkout", "--quiet", "main"]).await;
    up.push(&["main", "dev", "v1"]).await;

    let hub = Hub::start(&db, &[]).await;
    let (status, created) = hub
        .post(
            "/api/v1/repos",
            json!({"url": up.url(), "owner": "team", "name": "models", "mode": "mirror", "username": USER, "token": PASSWORD}),
        )
        .await;
    assert_eq!(status, 202, "{created}");
    assert_eq!(created["lfs"]["enabled"], true, "{created}");
    let repo = wait_until(&hub, "team/models", "copied with its LFS objects", |r| {
        r["state"] == "ready" && r["lfs"]["objects"] == 4
    })
    .await;
    assert_eq!(repo["lfs"]["missing"], 0, "{repo}");
    assert_eq!(
        repo["lfs"]["bytes"],
        (big.len() + model.len() + old.len() + dev.len()) as i64,
        "{repo}"
    );
    assert!(repo["lfs"]["last_error"].is_null(), "{repo}");
    // The mirror's credentials went only to the upstream, and with the batch requests.
    let batches: Vec<_> = up
        .lfs
        .requests()
        .into_iter()
        .filter(|r| r.path.ends_with("/objects/batch"))
        .collect();
    assert!(!batches.is_empty());
    assert!(batches.iter().all(|r| r
        .authorization
        .as_deref()
        .is_some_and(|a| a.starts_with("Basic "))));

    // A new LFS file upstream: a sync brings it (and reads only the new commit).
    let added = noise(50_000, 5);
    up.commit(&[("added.bin", &added)], "more data").await;
    up.push(&["main"]).await;
    let last = hub.latest_run_id("team/models").await;
    let (status, _) = hub.post("/api/v1/repos/team/models/sync", json!({})).await;
    assert_eq!(status, 202);
    let (repo, run) = hub.wait_for_run("team/models", last).await;
    assert_eq!(run["outcome"], "success", "{run}");
    assert!(run["warnings"].is_null(), "{run}");
    assert_eq!(repo["lfs"]["objects"], 5, "{repo}");
    assert_eq!(repo["lfs"]["missing"], 0, "{repo}");

    // With the upstream gone, a clone from the hub alone gets every file byte for byte, on
    // every branch and tag.
    drop(up.lfs);
    let (dest, out) = clone_from_hub(&hub, &up.home, "team/models", TOKEN).await;
    ok(&out);
    let clone = dest.path().join("clone");
    let read = |name: &str| std::fs::read(clone.join(name)).unwrap();
    assert!(read("big.bin") == big, "big.bin is not the LFS object");
    assert!(read("data/model.bin") == model);
    assert!(read("added.bin") == added);
    assert_eq!(read("README.md"), b"plain\n");
    ok(&lfs_git(&up.home, &clone, &["checkout", "--quiet", "dev"]).await);
    assert!(read("dev.bin") == dev);
    ok(&lfs_git(&up.home, &clone, &["checkout", "--quiet", "v1"]).await);
    assert!(read("old.bin") == old);

    // Without credentials, a private repository's objects are not handed out.
    let anonymous = batch(
        &hub,
        "team/models",
        "download",
        &[(oid(&big), big.len())],
        None,
    )
    .await;
    assert_eq!(anonymous.status(), 401);
    // A mirror refuses uploads, saying why.
    let upload = batch(
        &hub,
        "team/models",
        "upload",
        &[(oid(b"x"), 1)],
        Some(TOKEN),
    )
    .await;
    assert_eq!(upload.status(), 403);
    let body: Value = upload.json().await.unwrap();
    assert!(
        body["message"].as_str().unwrap().contains("mirror"),
        "{body}"
    );

    // The password was never written anywhere in plain text.
    assert!(!hub.log_text().contains(PASSWORD));

    // Deleting the repository releases its objects.
    assert_eq!(object_files(&hub), 5);
    let (status, _) = hub
        .call(reqwest::Method::DELETE, "/api/v1/repos/team/models", None)
        .await;
    assert_eq!(status, 204);
    assert_eq!(object_files(&hub), 0);
}

async fn bad_objects_are_refused_reported_and_retried(db: TestDb) {
    let up = Upstream::start().await;
    let good = noise(20_000, 10);
    let bad = noise(30_000, 11);
    up.commit(&[("good.bin", &good), ("bad.bin", &bad)], "data")
        .await;
    up.push(&["main"]).await;
    up.lfs.set_fault(LfsFault::CorruptContent(oid(&bad)));

    let hub = Hub::start(&db, &[]).await;
    let (status, created) = hub
        .post(
            "/api/v1/repos",
            json!({"url": up.url(), "owner": "team", "name": "data", "mode": "mirror", "username": USER, "token": PASSWORD}),
        )
        .await;
    assert_eq!(status, 202, "{created}");
    let (repo, run) = hub.wait_for_run("team/data", None).await;
    // The refs are mirrored; the corrupt object is refused, reported and not stored.
    assert_eq!(run["outcome"], "success", "{run}");
    let warning = run["warnings"].as_str().unwrap_or_default();
    assert!(warning.contains("lfs_missing: 1"), "{run}");
    assert!(warning.contains(&oid(&bad)), "{run}");
    assert!(warning.contains("lfs_object_invalid"), "{run}");
    assert_eq!(repo["lfs"]["objects"], 2, "{repo}");
    assert_eq!(repo["lfs"]["missing"], 1, "{repo}");
    assert!(
        repo["lfs"]["last_error"]
            .as_str()
            .unwrap()
            .contains("verification"),
        "{repo}"
    );
    assert_eq!(object_files(&hub), 1);

    // A client asking the hub for it gets a clear per-object 404, not a hang.
    let asked = [(oid(&bad), bad.len()), (oid(&good), good.len())];
    let answer: Value = batch(&hub, "team/data", "download", &asked, Some(TOKEN))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(answer["objects"][0]["error"]["code"], 404, "{answer}");
    assert!(answer["objects"][0]["error"]["message"]
        .as_str()
        .unwrap()
        .contains("does not have this LFS object yet"));
    assert!(
        answer["objects"][1]["actions"]["download"]["href"].is_string(),
        "{answer}"
    );

    // An href to the metadata address is refused by the address policy.
    up.lfs.set_fault(LfsFault::HrefTo(
        "http://169.254.169.254/latest/meta-data/".into(),
    ));
    let last = hub.latest_run_id("team/data").await;
    hub.post("/api/v1/repos/team/data/sync", json!({})).await;
    let (_, run) = hub.wait_for_run("team/data", last).await;
    assert!(
        run["warnings"]
            .as_str()
            .unwrap_or_default()
            .contains("url_not_allowed"),
        "{run}"
    );

    // Hostile batch answers are errors with a code, never a crash.
    for (fault, code) in [
        (LfsFault::CrLfHref, "lfs_batch_invalid"),
        (LfsFault::WrongSizeInBatch, "lfs_batch_invalid"),
        (LfsFault::MissingActions, "lfs_batch_invalid"),
        (LfsFault::HugeBatch(6 << 20), "lfs_batch_invalid"),
    ] {
        up.lfs.set_fault(fault);
        let last = hub.latest_run_id("team/data").await;
        hub.post("/api/v1/repos/team/data/sync", json!({})).await;
        let (_, run) = hub.wait_for_run("team/data", last).await;
        assert_eq!(run["outcome"], "unchanged", "{run}");
        assert!(
            run["warnings"].as_str().unwrap_or_default().contains(code),
            "{code}: {run}"
        );
    }

    // Fixed upstream: the next sync (a no-op for the refs) fetches what was missing.
    up.lfs.set_fault(LfsFault::None);
    let last = hub.latest_run_id("team/data").await;
    hub.post("/api/v1/repos/team/data/sync", json!({})).await;
    let (repo, run) = hub.wait_for_run("team/data", last).await;
    assert!(run["warnings"].is_null(), "{run}");
    assert_eq!(repo["lfs"]["missing"], 0, "{repo}");
    assert!(repo["lfs"]["last_error"].is_null(), "{repo}");
    let (dest, out) = clone_from_hub(&hub, &up.home, "team/data", TOKEN).await;
    ok(&out);
    assert!(std::fs::read(dest.path().join("clone/bad.bin")).unwrap() == bad);

    // An object file gone from under the hub is answered as missing and fetched again by the
    // next sync.
    let good_oid = oid(&good);
    let file = object_file(&hub, &good_oid);
    std::fs::remove_file(&file).unwrap();
    let answer: Value = batch(
        &hub,
        "team/data",
        "download",
        &[(good_oid, good.len())],
        Some(TOKEN),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(answer["objects"][0]["error"]["code"], 404, "{answer}");
    let (_, repo) = hub.get("/api/v1/repos/team/data").await;
    assert_eq!(repo["lfs"]["missing"], 1, "{repo}");
    let last = hub.latest_run_id("team/data").await;
    hub.post("/api/v1/repos/team/data/sync", json!({})).await;
    let (repo, _) = hub.wait_for_run("team/data", last).await;
    assert_eq!(repo["lfs"]["missing"], 0, "{repo}");
    assert!(std::fs::read(&file).unwrap() == good);
    assert!(hub.log_text().contains("LFS object not fetched"));
    assert!(!hub.log_text().contains("panicked"));
}

async fn a_migrated_repository_takes_lfs_pushes_from_writers_only(db: TestDb) {
    let up = Upstream::start().await;
    let first = noise(25_000, 20);
    up.commit(&[("first.bin", &first)], "first").await;
    up.push(&["main"]).await;

    let hub = Hub::start(&db, &[]).await;
    let (status, created) = hub
        .post(
            "/api/v1/repos",
            json!({"url": up.url(), "owner": "team", "name": "moved", "mode": "migrate", "username": USER, "token": PASSWORD}),
        )
        .await;
    assert_eq!(status, 202, "{created}");
    let repo = wait_until(&hub, "team/moved", "migrated", |r| {
        r["state"] == "ready" && r["lfs"]["objects"] == 1 && r["lfs"]["missing"] == 0
    })
    .await;
    assert_eq!(repo["mode"], "migrate", "{repo}");

    // A second primary of the same upstream without LFS: pointer files only, and the object
    // the hub holds for the first one is not linked to it on its id alone.
    let (status, other) = hub
        .post(
            "/api/v1/repos",
            json!({"url": up.url(), "owner": "team", "name": "pointers", "mode": "migrate", "username": USER, "token": PASSWORD, "lfs": false}),
        )
        .await;
    assert_eq!(status, 202, "{other}");
    let other = wait_until(&hub, "team/pointers", "migrated", |r| r["state"] == "ready").await;
    assert_eq!(other["lfs"]["enabled"], false, "{other}");
    assert_eq!(other["lfs"]["objects"], 0, "{other}");
    let first_object = [(oid(&first), first.len())];
    let answer: Value = batch(
        &hub,
        "team/pointers",
        "download",
        &first_object,
        Some(TOKEN),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(answer["objects"][0]["error"]["code"], 404, "{answer}");
    let answer: Value = batch(&hub, "team/pointers", "upload", &first_object, Some(TOKEN))
        .await
        .json()
        .await
        .unwrap();
    assert!(
        answer["objects"][0]["actions"]["upload"]["href"].is_string(),
        "the upload was skipped: {answer}"
    );
    drop(up.lfs);

    // Work from a clone of the hub: a new LFS file pushed with the admin token.
    let (dest, out) = clone_from_hub(&hub, &up.home, "team/moved", TOKEN).await;
    ok(&out);
    let clone = dest.path().join("clone");
    assert!(std::fs::read(clone.join("first.bin")).unwrap() == first);
    let second = noise(300_000, 21);
    std::fs::write(clone.join("second.bin"), &second).unwrap();
    ok(&lfs_git(&up.home, &clone, &["add", "second.bin"]).await);
    ok(&lfs_git(&up.home, &clone, &["commit", "--quiet", "-m", "second"]).await);
    ok(&lfs_git(&up.home, &clone, &["push", "--quiet", "origin", "main"]).await);
    let repo = wait_until(&hub, "team/moved", "holding the pushed object", |r| {
        r["lfs"]["objects"] == 2
    })
    .await;
    assert_eq!(repo["lfs"]["missing"], 0, "{repo}");
    let (again, out) = clone_from_hub(&hub, &up.home, "team/moved", TOKEN).await;
    ok(&out);
    assert!(std::fs::read(again.path().join("clone/second.bin")).unwrap() == second);

    // Without a token that may write, no upload.
    let upload = batch(&hub, "team/moved", "upload", &[(oid(b"x"), 1)], None).await;
    assert_eq!(upload.status(), 401);
    // A PUT whose bytes are not the object is refused and stores nothing.
    let fake = oid(b"what it claims to be");
    let put = reqwest::Client::new()
        .put(format!(
            "{}/team/moved.git/info/lfs/objects/{fake}",
            hub.base
        ))
        .bearer_auth(TOKEN)
        .body("something else entirely")
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 422);
    assert_eq!(object_files(&hub), 2);
}

async fn a_hub_killed_during_a_download_leaves_no_partial_object(db: TestDb) {
    let up = Upstream::start().await;
    let big = noise(2 * 1024 * 1024, 30);
    up.commit(&[("big.bin", &big)], "big").await;
    up.push(&["main"]).await;
    up.lfs.set_fault(LfsFault::StallAfter(200_000));

    let mut hub = Hub::start(&db, &[("MIRRORHUB_SYNC_LEASE", "3s")]).await;
    let (status, created) = hub
        .post(
            "/api/v1/repos",
            json!({"url": up.url(), "owner": "team", "name": "big", "mode": "mirror", "username": USER, "token": PASSWORD}),
        )
        .await;
    assert_eq!(status, 202, "{created}");
    // Wait until the download has written part of the object, then kill the hub.
    let tmp = hub.data_dir.join("lfs/tmp");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !std::fs::read_dir(&tmp)
        .into_iter()
        .flatten()
        .flatten()
        .any(|e| e.metadata().is_ok_and(|m| m.len() > 0))
    {
        assert!(
            Instant::now() < deadline,
            "the download never started:\n{}",
            hub.log_text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    hub.kill9();
    assert_eq!(object_files(&hub), 0, "a partial object is visible");

    // Restarted, the interrupted run is taken again and completes the object.
    up.lfs.set_fault(LfsFault::None);
    hub.spawn();
    wait_until(
        &hub,
        "team/big",
        "ready with the object after the restart",
        |r| r["state"] == "ready" && r["lfs"]["objects"] == 1 && r["lfs"]["missing"] == 0,
    )
    .await;
    let stored = object_file(&hub, &oid(&big));
    assert!(std::fs::read(stored).unwrap() == big);
}

async fn a_migration_is_not_done_while_its_lfs_server_is_down(db: TestDb) {
    let up = Upstream::start().await;
    let data = noise(40_000, 40);
    up.commit(&[("data.bin", &data)], "data").await;
    up.push(&["main"]).await;
    // The LFS server answers 503 (with Retry-After: 1) to every batch request for now.
    up.lfs.set_fault(LfsFault::Unavailable(1000));

    let hub = Hub::start(&db, &[]).await;
    let (status, created) = hub
        .post(
            "/api/v1/repos",
            json!({"url": up.url(), "owner": "team", "name": "move", "mode": "migrate", "username": USER, "token": PASSWORD}),
        )
        .await;
    assert_eq!(status, 202, "{created}");
    let (repo, run) = hub.wait_for_run("team/move", None).await;
    // Without its LFS objects the migration is not complete: it fails, saying why, instead
    // of leaving a primary that would never fetch them.
    assert_eq!(run["outcome"], "failed", "{run}");
    assert_eq!(run["error"]["code"], "upstream_unreachable", "{run}");
    assert!(
        run["error"]["message"]
            .as_str()
            .unwrap()
            .contains("LFS objects are missing"),
        "{run}"
    );
    assert_ne!(repo["state"], "ready", "{repo}");
    assert_eq!(repo["lfs"]["missing"], 1, "{repo}");

    // The LFS server is back: syncing again finishes the migration.
    up.lfs.set_fault(LfsFault::None);
    let last = hub.latest_run_id("team/move").await;
    let (status, body) = hub.post("/api/v1/repos/team/move/sync", json!({})).await;
    assert_eq!(status, 202, "{body}");
    let (repo, run) = hub.wait_for_run("team/move", last).await;
    assert_ne!(run["outcome"], "failed", "{run}");
    assert_eq!(repo["state"], "ready", "{repo}");
    assert_eq!(repo["mode"], "migrate", "{repo}");
    assert_eq!(repo["lfs"]["missing"], 0, "{repo}");
    assert_eq!(repo["lfs"]["objects"], 1, "{repo}");
}

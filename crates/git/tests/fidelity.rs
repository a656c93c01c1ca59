//! The no-op check (an in-process listing, no git spawned), backups of overwritten tips and
//! ref filters, against real git servers (`git http-backend`, `git daemon`) on 127.0.0.1.

mod support;

use std::path::{Path, PathBuf};

use mirrorhub_core::{RefFilter, RefFilterSpec};
use mirrorhub_git::{no_progress, GitEngine, SyncOptions, BACKUP_PREFIX};
use mirrorhub_testkit::{git, try_git, GitDaemon, HttpGitServer};
use support::{
    calls, counting_engine, engine, head_of, loopback, refs_of, url, wrapped_engine, Upstream,
};

/// A mirror of `upstream` cloned by `engine` under `root`, the `i`th of a loop over transports.
async fn cloned(
    engine: &GitEngine,
    root: &Path,
    i: usize,
    upstream: &str,
) -> (mirrorhub_core::UpstreamUrl, PathBuf) {
    let u = url(upstream);
    let mirror = root.join(format!("mirror-{i}.git"));
    engine
        .clone_mirror(&u, None, &mirror, no_progress())
        .await
        .unwrap();
    (u, mirror)
}

struct Servers {
    http: HttpGitServer,
    daemon: GitDaemon,
}

impl Servers {
    async fn start(root: &Path) -> Self {
        Self {
            http: HttpGitServer::start(root, None).await,
            daemon: GitDaemon::start(root).await,
        }
    }

    fn urls(&self, repo: &str) -> [String; 2] {
        [self.http.url(repo), self.daemon.url(repo)]
    }
}

#[tokio::test]
async fn a_no_op_sync_runs_no_git_and_every_change_is_seen() {
    let root = tempfile::tempdir().unwrap();
    let up = Upstream::rich(root.path(), "up.git");
    let servers = Servers::start(root.path()).await;
    let (engine, log) = counting_engine(root.path()).await;
    for (i, u) in servers.urls("up.git").iter().enumerate() {
        let (u, mirror) = cloned(&engine, root.path(), i, u).await;
        let sync = || engine.sync_mirror(&u, None, &mirror, no_progress());

        // Equal (the pull-request ref ignored): no git at all.
        let before = calls(&log);
        let report = sync().await.unwrap();
        assert!(report.noop && report.changes.is_empty(), "{u}: {report:?}");
        assert_eq!(report.listed_behind, Some(0));
        assert_eq!(calls(&log), before, "{u}: a no-op sync ran git");
        // A new pull-request ref is not a change either.
        up.git(&["update-ref", "refs/pull/2/head", &up.rev("main")]);
        assert!(sync().await.unwrap().noop);

        // HEAD only.
        up.git(&["symbolic-ref", "HEAD", "refs/heads/dev"]);
        let report = sync().await.unwrap();
        assert!(!report.noop, "{u}: HEAD moved");
        assert_eq!(report.head.as_deref(), Some("refs/heads/dev"));
        assert_eq!(head_of(&mirror), "refs/heads/dev");
        up.git(&["symbolic-ref", "HEAD", "refs/heads/main"]);
        sync().await.unwrap();

        // A new tag only.
        up.git(&["tag", &format!("new-{i}"), "dev"]);
        let report = sync().await.unwrap();
        assert_eq!(report.listed_behind, Some(1));
        assert_eq!(report.changes.len(), 1, "{report:?}");

        // A deleted ref only.
        up.git(&["tag", "-d", &format!("new-{i}")]);
        let report = sync().await.unwrap();
        assert_eq!(report.changes.len(), 1, "{report:?}");
        assert_eq!(refs_of(&mirror), refs_of(&up.path));
        let before = calls(&log);
        assert!(sync().await.unwrap().noop);
        assert_eq!(calls(&log), before);
    }
}

#[tokio::test]
async fn an_empty_advertisement_never_empties_a_mirror_by_the_no_op_path() {
    let root = tempfile::tempdir().unwrap();
    let up = Upstream::rich(root.path(), "up.git");
    let servers = Servers::start(root.path()).await;
    let engine = engine(loopback()).await;
    for (i, u) in servers.urls("up.git").iter().enumerate() {
        let (u, mirror) = cloned(&engine, root.path(), i, u).await;
        let snapshot = mirrorhub_testkit::RefSnapshot::take(&up.path);
        // Every branch and tag deleted upstream: the fetch path's rule applies (a git server
        // that lists nothing is an emptied upstream), and every tip is kept as a backup.
        for name in snapshot
            .refs()
            .keys()
            .filter(|n| !n.starts_with("refs/pull/"))
        {
            up.git(&["update-ref", "-d", name]);
        }
        let report = engine
            .sync_mirror(&u, None, &mirror, no_progress())
            .await
            .unwrap();
        assert!(!report.noop);
        assert_eq!(refs_of(&mirror), "", "{u}");
        assert_eq!(report.backups.len(), report.changes.len());
        snapshot.restore(&up.path);
    }
}

#[tokio::test]
async fn overwritten_and_deleted_tips_are_kept() {
    let root = tempfile::tempdir().unwrap();
    let up = Upstream::rich(root.path(), "up.git");
    let servers = Servers::start(root.path()).await;
    let engine = engine(loopback()).await;
    let u = url(&servers.http.url("up.git"));
    let mirror = root.path().join("mirror.git");
    engine
        .clone_mirror(&u, None, &mirror, no_progress())
        .await
        .unwrap();
    let (old_feature, old_v1, old_main) = (up.rev("feature"), up.rev("v1"), up.rev("main"));
    let s = &up.scratch;
    s.checkout("feature");
    s.git(["commit", "--amend", "-m", "rewritten feature"]);
    s.checkout("main");
    s.git(["tag", "-d", "v1"]);
    s.commit_file("more.txt", "more\n", "more");
    up.push();
    let report = engine
        .sync_mirror(&u, None, &mirror, no_progress())
        .await
        .unwrap();
    let mut kept: Vec<(&str, &str)> = report
        .backups
        .iter()
        .map(|b| (b.ref_name.as_str(), b.old.as_str()))
        .collect();
    kept.sort();
    assert_eq!(
        kept,
        [
            ("refs/heads/feature", old_feature.as_str()),
            ("refs/tags/v1", old_v1.as_str())
        ]
    );
    for b in &report.backups {
        assert!(b.backup_ref.starts_with(BACKUP_PREFIX));
        assert_eq!(git(&mirror, ["rev-parse", &b.backup_ref]).trim(), b.old);
    }
    // A fast-forward keeps no backup (the foretold one was dropped).
    let all = git(
        &mirror,
        ["for-each-ref", "--format=%(refname)", "refs/mirrorhub"],
    );
    assert_eq!(all.lines().count(), 2, "{all}");
    assert!(!all.contains("refs/heads/main"), "{old_main}: {all}");
    // `fetch --prune` of later syncs leaves them alone.
    s.checkout("dev");
    s.git(["commit", "--amend", "-m", "rewritten dev"]);
    s.checkout("main");
    up.push();
    let report = engine
        .sync_mirror(&u, None, &mirror, no_progress())
        .await
        .unwrap();
    assert_eq!(report.backups.len(), 1);
    let all = git(
        &mirror,
        ["for-each-ref", "--format=%(refname)", "refs/mirrorhub"],
    );
    assert_eq!(all.lines().count(), 3, "{all}");
    assert_eq!(engine.backup_refs(&mirror).await.unwrap().len(), 3);

    // Removal, only while it still points at the saved tip.
    let b = &report.backups[0];
    engine
        .delete_backup_ref(
            &mirror,
            &b.backup_ref,
            "0000000000000000000000000000000000000000",
        )
        .await
        .unwrap();
    assert!(try_git(&mirror, ["rev-parse", "--verify", &b.backup_ref])
        .status
        .success());
    engine
        .delete_backup_ref(&mirror, &b.backup_ref, &b.old)
        .await
        .unwrap();
    assert!(!try_git(&mirror, ["rev-parse", "--verify", &b.backup_ref])
        .status
        .success());
}

fn filter(include: &[&str], exclude: &[&str]) -> RefFilter {
    RefFilter::parse(&RefFilterSpec {
        include: include.iter().map(|s| s.to_string()).collect(),
        exclude: exclude.iter().map(|s| s.to_string()).collect(),
    })
    .unwrap()
}

fn names(repo: &Path) -> Vec<String> {
    git(
        repo,
        [
            "for-each-ref",
            "--format=%(refname)",
            "refs/heads",
            "refs/tags",
        ],
    )
    .lines()
    .map(str::to_owned)
    .collect()
}

#[tokio::test]
async fn a_filter_fetches_only_what_it_keeps() {
    let root = tempfile::tempdir().unwrap();
    let up = Upstream::rich(root.path(), "up.git");
    let servers = Servers::start(root.path()).await;
    let engine = engine(loopback()).await;
    for (i, u) in servers.urls("up.git").iter().enumerate() {
        let u = url(u);
        let mirror = root.path().join(format!("mirror-{i}.git"));
        let keep = filter(&["main", "dev", "v*"], &["v1"]);
        let report = engine
            .clone_mirror_with(&u, None, &mirror, no_progress(), &keep)
            .await
            .unwrap();
        assert_eq!(
            names(&mirror),
            ["refs/heads/dev", "refs/heads/main", "refs/tags/v2"]
        );
        assert_eq!(report.changes.len(), 3);
        assert_eq!(head_of(&mirror), "refs/heads/main");
        // The feature branch's own commit was never fetched.
        let feature = up.rev("feature");
        assert!(!try_git(&mirror, ["cat-file", "-e", &feature])
            .status
            .success());

        let options = |f: RefFilter| SyncOptions {
            filter: f,
            backups: true,
            on_listing: None,
        };
        let report = engine
            .sync_mirror_with(&u, None, &mirror, no_progress(), &options(keep.clone()))
            .await
            .unwrap();
        assert!(report.noop, "{u}: {report:?}");

        // Narrowed: dev and v2 go (kept as backups).
        let report = engine
            .sync_mirror_with(
                &u,
                None,
                &mirror,
                no_progress(),
                &options(filter(&["main"], &[])),
            )
            .await
            .unwrap();
        assert_eq!(names(&mirror), ["refs/heads/main"]);
        assert_eq!(report.changes.len(), 2);
        assert_eq!(report.backups.len(), 2);
        // Widened to everything: the mirror equals the upstream again.
        engine
            .sync_mirror_with(
                &u,
                None,
                &mirror,
                no_progress(),
                &options(RefFilter::default()),
            )
            .await
            .unwrap();
        assert_eq!(refs_of(&mirror), refs_of(&up.path));
    }
}

#[tokio::test]
async fn a_ref_deleted_between_the_listing_and_the_narrow_fetch_is_fetched_the_full_way() {
    let root = tempfile::tempdir().unwrap();
    let up = Upstream::rich(root.path(), "up.git");
    let servers = Servers::start(root.path()).await;
    // Armed, the first `git fetch --stdin` (the narrow fetch) finds the new branch gone
    // upstream: what a push deleting it right after the listing does.
    let armed = root.path().join("armed");
    let prelude = format!(
        "case \"$*\" in *'fetch --stdin'*) if rm '{armed}' 2>/dev/null; then \
         GIT_DIR='{up}' git update-ref -d refs/heads/racing || exit 99; fi;; esac",
        armed = armed.display(),
        up = up.path.display(),
    );
    let (engine, log) = wrapped_engine(root.path(), &prelude).await;
    for (i, u) in servers.urls("up.git").iter().enumerate() {
        let (u, mirror) = cloned(&engine, root.path(), i, u).await;
        // Only new and moved refs: the narrow fetch's case.
        up.git(&["branch", "racing", "dev"]);
        up.git(&["update-ref", "refs/heads/main", &up.rev("feature")]);
        std::fs::write(&armed, "").unwrap();
        std::fs::write(&log, "").unwrap();
        let report = engine
            .sync_mirror(&u, None, &mirror, no_progress())
            .await
            .unwrap_or_else(|e| panic!("{u}: {e}"));
        assert!(!armed.exists(), "{u}: the narrow fetch did not run");
        let fetches: Vec<String> = std::fs::read_to_string(&log)
            .unwrap()
            .lines()
            .filter(|l| l.contains("fetch --"))
            .map(|l| {
                l[l.find("fetch --").unwrap()..]
                    .split(' ')
                    .take(2)
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect();
        assert_eq!(fetches, ["fetch --stdin", "fetch --prune"], "{u}");
        assert!(!refs_of(&up.path).contains("refs/heads/racing"));
        assert_eq!(refs_of(&mirror), refs_of(&up.path), "{u}: {report:?}");
        assert_eq!(report.changes.len(), 1, "{u}: main moved: {report:?}");
        // Put back for the next transport.
        up.git(&["update-ref", "refs/heads/main", &up.rev("v2^{commit}")]);
    }
}

#[tokio::test]
async fn behind_counts_without_fetching() {
    let root = tempfile::tempdir().unwrap();
    let up = Upstream::rich(root.path(), "up.git");
    let servers = Servers::start(root.path()).await;
    let (engine, log) = counting_engine(root.path()).await;
    let u = url(&servers.daemon.url("up.git"));
    let mirror = root.path().join("mirror.git");
    engine
        .clone_mirror(&u, None, &mirror, no_progress())
        .await
        .unwrap();
    let all = RefFilter::default();
    assert_eq!(engine.behind(&u, None, &mirror, &all).await.unwrap(), 0);
    up.git(&["tag", "extra", "main"]);
    up.git(&["tag", "-d", "v1"]);
    up.git(&["symbolic-ref", "HEAD", "refs/heads/dev"]);
    let before = calls(&log);
    assert_eq!(engine.behind(&u, None, &mirror, &all).await.unwrap(), 3);
    assert_eq!(calls(&log), before, "a listing ran git");
    assert_eq!(
        engine
            .behind(&u, None, &mirror, &filter(&["main"], &[]))
            .await
            .unwrap(),
        // HEAD, and every branch and tag but main the mirror holds.
        1 + names(&mirror).len() - 1
    );
}

#[tokio::test]
async fn an_http_origin_listed_before_is_listed_in_one_request() {
    let root = tempfile::tempdir().unwrap();
    let up = Upstream::rich(root.path(), "up.git");
    Upstream::rich(root.path(), "other.git");
    let http = HttpGitServer::start(root.path(), None).await;
    let engine = support::engine(loopback()).await;
    let requests = || {
        let seen: Vec<String> = http
            .requests()
            .iter()
            .map(|r| format!("{} {} {}", r.method, r.path, r.status))
            .collect();
        http.reset_requests();
        seen
    };
    let mirror = root.path().join("mirror.git");
    let u = url(&http.url("up.git"));
    engine
        .clone_mirror(&u, None, &mirror, no_progress())
        .await
        .unwrap();
    let all = RefFilter::default();
    requests();

    // First listing: the capabilities, then ls-refs.
    assert_eq!(engine.behind(&u, None, &mirror, &all).await.unwrap(), 0);
    assert_eq!(
        requests(),
        [
            "GET /up.git/info/refs 200",
            "POST /up.git/git-upload-pack 200"
        ]
    );
    // From then on, for every repository of that origin: ls-refs alone, changes still seen.
    up.git(&["tag", "extra", "main"]);
    assert_eq!(engine.behind(&u, None, &mirror, &all).await.unwrap(), 1);
    assert_eq!(requests(), ["POST /up.git/git-upload-pack 200"]);
    let report = engine
        .sync_mirror(&u, None, &mirror, no_progress())
        .await
        .unwrap();
    assert_eq!(report.changes.len(), 1, "{report:?}");
    assert_eq!(refs_of(&mirror), refs_of(&up.path));
    requests();
    let other = url(&http.url("other.git"));
    assert!(engine.behind(&other, None, &mirror, &all).await.unwrap() > 0);
    assert_eq!(requests(), ["POST /other.git/git-upload-pack 200"]);

    // When ls-refs fails, the listing starts over (and fails here: no such repository, which
    // git is then left to report); the next one asks for the capabilities again.
    let gone = url(&http.url("gone.git"));
    engine.behind(&gone, None, &mirror, &all).await.unwrap_err();
    assert_eq!(
        requests()[..2],
        [
            "POST /gone.git/git-upload-pack 404",
            "GET /gone.git/info/refs 404"
        ]
    );
    assert_eq!(engine.behind(&u, None, &mirror, &all).await.unwrap(), 0);
    assert_eq!(
        requests(),
        [
            "GET /up.git/info/refs 200",
            "POST /up.git/git-upload-pack 200"
        ]
    );

    // A redirected upstream is asked where it is every time.
    let redirect =
        support::redirecting_http(format!("http://127.0.0.1:{}", http.addr().port())).await;
    let moved = url(&redirect.url("http", "up.git"));
    for _ in 0..2 {
        assert_eq!(engine.behind(&moved, None, &mirror, &all).await.unwrap(), 0);
        assert_eq!(
            requests(),
            [
                "GET /up.git/info/refs 200",
                "POST /up.git/git-upload-pack 200"
            ]
        );
    }
}

//! Exactness: clone and sync against real git servers (git daemon and git http-backend) on
//! 127.0.0.1, with every kind of ref change, HEAD changes, no-op syncs and empty upstreams.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use mirrorhub_core::RefChangeKind;
use mirrorhub_core::UpstreamUrl;
use mirrorhub_git::{no_progress, CopyEngine, GitEngine, SyncReport};
use mirrorhub_testkit::{git, GitDaemon, HttpGitServer};
use support::{engine, head_of, loopback, refs_of, url, Upstream};

#[derive(Clone, Copy, Debug)]
enum Via {
    Daemon,
    Http,
}

struct Servers {
    daemon: GitDaemon,
    http: HttpGitServer,
}

impl Servers {
    async fn start(root: &Path) -> Self {
        Self {
            daemon: GitDaemon::start(root).await,
            http: HttpGitServer::start(root, None).await,
        }
    }

    fn url(&self, via: Via, repo: &str) -> mirrorhub_core::UpstreamUrl {
        match via {
            Via::Daemon => url(&self.daemon.url(repo)),
            Via::Http => url(&self.http.url(repo)),
        }
    }

    /// Checks how often the upstream was asked for its refs since the last check: a sync
    /// lists it once in process, and when that listing differs from the mirror, fetches once
    /// (whose own advertisement gives HEAD), with no other listing beside them. Counted over
    /// HTTP only (`GET info/refs` starts every conversation there, but for the in-process
    /// listing of an origin listed before, whose one `POST` comes first); the daemon logs
    /// nothing.
    fn assert_conversations(&self, via: Via, expected: usize) {
        if let Via::Http = via {
            let requests = self.http.requests();
            self.http.reset_requests();
            let listings = requests
                .iter()
                .filter(|r| r.method == "GET" && r.path.ends_with("/info/refs"))
                .count()
                + usize::from(requests.first().is_some_and(|r| r.method == "POST"));
            assert_eq!(listings, expected, "{requests:#?}");
        }
    }
}

/// An upstream served by both servers, an engine allowed to reach them, and where the mirror
/// goes. Fields drop in order: the servers stop before their directory goes.
struct Case {
    up: Upstream,
    servers: Servers,
    engine: GitEngine,
    url: UpstreamUrl,
    mirror: PathBuf,
    _data: tempfile::TempDir,
    _root: tempfile::TempDir,
}

impl Case {
    async fn new(upstream: fn(&Path, &str) -> Upstream, name: &str, via: Via) -> Self {
        let root = tempfile::tempdir().unwrap();
        let up = upstream(root.path(), name);
        let servers = Servers::start(root.path()).await;
        let url = servers.url(via, name);
        let data = tempfile::tempdir().unwrap();
        Case {
            up,
            servers,
            engine: engine(loopback()).await,
            url,
            mirror: data.path().join("mirrors").join(name),
            _data: data,
            _root: root,
        }
    }

    /// A case whose mirror has been cloned already.
    async fn cloned(upstream: fn(&Path, &str) -> Upstream, name: &str, via: Via) -> Self {
        let case = Self::new(upstream, name, via).await;
        case.engine
            .clone_mirror(&case.url, None, &case.mirror, no_progress())
            .await
            .unwrap();
        case
    }
}

fn kinds(report: &SyncReport) -> BTreeMap<String, RefChangeKind> {
    report
        .changes
        .iter()
        .map(|c| (c.name.clone(), c.kind))
        .collect()
}

/// Checks each change's old and new ids against the two upstream listings.
fn assert_journal_matches(report: &SyncReport, before: &str, after: &str) {
    let parse = |text: &str| -> BTreeMap<String, String> {
        text.lines()
            .map(|l| {
                let mut parts = l.split(' ');
                let oid = parts.next().unwrap().to_owned();
                let name = parts.nth(1).unwrap().to_owned();
                (name, oid)
            })
            .collect()
    };
    let (before, after) = (parse(before), parse(after));
    let mut expected: Vec<(String, Option<String>, Option<String>)> = before
        .keys()
        .chain(after.keys())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .filter(|n| before.get(*n) != after.get(*n))
        .map(|n| (n.clone(), before.get(n).cloned(), after.get(n).cloned()))
        .collect();
    expected.sort();
    let got: Vec<(String, Option<String>, Option<String>)> = report
        .changes
        .iter()
        .map(|c| (c.name.clone(), c.old.clone(), c.new.clone()))
        .collect();
    assert_eq!(got, expected);
}

async fn exact_mirror(via: Via) {
    let case = Case::new(Upstream::rich, "rich.git", via).await;
    let Case {
        up,
        servers,
        engine,
        url: u,
        mirror,
        ..
    } = &case;

    // Initial copy: every branch and tag, nothing else, HEAD as upstream.
    let report = engine
        .clone_mirror(u, None, mirror, no_progress())
        .await
        .unwrap();
    assert_eq!(refs_of(mirror), refs_of(&up.path));
    assert_eq!(report.engine, CopyEngine::Gix, "gix makes the first copy");
    assert!(
        !mirror.join("hooks").exists(),
        "no sample hooks from a template"
    );
    assert!(report
        .changes
        .iter()
        .all(|c| c.kind == RefChangeKind::Created && c.old.is_none()));
    assert_journal_matches(&report, "", &refs_of(&up.path));
    assert_eq!((report.branches, report.tags), (3, 5));
    assert_eq!(report.head.as_deref(), Some("refs/heads/main"));
    assert_eq!(head_of(mirror), "refs/heads/main");
    assert!(
        git(mirror, ["for-each-ref", "refs/pull"]).is_empty(),
        "pull-request refs are not mirrored"
    );
    assert!(
        !git(mirror, ["config", "-l"]).contains("remote.origin"),
        "no remote left in the config"
    );
    let leftovers: Vec<_> = std::fs::read_dir(mirror.parent().unwrap())
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(leftovers.len(), 1, "{leftovers:?}");
    assert!(git(mirror, ["fsck", "--no-progress", "--no-dangling"]).is_empty());

    // Nothing changed: no changes.
    servers.http.reset_requests();
    let noop = engine
        .sync_mirror(u, None, mirror, no_progress())
        .await
        .unwrap();
    assert!(noop.changes.is_empty() && noop.noop, "{noop:?}");
    servers.assert_conversations(via, 1);
    assert_eq!(
        (noop.branches, noop.tags, noop.head.as_deref()),
        (3, 5, Some("refs/heads/main"))
    );

    // Every kind of upstream change at once.
    let before = refs_of(&up.path);
    let s = &up.scratch;
    s.checkout("main");
    s.commit_file("src/c.txt", "four\n", "c4"); // main: fast-forward
    s.tag_annotated("v3", "release three"); // created annotated tag
    s.checkout("feature");
    s.git(["reset", "--quiet", "--hard", "main~3"]);
    s.commit_file("feature2.txt", "g\n", "rewritten feature"); // feature: forced
    s.git(["branch", "topic"]); // created branch
    s.checkout("main");
    s.git(["branch", "-D", "dev"]); // deleted branch
    s.git(["tag", "-d", "v1"]); // deleted tag
    let other_blob = s.git(["rev-parse", "HEAD:src/c.txt"]).trim().to_owned();
    s.git(["tag", "-f", "blobtag", &other_blob]); // retargeted tag on a blob
    s.git(["tag", "-f", "-a", "-m", "moved", "v2", "main"]); // retargeted annotated tag
    up.push();
    let after = refs_of(&up.path);

    let report = engine
        .sync_mirror(u, None, mirror, no_progress())
        .await
        .unwrap();
    servers.assert_conversations(via, 2);
    assert_eq!(refs_of(mirror), after);
    assert_journal_matches(&report, &before, &after);
    let k = kinds(&report);
    let expected: BTreeMap<String, RefChangeKind> = [
        ("refs/heads/dev", RefChangeKind::Deleted),
        ("refs/heads/feature", RefChangeKind::Forced),
        ("refs/heads/main", RefChangeKind::FastForward),
        ("refs/heads/topic", RefChangeKind::Created),
        ("refs/tags/blobtag", RefChangeKind::Forced),
        ("refs/tags/v1", RefChangeKind::Deleted),
        ("refs/tags/v2", RefChangeKind::Forced),
        ("refs/tags/v3", RefChangeKind::Created),
    ]
    .into_iter()
    .map(|(n, k)| (n.to_owned(), k))
    .collect();
    assert_eq!(k, expected);
    assert_eq!((report.branches, report.tags), (3, 5));
    assert!(git(mirror, ["fsck", "--no-progress", "--no-dangling"]).is_empty());

    // The default branch changes, and nothing else: no changes, HEAD follows.
    up.git(&["symbolic-ref", "HEAD", "refs/heads/topic"]);
    let report = engine
        .sync_mirror(u, None, mirror, no_progress())
        .await
        .unwrap();
    // Seen in the listing and followed without a fetch.
    servers.assert_conversations(via, 1);
    assert!(report.changes.is_empty());
    assert_eq!(report.head.as_deref(), Some("refs/heads/topic"));
    assert_eq!(head_of(mirror), "refs/heads/topic");

    // The default branch changes along with refs.
    s.checkout("feature");
    s.commit_file("more.txt", "h\n", "more");
    up.push();
    up.git(&["symbolic-ref", "HEAD", "refs/heads/feature"]);
    let report = engine
        .sync_mirror(u, None, mirror, no_progress())
        .await
        .unwrap();
    assert_eq!(
        kinds(&report).get("refs/heads/feature"),
        Some(&RefChangeKind::FastForward)
    );
    assert_eq!(head_of(mirror), "refs/heads/feature");
    assert_eq!(refs_of(mirror), refs_of(&up.path));

    let summary = engine.inspect(mirror).await.unwrap();
    assert_eq!(
        (summary.branches, summary.tags, summary.head.as_deref()),
        (3, 5, Some("refs/heads/feature"))
    );
    let info = engine.probe(u, None).await.unwrap();
    assert_eq!(
        (info.branches, info.tags, info.head.as_deref()),
        (3, 5, Some("refs/heads/feature"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mirrors_exactly_over_git_daemon() {
    exact_mirror(Via::Daemon).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mirrors_exactly_over_http() {
    exact_mirror(Via::Http).await;
}

async fn empty_upstream(via: Via) {
    let case = Case::new(Upstream::empty, "empty.git", via).await;
    let Case {
        up,
        engine,
        url: u,
        mirror,
        ..
    } = &case;

    let info = engine.probe(u, None).await.unwrap();
    assert_eq!((info.branches, info.tags), (0, 0));
    let report = engine
        .clone_mirror(u, None, mirror, no_progress())
        .await
        .unwrap();
    assert!(report.changes.is_empty());
    assert_eq!((report.branches, report.tags), (0, 0));
    assert_eq!(report.engine, CopyEngine::Git, "nothing for gix to copy");
    assert_eq!(refs_of(mirror), "");
    let report = engine
        .sync_mirror(u, None, mirror, no_progress())
        .await
        .unwrap();
    assert!(report.changes.is_empty());

    // The upstream gets its first commit.
    up.scratch.commit_file("a", "a\n", "first");
    up.scratch.tag("v0");
    up.push();
    let report = engine
        .sync_mirror(u, None, mirror, no_progress())
        .await
        .unwrap();
    assert_eq!(report.changes.len(), 2);
    assert_eq!(refs_of(mirror), refs_of(&up.path));
    assert_eq!(head_of(mirror), "refs/heads/main");

    // Everything deleted upstream: the mirror follows (the listing said so, and it succeeded).
    up.git(&["update-ref", "-d", "refs/heads/main"]);
    up.git(&["update-ref", "-d", "refs/tags/v0"]);
    let report = engine
        .sync_mirror(u, None, mirror, no_progress())
        .await
        .unwrap();
    assert!(
        report
            .changes
            .iter()
            .all(|c| c.kind == RefChangeKind::Deleted),
        "{report:?}"
    );
    assert_eq!(report.changes.len(), 2);
    assert_eq!(refs_of(mirror), "");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mirrors_an_empty_upstream_over_git_daemon() {
    empty_upstream(Via::Daemon).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mirrors_an_empty_upstream_over_http() {
    empty_upstream(Via::Http).await;
}

/// `refs/heads/a` deleted and `refs/heads/a/b` created upstream: git cannot do both in one
/// transaction; the engine still converges.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn follows_a_branch_replaced_by_a_directory_of_branches() {
    let case = Case::cloned(Upstream::rich, "df.git", Via::Http).await;
    let Case {
        up,
        engine,
        url: u,
        mirror,
        ..
    } = &case;

    let s = &up.scratch;
    s.git(["branch", "-D", "dev"]);
    s.git(["branch", "dev/one", "main"]);
    s.git(["tag", "-d", "v1"]);
    s.git(["tag", "v1/final", "main"]);
    up.push();
    let report = engine
        .sync_mirror(u, None, mirror, no_progress())
        .await
        .unwrap();
    assert_eq!(refs_of(mirror), refs_of(&up.path));
    let k = kinds(&report);
    assert_eq!(k.get("refs/heads/dev"), Some(&RefChangeKind::Deleted));
    assert_eq!(k.get("refs/heads/dev/one"), Some(&RefChangeKind::Created));
    assert_eq!(k.get("refs/tags/v1/final"), Some(&RefChangeKind::Created));

    // And back again.
    s.git(["branch", "-D", "dev/one"]);
    s.git(["branch", "dev", "main"]);
    up.push();
    engine
        .sync_mirror(u, None, mirror, no_progress())
        .await
        .unwrap();
    assert_eq!(refs_of(mirror), refs_of(&up.path));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn reports_progress_and_refuses_an_existing_destination() {
    let case = Case::new(Upstream::rich, "p.git", Via::Http).await;
    let Case {
        up,
        engine,
        url: u,
        mirror,
        ..
    } = &case;
    up.add_bulk(256 * 1024);
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let s = std::sync::Arc::clone(&seen);
    let progress: mirrorhub_git::ProgressFn =
        std::sync::Arc::new(move |p| s.lock().unwrap().push(p));
    engine
        .clone_mirror(u, None, mirror, progress)
        .await
        .unwrap();
    let seen = seen.lock().unwrap().clone();
    assert!(
        seen.iter()
            .any(|p| p.phase == "receiving objects" && p.percent == 100),
        "{seen:?}"
    );

    let err = engine
        .clone_mirror(u, None, mirror, no_progress())
        .await
        .unwrap_err();
    assert_eq!(err.code(), mirrorhub_core::ErrorCode::Internal, "{err}");
    assert!(err.to_string().contains("exists already"), "{err}");
    assert_eq!(
        refs_of(mirror),
        refs_of(&up.path),
        "the existing mirror is untouched"
    );
}

/// An upstream whose HEAD names a branch that does not exist: the plain fetch (which asks for
/// HEAD) fails, and the sync takes the careful path, listing first; the mirror still converges
/// and keeps its own HEAD.
async fn upstream_with_a_dangling_head(via: Via) {
    let case = Case::cloned(Upstream::rich, "dangling.git", via).await;
    let Case {
        up,
        engine,
        url: u,
        mirror,
        ..
    } = &case;

    up.git(&["symbolic-ref", "HEAD", "refs/heads/gone"]);
    let before = refs_of(&up.path);
    // HEAD alone went dangling: nothing to follow (HTTP's v2 lists it as unborn).
    let report = engine
        .sync_mirror(u, None, mirror, no_progress())
        .await
        .unwrap();
    assert!(report.changes.is_empty(), "{report:?}");
    assert_eq!(head_of(mirror), "refs/heads/main");
    up.scratch.checkout("main");
    up.scratch.commit_file("late.txt", "late\n", "late");
    up.push();
    let after = refs_of(&up.path);
    let report = engine
        .sync_mirror(u, None, mirror, no_progress())
        .await
        .unwrap();
    assert_eq!(refs_of(mirror), after);
    assert_journal_matches(&report, &before, &after);
    assert_eq!(head_of(mirror), "refs/heads/main");

    let noop = engine
        .sync_mirror(u, None, mirror, no_progress())
        .await
        .unwrap();
    assert!(noop.changes.is_empty(), "{noop:?}");
    assert_eq!(refs_of(mirror), after);
    assert_eq!(head_of(mirror), "refs/heads/main");
}

/// gix copies only an upstream whose HEAD names one of its branches; `git clone` copies the
/// rest, exactly.
async fn first_copy_of_an_upstream_with_a_dangling_head(via: Via) {
    let case = Case::new(Upstream::rich, "dangling-first.git", via).await;
    let Case {
        up,
        engine,
        url: u,
        mirror,
        ..
    } = &case;
    up.git(&["symbolic-ref", "HEAD", "refs/heads/gone"]);
    let report = engine
        .clone_mirror(u, None, mirror, no_progress())
        .await
        .unwrap();
    assert_eq!(report.engine, CopyEngine::Git);
    assert_eq!(refs_of(mirror), refs_of(&up.path));
    assert!(git(mirror, ["fsck", "--no-progress", "--no-dangling"]).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn copies_an_upstream_with_a_dangling_head_over_git_daemon() {
    first_copy_of_an_upstream_with_a_dangling_head(Via::Daemon).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn copies_an_upstream_with_a_dangling_head_over_http() {
    first_copy_of_an_upstream_with_a_dangling_head(Via::Http).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn syncs_an_upstream_whose_head_is_dangling_over_git_daemon() {
    upstream_with_a_dangling_head(Via::Daemon).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn syncs_an_upstream_whose_head_is_dangling_over_http() {
    upstream_with_a_dangling_head(Via::Http).await;
}

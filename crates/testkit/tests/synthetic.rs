//! The synthetic upstream is deterministic, has the promised shape, is reused from its cache,
//! and the benchmark's mutations change refs as a push would and are undone exactly.

use mirrorhub_testkit::{
    add_commit, delete_branch, delete_tag, for_each_ref, git, rewrite_branch, synthetic_upstream,
    try_git, RefSnapshot, Spec, Synthetic,
};
use tempfile::TempDir;

#[test]
fn synthetic_upstream_has_the_promised_shape() {
    let dir = TempDir::new().unwrap();
    let spec = Spec::small();
    let upstream = synthetic_upstream(&dir.path().join("up.git"), spec.clone());
    assert!(!upstream.reused);
    let repo = &upstream.path;

    let commits: usize = git(repo, ["rev-list", "--all", "--count"])
        .trim()
        .parse()
        .unwrap();
    assert_eq!(commits, spec.commits);
    assert_eq!(upstream.commit_count(), spec.commits);
    // main, the branches, the tags on commits, and five on other objects.
    let expected_refs = 1 + spec.branches + spec.annotated_tags + spec.lightweight_tags + 5;
    assert_eq!(upstream.ref_count(), expected_refs);
    assert_eq!(
        git(repo, ["symbolic-ref", "HEAD"]).trim(),
        "refs/heads/main"
    );

    let refs = for_each_ref(repo);
    for line in [
        "tag refs/tags/blob-tag",
        "tag refs/tags/tree-tag",
        "tag refs/tags/nested-tag",
        "blob refs/tags/lightweight-blob",
        "tree refs/tags/lightweight-tree",
        "tag refs/tags/v0.0000",
        "commit refs/tags/build-0000",
        "commit refs/heads/feature/0000",
    ] {
        assert!(refs.contains(line), "no `{line}` in\n{refs}");
    }
    let peeled = |rev: &str| git(repo, ["cat-file", "-t", rev]).trim().to_owned();
    assert_eq!(peeled("blob-tag^{}"), "blob");
    assert_eq!(peeled("tree-tag^{}"), "tree");
    assert_eq!(peeled("nested-tag^{tag}"), "tag");
    assert_eq!(peeled("nested-tag^{}"), "commit");

    // Some branches were merged back; the history is not a straight line.
    let merges: usize = git(repo, ["rev-list", "--merges", "--count", "main"])
        .trim()
        .parse()
        .unwrap();
    assert!(merges > 0);
    assert_eq!(
        upstream.branches_with_commits().len(),
        spec.branches * 3 / 4
    );
    // Everything is in one pack with a bitmap.
    let packs = std::fs::read_dir(repo.join("objects/pack"))
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.file_name());
    let names: Vec<String> = packs.map(|n| n.to_string_lossy().into_owned()).collect();
    assert_eq!(
        names.iter().filter(|n| n.ends_with(".pack")).count(),
        1,
        "{names:?}"
    );
    assert!(names.iter().any(|n| n.ends_with(".bitmap")), "{names:?}");
    assert!(upstream.pack_bytes() > 0);
    git(repo, ["fsck", "--no-progress", "--no-dangling"]);
}

#[test]
fn synthetic_upstream_is_deterministic_and_cached() {
    let dir = TempDir::new().unwrap();
    let first = synthetic_upstream(&dir.path().join("a.git"), Spec::small());
    let second = synthetic_upstream(&dir.path().join("b.git"), Spec::small());
    assert_eq!(for_each_ref(&first.path), for_each_ref(&second.path));

    // Same spec: reused, and refs changed since are put back.
    let before = for_each_ref(&first.path);
    delete_branch(&first.path, "feature/0001");
    let again = synthetic_upstream(&first.path, Spec::small());
    assert!(again.reused);
    assert_eq!(for_each_ref(&again.path), before);

    // Another spec: regenerated in place.
    let other = Spec {
        commits: 200,
        ..Spec::small()
    };
    let regenerated = synthetic_upstream(&first.path, other.clone());
    assert!(!regenerated.reused);
    let commits: usize = git(&regenerated.path, ["rev-list", "--all", "--count"])
        .trim()
        .parse()
        .unwrap();
    assert_eq!(commits, other.commits);
}

#[test]
fn mutations_change_refs_like_pushes_and_are_undone_exactly() {
    let dir = TempDir::new().unwrap();
    let upstream = synthetic_upstream(&dir.path().join("up.git"), Spec::small());
    let repo = &upstream.path;
    let snapshot = RefSnapshot::take(repo);
    let before = for_each_ref(repo);
    let tip = |rev: &str| git(repo, ["rev-parse", rev]).trim().to_owned();

    let old_main = tip("main");
    let added = add_commit(repo, Synthetic::MAIN, "one more");
    assert_eq!(tip("main"), added);
    assert_eq!(tip("main^"), old_main);
    // Deterministic: the same change on the same tip is the same commit.
    snapshot.restore(repo);
    assert_eq!(add_commit(repo, Synthetic::MAIN, "one more"), added);

    let branch = &upstream.branches_with_commits()[0];
    let old = tip(branch);
    let rewritten = rewrite_branch(repo, branch, "rewritten");
    assert_ne!(rewritten, old);
    assert_eq!(tip(&format!("{rewritten}^")), tip(&format!("{old}^")));
    let is_ancestor = try_git(repo, ["merge-base", "--is-ancestor", &old, &rewritten]);
    assert_eq!(
        is_ancestor.status.code(),
        Some(1),
        "the old tip is still in the history"
    );

    delete_branch(repo, &upstream.branches()[2]);
    delete_tag(repo, &upstream.lightweight_tags()[0]);
    delete_tag(repo, &upstream.annotated_tags()[0]);
    let after = for_each_ref(repo);
    assert_eq!(after.lines().count(), before.lines().count() - 3);
    assert_ne!(after, before);

    snapshot.restore(repo);
    assert_eq!(for_each_ref(repo), before);
    assert_eq!(RefSnapshot::take(repo), snapshot);
}

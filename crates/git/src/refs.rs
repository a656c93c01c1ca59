//! Reading local bare repositories in-process with git2: ref snapshots, the journal of ref
//! changes, HEAD. Blocking: call these from `spawn_blocking`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use git2::{Oid, Repository};
use mirrorhub_core::{RefChange, RefChangeKind};

use crate::error::GitError;

/// Branches and tags (`refs/heads/*`, `refs/tags/*`): full name to object id (hex).
pub(crate) type RefMap = BTreeMap<String, String>;

/// Whether a ref is one a mirror carries.
pub(crate) fn is_mirrored(name: &str) -> bool {
    name.starts_with("refs/heads/") || name.starts_with("refs/tags/")
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct LocalState {
    pub refs: RefMap,
    /// HEAD's target when it is symbolic (`refs/heads/main`).
    pub head: Option<String>,
}

impl LocalState {
    pub(crate) fn branches(&self) -> usize {
        self.refs
            .keys()
            .filter(|k| k.starts_with("refs/heads/"))
            .count()
    }

    pub(crate) fn tags(&self) -> usize {
        self.refs
            .keys()
            .filter(|k| k.starts_with("refs/tags/"))
            .count()
    }
}

pub(crate) fn open(repo: &Path) -> Result<Repository, GitError> {
    Repository::open_bare(repo).map_err(|e| match e.code() {
        git2::ErrorCode::NotFound => GitError::Io(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("no mirror repository at {}: clone it first", repo.display()),
        )),
        _ => GitError::from(e),
    })
}

pub(crate) fn read_state(repo: &Path) -> Result<LocalState, GitError> {
    let repo = open(repo)?;
    read_state_of(&repo)
}

fn read_state_of(repo: &Repository) -> Result<LocalState, GitError> {
    let mut refs = RefMap::new();
    for r in repo.references()? {
        let r = r?;
        let Ok(name) = r.name() else { continue };
        if !is_mirrored(name) {
            continue;
        }
        let oid = match r.target() {
            Some(oid) => oid,
            None => match r.resolve() {
                Ok(resolved) => match resolved.target() {
                    Some(oid) => oid,
                    None => continue,
                },
                Err(_) => continue,
            },
        };
        refs.insert(name.to_owned(), oid.to_string());
    }
    let head = read_head(repo);
    Ok(LocalState { refs, head })
}

/// The files behind a repository's refs as the file system sees them: `packed-refs` and every
/// file under `refs/`, each with inode, size and modification time. git writes a ref by
/// renaming a new file into place (and deletes a packed one by rewriting `packed-refs`), so
/// any ref update changes the stamp; equal stamps mean the refs are as they were.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct RefsStamp(Vec<StampedFile>);

/// Path, inode, size, modification time (seconds, nanoseconds).
type StampedFile = (PathBuf, u64, u64, i64, i64);

pub(crate) fn stamp(repo: &Path) -> std::io::Result<RefsStamp> {
    fn add(path: PathBuf, out: &mut Vec<StampedFile>) -> std::io::Result<()> {
        use std::os::unix::fs::MetadataExt;
        match std::fs::symlink_metadata(&path) {
            Ok(m) if m.is_dir() => {
                for entry in std::fs::read_dir(&path)? {
                    add(entry?.path(), out)?;
                }
                Ok(())
            }
            Ok(m) => {
                out.push((path, m.ino(), m.size(), m.mtime(), m.mtime_nsec()));
                Ok(())
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }
    let mut out = Vec::new();
    add(repo.join("packed-refs"), &mut out)?;
    add(repo.join("refs"), &mut out)?;
    out.sort();
    Ok(RefsStamp(out))
}

/// HEAD's target when it is symbolic (`refs/heads/main`).
pub(crate) fn read_head(repo: &Repository) -> Option<String> {
    repo.find_reference("HEAD")
        .ok()
        .and_then(|h| h.symbolic_target().ok().flatten().map(str::to_owned))
}

/// The changes between two snapshots, in ref name order.
pub(crate) fn journal(
    repo: &Path,
    before: &RefMap,
    after: &RefMap,
) -> Result<Vec<RefChange>, GitError> {
    let mut changes = Vec::new();
    let mut repo_handle = None;
    let names: std::collections::BTreeSet<&String> = before.keys().chain(after.keys()).collect();
    for name in names {
        let (old, new) = (before.get(name), after.get(name));
        let kind = match (old, new) {
            (None, None) => continue,
            (Some(o), Some(n)) if o == n => continue,
            (None, Some(_)) => RefChangeKind::Created,
            (Some(_), None) => RefChangeKind::Deleted,
            (Some(o), Some(n)) => {
                if name.starts_with("refs/tags/") {
                    RefChangeKind::Forced
                } else {
                    if repo_handle.is_none() {
                        repo_handle = Some(open(repo)?);
                    }
                    let r = repo_handle.as_ref().expect("opened above");
                    if descends(r, n, o) {
                        RefChangeKind::FastForward
                    } else {
                        RefChangeKind::Forced
                    }
                }
            }
        };
        changes.push(RefChange {
            name: name.clone(),
            old: old.cloned(),
            new: new.cloned(),
            kind,
        });
    }
    Ok(changes)
}

/// Saves, before a fetch, the tips of `before` that a mirror holding `wanted` would lose: refs
/// to be deleted, tags to be moved, and branches to be moved to a commit that is not (known
/// to be) a descendant. A new tip the mirror does not have yet cannot be checked: its branch
/// is saved too, and [`settle_backups`] drops the backup when the move was a fast-forward.
pub(crate) fn foretell_backups(
    repo: &Path,
    before: &RefMap,
    wanted: &RefMap,
    now: i64,
) -> Result<Vec<crate::BackupRef>, GitError> {
    let handle = open(repo)?;
    let mut saved = Vec::new();
    for (name, old) in before {
        let new = wanted.get(name);
        if new == Some(old) {
            continue;
        }
        if let Some(new) = new {
            if name.starts_with("refs/heads/") && descends(&handle, new, old) {
                continue;
            }
        }
        saved.push(crate::backup::create(&handle, name, old, now)?);
    }
    Ok(saved)
}

/// After a fetch: keeps the backups of the changes that overwrote (`forced`) or deleted a
/// tip, makes the ones the listing could not foretell (the upstream moved in between; the
/// old objects are still there), and removes those that were not needed (fast-forwards).
pub(crate) fn settle_backups(
    repo: &Path,
    foretold: Vec<crate::BackupRef>,
    changes: &[RefChange],
    now: i64,
) -> Result<Vec<crate::BackupRef>, GitError> {
    let handle = open(repo)?;
    let needed: Vec<(&str, &str)> = changes
        .iter()
        .filter(|c| matches!(c.kind, RefChangeKind::Forced | RefChangeKind::Deleted))
        .filter_map(|c| Some((c.name.as_str(), c.old.as_deref()?)))
        .collect();
    let mut kept = Vec::new();
    for backup in foretold {
        if needed.contains(&(backup.ref_name.as_str(), backup.old.as_str())) {
            kept.push(backup);
        } else {
            crate::backup::remove(&handle, &backup.backup_ref, &backup.old)?;
        }
    }
    for (name, old) in needed {
        if kept.iter().any(|b| b.ref_name == name && b.old == old) {
            continue;
        }
        match crate::backup::create(&handle, name, old, now) {
            Ok(backup) => kept.push(backup),
            Err(e) => {
                tracing::warn!(r#ref = name, error = %e, "the overwritten tip could not be kept under a backup ref")
            }
        }
    }
    kept.sort_by(|a, b| a.ref_name.cmp(&b.ref_name));
    Ok(kept)
}

/// After a failed fetch: removes the backups of refs still at their saved tip (the run did
/// not move them); the others stay, found again by the hub's next look at the backup refs.
pub(crate) fn drop_unneeded_backups(
    repo: &Path,
    foretold: &[crate::BackupRef],
) -> Result<(), GitError> {
    let handle = open(repo)?;
    let now = read_state_of(&handle)?;
    for backup in foretold {
        if now.refs.get(&backup.ref_name) == Some(&backup.old) {
            crate::backup::remove(&handle, &backup.backup_ref, &backup.old)?;
        }
    }
    Ok(())
}

/// Whether commit `new` contains commit `old`; anything that is not a pair of commits does not.
fn descends(repo: &Repository, new: &str, old: &str) -> bool {
    let (Ok(new), Ok(old)) = (Oid::from_str(new), Oid::from_str(old)) else {
        return false;
    };
    let is_commit = |oid| {
        repo.find_object(oid, None)
            .map(|o| o.kind() == Some(git2::ObjectType::Commit))
            .unwrap_or(false)
    };
    is_commit(new) && is_commit(old) && repo.graph_descendant_of(new, old).unwrap_or(false)
}

/// Points HEAD at `target` (a branch, which need not exist yet) when it points elsewhere.
pub(crate) fn set_head(repo: &Path, target: &str) -> Result<(), GitError> {
    let repo = open(repo)?;
    let current = repo
        .find_reference("HEAD")
        .ok()
        .and_then(|h| h.symbolic_target().ok().flatten().map(str::to_owned));
    if current.as_deref() != Some(target) {
        repo.reference_symbolic(
            "HEAD",
            target,
            true,
            "mirrorhub: follow the upstream's default branch",
        )?;
    }
    Ok(())
}

/// Drops the `origin` remote `git clone` writes: a mirror is synced with an explicit URL, and
/// the repository's config should not carry one.
pub(crate) fn forget_origin(repo: &Path) -> Result<(), GitError> {
    let repo = open(repo)?;
    if repo.find_remote("origin").is_ok() {
        repo.remote_delete("origin")?;
    }
    Ok(())
}

/// Removes what a killed git leaves behind: lock files (which would block every later sync)
/// and temporary packs. Only safe while no other process writes to `repo`: the sync queue
/// guarantees one sync per repository at a time, and after a crash the caller first stops any
/// git the killed hub left running ([`stop_stray_git`]).
pub(crate) fn remove_leftovers(repo: &Path) -> std::io::Result<()> {
    for name in [
        "packed-refs.lock",
        // git writes the new packed-refs here before renaming it into place; a git killed in
        // between leaves it, and every later ref update would fail with "File exists".
        "packed-refs.new",
        "HEAD.lock",
        "config.lock",
        "shallow.lock",
        "FETCH_HEAD.lock",
    ] {
        remove_if_exists(&repo.join(name))?;
    }
    remove_locks_under(&repo.join("refs"))?;
    let pack = repo.join("objects").join("pack");
    if let Ok(entries) = std::fs::read_dir(&pack) {
        for entry in entries.flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            let stale_keep = name.ends_with(".keep")
                && std::fs::read_to_string(entry.path())
                    .map(|s| s.starts_with("fetch-pack "))
                    .unwrap_or(false);
            if name.starts_with("tmp_") || stale_keep {
                remove_if_exists(&entry.path())?;
            }
        }
    }
    Ok(())
}

/// Kills (by process group) every git process working in `repo`, and waits until they are
/// gone. Git runs with its working directory in the repository it writes, so `/proc/*/cwd`
/// finds them. Only git is touched. On systems without `/proc` this does nothing.
pub(crate) fn stop_stray_git(repo: &Path) {
    use nix::sys::signal::{killpg, Signal};
    use nix::unistd::{getpgid, Pid};
    let Ok(repo) = std::fs::canonicalize(repo) else {
        return;
    };
    let strays = || -> Vec<Pid> {
        let Ok(procs) = std::fs::read_dir("/proc") else {
            return vec![];
        };
        procs
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
            .filter(|pid| {
                std::fs::read_link(format!("/proc/{pid}/cwd")).is_ok_and(|cwd| cwd == repo)
            })
            .filter(|pid| {
                std::fs::read_to_string(format!("/proc/{pid}/comm"))
                    .is_ok_and(|c| c.starts_with("git"))
            })
            .map(Pid::from_raw)
            .collect()
    };
    let found = strays();
    if found.is_empty() {
        return;
    }
    tracing::warn!(repo = %repo.display(), processes = found.len(), "stopping git left running by a hub that was killed");
    for pid in &found {
        match getpgid(Some(*pid)) {
            Ok(pgid) if pgid != getpgid(None).unwrap_or(Pid::from_raw(0)) => {
                let _ = killpg(pgid, Signal::SIGKILL);
            }
            _ => {
                let _ = nix::sys::signal::kill(*pid, Signal::SIGKILL);
            }
        }
    }
    for _ in 0..100 {
        if strays().is_empty() {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    tracing::error!(repo = %repo.display(), "git processes in the repository did not stop");
}

fn remove_locks_under(dir: &Path) -> std::io::Result<()> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let file_type = entry.file_type()?;
        if file_type.is_dir() {
            remove_locks_under(&path)?;
        } else if path.extension().is_some_and(|e| e == "lock") {
            remove_if_exists(&path)?;
        }
    }
    Ok(())
}

fn remove_if_exists(path: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Refs of `local` that block a ref of `remote` (a directory/file conflict, such as a local
/// `refs/heads/a` against a remote `refs/heads/a/b`) and are absent from `remote`, so a sync
/// deletes them anyway.
pub(crate) fn df_conflicts(local: &RefMap, remote: &RefMap) -> Vec<(String, String)> {
    local
        .iter()
        .filter(|(name, _)| !remote.contains_key(*name))
        .filter(|(name, _)| {
            let as_dir = format!("{name}/");
            let under = remote
                .range(as_dir.clone()..)
                .next()
                .is_some_and(|(r, _)| r.starts_with(&as_dir));
            let above = name
                .match_indices('/')
                .map(|(i, _)| &name[..i])
                .any(|prefix| remote.contains_key(prefix));
            under || above
        })
        .map(|(n, o)| (n.clone(), o.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> RefMap {
        pairs
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn any_ref_update_changes_the_stamp() {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repository::init_bare(dir.path()).unwrap();
        let sig = git2::Signature::now("t", "t@example.org").unwrap();
        let tree = repo.treebuilder(None).unwrap().write().unwrap();
        let tree = repo.find_tree(tree).unwrap();
        let one = repo
            .commit(Some("refs/heads/main"), &sig, &sig, "one", &tree, &[])
            .unwrap();
        let git = |args: &[&str]| {
            let out = std::process::Command::new("git")
                .arg("--git-dir")
                .arg(dir.path())
                .args(args)
                .output()
                .unwrap();
            assert!(out.status.success(), "{out:?}");
        };
        git(&["tag", "v1", "main"]);
        git(&["pack-refs", "--all"]);
        let packed = stamp(dir.path()).unwrap();
        assert_eq!(
            stamp(dir.path()).unwrap(),
            packed,
            "reading changes nothing"
        );

        // Writing the value a ref already has: git leaves it alone.
        git(&["update-ref", "refs/heads/main", &one.to_string()]);
        assert_eq!(stamp(dir.path()).unwrap(), packed);

        let two = repo
            .commit(
                None,
                &sig,
                &sig,
                "two",
                &tree,
                &[&repo.find_commit(one).unwrap()],
            )
            .unwrap();
        let mut seen = vec![packed];
        for args in [
            vec!["update-ref", "refs/heads/main", &two.to_string()],
            vec!["update-ref", "refs/heads/main", &one.to_string()],
            vec!["update-ref", "-d", "refs/tags/v1"],
            vec!["update-ref", "refs/heads/new/branch", &one.to_string()],
            vec!["pack-refs", "--all"],
        ] {
            let args: Vec<&str> = args.iter().map(|a| a.as_ref()).collect();
            git(&args);
            let now = stamp(dir.path()).unwrap();
            assert!(!seen.contains(&now), "{args:?} left the stamp as it was");
            seen.push(now);
        }
    }

    #[test]
    fn finds_directory_file_conflicts() {
        let local = map(&[
            ("refs/heads/a", "1"),
            ("refs/heads/b/c", "2"),
            ("refs/heads/keep", "3"),
        ]);
        let remote = map(&[
            ("refs/heads/a/x", "4"),
            ("refs/heads/b", "5"),
            ("refs/heads/keep", "3"),
        ]);
        let got: Vec<String> = df_conflicts(&local, &remote)
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        assert_eq!(
            got,
            vec!["refs/heads/a".to_string(), "refs/heads/b/c".to_string()]
        );
        assert!(df_conflicts(&remote, &remote).is_empty());
    }
}

//! Backups of tips a sync overwrites: when a sync moves a branch or tag non-fast-forward, or
//! deletes it, the old tip stays reachable under `refs/mirrorhub/backup/<unix time>/<ref>`.
//!
//! These refs live outside the namespaces a mirror syncs (`refs/heads/`, `refs/tags/`), so
//! `git fetch --prune` never touches them; the engine's local git runs hide the whole
//! `refs/mirrorhub/` namespace from clients (`transfer.hideRefs`), so they are never
//! advertised, fetched or pushed to. They are written in process with git2 (a lock file
//! renamed into place per ref), before the fetch moves the refs they save whenever the
//! listing foretold the change, so a crash in between loses no tip. Blocking: call from
//! `spawn_blocking`.

use git2::{Oid, Repository};

use crate::error::GitError;

/// Hidden from clients: every ref under it.
pub(crate) const HIDDEN_NAMESPACE: &str = "refs/mirrorhub";
/// Where backups are kept.
pub const BACKUP_PREFIX: &str = "refs/mirrorhub/backup/";

/// A backup ref.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupRef {
    /// The branch or tag whose tip it keeps, e.g. `refs/heads/main`.
    pub ref_name: String,
    /// That tip.
    pub old: String,
    /// `refs/mirrorhub/backup/<unix time>/<ref_name>`.
    pub backup_ref: String,
    /// The unix time in its name.
    pub created_at: i64,
}

impl BackupRef {
    /// Reads a backup ref's name back: `None` for anything else under the prefix.
    pub fn parse(backup_ref: &str, old: &str) -> Option<Self> {
        let rest = backup_ref.strip_prefix(BACKUP_PREFIX)?;
        let (time, ref_name) = rest.split_once('/')?;
        let created_at: i64 = time.parse().ok()?;
        if !(ref_name.starts_with("refs/heads/") || ref_name.starts_with("refs/tags/")) {
            return None;
        }
        Some(Self {
            ref_name: ref_name.to_owned(),
            old: old.to_owned(),
            backup_ref: backup_ref.to_owned(),
            created_at,
        })
    }
}

/// Saves `old` (the tip of `ref_name`) under a backup ref named for `now` (unix seconds), or
/// the next free second when that name is taken (two syncs in one second, or a ref `a`
/// saved where `a/b` was saved the same second).
pub(crate) fn create(
    repo: &Repository,
    ref_name: &str,
    old: &str,
    now: i64,
) -> Result<BackupRef, GitError> {
    let oid = Oid::from_str(old)?;
    let mut last = None;
    for second in now..now + 64 {
        let name = format!("{BACKUP_PREFIX}{second}/{ref_name}");
        match repo.reference(&name, oid, false, "mirrorhub: backup of an overwritten tip") {
            Ok(_) => {
                return Ok(BackupRef {
                    ref_name: ref_name.to_owned(),
                    old: old.to_owned(),
                    backup_ref: name,
                    created_at: second,
                })
            }
            Err(e) => last = Some(e),
        }
    }
    Err(last
        .map(GitError::from)
        .unwrap_or_else(|| GitError::failed(format!("no backup ref could be made for {ref_name}"))))
}

/// Removes a backup ref if it still points at `old`.
pub(crate) fn remove(repo: &Repository, backup_ref: &str, old: &str) -> Result<(), GitError> {
    if !backup_ref.starts_with(BACKUP_PREFIX) {
        return Err(GitError::failed(format!(
            "{backup_ref} is not a backup ref"
        )));
    }
    match repo.find_reference(backup_ref) {
        Ok(mut r) => {
            if r.target().map(|t| t.to_string()).as_deref() == Some(old) {
                r.delete()?;
            }
            Ok(())
        }
        Err(e) if e.code() == git2::ErrorCode::NotFound => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Every backup ref of the repository.
pub(crate) fn list(repo: &Repository) -> Result<Vec<BackupRef>, GitError> {
    let mut out = Vec::new();
    for r in repo.references_glob(&format!("{BACKUP_PREFIX}*"))? {
        let r = r?;
        let (Ok(name), Some(target)) = (r.name(), r.target()) else {
            continue;
        };
        if let Some(backup) = BackupRef::parse(name, &target.to_string()) {
            out.push(backup);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo_with_commit() -> (tempfile::TempDir, Repository, String) {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repository::init_bare(dir.path()).unwrap();
        let sig = git2::Signature::now("t", "t@example.org").unwrap();
        let tree = repo.treebuilder(None).unwrap().write().unwrap();
        let tree = repo.find_tree(tree).unwrap();
        let oid = repo
            .commit(Some("refs/heads/main"), &sig, &sig, "one", &tree, &[])
            .unwrap()
            .to_string();
        drop(tree);
        (dir, repo, oid)
    }

    #[test]
    fn names_backups_by_time_and_never_overwrites_one() {
        let (_dir, repo, oid) = repo_with_commit();
        let first = create(&repo, "refs/heads/main", &oid, 1000).unwrap();
        assert_eq!(
            first.backup_ref,
            "refs/mirrorhub/backup/1000/refs/heads/main"
        );
        let second = create(&repo, "refs/heads/main", &oid, 1000).unwrap();
        assert_eq!(
            second.backup_ref,
            "refs/mirrorhub/backup/1001/refs/heads/main"
        );
        // `a` where `a/b` was saved the same second.
        create(&repo, "refs/heads/a/b", &oid, 2000).unwrap();
        let a = create(&repo, "refs/heads/a", &oid, 2000).unwrap();
        assert_eq!(a.created_at, 2001);
        let mut listed = list(&repo).unwrap();
        listed.sort_by(|x, y| x.backup_ref.cmp(&y.backup_ref));
        assert_eq!(listed.len(), 4);
        assert_eq!(listed[0], first);
        remove(&repo, &first.backup_ref, &oid).unwrap();
        remove(&repo, &first.backup_ref, &oid).unwrap();
        assert_eq!(list(&repo).unwrap().len(), 3);
        assert!(remove(&repo, "refs/heads/main", &oid).is_err());
    }

    #[test]
    fn parses_only_backup_names() {
        let oid = "1111111111111111111111111111111111111111";
        let b = BackupRef::parse("refs/mirrorhub/backup/17/refs/tags/v1", oid).unwrap();
        assert_eq!((b.ref_name.as_str(), b.created_at), ("refs/tags/v1", 17));
        for bad in [
            "refs/mirrorhub/backup/x/refs/heads/a",
            "refs/mirrorhub/backup/17/refs/pull/1",
            "refs/heads/main",
            "refs/mirrorhub/backup/17",
        ] {
            assert!(BackupRef::parse(bad, oid).is_none(), "{bad}");
        }
    }
}

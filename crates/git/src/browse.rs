//! What a repository page shows of a local bare repository: its branches and tags with the
//! commit each points to, and the recent history of the default branch. Read in-process with
//! git2; blocking: call from `spawn_blocking`.

use std::path::Path;

use chrono::{DateTime, Utc};
use git2::{Commit, Oid, Repository, Sort};

use crate::error::GitError;
use crate::refs;

/// A repository's contents as a browser shows them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RepoContents {
    /// The default branch's short name (`main`), when HEAD names one.
    pub default_branch: Option<String>,
    /// Newest commit first; at most the limit asked for.
    pub branches: Vec<RefEntry>,
    pub tags: Vec<RefEntry>,
    /// How many there are in all (the lists may be cut).
    pub branch_count: usize,
    pub tag_count: usize,
    /// The default branch's history, newest first (first-parent order is not forced: this is
    /// `git log`'s default order by commit time).
    pub commits: Vec<CommitEntry>,
}

/// A branch or tag and the commit it leads to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefEntry {
    /// Without `refs/heads/` or `refs/tags/`.
    pub name: String,
    /// The object the ref names (a tag object for annotated tags).
    pub target: String,
    /// The commit it leads to, when it leads to one (a tag may name a tree or a blob).
    pub commit: Option<CommitEntry>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitEntry {
    pub id: String,
    /// The first line of the message.
    pub summary: String,
    pub author: String,
    pub time: DateTime<Utc>,
}

/// Reads at most `max_refs` branches and tags (the most recently committed first) and
/// `max_commits` commits of the default branch.
pub(crate) fn read_contents(
    path: &Path,
    max_refs: usize,
    max_commits: usize,
) -> Result<RepoContents, GitError> {
    let repo = refs::open(path)?;
    let mut branches = Vec::new();
    let mut tags = Vec::new();
    for r in repo.references()? {
        let r = r?;
        let (Ok(name), Some(target)) = (r.name(), r.target()) else {
            continue;
        };
        let entry = |short: &str| RefEntry {
            name: short.to_owned(),
            target: target.to_string(),
            commit: r.peel_to_commit().ok().map(|c| commit_entry(&c)),
        };
        if let Some(short) = name.strip_prefix("refs/heads/") {
            branches.push(entry(short));
        } else if let Some(short) = name.strip_prefix("refs/tags/") {
            tags.push(entry(short));
        }
    }
    let (branch_count, tag_count) = (branches.len(), tags.len());
    newest_first(&mut branches, max_refs);
    newest_first(&mut tags, max_refs);
    let head = refs::read_head(&repo);
    let default_branch = head
        .as_deref()
        .and_then(|h| h.strip_prefix("refs/heads/"))
        .map(str::to_owned);
    let commits = match head.as_deref().and_then(|h| repo.refname_to_id(h).ok()) {
        Some(tip) => history(&repo, tip, max_commits)?,
        None => Vec::new(),
    };
    Ok(RepoContents {
        default_branch,
        branches,
        tags,
        branch_count,
        tag_count,
        commits,
    })
}

/// Most recent commit first, then by name; cut to `max`.
fn newest_first(entries: &mut Vec<RefEntry>, max: usize) {
    entries.sort_by(|a, b| {
        let time = |e: &RefEntry| e.commit.as_ref().map(|c| c.time);
        time(b).cmp(&time(a)).then_with(|| a.name.cmp(&b.name))
    });
    entries.truncate(max);
}

fn history(repo: &Repository, tip: Oid, max: usize) -> Result<Vec<CommitEntry>, GitError> {
    let mut walk = repo.revwalk()?;
    walk.set_sorting(Sort::TIME)?;
    walk.push(tip)?;
    let mut commits = Vec::new();
    for id in walk.take(max) {
        commits.push(commit_entry(&repo.find_commit(id?)?));
    }
    Ok(commits)
}

fn commit_entry(c: &Commit<'_>) -> CommitEntry {
    CommitEntry {
        id: c.id().to_string(),
        summary: c.summary().ok().flatten().unwrap_or_default().to_owned(),
        author: c.author().name().unwrap_or_default().to_owned(),
        time: DateTime::from_timestamp(c.time().seconds(), 0).unwrap_or_default(),
    }
}

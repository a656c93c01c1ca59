//! Push mirrors: make a downstream's branches and tags follow a local repository's, with
//! `git push` in the engine's hardened environment (credentials through the helper, http(s)
//! through the egress proxy, git:// and ssh:// to a checked, pinned address).
//!
//! A run lists the downstream, lets `mirrorhub_core::push_mirror::plan` decide, and pushes
//! every update with an explicit `--force-with-lease=<ref>:<expected>`, so a ref that moved
//! downstream between the listing and the push is never overwritten: git refuses it as
//! "stale info", and the run lists and decides again. `--atomic` when the server supports it
//! (one ref transaction downstream), plain otherwise; `--porcelain` gives each ref's result.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::Path;

use mirrorhub_core::push_mirror::{
    plan, Plan, PlannedUpdate, PushRefKind, PushRefResult, PushRules, Refs,
};
use mirrorhub_core::UpstreamUrl;

use crate::command::{self, Invocation};
use crate::error::{redact, GitError};
use crate::proxy::{resolve_allowed, ResolveError};
use crate::transport::{GitCli, Remote};
use crate::{blocking, refs, Auth, GitEngine};

/// Refs per `git push`: an argument list of this many refspecs and leases stays far below
/// the system's limit on a command line.
const REFS_PER_PUSH: usize = 500;
/// How often a run lists and decides again after the downstream moved under it.
const ATTEMPTS: usize = 3;

/// What a push mirror run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PushReport {
    /// Every ref the run changed, left alone (diverged) or had refused, in ref name order.
    pub refs: Vec<PushRefResult>,
    /// The refs left alone because they moved downstream on their own.
    pub diverged: Vec<String>,
    /// Refs now known to have these values downstream (pushed, or found equal).
    pub known: Vec<(String, String)>,
    /// Refs the run deleted downstream.
    pub forgotten: Vec<String>,
    /// Whether the downstream took the pushes as atomic transactions.
    pub atomic: bool,
}

impl PushReport {
    /// How many refs were created, moved or deleted downstream.
    pub fn changed(&self) -> usize {
        self.refs
            .iter()
            .filter(|r| !matches!(r.kind, PushRefKind::Diverged | PushRefKind::Rejected))
            .count()
    }

    /// The refs the downstream refused.
    pub fn rejected(&self) -> impl Iterator<Item = &PushRefResult> {
        self.refs.iter().filter(|r| r.kind == PushRefKind::Rejected)
    }
}

/// One ref's line of `git push --porcelain`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PorcelainLine {
    pub flag: char,
    pub to: String,
    pub summary: String,
}

impl PorcelainLine {
    fn ok(&self) -> bool {
        matches!(self.flag, ' ' | '+' | '-' | '*' | '=')
    }

    /// The lease failed: the downstream ref is no longer what the listing said.
    fn stale(&self) -> bool {
        self.flag == '!' && self.summary.contains("stale info")
    }

    /// Refused only because another ref of the same atomic push was.
    fn atomic_casualty(&self) -> bool {
        self.flag == '!' && self.summary.contains("atomic")
    }

    /// The reason in brackets and parentheses, without git's decoration.
    fn reason(&self) -> String {
        self.summary
            .trim()
            .trim_start_matches('[')
            .replacen("] (", ": ", 1)
            .trim_end_matches(')')
            .trim_end_matches(']')
            .to_owned()
    }
}

/// Parses `git push --porcelain`'s standard output: `<flag>\t<from>:<to>\t<summary>` per ref.
pub(crate) fn parse_porcelain(stdout: &str) -> Vec<PorcelainLine> {
    stdout
        .lines()
        .filter_map(|line| {
            let mut fields = line.splitn(3, '\t');
            let flag = fields.next()?;
            let spec = fields.next()?;
            let summary = fields.next().unwrap_or_default();
            let flag = match flag.chars().collect::<Vec<_>>()[..] {
                [c] => c,
                _ => return None,
            };
            let (_, to) = spec.rsplit_once(':')?;
            to.starts_with("refs/").then(|| PorcelainLine {
                flag,
                to: to.to_owned(),
                summary: summary.to_owned(),
            })
        })
        .collect()
}

/// The arguments of one `git push` (after the URL is known): leases, then refspecs.
fn push_args(updates: &[&PlannedUpdate], atomic: bool, url: &str) -> Vec<OsString> {
    let mut args: Vec<OsString> = vec![
        "push".into(),
        "--porcelain".into(),
        "--no-verify".into(),
        "--no-recurse-submodules".into(),
    ];
    if atomic {
        args.push("--atomic".into());
    }
    for u in updates {
        args.push(
            format!(
                "--force-with-lease={}:{}",
                u.name,
                u.expect.as_deref().unwrap_or("")
            )
            .into(),
        );
    }
    args.push("--".into());
    args.push(url.into());
    for u in updates {
        args.push(
            match &u.new {
                Some(oid) => format!("{oid}:{}", u.name),
                None => format!(":{}", u.name),
            }
            .into(),
        );
    }
    args
}

impl GitCli {
    /// One `git push` of `updates` from `repo`. `Ok(None)` when the server does not support
    /// `--atomic` (the caller pushes again without it); per-ref results otherwise. A push that
    /// failed before any ref was decided (no connection, credentials refused) is an error.
    async fn push_once(
        &self,
        remote: &Remote<'_>,
        repo: &Path,
        updates: &[&PlannedUpdate],
        atomic: bool,
    ) -> Result<Option<Vec<PorcelainLine>>, GitError> {
        let prepared = self.prepare(remote, &[]).await?;
        let mut env = prepared.env.clone();
        env.push(("GIT_DIR".into(), repo.into()));
        let inv = Invocation {
            program: self.program.clone(),
            args: push_args(updates, atomic, &prepared.url),
            env,
            cwd: repo.to_path_buf(),
            stdout_cap: Some(crate::command::STDOUT_MAX),
            stdin: None,
        };
        let finished = command::run(inv, remote.deadline, None).await?;
        let secrets: Vec<&str> = prepared.secrets.iter().map(String::as_str).collect();
        let stdout = redact(&String::from_utf8_lossy(&finished.stdout), &secrets);
        let lines = parse_porcelain(&stdout);
        if !lines.is_empty() && !finished.timed_out {
            return Ok(Some(lines));
        }
        if finished.success {
            // Nothing to report (every ref was up to date).
            return Ok(Some(Vec::new()));
        }
        if atomic
            && finished
                .stderr_tail
                .contains("does not support --atomic push")
        {
            return Ok(None);
        }
        Err(self.failure(remote, &prepared, &finished, remote.deadline))
    }
}

impl GitEngine {
    /// Checks that the address of a push mirror's URL is one the hub may connect to (resolving
    /// its host name). Connects to nothing.
    pub async fn check_address(&self, url: &UpstreamUrl) -> Result<(), GitError> {
        let cli = &self.inner.cli;
        resolve_allowed(&cli.policy, url.host(), url.port(), cli.probe_timeout)
            .await
            .map(|_| ())
            .map_err(|e| match e {
                ResolveError::Refused(r) => GitError::from(r),
                ResolveError::Unresolvable(detail) => GitError::Unreachable { detail },
            })
    }

    /// Makes the downstream at `url` follow the branches and tags of the local repository at
    /// `repo` as `rules` say. `pushed`: what this target's runs last left each ref at
    /// downstream. Only `refs/heads/*` and `refs/tags/*` are ever pushed.
    #[tracing::instrument(skip_all, fields(url = %url))]
    pub async fn push_mirror<'a>(
        &self,
        url: &'a UpstreamUrl,
        auth: impl Into<Auth<'a>>,
        repo: &Path,
        rules: &PushRules,
        pushed: &Refs,
    ) -> Result<PushReport, GitError> {
        let remote = self.remote(url, auth.into(), self.inner.config.timeout);
        let cli = &self.inner.cli;
        let mut pushed = pushed.clone();
        // Refs decided by earlier attempts of this run (pushed, deleted or refused).
        let mut done: BTreeMap<String, PushRefResult> = BTreeMap::new();
        let mut known: BTreeMap<String, Option<String>> = BTreeMap::new();
        let mut atomic = true;
        let mut last_plan = Plan::default();
        for attempt in 1..=ATTEMPTS {
            let listed = self.inner.transport.list(&remote).await?;
            let decided = {
                let repo = repo.to_path_buf();
                let (remote_refs, pushed, rules) =
                    (listed.refs.clone(), pushed.clone(), rules.clone());
                blocking(move || {
                    let local = refs::read_state(&repo)?.refs;
                    let git = refs::open(&repo)?;
                    let mut is_ancestor = |theirs: &str, ours: &str| {
                        let (Ok(t), Ok(o)) =
                            (git2::Oid::from_str(theirs), git2::Oid::from_str(ours))
                        else {
                            return false;
                        };
                        git.find_commit(t).is_ok() && git.graph_descendant_of(o, t).unwrap_or(false)
                    };
                    Ok(plan(
                        &local,
                        &remote_refs,
                        &pushed,
                        &rules,
                        &mut is_ancestor,
                    ))
                })
                .await?
            };
            for (name, oid) in &decided.equal {
                known.insert(name.clone(), Some(oid.clone()));
            }
            let mut stale = 0;
            for batch in decided.updates.chunks(REFS_PER_PUSH) {
                let batch: Vec<&PlannedUpdate> = batch.iter().collect();
                let lines = match cli.push_once(&remote, repo, &batch, atomic).await? {
                    Some(lines) => lines,
                    None => {
                        tracing::info!(
                            "the downstream does not support atomic pushes; pushing ref by ref"
                        );
                        atomic = false;
                        cli.push_once(&remote, repo, &batch, false)
                            .await?
                            .unwrap_or_default()
                    }
                };
                let by_ref: BTreeMap<&str, &PorcelainLine> =
                    lines.iter().map(|l| (l.to.as_str(), l)).collect();
                let any_stale = lines.iter().any(PorcelainLine::stale);
                for u in batch {
                    let line = by_ref.get(u.name.as_str());
                    match line {
                        Some(l) if l.ok() => {
                            known.insert(u.name.clone(), u.new.clone());
                            match &u.new {
                                Some(oid) => pushed.insert(u.name.clone(), oid.clone()),
                                None => pushed.remove(&u.name),
                            };
                            done.insert(
                                u.name.clone(),
                                PushRefResult {
                                    name: u.name.clone(),
                                    old: u.expect.clone(),
                                    new: u.new.clone(),
                                    kind: u.kind,
                                    reason: None,
                                },
                            );
                        }
                        // Moved downstream since the listing (or refused only with such a
                        // ref in an atomic push): decided again on the next attempt.
                        Some(l)
                            if (l.stale() || (any_stale && l.atomic_casualty()))
                                && attempt < ATTEMPTS =>
                        {
                            stale += 1;
                        }
                        other => {
                            let reason = other.map_or_else(
                                || "git reported nothing for this ref".to_owned(),
                                |l| l.reason(),
                            );
                            done.insert(
                                u.name.clone(),
                                PushRefResult {
                                    name: u.name.clone(),
                                    old: u.expect.clone(),
                                    new: u.new.clone(),
                                    kind: PushRefKind::Rejected,
                                    reason: Some(reason),
                                },
                            );
                        }
                    }
                }
            }
            last_plan = decided;
            if stale == 0 {
                break;
            }
            tracing::info!(
                refs = stale,
                attempt,
                "downstream refs moved during the push; listing again"
            );
        }
        let mut refs: Vec<PushRefResult> = done.into_values().collect();
        for d in &last_plan.diverged {
            refs.push(PushRefResult {
                name: d.name.clone(),
                old: Some(d.theirs.clone()),
                new: d.ours.clone(),
                kind: PushRefKind::Diverged,
                reason: None,
            });
        }
        refs.sort_by(|a, b| a.name.cmp(&b.name));
        let (known, forgotten): (Vec<_>, Vec<_>) =
            known.into_iter().partition(|(_, oid)| oid.is_some());
        Ok(PushReport {
            refs,
            diverged: last_plan.diverged.iter().map(|d| d.name.clone()).collect(),
            known: known
                .into_iter()
                .map(|(n, o)| (n, o.unwrap_or_default()))
                .collect(),
            forgotten: forgotten.into_iter().map(|(n, _)| n).collect(),
            atomic,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn porcelain_lines_are_read_per_ref() {
        let out = "To http://127.0.0.1:1/x.git\n\
            *\t1111111111111111111111111111111111111111:refs/heads/new\t[new branch]\n\
            +\t2222222222222222222222222222222222222222:refs/heads/main\t1111111...2222222 (forced update)\n\
            -\t:refs/heads/gone\t[deleted]\n\
            !\t3333333333333333333333333333333333333333:refs/heads/moved\t[rejected] (stale info)\n\
            !\t4444444444444444444444444444444444444444:refs/tags/v1\t[remote rejected] (pre-receive hook declined)\n\
            Done\n";
        let lines = parse_porcelain(out);
        let got: Vec<(char, &str, bool, bool)> = lines
            .iter()
            .map(|l| (l.flag, l.to.as_str(), l.ok(), l.stale()))
            .collect();
        assert_eq!(
            got,
            [
                ('*', "refs/heads/new", true, false),
                ('+', "refs/heads/main", true, false),
                ('-', "refs/heads/gone", true, false),
                ('!', "refs/heads/moved", false, true),
                ('!', "refs/tags/v1", false, false),
            ]
        );
        assert_eq!(
            lines[4].reason(),
            "remote rejected: pre-receive hook declined"
        );
    }

    #[test]
    fn every_update_carries_its_lease_and_secrets_stay_out_of_argv() {
        let create = PlannedUpdate {
            name: "refs/heads/new".into(),
            expect: None,
            new: Some("aa".into()),
            kind: PushRefKind::Created,
        };
        let delete = PlannedUpdate {
            name: "refs/heads/gone".into(),
            expect: Some("bb".into()),
            new: None,
            kind: PushRefKind::Deleted,
        };
        let args: Vec<String> = push_args(&[&create, &delete], true, "http://h/x.git")
            .into_iter()
            .map(|a| a.into_string().unwrap())
            .collect();
        assert_eq!(
            args,
            [
                "push",
                "--porcelain",
                "--no-verify",
                "--no-recurse-submodules",
                "--atomic",
                "--force-with-lease=refs/heads/new:",
                "--force-with-lease=refs/heads/gone:bb",
                "--",
                "http://h/x.git",
                "aa:refs/heads/new",
                ":refs/heads/gone",
            ]
        );
    }
}

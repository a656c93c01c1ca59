//! Push mirrors as rules: which branches a target takes (`only_branches`), and what a run
//! must do to make the downstream's branches and tags follow the hub's without ever
//! overwriting what someone else moved there (unless told to). Pure: the engine lists, reads
//! and pushes; [`plan`] only decides.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

string_enum! {
    /// What started a push mirror run.
    PushTrigger {
        /// The push mirror was just created (or enabled).
        Create => "create",
        /// A `git push` to the hub's repository changed refs.
        Push => "push",
        /// A sync of the hub's mirror brought ref changes.
        Sync => "sync",
        /// Someone asked (`POST …/push-mirrors/{id}/sync`, the CLI, the web UI).
        Manual => "manual",
        /// The target's interval passed without a run: the fallback that repairs a missed push.
        Schedule => "schedule",
        /// A run interrupted by a crash or restart, taken up again.
        Recovery => "recovery",
    }
}

string_enum! {
    /// What a run did to one downstream ref.
    PushRefKind {
        /// The ref did not exist downstream and was created.
        Created => "created",
        /// Moved forward: the downstream's commit is contained in the new one.
        FastForward => "fast_forward",
        /// Overwritten: the new commit does not contain the downstream's (or a tag moved).
        Forced => "forced",
        /// Deleted downstream because it is gone here (`prune`).
        Deleted => "deleted",
        /// Left alone: it moved downstream on its own and `force` is off.
        Diverged => "diverged",
        /// The downstream refused the update (a hook, a protected branch).
        Rejected => "rejected",
    }
}

/// One ref of a run's record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushRefResult {
    #[serde(rename = "ref")]
    pub name: String,
    /// The downstream's object before the run; `None` when it had no such ref.
    pub old: Option<String>,
    /// The object the hub has (what was, or would have been, pushed); `None` for a deletion,
    /// or a diverged ref the hub does not have.
    pub new: Option<String>,
    pub kind: PushRefKind,
    /// Why the downstream refused it (`Rejected` only).
    pub reason: Option<String>,
}

/// The most patterns `only_branches` may hold, and the longest one.
pub const MAX_BRANCH_PATTERNS: usize = 100;
pub const MAX_PATTERN_LEN: usize = 200;

/// `only_branches`: which branches a push mirror takes. Each pattern is a glob over the
/// branch's short name (`main`, `release/*`: `*` and `?` stay within one path segment, `**`
/// crosses them) or, written `/.../`, a regular expression searched in it (use `^…$` to
/// match the whole name). A branch is taken when any pattern matches.
#[derive(Debug, Clone)]
pub struct BranchFilter {
    patterns: Vec<String>,
    compiled: Vec<regex::Regex>,
}

/// Why a pattern is refused: the pattern (cut to a readable length) and the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("pattern {pattern:?} cannot be used: {why}")]
pub struct PatternError {
    pub pattern: String,
    pub why: String,
}

impl BranchFilter {
    /// Parses the patterns as a user gave them. An empty list is refused: to push every
    /// branch, give no filter at all.
    pub fn parse(patterns: &[String]) -> Result<Self, PatternError> {
        let refuse = |pattern: &str, why: &str| PatternError {
            pattern: pattern.chars().take(60).collect(),
            why: why.to_owned(),
        };
        if patterns.is_empty() {
            return Err(refuse(
                "",
                "the list is empty: give at least one branch pattern, or null for every branch",
            ));
        }
        if patterns.len() > MAX_BRANCH_PATTERNS {
            return Err(refuse(
                &patterns[MAX_BRANCH_PATTERNS],
                &format!("at most {MAX_BRANCH_PATTERNS} patterns"),
            ));
        }
        let mut compiled = Vec::with_capacity(patterns.len());
        let mut kept = Vec::with_capacity(patterns.len());
        for raw in patterns {
            let pattern = raw.trim();
            if pattern.is_empty() {
                return Err(refuse(raw, "a pattern is empty"));
            }
            if pattern.len() > MAX_PATTERN_LEN {
                return Err(refuse(
                    pattern,
                    &format!("longer than {MAX_PATTERN_LEN} characters"),
                ));
            }
            if pattern.chars().any(char::is_control) {
                return Err(refuse(pattern, "it contains a control character"));
            }
            let source = match pattern
                .strip_prefix('/')
                .and_then(|p| p.strip_suffix('/'))
                .filter(|p| !p.is_empty())
            {
                Some(re) => re.to_owned(),
                None => glob_to_regex(pattern.strip_prefix("refs/heads/").unwrap_or(pattern)),
            };
            let re = regex::RegexBuilder::new(&source)
                .size_limit(1 << 20)
                .build()
                .map_err(|e| {
                    let why = match e {
                        regex::Error::Syntax(text) => {
                            format!(
                                "not a valid regular expression ({})",
                                text.lines().last().unwrap_or("syntax error").trim()
                            )
                        }
                        _ => "the regular expression is too large".to_owned(),
                    };
                    refuse(pattern, &why)
                })?;
            compiled.push(re);
            kept.push(pattern.to_owned());
        }
        Ok(Self {
            patterns: kept,
            compiled,
        })
    }

    /// The patterns as given (trimmed).
    pub fn patterns(&self) -> &[String] {
        &self.patterns
    }

    /// Whether the branch (short name, `release/1.2`) is taken.
    pub fn matches(&self, branch: &str) -> bool {
        self.compiled.iter().any(|re| re.is_match(branch))
    }
}

/// A glob as an anchored regular expression: `**` any characters, `*` any within a path
/// segment, `?` one character within a segment; everything else literal.
fn glob_to_regex(glob: &str) -> String {
    let mut out = String::from("^");
    let mut chars = glob.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '*' if chars.peek() == Some(&'*') => {
                chars.next();
                out.push_str(".*");
            }
            '*' => out.push_str("[^/]*"),
            '?' => out.push_str("[^/]"),
            c => out.push_str(&regex::escape(c.encode_utf8(&mut [0; 4]))),
        }
    }
    out.push('$');
    out
}

/// What a push mirror takes and how carefully.
#[derive(Debug, Clone)]
pub struct PushRules {
    /// `None`: every branch.
    pub only_branches: Option<BranchFilter>,
    pub tags: bool,
    /// Delete downstream refs (that the rules take) which are gone here.
    pub prune: bool,
    /// Overwrite downstream refs that moved on their own; off: report them diverged.
    pub force: bool,
}

impl PushRules {
    /// Whether a branch or tag (full name) is one this target carries.
    pub fn takes(&self, name: &str) -> bool {
        if let Some(branch) = name.strip_prefix("refs/heads/") {
            self.only_branches
                .as_ref()
                .is_none_or(|f| f.matches(branch))
        } else if name.starts_with("refs/tags/") {
            self.tags
        } else {
            false
        }
    }
}

/// Ref names to object ids (hex), branches and tags only.
pub type Refs = BTreeMap<String, String>;

/// One update a run asks the downstream for, guarded by the value it expects there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedUpdate {
    pub name: String,
    /// What the downstream has now (the lease: the update happens only if it still has it).
    pub expect: Option<String>,
    /// The hub's object; `None` deletes the downstream ref.
    pub new: Option<String>,
    pub kind: PushRefKind,
}

/// A ref left alone because it moved downstream on its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DivergedRef {
    pub name: String,
    pub ours: Option<String>,
    pub theirs: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    pub updates: Vec<PlannedUpdate>,
    pub diverged: Vec<DivergedRef>,
    /// Refs the rules take that already have the hub's value downstream.
    pub equal: Vec<(String, String)>,
}

/// Decides a run. `local`: the hub's branches and tags; `remote`: the downstream's, as it
/// advertised them; `pushed`: what this target's runs last left each ref at downstream (a
/// ref still at that value did not move on its own). `is_ancestor(theirs, ours)` says whether
/// the downstream's commit is contained in ours (false when we do not have it).
///
/// - A ref the rules take that differs downstream is updated when `force` is on, when the
///   downstream still has what we pushed, or when it is a branch we fast-forward; otherwise it
///   is diverged.
/// - With `prune`, a downstream ref the rules take that is gone here is deleted when `force`
///   is on or it still has what we pushed; otherwise (someone else made or moved it) it is
///   diverged.
pub fn plan(
    local: &Refs,
    remote: &Refs,
    pushed: &Refs,
    rules: &PushRules,
    is_ancestor: &mut dyn FnMut(&str, &str) -> bool,
) -> Plan {
    let names: BTreeSet<&String> = local
        .keys()
        .chain(remote.keys())
        .filter(|n| rules.takes(n))
        .collect();
    let mut out = Plan::default();
    for name in names {
        let ours = local.get(name);
        let theirs = remote.get(name);
        let ours_before = pushed.get(name);
        match (ours, theirs) {
            (Some(o), Some(t)) if o == t => out.equal.push((name.clone(), o.clone())),
            (Some(o), None) => out.updates.push(PlannedUpdate {
                name: name.clone(),
                expect: None,
                new: Some(o.clone()),
                kind: PushRefKind::Created,
            }),
            (Some(o), Some(t)) => {
                let branch = name.starts_with("refs/heads/");
                let fast_forward = branch && is_ancestor(t, o);
                if rules.force || fast_forward || ours_before == Some(t) {
                    out.updates.push(PlannedUpdate {
                        name: name.clone(),
                        expect: Some(t.clone()),
                        new: Some(o.clone()),
                        kind: if fast_forward {
                            PushRefKind::FastForward
                        } else {
                            PushRefKind::Forced
                        },
                    });
                } else {
                    out.diverged.push(DivergedRef {
                        name: name.clone(),
                        ours: Some(o.clone()),
                        theirs: t.clone(),
                    });
                }
            }
            (None, Some(t)) if rules.prune => {
                if rules.force || ours_before == Some(t) {
                    out.updates.push(PlannedUpdate {
                        name: name.clone(),
                        expect: Some(t.clone()),
                        new: None,
                        kind: PushRefKind::Deleted,
                    });
                } else {
                    out.diverged.push(DivergedRef {
                        name: name.clone(),
                        ours: None,
                        theirs: t.clone(),
                    });
                }
            }
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refs(pairs: &[(&str, &str)]) -> Refs {
        pairs
            .iter()
            .map(|(n, o)| (n.to_string(), o.to_string()))
            .collect()
    }

    fn rules(force: bool, prune: bool) -> PushRules {
        PushRules {
            only_branches: None,
            tags: true,
            prune,
            force,
        }
    }

    fn filter(patterns: &[&str]) -> BranchFilter {
        BranchFilter::parse(&patterns.iter().map(|p| p.to_string()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn globs_stay_within_segments_and_regexes_search() {
        let f = filter(&["main", "release/*", "hotfix/**", "/^v[0-9]+$/"]);
        for yes in ["main", "release/1.0", "hotfix/a/b", "v12"] {
            assert!(f.matches(yes), "{yes}");
        }
        for no in ["mainline", "release/1/x", "release", "v1x", "xmain"] {
            assert!(!f.matches(no), "{no}");
        }
        assert!(filter(&["refs/heads/dev"]).matches("dev"));
        assert!(filter(&["ma?n"]).matches("main"));
        assert!(filter(&["a.b"]).matches("a.b") && !filter(&["a.b"]).matches("axb"));
        assert!(filter(&["/feat/"]).matches("my-feature"));
    }

    #[test]
    fn bad_patterns_are_named() {
        let bad = |p: &[&str]| {
            BranchFilter::parse(&p.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap_err()
        };
        assert_eq!(bad(&["main", "/(/"]).pattern, "/(/");
        assert!(bad(&["/(/"]).why.contains("regular expression"));
        assert_eq!(bad(&["ok", " "]).why, "a pattern is empty");
        assert!(bad(&[]).why.contains("empty"));
        assert!(bad(&["a\nb"]).why.contains("control"));
        assert!(bad(&[&"x".repeat(201)]).why.contains("longer"));
    }

    #[test]
    fn rules_take_branches_by_filter_and_tags_by_switch() {
        let r = PushRules {
            only_branches: Some(filter(&["main"])),
            tags: false,
            prune: true,
            force: true,
        };
        assert!(r.takes("refs/heads/main"));
        assert!(!r.takes("refs/heads/dev"));
        assert!(!r.takes("refs/tags/v1"));
        assert!(!r.takes("refs/mirrorhub/backup/x"));
        assert!(rules(true, true).takes("refs/tags/v1"));
    }

    #[test]
    fn creates_updates_and_prunes_with_force() {
        let local = refs(&[("refs/heads/main", "b"), ("refs/heads/new", "n")]);
        let remote = refs(&[("refs/heads/main", "x"), ("refs/heads/gone", "g")]);
        let p = plan(
            &local,
            &remote,
            &Refs::new(),
            &rules(true, true),
            &mut |_, _| false,
        );
        let kinds: Vec<(&str, PushRefKind, Option<&str>)> = p
            .updates
            .iter()
            .map(|u| (u.name.as_str(), u.kind, u.expect.as_deref()))
            .collect();
        assert_eq!(
            kinds,
            [
                ("refs/heads/gone", PushRefKind::Deleted, Some("g")),
                ("refs/heads/main", PushRefKind::Forced, Some("x")),
                ("refs/heads/new", PushRefKind::Created, None),
            ]
        );
        assert!(p.diverged.is_empty());
    }

    #[test]
    fn without_force_a_downstream_move_is_diverged_and_ours_is_followed() {
        let local = refs(&[
            ("refs/heads/ff", "b"),
            ("refs/heads/moved", "m2"),
            ("refs/heads/rewritten", "r2"),
            ("refs/tags/v1", "t2"),
        ]);
        let remote = refs(&[
            ("refs/heads/ff", "a"),
            ("refs/heads/moved", "theirs"),
            ("refs/heads/rewritten", "r1"),
            ("refs/tags/v1", "t1"),
            ("refs/heads/deleted-here", "d"),
            ("refs/heads/theirs-only", "o"),
            ("refs/heads/same", "s"),
        ]);
        let pushed = refs(&[
            ("refs/heads/moved", "m1"),
            ("refs/heads/rewritten", "r1"),
            ("refs/heads/deleted-here", "d"),
        ]);
        let mut local = local;
        local.insert("refs/heads/same".into(), "s".into());
        let p = plan(
            &local,
            &remote,
            &pushed,
            &rules(false, true),
            &mut |t, o| (t, o) == ("a", "b"),
        );
        let updates: Vec<(&str, PushRefKind)> = p
            .updates
            .iter()
            .map(|u| (u.name.as_str(), u.kind))
            .collect();
        assert_eq!(
            updates,
            [
                ("refs/heads/deleted-here", PushRefKind::Deleted),
                ("refs/heads/ff", PushRefKind::FastForward),
                ("refs/heads/rewritten", PushRefKind::Forced),
            ]
        );
        let diverged: Vec<&str> = p.diverged.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(
            diverged,
            ["refs/heads/moved", "refs/heads/theirs-only", "refs/tags/v1"]
        );
        assert_eq!(p.equal, [("refs/heads/same".to_owned(), "s".to_owned())]);
    }

    #[test]
    fn without_prune_extra_downstream_refs_stay_and_filters_limit_everything() {
        let local = refs(&[("refs/heads/main", "m"), ("refs/heads/dev", "d")]);
        let remote = refs(&[("refs/heads/old", "o"), ("refs/heads/dev-x", "x")]);
        let p = plan(
            &local,
            &remote,
            &Refs::new(),
            &rules(true, false),
            &mut |_, _| false,
        );
        assert_eq!(p.updates.len(), 2);
        assert!(p.updates.iter().all(|u| u.kind == PushRefKind::Created));
        let only_main = PushRules {
            only_branches: Some(filter(&["main"])),
            ..rules(true, true)
        };
        let p = plan(&local, &remote, &Refs::new(), &only_main, &mut |_, _| false);
        let names: Vec<&str> = p.updates.iter().map(|u| u.name.as_str()).collect();
        assert_eq!(
            names,
            ["refs/heads/main"],
            "prune never touches unselected branches"
        );
    }
}

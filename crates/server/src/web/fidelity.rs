//! What the list and a repository's page say of a mirror's freshness ("in sync", "behind by
//! 3 refs since …"), its ref filter (settings) and a silent webhook.

use chrono::{DateTime, Utc};
use mirrorhub_core::RefFilterSpec;
use mirrorhub_hub::{Behind, WebhookSilence};
use mirrorhub_store::{Freshness, Repo};

use super::view::When;

/// "in sync" or "behind by N refs since …", as last seen.
pub struct FreshnessView {
    pub behind: bool,
    /// `in sync`, `behind by 1 ref`, `behind by 3 refs`.
    pub text: String,
    /// Behind since (the first check that found it so).
    pub since: Option<When>,
    /// When it was last seen.
    pub checked: When,
}

impl FreshnessView {
    pub fn of(repo: &Repo, freshness: Option<&Freshness>, now: DateTime<Utc>) -> Option<Self> {
        let b = Behind::of(repo, freshness)?;
        Some(Self {
            behind: b.refs > 0,
            text: match b.refs {
                0 => "in sync".to_owned(),
                1 => "behind by 1 ref".to_owned(),
                n => format!("behind by {n} refs"),
            },
            since: b.since.map(|t| When::new(t, now)),
            checked: When::new(b.checked_at, now),
        })
    }
}

/// Since when a webhook is silent, if it is.
pub fn silence_of(repo: &Repo, freshness: Option<&Freshness>, now: DateTime<Utc>) -> Option<When> {
    WebhookSilence::of(repo, freshness).map(|s| When::new(s.since, now))
}

/// A pattern list as the settings form shows it: one per line.
pub fn patterns_text(patterns: &[String]) -> String {
    patterns.join("\n")
}

/// The settings form's two pattern fields back into a filter: one pattern per line (or
/// separated by commas), blanks ignored.
pub fn filter_from_form(include: &str, exclude: &str) -> RefFilterSpec {
    let split = |text: &str| -> Vec<String> {
        text.split(['\n', ','])
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(str::to_owned)
            .collect()
    };
    RefFilterSpec {
        include: split(include),
        exclude: split(exclude),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_patterns_from_the_form() {
        let spec = filter_from_form("main\r\n release/*\n\n", "tmp/*, wip");
        assert_eq!(spec.include, ["main", "release/*"]);
        assert_eq!(spec.exclude, ["tmp/*", "wip"]);
        assert!(filter_from_form("", " \n").is_empty());
    }
}

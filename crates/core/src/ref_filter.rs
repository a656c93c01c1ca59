//! Which of the upstream's branches and tags a mirror keeps: a repository's `refs` setting,
//! `{"include": [...], "exclude": [...]}`.
//!
//! A ref is kept when it matches an `include` pattern (or there are none) and no `exclude`
//! pattern. A pattern is a glob or, prefixed with `re:`, a regular expression:
//!
//! - A glob that starts with `refs/` is matched against the full name (`refs/tags/tmp/*`
//!   names tags only); any other glob against the short name, the part after `refs/heads/` or
//!   `refs/tags/` (`main` keeps the branch `main` and a tag `main`). `*` stands for any
//!   characters but `/`, `**` for any characters, `?` for one character but `/`.
//! - A regular expression (`re:^v[0-9]+$`) must match the whole short name or the whole full
//!   name (it is anchored at both ends either way).

use std::fmt;

use serde::{Deserialize, Serialize};

/// The most patterns a filter may hold in each list, and the longest pattern.
pub const MAX_PATTERNS: usize = 100;
pub const MAX_PATTERN_LEN: usize = 256;

/// A repository's ref filter. The default keeps every branch and tag.
#[derive(Clone, Default)]
pub struct RefFilter {
    include: Vec<Pattern>,
    exclude: Vec<Pattern>,
}

/// The filter as written by a user, and as stored (JSON).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefFilterSpec {
    #[serde(default)]
    pub include: Vec<String>,
    #[serde(default)]
    pub exclude: Vec<String>,
}

/// A pattern that cannot be used, and where it is: `refs.include[1]`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct RefFilterError {
    pub field: String,
    pub reason: String,
}

#[derive(Clone)]
struct Pattern {
    text: String,
    matcher: Matcher,
}

#[derive(Clone)]
enum Matcher {
    /// Matched against the full name (the glob starts with `refs/`).
    FullGlob(Vec<GlobToken>),
    ShortGlob(Vec<GlobToken>),
    Regex(regex::Regex),
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum GlobToken {
    Literal(char),
    /// `?`
    One,
    /// `*`
    Segment,
    /// `**`
    Any,
}

impl RefFilter {
    /// Checks every pattern; the error names the first bad one (`refs.include[1]`).
    pub fn parse(spec: &RefFilterSpec) -> Result<Self, RefFilterError> {
        let list = |name: &str, patterns: &[String]| -> Result<Vec<Pattern>, RefFilterError> {
            if patterns.len() > MAX_PATTERNS {
                return Err(RefFilterError {
                    field: format!("refs.{name}"),
                    reason: format!("at most {MAX_PATTERNS} patterns"),
                });
            }
            patterns
                .iter()
                .enumerate()
                .map(|(i, text)| {
                    Pattern::parse(text).map_err(|reason| RefFilterError {
                        field: format!("refs.{name}[{i}]"),
                        reason,
                    })
                })
                .collect()
        };
        Ok(Self {
            include: list("include", &spec.include)?,
            exclude: list("exclude", &spec.exclude)?,
        })
    }

    /// Whether the filter keeps every branch and tag.
    pub fn is_all(&self) -> bool {
        self.include.is_empty() && self.exclude.is_empty()
    }

    /// The patterns, as written.
    pub fn spec(&self) -> RefFilterSpec {
        RefFilterSpec {
            include: self.include.iter().map(|p| p.text.clone()).collect(),
            exclude: self.exclude.iter().map(|p| p.text.clone()).collect(),
        }
    }

    /// Whether the mirror keeps the branch or tag with this full name. Refs that are neither
    /// are never kept.
    pub fn keeps(&self, full_name: &str) -> bool {
        let Some(short) = full_name
            .strip_prefix("refs/heads/")
            .or_else(|| full_name.strip_prefix("refs/tags/"))
        else {
            return false;
        };
        let hit = |p: &Pattern| p.matches(full_name, short);
        (self.include.is_empty() || self.include.iter().any(hit)) && !self.exclude.iter().any(hit)
    }
}

impl fmt::Debug for RefFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RefFilter")
            .field("include", &self.spec().include)
            .field("exclude", &self.spec().exclude)
            .finish()
    }
}

impl PartialEq for RefFilter {
    fn eq(&self, other: &Self) -> bool {
        self.spec() == other.spec()
    }
}

impl RefFilterSpec {
    pub fn is_empty(&self) -> bool {
        self.include.is_empty() && self.exclude.is_empty()
    }
}

impl Pattern {
    fn parse(text: &str) -> Result<Self, String> {
        if text.is_empty() {
            return Err("a pattern may not be empty".into());
        }
        if text.len() > MAX_PATTERN_LEN {
            return Err(format!("a pattern may be at most {MAX_PATTERN_LEN} bytes"));
        }
        if text.chars().any(char::is_control) {
            return Err("a pattern may not contain control characters".into());
        }
        let matcher = if let Some(expression) = text.strip_prefix("re:") {
            let anchored = format!("^(?:{expression})$");
            let regex = regex::RegexBuilder::new(&anchored)
                .size_limit(1 << 20)
                .build()
                .map_err(|e| {
                    format!(
                        "not a valid regular expression: {}",
                        first_line(&e.to_string())
                    )
                })?;
            Matcher::Regex(regex)
        } else {
            if text.contains(char::is_whitespace) {
                return Err("a glob may not contain spaces (ref names cannot)".into());
            }
            if text.starts_with('/') || text.ends_with('/') || text.contains("//") {
                return Err("a glob may not start or end with '/' or hold '//'".into());
            }
            let tokens = glob_tokens(text);
            if text.starts_with("refs/") {
                if !(text.starts_with("refs/heads/") || text.starts_with("refs/tags/")) {
                    return Err("a full ref name starts with refs/heads/ or refs/tags/ (only branches and tags are mirrored)".into());
                }
                Matcher::FullGlob(tokens)
            } else {
                Matcher::ShortGlob(tokens)
            }
        };
        Ok(Self {
            text: text.to_owned(),
            matcher,
        })
    }

    fn matches(&self, full: &str, short: &str) -> bool {
        match &self.matcher {
            Matcher::FullGlob(tokens) => glob_match(tokens, full),
            Matcher::ShortGlob(tokens) => glob_match(tokens, short),
            Matcher::Regex(re) => re.is_match(short) || re.is_match(full),
        }
    }
}

fn first_line(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .rfind(|l| !l.is_empty())
        .unwrap_or(text)
        .chars()
        .take(200)
        .collect()
}

fn glob_tokens(text: &str) -> Vec<GlobToken> {
    let mut tokens = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        tokens.push(match c {
            '*' if chars.peek() == Some(&'*') => {
                chars.next();
                // `***` is `**`.
                while chars.peek() == Some(&'*') {
                    chars.next();
                }
                GlobToken::Any
            }
            '*' => GlobToken::Segment,
            '?' => GlobToken::One,
            c => GlobToken::Literal(c),
        });
    }
    tokens
}

/// Glob matching with backtracking over characters; patterns and ref names are short.
fn glob_match(tokens: &[GlobToken], name: &str) -> bool {
    let chars: Vec<char> = name.chars().collect();
    // memo[t][c]: whether tokens[t..] match chars[c..]; filled on demand.
    let mut memo = vec![vec![None; chars.len() + 1]; tokens.len() + 1];
    fn go(
        t: usize,
        c: usize,
        tokens: &[GlobToken],
        chars: &[char],
        memo: &mut Vec<Vec<Option<bool>>>,
    ) -> bool {
        if let Some(known) = memo[t][c] {
            return known;
        }
        let result = match tokens.get(t) {
            None => c == chars.len(),
            Some(GlobToken::Literal(l)) => {
                chars.get(c) == Some(l) && go(t + 1, c + 1, tokens, chars, memo)
            }
            Some(GlobToken::One) => {
                chars.get(c).is_some_and(|ch| *ch != '/') && go(t + 1, c + 1, tokens, chars, memo)
            }
            Some(GlobToken::Segment) => {
                go(t + 1, c, tokens, chars, memo)
                    || (chars.get(c).is_some_and(|ch| *ch != '/')
                        && go(t, c + 1, tokens, chars, memo))
            }
            Some(GlobToken::Any) => {
                go(t + 1, c, tokens, chars, memo)
                    || (c < chars.len() && go(t, c + 1, tokens, chars, memo))
            }
        };
        memo[t][c] = Some(result);
        result
    }
    go(0, 0, tokens, &chars, &mut memo)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(include: &[&str], exclude: &[&str]) -> RefFilter {
        RefFilter::parse(&RefFilterSpec {
            include: include.iter().map(|s| s.to_string()).collect(),
            exclude: exclude.iter().map(|s| s.to_string()).collect(),
        })
        .unwrap()
    }

    #[test]
    fn the_default_keeps_every_branch_and_tag() {
        let all = RefFilter::default();
        assert!(all.is_all());
        for name in ["refs/heads/main", "refs/tags/v1", "refs/heads/a/b/c"] {
            assert!(all.keeps(name), "{name}");
        }
        assert!(!all.keeps("refs/pull/1/head"));
        assert!(!all.keeps("refs/mirrorhub/backup/1/refs/heads/main"));
        assert!(!all.keeps("HEAD"));
    }

    #[test]
    fn includes_and_excludes() {
        let f = filter(&["main", "release/*"], &["tmp/*"]);
        let table = [
            ("refs/heads/main", true),
            ("refs/tags/main", true),
            ("refs/heads/release/1.0", true),
            ("refs/heads/release/1.0/hotfix", false),
            ("refs/heads/release", false),
            ("refs/heads/feature", false),
            ("refs/heads/mainline", false),
            ("refs/tags/tmp/x", false),
        ];
        for (name, kept) in table {
            assert_eq!(f.keeps(name), kept, "{name}");
        }
        let f = filter(&[], &["refs/tags/tmp/**"]);
        assert!(f.keeps("refs/heads/tmp/x"));
        assert!(!f.keeps("refs/tags/tmp/x"));
        assert!(!f.keeps("refs/tags/tmp/x/y"));
        assert!(f.keeps("refs/tags/v1"));
        let f = filter(&["re:v[0-9]+(\\.[0-9]+)*"], &[]);
        assert!(f.keeps("refs/tags/v1.2.3"));
        assert!(!f.keeps("refs/tags/v1.2.3-rc1"), "anchored");
        assert!(!f.keeps("refs/heads/main"));
        let f = filter(&["re:refs/heads/.*"], &[]);
        assert!(f.keeps("refs/heads/x/y") && !f.keeps("refs/tags/x"));
        let f = filter(&["feat-?", "**/wip"], &[]);
        assert!(f.keeps("refs/heads/feat-1") && !f.keeps("refs/heads/feat-12"));
        assert!(f.keeps("refs/heads/a/b/wip") && !f.keeps("refs/heads/wip"));
    }

    #[test]
    fn names_the_bad_pattern() {
        let spec = |include: &[&str], exclude: &[&str]| RefFilterSpec {
            include: include.iter().map(|s| s.to_string()).collect(),
            exclude: exclude.iter().map(|s| s.to_string()).collect(),
        };
        for (s, field) in [
            (spec(&["main", ""], &[]), "refs.include[1]"),
            (spec(&["main"], &["re:(unclosed"]), "refs.exclude[0]"),
            (spec(&["with space"], &[]), "refs.include[0]"),
            (spec(&["refs/pull/*"], &[]), "refs.include[0]"),
            (spec(&["/main"], &[]), "refs.include[0]"),
            (spec(&["a\u{7}"], &[]), "refs.include[0]"),
            (spec(&[&"x".repeat(300)], &[]), "refs.include[0]"),
        ] {
            let e = RefFilter::parse(&s).unwrap_err();
            assert_eq!(e.field, field, "{s:?}: {e}");
        }
        let too_many: Vec<String> = (0..=MAX_PATTERNS).map(|i| format!("b{i}")).collect();
        let e = RefFilter::parse(&RefFilterSpec {
            include: too_many,
            exclude: vec![],
        })
        .unwrap_err();
        assert_eq!(e.field, "refs.include");
    }

    #[test]
    fn globs_never_take_long() {
        let f = filter(&["*a*a*a*a*a*a*a*a*a*a*a*b"], &[]);
        assert!(!f.keeps(&format!("refs/heads/{}", "a".repeat(200))));
        let f = filter(&["**a**a**a**a**a**a**b"], &[]);
        assert!(!f.keeps(&format!("refs/heads/{}", "a/".repeat(100))));
    }
}

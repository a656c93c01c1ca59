//! Progress reports parsed from git's `--progress` output on stderr.

use std::sync::Arc;
use std::time::{Duration, Instant};

/// One progress report: the phase git is in and how far along it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    /// Lowercase, as git names it: "receiving objects", "resolving deltas",
    /// "remote: counting objects", ...
    pub phase: String,
    pub percent: u8,
}

/// Called with progress reports, from the engine's tasks: keep it quick.
pub type ProgressFn = Arc<dyn Fn(Progress) + Send + Sync>;

/// A progress callback that ignores every report.
pub fn no_progress() -> ProgressFn {
    Arc::new(|_| {})
}

/// Parses `Receiving objects:  45% (123/456), 1.20 MiB | 1.00 MiB/s` (and `remote: ...` lines).
pub(crate) fn parse_line(line: &str) -> Option<Progress> {
    let line = line.trim();
    let (phase, rest) = line.split_once(':').and_then(|(a, b)| {
        if a == "remote" {
            let (p, r) = b.trim_start().split_once(':')?;
            Some((format!("remote: {}", p.trim()), r))
        } else {
            Some((a.trim().to_owned(), b))
        }
    })?;
    if phase.is_empty()
        || !phase
            .chars()
            .all(|c| c.is_ascii_alphabetic() || c == ' ' || c == ':')
    {
        return None;
    }
    let rest = rest.trim_start();
    let pct_end = rest.find('%')?;
    let percent: u8 = rest[..pct_end].trim().parse().ok()?;
    if percent > 100 {
        return None;
    }
    Some(Progress {
        phase: phase.to_ascii_lowercase(),
        percent,
    })
}

/// Passes reports on when the phase changes, when a phase completes, or at most every
/// `interval` otherwise.
pub(crate) struct Throttle {
    callback: ProgressFn,
    last: Option<(Progress, Instant)>,
    interval: Duration,
}

impl Throttle {
    pub(crate) fn new(callback: ProgressFn) -> Self {
        Self {
            callback,
            last: None,
            interval: Duration::from_millis(100),
        }
    }

    pub(crate) fn report(&mut self, p: Progress) {
        let now = Instant::now();
        let send = match &self.last {
            None => true,
            Some((last, at)) => {
                last.phase != p.phase
                    || (p.percent != last.percent
                        && (p.percent == 100 || now.duration_since(*at) >= self.interval))
            }
        };
        if send {
            (self.callback)(p.clone());
            self.last = Some((p, now));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[test]
    fn parses_git_progress_lines() {
        let p = parse_line("Receiving objects:  45% (123/456), 1.20 MiB | 1.00 MiB/s").unwrap();
        assert_eq!(
            p,
            Progress {
                phase: "receiving objects".into(),
                percent: 45
            }
        );
        let p = parse_line("Resolving deltas: 100% (10/10), done.").unwrap();
        assert_eq!(p.percent, 100);
        let p = parse_line("remote: Compressing objects:  12% (1/8)").unwrap();
        assert_eq!(p.phase, "remote: compressing objects");
        assert!(parse_line("fatal: repository 'http://x/y' not found").is_none());
        assert!(parse_line("remote: Enumerating objects: 5, done.").is_none());
        assert!(parse_line("error: 300% wrong").is_none());
    }

    #[test]
    fn throttle_keeps_phase_changes_and_completion() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = Arc::clone(&seen);
        let mut t = Throttle::new(Arc::new(move |p| s.lock().unwrap().push(p)));
        for i in 0..=100u8 {
            t.report(Progress {
                phase: "receiving objects".into(),
                percent: i,
            });
        }
        t.report(Progress {
            phase: "resolving deltas".into(),
            percent: 0,
        });
        let seen = seen.lock().unwrap();
        assert!(seen.len() < 10, "{}", seen.len());
        assert_eq!(seen[0].percent, 0);
        assert!(seen.iter().any(|p| p.percent == 100));
        assert_eq!(seen.last().unwrap().phase, "resolving deltas");
    }
}

//! Durations as people write them everywhere in mirrorhub (API, CLI, bot, config): `24h`,
//! `90m`, `30s`, `1d`, or sums like `1h30m`.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{input:?} is not a duration: write a whole number followed by s, m, h or d, such as 30s, 90m or 24h")]
pub struct DurationError {
    input: String,
}

/// How often a mirror is synced by the scheduler. Whole seconds, at least one second.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SyncInterval(Duration);

impl SyncInterval {
    pub const DEFAULT: SyncInterval = SyncInterval(Duration::from_secs(24 * 3600));
    /// Longer than any sensible interval, short enough that date arithmetic never overflows.
    pub const MAX: SyncInterval = SyncInterval(Duration::from_secs(366 * 24 * 3600));

    pub fn parse(input: &str) -> Result<Self, DurationError> {
        let err = || DurationError {
            input: input.to_owned(),
        };
        let s = input.trim();
        if s.is_empty() {
            return Err(err());
        }
        let mut total: u64 = 0;
        let mut rest = s;
        while !rest.is_empty() {
            let digits = rest.find(|c: char| !c.is_ascii_digit()).ok_or_else(err)?;
            if digits == 0 {
                return Err(err());
            }
            let n: u64 = rest[..digits].parse().map_err(|_| err())?;
            let unit = rest[digits..].chars().next().ok_or_else(err)?;
            let factor = match unit {
                's' => 1,
                'm' => 60,
                'h' => 3600,
                'd' => 86_400,
                _ => return Err(err()),
            };
            total = n
                .checked_mul(factor)
                .and_then(|v| total.checked_add(v))
                .ok_or_else(err)?;
            rest = &rest[digits + unit.len_utf8()..];
        }
        if total == 0 || total > Self::MAX.0.as_secs() {
            return Err(err());
        }
        Ok(Self(Duration::from_secs(total)))
    }

    pub fn from_secs(secs: u64) -> Option<Self> {
        (1..=Self::MAX.0.as_secs())
            .contains(&secs)
            .then(|| Self(Duration::from_secs(secs)))
    }

    pub fn as_secs(self) -> u64 {
        self.0.as_secs()
    }

    pub fn as_duration(self) -> Duration {
        self.0
    }
}

impl FromStr for SyncInterval {
    type Err = DurationError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// The shortest exact form in one unit: `24h`, `90m`, `45s`.
impl fmt::Display for SyncInterval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.0.as_secs();
        if s % 3600 == 0 {
            write!(f, "{}h", s / 3600)
        } else if s % 60 == 0 {
            write!(f, "{}m", s / 60)
        } else {
            write!(f, "{s}s")
        }
    }
}

/// Parses a plain duration for settings such as timeouts (same grammar; zero not allowed).
pub fn parse_duration(input: &str) -> Result<Duration, DurationError> {
    SyncInterval::parse(input).map(SyncInterval::as_duration)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_forms() {
        for (text, secs) in [
            ("24h", 86_400),
            ("90m", 5_400),
            ("30s", 30),
            ("1d", 86_400),
            ("1h30m", 5_400),
            (" 5m ", 300),
        ] {
            assert_eq!(SyncInterval::parse(text).unwrap().as_secs(), secs, "{text}");
        }
    }

    #[test]
    fn refuses_everything_else() {
        for bad in [
            "",
            "0s",
            "h",
            "24",
            "-5m",
            "5 m",
            "1.5h",
            "5w",
            "99999999999999999999s",
            "400d",
            "5m!",
        ] {
            assert!(SyncInterval::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn displays_in_the_largest_exact_unit() {
        assert_eq!(SyncInterval::parse("1d").unwrap().to_string(), "24h");
        assert_eq!(SyncInterval::parse("90m").unwrap().to_string(), "90m");
        assert_eq!(SyncInterval::parse("1m5s").unwrap().to_string(), "65s");
    }

    proptest::proptest! {
        #[test]
        fn display_parses_back_to_the_same_value(secs in 1u64..=366 * 86_400) {
            let d = SyncInterval::from_secs(secs).unwrap();
            proptest::prop_assert_eq!(SyncInterval::parse(&d.to_string()).unwrap(), d);
        }

        #[test]
        fn never_panics(s in "\\PC{0,30}") {
            let _ = SyncInterval::parse(&s);
        }
    }
}

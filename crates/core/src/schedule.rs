//! Schedule maths: when a mirror is synced next, how failures back off, when a mirror counts
//! as stale. Pure functions of their inputs (the clock is a parameter), so the scheduler can
//! be proven with a simulated clock.

use std::time::Duration;

use crate::ErrorCode;

/// Whether waiting can fix a failure, or someone has to change something first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureClass {
    /// Network trouble, timeouts, server errors: retried with backoff.
    Transient,
    /// Authentication failed, repository gone, URL refused: retrying changes nothing.
    Permanent,
}

pub fn classify(code: ErrorCode) -> FailureClass {
    if code.is_transient() {
        FailureClass::Transient
    } else {
        FailureClass::Permanent
    }
}

/// A number in [0, 1) derived from `seed`: the same repository gets the same spread every
/// time, different repositories get different ones (SplitMix64).
pub fn unit_jitter(seed: u64) -> f64 {
    let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

/// The delay from a successful sync to the next scheduled one: the interval shortened by up
/// to 10% (never lengthened, so the interval is a promise), differently per repository so that
/// mirrors created together drift apart.
pub fn delay_after_success(interval: Duration, seed: u64) -> Duration {
    interval.mul_f64(1.0 - 0.1 * unit_jitter(seed))
}

/// The delay before retrying after `consecutive_failures` (counting the one that just
/// happened) transient failures: 30 s doubling each time, with ±25% jitter, capped at an
/// eighth of the interval and at one hour, so retries stay well below the interval.
pub fn retry_delay(consecutive_failures: u32, interval: Duration, seed: u64) -> Duration {
    let exp = consecutive_failures.saturating_sub(1).min(16);
    let base = Duration::from_secs(30).saturating_mul(1 << exp);
    let cap = (interval / 8)
        .min(Duration::from_secs(3600))
        .max(Duration::from_secs(1));
    let capped = base.min(cap);
    capped.mul_f64(0.75 + 0.5 * unit_jitter(seed))
}

/// A mirror is stale when its last success is older than its interval plus `grace` (or it
/// never succeeded and was created longer ago than that).
pub fn is_stale(since_last_success: Duration, interval: Duration, grace: Duration) -> bool {
    since_last_success > interval + grace
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: Duration = Duration::from_secs(86_400);

    #[test]
    fn success_delay_never_exceeds_the_interval_and_spreads() {
        let delays: Vec<Duration> = (0..1000)
            .map(|seed| delay_after_success(DAY, seed))
            .collect();
        assert!(delays.iter().all(|d| *d <= DAY && *d >= DAY.mul_f64(0.9)));
        let min = delays.iter().min().unwrap();
        let max = delays.iter().max().unwrap();
        assert!(
            *max - *min > DAY.mul_f64(0.09),
            "jitter should use most of its range"
        );
    }

    #[test]
    fn retries_back_off_and_stay_well_below_the_interval() {
        let d1 = retry_delay(1, DAY, 7);
        let d3 = retry_delay(3, DAY, 7);
        assert!(
            d1 >= Duration::from_secs(22) && d1 <= Duration::from_secs(38),
            "{d1:?}"
        );
        assert!(d3 > d1 * 3, "{d3:?}");
        for n in 0..40 {
            assert!(retry_delay(n, DAY, n as u64) <= Duration::from_secs(3600).mul_f64(1.25));
            assert!(
                retry_delay(n, Duration::from_secs(300), n as u64)
                    <= Duration::from_secs(300) / 8 * 2
            );
        }
    }

    #[test]
    fn classification_follows_the_error_codes() {
        assert_eq!(classify(ErrorCode::Timeout), FailureClass::Transient);
        assert_eq!(
            classify(ErrorCode::UpstreamUnreachable),
            FailureClass::Transient
        );
        assert_eq!(
            classify(ErrorCode::UpstreamAuthFailed),
            FailureClass::Permanent
        );
        assert_eq!(
            classify(ErrorCode::UpstreamNotFound),
            FailureClass::Permanent
        );
        assert_eq!(classify(ErrorCode::UrlNotAllowed), FailureClass::Permanent);
    }

    #[test]
    fn staleness() {
        assert!(!is_stale(DAY, DAY, Duration::from_secs(3600)));
        assert!(is_stale(
            DAY + Duration::from_secs(3601),
            DAY,
            Duration::from_secs(3600)
        ));
    }

    proptest::proptest! {
        #[test]
        fn jitter_is_in_range(seed in proptest::prelude::any::<u64>()) {
            let j = unit_jitter(seed);
            proptest::prop_assert!((0.0..1.0).contains(&j));
        }
    }
}

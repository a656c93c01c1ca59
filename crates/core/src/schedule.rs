//! Schedule maths: when a mirror is synced next, how failures back off, how fast the
//! scheduler catches up after downtime, when a mirror counts as stale. Pure functions of
//! their inputs (the clock is a parameter), so the scheduler can be proven with a simulated
//! clock (`tests/scheduler_simulation.rs`).
//!
//! # The policy in one page
//!
//! - **Slots.** Every mirror owns a *slot*: a fixed point in a repeating period that is 5%
//!   shorter than its interval ([`sync_period`]). The slot's place in the period comes from
//!   the repository id by Fibonacci hashing ([`slot_phase`]), so mirrors created together
//!   (consecutive ids) are spread evenly over the period, and the load stays flat.
//! - **After a success** the next scheduled sync is the mirror's latest slot within one
//!   period, never sooner than half a period ([`delay_to_slot`]). A mirror that was synced
//!   late (after downtime, a retry, a webhook) is back on its slot one sync later, so an
//!   outage leaves no lasting hole or clump in the schedule. The first scheduled sync after
//!   the initial copy has no half-period floor: it goes straight to the slot, which is what
//!   spreads a batch of mirrors created at the same moment.
//! - **Transient failures** retry with capped exponential backoff ([`retry_delay`]);
//!   permanent ones wait for the next slot. [`next_sync_delay`] combines these rules.
//! - **Pacing.** Each scheduler tick may queue as many mirrors as became due since the last
//!   tick, plus 15% ([`Pacer`]). In normal operation that is everything that is due; after
//!   downtime the backlog drains at 15% of the normal rate on top of it, so syncs per hour
//!   never rise more than about 15% above normal.
//! - **Order.** When there are more due mirrors than the pacer lets through, the one whose
//!   last success is oldest relative to its interval goes first ([`freshness_deadline`]):
//!   after an outage no mirror waits longer than the outage itself, and a mirror whose
//!   catch-up sync failed is retried ahead of the backlog instead of behind it.
//! - **Staleness.** A mirror is stale when its last success is older than its interval plus
//!   a grace period ([`is_stale`], [`DEFAULT_STALE_GRACE`]).

use std::time::Duration;

use crate::{ErrorCode, Mode, RepoState, RepoStatus};

/// The default for `MIRRORHUB_STALE_GRACE`: how much longer than its interval a mirror may go
/// without a successful sync before it is reported stale.
///
/// Eight hours: a hub that is down for up to six hours (a night before someone reacts, a
/// maintenance window, a host reboot that needed a person) must not turn every mirror stale,
/// and the catch-up after it needs some room on top (retries of the oldest mirrors with
/// backoff, the queue). The scheduler simulation measures 5.0 h beyond the interval after a
/// 6-hour outage (the outage less the 72-minute slack of [`sync_period`], plus the minutes
/// of the catch-up), so 8 h leaves room for longer retry chains and for intervals shorter
/// than a day (whose slack is smaller); a mirror that is really not being synced shows up
/// within a third of a day beyond its 24-hour promise.
pub const DEFAULT_STALE_GRACE: Duration = Duration::from_secs(8 * 3600);

/// How much faster than the rate at which mirrors become due the scheduler may queue them,
/// as a fraction. 0.15 drains a backlog at 15% of the normal rate on top of it, so syncs per
/// hour stay within 20% of normal while catching up, with 5% left for the ordinary
/// hour-to-hour variation. The price is a slow catch-up: a backlog of 6 hours' worth of due
/// mirrors takes up to 6 h / 0.15 = 40 h to work off (31 h in the simulation, where part of
/// the normal rate is retries that do not pile up during an outage), and meanwhile every
/// mirror is synced late by the backlog's age, which shrinks from the outage's length to
/// nothing. No mirror waits longer than the outage, but most get one sync a few hours late.
pub const CATCH_UP_HEADROOM: f64 = 0.15;

/// The least catch-up rate, overdue mirrors per hour, so that a hub with very few mirrors
/// (whose ticks see almost nothing become due) still works through a backlog.
pub const CATCH_UP_FLOOR_PER_HOUR: f64 = 6.0;

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
///
/// The scheduler now uses [`next_sync_delay`] (slots), which keeps mirrors spread for good
/// where this random shortening only lets them drift apart slowly (a day's batch of mirrors
/// still clumps into a few hours after a week) and never closes the hole an outage leaves.
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

/// What [`repo_status`] needs to know about a repository at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatusFacts {
    pub mode: Mode,
    /// The first copy's state.
    pub state: RepoState,
    /// `paused_reason` is set.
    pub paused: bool,
    /// Failed syncs since the last success.
    pub consecutive_failures: u32,
    /// A claim on one of its sync jobs holds a live lease: a worker (on any replica) is
    /// syncing it now. A worker that died loses this when its lease runs out.
    pub sync_running: bool,
    /// Time since its last success, or since its creation if it never had one.
    pub since_last_success: Duration,
    pub interval: Duration,
    /// `MIRRORHUB_STALE_GRACE`.
    pub grace: Duration,
}

/// The one status word of a repository. The first rule that applies wins:
///
/// 1. `paused`: `paused_reason` is set (whatever else is true: scheduled syncs stopped);
/// 2. `cloning`: the first copy is queued or running, or running again after it failed;
/// 3. `failed`: the first copy failed and no retry is running;
/// 4. `synced`: a primary (migrated, or a promoted mirror) whose copy is complete: it is
///    never synced from an upstream, so it is never `syncing` or `stale`;
/// 5. `syncing`: a later sync of a mirror is running;
/// 6. `failed`: the last sync failed (retries are coming; after `MIRRORHUB_PAUSE_AFTER`
///    permanent failures the mirror is paused instead);
/// 7. `stale`: the last success is older than the interval plus the grace ([`is_stale`]);
/// 8. `synced`.
///
/// A successful sync clears the failures and the pause, so the mirror is `synced` again.
pub fn repo_status(f: &StatusFacts) -> RepoStatus {
    if f.paused {
        return RepoStatus::Paused;
    }
    match f.state {
        RepoState::Cloning => return RepoStatus::Cloning,
        RepoState::Failed if f.sync_running => return RepoStatus::Cloning,
        RepoState::Failed => return RepoStatus::Failed,
        RepoState::Ready => {}
    }
    if f.mode == Mode::Migrate {
        RepoStatus::Synced
    } else if f.sync_running {
        RepoStatus::Syncing
    } else if f.consecutive_failures > 0 {
        RepoStatus::Failed
    } else if is_stale(f.since_last_success, f.interval, f.grace) {
        RepoStatus::Stale
    } else {
        RepoStatus::Synced
    }
}

/// The period of a mirror's scheduled syncs: its interval less 5%. The slack keeps the
/// interval a promise through ordinary trouble (a retry or two, a wait in the queue, a short
/// restart: 72 minutes for a 24-hour interval) at the cost of 5% more syncs.
pub fn sync_period(interval: Duration) -> Duration {
    (interval - interval / 20).max(Duration::from_millis(1))
}

/// Where a repository's slot lies within its period, as a fraction in [0, 1): the id times
/// the golden ratio, modulo 1 (Fibonacci hashing). Consecutive ids, which is what mirrors
/// created together get, land as far apart as they can: any n consecutive ids split the
/// period into gaps of at most three different lengths, all close to 1/n.
pub fn slot_phase(repo_id: u64) -> f64 {
    (repo_id.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 11) as f64 / (1u64 << 53) as f64
}

/// The delay from `at` (time since the Unix epoch, so every replica computes the same slots)
/// to the mirror's next scheduled sync: its latest slot no later than one [`sync_period`]
/// from `at`, so never later than the interval allows. Unless `first`, no sooner than half a
/// period either: a sync just before the slot (a webhook, a late catch-up) pushes the next
/// one out to half a period, and the one after that is back on the slot. `first` is for the
/// first scheduled sync after the initial copy, which goes straight to the slot, however
/// close: that is what spreads mirrors created at the same moment over the whole period.
///
/// The result is in (0, period] (in [period / 2, period] unless `first`), in milliseconds.
pub fn delay_to_slot(at: Duration, interval: Duration, repo_id: u64, first: bool) -> Duration {
    let period = sync_period(interval).as_millis().max(1);
    let offset = ((slot_phase(repo_id) * period as f64) as u128).min(period - 1);
    let horizon = at.as_millis() + period;
    // Slots are the times ≡ offset (mod period); the latest one ≤ horizon is > at.
    let slot = horizon - (horizon - offset) % period;
    let mut delay = slot - at.as_millis();
    if !first {
        delay = delay.max(period / 2);
    }
    Duration::from_millis(u64::try_from(delay).unwrap_or(u64::MAX))
}

/// What the scheduler needs to know about a sync that just ended to place the next one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyncEnd {
    pub repo_id: u64,
    pub interval: Duration,
    /// When the sync ended, as time since the Unix epoch.
    pub at: Duration,
    /// Whether the mirror had a successful sync before this one (`last_success_at` as it was
    /// when the sync started).
    pub synced_before: bool,
    /// Consecutive failures before this sync.
    pub failures_before: u32,
    /// `None` when the sync succeeded (or found nothing to do).
    pub failure: Option<FailureClass>,
}

/// The delay from the end of a sync to the next scheduled one: after a success the mirror's
/// slot ([`delay_to_slot`]); after a transient failure a retry with backoff ([`retry_delay`],
/// counting this failure); after a permanent failure the slot too (the caller pauses the
/// mirror instead once permanent failures repeat).
pub fn next_sync_delay(end: &SyncEnd) -> Duration {
    match end.failure {
        None => delay_to_slot(end.at, end.interval, end.repo_id, !end.synced_before),
        Some(FailureClass::Transient) => {
            let seed = end.repo_id.rotate_left(32) ^ end.at.as_millis() as u64;
            retry_delay(end.failures_before.saturating_add(1), end.interval, seed)
        }
        Some(FailureClass::Permanent) => delay_to_slot(end.at, end.interval, end.repo_id, false),
    }
}

/// The key by which due mirrors are queued when the [`Pacer`] lets fewer through than are
/// due: earliest first. It is the moment the mirror breaks its interval: its last success
/// (its creation if it never had one) plus its interval. Oldest first by this key, not by
/// `next_sync_at`, so a mirror whose catch-up sync failed is retried ahead of the backlog
/// instead of queuing behind all of it again.
pub fn freshness_deadline(last_success_or_created: Duration, interval: Duration) -> Duration {
    last_success_or_created.saturating_add(interval)
}

/// Paces the scheduler: how many due mirrors one tick may queue. Keep one per scheduler loop
/// (it carries the fractions of a mirror between ticks).
///
/// Each tick may queue as many mirrors as became due since the previous tick, plus
/// [`CATCH_UP_HEADROOM`] of that, plus [`CATCH_UP_FLOOR_PER_HOUR`]. In normal operation
/// that is never less than what is due, so nothing waits; after downtime the overdue mirrors
/// are worked off at the headroom's rate, oldest [`freshness_deadline`] first, instead of
/// all at once.
#[derive(Debug, Clone)]
pub struct Pacer {
    headroom: f64,
    floor_per_sec: f64,
    carry: f64,
}

impl Default for Pacer {
    fn default() -> Self {
        Self::new(CATCH_UP_HEADROOM, CATCH_UP_FLOOR_PER_HOUR)
    }
}

impl Pacer {
    /// `headroom`: the catch-up rate as a fraction of the rate at which mirrors become due;
    /// `floor_per_hour`: the least catch-up rate. Negative values count as zero.
    pub fn new(headroom: f64, floor_per_hour: f64) -> Self {
        Self {
            headroom: headroom.max(0.0),
            floor_per_sec: floor_per_hour.max(0.0) / 3600.0,
            carry: 0.0,
        }
    }

    /// The limit for this tick's `enqueue_due`. `newly_due`: how many mirrors have a
    /// `next_sync_at` in (previous tick, this tick] (on the first tick after start: in
    /// (now - tick, now]); `elapsed`: the time since the previous tick (the tick length on
    /// the first; more than a minute counts as a minute, so a stalled process does not burst).
    pub fn batch(&mut self, newly_due: u64, elapsed: Duration) -> u64 {
        let elapsed = elapsed.min(Duration::from_secs(60)).as_secs_f64();
        let budget =
            self.carry + newly_due as f64 * (1.0 + self.headroom) + self.floor_per_sec * elapsed;
        // The epsilon keeps sums of fractions that should be whole (0.2 five times) whole.
        let whole = (budget + 1e-9).floor();
        self.carry = (budget - whole).max(0.0);
        whole as u64
    }
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

    #[test]
    fn status_words() {
        let synced = StatusFacts {
            mode: Mode::Mirror,
            state: RepoState::Ready,
            paused: false,
            consecutive_failures: 0,
            sync_running: false,
            since_last_success: Duration::from_secs(60),
            interval: DAY,
            grace: HOUR,
        };
        let with = |f: fn(&mut StatusFacts)| {
            let mut facts = synced;
            f(&mut facts);
            repo_status(&facts)
        };
        assert_eq!(repo_status(&synced), RepoStatus::Synced);
        assert_eq!(with(|f| f.state = RepoState::Cloning), RepoStatus::Cloning);
        assert_eq!(
            with(|f| {
                f.state = RepoState::Cloning;
                f.sync_running = true;
            }),
            RepoStatus::Cloning
        );
        assert_eq!(with(|f| f.state = RepoState::Failed), RepoStatus::Failed);
        assert_eq!(
            with(|f| {
                f.state = RepoState::Failed;
                f.sync_running = true;
            }),
            RepoStatus::Cloning
        );
        assert_eq!(with(|f| f.sync_running = true), RepoStatus::Syncing);
        assert_eq!(with(|f| f.consecutive_failures = 2), RepoStatus::Failed);
        assert_eq!(
            with(|f| {
                f.consecutive_failures = 2;
                f.sync_running = true;
            }),
            RepoStatus::Syncing
        );
        assert_eq!(
            with(|f| {
                f.consecutive_failures = 5;
                f.paused = true;
            }),
            RepoStatus::Paused
        );
        assert_eq!(
            with(|f| {
                f.state = RepoState::Failed;
                f.paused = true;
            }),
            RepoStatus::Paused
        );
        assert_eq!(
            with(|f| f.since_last_success = DAY + 2 * HOUR),
            RepoStatus::Stale
        );
        assert_eq!(
            with(|f| f.since_last_success = DAY + HOUR),
            RepoStatus::Synced
        );
        assert_eq!(
            with(|f| {
                f.since_last_success = DAY + 2 * HOUR;
                f.consecutive_failures = 1;
            }),
            RepoStatus::Failed
        );
        // A primary is complete once copied: never syncing or stale.
        assert_eq!(
            with(|f| {
                f.mode = Mode::Migrate;
                f.since_last_success = 10 * DAY;
                f.sync_running = true;
            }),
            RepoStatus::Synced
        );
        assert_eq!(
            with(|f| {
                f.mode = Mode::Migrate;
                f.state = RepoState::Cloning;
            }),
            RepoStatus::Cloning
        );
    }

    const HOUR: Duration = Duration::from_secs(3600);
    /// 2024-01-01T00:00:00Z.
    const EPOCH_2024: Duration = Duration::from_secs(1_704_067_200);

    #[test]
    fn slots_of_consecutive_ids_are_spread_evenly() {
        // 1000 mirrors created together: every hour of the period gets its share.
        let mut per_hour = [0u32; 24];
        for id in 5_000..6_000u64 {
            per_hour[(slot_phase(id) * 24.0) as usize] += 1;
        }
        let (min, max) = (
            per_hour.iter().min().unwrap(),
            per_hour.iter().max().unwrap(),
        );
        assert!(*min >= 40 && *max <= 44, "{per_hour:?}");
    }

    #[test]
    fn a_mirror_synced_on_its_slot_stays_on_it() {
        let period = sync_period(DAY);
        assert_eq!(period, DAY.mul_f64(0.95));
        let first = EPOCH_2024 + delay_to_slot(EPOCH_2024, DAY, 42, true);
        let second = first + delay_to_slot(first, DAY, 42, false);
        let third = second + delay_to_slot(second, DAY, 42, false);
        assert_eq!(second - first, period);
        assert_eq!(third - second, period);
    }

    #[test]
    fn a_late_sync_is_back_on_its_slot_one_sync_later() {
        let slot = EPOCH_2024 + delay_to_slot(EPOCH_2024, DAY, 7, true);
        // Caught up five hours late after an outage: the next sync is the usual slot.
        let late = slot + 5 * HOUR;
        let next = late + delay_to_slot(late, DAY, 7, false);
        assert_eq!(next, slot + sync_period(DAY));
        // Synced by a webhook an hour before its slot: half a period later, then the slot.
        let early = slot + sync_period(DAY) - HOUR;
        let next = early + delay_to_slot(early, DAY, 7, false);
        assert_eq!(next - early, sync_period(DAY) / 2);
        let after = next + delay_to_slot(next, DAY, 7, false);
        assert_eq!(after, slot + 2 * sync_period(DAY));
    }

    #[test]
    fn next_sync_delay_follows_the_outcome() {
        let end = SyncEnd {
            repo_id: 3,
            interval: DAY,
            at: EPOCH_2024,
            synced_before: true,
            failures_before: 0,
            failure: None,
        };
        assert_eq!(
            next_sync_delay(&end),
            delay_to_slot(EPOCH_2024, DAY, 3, false)
        );
        let first = SyncEnd {
            synced_before: false,
            ..end
        };
        assert_eq!(
            next_sync_delay(&first),
            delay_to_slot(EPOCH_2024, DAY, 3, true)
        );
        let transient = SyncEnd {
            failures_before: 2,
            failure: Some(FailureClass::Transient),
            ..end
        };
        let d = next_sync_delay(&transient);
        assert!(
            d >= Duration::from_secs(90) && d <= Duration::from_secs(150),
            "{d:?}"
        );
        let permanent = SyncEnd {
            failure: Some(FailureClass::Permanent),
            ..end
        };
        assert_eq!(
            next_sync_delay(&permanent),
            delay_to_slot(EPOCH_2024, DAY, 3, false)
        );
    }

    #[test]
    fn the_pacer_never_holds_back_what_became_due_and_adds_the_headroom() {
        let tick = Duration::from_secs(5);
        let mut pacer = Pacer::default();
        let mut total = 0;
        let mut due = 0;
        for n in 0..10_000u64 {
            let newly = n % 3;
            let batch = pacer.batch(newly, tick);
            assert!(batch >= newly);
            total += batch;
            due += newly;
        }
        // 10,000 ticks of 5 s: 1.15 x what became due, plus 6 an hour.
        let expected = due as f64 * 1.15 + 6.0 * 50_000.0 / 3600.0;
        assert!(
            (total as f64 - expected).abs() <= 1.0,
            "{total} vs {expected}"
        );
        // Nothing becomes due: a backlog still drains at the floor, one every ten minutes.
        let mut pacer = Pacer::default();
        let drained: u64 = (0..720).map(|_| pacer.batch(0, tick)).sum();
        assert_eq!(drained, 6);
    }

    #[test]
    fn the_deadline_is_last_success_plus_interval() {
        assert_eq!(freshness_deadline(EPOCH_2024, DAY), EPOCH_2024 + DAY);
    }

    proptest::proptest! {
        #[test]
        fn jitter_is_in_range(seed in proptest::prelude::any::<u64>()) {
            let j = unit_jitter(seed);
            proptest::prop_assert!((0.0..1.0).contains(&j));
        }

        #[test]
        fn the_next_slot_keeps_the_interval(
            at_ms in 0u64..4_000_000_000_000,
            interval_s in 1u64..(400 * 86_400),
            repo_id in proptest::prelude::any::<u64>(),
            first in proptest::prelude::any::<bool>(),
        ) {
            let interval = Duration::from_secs(interval_s);
            let period = sync_period(interval);
            let d = delay_to_slot(Duration::from_millis(at_ms), interval, repo_id, first);
            proptest::prop_assert!(d > Duration::ZERO && d <= period && period < interval);
            if !first {
                proptest::prop_assert!(d + Duration::from_millis(1) >= period / 2);
            }
        }
    }
}

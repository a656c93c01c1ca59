//! The scheduler proven with a simulated clock (no sleeps, no wall clock, seeded randomness):
//! 10,000 mirrors created together, 7 days, random transient failures, a group of mirrors
//! whose upstream is gone, one 6-hour hub outage in the middle.
//!
//! The hub is modelled as it runs (`crates/hub/src/worker.rs`, the store's queue SQL): a
//! scheduler tick every 5 s that counts the mirrors which became due since the previous tick,
//! asks [`Pacer::batch`] how many to queue, and queues that many due mirrors, earliest
//! [`schedule::freshness_deadline`] first, that have no job yet; jobs are claimed in
//! `run_after` order (initial copies first, they were queued at creation); a worker takes
//! the next job the moment it is free; a finished sync sets `next_sync_at` from
//! [`schedule::next_sync_delay`]. During the outage nothing runs; the syncs it interrupted
//! stay in the durable queue and run first after it. The policy functions are the library's
//! own; only the hub around them is modelled here.
//!
//! Capacity: 4 workers (`MIRRORHUB_WORKERS`' default). A sync takes 1-5 s, one in twenty
//! 10-60 s (a bigger fetch), a failed one 1-20 s, an attempt at a dead upstream 5-30 s (a
//! connect timeout), an initial copy 5-20 s: about 3,000 syncs an hour at most, some five
//! times the ~550 an hour the schedule asks for. That is enough to copy all 10,000 mirrors in
//! under 9 hours and to work off the outage's backlog of ~2,700 mirrors in under an hour if
//! the scheduler let it (the `NoPacing` variant below does, at 4.9 times the mean rate).
//!
//! What is claimed, and checked:
//! - every reachable mirror has a successful sync at least every interval plus
//!   [`schedule::DEFAULT_STALE_GRACE`], outage included; away from the outage and its
//!   catch-up, at least every interval;
//! - once the initial copies are done, the syncs started in each hour (attempts, failed ones
//!   included) stay within ±20% of the mean of the hours the hub was up, the hours of the
//!   catch-up after the outage included. The hours of the outage itself (no syncs, the hub is
//!   down) are the only ones left out.
//!
//! `cargo test -p mirrorhub-core --test scheduler_simulation -- --nocapture` prints the
//! figures.

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap};
use std::time::Duration;

use mirrorhub_core::schedule::{self, FailureClass, Pacer, SyncEnd};

const SEC: u64 = 1000;
const MIN: u64 = 60 * SEC;
const HOUR: u64 = 60 * MIN;
const DAY: u64 = 24 * HOUR;
/// 2024-01-01T00:00:00Z in ms: slots are anchored at the Unix epoch, so the clock starts at
/// a realistic time rather than at zero.
const T0: u64 = 1_704_067_200_000;

/// SplitMix64: a small seeded generator, so the run is the same every time.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in [lo, hi).
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo)
    }
}

/// The policy under test, or one with a part taken out (to show the checks can fail).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Variant {
    /// The library's policy, as the hub calls it.
    Policy,
    /// The scheduler queues up to 500 due mirrors a tick (what the hub did before pacing).
    NoPacing,
    /// Due mirrors are queued by oldest `next_sync_at` instead of freshness deadline.
    OrderByNextSync,
    /// The next sync after a success is the interval shortened by a random 0-10% (the old
    /// `delay_after_success`), no slots.
    RandomJitter,
    /// The first sync after the initial copy is treated like any other (half-period floor).
    NoFirstSlot,
}

/// How long a sync takes, by what it finds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Costs {
    /// Every sync runs `git fetch` (how the hub worked before the in-process listing): 1-5 s,
    /// one in twenty 10-60 s, a failure 1-20 s, a dead upstream 5-30 s, a first copy 5-20 s.
    Fetches,
    /// The no-op check lists the upstream in the hub's process (`crates/git/src/listing.rs`)
    /// and returns when nothing changed: no git is spawned. See [`Model::million`].
    InProcess,
}

/// What the hub holds at T0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Start {
    /// Every mirror is created at T0, with its initial copy queued.
    Created,
    /// A hub in its steady state: every mirror was copied long ago and its last success was
    /// on its slot, the latest one before T0 (so its next sync is the next slot).
    Established,
}

#[derive(Debug, Clone, Copy)]
struct Model {
    mirrors: u32,
    /// Mirrors whose upstream never answers (transient `upstream_unreachable` every time,
    /// so they are retried with capped backoff for the whole run).
    unreachable: u32,
    /// Of the unreachable ones, those whose upstream drops packets: every attempt waits for
    /// the timeouts (only with [`Costs::InProcess`]; the others fail fast there).
    blackholed: u32,
    /// Chance that a successful sync of a reachable mirror brings something (a fetch); the
    /// rest are no-ops (only with [`Costs::InProcess`]).
    changed: f64,
    costs: Costs,
    start: Start,
    interval: u64,
    /// Chance that a sync of a reachable mirror fails transiently.
    transient_failure: f64,
    workers: usize,
    tick: u64,
    days: u64,
    /// Start (from T0) and length.
    outage: Option<(u64, u64)>,
    seed: u64,
    /// The pacer's catch-up headroom.
    headroom: f64,
    variant: Variant,
}

impl Model {
    fn issue() -> Self {
        Self {
            mirrors: 10_000,
            unreachable: 100,
            interval: DAY,
            transient_failure: 0.02,
            workers: 4,
            tick: 5 * SEC,
            days: 7,
            outage: Some((84 * HOUR, 6 * HOUR)),
            seed: 0x5eed_2024,
            headroom: schedule::CATCH_UP_HEADROOM,
            variant: Variant::Policy,
            blackholed: 0,
            changed: 1.0,
            costs: Costs::Fetches,
            start: Start::Created,
        }
    }

    /// A million mirrors on one hub with the default 4 workers, a week in its steady state
    /// (the initial copies long done: a million first copies at 5-20 s each would take 4
    /// workers a month, so they are not part of this claim), no outage.
    ///
    /// Costs, with the no-op check in process: a sync that finds nothing takes 20-150 ms
    /// (the listing, one or two round trips to a remote forge over TLS, plus the run's
    /// handful of store writes; the hub spends 4-5 ms of CPU on one in `benches/scale.rs`); one
    /// success in fifty brings something and fetches (1-5 s, one in twenty 10-60 s); one
    /// sync in two hundred fails transiently (0.2-10 s: the listing fails, git tries and
    /// fails too). 1,000 upstreams (0.1%) are gone for the whole week and retried with
    /// capped backoff (about 24 attempts a day each): 980 refuse or fail to resolve at once
    /// (50 ms-2 s), 20 drop packets and cost both timeouts, the listing's and git's (60 s).
    ///
    /// The budget: about 1.05 million scheduled syncs a day (the period is 5% shorter than the
    /// interval) against 4 x 86,400 worker-seconds: no-ops ~87,000 s, fetches ~97,000 s,
    /// failures ~27,000 s, dead upstreams ~53,000 s, about three quarters of what 4 workers
    /// have (printed as the utilisation). It is capacity, not the policy, that limits this:
    /// each blackholed upstream takes ~1,450 worker-seconds a day, so a few hundred of them
    /// would need more workers.
    fn million() -> Self {
        Self {
            mirrors: 1_000_000,
            unreachable: 1_000,
            blackholed: 20,
            transient_failure: 0.005,
            changed: 0.02,
            costs: Costs::InProcess,
            start: Start::Established,
            outage: None,
            seed: 0x5eed_1000_0000,
            ..Self::issue()
        }
    }
}

struct Mirror {
    reachable: bool,
    blackholed: bool,
    created: u64,
    last_success: Option<u64>,
    failures: u32,
    /// Whether a job of this mirror is queued or running (`enqueue_due` skips it then).
    has_job: bool,
}

/// A sync in progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Running {
    finish: u64,
    repo: u32,
    failed: bool,
    /// The job's place in the queue, kept so an interrupted job goes back where it was.
    run_after: u64,
    seq: u64,
    initial: bool,
}

#[derive(Debug, Default)]
struct Report {
    /// Sync attempts started in each hour from T0.
    hourly: Vec<u32>,
    /// When the last initial copy finished, and when the queue was first empty after it.
    import_done: u64,
    import_drained: Option<u64>,
    /// The first tick after the outage at which no due mirror was left waiting.
    catch_up_end: Option<u64>,
    /// Longest time a reachable mirror went without a success (from its creation, between
    /// successes, and from its last success to the end), with the mirror and when it ended.
    max_gap: u64,
    max_gap_repo: u32,
    max_gap_end: u64,
    /// Gaps longer than the interval: (start, end).
    over_interval: Vec<(u64, u64)>,
    attempts: u64,
    successes: u64,
    failures: u64,
    /// Attempts of the mirrors that never answer.
    unreachable_attempts: u64,
    /// Worker time spent on syncs, in ms.
    busy: u64,
}

fn simulate(m: &Model) -> Report {
    let mut rng = Rng(m.seed);
    let end = T0 + m.days * DAY;

    let mut mirrors: Vec<Mirror> = (0..=m.mirrors)
        .map(|_| Mirror {
            reachable: true,
            blackholed: false,
            created: T0,
            last_success: None,
            failures: 0,
            has_job: m.start == Start::Created,
        })
        .collect();
    // Ids start at 1, like the database's.
    mirrors[0].has_job = false;
    let mut unreachable = 0;
    while unreachable < m.unreachable {
        let id = rng.range(1, u64::from(m.mirrors) + 1) as usize;
        if mirrors[id].reachable {
            mirrors[id].reachable = false;
            mirrors[id].blackholed = unreachable < m.blackholed;
            unreachable += 1;
        }
    }

    // The durable queue, claimed in (run_after, id) order, and mirrors by next_sync_at (not
    // yet due, no job), and due mirrors waiting to be queued ordered by the store's key.
    let mut seq = 0u64;
    let mut queue: BTreeSet<(u64, u64, u32, bool)> = BTreeSet::new();
    let mut by_next: BTreeSet<(u64, u32)> = BTreeSet::new();
    match m.start {
        // Each mirror with its initial-copy job.
        Start::Created => {
            for id in 1..=m.mirrors {
                seq += 1;
                queue.insert((T0, seq, id, true));
            }
        }
        // Each mirror last synced on its latest slot before T0 (created long before), due
        // at its next one; an unreachable one has been failing since that slot and retries
        // within the hour (its backoff is at its cap).
        Start::Established => {
            let interval = Duration::from_millis(m.interval);
            for id in 1..=m.mirrors {
                let next = T0
                    + schedule::delay_to_slot(Duration::from_millis(T0), interval, id.into(), true)
                        .as_millis() as u64;
                let last = next - schedule::sync_period(interval).as_millis() as u64;
                let mirror = &mut mirrors[id as usize];
                mirror.created = last - 30 * DAY;
                mirror.last_success = Some(last);
                if mirror.reachable {
                    by_next.insert((next, id));
                } else {
                    mirror.failures = 24;
                    by_next.insert((T0 + rng.range(0, HOUR), id));
                }
            }
        }
    }
    let mut due: BTreeSet<(u64, u32)> = BTreeSet::new();
    let mut running: BinaryHeap<Reverse<Running>> = BinaryHeap::new();
    let mut pacer = Pacer::new(m.headroom, schedule::CATCH_UP_FLOOR_PER_HOUR);
    let mut report = Report {
        hourly: vec![0; (m.days * 24) as usize],
        ..Report::default()
    };
    let mut initial_left = match m.start {
        Start::Created => m.mirrors,
        Start::Established => 0,
    };
    if initial_left == 0 {
        report.import_done = T0;
    }
    let (outage_start, outage_end) = m
        .outage
        .map(|(s, l)| (T0 + s, T0 + s + l))
        .unwrap_or((u64::MAX, u64::MAX));
    let mut was_down = false;
    let mut prev_tick = T0;

    // Starts the oldest job on a free worker at `at`.
    let start = |at: u64,
                 queue: &mut BTreeSet<(u64, u64, u32, bool)>,
                 running: &mut BinaryHeap<Reverse<Running>>,
                 mirrors: &[Mirror],
                 rng: &mut Rng,
                 report: &mut Report| {
        let Some((run_after, seq, repo, initial)) = queue.pop_first() else {
            return false;
        };
        let mirror = &mirrors[repo as usize];
        let failed = !mirror.reachable || rng.unit() < m.transient_failure;
        let took = match (m.costs, mirror.reachable, failed, initial) {
            // A connection that times out.
            (Costs::Fetches, false, _, _) => rng.range(5 * SEC, 30 * SEC),
            // The listing's timeout, then git's.
            (Costs::InProcess, false, _, _) if mirror.blackholed => rng.range(60 * SEC, 61 * SEC),
            // Refused, or the name does not resolve: the listing and git fail at once.
            (Costs::InProcess, false, _, _) => rng.range(50, 2 * SEC),
            (Costs::Fetches, true, true, _) => rng.range(SEC, 20 * SEC),
            (Costs::InProcess, true, true, _) => rng.range(200, 10 * SEC),
            (_, true, false, true) => rng.range(5 * SEC, 20 * SEC),
            // Nothing changed: the listing in process, and the run's store writes.
            (Costs::InProcess, true, false, false) if rng.unit() >= m.changed => rng.range(20, 150),
            // Most fetches bring little; one in twenty is a bigger transfer.
            (_, true, false, false) if rng.unit() < 0.05 => rng.range(10 * SEC, 60 * SEC),
            (_, true, false, false) => rng.range(SEC, 5 * SEC),
        };
        report.busy += took;
        report.hourly[((at - T0) / HOUR) as usize] += 1;
        report.attempts += 1;
        if !mirror.reachable {
            report.unreachable_attempts += 1;
        }
        running.push(Reverse(Running {
            finish: at + took,
            repo,
            failed,
            run_after,
            seq,
            initial,
        }));
        true
    };

    let ticks = m.days * DAY / m.tick;
    for k in 0..ticks {
        let now = T0 + k * m.tick;
        // Syncs that end before this tick (and before the outage), each worker taking the
        // next job the moment it is free.
        let down = now >= outage_start && now < outage_end;
        let horizon = if down { outage_start } else { now };
        while let Some(Reverse(r)) = running.peek().copied() {
            if r.finish > horizon {
                break;
            }
            running.pop();
            let mirror = &mut mirrors[r.repo as usize];
            let failure = r.failed.then_some(FailureClass::Transient);
            let synced_before = mirror.last_success.is_some();
            if r.failed {
                report.failures += 1;
            } else {
                report.successes += 1;
                if mirror.reachable {
                    let since = mirror.last_success.unwrap_or(mirror.created);
                    record_gap(&mut report, r.repo, since, r.finish, m.interval);
                }
            }
            let delay = next_delay(m, r.repo, r.finish, synced_before, mirror.failures, failure);
            if r.failed {
                mirror.failures += 1;
            } else {
                mirror.failures = 0;
                mirror.last_success = Some(r.finish);
            }
            mirror.has_job = false;
            by_next.insert((r.finish + delay, r.repo));
            if r.initial {
                initial_left -= 1;
                if initial_left == 0 {
                    report.import_done = r.finish;
                }
            }
            start(
                r.finish,
                &mut queue,
                &mut running,
                &mirrors,
                &mut rng,
                &mut report,
            );
        }

        if down {
            if !was_down {
                // The process dies: the syncs it was running never finish; their jobs stay
                // in the durable queue with their place and run again after the restart.
                for Reverse(r) in running.drain() {
                    queue.insert((r.run_after, r.seq, r.repo, r.initial));
                }
                was_down = true;
            }
            continue;
        }
        if was_down {
            // A fresh process: its scheduler has no previous tick.
            was_down = false;
            prev_tick = now - m.tick;
        }

        // Scheduler tick: what became due since the previous tick, and the catch-up budget.
        let mut newly_due = 0;
        while let Some(&(next, id)) = by_next.first() {
            if next > now {
                break;
            }
            by_next.pop_first();
            if next > prev_tick {
                newly_due += 1;
            }
            let mirror = &mirrors[id as usize];
            let key = match m.variant {
                Variant::OrderByNextSync => next,
                _ => {
                    let since = mirror.last_success.unwrap_or(mirror.created);
                    schedule::freshness_deadline(
                        Duration::from_millis(since),
                        Duration::from_millis(m.interval),
                    )
                    .as_millis() as u64
                }
            };
            due.insert((key, id));
        }
        let limit = match m.variant {
            Variant::NoPacing => 500,
            _ => pacer.batch(newly_due, Duration::from_millis(now - prev_tick)),
        };
        for _ in 0..limit {
            let Some((_, id)) = due.pop_first() else {
                break;
            };
            debug_assert!(!mirrors[id as usize].has_job);
            mirrors[id as usize].has_job = true;
            seq += 1;
            queue.insert((now, seq, id, false));
        }
        prev_tick = now;
        if now >= outage_end && report.catch_up_end.is_none() && due.is_empty() {
            report.catch_up_end = Some(now);
        }

        while running.len() < m.workers
            && start(
                now,
                &mut queue,
                &mut running,
                &mirrors,
                &mut rng,
                &mut report,
            )
        {}
        if initial_left == 0 && report.import_drained.is_none() && queue.is_empty() {
            report.import_drained = Some(now);
        }
    }

    // Open gaps at the end of the run, and reachable mirrors never copied.
    for (id, mirror) in mirrors.iter().enumerate().skip(1) {
        if mirror.reachable {
            let since = mirror.last_success.unwrap_or(mirror.created);
            record_gap(&mut report, id as u32, since, end, m.interval);
        }
    }
    report
}

fn record_gap(report: &mut Report, repo: u32, since: u64, until: u64, interval: u64) {
    let gap = until - since;
    if gap > report.max_gap {
        report.max_gap = gap;
        report.max_gap_repo = repo;
        report.max_gap_end = until;
    }
    if gap > interval {
        report.over_interval.push((since, until));
    }
}

/// What the hub's `next_sync_at` computes, through the library's policy (or a variant).
fn next_delay(
    m: &Model,
    repo: u32,
    at: u64,
    synced_before: bool,
    failures_before: u32,
    failure: Option<FailureClass>,
) -> u64 {
    let interval = Duration::from_millis(m.interval);
    let end = SyncEnd {
        repo_id: u64::from(repo),
        interval,
        at: Duration::from_millis(at),
        synced_before: synced_before || m.variant == Variant::NoFirstSlot,
        failures_before,
        failure,
    };
    let delay = match (m.variant, failure) {
        (Variant::RandomJitter, None) => {
            let seed = u64::from(repo).rotate_left(32) ^ at;
            schedule::delay_after_success(interval, seed)
        }
        _ => schedule::next_sync_delay(&end),
    };
    delay.as_millis() as u64
}

fn hours(ms: u64) -> f64 {
    ms as f64 / HOUR as f64
}

/// The hours the rate claim covers: from the first whole hour after the initial copies are
/// done to the end, without the hours the hub was down.
fn counted_hours(m: &Model, r: &Report) -> Vec<usize> {
    let from = r
        .import_drained
        .map(|t| (t - T0).div_ceil(HOUR) as usize)
        .expect("the initial copies finished");
    let (down_from, down_to) = m
        .outage
        .map(|(s, l)| ((s / HOUR) as usize, (s + l).div_ceil(HOUR) as usize))
        .unwrap_or((usize::MAX, usize::MAX));
    (from..r.hourly.len())
        .filter(|h| *h < down_from || *h >= down_to)
        .collect()
}

struct RateFigures {
    mean: f64,
    /// (min, max) of each part: before the outage, the catch-up, after the catch-up.
    before: Option<(u32, u32)>,
    catch_up: Option<(u32, u32)>,
    after: Option<(u32, u32)>,
    /// The hour furthest from the mean, as a ratio to it.
    worst: (usize, f64),
}

fn rate_figures(m: &Model, r: &Report) -> RateFigures {
    let counted = counted_hours(m, r);
    let mean = counted.iter().map(|h| f64::from(r.hourly[*h])).sum::<f64>() / counted.len() as f64;
    let outage_hour = m.outage.map_or(usize::MAX, |(s, _)| (s / HOUR) as usize);
    let restart_hour = m
        .outage
        .map_or(usize::MAX, |(s, l)| ((s + l) / HOUR) as usize);
    let catch_up_hour = r
        .catch_up_end
        .map_or(usize::MAX, |t| (t - T0).div_ceil(HOUR) as usize);
    let span = |keep: &dyn Fn(usize) -> bool| {
        counted
            .iter()
            .filter(|h| keep(**h))
            .map(|h| r.hourly[*h])
            .fold(None, |span: Option<(u32, u32)>, n| {
                Some(span.map_or((n, n), |(lo, hi)| (lo.min(n), hi.max(n))))
            })
    };
    let worst = counted
        .iter()
        .map(|h| (*h, f64::from(r.hourly[*h]) / mean))
        .max_by(|a, b| (a.1 - 1.0).abs().total_cmp(&(b.1 - 1.0).abs()))
        .unwrap();
    RateFigures {
        mean,
        before: span(&|h| h < outage_hour),
        catch_up: span(&|h| h >= restart_hour && h < catch_up_hour),
        after: span(&|h| h >= catch_up_hour),
        worst,
    }
}

/// Whether each claim holds: (freshness with grace, interval kept away from the outage,
/// rate within ±20%).
fn claims(m: &Model, r: &Report) -> (bool, bool, bool) {
    let fresh = !schedule::is_stale(
        Duration::from_millis(r.max_gap),
        Duration::from_millis(m.interval),
        schedule::DEFAULT_STALE_GRACE,
    );
    let (outage_start, _) = m.outage.map_or((u64::MAX, 0), |(s, l)| (T0 + s, l));
    let catch_up_end = r.catch_up_end.unwrap_or(u64::MAX);
    let kept = r
        .over_interval
        .iter()
        .all(|(since, until)| *until > outage_start && *since < catch_up_end);
    let f = rate_figures(m, r);
    let even = (f.worst.1 - 1.0).abs() <= 0.2;
    (fresh, kept, even)
}

/// The share of the workers' time spent syncing.
fn utilisation(m: &Model, r: &Report) -> f64 {
    r.busy as f64 / (m.workers as u64 * m.days * DAY) as f64
}

fn print(m: &Model, r: &Report) {
    let f = rate_figures(m, r);
    let grace = schedule::DEFAULT_STALE_GRACE.as_millis() as u64;
    println!("variant {:?}", m.variant);
    println!(
        "  {} mirrors ({} unreachable), interval {:.0} h, {} workers, tick {} s, {:.1}% transient failures",
        m.mirrors,
        m.unreachable,
        hours(m.interval),
        m.workers,
        m.tick / SEC,
        m.transient_failure * 100.0
    );
    println!(
        "  costs {:?}, start {:?}, {} blackholed, {:.0}% of successes fetch",
        m.costs,
        m.start,
        m.blackholed,
        m.changed * 100.0
    );
    println!(
        "  attempts {} (successes {}, failures {}, of them {} by the unreachable mirrors); workers busy {:.1}% of the time",
        r.attempts,
        r.successes,
        r.failures,
        r.unreachable_attempts,
        utilisation(m, r) * 100.0
    );
    let import_hours = r
        .import_drained
        .map_or(0, |t| (t - T0).div_ceil(HOUR) as usize);
    let import_peak = r
        .hourly
        .iter()
        .take(import_hours)
        .max()
        .copied()
        .unwrap_or(0);
    println!(
        "  initial copies done at {:.2} h, queue empty at {:.2} h, peak {} attempts/h until then",
        hours(r.import_done - T0),
        r.import_drained.map(|t| hours(t - T0)).unwrap_or(f64::NAN),
        import_peak
    );
    if let Some((s, l)) = m.outage {
        println!(
            "  outage {:.0} h to {:.0} h; backlog worked off at {:.2} h ({:.1} h after the restart)",
            hours(s),
            hours(s + l),
            r.catch_up_end.map(|t| hours(t - T0)).unwrap_or(f64::NAN),
            r.catch_up_end
                .map(|t| hours(t - T0 - s - l))
                .unwrap_or(f64::NAN)
        );
    }
    println!(
        "  longest without a success (reachable): {:.2} h = interval + {:.2} h (grace {:.0} h), mirror {} at {:.2} h",
        hours(r.max_gap),
        hours(r.max_gap) - hours(m.interval),
        hours(grace),
        r.max_gap_repo,
        hours(r.max_gap_end - T0)
    );
    println!("  gaps longer than the interval: {}", r.over_interval.len());
    println!(
        "  syncs/hour: mean {:.1}; before the outage {:?}, catch-up {:?}, after {:?}; worst hour {} at {:.3} x mean",
        f.mean, f.before, f.catch_up, f.after, f.worst.0, f.worst.1
    );
    let (fresh, kept, even) = claims(m, r);
    println!("  claims: fresh within grace {fresh}, interval kept away from the outage {kept}, rate within ±20% {even}");
}

#[test]
fn ten_thousand_mirrors_a_week_and_a_six_hour_outage() {
    let m = Model::issue();
    let r = simulate(&m);
    print(&m, &r);
    let grace = schedule::DEFAULT_STALE_GRACE.as_millis() as u64;
    assert!(
        r.max_gap <= m.interval + grace,
        "mirror {} went {:.2} h without a success",
        r.max_gap_repo,
        hours(r.max_gap)
    );
    let catch_up_end = r.catch_up_end.expect("the backlog was worked off");
    let (_, kept, even) = claims(&m, &r);
    let outage_start = T0 + m.outage.unwrap().0;
    assert!(
        kept,
        "a reachable mirror went longer than its interval away from the outage: {:?}",
        r.over_interval
            .iter()
            .filter(|(s, u)| *u <= outage_start || *s >= catch_up_end)
            .take(5)
            .map(|(s, u)| (hours(s - T0), hours(u - T0)))
            .collect::<Vec<_>>()
    );
    let f = rate_figures(&m, &r);
    for h in counted_hours(&m, &r) {
        let ratio = f64::from(r.hourly[h]) / f.mean;
        assert!(
            (0.8..=1.2).contains(&ratio),
            "hour {h}: {} syncs, {ratio:.3} x the mean {:.1}",
            r.hourly[h],
            f.mean
        );
    }
    assert!(even);
    // The initial copies are done within the first day and the catch-up within two days.
    assert!(r.import_drained.unwrap() - T0 < 12 * HOUR);
    assert!(catch_up_end - (T0 + 90 * HOUR) < 36 * HOUR);
}

/// Each part of the policy is needed: without it, a claim above fails.
#[test]
fn the_claims_fail_without_each_part_of_the_policy() {
    for variant in [
        Variant::NoPacing,
        Variant::OrderByNextSync,
        Variant::RandomJitter,
        Variant::NoFirstSlot,
    ] {
        let m = Model {
            variant,
            ..Model::issue()
        };
        let r = simulate(&m);
        print(&m, &r);
        let (fresh, _, even) = claims(&m, &r);
        match variant {
            // The backlog all at once: the hour after the restart is far above the mean.
            Variant::NoPacing => assert!(!even),
            // A catch-up sync that fails is retried behind the whole backlog: past the grace.
            Variant::OrderByNextSync => assert!(!fresh),
            // Mirrors created together stay clumped for days.
            Variant::RandomJitter => assert!(!even),
            // The first syncs after the initial copies clump half a period after them.
            Variant::NoFirstSlot => assert!(!even),
            Variant::Policy => unreachable!(),
        }
    }
}

/// The issue's claim at scale: a million mirrors on the default 4 workers, a week with the
/// no-op check in process (costs in [`Model::million`]): every reachable mirror has a
/// success at least every 24 h (its interval, no grace), and no hour has more than 1.5 times
/// the mean number of syncs. A million mirrors take a while to simulate, in debug most of
/// all: `#[ignore]`d here, run by `.ci/run` in release (`cargo test --release -p
/// mirrorhub-core --test scheduler_simulation -- --ignored --nocapture`).
#[test]
#[ignore = "a million mirrors: run in release with --ignored (.ci/run does)"]
fn a_million_mirrors_a_week_on_the_default_workers() {
    let m = Model::million();
    let r = simulate(&m);
    print(&m, &r);
    assert!(
        r.max_gap <= m.interval,
        "mirror {} went {:.2} h without a success",
        r.max_gap_repo,
        hours(r.max_gap)
    );
    assert!(r.over_interval.is_empty());
    let f = rate_figures(&m, &r);
    let counted = counted_hours(&m, &r);
    assert_eq!(
        counted.len(),
        7 * 24,
        "every hour counts: no outage, no initial copies"
    );
    let (peak_hour, peak) = counted
        .iter()
        .map(|h| (*h, r.hourly[*h]))
        .max_by_key(|(_, n)| *n)
        .unwrap();
    let ratio = f64::from(peak) / f.mean;
    println!(
        "  busiest hour {peak_hour}: {peak} syncs, {ratio:.3} x the mean {:.1}",
        f.mean
    );
    assert!(
        ratio <= 1.5,
        "hour {peak_hour}: {peak} syncs, {ratio:.3} x the mean"
    );
    // The workers keep up with room to spare, and the queue never holds a backlog for long.
    assert!(utilisation(&m, &r) < 0.9);
}

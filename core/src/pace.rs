//! Background priority (SPEC §10): whether the driver runs a slice at this turn of the event
//! loop, and how long it may be.
//!
//! The driver asks [`Pacer::turn`] once per event-loop iteration (the before-sleep hook), with
//! the time and the server's count of client commands so far, and reports each slice it runs
//! with [`Pacer::ran`]. All sweeps share one pacer, so they share one budget.
//!
//! - **Nobody waiting** (no client command since the last slice): run a full slice
//!   (`sweep.slice-us`), back to back. Such a slice is not charged: the sweeps take the whole
//!   thread when it would otherwise sleep.
//! - **Clients active** (commands since the last slice) and a share under 100: the sweeps earn
//!   credit at `share` percent of the wall time (capped at one full slice, so quiet periods do
//!   not bank a burst) and each slice costs its duration. A slice runs only when the credit is
//!   not negative, so over any stretch of client traffic the sweeps take about `share` percent
//!   of the thread: no more, and no less however busy the server is (the credit grows with wall
//!   time, not with idle time: a sweep finishes on a saturated server). These slices are shorter,
//!   `share` percent of a full one (at least [`MIN_BUSY_SLICE`]): the sweeps' time comes in
//!   pieces small enough that a client caught behind one waits little, and a request that
//!   arrives during a slice is served at the next iteration (a charged slice is always followed
//!   by at least one iteration without one unless the credit allows).
//! - **Share 100**: the driver as it was before the share existed: when commands ran since the
//!   last turn, leave one turn to them (their replies go out before the next slice), never two
//!   turns in a row.

use std::time::{Duration, Instant};

/// The shortest slice run while clients are active: below this a slice is mostly its own
/// overhead (selecting the database, re-opening the scan, reading the clock).
pub const MIN_BUSY_SLICE: Duration = Duration::from_micros(50);

/// Clients count as active when they ran at least this many commands over the last
/// [`ACTIVITY_WINDOW`] (1,000 a second), even if none ran since the last slice: on a busy
/// server the clients' requests come in bursts, and a gap between two of them is not a server
/// nobody waits for. A client polling `SWEEP.STATUS` every 10 ms stays far below.
pub const ACTIVE_COMMANDS: u64 = 100;
pub const ACTIVITY_WINDOW: Duration = Duration::from_millis(100);

/// What the driver does at this turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Turn {
    /// Run a slice of at most `budget`. `shared`: clients are active (commands since the last
    /// slice, or [`ACTIVE_COMMANDS`] recently), so the slice shares the thread with them (and is
    /// charged when the share is under 100).
    Run { budget: Duration, shared: bool },
    /// Leave this turn to the clients.
    Wait,
}

/// A sum over a sliding window, kept in ten buckets.
#[derive(Debug, Clone)]
struct Window {
    /// The width of a bucket.
    width_us: u128,
    /// (bucket number, sum), at the bucket number modulo 10.
    buckets: [(u64, u64); 10],
}

impl Window {
    fn new(span: Duration) -> Window {
        Window {
            width_us: (span.as_micros() / 10).max(1),
            buckets: [(0, 0); 10],
        }
    }

    fn bucket(&self, origin: Instant, now: Instant) -> u64 {
        let n = now.saturating_duration_since(origin).as_micros() / self.width_us;
        u64::try_from(n).unwrap_or(u64::MAX)
    }

    fn add(&mut self, origin: Instant, now: Instant, value: u64) {
        let bucket = self.bucket(origin, now);
        let slot = &mut self.buckets[(bucket % 10) as usize];
        if slot.0 != bucket {
            *slot = (bucket, 0);
        }
        slot.1 = slot.1.saturating_add(value);
    }

    /// The sum over the current bucket and the nine before it, and the time they span (the
    /// nine whole buckets and the part of this one that has passed).
    fn sum(&self, origin: Instant, now: Instant) -> (u64, u128) {
        let current = self.bucket(origin, now);
        let oldest = current.saturating_sub(9);
        let sum = self
            .buckets
            .iter()
            .filter(|(b, _)| (oldest..=current).contains(b))
            .fold(0u64, |acc, (_, v)| acc.saturating_add(*v));
        let since_origin = now.saturating_duration_since(origin).as_micros();
        let span = since_origin.saturating_sub(u128::from(oldest) * self.width_us);
        (sum, span.max(1))
    }
}

/// The scheduling state of all sweeps together.
#[derive(Debug, Clone)]
pub struct Pacer {
    /// Main-thread time the sweeps may still take while clients are active, in hundredths of
    /// a microsecond (so that the `share` percent of a 1 µs turn is not rounded away);
    /// negative after a charged slice, until enough wall time has passed.
    credit: i64,
    /// The last turn.
    last: Option<Instant>,
    /// The command count at the last slice and at the last turn.
    at_slice: u64,
    at_turn: u64,
    /// Share 100: whether the last turn was left to the clients.
    yielded: bool,
    /// Microseconds spent in slices over the last second.
    busy: Window,
    /// Client commands over the last [`ACTIVITY_WINDOW`].
    commands: Window,
    /// The time the windows count from: the first turn.
    origin: Option<Instant>,
}

impl Default for Pacer {
    fn default() -> Self {
        Pacer::new()
    }
}

/// `share` percent of `d`, in hundredths of a microsecond.
fn percent_cus(d: Duration, share: u64) -> i64 {
    i64::try_from(d.as_micros().saturating_mul(u128::from(share))).unwrap_or(i64::MAX)
}

/// The slice length while clients are active: `share` percent of a full slice, at least
/// [`MIN_BUSY_SLICE`], at most the full slice.
pub fn busy_slice(slice: Duration, share: u64) -> Duration {
    let us = u64::try_from(percent_cus(slice, share.min(100)) / 100).unwrap_or(u64::MAX);
    Duration::from_micros(us).max(MIN_BUSY_SLICE).min(slice)
}

impl Pacer {
    pub fn new() -> Pacer {
        Pacer {
            credit: 0,
            last: None,
            at_slice: 0,
            at_turn: 0,
            yielded: false,
            busy: Window::new(Duration::from_secs(1)),
            commands: Window::new(ACTIVITY_WINDOW),
            origin: None,
        }
    }

    /// Decides this turn. `commands`: client commands the server has run so far (a counter that
    /// only grows); `share`: `sweep.busy-share` (1 to 100); `slice`: `sweep.slice-us`.
    pub fn turn(&mut self, now: Instant, commands: u64, share: u64, slice: Duration) -> Turn {
        let share = share.clamp(1, 100);
        let origin = *self.origin.get_or_insert(now);
        let elapsed = self
            .last
            .map_or(Duration::ZERO, |last| now.saturating_duration_since(last));
        self.last = Some(now);
        let new_since_turn = commands.wrapping_sub(self.at_turn);
        self.at_turn = commands;
        self.commands.add(origin, now, new_since_turn);
        let active =
            commands != self.at_slice || self.commands.sum(origin, now).0 >= ACTIVE_COMMANDS;

        if share == 100 {
            self.credit = 0;
            let give_way = new_since_turn != 0 && !self.yielded;
            self.yielded = give_way;
            if give_way {
                return Turn::Wait;
            }
            self.at_slice = commands;
            return Turn::Run {
                budget: slice,
                shared: active,
            };
        }
        self.yielded = false;
        let cap = percent_cus(slice, 100);
        self.credit = self
            .credit
            .saturating_add(percent_cus(elapsed, share))
            .min(cap);
        if !active {
            self.at_slice = commands;
            return Turn::Run {
                budget: slice,
                shared: false,
            };
        }
        if self.credit < 0 {
            return Turn::Wait;
        }
        self.at_slice = commands;
        // The credit may buy more than a short slice when client iterations are long (a
        // saturated server): never more than a full slice, as always.
        let credit = Duration::from_micros(u64::try_from(self.credit / 100).unwrap_or(0));
        Turn::Run {
            budget: credit.max(busy_slice(slice, share)).min(slice),
            shared: true,
        }
    }

    /// A slice that [`Pacer::turn`] allowed ran for `spent`, ending at `end`.
    pub fn ran(&mut self, end: Instant, spent: Duration, shared: bool, share: u64) {
        if shared && share < 100 {
            self.credit = self.credit.saturating_sub(percent_cus(spent, 100));
        }
        let origin = *self.origin.get_or_insert(end);
        let us = u64::try_from(spent.as_micros()).unwrap_or(u64::MAX);
        self.busy.add(origin, end, us);
    }

    /// Microseconds the sweeps may still take before the next charged slice (negative: how
    /// far in debt they are).
    pub fn credit_us(&self) -> i64 {
        self.credit / 100
    }

    /// The percentage of the main thread's time that slices took over about the last second,
    /// 0 to 100.
    pub fn share_last_second(&self, now: Instant) -> u64 {
        let Some(origin) = self.origin else {
            return 0;
        };
        let (us, span) = self.busy.sum(origin, now);
        let percent = u128::from(us) * 100 / span;
        u64::try_from(percent.min(100)).unwrap_or(100)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SLICE: Duration = Duration::from_micros(1000);

    /// A settable clock and a command counter around a pacer.
    struct Sim {
        pacer: Pacer,
        now: Instant,
        commands: u64,
        share: u64,
    }

    impl Sim {
        fn new(share: u64) -> Sim {
            Sim {
                pacer: Pacer::new(),
                now: Instant::now(),
                commands: 0,
                share,
            }
        }

        fn advance(&mut self, us: u64) {
            self.now += Duration::from_micros(us);
        }

        fn turn(&mut self) -> Turn {
            self.pacer.turn(self.now, self.commands, self.share, SLICE)
        }

        /// One turn; if it runs, the slice takes its whole budget.
        fn step(&mut self) -> Option<Duration> {
            match self.turn() {
                Turn::Run { budget, shared } => {
                    self.advance(budget.as_micros() as u64);
                    self.pacer.ran(self.now, budget, shared, self.share);
                    Some(budget)
                }
                Turn::Wait => None,
            }
        }

        /// Drives `total_us` of simulated time. Between turns, clients run `per_iteration`
        /// commands taking `iteration_us`. Returns the microseconds spent in slices.
        fn drive(&mut self, total_us: u64, per_iteration: u64, iteration_us: u64) -> u64 {
            let end = self.now + Duration::from_micros(total_us);
            let mut sliced = 0;
            while self.now < end {
                if let Some(d) = self.step() {
                    sliced += d.as_micros() as u64;
                }
                self.commands += per_iteration;
                self.advance(iteration_us.max(1));
            }
            sliced
        }
    }

    #[test]
    fn nobody_waiting_runs_full_slices_back_to_back_at_every_share() {
        for share in [1, 20, 50, 99, 100] {
            let mut sim = Sim::new(share);
            for _ in 0..1000 {
                assert_eq!(sim.step(), Some(SLICE), "share {share}");
            }
            // A command now and then: still nobody waiting between them.
            for _ in 0..1000 {
                sim.commands += 1;
                sim.step();
                sim.advance(10_000);
                assert_eq!(sim.step(), Some(SLICE), "share {share}");
            }
        }
    }

    #[test]
    fn idle_time_is_all_the_sweeps_own() {
        // No client: the sweeps take all the time but a 1 µs loop iteration between slices,
        // whatever the share.
        let mut default = Sim::new(20);
        let mut full = Sim::new(100);
        let a = default.drive(1_000_000, 0, 1);
        let b = full.drive(1_000_000, 0, 1);
        assert_eq!(a, b);
        assert!(a > 990_000, "{a}");
    }

    #[test]
    fn busy_clients_get_all_but_the_share() {
        for share in [1, 5, 10, 20, 33, 50, 80, 99] {
            let mut sim = Sim::new(share);
            // Clients run a command in every iteration, each iteration 20 µs.
            let sliced = sim.drive(10_000_000, 3, 20);
            let got = sliced as f64 / 10_000_000.0 * 100.0;
            assert!(
                (got - share as f64).abs() <= (share as f64 * 0.05).max(0.5),
                "share {share}: sweeps took {got:.2}%"
            );
        }
    }

    #[test]
    fn a_saturated_server_still_gives_the_share() {
        // Each client iteration takes 2 ms (a long batch every time): the sweeps still get
        // their share (slices of more than the short busy length, paid by the credit).
        let mut sim = Sim::new(20);
        let sliced = sim.drive(10_000_000, 1, 2_000);
        assert!(sliced >= 1_900_000, "{sliced}");
        // 10 ms iterations: at most one full slice per turn, but never starved.
        let sliced = sim.drive(10_000_000, 1, 10_000);
        assert!(sliced >= 900_000, "{sliced}");
    }

    #[test]
    fn a_gap_between_bursts_of_a_busy_client_is_not_idle() {
        // Clients send 500 commands every 10 ms (50,000 a second), in one burst: most turns
        // see no command since the last slice, yet the sweeps keep to their share.
        let mut sim = Sim::new(20);
        let mut sliced = 0u64;
        let end = sim.now + Duration::from_secs(2);
        let mut next_burst = sim.now;
        while sim.now < end {
            if sim.now >= next_burst {
                sim.commands += 500;
                next_burst += Duration::from_millis(10);
            }
            sliced += sim.step().map_or(0, |d| d.as_micros() as u64);
            sim.advance(5);
        }
        assert!(sliced <= 2_000_000 / 5 + 2_000, "{sliced}");
        assert!(sliced >= 2_000_000 / 5 - 20_000, "{sliced}");
    }

    #[test]
    fn a_charged_slice_is_followed_by_a_turn_for_the_clients() {
        let mut sim = Sim::new(20);
        sim.commands = 1;
        assert_eq!(
            sim.step(),
            Some(busy_slice(SLICE, 20)),
            "the first busy turn runs on the starting credit"
        );
        // Spend the starting credit (0) and more: now in debt.
        sim.commands += 1;
        assert_eq!(sim.turn(), Turn::Wait);
        assert!(sim.pacer.credit_us() < 0);
    }

    #[test]
    fn four_slices_of_wait_for_one_slice_at_twenty_percent() {
        let mut sim = Sim::new(20);
        sim.commands = 1;
        let d = sim.step().unwrap().as_micros() as u64;
        assert_eq!(d, 200);
        // Now in debt by 200 - 20% of 200 = 160 µs: 800 µs of client time pays it back, even
        // in turns of 1 µs (nothing is rounded away).
        sim.commands += 1;
        for _ in 0..799 {
            sim.advance(1);
            assert_eq!(sim.turn(), Turn::Wait);
        }
        sim.advance(1);
        assert!(matches!(sim.turn(), Turn::Run { shared: true, .. }));
    }

    #[test]
    fn quiet_periods_do_not_bank_a_burst() {
        let mut sim = Sim::new(20);
        sim.drive(1_000_000, 0, 1);
        assert!(sim.pacer.credit_us() <= SLICE.as_micros() as i64);
        // Clients arrive: at most one full slice of credit, then the share (and the last
        // slice may end past the 100 ms).
        let sliced = sim.drive(100_000, 1, 20);
        assert!(sliced <= 20_000 + 1_000 + 1_000, "{sliced}");
    }

    #[test]
    fn one_command_now_and_then_costs_the_idle_speed_nothing_much() {
        // A client asks for the status every 10 ms (SWEEP.STATUS polling): the sweeps keep
        // nearly the whole thread.
        let mut sim = Sim::new(20);
        let mut sliced = 0u64;
        let end = sim.now + Duration::from_secs(1);
        let mut next_command = sim.now;
        while sim.now < end {
            if sim.now >= next_command {
                sim.commands += 1;
                next_command += Duration::from_millis(10);
            }
            sliced += sim.step().map_or(0, |d| d.as_micros() as u64);
            sim.advance(1);
        }
        assert!(sliced > 950_000, "{sliced}");
    }

    #[test]
    fn share_one_hundred_gives_one_turn_to_clients_never_two() {
        let mut sim = Sim::new(100);
        sim.commands = 5;
        assert_eq!(sim.turn(), Turn::Wait);
        sim.commands += 1;
        assert_eq!(
            sim.turn(),
            Turn::Run {
                budget: SLICE,
                shared: true
            }
        );
        sim.commands += 1;
        assert_eq!(sim.turn(), Turn::Wait);
        assert!(matches!(sim.turn(), Turn::Run { budget: SLICE, .. }));
    }

    #[test]
    fn a_changed_share_applies_at_the_next_turn() {
        let mut sim = Sim::new(100);
        sim.drive(100_000, 1, 20);
        sim.share = 10;
        let sliced = sim.drive(1_000_000, 1, 20);
        assert!((95_000..=106_000).contains(&sliced), "{sliced}");
        sim.share = 100;
        let sliced = sim.drive(1_000_000, 1, 20);
        assert!(sliced > 900_000, "{sliced}");
    }

    #[test]
    fn busy_slices_are_a_share_of_a_full_one_within_bounds() {
        assert_eq!(busy_slice(SLICE, 20), Duration::from_micros(200));
        assert_eq!(busy_slice(SLICE, 100), SLICE);
        assert_eq!(busy_slice(SLICE, 1), MIN_BUSY_SLICE);
        assert_eq!(busy_slice(Duration::from_micros(50), 20), MIN_BUSY_SLICE);
        // Never longer than the full slice, even when that is under the minimum.
        assert_eq!(
            busy_slice(Duration::from_micros(30), 50),
            Duration::from_micros(30)
        );
        assert_eq!(
            busy_slice(Duration::from_secs(1), 20),
            Duration::from_millis(200)
        );
    }

    #[test]
    fn a_clock_that_goes_back_or_huge_values_never_panic() {
        let mut p = Pacer::new();
        let now = Instant::now();
        let _ = p.turn(now + Duration::from_secs(5), 1, 20, SLICE);
        let _ = p.turn(now, 2, 20, SLICE);
        p.ran(now, Duration::from_secs(1_000_000_000), true, 20);
        let _ = p.turn(now, 3, 0, Duration::MAX);
        let _ = p.turn(now, 4, 1000, Duration::ZERO);
        let _ = p.share_last_second(now);
        let _ = p.share_last_second(now + Duration::from_secs(100));
    }

    #[test]
    fn the_share_of_the_last_second() {
        let mut sim = Sim::new(20);
        assert_eq!(sim.pacer.share_last_second(sim.now), 0);
        sim.drive(2_000_000, 1, 20);
        let share = sim.pacer.share_last_second(sim.now);
        assert!((19..=21).contains(&share), "{share}");
        sim.drive(2_000_000, 0, 1);
        assert!(sim.pacer.share_last_second(sim.now) >= 99);
        // Nothing for a while: back to zero.
        sim.advance(1_500_000);
        assert_eq!(sim.pacer.share_last_second(sim.now), 0);
    }
}

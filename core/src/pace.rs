//! Background priority (SPEC §10): whether the driver runs a slice at this turn of the event
//! loop, and how long it may be.
//!
//! The driver asks [`Pacer::turn`] once per event-loop iteration (the before-sleep hook), with
//! the time, the main thread's CPU time, and the server's count of client commands so far, and
//! reports each slice it runs with [`Pacer::ran`]. All sweeps share one pacer, so they share
//! one budget.
//!
//! - **Clients keep the server busy** when, over the last [`ACTIVITY_WINDOW`], the iterations
//!   in which they ran commands took at least [`ACTIVE_PERCENT`] of it in CPU time outside the
//!   slices (CPU time, so that neither the poll's sleep nor the OS running something else
//!   counts), or they ran at least [`ACTIVE_COMMANDS`] commands; and in at least
//!   [`ACTIVE_CROWDED_TURNS`] of its turns more than one command had come in since the turn
//!   before (more than one client waiting, or one that pipelines). A client polling
//!   `SWEEP.STATUS` stays below all of these. One client sending requests one at a time in a
//!   tight loop never has more than one waiting: left alone it gets one in per slice (about
//!   1,000 a second, a percent or two of the CPU); paced, it would be served at once and send
//!   ten times as many, which would keep the pacing on by itself. Fifty `redis-benchmark`
//!   clients are far above all three, even while full slices hold them back.
//! - **Not busy**: the driver as it was before the share existed: full slices
//!   (`sweep.slice-us`) back to back, except that when commands ran since the last turn, one
//!   turn is left to them (their replies, written after the hook, go out before the next
//!   slice), never two in a row. `sweep.busy-share 100` always behaves so.
//! - **Busy**, and a share under 100: the sweeps earn credit at `share` percent of the wall
//!   time (capped at one full slice, so quiet periods do not bank a burst) and each slice costs
//!   its duration and [`SWITCH_PERCENT`] more: what a slice costs the clients after it ends.
//!   A slice runs only when the credit is not negative, so while the clients keep the server
//!   busy the sweeps take a little under `share` percent of the thread: no more, and no less
//!   however busy it is (the credit grows with wall time: a sweep finishes on a saturated
//!   server). These slices are short, `share` percent of a full one (at least
//!   [`MIN_BUSY_SLICE`]), so a client caught behind one waits little; when client iterations
//!   are long the credit buys more, up to a full slice. A turn left to the clients may let the
//!   loop sleep ([`Turn::Wait`]`{ nap: true }`) rather than spin.

use std::time::{Duration, Instant};

/// The shortest slice run while clients are active: below this a slice is mostly its own
/// overhead (selecting the database, re-opening the scan, reading the clock).
pub const MIN_BUSY_SLICE: Duration = Duration::from_micros(50);

/// Clients keep the server busy when their iterations took this percentage of the last
/// [`ACTIVITY_WINDOW`] in CPU time, or ran this many commands in it (5,000 a second).
pub const ACTIVE_PERCENT: u64 = 3;
pub const ACTIVE_COMMANDS: u64 = 500;
/// ... and in at least this many turns of the window, more than one command had come in since
/// the turn before (50 a second: after every slice while many clients wait).
pub const ACTIVE_CROWDED_TURNS: u64 = 5;
pub const ACTIVITY_WINDOW: Duration = Duration::from_millis(100);

/// A slice under load is charged this percentage of its duration on top of it: what it costs
/// the clients after it ends, whose data it pushed out of the CPU caches. Measured with `make
/// bench-load` (50 clients, 4 sweeps taking turns): at 20 % of the thread in slices, the
/// clients lost 21 % of their throughput, so a slice costs them about 1.05 times its length;
/// 10 % keeps what the sweeps take from the clients within `sweep.busy-share`.
pub const SWITCH_PERCENT: u64 = 10;

/// What the driver does at this turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Turn {
    /// Run a slice of at most `budget`. `shared`: clients keep the server busy, so the slice
    /// shares the thread with them (and is charged when the share is under 100).
    Run { budget: Duration, shared: bool },
    /// Leave this turn to the clients. `nap`: nothing to do until a client (or a short timer)
    /// wakes the loop, so it may sleep instead of spinning.
    Wait { nap: bool },
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
    /// Main-thread time the sweeps may still take while clients keep the server busy, in
    /// hundredths of a microsecond (so that the `share` percent of a 1 µs turn is not rounded
    /// away); negative after a charged slice, until enough wall time has passed.
    credit: i64,
    /// The last turn; when the last slice ended, and the thread's CPU time then.
    last: Option<Instant>,
    last_slice: Option<Instant>,
    last_end: Option<Duration>,
    /// The command count at the last slice.
    at_slice: u64,
    /// The command count at the last turn.
    at_turn: u64,
    /// Whether the last turn was left to the clients (when not busy).
    yielded: bool,
    /// Microseconds spent in slices over the last second.
    busy: Window,
    /// Microseconds of iterations in which clients ran commands, and the commands, over
    /// [`ACTIVITY_WINDOW`].
    clients: Window,
    commands: Window,
    /// Turns before which more than one command had come in, over [`ACTIVITY_WINDOW`].
    crowded: Window,
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
            last_slice: None,
            last_end: None,
            at_slice: 0,
            at_turn: 0,
            yielded: false,
            busy: Window::new(Duration::from_secs(1)),
            clients: Window::new(ACTIVITY_WINDOW),
            commands: Window::new(ACTIVITY_WINDOW),
            crowded: Window::new(ACTIVITY_WINDOW),
            origin: None,
        }
    }

    /// The first sweep after none ran: what the clients did since the last slice (of an
    /// earlier sweep) is not known to be recent, so it does not count. What the windows hold
    /// stays valid.
    pub fn restart(&mut self) {
        self.last = None;
        self.last_slice = None;
        self.last_end = None;
    }

    /// Whether clients keep the server busy (see the module doc), as of `now`.
    pub fn clients_busy(&self, now: Instant) -> bool {
        let Some(origin) = self.origin else {
            return false;
        };
        // Against the whole window, also in the first 100 ms: a first request is not a load.
        let (us, _) = self.clients.sum(origin, now);
        let (commands, _) = self.commands.sum(origin, now);
        let (crowded, _) = self.crowded.sum(origin, now);
        let working = u128::from(us) * 100
            >= ACTIVITY_WINDOW.as_micros() * u128::from(ACTIVE_PERCENT)
            || commands >= ACTIVE_COMMANDS;
        working && crowded >= ACTIVE_CROWDED_TURNS
    }

    /// Decides this turn. `cpu`: reads the main thread's CPU time (any fixed origin), called
    /// at most once, only when a slice runs after clients ran commands; `commands`:
    /// client commands the server has run so far (a counter that only grows); `share`:
    /// `sweep.busy-share` (1 to 100); `slice`: `sweep.slice-us`.
    pub fn turn(
        &mut self,
        now: Instant,
        cpu: impl FnOnce() -> Duration,
        commands: u64,
        share: u64,
        slice: Duration,
    ) -> Turn {
        let share = share.clamp(1, 100);
        let origin = *self.origin.get_or_insert(now);
        let elapsed = self
            .last
            .map_or(Duration::MAX, |last| now.saturating_duration_since(last));
        self.last = Some(now);
        let ran_commands = commands != self.at_turn;
        // After a pause in the turns (no sweep ran), what happened meanwhile is not known
        // to have happened recently: it does not count.
        if elapsed <= ACTIVITY_WINDOW {
            let came = commands.wrapping_sub(self.at_turn);
            self.commands.add(origin, now, came);
            if came > 1 {
                self.crowded.add(origin, now, 1);
            }
        }
        self.at_turn = commands;
        let busy = self.clients_busy(now);

        let cap = percent_cus(slice, 100);
        self.credit = self
            .credit
            .saturating_add(percent_cus(elapsed, share))
            .min(cap);
        let turn = if share == 100 || !busy {
            let give_way = ran_commands && !self.yielded;
            self.yielded = give_way;
            if give_way {
                Turn::Wait { nap: false }
            } else {
                Turn::Run {
                    budget: slice,
                    shared: busy,
                }
            }
        } else {
            self.yielded = false;
            if self.credit < 0 {
                Turn::Wait { nap: true }
            } else {
                // The credit may buy more than a short slice when client iterations are long
                // (a saturated server): never more than a full slice, as always.
                let credit = Duration::from_micros(u64::try_from(self.credit / 100).unwrap_or(0));
                Turn::Run {
                    budget: credit.max(busy_slice(slice, share)).min(slice),
                    shared: true,
                }
            }
        };
        if matches!(turn, Turn::Run { .. }) {
            // The clients' work since the last slice, if they ran commands meanwhile: the
            // thread's CPU time from that slice's end to now. Read here only (and at the end of
            // each slice), not at every turn: the clock costs a system call.
            if commands != self.at_slice {
                if let (Some(from), Some(at)) = (self.last_end, self.last_slice) {
                    if now.saturating_duration_since(at) <= ACTIVITY_WINDOW {
                        let work = cpu().saturating_sub(from);
                        let us = u64::try_from(work.as_micros()).unwrap_or(u64::MAX);
                        self.clients.add(origin, now, us);
                    }
                }
            }
            self.at_slice = commands;
        }
        turn
    }

    /// A slice that [`Pacer::turn`] allowed ran for `spent`, ending at `end` (at `cpu_end` of the
    /// thread's CPU time).
    pub fn ran(
        &mut self,
        end: Instant,
        cpu_end: Duration,
        spent: Duration,
        shared: bool,
        share: u64,
    ) {
        if shared && share < 100 {
            self.credit = self
                .credit
                .saturating_sub(percent_cus(spent, 100 + SWITCH_PERCENT));
        }
        self.last_end = Some(cpu_end);
        self.last_slice = Some(end);
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
    const BATCH_US: f64 = 500.0;

    /// A settable clock, a command counter and a model of the clients around a pacer.
    ///
    /// The clients bring `load` microseconds of work per microsecond of wall time (0.6: they
    /// would keep the thread 60 % busy on their own; 1 or more: saturated). Work piles up while
    /// a slice runs; each iteration serves what was pending when it started, as the event loop
    /// serves every client with a request ready, up to [`BATCH_US`] (so many clients, each
    /// with its requests).
    struct Sim {
        pacer: Pacer,
        now: Instant,
        commands: u64,
        share: u64,
        load: f64,
        pending: f64,
        sliced_us: u64,
        naps: u64,
        /// The thread's CPU time: it advances with the wall clock except while asleep.
        cpu: Duration,
    }

    impl Sim {
        fn new(share: u64, load: f64) -> Sim {
            Sim {
                pacer: Pacer::new(),
                now: Instant::now(),
                commands: 0,
                share,
                load,
                pending: 0.0,
                sliced_us: 0,
                naps: 0,
                cpu: Duration::ZERO,
            }
        }

        fn advance(&mut self, us: u64) {
            self.now += Duration::from_micros(us);
            self.cpu += Duration::from_micros(us);
            self.pending += self.load * us as f64;
        }

        /// Time passes with the thread asleep (or the OS running something else).
        fn sleep(&mut self, us: u64) {
            self.now += Duration::from_micros(us);
            self.pending += self.load * us as f64;
        }

        fn turn(&mut self) -> Turn {
            let cpu = self.cpu;
            self.pacer
                .turn(self.now, move || cpu, self.commands, self.share, SLICE)
        }

        fn ran(&mut self, budget: Duration, shared: bool) {
            self.advance(budget.as_micros() as u64);
            self.pacer
                .ran(self.now, self.cpu, budget, shared, self.share);
        }

        /// One loop iteration: serve what is pending (a request is at least 5 µs of work),
        /// then the pacer's turn. Returns the slice run, if any.
        fn iteration(&mut self) -> Option<Duration> {
            if self.pending >= 5.0 {
                let work = self.pending.min(BATCH_US) as u64;
                self.pending -= work as f64;
                self.commands += work / 5;
                self.advance(work);
            } else {
                self.advance(1);
            }
            match self.turn() {
                Turn::Run { budget, shared } => {
                    self.ran(budget, shared);
                    self.sliced_us += budget.as_micros() as u64;
                    Some(budget)
                }
                Turn::Wait { nap } => {
                    self.naps += u64::from(nap);
                    None
                }
            }
        }

        /// Runs `us` of simulated time; the percentage of it spent in slices.
        fn drive(&mut self, us: u64) -> f64 {
            let (start, sliced) = (self.now, self.sliced_us);
            let end = self.now + Duration::from_micros(us);
            while self.now < end {
                self.iteration();
            }
            let wall = (self.now - start).as_micros() as f64;
            (self.sliced_us - sliced) as f64 * 100.0 / wall
        }
    }

    #[test]
    fn nobody_there_full_slices_back_to_back_at_every_share() {
        for share in [1, 20, 50, 99, 100] {
            let mut sim = Sim::new(share, 0.0);
            for _ in 0..1000 {
                assert_eq!(sim.iteration(), Some(SLICE), "share {share}");
            }
            assert_eq!(sim.naps, 0);
        }
    }

    #[test]
    fn what_ran_before_a_sweep_started_does_not_slow_it() {
        let mut sim = Sim::new(20, 0.0);
        sim.iteration();
        // A million commands and a second of CPU while no sweep ran.
        sim.commands += 1_000_000;
        sim.advance(1_000_000);
        sim.now += Duration::from_secs(10);
        assert_eq!(
            sim.turn(),
            Turn::Wait { nap: false },
            "one turn for the clients"
        );
        assert!(!sim.pacer.clients_busy(sim.now));
        assert_eq!(sim.iteration(), Some(SLICE));
    }

    #[test]
    fn a_long_command_before_a_sweep_does_not_slow_it() {
        let mut sim = Sim::new(20, 0.0);
        sim.iteration();
        // 60 ms of one client's command between two sweeps, right before the second.
        sim.commands += 1;
        sim.advance(60_000);
        sim.pacer.restart();
        for _ in 0..100 {
            sim.iteration();
        }
        assert!(!sim.pacer.clients_busy(sim.now));
        assert_eq!(sim.naps, 0);
    }

    #[test]
    fn idle_speed_is_the_same_at_every_share() {
        let mut default = Sim::new(20, 0.0);
        let mut full = Sim::new(100, 0.0);
        let (a, b) = (default.drive(1_000_000), full.drive(1_000_000));
        assert_eq!(a, b);
        assert!(a > 99.0, "{a}");
    }

    #[test]
    fn a_status_poll_every_ten_ms_costs_one_short_turn() {
        // A client asks for the status every 10 ms: each command costs the sweeps one turn
        // left to it (its reply goes out first), nothing more.
        let mut sim = Sim::new(20, 0.0);
        let end = sim.now + Duration::from_secs(1);
        let mut next = sim.now;
        let mut sliced = 0;
        while sim.now < end {
            if sim.now >= next {
                sim.commands += 1;
                next += Duration::from_millis(10);
            }
            sliced += sim.iteration().map_or(0, |d| d.as_micros() as u64);
        }
        assert!(sliced > 985_000, "{sliced}");
        assert_eq!(sim.naps, 0);
    }

    #[test]
    fn one_client_in_a_tight_loop_does_not_keep_the_server_busy() {
        // One client sends a request as soon as it has the reply (10 µs of server work each):
        // it waits at most a slice, and the sweeps keep nearly the whole thread.
        let mut sim = Sim::new(20, 0.0);
        let end = sim.now + Duration::from_secs(1);
        let mut sliced = 0;
        while sim.now < end {
            sim.commands += 1;
            sim.advance(10);
            if let Turn::Run { budget, shared } = sim.turn() {
                assert!(!shared);
                sim.ran(budget, shared);
                sliced += budget.as_micros();
            }
        }
        assert!(sliced > 970_000, "{sliced}");
    }

    #[test]
    fn one_client_one_request_at_a_time_never_makes_the_server_busy() {
        // However much CPU and however many commands a lone client's requests take, one at a
        // time (here 40 µs each, served at once: 25,000 a second, as if it were already paced),
        // it never has two waiting: the sweeps keep full slices.
        let mut sim = Sim::new(20, 0.0);
        for _ in 0..20_000 {
            sim.commands += 1;
            sim.advance(40);
            if let Turn::Run { shared, .. } = sim.turn() {
                assert!(!shared);
                // A short slice, so that the client's requests dominate the thread.
                sim.ran(Duration::from_micros(5), shared);
            }
        }
        assert!(!sim.pacer.clients_busy(sim.now));
        // Two such clients (two requests between turns) are a crowd.
        for _ in 0..20_000 {
            sim.commands += 2;
            sim.advance(80);
            if let Turn::Run { shared, .. } = sim.turn() {
                sim.ran(Duration::from_micros(5), shared);
            }
        }
        assert!(sim.pacer.clients_busy(sim.now));
    }

    #[test]
    fn busy_clients_leave_the_sweeps_their_share() {
        // The clients are a fixed load here (they do not slow down when served later), so
        // only the pairs where both fit in the thread.
        for load in [0.3, 0.6, 0.9] {
            for share in [1, 5, 10, 20, 33, 50] {
                if load + share as f64 / 100.0 > 1.0 {
                    continue;
                }
                let mut sim = Sim::new(share, load);
                sim.drive(200_000);
                let got = sim.drive(2_000_000);
                // Each slice is charged its length and SWITCH_PERCENT more.
                let want = share as f64 * 100.0 / (100 + SWITCH_PERCENT) as f64;
                assert!(
                    (got - want).abs() <= (want * 0.05).max(0.3),
                    "load {load}, share {share}: the sweeps took {got:.2}%"
                );
            }
        }
    }

    #[test]
    fn a_saturated_server_still_gives_the_share() {
        // The clients alone would need more than the whole thread: the sweeps still get their
        // share, so they finish.
        for load in [1.0, 2.0, 10.0] {
            let mut sim = Sim::new(20, load);
            sim.drive(100_000);
            let got = sim.drive(2_000_000);
            assert!(got >= 16.6, "load {load}: {got:.2}%");
            assert!(got <= 21.0, "load {load}: {got:.2}%");
        }
    }

    #[test]
    fn share_one_hundred_takes_what_the_clients_leave() {
        let mut sim = Sim::new(100, 0.5);
        let got = sim.drive(2_000_000);
        assert!(got > 45.0, "{got:.2}%");
        assert_eq!(sim.naps, 0);
    }

    #[test]
    fn busy_slices_are_short_and_the_loop_naps_between_them() {
        let mut sim = Sim::new(20, 0.6);
        sim.drive(200_000);
        let mut budgets = Vec::new();
        for _ in 0..1000 {
            if let Some(d) = sim.iteration() {
                budgets.push(d);
            }
        }
        assert!(
            budgets.iter().all(|&d| d <= Duration::from_micros(250)),
            "{budgets:?}"
        );
        assert!(sim.naps > 0);
    }

    #[test]
    fn a_changed_share_applies_at_the_next_turn() {
        let mut sim = Sim::new(100, 0.7);
        assert!(sim.drive(500_000) > 25.0);
        sim.share = 10;
        let got = sim.drive(2_000_000);
        assert!((9.0..=11.5).contains(&got), "{got:.2}%");
        sim.share = 100;
        assert!(sim.drive(500_000) > 25.0);
    }

    #[test]
    fn clients_leaving_give_the_sweeps_the_thread_back() {
        let mut sim = Sim::new(20, 0.8);
        sim.drive(1_000_000);
        sim.load = 0.0;
        sim.pending = 0.0;
        sim.drive(200_000);
        assert!(sim.drive(1_000_000) > 99.0);
    }

    #[test]
    fn quiet_periods_do_not_bank_a_burst() {
        let mut sim = Sim::new(20, 0.0);
        sim.drive(1_000_000);
        assert!(sim.pacer.credit_us() <= SLICE.as_micros() as i64);
        sim.load = 0.8;
        sim.drive(300_000);
        // Once the clients count as busy, the share; the credit never exceeds a full slice.
        assert!(sim.pacer.credit_us() <= SLICE.as_micros() as i64);
        let got = sim.drive(1_000_000);
        assert!(got <= 21.0, "{got:.2}%");
    }

    #[test]
    fn time_the_thread_is_not_running_is_not_client_work() {
        // A lone client sends a request every 2 ms, 10 µs of CPU each, while the OS keeps the
        // server off the CPU for 3 ms now and then (a busy machine): not a busy server.
        let mut sim = Sim::new(20, 0.0);
        let end = sim.now + Duration::from_millis(500);
        let mut next = sim.now;
        while sim.now < end {
            if sim.now >= next {
                next += Duration::from_millis(2);
                sim.commands += 1;
                sim.sleep(3_000);
                sim.advance(10);
            } else {
                sim.advance(1);
            }
            if let Turn::Run { budget, shared } = sim.turn() {
                assert!(!shared);
                sim.ran(budget, shared);
            }
        }
        assert!(!sim.pacer.clients_busy(sim.now));
    }

    #[test]
    fn busy_slice_lengths() {
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
        let later = now + Duration::from_secs(5);
        let _ = p.turn(later, || Duration::from_secs(9), 1, 20, SLICE);
        let _ = p.turn(now, || Duration::ZERO, 2, 20, SLICE);
        p.ran(
            now,
            Duration::MAX,
            Duration::from_secs(1_000_000_000),
            true,
            20,
        );
        let _ = p.turn(now, || Duration::ZERO, 3, 0, Duration::MAX);
        let _ = p.turn(now, || Duration::MAX, 0, 1000, Duration::ZERO);
        let _ = p.share_last_second(now);
        let _ = p.share_last_second(now + Duration::from_secs(100));
        let _ = p.clients_busy(now);
    }

    #[test]
    fn the_share_of_the_last_second() {
        let mut sim = Sim::new(20, 0.7);
        assert_eq!(sim.pacer.share_last_second(sim.now), 0);
        sim.drive(2_000_000);
        // 20 % earned, each slice charged 110 % of its length: 18 % in slices.
        let share = sim.pacer.share_last_second(sim.now);
        assert!((17..=19).contains(&share), "{share}");
        sim.load = 0.0;
        sim.pending = 0.0;
        sim.drive(2_000_000);
        assert!(sim.pacer.share_last_second(sim.now) >= 99);
        // Nothing for a while: back to zero.
        sim.now += Duration::from_millis(1500);
        assert_eq!(sim.pacer.share_last_second(sim.now), 0);
    }
}

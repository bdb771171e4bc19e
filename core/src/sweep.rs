//! The sweep as a state machine: what one slice does, given a budget and what the scan finds.
//!
//! The server is reached only through [`Keyspace`], and time only through the `now` closure
//! passed to [`Sweep::run_slice`], so slices are tested here with an in-memory keyspace and a
//! settable clock.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::patterns::PatternSet;

/// What became of one matched key when the sweep reached it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyOutcome {
    /// Removed as `UNLINK` would remove it.
    Deleted,
    /// The caller's user may not write it: left alone.
    Denied,
    /// It had expired; reaching it made the server reclaim it as an expiration.
    Expired,
    /// It was no longer there (deleted by someone else since the scan found it, or a duplicate
    /// the scan reported twice).
    Gone,
    /// It does not pass a filter (`TYPE`, `IDLE`) at this moment: not matched, left alone.
    Filtered,
    /// `DRYRUN`: it would have been deleted; left alone.
    Kept,
}

/// What one call of the server's scan visited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScanStep {
    /// Keys the call visited (matching or not).
    pub visited: u64,
    /// False once the whole keyspace has been visited.
    pub more: bool,
}

/// The server side of a sweep.
pub trait Keyspace {
    /// A key name the scan found, held until the sweep reaches it.
    type Name;
    /// Calls the server's scan once (one hash bucket) and appends the names that `patterns`
    /// match to `found`.
    fn scan(&mut self, patterns: &PatternSet, found: &mut VecDeque<Self::Name>) -> ScanStep;
    /// Deletes the key, checking at this moment that it still exists and may be written.
    fn delete(&mut self, name: Self::Name) -> KeyOutcome;
    /// Matched keys the last scan call found expired and had the server reclaim (a scan that
    /// reads keys expires them, as `SCAN` does): counted as matched and expired. The default
    /// finds none.
    fn take_expired(&mut self) -> u64 {
        0
    }
    /// The exact number of keys the whole scan visited, once it has ended, where the scan
    /// steps could only estimate theirs (`SCAN … MATCH` does not say how many keys it skipped):
    /// it then replaces the sum of the steps' `visited`. `None` (the default) keeps that sum.
    fn scanned_total(&self) -> Option<u64> {
        None
    }
    /// How many operations one scan call counts for at least (see [`OPS_PER_CLOCK_READ`]): 1,
    /// the default, for a call of about a microsecond; more for a call that visits many keys.
    fn scan_cost(&self) -> u64 {
        1
    }
    /// How many names [`Keyspace::delete_batch`] takes at once: 1 (the default) reaches keys
    /// one by one.
    fn batch_size(&self) -> usize {
        1
    }
    /// Deletes several keys, each as [`Keyspace::delete`] would, and tells what became of them
    /// in total. The default reaches them one by one.
    fn delete_batch(&mut self, names: Vec<Self::Name>) -> Outcomes {
        let mut outcomes = Outcomes::default();
        for name in names {
            outcomes.add(self.delete(name));
        }
        outcomes
    }
}

/// What became of a batch of keys, counted by [`KeyOutcome`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Outcomes {
    pub deleted: u64,
    pub denied: u64,
    pub expired: u64,
    /// `DRYRUN`: would have been deleted.
    pub kept: u64,
    /// Gone or filtered out: left alone, not matched.
    pub skipped: u64,
}

impl Outcomes {
    pub fn add(&mut self, outcome: KeyOutcome) {
        match outcome {
            KeyOutcome::Deleted => self.deleted += 1,
            KeyOutcome::Denied => self.denied += 1,
            KeyOutcome::Expired => self.expired += 1,
            KeyOutcome::Kept => self.kept += 1,
            KeyOutcome::Gone | KeyOutcome::Filtered => self.skipped += 1,
        }
    }
}

/// The budget of a sweep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Keys visited per scan step (the `COUNT` hint).
    pub count: u64,
    /// Most deletions per slice.
    pub batch: u64,
    /// Most time per slice.
    pub slice: Duration,
    /// Stop after this many deletions (`LIMIT`; with `DRYRUN`, keys that would be deleted).
    pub limit: Option<u64>,
}

/// The counts a sweep reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    pub scanned: u64,
    pub matched: u64,
    pub deleted: u64,
    pub denied: u64,
    pub expired: u64,
    pub slices: u64,
    /// The longest slice this sweep ran, in microseconds.
    pub slice_max_us: u64,
}

impl Counts {
    /// The fields of the reply of SPEC §2, in its order.
    pub fn fields(&self, elapsed_ms: u64) -> [(&'static str, i64); 7] {
        let int = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        [
            ("scanned", int(self.scanned)),
            ("matched", int(self.matched)),
            ("deleted", int(self.deleted)),
            ("denied", int(self.denied)),
            ("expired", int(self.expired)),
            ("elapsed_ms", int(elapsed_ms)),
            ("slices", int(self.slices)),
        ]
    }

    /// The same fields on one line, for logs and error replies.
    pub fn summary(&self, elapsed_ms: u64) -> String {
        self.fields(elapsed_ms)
            .iter()
            .map(|(name, value)| format!("{name} {value}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// Why a slice ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SliceEnd {
    /// `BATCH` keys were deleted.
    Batch,
    /// The slice used its time.
    Time,
    /// The whole keyspace has been visited and every matched key reached.
    Finished,
}

/// The largest scan step: the names one step matches are held until they are reached, so a
/// larger `COUNT` would only hold more memory, never finish sooner.
pub const MAX_STEP: u64 = 1_000_000;

/// How many operations (scan calls or deletions) run between two reads of the clock. Each
/// costs about a microsecond, so a slice overshoots its budget by a few microseconds at most.
/// A scan call that visits many keys at once (the `SCAN` command) counts one operation per
/// [`VISITS_PER_OP`] keys, so the clock is read after each such call.
pub const OPS_PER_CLOCK_READ: u64 = 8;

/// Keys visited that cost about as much as one operation.
const VISITS_PER_OP: u64 = 64;

/// The fewest and the most names one batched deletion (an `UNLINK` call) takes.
pub const MIN_DELETE_BATCH: usize = 16;
pub const MAX_DELETE_BATCH: usize = 256;

/// Names per batched deletion in a slice of `budget`: about one per 4 µs of it (a name costs
/// the server about a microsecond to delete), so that one call stays well inside the slice;
/// 250 in the default 1 ms slice, 50 in the 200 µs slices of `sweep.busy-share 20` under load.
pub fn delete_batch_for(budget: Duration) -> usize {
    let per_budget = usize::try_from(budget.as_micros() / 4).unwrap_or(MAX_DELETE_BATCH);
    per_budget.clamp(MIN_DELETE_BATCH, MAX_DELETE_BATCH)
}

/// The smallest `COUNT` of one scan call.
pub const MIN_SCAN_COUNT: u64 = 16;

/// The `COUNT` of the next scan call, after one with `count` took `spent` in a slice of
/// `budget`: halved while a call takes more than half the slice, doubled back (up to `most`,
/// the sweep's `COUNT`) while calls take less than an eighth of it. Each call costs a few
/// microseconds besides its keys, so `COUNT` stays as large as the slice allows, and a short
/// slice (a busy server) gets short calls.
pub fn next_scan_count(count: u64, most: u64, spent: Duration, budget: Duration) -> u64 {
    let most = most.max(MIN_SCAN_COUNT);
    let half = budget / 2;
    if spent > half {
        (count / 2).clamp(MIN_SCAN_COUNT, most)
    } else if spent < half / 4 {
        count.saturating_mul(2).clamp(MIN_SCAN_COUNT, most)
    } else {
        count.clamp(MIN_SCAN_COUNT, most)
    }
}

/// One sweep over one database.
pub struct Sweep<N> {
    pattern: PatternSet,
    limits: Limits,
    /// Matched names not reached yet: at most one scan step's worth (about `COUNT`).
    pending: VecDeque<N>,
    /// Keys visited in the current scan step.
    step_visited: u64,
    scan_done: bool,
    /// Keys deleted, or with `DRYRUN` that would have been: what `LIMIT` counts.
    taken: u64,
    counts: Counts,
}

impl<N> Sweep<N> {
    /// A sweep of the keys `pattern` matches: one [`Pattern`](crate::glob::Pattern), or a
    /// [`PatternSet`] with `OR` and `EXCEPT` patterns.
    pub fn new(pattern: impl Into<PatternSet>, limits: Limits) -> Sweep<N> {
        Sweep {
            pattern: pattern.into(),
            limits: Limits {
                count: limits.count.clamp(1, MAX_STEP),
                batch: limits.batch.max(1),
                ..limits
            },
            pending: VecDeque::new(),
            step_visited: 0,
            scan_done: false,
            taken: 0,
            counts: Counts::default(),
        }
    }

    /// Changes the time budget of the next slices (`CONFIG SET sweep.slice-us` mid-sweep).
    pub fn set_slice_budget(&mut self, slice: Duration) {
        self.limits.slice = slice;
    }

    pub fn counts(&self) -> Counts {
        self.counts
    }

    pub fn pattern(&self) -> &PatternSet {
        &self.pattern
    }

    /// Names held right now (the memory bound of the sweep).
    pub fn held(&self) -> usize {
        self.pending.len()
    }

    /// True when nothing is left to do.
    pub fn is_finished(&self) -> bool {
        (self.scan_done && self.pending.is_empty()) || self.limit_reached()
    }

    fn limit_reached(&self) -> bool {
        self.limits.limit.is_some_and(|limit| self.taken >= limit)
    }

    /// Runs one slice: scan steps of `COUNT` visits, each followed by the deletion of what it
    /// matched, until `BATCH` deletions, the time budget, or the end of the keyspace.
    pub fn run_slice<K, C>(&mut self, keyspace: &mut K, mut now: C) -> SliceEnd
    where
        K: Keyspace<Name = N>,
        C: FnMut() -> Instant,
    {
        let start = now();
        let deadline = start + self.limits.slice;
        let mut deleted = 0u64;
        let mut ops = 0u64;
        let end = loop {
            if self.limit_reached() {
                break SliceEnd::Finished;
            }
            // Finish the current scan step before deleting, so that `COUNT` means what it
            // means for `SCAN`; then reach every key the step matched.
            let stepping = !self.scan_done && self.step_visited < self.limits.count;
            if stepping {
                let step = keyspace.scan(&self.pattern, &mut self.pending);
                self.counts.scanned += step.visited;
                self.step_visited += step.visited;
                self.scan_done = !step.more;
                if self.scan_done {
                    if let Some(total) = keyspace.scanned_total() {
                        self.counts.scanned = total;
                    }
                }
                let expired = keyspace.take_expired();
                self.counts.matched += expired;
                self.counts.expired += expired;
                ops += keyspace.scan_cost().max(1 + step.visited / VISITS_PER_OP);
            } else if !self.pending.is_empty() {
                // As many names as the keyspace takes at once, never past `BATCH` or `LIMIT`.
                let room = self.limits.batch.saturating_sub(deleted);
                let room = match self.limits.limit {
                    Some(limit) => room.min(limit.saturating_sub(self.taken)),
                    None => room,
                };
                let n = usize::try_from(room)
                    .unwrap_or(usize::MAX)
                    .min(keyspace.batch_size().max(1))
                    .clamp(1, self.pending.len());
                let names: Vec<N> = self.pending.drain(..n).collect();
                let out = keyspace.delete_batch(names);
                let taken = out.deleted + out.kept;
                self.counts.matched += taken + out.denied + out.expired;
                self.counts.deleted += out.deleted;
                self.counts.denied += out.denied;
                self.counts.expired += out.expired;
                self.taken += taken;
                deleted += taken;
                ops += n as u64;
                if deleted >= self.limits.batch {
                    break SliceEnd::Batch;
                }
            } else if self.scan_done {
                break SliceEnd::Finished;
            } else {
                self.step_visited = 0;
                ops += 1;
            }
            if ops >= OPS_PER_CLOCK_READ {
                ops = 0;
                if now() >= deadline {
                    break SliceEnd::Time;
                }
            }
        };
        let end = if self.is_finished() {
            SliceEnd::Finished
        } else {
            end
        };
        self.counts.slices += 1;
        let spent = now().saturating_duration_since(start);
        let spent_us = u64::try_from(spent.as_micros()).unwrap_or(u64::MAX);
        self.counts.slice_max_us = self.counts.slice_max_us.max(spent_us);
        end
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delete_batches_fit_the_slice() {
        assert_eq!(delete_batch_for(Duration::from_millis(1)), 250);
        assert_eq!(delete_batch_for(Duration::from_micros(200)), 50);
        assert_eq!(
            delete_batch_for(Duration::from_micros(10)),
            MIN_DELETE_BATCH
        );
        assert_eq!(delete_batch_for(Duration::from_secs(5)), MAX_DELETE_BATCH);
        assert_eq!(delete_batch_for(Duration::MAX), MAX_DELETE_BATCH);
        assert_eq!(delete_batch_for(Duration::ZERO), MIN_DELETE_BATCH);
    }

    #[test]
    fn scan_count_follows_the_slice_budget() {
        let us = Duration::from_micros;
        // A call over half the slice halves COUNT; under an eighth doubles it back.
        assert_eq!(next_scan_count(1000, 1000, us(150), us(200)), 500);
        assert_eq!(next_scan_count(500, 1000, us(10), us(200)), 1000);
        assert_eq!(next_scan_count(500, 1000, us(60), us(200)), 500);
        // The same call is quick in a full slice: a short slice is what shortens it.
        assert_eq!(next_scan_count(1000, 1000, us(150), us(1000)), 1000);
        // Never under the floor, never over the sweep's COUNT.
        assert_eq!(next_scan_count(16, 1000, us(900), us(200)), MIN_SCAN_COUNT);
        assert_eq!(next_scan_count(800, 1000, us(1), us(1000)), 1000);
        assert_eq!(
            next_scan_count(u64::MAX, u64::MAX, us(0), us(1000)),
            u64::MAX
        );
        assert_eq!(next_scan_count(0, 0, us(0), Duration::ZERO), MIN_SCAN_COUNT);
    }

    proptest::proptest! {
        #[test]
        fn scan_count_stays_in_range(
            count in 0u64..2_000_000,
            most in 0u64..2_000_000,
            spent in 0u64..10_000,
            budget in 0u64..10_000,
        ) {
            let next = next_scan_count(
                count,
                most,
                Duration::from_micros(spent),
                Duration::from_micros(budget),
            );
            proptest::prop_assert!(next >= MIN_SCAN_COUNT);
            proptest::prop_assert!(next <= most.max(MIN_SCAN_COUNT));
        }
    }
    use crate::glob::Pattern;
    use std::cell::Cell;
    use std::collections::BTreeMap;

    /// An in-memory keyspace whose scan walks buckets of a fixed size in name order.
    struct Memory {
        keys: BTreeMap<Vec<u8>, bool>,
        order: Vec<Vec<u8>>,
        cursor: usize,
        bucket: usize,
        denied_prefix: Option<Vec<u8>>,
        expired: Vec<Vec<u8>>,
        scan_calls: u64,
        /// What [`Keyspace::scanned_total`] answers once the scan has ended.
        exact_total: Option<u64>,
    }

    impl Memory {
        fn new(names: &[&str], bucket: usize) -> Memory {
            let keys: BTreeMap<Vec<u8>, bool> = names
                .iter()
                .map(|n| (n.as_bytes().to_vec(), true))
                .collect();
            let order = keys.keys().cloned().collect();
            Memory {
                keys,
                order,
                cursor: 0,
                bucket,
                denied_prefix: None,
                expired: Vec::new(),
                scan_calls: 0,
                exact_total: None,
            }
        }

        fn remaining(&self) -> Vec<String> {
            self.keys
                .keys()
                .map(|k| String::from_utf8_lossy(k).into_owned())
                .collect()
        }
    }

    impl Keyspace for Memory {
        type Name = Vec<u8>;

        fn scanned_total(&self) -> Option<u64> {
            self.exact_total.filter(|_| self.cursor >= self.order.len())
        }

        fn scan(&mut self, pattern: &PatternSet, found: &mut VecDeque<Vec<u8>>) -> ScanStep {
            self.scan_calls += 1;
            let end = (self.cursor + self.bucket).min(self.order.len());
            let mut visited = 0;
            for name in &self.order[self.cursor..end] {
                if self.keys.contains_key(name) {
                    visited += 1;
                    if pattern.matches(name) {
                        found.push_back(name.clone());
                    }
                }
            }
            self.cursor = end;
            ScanStep {
                visited,
                more: self.cursor < self.order.len(),
            }
        }

        fn delete(&mut self, name: Vec<u8>) -> KeyOutcome {
            if !self.keys.contains_key(&name) {
                return KeyOutcome::Gone;
            }
            if self.expired.contains(&name) {
                self.keys.remove(&name);
                return KeyOutcome::Expired;
            }
            if let Some(p) = &self.denied_prefix {
                if name.starts_with(p) {
                    return KeyOutcome::Denied;
                }
            }
            self.keys.remove(&name);
            KeyOutcome::Deleted
        }
    }

    fn limits(count: u64, batch: u64) -> Limits {
        Limits {
            count,
            batch,
            slice: Duration::from_millis(1),
            limit: None,
        }
    }

    /// A clock that never moves: only `BATCH` and the end of the keyspace end slices.
    fn frozen() -> impl FnMut() -> Instant {
        let t = Instant::now();
        move || t
    }

    fn run_to_end(sweep: &mut Sweep<Vec<u8>>, ks: &mut Memory) -> Vec<SliceEnd> {
        let mut ends = Vec::new();
        for _ in 0..10_000 {
            let end = sweep.run_slice(ks, frozen());
            ends.push(end);
            if end == SliceEnd::Finished {
                return ends;
            }
        }
        panic!("the sweep did not finish");
    }

    fn names(prefix: &str, n: usize) -> Vec<String> {
        (0..n).map(|i| format!("{prefix}{i:05}")).collect()
    }

    #[test]
    fn deletes_exactly_the_matching_keys() {
        let mut all = names("cache:", 300);
        all.extend(names("keep:", 200));
        let refs: Vec<&str> = all.iter().map(String::as_str).collect();
        let mut ks = Memory::new(&refs, 7);
        let mut sweep = Sweep::new(Pattern::new(b"cache:*"), limits(50, 40));
        run_to_end(&mut sweep, &mut ks);
        assert_eq!(ks.remaining(), names("keep:", 200));
        let c = sweep.counts();
        assert_eq!((c.scanned, c.matched, c.deleted), (500, 300, 300));
    }

    #[test]
    fn an_exact_total_at_the_end_of_the_scan_replaces_the_estimates() {
        let all = names("k", 300);
        let refs: Vec<&str> = all.iter().map(String::as_str).collect();
        let mut ks = Memory::new(&refs, 1);
        ks.exact_total = Some(250);
        let mut sweep = Sweep::new(Pattern::new(b"nothing*"), limits(50, 40));
        let mut mid = None;
        // A clock that moves 100 µs at every read: slices of 1 ms end by time, mid-scan.
        let t = Cell::new(Instant::now());
        let ticking = || {
            t.set(t.get() + Duration::from_micros(100));
            t.get()
        };
        for _ in 0..10_000 {
            if sweep.run_slice(&mut ks, ticking) == SliceEnd::Finished {
                break;
            }
            mid.get_or_insert(sweep.counts().scanned);
        }
        // The steps' own counts until the end, then the total the keyspace gives.
        assert!(mid.is_some_and(|n| n > 0 && n < 300), "{mid:?}");
        assert_eq!(sweep.counts().scanned, 250);
    }

    #[test]
    fn no_slice_deletes_more_than_batch() {
        let all = names("k", 1000);
        let refs: Vec<&str> = all.iter().map(String::as_str).collect();
        let mut ks = Memory::new(&refs, 3);
        let mut sweep = Sweep::new(Pattern::new(b"*"), limits(100, 64));
        let mut before = 1000;
        for _ in 0..1000 {
            let end = sweep.run_slice(&mut ks, frozen());
            let now = ks.keys.len();
            assert!(before - now <= 64, "{} deleted in one slice", before - now);
            before = now;
            if end == SliceEnd::Finished {
                break;
            }
        }
        assert!(ks.keys.is_empty());
        // 1000 deletions in slices of at most 64.
        assert!(sweep.counts().slices >= 16);
    }

    #[test]
    fn holds_at_most_one_scan_step_of_names() {
        let all = names("k", 2000);
        let refs: Vec<&str> = all.iter().map(String::as_str).collect();
        let mut ks = Memory::new(&refs, 5);
        let mut sweep = Sweep::new(Pattern::new(b"*"), limits(100, 10));
        let mut most = 0;
        loop {
            let end = sweep.run_slice(&mut ks, frozen());
            most = most.max(sweep.held());
            if end == SliceEnd::Finished {
                break;
            }
        }
        // COUNT visits, plus what the last bucket of a step adds.
        assert!(most <= 100 + 5, "held {most}");
    }

    #[test]
    fn slices_end_on_time_even_when_nothing_matches() {
        let all = names("other:", 5000);
        let refs: Vec<&str> = all.iter().map(String::as_str).collect();
        let mut ks = Memory::new(&refs, 1);
        let mut sweep = Sweep::new(Pattern::new(b"cache:*"), limits(1000, 500));
        // Each clock read advances 100 us: a 1 ms slice sees about ten reads.
        let base = Instant::now();
        let reads = Cell::new(0u32);
        let clock = || {
            reads.set(reads.get() + 1);
            base + Duration::from_micros(100) * reads.get()
        };
        assert_eq!(sweep.run_slice(&mut ks, clock), SliceEnd::Time);
        assert!(
            ks.scan_calls < 200,
            "{} scan calls in one slice",
            ks.scan_calls
        );
        assert_eq!(sweep.counts().slices, 1);
    }

    #[test]
    fn count_sets_the_scan_step() {
        let all = names("k", 100);
        let refs: Vec<&str> = all.iter().map(String::as_str).collect();
        let mut ks = Memory::new(&refs, 1);
        let mut sweep = Sweep::new(Pattern::new(b"*"), limits(10, 1000));
        // One slice with a frozen clock and a large batch: scans a step of 10, deletes them,
        // scans the next step... so the keys go in steps and the whole run finishes.
        let ends = run_to_end(&mut sweep, &mut ks);
        assert_eq!(ends, vec![SliceEnd::Finished]);
        assert_eq!(sweep.counts().deleted, 100);
    }

    #[test]
    fn denied_and_expired_are_counted_apart() {
        let mut all = names("a:", 10);
        all.extend(names("b:", 10));
        let refs: Vec<&str> = all.iter().map(String::as_str).collect();
        let mut ks = Memory::new(&refs, 4);
        ks.denied_prefix = Some(b"b:".to_vec());
        ks.expired = vec![b"a:00001".to_vec(), b"a:00002".to_vec()];
        let mut sweep = Sweep::new(Pattern::new(b"*"), limits(1000, 1000));
        run_to_end(&mut sweep, &mut ks);
        let c = sweep.counts();
        assert_eq!((c.matched, c.deleted, c.denied, c.expired), (20, 8, 10, 2));
        assert_eq!(ks.remaining(), names("b:", 10));
    }

    #[test]
    fn duplicates_and_vanished_keys_are_not_counted() {
        struct Twice(Memory);
        impl Keyspace for Twice {
            type Name = Vec<u8>;
            fn scan(&mut self, p: &PatternSet, found: &mut VecDeque<Vec<u8>>) -> ScanStep {
                let before = found.len();
                let step = self.0.scan(p, found);
                let again: Vec<Vec<u8>> = found.iter().skip(before).cloned().collect();
                found.extend(again);
                step
            }
            fn delete(&mut self, name: Vec<u8>) -> KeyOutcome {
                self.0.delete(name)
            }
        }
        let all = names("k", 30);
        let refs: Vec<&str> = all.iter().map(String::as_str).collect();
        let mut ks = Twice(Memory::new(&refs, 4));
        let mut sweep = Sweep::new(Pattern::new(b"*"), limits(10, 1000));
        loop {
            if sweep.run_slice(&mut ks, frozen()) == SliceEnd::Finished {
                break;
            }
        }
        let c = sweep.counts();
        assert_eq!((c.matched, c.deleted), (30, 30));
    }

    #[test]
    fn reply_fields_are_in_spec_order() {
        let c = Counts {
            scanned: 10,
            matched: 4,
            deleted: 3,
            denied: 1,
            expired: 0,
            slices: 2,
            slice_max_us: 9,
        };
        let names: Vec<&str> = c.fields(7).iter().map(|f| f.0).collect();
        assert_eq!(
            names,
            [
                "scanned",
                "matched",
                "deleted",
                "denied",
                "expired",
                "elapsed_ms",
                "slices"
            ]
        );
        assert_eq!(
            c.summary(7),
            "scanned 10, matched 4, deleted 3, denied 1, expired 0, elapsed_ms 7, slices 2"
        );
    }

    #[test]
    fn limit_stops_after_that_many_deletions() {
        let all = names("k", 500);
        let refs: Vec<&str> = all.iter().map(String::as_str).collect();
        let mut ks = Memory::new(&refs, 7);
        let mut sweep = Sweep::new(
            Pattern::new(b"*"),
            Limits {
                limit: Some(123),
                ..limits(50, 40)
            },
        );
        run_to_end(&mut sweep, &mut ks);
        assert_eq!(sweep.counts().deleted, 123);
        assert_eq!(ks.keys.len(), 500 - 123);
    }

    #[test]
    fn limit_zero_deletes_nothing() {
        let all = names("k", 50);
        let refs: Vec<&str> = all.iter().map(String::as_str).collect();
        let mut ks = Memory::new(&refs, 7);
        let mut sweep = Sweep::new(
            Pattern::new(b"*"),
            Limits {
                limit: Some(0),
                ..limits(50, 40)
            },
        );
        assert_eq!(sweep.run_slice(&mut ks, frozen()), SliceEnd::Finished);
        assert_eq!(ks.keys.len(), 50);
        assert_eq!(sweep.counts().scanned, 0);
    }

    #[test]
    fn kept_and_filtered_keys_count_apart() {
        struct Dry(Memory);
        impl Keyspace for Dry {
            type Name = Vec<u8>;
            fn scan(&mut self, p: &PatternSet, found: &mut VecDeque<Vec<u8>>) -> ScanStep {
                self.0.scan(p, found)
            }
            fn delete(&mut self, name: Vec<u8>) -> KeyOutcome {
                // Odd names fail a filter; the rest would be deleted.
                if name.last().is_some_and(|b| b % 2 == 1) {
                    KeyOutcome::Filtered
                } else {
                    KeyOutcome::Kept
                }
            }
        }
        let all = names("k", 100);
        let refs: Vec<&str> = all.iter().map(String::as_str).collect();
        let mut ks = Dry(Memory::new(&refs, 7));
        let mut sweep = Sweep::new(Pattern::new(b"*"), limits(50, 40));
        loop {
            if sweep.run_slice(&mut ks, frozen()) == SliceEnd::Finished {
                break;
            }
        }
        let c = sweep.counts();
        assert_eq!((c.scanned, c.matched, c.deleted), (100, 50, 0));
        assert_eq!(ks.0.keys.len(), 100);
    }

    #[test]
    fn huge_count_is_capped_so_memory_stays_bounded() {
        let sweep: Sweep<Vec<u8>> = Sweep::new(Pattern::new(b"*"), limits(u64::MAX, u64::MAX));
        assert_eq!(sweep.limits.count, MAX_STEP);
        let sweep: Sweep<Vec<u8>> = Sweep::new(Pattern::new(b"*"), limits(0, 0));
        assert_eq!((sweep.limits.count, sweep.limits.batch), (1, 1));
    }

    #[test]
    fn an_empty_keyspace_finishes_in_one_slice() {
        let mut ks = Memory::new(&[], 4);
        let mut sweep: Sweep<Vec<u8>> = Sweep::new(Pattern::new(b"*"), limits(10, 10));
        assert_eq!(sweep.run_slice(&mut ks, frozen()), SliceEnd::Finished);
        assert!(sweep.is_finished());
        assert_eq!(sweep.counts().slices, 1);
    }

    #[test]
    fn a_batch_that_empties_the_keyspace_reports_finished() {
        let all = names("k", 10);
        let refs: Vec<&str> = all.iter().map(String::as_str).collect();
        let mut ks = Memory::new(&refs, 100);
        let mut sweep = Sweep::new(Pattern::new(b"*"), limits(100, 10));
        assert_eq!(sweep.run_slice(&mut ks, frozen()), SliceEnd::Finished);
    }

    /// A keyspace that takes names several at a time, as one `UNLINK` call does.
    struct Batched {
        inner: Memory,
        size: usize,
        largest: usize,
    }

    impl Keyspace for Batched {
        type Name = Vec<u8>;
        fn scan(&mut self, p: &PatternSet, found: &mut VecDeque<Vec<u8>>) -> ScanStep {
            self.inner.scan(p, found)
        }
        fn delete(&mut self, name: Vec<u8>) -> KeyOutcome {
            self.inner.delete(name)
        }
        fn batch_size(&self) -> usize {
            self.size
        }
        fn delete_batch(&mut self, names: Vec<Vec<u8>>) -> Outcomes {
            self.largest = self.largest.max(names.len());
            let mut out = Outcomes::default();
            for name in names {
                out.add(self.inner.delete(name));
            }
            out
        }
    }

    #[test]
    fn batches_never_pass_batch_or_limit() {
        let mut all = names("a:", 100);
        all.extend(names("b:", 50));
        let refs: Vec<&str> = all.iter().map(String::as_str).collect();
        let mut memory = Memory::new(&refs, 9);
        memory.denied_prefix = Some(b"a:0001".to_vec());
        memory.expired = vec![b"a:00020".to_vec(), b"a:00031".to_vec()];
        let mut ks = Batched {
            inner: memory,
            size: 7,
            largest: 0,
        };
        let mut sweep = Sweep::new(
            Pattern::new(b"a:*"),
            Limits {
                limit: Some(60),
                ..limits(20, 10)
            },
        );
        let mut before = 0;
        loop {
            let end = sweep.run_slice(&mut ks, frozen());
            let deleted = sweep.counts().deleted;
            assert!(deleted - before <= 10, "a slice deleted more than BATCH");
            before = deleted;
            if end == SliceEnd::Finished {
                break;
            }
        }
        let c = sweep.counts();
        assert_eq!(c.deleted, 60, "{c:?}");
        assert_eq!(c.denied, 10, "{c:?}");
        assert!(c.expired <= 2, "{c:?}");
        assert_eq!(c.matched, c.deleted + c.denied + c.expired, "{c:?}");
        assert!(ks.largest <= 7 && ks.largest > 1, "{}", ks.largest);
        assert!(sweep.held() <= 20 + 9, "held {}", sweep.held());
    }
}

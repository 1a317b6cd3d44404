//! The watermark policy of one worker's input: lateness, a shared watermark, idle time.
//!
//! The watermark is the event time below which no more records are expected. Ingest
//! holds its capability at the watermark rounded down to the epoch, so downstream the
//! frontier *is* the watermark.
//!
//! * **Lateness.** With a lateness `l`, the watermark trails the largest event time seen
//!   by `l`; a record whose event time is behind the watermark when it arrives is late.
//!   The watermark moves record by record, so which records are late depends only on
//!   their order, never on how the input was cut into blocks. Without a lateness (a
//!   bounded input's default) the watermark stays put until the input ends, and no
//!   record is ever late.
//! * **Shared.** Workers that draw from one live feed share its watermark: a worker that
//!   happened to get no records must not hold the frontier back.
//! * **Hints.** A source that knows its future (a paced generator) may move the watermark.
//! * **Partitioned.** Over a partitioned input (Kafka), records do not move the watermark
//!   one by one: each block's largest event time is noted for its partition, and the
//!   watermark follows the minimum over the process's partitions, less the lateness
//!   ([`Watermark::follow`]). A partition quiet for `idle_timeout` drops out of the minimum.
//! * **Idle inputs.** After `idle_timeout` without input, event time is taken to advance
//!   with the wall clock from the last record seen (or from the wall clock itself for an
//!   input that never sent one), and the watermark follows it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration as StdDuration, Instant};

use crate::time::{Duration, Millis, epoch_of};

/// One worker's watermark.
#[derive(Debug)]
pub struct Watermark {
    lateness: Option<u64>,
    idle_timeout: Option<StdDuration>,
    shared: Option<Arc<AtomicU64>>,
    value: Millis,
    /// The watermark from this worker's own records (and a restore) alone, without what
    /// it took in from the shared one: see [`Watermark::position`].
    own: Millis,
    max_seen: Option<Millis>,
    last_data: Instant,
    /// Over a partitioned input: the largest on-time event time of the current block.
    block_max: Option<Option<Millis>>,
}

impl Watermark {
    /// A watermark at 0. `shared` is the feed's watermark when workers share one.
    pub fn new(
        lateness: Option<Duration>,
        idle_timeout: Option<Duration>,
        shared: Option<Arc<AtomicU64>>,
    ) -> Self {
        Watermark {
            lateness: lateness.map(Duration::millis),
            idle_timeout: idle_timeout.map(Duration::to_std),
            // Only a moving watermark is worth sharing.
            shared: shared.filter(|_| lateness.is_some()),
            value: 0,
            own: 0,
            max_seen: None,
            last_data: Instant::now(),
            block_max: None,
        }
    }

    /// The same watermark over a partitioned input: records only judge lateness, and the
    /// watermark moves by [`Watermark::follow`].
    pub fn partitioned(mut self) -> Self {
        if self.lateness.is_some() {
            self.block_max = Some(None);
        }
        self
    }

    /// Whether the watermark is partitioned (and moves).
    pub fn is_partitioned(&self) -> bool {
        self.block_max.is_some()
    }

    /// The largest on-time event time observed since the last call, over a partitioned input.
    pub fn take_block_max(&mut self) -> Option<Millis> {
        self.block_max.as_mut().and_then(Option::take)
    }

    /// Over a partitioned input: moves the watermark to trail `low`, the minimum over the
    /// partitions of their largest event times, by the lateness.
    pub fn follow(&mut self, low: Option<Millis>) {
        if let (Some(low), Some(l)) = (low, self.lateness) {
            self.value = self.value.max(low.saturating_sub(l));
        }
    }

    /// Whether the watermark moves before the input ends.
    pub fn moves(&self) -> bool {
        self.lateness.is_some()
    }

    /// The watermark.
    pub fn value(&self) -> Millis {
        self.value
    }

    /// The largest on-time event time seen.
    pub fn max_seen(&self) -> Option<Millis> {
        self.max_seen
    }

    /// Where the watermark stands after the records seen so far: its value and the
    /// largest event time seen, for a snapshot. A shared watermark gives its own part
    /// only: what it took in from other workers may come from records they read after
    /// their cut, which a restart reads again and must not find already passed.
    pub fn position(&self) -> (Millis, Option<Millis>) {
        let value = if self.shared.is_some() { self.own } else { self.value };
        (value, self.max_seen)
    }

    /// Puts the watermark back where [`Watermark::position`] said it was.
    pub fn restore(&mut self, (value, max_seen): (Millis, Option<Millis>)) {
        self.value = value;
        self.own = value;
        self.max_seen = max_seen;
    }

    /// The frontier to hold: the watermark rounded down to the epoch.
    pub fn frontier(&self, epoch: Duration) -> Millis {
        epoch_of(self.value, epoch)
    }

    /// Takes in the feed's shared watermark, if other workers moved it.
    pub fn catch_up(&mut self) {
        if let Some(shared) = &self.shared {
            self.value = self.value.max(shared.load(Ordering::Relaxed));
        }
    }

    /// Judges a record at `time`: `Err(watermark)` if it is late, otherwise the
    /// watermark moves to trail it by the lateness.
    #[inline]
    pub fn observe(&mut self, time: Millis) -> Result<(), Millis> {
        if let Some(l) = self.lateness {
            if time < self.value {
                return Err(self.value);
            }
            match &mut self.block_max {
                Some(block) => *block = Some(block.map_or(time, |m| m.max(time))),
                None => {
                    let trail = time.saturating_sub(l);
                    self.value = self.value.max(trail);
                    self.own = self.own.max(trail);
                }
            }
        }
        self.max_seen = Some(self.max_seen.map_or(time, |m| m.max(time)));
        Ok(())
    }

    /// Notes that input arrived at `now` (any line, even a rejected one).
    pub fn data_at(&mut self, now: Instant) {
        self.last_data = now;
    }

    /// A source's lower bound on the event times still to come.
    pub fn hint(&mut self, lower_bound: Millis) {
        self.value = self.value.max(lower_bound);
    }

    /// After `idle_timeout` without input, moves the watermark with the wall clock.
    /// `seen_elsewhere` is the largest event time seen by the process, for a worker that
    /// saw none itself; `wall` is the wall clock in event time.
    pub fn idle(&mut self, now: Instant, seen_elsewhere: Option<Millis>, wall: Millis) {
        let (Some(idle), Some(l)) = (self.idle_timeout, self.lateness) else { return };
        let quiet = now.saturating_duration_since(self.last_data);
        if quiet < idle {
            return;
        }
        let now_event = match self.max_seen.or(seen_elsewhere) {
            Some(m) => m + quiet.as_millis() as u64,
            None => wall,
        };
        self.value = self.value.max(now_event.saturating_sub(l));
    }

    /// How often an idle input should look at the clock, if it follows it.
    pub fn idle_period(&self, epoch: Duration) -> Option<StdDuration> {
        self.idle_timeout.map(|idle| idle.min(epoch.to_std()).max(StdDuration::from_millis(10)))
    }

    /// Publishes the watermark to the workers sharing it; `true` if that moved it, so
    /// they should be woken.
    pub fn publish(&self) -> bool {
        self.shared.as_ref().is_some_and(|s| s.fetch_max(self.value, Ordering::Relaxed) < self.value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Option<Duration> {
        Some(Duration::from_millis(n))
    }

    #[test]
    fn lateness_trails_the_largest_time_seen_record_by_record() {
        let mut w = Watermark::new(ms(10), None, None);
        assert_eq!(w.observe(100), Ok(()));
        assert_eq!(w.value(), 90);
        // Behind the largest time but within the lateness: on time, no move.
        assert_eq!(w.observe(95), Ok(()));
        assert_eq!(w.value(), 90);
        assert_eq!(w.observe(89), Err(90));
        assert_eq!(w.observe(90), Ok(()), "the watermark itself is on time");
        assert_eq!(w.max_seen(), Some(100), "late records do not count as seen");
        assert_eq!(w.frontier(Duration::from_millis(50)), 50);
    }

    #[test]
    fn without_lateness_nothing_is_late_and_nothing_moves() {
        let mut w = Watermark::new(None, ms(1), None);
        assert!(!w.moves());
        for t in [500, 3, 1_000_000] {
            assert_eq!(w.observe(t), Ok(()));
        }
        w.idle(Instant::now() + StdDuration::from_secs(60), None, 5_000_000);
        assert_eq!(w.value(), 0);
    }

    #[test]
    fn a_shared_watermark_is_taken_in_and_published() {
        let shared = Arc::new(AtomicU64::new(0));
        let mut a = Watermark::new(ms(0), None, Some(Arc::clone(&shared)));
        let mut b = Watermark::new(ms(0), None, Some(Arc::clone(&shared)));
        a.observe(70).unwrap();
        assert!(a.publish(), "moved the shared watermark");
        assert!(!a.publish(), "nothing new");
        b.catch_up();
        assert_eq!(b.value(), 70);
        assert_eq!(b.observe(69), Err(70), "a worker that saw nothing judges by the shared watermark");
        assert_eq!(b.position().0, 0, "a snapshot holds a worker's own watermark only");
        assert_eq!(a.position().0, 70);
        // A bounded input's watermark is not shared.
        let c = Watermark::new(None, None, Some(shared));
        assert!(!c.publish());
    }

    #[test]
    fn an_idle_input_follows_the_wall_clock_from_its_last_record() {
        let mut w = Watermark::new(ms(5), ms(100), None);
        let start = Instant::now();
        w.data_at(start);
        w.observe(1_000).unwrap();
        w.idle(start + StdDuration::from_millis(50), None, 0);
        assert_eq!(w.value(), 995, "not idle long enough");
        w.idle(start + StdDuration::from_millis(400), None, 0);
        assert_eq!(w.value(), 1_000 + 400 - 5);
        // An input that never sent anything follows the wall clock, or the process's largest time.
        let mut fresh = Watermark::new(ms(5), ms(100), None);
        fresh.data_at(start);
        fresh.idle(start + StdDuration::from_secs(1), None, 7_000);
        assert_eq!(fresh.value(), 6_995);
        let mut other = Watermark::new(ms(5), ms(100), None);
        other.data_at(start);
        other.idle(start + StdDuration::from_secs(1), Some(2_000), 7_000);
        assert_eq!(other.value(), 2_000 + 1_000 - 5);
    }

    #[test]
    fn a_partitioned_watermark_follows_the_slowest_partition() {
        let mut w = Watermark::new(ms(10), None, None).partitioned();
        assert!(w.is_partitioned());
        w.observe(1_000).unwrap();
        w.observe(500).unwrap();
        assert_eq!(w.value(), 0, "records alone do not move it");
        assert_eq!(w.take_block_max(), Some(1_000));
        assert_eq!(w.take_block_max(), None);
        w.follow(Some(300));
        assert_eq!(w.value(), 290);
        assert_eq!(w.observe(289), Err(290));
        w.follow(Some(100));
        assert_eq!(w.value(), 290, "never backwards");
        assert!(!Watermark::new(None, None, None).partitioned().is_partitioned());
    }

    #[test]
    fn hints_only_move_forward() {
        let mut w = Watermark::new(ms(0), None, None);
        w.hint(50);
        w.hint(20);
        assert_eq!(w.value(), 50);
        assert_eq!(w.observe(49), Err(50));
    }
}

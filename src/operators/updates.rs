//! From timestamped records to differential updates at their event-time epoch.
//!
//! A record `((key, value), time)` becomes the update `((window, key), at, value)`: the
//! value travels as the update's difference, so `count_total` sums values without a
//! `reduce` (the `explode` pattern). For the global window `at` is the record's epoch,
//! so changes are reported per event-time epoch; for a real window `at` is the window's
//! last millisecond, so each window's total appears once, as soon as the watermark
//! reaches the window's end.
//!
//! Updates are summed per worker and held until the watermark passes their time, then
//! sent once each. Records arrive stamped at the watermark, so one timestamp can hold
//! millions of them, and shipping each one to the arrangement would cost far more than
//! the sum. Holding them until they are complete means differential only ever receives
//! updates at times its frontier has passed: it can compact at once, and its memory
//! does not grow with the number of epochs still open. What is held is one sum per key
//! and time.
//!
//! A shuffled bounded input passes its watermark only at its end, so every epoch's sums
//! wait until then: past a million sums per operator they spill to sorted runs on disk
//! ([`crate::spill::TimeQueue`]) and come back in time order, a chunk per activation, so
//! memory stays flat however long the history. `KAPPA_SPILL_SUMS=N` sets the limit
//! (tests use it to force spilling on small inputs).
//!
//! The updates are a stream in the operator's own scope; a job turns them into a
//! collection in plain event time (`AsCollection`, after leaving its checkpointed region).

use std::collections::BTreeMap;
use std::hash::Hash;

use rustc_hash::FxHashMap;

use differential_dataflow::VecCollection;
use differential_dataflow::difference::Semigroup;
use serde::Serialize;
use serde::de::DeserializeOwned;
use timely::container::CapacityContainerBuilder;
use timely::dataflow::Stream;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::Capability;
use timely::dataflow::operators::generic::Operator;

use super::ingest::Timed;
use super::round::{RoundGate, Step, hold_earliest};
use super::window::{GLOBAL_END, Windowing};
use crate::exit::io_reason;
use crate::spill::TimeQueue;
use crate::time::{Duration, EventTime, Millis, epoch_of, event_frontier, round_frontier};

/// Sums per operator held in memory before they spill to disk, unless
/// `KAPPA_SPILL_SUMS` says otherwise.
const SPILL_LIMIT: usize = 1 << 20;

fn spill_limit() -> usize {
    std::env::var("KAPPA_SPILL_SUMS").ok().and_then(|v| v.parse().ok()).unwrap_or(SPILL_LIMIT)
}

/// Updates sent per activation, at most (plus the rest of the last time's): between
/// chunks differential runs and compacts.
const CHUNK: usize = 1 << 16;

/// An update for a differential collection: `((window_end, key), time, value)`.
pub type Update<K, A> = ((Millis, K), Millis, A);

/// Turns `((key, value), time)` records into updates of a differential collection of
/// keys whose differences are the values.
pub trait ToUpdates<'scope, T: EventTime, K, A> {
    /// Updates `((window_end, key), at, value)`; see the module documentation for `at`.
    /// Each is sent once the watermark has passed `at`, summed with every other update
    /// of the same key and time.
    fn to_updates(self, epoch: Duration, windowing: Windowing) -> Stream<'scope, T, Vec<Update<K, A>>>;
}

impl<'scope, T, K, A> ToUpdates<'scope, T, K, A> for Stream<'scope, T, Vec<Timed<(K, A)>>>
where
    T: EventTime,
    K: Hash + Eq + Clone + Serialize + DeserializeOwned + 'static,
    A: Semigroup + Clone + Serialize + DeserializeOwned + 'static,
{
    fn to_updates(self, epoch: Duration, windowing: Windowing) -> Stream<'scope, T, Vec<Update<K, A>>> {
        let scope = self.scope();
        let worker = scope.index();
        self.unary_frontier::<CapacityContainerBuilder<Vec<Update<K, A>>>, _, _, _>(
            Pipeline,
            "ToUpdates",
            move |initial, info| {
                let activator = scope.activator_for(info.address);
                let mut gate = RoundGate::new::<T>(worker, "ToUpdates");
                // Sums per update time, until the watermark passes it; and a capability at
                // or before the earliest of those times.
                // A shuffled bounded input holds every epoch until it ends: past
                // the spill limit, they wait on disk.
                let mut pending: TimeQueue<(Millis, K), A> = TimeQueue::new(spill_limit());
                // With snapshots, what was sent, to send again on a restart.
                let mut sent = gate.active().then(Sent::<K, A>::default);
                let mut replay = Vec::new();
                if let Some(saved) = gate.restore::<Saved<K, A>>() {
                    for (when, data, value) in saved.pending {
                        push(&mut pending, when, data, value);
                    }
                    let sent = sent.insert(saved.sent);
                    replay = sent.replay();
                }
                let first = replay.iter().map(|(_, when, _)| *when).chain(pending.first_time()).min();
                let mut held: Option<Capability<T>> = first.map(|t| gate.mint(&initial, t));
                move |(input, frontier), output| {
                    if !replay.is_empty()
                        && let Some(cap) = held.as_ref()
                    {
                        output.session(cap).give_iterator(replay.drain(..));
                    }
                    input.for_each_time(|cap, mut data| {
                        if gate.hold_at(&cap, &mut data) {
                            return;
                        }
                        hold_earliest(&mut held, cap.time().event(), || cap.retain(0));
                        for batch in data {
                            add(&mut pending, epoch, windowing, batch.drain(..));
                        }
                    });
                    gate.advance(round_frontier(&frontier.frontier()), |step| match step {
                        Step::Snapshot(snap) => {
                            let sent = sent.as_mut().expect("a gate that snapshots keeps what it sent");
                            if let Some(floor) = crate::checkpoint::snapshot::active().and_then(|s| s.floor())
                            {
                                sent.compact(floor);
                            }
                            snap.save(&SavedRef { pending: drain_all(&mut pending), sent });
                        }
                        Step::Release(cap, records) => {
                            hold_earliest(&mut held, cap.time().event(), || cap);
                            add(&mut pending, epoch, windowing, records.into_iter());
                        }
                    });
                    let Some(cap) = held.as_mut() else { return };
                    gate.lift(cap);
                    // Every update at a time the watermark has passed is complete: send it.
                    let watermark = gate.watermark(event_frontier(&frontier.frontier()));
                    // One session for all: a message per update time would cost a buffer each.
                    // At most a chunk at a time, in time order, moving the capability on after
                    // each: when a bounded input ends and releases its whole history at once,
                    // differential sees its frontier advance and compacts as it goes.
                    let mut session = output.session(cap);
                    let mut count = 0;
                    while let Some(when) = pending.first_time() {
                        if when >= watermark {
                            break;
                        }
                        if count >= CHUNK {
                            activator.activate();
                            break;
                        }
                        let popped = pending.pop_first(|data, diff| {
                            if !diff.is_zero() {
                                if let Some(sent) = sent.as_mut() {
                                    sent.note(when, &data, &diff);
                                }
                                session.give((data, when, diff));
                            }
                        });
                        match popped {
                            Ok(popped) => count += popped.map_or(0, |(_, n)| n),
                            Err(e) => {
                                crate::exit::fail(&format!("reading spilled updates: {}", io_reason(&e)))
                            }
                        }
                    }
                    drop(session);
                    match pending.first_time() {
                        Some(next) if next > cap.time().event() => cap.downgrade(&cap.time().at_event(next)),
                        Some(_) => {}
                        None => held = None,
                    }
                }
            },
        )
    }
}

/// Adds records into their update times' sums.
fn add<K, A>(
    pending: &mut TimeQueue<(Millis, K), A>,
    epoch: Duration,
    windowing: Windowing,
    records: impl Iterator<Item = Timed<(K, A)>>,
) where
    K: Hash + Eq + Clone + Serialize + DeserializeOwned,
    A: Semigroup + Clone + Serialize + DeserializeOwned,
{
    for ((key, value), time) in records {
        windowing.for_each_window(time, |end| {
            // A window's total is stamped with its last millisecond, so it is released
            // as soon as the frontier reaches its end.
            let when = if end == GLOBAL_END { epoch_of(time, epoch) } else { end - 1 };
            push(pending, when, (end, key.clone()), value.clone());
        });
    }
}

fn push<K, A>(pending: &mut TimeQueue<(Millis, K), A>, when: Millis, data: (Millis, K), value: A)
where
    K: Hash + Eq + Clone + Serialize + DeserializeOwned,
    A: Semigroup + Clone + Serialize + DeserializeOwned,
{
    if let Err(e) = pending.push(when, data, value, |sum, v| sum.plus_equals(&v)) {
        crate::exit::fail(&format!("spilling updates to disk: {}", io_reason(&e)));
    }
}

/// Every update waiting, in time order, put back after being read: a snapshot's copy.
fn drain_all<K, A>(pending: &mut TimeQueue<(Millis, K), A>) -> Vec<(Millis, (Millis, K), A)>
where
    K: Hash + Eq + Clone + Serialize + DeserializeOwned,
    A: Semigroup + Clone + Serialize + DeserializeOwned,
{
    let mut all = Vec::new();
    while let Some(when) = pending.first_time() {
        let popped = pending.pop_first(|data, value| all.push((when, data, value)));
        if let Err(e) = popped {
            crate::exit::fail(&format!("reading spilled updates: {}", io_reason(&e)));
        }
    }
    for (when, data, value) in &all {
        push(pending, *when, data.clone(), value.clone());
    }
    all
}

/// Sums by update, each `((window_end, key), value)`.
type Sums<K, A> = Vec<((Millis, K), A)>;

/// What a [`ToUpdates`] operator has sent, kept with snapshots so that a restart can
/// rebuild the collection downstream: sums at or before a time every output after it has
/// committed (sent again at that time, where the restarted sinks skip what they cause),
/// and each update since, as it was.
#[derive(Serialize, serde::Deserialize)]
#[serde(bound(
    serialize = "K: Serialize, A: Serialize",
    deserialize = "K: DeserializeOwned, A: DeserializeOwned"
))]
struct Sent<K: Hash + Eq, A> {
    /// The time the compacted sums are sent at: the latest update they hold.
    at: Millis,
    /// Sums of the global window's updates at or before `at`. A closed window's updates
    /// are dropped: nothing changes it again, and its rows are committed.
    compacted: Sums<K, A>,
    /// Updates after `at`, by time.
    recent: BTreeMap<Millis, Sums<K, A>>,
}

impl<K: Hash + Eq, A> Default for Sent<K, A> {
    fn default() -> Self {
        Sent { at: 0, compacted: Vec::new(), recent: BTreeMap::new() }
    }
}

impl<K, A> Sent<K, A>
where
    K: Hash + Eq + Clone,
    A: Semigroup + Clone,
{
    fn note(&mut self, when: Millis, data: &(Millis, K), value: &A) {
        self.recent.entry(when).or_default().push((data.clone(), value.clone()));
    }

    /// Folds the updates at or before `floor` into the compacted sums.
    fn compact(&mut self, floor: Millis) {
        let later = self.recent.split_off(&floor.saturating_add(1));
        let old = std::mem::replace(&mut self.recent, later);
        let Some(&last) = old.keys().next_back() else { return };
        let mut sums: FxHashMap<(Millis, K), A> = self.compacted.drain(..).collect();
        for (data, value) in old.into_values().flatten() {
            if data.0 != GLOBAL_END {
                continue;
            }
            match sums.get_mut(&data) {
                Some(sum) => sum.plus_equals(&value),
                None => {
                    sums.insert(data, value);
                }
            }
        }
        self.compacted = sums.into_iter().filter(|(_, v)| !v.is_zero()).collect();
        self.at = self.at.max(last);
    }

    /// The updates to send again on a restart.
    fn replay(&self) -> Vec<Update<K, A>> {
        let compacted = self.compacted.iter().map(|(d, v)| (d.clone(), self.at, v.clone()));
        let recent =
            self.recent.iter().flat_map(|(&t, u)| u.iter().map(move |(d, v)| (d.clone(), t, v.clone())));
        compacted.chain(recent).collect()
    }
}

/// A [`ToUpdates`] operator's part of a snapshot.
#[derive(serde::Deserialize)]
#[serde(bound(deserialize = "K: DeserializeOwned + Hash + Eq, A: DeserializeOwned"))]
struct Saved<K: Hash + Eq, A> {
    pending: Vec<(Millis, (Millis, K), A)>,
    sent: Sent<K, A>,
}

/// The same, borrowed, to save.
#[derive(Serialize)]
#[serde(bound(serialize = "K: Serialize + Hash + Eq, A: Serialize"))]
struct SavedRef<'a, K: Hash + Eq, A> {
    pending: Vec<(Millis, (Millis, K), A)>,
    sent: &'a Sent<K, A>,
}

/// A change to a key's value, reported by [`Changes::changes`].
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct Delta<K, A> {
    /// The key.
    pub key: K,
    /// The value retracted or asserted.
    pub value: A,
    /// The time to print: a window's end for windowed totals, the epoch of the change
    /// for the global window.
    pub time: Millis,
    /// `-1` retracts, `+1` asserts.
    pub diff: isize,
    /// The event time at which the change happened (a window changes at its last
    /// millisecond).
    pub at: Millis,
}

/// The output of `count_total` over [`ToUpdates`], as changes ready for a sink.
pub trait Changes<'scope, K, A> {
    /// Each change of the collection, in the messages differential sent it in; sinks
    /// group changes by the time they happened ([`Delta::at`]).
    fn changes(self) -> Stream<'scope, Millis, Vec<Delta<K, A>>>;
}

impl<'scope, K, A> Changes<'scope, K, A> for VecCollection<'scope, Millis, ((Millis, K), A), isize>
where
    K: Clone + 'static,
    A: Clone + 'static,
{
    fn changes(self) -> Stream<'scope, Millis, Vec<Delta<K, A>>> {
        use timely::dataflow::operators::vec::Map;
        self.inner.map(|(((window, key), value), at, diff)| Delta {
            key,
            value,
            time: if window == GLOBAL_END { at } else { window },
            diff,
            at,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use differential_dataflow::AsCollection;
    use differential_dataflow::operators::CountTotal;
    use timely::dataflow::operators::vec::Map;

    use super::*;
    use crate::operators::testing::collect;

    fn records() -> Vec<Timed<(u32, i64)>> {
        (0..600u64).map(|i| (((i % 4) as u32, (i % 5) as i64 + 1), (i * 7919) % 3000)).collect()
    }

    /// `count_total`'s changes over [`records`] as `(at, (key, value, time, diff))`.
    fn changes(
        workers: usize,
        epoch: Duration,
        windowing: Windowing,
    ) -> Vec<(Millis, (u32, i64, Millis, isize))> {
        collect(workers, vec![(0, records())], move |s| {
            s.to_updates(epoch, windowing)
                .as_collection()
                .count_total()
                .changes()
                .map(|d| (d.at, (d.key, d.value, d.time, d.diff)))
        })
        .into_iter()
        .map(|(_, (at, change))| (at, change))
        .collect()
    }

    #[test]
    fn global_totals_change_once_per_epoch_with_data() {
        let epoch = Duration(500);
        for workers in [1, 3] {
            let out = changes(workers, epoch, Windowing::Global);
            // Replaying the changes in time order gives each key's running total.
            let mut current: BTreeMap<u32, i64> = BTreeMap::new();
            let mut per_epoch: BTreeMap<(Millis, u32), i64> = BTreeMap::new();
            for ((k, v), t) in records() {
                *per_epoch.entry((t - t % 500, k)).or_default() += v;
            }
            let mut expected = Vec::new();
            let mut running: BTreeMap<u32, i64> = BTreeMap::new();
            for ((at, k), v) in per_epoch {
                let r = running.entry(k).or_default();
                if *r != 0 {
                    expected.push((at, (k, *r, at, -1)));
                }
                *r += v;
                expected.push((at, (k, *r, at, 1)));
            }
            expected.sort();
            assert_eq!(out, expected, "-w {workers}");
            for (_, (k, v, _, diff)) in out {
                *current.entry(k).or_default() += v * diff as i64;
            }
            assert_eq!(current, running);
        }
    }

    #[test]
    fn a_window_total_appears_once_when_it_closes() {
        let windowing = Windowing::Tumbling { size: Duration(1000) };
        let out = changes(2, Duration(1), windowing);
        assert!(out.iter().all(|(_, (_, _, _, diff))| *diff == 1), "no retractions for windows");
        let sum: i64 = out.iter().map(|(_, (_, v, _, _))| v).sum();
        assert_eq!(sum, records().iter().map(|((_, v), _)| v).sum::<i64>());
        assert!(out.iter().all(|(at, (_, _, end, _))| *at == end - 1 && end % 1000 == 0));
    }
}

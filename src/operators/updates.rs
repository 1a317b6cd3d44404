//! From timestamped records to differential updates at their event-time epoch.
//!
//! A record `((key, value), time)` becomes the update `((window, key), at, value)`: the
//! value travels as the update's difference, so `count_total` sums values without a
//! `reduce` (the `explode` pattern). For the global window `at` is the record's epoch,
//! so changes are reported per event-time epoch; for a real window `at` is the window's
//! last millisecond, so each window's total appears once, as soon as the watermark
//! reaches the window's end.
//!
//! Updates are summed per worker before they are exchanged: records arrive stamped at
//! the watermark, so one timestamp can hold millions of them, and shipping each one to
//! the arrangement would cost far more than the sum.

use std::hash::Hash;

use differential_dataflow::VecCollection;
use differential_dataflow::collection::AsCollection;
use differential_dataflow::difference::Semigroup;
use rustc_hash::FxHashMap;
use timely::dataflow::Stream;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::Capability;
use timely::dataflow::operators::generic::Operator;

use super::ingest::Timed;
use super::stamp::StampBy;
use super::window::{GLOBAL_END, Windowing};
use crate::time::{Duration, Millis, epoch_of};

/// Entries summed locally before they are sent on, per held timestamp.
const FLUSH_AT: usize = 1 << 16;

/// Turns `((key, value), time)` records into a differential collection of keys whose
/// differences are the values.
pub trait ToUpdates<'scope, K, A> {
    /// Updates `((window_end, key), at, value)`; see the module documentation for `at`.
    fn to_updates(
        self,
        epoch: Duration,
        windowing: Windowing,
    ) -> VecCollection<'scope, Millis, (Millis, K), A>;
}

impl<'scope, K, A> ToUpdates<'scope, K, A> for Stream<'scope, Millis, Vec<Timed<(K, A)>>>
where
    K: Hash + Eq + Clone + 'static,
    A: Semigroup + Clone + 'static,
{
    fn to_updates(
        self,
        epoch: Duration,
        windowing: Windowing,
    ) -> VecCollection<'scope, Millis, (Millis, K), A> {
        type Sums<K, A> = FxHashMap<((Millis, K), Millis), A>;
        self.unary_frontier::<timely::container::CapacityContainerBuilder<Vec<((Millis, K), Millis, A)>>, _, _, _>(
            Pipeline,
            "ToUpdates",
            move |_cap, _info| {
                let mut held: Vec<(Capability<Millis>, Sums<K, A>)> = Vec::new();
                move |(input, frontier), output| {
                    input.for_each_time(|cap, data| {
                        let at = match held.iter().position(|(c, _)| c.time() == cap.time()) {
                            Some(i) => i,
                            None => {
                                held.push((cap.retain(0), FxHashMap::default()));
                                held.len() - 1
                            }
                        };
                        let sums = &mut held[at].1;
                        for batch in data {
                            for ((key, value), time) in batch.drain(..) {
                                windowing.for_each_window(time, |end| {
                                    // A window's total is stamped with its last millisecond, so it is released as
                                    // soon as the frontier reaches the window's end.
                                    let when = if end == GLOBAL_END { epoch_of(time, epoch) } else { end - 1 };
                                    match sums.get_mut(&((end, key.clone()), when)) {
                                        Some(sum) => sum.plus_equals(&value),
                                        None => {
                                            sums.insert(((end, key.clone()), when), value.clone());
                                        }
                                    }
                                });
                            }
                        }
                    });
                    held.retain_mut(|(cap, sums)| {
                        let complete = !frontier.less_equal(cap.time());
                        if complete || sums.len() >= FLUSH_AT {
                            let mut session = output.session(cap);
                            for ((data, when), diff) in sums.drain() {
                                if !diff.is_zero() {
                                    session.give((data, when, diff));
                                }
                            }
                        }
                        !complete
                    });
                }
            },
        )
        .as_collection()
    }
}

/// A change reported by [`Changes::changes`]: `(key, value, time, diff)`.
pub type Delta<K, A> = (K, A, Millis, isize);

/// The output of `count_total` over [`ToUpdates`], as changes ready for a sink.
pub trait Changes<'scope, K, A> {
    /// Each change stamped at its own time, with the time to print: a window's end for
    /// windowed totals, the epoch of the change for the global window.
    fn changes(self) -> Stream<'scope, Millis, Vec<Delta<K, A>>>;
}

impl<'scope, K, A> Changes<'scope, K, A> for VecCollection<'scope, Millis, ((Millis, K), A), isize>
where
    K: Clone + 'static,
    A: Clone + 'static,
{
    fn changes(self) -> Stream<'scope, Millis, Vec<Delta<K, A>>> {
        use timely::dataflow::operators::vec::Map;
        self.inner.stamp_by(|(_, time, _)| *time).map(|(((window, key), value), time, diff)| {
            (key, value, if window == GLOBAL_END { time } else { window }, diff)
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use differential_dataflow::operators::CountTotal;

    use super::*;
    use crate::operators::testing::collect;

    fn records() -> Vec<Timed<(u32, i64)>> {
        (0..600u64).map(|i| (((i % 4) as u32, (i % 5) as i64 + 1), (i * 7919) % 3000)).collect()
    }

    #[test]
    fn global_totals_change_once_per_epoch_with_data() {
        let epoch = Duration(500);
        for workers in [1, 3] {
            let out = collect(workers, vec![(0, records())], move |s| {
                s.to_updates(epoch, Windowing::Global).count_total().changes()
            });
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
        let out = collect(2, vec![(0, records())], move |s| {
            s.to_updates(Duration(1), windowing).count_total().changes()
        });
        assert!(out.iter().all(|(_, (_, _, _, diff))| *diff == 1), "no retractions for windows");
        let sum: i64 = out.iter().map(|(_, (_, v, _, _))| v).sum();
        assert_eq!(sum, records().iter().map(|((_, v), _)| v).sum::<i64>());
        assert!(out.iter().all(|(at, (_, _, end, _))| *at == end - 1 && end % 1000 == 0));
    }
}

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
pub type Change<K, A> = (K, A, Millis, isize);

/// The output of `count_total` over [`ToUpdates`], as changes ready for a sink.
pub trait Changes<'scope, K, A> {
    /// Each change stamped at its own time, with the time to print: a window's end for
    /// windowed totals, the epoch of the change for the global window.
    fn changes(self) -> Stream<'scope, Millis, Vec<Change<K, A>>>;
}

impl<'scope, K, A> Changes<'scope, K, A> for VecCollection<'scope, Millis, ((Millis, K), A), isize>
where
    K: Clone + 'static,
    A: Clone + 'static,
{
    fn changes(self) -> Stream<'scope, Millis, Vec<Change<K, A>>> {
        use timely::dataflow::operators::vec::Map;
        self.inner.stamp_by(|(_, time, _)| *time).map(|(((window, key), value), time, diff)| {
            (key, value, if window == GLOBAL_END { time } else { window }, diff)
        })
    }
}

//! Batch aggregation in plain timely: fold per key and window, report each window once.
//!
//! Two stages. Each worker first folds its own records per (window, key), so only one
//! partial result per worker, window and key crosses a channel. When the worker's
//! input frontier reaches a window's end it sends the partials, stamped with the window's
//! last millisecond, to worker 0, which merges them and reports the window when that
//! time is complete everywhere. Results therefore come out once, in window order, and never
//! before the watermark passes the window.

use std::collections::BTreeMap;
use std::hash::Hash;

use differential_dataflow::difference::Semigroup;
use rustc_hash::FxHashMap;
use timely::ExchangeData;
use timely::dataflow::Stream;
use timely::dataflow::channels::pact::{Exchange, Pipeline};
use timely::dataflow::operators::Capability;
use timely::dataflow::operators::generic::Operator;

use super::ingest::Timed;
use super::window::{GLOBAL_END, Windowing};
use crate::time::Millis;

/// A result row: (time, key, value), where `time` bounds the covered event times from above.
pub type Windowed<K, A> = (Millis, K, A);

/// Per (window, key) folding of `(key, value)` records.
pub trait WindowAggregate<'scope, K, A> {
    /// Sums values per key in each window of `windowing`, reporting each window once, on
    /// worker 0, when the frontier passes its end.
    ///
    /// A window's rows carry its end as their time. The global window's rows carry one
    /// past the largest event time they cover.
    fn window_aggregate(self, windowing: Windowing) -> Stream<'scope, Millis, Vec<Windowed<K, A>>>;
}

struct Pending<K, A> {
    capability: Capability<Millis>,
    values: FxHashMap<K, A>,
    max_event: Millis,
}

impl<'scope, K, A> WindowAggregate<'scope, K, A> for Stream<'scope, Millis, Vec<Timed<(K, A)>>>
where
    K: ExchangeData + Hash + Eq + Clone,
    A: ExchangeData + Semigroup + Clone,
{
    fn window_aggregate(self, windowing: Windowing) -> Stream<'scope, Millis, Vec<Windowed<K, A>>> {
        let partials = self.unary_frontier::<timely::container::CapacityContainerBuilder<Vec<(Millis, K, A, Millis)>>, _, _, _>(
            Pipeline,
            "WindowFold",
            move |_cap, _info| {
                let mut pending: BTreeMap<Millis, Pending<K, A>> = BTreeMap::new();
                move |(input, frontier), output| {
                    input.for_each_time(|cap, data| {
                        for batch in data {
                            for ((key, value), time) in batch.drain(..) {
                                windowing.for_each_window(time, |end| {
                                    // Stamped with the window's last millisecond: released downstream as
                                    // soon as the frontier reaches the end, not an epoch later.
                                    let slot = pending.entry(end).or_insert_with(|| Pending {
                                        capability: cap.delayed(&(end - 1), 0),
                                        values: FxHashMap::default(),
                                        max_event: 0,
                                    });
                                    slot.max_event = slot.max_event.max(time);
                                    match slot.values.get_mut(&key) {
                                        Some(v) => v.plus_equals(&value),
                                        None => {
                                            slot.values.insert(key.clone(), value.clone());
                                        }
                                    }
                                });
                            }
                        }
                    });
                    // Windows close in order of their ends.
                    while let Some(entry) = pending.first_entry() {
                        if frontier.frontier().iter().any(|f| f < entry.key()) {
                            break;
                        }
                        let (end, slot) = entry.remove_entry();
                        let mut session = output.session(&slot.capability);
                        for (key, value) in slot.values {
                            session.give((end, key, value, slot.max_event));
                        }
                    }
                }
            },
        );

        partials.unary_frontier::<timely::container::CapacityContainerBuilder<Vec<Windowed<K, A>>>, _, _, _>(
            Exchange::new(|_: &(Millis, K, A, Millis)| 0u64),
            "WindowMerge",
            move |_cap, _info| {
                let mut pending: BTreeMap<Millis, Pending<K, A>> = BTreeMap::new();
                move |(input, frontier), output| {
                    input.for_each_time(|cap, data| {
                        let end = *cap.time() + 1;
                        let slot = pending.entry(end).or_insert_with(|| Pending {
                            capability: cap.retain(0),
                            values: FxHashMap::default(),
                            max_event: 0,
                        });
                        for batch in data {
                            for (_end, key, value, max_event) in batch.drain(..) {
                                slot.max_event = slot.max_event.max(max_event);
                                match slot.values.get_mut(&key) {
                                    Some(v) => v.plus_equals(&value),
                                    None => {
                                        slot.values.insert(key, value);
                                    }
                                }
                            }
                        }
                    });
                    while let Some(entry) = pending.first_entry() {
                        if frontier.less_equal(&(entry.key() - 1)) {
                            break;
                        }
                        let (end, slot) = entry.remove_entry();
                        let label = if end == GLOBAL_END { slot.max_event.saturating_add(1) } else { end };
                        let mut session = output.session(&slot.capability);
                        for (key, value) in slot.values {
                            session.give((label, key, value));
                        }
                    }
                }
            },
        )
    }
}

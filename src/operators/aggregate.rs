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
use super::round::{RoundGate, Step};
use super::window::{GLOBAL_END, Windowing};
use crate::time::{EventTime, Millis, event_frontier, round_frontier};

/// A result row: (time, key, value), where `time` bounds the covered event times from above.
pub type Windowed<K, A> = (Millis, K, A);

/// An aggregate that a record's value is added into without first becoming an aggregate
/// itself: a reading need not be widened into a full partial (sums of squares, minima,
/// …) and moved between operators just to be added once.
pub trait Accumulate<V> {
    /// The aggregate of one value.
    fn first(value: &V) -> Self;
    /// Adds one value.
    fn add(&mut self, value: &V);
}

impl<A: Semigroup + Clone> Accumulate<A> for A {
    fn first(value: &A) -> A {
        value.clone()
    }
    fn add(&mut self, value: &A) {
        self.plus_equals(value)
    }
}

/// Per (window, key) folding of `(key, value)` records into an aggregate `A`.
pub trait WindowFold<'scope, T: EventTime, K, V> {
    /// Adds values into an `A` per key in each window of `windowing`, reporting each window
    /// once, on worker 0, when the frontier passes its end (see [`WindowAggregate`]).
    fn window_fold<A>(self, windowing: Windowing) -> Stream<'scope, T, Vec<Windowed<K, A>>>
    where
        A: Accumulate<V> + ExchangeData + Semigroup + Clone;
}

/// Per (window, key) folding of `(key, value)` records.
pub trait WindowAggregate<'scope, T: EventTime, K, A> {
    /// Sums values per key in each window of `windowing`, reporting each window once, on
    /// worker 0, when the frontier passes its end.
    ///
    /// A window's rows carry its end as their time. The global window's rows carry one
    /// past the largest event time they cover.
    fn window_aggregate(self, windowing: Windowing) -> Stream<'scope, T, Vec<Windowed<K, A>>>;
}

struct Pending<T: EventTime, K, A> {
    capability: Capability<T>,
    values: FxHashMap<K, A>,
    max_event: Millis,
}

impl<'scope, T, K, A> WindowAggregate<'scope, T, K, A> for Stream<'scope, T, Vec<Timed<(K, A)>>>
where
    T: EventTime,
    K: ExchangeData + Hash + Eq + Clone,
    A: ExchangeData + Semigroup + Clone,
{
    fn window_aggregate(self, windowing: Windowing) -> Stream<'scope, T, Vec<Windowed<K, A>>> {
        self.window_fold::<A>(windowing)
    }
}

impl<'scope, T, K, V> WindowFold<'scope, T, K, V> for Stream<'scope, T, Vec<Timed<(K, V)>>>
where
    T: EventTime,
    K: ExchangeData + Hash + Eq + Clone,
    V: ExchangeData,
{
    fn window_fold<A>(self, windowing: Windowing) -> Stream<'scope, T, Vec<Windowed<K, A>>>
    where
        A: Accumulate<V> + ExchangeData + Semigroup + Clone,
    {
        let worker = self.scope().index();
        let partials = self.unary_frontier::<timely::container::CapacityContainerBuilder<Vec<(Millis, K, A, Millis)>>, _, _, _>(
            Pipeline,
            "WindowFold",
            move |initial, _info| {
                let mut gate = RoundGate::new::<T>(worker, "WindowFold");
                let mut pending = Windows::<T, K, A>::restore(&gate, &initial);
                move |(input, frontier), output| {
                    input.for_each_time(|cap, mut data| {
                        if gate.hold_at(&cap, &mut data) {
                            return;
                        }
                        for batch in data {
                            pending.fold(windowing, batch.drain(..), |last| cap.delayed(&cap.time().at_event(last), 0));
                        }
                    });
                    let lifted = gate.advance(round_frontier(&frontier.frontier()), |step| match step {
                        Step::Snapshot(snap) => snap.save(&pending.saved()),
                        Step::Release(cap, data) => {
                            pending.fold(windowing, data.into_iter(), |last| cap.delayed(&cap.time().at_event(last)))
                        }
                    });
                    if lifted {
                        pending.lift(&gate);
                    }
                    // Windows close in order of their ends, once the watermark reaches them.
                    let watermark = gate.watermark(event_frontier(&frontier.frontier()));
                    while let Some((end, slot)) = pending.pop_closed(watermark) {
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
            move |initial, _info| {
                let mut gate = RoundGate::new::<T>(worker, "WindowMerge");
                let mut pending = Windows::<T, K, A>::restore(&gate, &initial);
                move |(input, frontier), output| {
                    input.for_each_time(|cap, mut data| {
                        if gate.hold_at(&cap, &mut data) {
                            return;
                        }
                        for batch in data {
                            pending.merge(batch.drain(..), || cap.retain(0));
                        }
                    });
                    let lifted = gate.advance(round_frontier(&frontier.frontier()), |step| match step {
                        Step::Snapshot(snap) => snap.save(&pending.saved()),
                        Step::Release(cap, data) => pending.merge(data.into_iter(), || cap),
                    });
                    if lifted {
                        pending.lift(&gate);
                    }
                    let watermark = gate.watermark(event_frontier(&frontier.frontier()));
                    while let Some((end, slot)) = pending.pop_closed(watermark) {
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

/// Open windows by their end, each with a capability at its last millisecond.
struct Windows<T: EventTime, K, A> {
    open: BTreeMap<Millis, Pending<T, K, A>>,
}

/// Open windows as a snapshot holds them: `(end, values, largest event time)`.
type Saved<K, A> = Vec<(Millis, Vec<(K, A)>, Millis)>;

/// The same, borrowed, to save.
type SavedRef<'a, K, A> = Vec<(Millis, Vec<(&'a K, &'a A)>, Millis)>;

impl<T, K, A> Windows<T, K, A>
where
    T: EventTime,
    K: ExchangeData + Hash + Eq + Clone,
    A: ExchangeData + Semigroup + Clone,
{
    /// The windows the gate's participant saved in the restored round, or none; their
    /// capabilities come from the operator's `initial` one.
    fn restore<D>(gate: &RoundGate<Capability<T>, D>, initial: &Capability<T>) -> Self {
        let mut open = BTreeMap::new();
        for (end, values, max_event) in gate.restore::<Saved<K, A>>().unwrap_or_default() {
            let capability = gate.mint(initial, end - 1);
            open.insert(end, Pending { capability, values: values.into_iter().collect(), max_event });
        }
        Windows { open }
    }

    /// The open windows, to save.
    fn saved(&self) -> SavedRef<'_, K, A> {
        self.open.iter().map(|(&end, p)| (end, p.values.iter().collect(), p.max_event)).collect()
    }

    /// Adds `(key, value)` records into each of their windows; `mint` makes a new
    /// window's capability at its last millisecond (in the records' round).
    fn fold<V>(
        &mut self,
        windowing: Windowing,
        records: impl Iterator<Item = Timed<(K, V)>>,
        mint: impl Fn(Millis) -> Capability<T>,
    ) where
        A: Accumulate<V>,
    {
        for ((key, value), time) in records {
            windowing.for_each_window(time, |end| {
                // Stamped with the window's last millisecond: released downstream as
                // soon as the frontier reaches the end, not an epoch later.
                let slot = self.open.entry(end).or_insert_with(|| Pending {
                    capability: mint(end - 1),
                    values: FxHashMap::default(),
                    max_event: 0,
                });
                slot.max_event = slot.max_event.max(time);
                match slot.values.get_mut(&key) {
                    Some(v) => v.add(&value),
                    None => {
                        slot.values.insert(key.clone(), A::first(&value));
                    }
                }
            });
        }
    }

    /// Adds workers' partial sums `(end, key, value, largest event time)`; `cap` is the
    /// capability of their message, at the window's last millisecond.
    fn merge(
        &mut self,
        partials: impl Iterator<Item = (Millis, K, A, Millis)>,
        cap: impl FnOnce() -> Capability<T>,
    ) {
        let mut cap = Some(cap);
        for (end, key, value, max_event) in partials {
            let slot = self.open.entry(end).or_insert_with(|| Pending {
                capability: (cap.take().expect("one window per message"))(),
                values: FxHashMap::default(),
                max_event: 0,
            });
            slot.max_event = slot.max_event.max(max_event);
            match slot.values.get_mut(&key) {
                Some(v) => v.plus_equals(&value),
                None => {
                    slot.values.insert(key, value);
                }
            }
        }
    }

    /// Moves every window's capability to the gate's round (see [`RoundGate::lift`]).
    fn lift<D>(&mut self, gate: &RoundGate<Capability<T>, D>) {
        for slot in self.open.values_mut() {
            gate.lift(&mut slot.capability);
        }
    }

    /// The first window, if the watermark has reached its end.
    fn pop_closed(&mut self, watermark: Millis) -> Option<(Millis, Pending<T, K, A>)> {
        let entry = self.open.first_entry()?;
        (watermark >= *entry.key()).then(|| entry.remove_entry())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::operators::testing::collect;
    use crate::time::Duration;

    /// Records `((key, 1), time)` for times 0, 7, 14, … below 1000, keys by time.
    fn records() -> Vec<Timed<(u32, i64)>> {
        (0..1000u64).step_by(7).map(|t| (((t % 3) as u32, 1i64), t)).collect()
    }

    fn reference(size: u64) -> Vec<(Millis, Windowed<u32, i64>)> {
        let mut sums: BTreeMap<(Millis, u32), i64> = BTreeMap::new();
        for ((k, v), t) in records() {
            *sums.entry((t - t % size + size, k)).or_default() += v;
        }
        sums.into_iter().map(|((end, k), v)| (end - 1, (end, k, v))).collect()
    }

    #[test]
    fn each_window_is_reported_once_at_its_last_millisecond() {
        let windowing = Windowing::Tumbling { size: Duration(100) };
        for workers in [1, 3] {
            // All at once, as a bounded input with its watermark held at 0.
            let once = collect(workers, vec![(0, records())], move |s| s.window_aggregate(windowing));
            assert_eq!(once, reference(100), "-w {workers}");
            // With the watermark moving as the records come in time order.
            let moving = records().chunks(10).map(|c| (c[0].1, c.to_vec())).collect();
            let moving = collect(workers, moving, move |s| s.window_aggregate(windowing));
            assert_eq!(moving, reference(100), "-w {workers}, moving watermark");
        }
    }

    #[test]
    fn the_global_window_is_labelled_one_past_the_last_event() {
        let out = collect(2, vec![(0, records())], |s| s.window_aggregate(Windowing::Global));
        let total: i64 = out.iter().map(|(_, (_, _, v))| v).sum();
        assert_eq!(total, records().len() as i64);
        assert!(out.iter().all(|(_, (label, _, _))| *label == 994 + 1), "{out:?}");
    }
}

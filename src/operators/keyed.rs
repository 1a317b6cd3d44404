//! Keyed ordered state: each key's events handed to its logic in event-time order.
//!
//! Rules that look at a key's history (a velocity rule, an anomaly detector, an alert
//! episode) must see the key's events in event-time order, whatever order they arrived
//! in, or their output would depend on delivery. This operator routes events by key,
//! buffers them, and when the frontier passes their time hands each key's newly
//! complete events to the key's [`KeyLogic`], sorted by `(time, value)`.
//!
//! **Why this is deterministic.** An event is released only when the frontier has
//! passed its time, and then every event of that key with an earlier or equal time has
//! arrived (a later arrival would have been late at ingest). So each call to
//! [`KeyLogic::advance`] sees exactly the events with times in `[previous frontier,
//! frontier)`, sorted, and the sequence of calls depends only on the data and on which
//! frontiers the operator observes. A logic whose output depends only on the events it
//! has seen (and on the frontier only to decide *when* to emit, never *what*) emits the
//! same rows for any worker count, process count, epoch or delivery.
//!
//! **When rows come out.** [`KeyLogic::advance`] returns the earliest time at which the
//! key may still emit without new events (a burst that is still open, a sensor that may
//! go silent); the operator holds a capability no later than that, and no later than
//! any buffered event. A row may be stamped with any time at or after the earliest
//! event just handed over or the wake time the logic last returned.
//!
//! **State.** A key whose logic [`is_empty`](KeyLogic::is_empty), with nothing
//! buffered and no wake time, is dropped: state behind the watermark does not grow
//! with the history.

use std::hash::{Hash, Hasher};

use rustc_hash::{FxHashMap, FxHasher};
use timely::ExchangeData;
use timely::container::CapacityContainerBuilder;
use timely::dataflow::Stream;
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::Capability;
use timely::dataflow::operators::generic::Operator;

use super::ingest::Timed;
use crate::time::{EventTime, Millis, event_frontier};

/// A key's logic, fed its events in event-time order.
pub trait KeyLogic<V>: 'static {
    /// The rows it emits.
    type Out;
    /// Takes the key's events whose times the `frontier` has passed, sorted by
    /// `(time, value)` (it may drain them), and pushes `(time, row)` pairs to `out`.
    /// Returns the earliest time at which it may emit again without new events.
    fn advance(
        &mut self,
        events: &mut Vec<(Millis, V)>,
        frontier: Millis,
        out: &mut Vec<(Millis, Self::Out)>,
    ) -> Option<Millis>;
    /// Whether the logic holds nothing worth keeping, so the key can be forgotten.
    fn is_empty(&self) -> bool;
}

/// Runs a [`KeyLogic`] per key over `((key, value), time)` records.
pub trait KeyedOrdered<'scope, T: EventTime, K, V> {
    /// Routes records by key and feeds each key's logic (made by `new` for a key seen
    /// for the first time, or again after it was dropped) in event-time order.
    fn keyed_ordered<L: KeyLogic<V>>(
        self,
        name: &str,
        new: impl Fn(&K) -> L + 'static,
    ) -> Stream<'scope, T, Vec<L::Out>>
    where
        L::Out: Clone;
}

/// A key's logic and what is buffered for it.
struct Slot<L, V> {
    logic: L,
    pending: Vec<(Millis, V)>,
    wake: Option<Millis>,
}

/// The hash that routes a key to its worker.
pub fn key_hash<K: Hash>(key: &K) -> u64 {
    let mut h = FxHasher::default();
    key.hash(&mut h);
    h.finish()
}

impl<'scope, T, K, V> KeyedOrdered<'scope, T, K, V> for Stream<'scope, T, Vec<Timed<(K, V)>>>
where
    T: EventTime,
    K: ExchangeData + Hash + Eq + Clone,
    V: ExchangeData + Ord,
{
    fn keyed_ordered<L: KeyLogic<V>>(
        self,
        name: &str,
        new: impl Fn(&K) -> L + 'static,
    ) -> Stream<'scope, T, Vec<L::Out>>
    where
        L::Out: Clone,
    {
        self.unary_frontier::<CapacityContainerBuilder<Vec<L::Out>>, _, _, _>(
            Exchange::new(|((key, _), _): &Timed<(K, V)>| key_hash(key)),
            name,
            move |_cap, _info| {
                let mut keys: FxHashMap<K, Slot<L, V>> = FxHashMap::default();
                let mut held: Option<Capability<T>> = None;
                let mut seen_frontier: Option<Millis> = None;
                let mut released: Vec<(Millis, V)> = Vec::new();
                let mut out: Vec<(Millis, L::Out)> = Vec::new();
                move |(input, frontier), output| {
                    input.for_each_time(|cap, data| {
                        // Events are at or after their message's time: holding the
                        // earliest message time covers them all.
                        if held.as_ref().is_none_or(|h| cap.time().event() < h.time().event()) {
                            held = Some(cap.retain(0));
                        }
                        for batch in data {
                            for ((key, value), time) in batch.drain(..) {
                                let slot = keys.entry(key).or_insert_with_key(|k| Slot {
                                    logic: new(k),
                                    pending: Vec::new(),
                                    wake: None,
                                });
                                slot.pending.push((time, value));
                            }
                        }
                    });
                    let f = event_frontier(&frontier.frontier());
                    // Nothing new can be released until the frontier moves.
                    if seen_frontier == Some(f) {
                        return;
                    }
                    seen_frontier = Some(f);
                    let Some(cap) = held.as_mut() else { return };
                    let mut next: Option<Millis> = None;
                    let mut earliest = |t: Millis| next = Some(next.map_or(t, |n: Millis| n.min(t)));
                    keys.retain(|_key, slot| {
                        slot.pending.sort();
                        let done = slot.pending.partition_point(|e| e.0 < f);
                        if done > 0 || slot.wake.is_some_and(|w| w <= f) {
                            released.clear();
                            released.extend(slot.pending.drain(..done));
                            slot.wake = slot.logic.advance(&mut released, f, &mut out);
                        }
                        if let Some(w) = slot.wake {
                            earliest(w);
                        }
                        if let Some(e) = slot.pending.first() {
                            earliest(e.0);
                        }
                        !(slot.logic.is_empty() && slot.pending.is_empty() && slot.wake.is_none())
                    });
                    out.sort_by_key(|(at, _)| *at);
                    for run in out.chunk_by(|a, b| a.0 == b.0) {
                        output
                            .session(&cap.delayed(&cap.time().at_event(run[0].0)))
                            .give_iterator(run.iter().map(|(_, r)| r.clone()));
                    }
                    out.clear();
                    match next {
                        // Later rows come at or after `w`; new input brings its own capability.
                        Some(w) => {
                            let w = w.min(f);
                            if w > cap.time().event() {
                                cap.downgrade(&cap.time().at_event(w));
                            }
                        }
                        None => held = None,
                    }
                }
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::operators::testing::collect;

    /// Emits, per event, how many events of the key came before it, at the event's time;
    /// forgets a key once the frontier is 100 past its last event.
    struct Seq {
        key: u32,
        seen: u64,
        last: Option<Millis>,
    }

    impl KeyLogic<u64> for Seq {
        type Out = (u32, Millis, u64, u64);
        fn advance(
            &mut self,
            events: &mut Vec<(Millis, u64)>,
            frontier: Millis,
            out: &mut Vec<(Millis, Self::Out)>,
        ) -> Option<Millis> {
            for (t, v) in events.drain(..) {
                out.push((t, (self.key, t, v, self.seen)));
                self.seen += 1;
                self.last = Some(t);
            }
            if self.last.is_some_and(|l| l + 100 <= frontier) {
                self.last = None;
            }
            None
        }
        fn is_empty(&self) -> bool {
            self.last.is_none()
        }
    }

    type Event = Timed<(u32, u64)>;
    type Row = (Millis, (u32, Millis, u64, u64));

    fn events() -> Vec<Event> {
        (0..300u64).map(|i| (((i % 3) as u32, i), 1_000 + (i * 7919) % 200 + (i / 100) * 300)).collect()
    }

    fn sequence(input: Vec<(Millis, Vec<Event>)>, workers: usize) -> Vec<Row> {
        collect(workers, input, |s| s.keyed_ordered("Seq", |k: &u32| Seq { key: *k, seen: 0, last: None }))
    }

    #[test]
    fn each_key_sees_its_events_in_time_order_whatever_the_delivery() {
        let all = sequence(vec![(0, events())], 1);
        assert_eq!(all.len(), 300);
        for key in 0..3 {
            let seen: Vec<_> = all.iter().filter(|(_, r)| r.0 == key).map(|(_, r)| (r.1, r.2, r.3)).collect();
            let mut sorted = seen.clone();
            sorted.sort();
            assert_eq!(
                seen.iter().map(|s| s.2).collect::<Vec<_>>(),
                (0..seen.len() as u64).collect::<Vec<_>>()
            );
            assert_eq!(seen, sorted, "key {key}: positions follow (time, value) order");
        }
        // Delivered in blocks with a watermark that trails by 250 ms, on three workers:
        // the keys that are dropped in between start counting again, so compare only
        // the order of events, which must be the same.
        let mut moving = Vec::new();
        let mut max = 0;
        for block in events().chunks(20) {
            max = block.iter().map(|e| e.1).max().unwrap().max(max);
            moving.push((
                max.saturating_sub(250).max(moving.last().map_or(0, |m: &(u64, Vec<_>)| m.0)),
                block.to_vec(),
            ));
        }
        let streamed = sequence(moving, 3);
        let order = |v: &[Row]| -> Vec<(u32, Millis, u64)> {
            let mut o: Vec<_> = v.iter().map(|(_, r)| (r.0, r.1, r.2)).collect();
            o.sort();
            o
        };
        assert_eq!(order(&streamed), order(&all));
        assert!(streamed.iter().all(|(at, r)| *at == r.1), "rows stamped at their event time");
    }

    #[test]
    fn idle_keys_are_forgotten() {
        // Key 0's events are 1000 apart: with the frontier moving past each, its state is
        // dropped and rebuilt, so every event is the first one its new state sees.
        let input: Vec<_> = (0..5u64).map(|i| (i * 1000, vec![((0u32, i), i * 1000)])).collect();
        let out = sequence(input, 1);
        assert_eq!(out.iter().map(|(_, r)| r.3).collect::<Vec<_>>(), vec![0, 0, 0, 0, 0]);
    }
}

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
//! with the history. So is a key whose logic's [`forget_at`](KeyLogic::forget_at) the
//! frontier has passed without an event of it (a key seen once, whose logic is never
//! called again): each time the number of keys has doubled since the last sweep, one
//! pass over the keys drops those (a pass in memory order costs less than dropping keys
//! one by one in time order, each a cache miss, and it is paid for by the keys added
//! since), so at most about twice the live keys are held. Forgetting holds no
//! capability and never holds output back. Once the input has ended, every key with
//! nothing buffered and no wake time is dropped, since nothing can wake it again.
//!
//! **Snapshots.** The operator takes part in snapshots ([`super::round`]): at each
//! checkpoint round it saves every key's logic, wake time and buffered events, and a
//! restart rebuilds them. So a logic must be serializable.
//!
//! **Cost.** Buffered events live in a few time-sorted runs, not in a buffer per key,
//! and woken keys in a heap of wake times: when the frontier moves, the work is in
//! proportion to the events released and the keys they and the wake times touch, not
//! to the number of keys held. A frontier that jumps far (the end of a bounded input,
//! which holds everything until then) is taken in slices of event time of about
//! 65,536 events, as if it had moved slice by slice, so that downstream operators
//! consume each slice before the next is made: the burst's memory is a slice, not
//! the history. Slices are frontiers the operator observes, so this is deterministic
//! for the same reason as above.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::hash::{Hash, Hasher};

use rustc_hash::{FxHashMap, FxHasher};
use serde::Serialize;
use serde::de::DeserializeOwned;
use timely::ExchangeData;
use timely::container::CapacityContainerBuilder;
use timely::dataflow::Stream;
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::Capability;
use timely::dataflow::operators::generic::Operator;

use super::ingest::Timed;
use super::round::{RoundGate, Step, hold_earliest};
use crate::time::{EventTime, Millis, event_frontier, round_frontier};

/// A key's logic, fed its events in event-time order; serializable for snapshots.
pub trait KeyLogic<V>: Serialize + DeserializeOwned + 'static {
    /// The rows it emits.
    type Out;
    /// Whether its rows name their own event time (a sink's
    /// [`group_time`](crate::sink::Tabular::group_time), or a [`Timed`] row's time), so
    /// that all rows of an activation may travel in one message stamped with the earliest
    /// row's time. When false (the default) each distinct time is a message of its own,
    /// which costs a buffer each when every row has its own time.
    const ROWS_NAME_THEIR_TIME: bool = false;
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
    /// The frontier from which on, if no event of the key came, the logic emits nothing
    /// more and treats any later event as a new logic would: the key may then be
    /// dropped without another call. `None` (the default): only
    /// [`is_empty`](Self::is_empty), asked after a call, drops it.
    fn forget_at(&self) -> Option<Millis> {
        None
    }
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

/// The hash that routes a key to its worker.
pub fn key_hash<K: Hash>(key: &K) -> u64 {
    let mut h = FxHasher::default();
    key.hash(&mut h);
    h.finish()
}

/// Events released to the keys' logic per activation, at most (rounded up to a whole
/// time): the rest wait for the next activation, which comes at once.
const RELEASE_LIMIT: usize = 1 << 16;

/// A key's logic, its key (to forget it), how many of its events are buffered, and
/// when it asked to be woken.
struct Slot<K, L> {
    key: K,
    logic: L,
    pending: usize,
    wake: Option<Millis>,
}

/// An event waiting for the frontier: its time, its key's slot and where its value is.
type Waiting = (Millis, u32, u32);

/// Keys as a snapshot holds them: key, logic, wake time and buffered events.
type Saved<K, L, V> = Vec<(K, L, Option<Millis>, Vec<(Millis, V)>)>;

/// The same, borrowed, to save.
type SavedRef<'a, K, L, V> = Vec<(&'a K, &'a L, Option<Millis>, Vec<(Millis, &'a V)>)>;

/// Items by index, with freed indexes used again: the keys' slots, and the values of
/// the events waiting, which stay in place while their small [`Waiting`] entries are
/// sorted and merged, so a large value is moved once in and once out.
struct Slab<T> {
    items: Vec<Option<T>>,
    free: Vec<u32>,
}

impl<T> Slab<T> {
    fn new() -> Self {
        Slab { items: Vec::new(), free: Vec::new() }
    }

    fn insert(&mut self, item: T) -> u32 {
        match self.free.pop() {
            Some(i) => {
                self.items[i as usize] = Some(item);
                i
            }
            None => {
                self.items.push(Some(item));
                u32::try_from(self.items.len() - 1).expect("fewer than 2^32 items per worker")
            }
        }
    }

    fn get(&self, i: u32) -> &T {
        self.items[i as usize].as_ref().expect("a held item")
    }

    fn get_mut(&mut self, i: u32) -> &mut T {
        self.items[i as usize].as_mut().expect("a held item")
    }

    fn take(&mut self, i: u32) -> T {
        let item = self.items[i as usize].take().expect("a held item");
        self.free.push(i);
        if self.free.len() == self.items.len() {
            // All taken: the memory a burst held goes back.
            *self = Slab::new();
        }
        item
    }
}

/// Buffered events of all keys, in runs sorted by time with the latest first, so the
/// events the frontier has passed are at the ends of the runs.
///
/// Arrivals are sorted into a new run when the frontier moves; a run at least half as
/// long as the one before it is merged into it, so there are O(log n) runs and each
/// event is merged O(log n) times. Releasing costs in proportion to the events
/// released, not to the keys or events held.
struct Runs {
    fresh: Vec<Waiting>,
    runs: Vec<Vec<Waiting>>,
}

impl Runs {
    fn new() -> Self {
        Runs { fresh: Vec::new(), runs: Vec::new() }
    }

    fn push(&mut self, event: Waiting) {
        self.fresh.push(event);
    }

    /// Moves the events with times before `frontier` to `due`, earliest first, but
    /// stops at the first time after `limit` events: returns the time up to which all
    /// events were moved (`frontier`, or the time it stopped at).
    fn release(&mut self, frontier: Millis, limit: usize, due: &mut Vec<Waiting>) -> Millis {
        if !self.fresh.is_empty() {
            let mut run = std::mem::take(&mut self.fresh);
            run.sort_unstable_by_key(|e| Reverse(e.0));
            self.runs.push(run);
            while let [.., older, newer] = &self.runs[..]
                && newer.len() * 2 >= older.len()
            {
                let newer = self.runs.pop().expect("two runs");
                let older = self.runs.pop().expect("two runs");
                self.runs.push(merge(older, newer));
            }
        }
        let waiting = |run: &Vec<Waiting>| run.len() - run.partition_point(|e| e.0 >= frontier);
        let upto = if self.runs.iter().map(waiting).sum::<usize>() <= limit {
            for run in &mut self.runs {
                while run.last().is_some_and(|e| e.0 < frontier) {
                    due.push(run.pop().expect("a last event"));
                }
            }
            frontier
        } else {
            // Earliest first across the runs, and never half of a time.
            let mut taken = 0;
            loop {
                let next = self
                    .runs
                    .iter()
                    .enumerate()
                    .filter_map(|(i, run)| run.last().map(|e| (e.0, i)))
                    .min()
                    .filter(|e| e.0 < frontier);
                let Some(next) = next else { break frontier };
                if taken >= limit && due.last().is_none_or(|e| e.0 < next.0) {
                    break next.0;
                }
                due.push(self.runs[next.1].pop().expect("a last event"));
                taken += 1;
            }
        };
        for run in &mut self.runs {
            // A long-lived run that mostly drained gives its memory back.
            if run.capacity() > 4 * run.len() + 1024 {
                run.shrink_to_fit();
            }
        }
        self.runs.retain(|run| !run.is_empty());
        upto
    }

    /// Every event buffered, in no particular order.
    fn iter(&self) -> impl Iterator<Item = &Waiting> {
        self.fresh.iter().chain(self.runs.iter().flatten())
    }

    /// The earliest time buffered.
    fn earliest(&self) -> Option<Millis> {
        let fresh = self.fresh.iter().map(|e| e.0).min();
        self.runs.iter().filter_map(|run| run.last().map(|e| e.0)).chain(fresh).min()
    }
}

/// The keys a worker holds and their buffered events.
struct Keys<K, L, V> {
    /// Each key's slot, while it may be looked up.
    index: FxHashMap<K, u32>,
    slots: Slab<Slot<K, L>>,
    runs: Runs,
    values: Slab<V>,
}

impl<K: Hash + Eq + Clone, L, V> Keys<K, L, V> {
    fn new() -> Self {
        Keys { index: FxHashMap::default(), slots: Slab::new(), runs: Runs::new(), values: Slab::new() }
    }

    /// Buffers events until the frontier passes them; `new` makes a new key's logic.
    fn buffer(&mut self, events: impl Iterator<Item = Timed<(K, V)>>, new: &impl Fn(&K) -> L) {
        for ((key, value), time) in events {
            let slots = &mut self.slots;
            let s = *self.index.entry(key).or_insert_with_key(|key| {
                slots.insert(Slot { logic: new(key), key: key.clone(), pending: 0, wake: None })
            });
            slots.get_mut(s).pending += 1;
            self.runs.push((time, s, self.values.insert(value)));
        }
    }

    /// Every key's logic, wake time and buffered events, to save.
    fn saved(&self) -> SavedRef<'_, K, L, V> {
        let mut at = vec![usize::MAX; self.slots.items.len()];
        let mut out: SavedRef<'_, K, L, V> = Vec::new();
        for (s, slot) in self.slots.items.iter().enumerate() {
            if let Some(slot) = slot {
                at[s] = out.len();
                out.push((&slot.key, &slot.logic, slot.wake, Vec::new()));
            }
        }
        for &(time, s, v) in self.runs.iter() {
            out[at[s as usize]].3.push((time, self.values.get(v)));
        }
        out
    }
}

/// Drops every key whose [`KeyLogic::forget_at`] is at or before `frontier`, up to
/// which it has been handed all its events, and that has no events buffered and no wake
/// time; returns how many keys are left.
fn forget<K: Hash + Eq, L>(
    slots: &mut Slab<Slot<K, L>>,
    index: &mut FxHashMap<K, u32>,
    frontier: Millis,
    forget_at: impl Fn(&L) -> Option<Millis>,
) -> usize {
    let idle: Vec<u32> = (0..slots.items.len() as u32)
        .filter(|&s| {
            slots.items[s as usize].as_ref().is_some_and(|slot| {
                slot.pending == 0
                    && slot.wake.is_none()
                    && forget_at(&slot.logic).is_some_and(|t| t <= frontier)
            })
        })
        .collect();
    if !idle.is_empty() {
        let mut gone = vec![false; slots.items.len()];
        for s in idle {
            gone[s as usize] = true;
            slots.take(s);
        }
        index.retain(|_, s| !gone[*s as usize]);
    }
    index.len()
}

/// Merges two runs sorted latest first.
fn merge(a: Vec<Waiting>, b: Vec<Waiting>) -> Vec<Waiting> {
    let mut merged = Vec::with_capacity(a.len() + b.len());
    let (mut a, mut b) = (a.into_iter().peekable(), b.into_iter().peekable());
    loop {
        let next = match (a.peek(), b.peek()) {
            (Some(x), Some(y)) if x.0 >= y.0 => a.next(),
            (Some(_), Some(_)) => b.next(),
            (Some(_), None) => a.next(),
            (None, Some(_)) => b.next(),
            (None, None) => break,
        };
        merged.push(next.expect("a peeked event"));
    }
    merged
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
        let scope = self.scope();
        let kind = name.to_owned();
        self.unary_frontier::<CapacityContainerBuilder<Vec<L::Out>>, _, _, _>(
            Exchange::new(|((key, _), _): &Timed<(K, V)>| key_hash(key)),
            name,
            move |initial, info| {
                let activator = scope.activator_for(info.address);
                let mut gate = RoundGate::<Capability<T>, Timed<(K, V)>>::new::<T>(scope.index(), &kind);
                let mut keys: Keys<K, L, V> = Keys::new();
                // Wake times, with stale entries (the slot's wake moved) skipped when popped.
                let mut wakes: BinaryHeap<Reverse<(Millis, u32)>> = BinaryHeap::new();
                // Keys held after the last sweep of forgettable ones: the next comes when
                // their number has doubled.
                let mut swept = 0;
                for (key, logic, wake, events) in gate.restore::<Saved<K, L, V>>().unwrap_or_default() {
                    let s = keys.slots.insert(Slot { key: key.clone(), logic, pending: events.len(), wake });
                    keys.index.insert(key, s);
                    if let Some(w) = wake {
                        wakes.push(Reverse((w, s)));
                    }
                    for (time, value) in events {
                        keys.runs.push((time, s, keys.values.insert(value)));
                    }
                }
                let restored =
                    keys.runs.earliest().into_iter().chain(wakes.peek().map(|Reverse((t, _))| *t)).min();
                let mut held: Option<Capability<T>> = restored.map(|at| gate.mint(&initial, at));
                drop(initial);
                // The frontier the keys have been advanced to.
                let mut reached: Option<Millis> = None;
                let mut due: Vec<Waiting> = Vec::new();
                let mut woken: Vec<u32> = Vec::new();
                let mut released: Vec<(Millis, V)> = Vec::new();
                let mut out: Vec<(Millis, L::Out)> = Vec::new();
                move |(input, frontier), output| {
                    input.for_each_time(|cap, mut data| {
                        if gate.hold_at(&cap, &mut data) {
                            return;
                        }
                        hold_earliest(&mut held, cap.time().event(), || cap.retain(0));
                        for batch in data {
                            keys.buffer(batch.drain(..), &new);
                        }
                    });
                    let lifted = gate.advance(round_frontier(&frontier.frontier()), |step| match step {
                        Step::Snapshot(snap) => snap.save(&keys.saved()),
                        Step::Release(cap, data) => {
                            hold_earliest(&mut held, cap.time().event(), || cap);
                            keys.buffer(data.into_iter(), &new);
                        }
                    });
                    if lifted && let Some(cap) = held.as_mut() {
                        gate.lift(cap);
                    }
                    let Keys { index, slots, runs, values } = &mut keys;
                    let target = gate.watermark(event_frontier(&frontier.frontier()));
                    // Nothing new can be released until the frontier moves.
                    if reached == Some(target) {
                        return;
                    }
                    let Some(cap) = held.as_mut() else {
                        // Nothing buffered: every key has seen all its events before `target`.
                        if index.len() >= 2 * swept {
                            swept = forget(slots, index, target, <L as KeyLogic<V>>::forget_at);
                        }
                        reached = Some(target);
                        return;
                    };
                    // Once the input has ended no key is looked up again: the index goes
                    // whole, not key by key as the keys are released.
                    let ended = frontier.is_empty();
                    if ended && !index.is_empty() {
                        *index = FxHashMap::default();
                    }
                    let live = |slots: &Slab<Slot<K, L>>, (t, s): (Millis, u32)| {
                        slots.items[s as usize].as_ref().is_some_and(|slot| slot.wake == Some(t))
                    };
                    // A far jump is taken in slices; the next comes at once.
                    let f = runs.release(target, RELEASE_LIMIT, &mut due);
                    reached = Some(f);
                    if f < target {
                        activator.activate();
                    }
                    while let Some(&Reverse((t, s))) = wakes.peek()
                        && t <= f
                    {
                        wakes.pop();
                        if live(slots, (t, s)) {
                            woken.push(s);
                        }
                    }
                    // Each key's events in (time, value) order; keys in slot order.
                    due.sort_unstable_by(|a, b| {
                        (a.1, a.0).cmp(&(b.1, b.0)).then_with(|| values.get(a.2).cmp(values.get(b.2)))
                    });
                    woken.sort_unstable();
                    woken.dedup();
                    let mut events = due.drain(..).peekable();
                    let mut woken_it = woken.drain(..).peekable();
                    loop {
                        let s = match (events.peek().map(|e| e.1), woken_it.peek()) {
                            (None, None) => break,
                            (Some(e), None) => e,
                            (None, Some(&w)) => w,
                            (Some(e), Some(&w)) => e.min(w),
                        };
                        while woken_it.next_if_eq(&s).is_some() {}
                        released.clear();
                        while let Some((time, _, value)) = events.next_if(|e| e.1 == s) {
                            released.push((time, values.take(value)));
                        }
                        let slot = slots.get_mut(s);
                        slot.pending -= released.len();
                        slot.wake = slot.logic.advance(&mut released, f, &mut out);
                        if let Some(w) = slot.wake {
                            wakes.push(Reverse((w, s)));
                        }

                        // After the input's end a key with nothing pending and no wake is
                        // never visited again, whatever its logic holds.
                        if (ended || slot.logic.is_empty()) && slot.pending == 0 && slot.wake.is_none() {
                            let slot = slots.take(s);
                            if !ended {
                                index.remove(&slot.key);
                            }
                        }
                    }
                    if L::ROWS_NAME_THEIR_TIME
                        && let Some(at) = out.iter().map(|(at, _)| *at).min()
                    {
                        let at_cap = cap.delayed(&cap.time().at_event(at));
                        output.session(&at_cap).give_iterator(out.drain(..).map(|(_, row)| row));
                    }
                    out.sort_by_key(|(at, _)| *at);
                    let mut rows = out.drain(..).peekable();
                    while let Some((at, row)) = rows.next() {
                        let at_cap = cap.delayed(&cap.time().at_event(at));
                        let mut session = output.session(&at_cap);
                        session.give(row);
                        while let Some((_, row)) = rows.next_if(|r| r.0 == at) {
                            session.give(row);
                        }
                    }
                    if !ended && index.len() >= 2 * swept {
                        swept = forget(slots, index, f, <L as KeyLogic<V>>::forget_at);
                    }
                    while let Some(&Reverse(w)) = wakes.peek()
                        && !live(slots, w)
                    {
                        wakes.pop();
                    }
                    let next =
                        runs.earliest().into_iter().chain(wakes.peek().map(|Reverse((t, _))| *t)).min();
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
    use std::collections::BTreeMap;

    use super::*;
    use crate::operators::testing::collect;

    /// Emits, per event, how many events of the key came before it, at the event's time;
    /// forgets a key once the frontier is 100 past its last event.
    #[derive(serde::Serialize, serde::Deserialize)]
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

    /// Numbers each key's events in the order it sees them; never forgets a key.
    #[derive(serde::Serialize, serde::Deserialize)]
    struct Count {
        key: u32,
        seen: u64,
    }

    impl KeyLogic<u64> for Count {
        type Out = (u32, Millis, u64, u64);
        fn advance(
            &mut self,
            events: &mut Vec<(Millis, u64)>,
            _frontier: Millis,
            out: &mut Vec<(Millis, Self::Out)>,
        ) -> Option<Millis> {
            for (t, v) in events.drain(..) {
                out.push((t, (self.key, t, v, self.seen)));
                self.seen += 1;
            }
            None
        }
        fn is_empty(&self) -> bool {
            false
        }
    }

    #[test]
    fn a_frontier_jump_over_more_than_a_release_releases_every_key_in_order() {
        // Three releases' worth of events, many sharing a time, all held until the
        // input ends: the end is taken in slices, and each key still sees its events
        // in (time, value) order, numbered as a plain fold numbers them.
        let n = 3 * RELEASE_LIMIT as u64;
        let events: Vec<Event> =
            (0..n).map(|i| (((i * 31 % 5_000) as u32, i), 10_000 + (i * 7_919) % 40_000)).collect();
        let mut reference: Vec<Row> = Vec::new();
        let mut by_key: BTreeMap<u32, Vec<(Millis, u64)>> = BTreeMap::new();
        for ((k, v), t) in &events {
            by_key.entry(*k).or_default().push((*t, *v));
        }
        for (k, mut seen) in by_key {
            seen.sort();
            reference.extend(seen.into_iter().enumerate().map(|(i, (t, v))| (t, (k, t, v, i as u64))));
        }
        reference.sort();
        for workers in [1, 2] {
            let out = collect(workers, vec![(0, events.clone())], |s| {
                s.keyed_ordered("Count", |k: &u32| Count { key: *k, seen: 0 })
            });
            assert_eq!(out.len(), reference.len(), "-w {workers}");
            assert!(out == reference, "-w {workers}: rows differ from the fold");
        }
    }

    /// [`Count`], with rows that name their time.
    #[derive(serde::Serialize, serde::Deserialize)]
    struct Batched(Count);

    impl KeyLogic<u64> for Batched {
        type Out = (u32, Millis, u64, u64);
        const ROWS_NAME_THEIR_TIME: bool = true;
        fn advance(
            &mut self,
            events: &mut Vec<(Millis, u64)>,
            frontier: Millis,
            out: &mut Vec<(Millis, Self::Out)>,
        ) -> Option<Millis> {
            self.0.advance(events, frontier, out)
        }
        fn is_empty(&self) -> bool {
            self.0.is_empty()
        }
    }

    #[test]
    fn rows_that_name_their_time_are_the_same_rows_stamped_no_later() {
        let input: Vec<(Millis, Vec<Event>)> = events().chunks(50).map(|c| (0, c.to_vec())).collect();
        for workers in [1, 2] {
            let plain = collect(workers, input.clone(), |s| {
                s.keyed_ordered("Count", |k: &u32| Count { key: *k, seen: 0 })
            });
            let batched = collect(workers, input.clone(), |s| {
                s.keyed_ordered("Batched", |k: &u32| Batched(Count { key: *k, seen: 0 }))
            });
            assert!(batched.iter().all(|(at, r)| *at <= r.1), "-w {workers}: stamped at or before");
            let rows = |v: &[Row]| {
                let mut r: Vec<_> = v.iter().map(|(_, r)| *r).collect();
                r.sort();
                r
            };
            assert_eq!(rows(&batched), rows(&plain), "-w {workers}");
        }
    }

    /// Counts a key's events, and says it may be forgotten 100 after its last one (which
    /// a counter may not, so that the test sees when it is).
    #[derive(serde::Serialize, serde::Deserialize)]
    struct Forgettable {
        seen: u64,
        last: Millis,
    }

    impl KeyLogic<u64> for Forgettable {
        type Out = (u64, u64);
        fn advance(
            &mut self,
            events: &mut Vec<(Millis, u64)>,
            _frontier: Millis,
            out: &mut Vec<(Millis, Self::Out)>,
        ) -> Option<Millis> {
            for (t, v) in events.drain(..) {
                out.push((t, (v, self.seen)));
                self.seen += 1;
                self.last = t;
            }
            None
        }
        fn is_empty(&self) -> bool {
            false
        }
        fn forget_at(&self) -> Option<Millis> {
            Some(self.last + 100)
        }
    }

    #[test]
    fn a_key_is_forgotten_once_the_frontier_passes_its_forget_time_without_an_event_of_it() {
        // A thousand keys with one event each, 10 apart, then key 0 again: long before,
        // the frontier passed key 0's forget time, and the keys added since made a sweep
        // drop it, so its second event is the first its new logic sees.
        let mut input: Vec<_> = (0..1000u64).map(|i| (i * 10, vec![((i as u32, i), i * 10)])).collect();
        input.push((20_000, vec![((0, 5000), 20_000)]));
        for workers in [1, 2] {
            let out = collect(workers, input.clone(), |s| {
                s.keyed_ordered("Forgettable", |_: &u32| Forgettable { seen: 0, last: 0 })
            });
            assert_eq!(out.len(), 1001, "{workers} workers");
            assert!(out.iter().all(|(_, (_, seen))| *seen == 0), "{workers} workers: {:?}", out.last());
        }
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

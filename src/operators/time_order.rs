//! A collection's updates handed to a logic one complete time at a time, in time order.
//!
//! Differential's own operators (`count_total`, `reduce`, `join`) index every update in
//! an arrangement and, per batch, walk each changed key's history. Over totally ordered
//! event time that is more than a running total needs: once the frontier has passed a
//! time, every update at that time has arrived, so a logic that keeps its own state per
//! key can apply the time's updates directly, at a cost in proportion to them. This
//! operator does the buffering for such logics ([`SumTotal`](super::SumTotal),
//! [`SumDistinct`](super::SumDistinct), [`TopK`](super::TopK)).
//!
//! **Contract.** Updates are routed to workers by `route` of their data, so all updates
//! of one key meet on one worker. Each time `t` with updates is handed to the logic
//! exactly once, after the frontier has passed it and after every earlier time, with
//! all of this worker's updates at `t`, in no particular order and not consolidated.
//! What the logic pushes is emitted at `t`. A logic whose output depends only on its
//! state and the updates it is handed therefore emits the same collection for any
//! worker count, batching or delivery.
//!
//! **Cost.** Updates wait in one vector; when the frontier moves, the complete ones are
//! moved out and sorted by time. There is no allocation per time: a million distinct
//! times cost what a million updates at one time would.

use timely::ExchangeData;
use timely::container::CapacityContainerBuilder;
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::Capability;
use timely::dataflow::operators::generic::Operator;

use differential_dataflow::{AsCollection, VecCollection};

use crate::time::Millis;

/// Applies a logic to each complete time's updates, in time order.
pub trait InTimeOrder<'scope, D, R> {
    /// Routes updates by `route(data)` and calls `logic(time, updates, out)` once per
    /// complete time with updates, in increasing time order; `updates` holds that time's
    /// `(data, diff)` pairs (the logic may drain it) and each `(row, diff)` pushed to
    /// `out` is emitted at `time`. See the module documentation for the guarantees.
    fn in_time_order<O, R2, L>(
        self,
        name: &str,
        route: impl Fn(&D) -> u64 + 'static,
        logic: L,
    ) -> VecCollection<'scope, Millis, O, R2>
    where
        O: ExchangeData,
        R2: ExchangeData,
        L: FnMut(Millis, &mut Vec<(D, R)>, &mut Vec<(O, R2)>) + 'static;
}

impl<'scope, D, R> InTimeOrder<'scope, D, R> for VecCollection<'scope, Millis, D, R>
where
    D: ExchangeData,
    R: ExchangeData,
{
    fn in_time_order<O, R2, L>(
        self,
        name: &str,
        route: impl Fn(&D) -> u64 + 'static,
        mut logic: L,
    ) -> VecCollection<'scope, Millis, O, R2>
    where
        O: ExchangeData,
        R2: ExchangeData,
        L: FnMut(Millis, &mut Vec<(D, R)>, &mut Vec<(O, R2)>) + 'static,
    {
        self.inner
            .unary_frontier::<CapacityContainerBuilder<Vec<(O, Millis, R2)>>, _, _, _>(
                Exchange::new(move |(data, _, _): &(D, Millis, R)| route(data)),
                name,
                move |_cap, _info| {
                    // Updates not yet complete, and a capability at or before the earliest.
                    let mut pending: Vec<(D, Millis, R)> = Vec::new();
                    let mut held: Option<Capability<Millis>> = None;
                    let mut ready: Vec<(D, Millis, R)> = Vec::new();
                    let mut updates: Vec<(D, R)> = Vec::new();
                    let mut out: Vec<(O, R2)> = Vec::new();
                    move |(input, frontier), output| {
                        input.for_each_time(|cap, data| {
                            for batch in data {
                                // Updates are at or after their message's time.
                                if let Some(earliest) = batch.iter().map(|u| u.1).min()
                                    && held.as_ref().is_none_or(|h| earliest < *h.time())
                                {
                                    held = Some(cap.delayed(&earliest, 0));
                                }
                                pending.append(batch);
                            }
                        });
                        let Some(cap) = held.as_mut() else { return };
                        let watermark = frontier.frontier().iter().min().copied().unwrap_or(Millis::MAX);
                        if *cap.time() >= watermark {
                            return;
                        }
                        ready.extend(pending.extract_if(.., |u| u.1 < watermark));
                        // Stable: a time's updates keep their arrival order, which no
                        // logic may depend on, but it keeps runs reproducible.
                        ready.sort_by_key(|u| u.1);
                        let mut session = output.session(cap);
                        let mut drained = ready.drain(..).peekable();
                        while let Some((data, time, diff)) = drained.next() {
                            updates.push((data, diff));
                            while let Some((data, _, diff)) = drained.next_if(|u| u.1 == time) {
                                updates.push((data, diff));
                            }
                            logic(time, &mut updates, &mut out);
                            updates.clear();
                            session.give_iterator(out.drain(..).map(|(row, diff)| (row, time, diff)));
                        }
                        drop(drained);
                        drop(session);
                        match pending.iter().map(|u| u.1).min() {
                            Some(next) => cap.downgrade(&next),
                            None => held = None,
                        }
                    }
                },
            )
            .as_collection()
    }
}

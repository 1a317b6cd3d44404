//! Gathering a stream to worker 0 and releasing each complete event time, sorted.
//!
//! This is the one place that decides output order: every sink is built on it, so the
//! bytes written depend only on the records, never on the number of workers or on the
//! order in which records arrived.

use timely::ExchangeData;
use timely::dataflow::Stream;
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::generic::Operator;

use crate::operators::round::{RoundGate, Step};
use crate::time::{EventTime, Millis, event_frontier, round_frontier};

/// What a gathering sink sees.
pub enum Gathered<R> {
    /// The input frontier moved (`Millis::MAX` once it is empty): every record before
    /// it has been released.
    Frontier(Millis),
    /// All records of one complete event time, sorted, with that time: it grows
    /// strictly from one call to the next.
    Complete(Millis, Vec<R>),
    /// The input is exhausted: nothing more will come.
    Closed,
    /// A snapshot is taken: commit every row written so far, so that the snapshot
    /// (which holds only rows not yet complete) and the output agree.
    Cut,
}

/// Gathers records to worker 0 and releases them in timestamp order.
pub trait GatherSorted<'scope, R> {
    /// Calls `each` on worker 0 (and with frontiers on every worker) as records complete.
    /// A record belongs to the event time `group(record)` names, or else to its
    /// message's; either way it is released once the watermark has passed that time.
    fn gather_sorted(
        self,
        name: &str,
        group: impl Fn(&R) -> Option<Millis> + 'static,
        each: impl FnMut(Gathered<R>) + 'static,
    );
}

impl<'scope, T: EventTime, R: Ord + ExchangeData> GatherSorted<'scope, R> for Stream<'scope, T, Vec<R>> {
    fn gather_sorted(
        self,
        name: &str,
        group: impl Fn(&R) -> Option<Millis> + 'static,
        mut each: impl FnMut(Gathered<R>) + 'static,
    ) {
        let mut gate: RoundGate<Millis, R> = RoundGate::new::<T>(self.scope().index(), name);
        // Records with their group's time, in arrival order, and the earliest such time.
        // A snapshot holds these, the rows not complete yet; those written are committed.
        let mut pending: Vec<(Millis, R)> = gate.restore().unwrap_or_default();
        let mut earliest = pending.iter().map(|(key, _)| *key).min().unwrap_or(Millis::MAX);
        let mut closed = false;
        let add =
            move |pending: &mut Vec<(Millis, R)>, earliest: &mut Millis, at: Millis, records: &mut Vec<R>| {
                for record in records.drain(..) {
                    let key = group(&record).map_or(at, |t| t.max(at));
                    *earliest = (*earliest).min(key);
                    pending.push((key, record));
                }
            };
        self.sink(Exchange::new(|_: &R| 0), name, move |(input, frontier)| {
            input.for_each_time(|time, mut data| {
                let (at, round) = (time.time().event(), time.time().round());
                if gate.hold_if_ahead(round, at, || at, &mut data) {
                    return;
                }
                for batch in data {
                    add(&mut pending, &mut earliest, at, batch);
                }
            });
            gate.advance(round_frontier(&frontier.frontier()), |step| match step {
                Step::Snapshot(snap) => {
                    each(Gathered::Cut);
                    snap.save(&pending);
                }
                Step::Release(at, mut records) => add(&mut pending, &mut earliest, at, &mut records),
            });
            let watermark = gate.watermark(event_frontier(&frontier.frontier()));
            if earliest < watermark {
                // The complete records leave in arrival order; each time's records are
                // sorted (stably, as ties keep arrival order) through their indexes, so a
                // large record moves only out of `pending` and into its group.
                let mut rest = Millis::MAX;
                let (times, mut records): (Vec<Millis>, Vec<Option<R>>) = pending
                    .extract_if(.., |(key, _)| {
                        let due = *key < watermark;
                        if !due {
                            rest = rest.min(*key);
                        }
                        due
                    })
                    .map(|(key, record)| (key, Some(record)))
                    .unzip();
                earliest = rest;
                if pending.capacity() > 4 * pending.len() + 1024 {
                    pending.shrink_to_fit();
                }
                let mut order: Vec<u32> = (0..u32::try_from(times.len()).expect("< 2^32 records")).collect();
                order.sort_unstable_by(|&a, &b| {
                    let (a, b) = (a as usize, b as usize);
                    times[a].cmp(&times[b]).then_with(|| records[a].cmp(&records[b])).then(a.cmp(&b))
                });
                let mut order = order.into_iter().map(|i| i as usize).peekable();
                while let Some(first) = order.next() {
                    let time = times[first];
                    let mut group = vec![records[first].take().expect("each record once")];
                    while let Some(i) = order.next_if(|&i| times[i] == time) {
                        group.push(records[i].take().expect("each record once"));
                    }
                    each(Gathered::Complete(time, group));
                }
            }
            each(Gathered::Frontier(watermark));
            if frontier.is_empty() && !closed {
                closed = true;
                each(Gathered::Closed);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use timely::dataflow::operators::vec::Filter;

    use super::*;
    use crate::operators::testing::collect;

    #[test]
    fn complete_times_come_sorted_in_time_order_then_closed() {
        for workers in [1, 3] {
            // What each worker saw, in its own order: workers close independently.
            let seen: Arc<Mutex<Vec<(usize, String)>>> = Arc::default();
            let log = Arc::clone(&seen);
            let input = vec![(0, vec![5u32, 3, 9]), (2, vec![4, 1]), (2, vec![8])];
            collect(workers, input, move |s| {
                let log = Arc::clone(&log);
                let worker = s.scope().index();
                s.clone().gather_sorted(
                    "Test",
                    |_| None,
                    move |g| match g {
                        Gathered::Frontier(_) | Gathered::Cut => {}
                        Gathered::Complete(_, rows) => {
                            log.lock().unwrap().push((worker, format!("{rows:?}")))
                        }
                        Gathered::Closed => log.lock().unwrap().push((worker, "closed".into())),
                    },
                );
                s.filter(|_| false)
            });
            let seen = seen.lock().unwrap();
            let of = |w: usize| -> Vec<&str> {
                seen.iter().filter(|(x, _)| *x == w).map(|(_, e)| e.as_str()).collect()
            };
            // Rows reach worker 0 only, sorted, in time order, before it closes; every
            // worker learns that its input closed.
            assert_eq!(of(0), vec!["[3, 5, 9]", "[1, 4, 8]", "closed"], "-w {workers}");
            for w in 1..workers {
                assert_eq!(of(w), vec!["closed"], "-w {workers}, worker {w}");
            }
        }
    }
}

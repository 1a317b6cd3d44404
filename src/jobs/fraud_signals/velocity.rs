//! Velocity: bursts of at least `n` events of one key within any sliding span of event time.
//!
//! **Definition.** For an event at time `t`, its window is the half-open range
//! `(t - span, t]`: the key's events strictly less than `span` before it, itself, and any
//! others at the same instant. An event *triggers* when its window holds at least `n`
//! events. Triggering windows that share an event are merged, and each maximal merged
//! group is one [`Burst`], reported once, with all its events. So five events with the
//! first and last less than `span` apart form a burst; five events exactly `span` apart
//! from first to last do not. Windows slide with every event, so no burst is missed at
//! an aligned window's edge.
//!
//! **When.** Events are exchanged by key so that all of a key's events meet on one
//! worker. An event is judged only when the frontier has passed its time, because only
//! then have all events of its window arrived; a burst is reported when the frontier
//! reaches `last + span`, after which no later event's window can reach back into it.
//! Decisions read only event times from the data and the frontier, never arrival order,
//! so the bursts are the same for any worker count, process count or input order (among
//! records that are not late).
//!
//! A burst is emitted at timestamp `last + span`, the event time at which it became
//! certain, so that sinks write bursts in a deterministic order.

use std::hash::Hash;

use timely::ExchangeData;
use timely::dataflow::Stream;

use crate::operators::ingest::Timed;
use crate::operators::keyed::{KeyLogic, KeyedOrdered};
use crate::time::{Duration, EventTime, Millis};

/// A maximal group of overlapping triggering windows of one key.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
pub struct Burst<K, V> {
    /// The key, such as a customer id.
    pub key: K,
    /// The events of the burst with their times, sorted by `(time, value)`.
    pub events: Vec<(Millis, V)>,
}

impl<K, V> Burst<K, V> {
    /// Time of the first event.
    pub fn first(&self) -> Millis {
        self.events.first().map_or(0, |e| e.0)
    }

    /// Time of the last event.
    pub fn last(&self) -> Millis {
        self.events.last().map_or(0, |e| e.0)
    }
}

/// Detects velocity bursts per key; see the module documentation for the definition.
pub trait Velocity<'scope, T: EventTime, K, V> {
    /// Reports each maximal burst of at least `n` events within any `span` of event time,
    /// once, at timestamp `last + span`.
    fn velocity(self, n: usize, span: Duration) -> Stream<'scope, T, Vec<Burst<K, V>>>;
}

/// One key's events that may still matter, all judged.
#[derive(serde::Serialize, serde::Deserialize)]
struct Bursts<K, V> {
    key: K,
    n: usize,
    span: u64,
    /// Events sorted by `(time, value)`.
    events: Vec<(Millis, V)>,
    /// The open burst as `(first event index, end index exclusive, last trigger time)`.
    burst: Option<(usize, usize, Millis)>,
}

impl<K: ExchangeData + Clone, V: ExchangeData + Clone> KeyLogic<V> for Bursts<K, V> {
    type Out = Burst<K, V>;

    fn advance(
        &mut self,
        released: &mut Vec<(Millis, V)>,
        frontier: Millis,
        out: &mut Vec<(Millis, Burst<K, V>)>,
    ) -> Option<Millis> {
        let (n, span) = (self.n, self.span);
        let mut judged = self.events.len();
        // Released events come after every event held: they only ever append.
        self.events.append(released);
        let mut emit = |at: Millis, events: &[(Millis, V)]| {
            out.push((at, Burst { key: self.key.clone(), events: events.to_vec() }));
        };
        while judged < self.events.len() {
            let t = self.events[judged].0;
            // Every event at or before `t` has arrived, including ties at `t`.
            let lo = self.events.partition_point(|e| e.0 + span <= t);
            let hi = self.events.partition_point(|e| e.0 <= t);
            if hi - lo >= n {
                match &mut self.burst {
                    Some((_, end, last)) if lo < *end => {
                        *end = hi;
                        *last = t;
                    }
                    open => {
                        if let Some((start, end, last)) = open.take() {
                            emit(last + span, &self.events[start..end]);
                        }
                        *open = Some((lo, hi, t));
                    }
                }
            }
            judged += 1;
        }
        if let Some((start, end, last)) = self.burst
            && last.saturating_add(span) <= frontier
        {
            emit(last + span, &self.events[start..end]);
            self.burst = None;
        }
        // Keep what a future window or the open burst can still reach.
        let mut keep = self.events.partition_point(|e| e.0.saturating_add(span) <= frontier);
        if let Some((start, _, _)) = self.burst {
            keep = keep.min(start);
        }
        if keep > 0 {
            self.events.drain(..keep);
            if let Some((start, end, _)) = &mut self.burst {
                *start -= keep;
                *end -= keep;
            }
        }
        self.burst.map(|(_, _, last)| last + span)
    }

    fn is_empty(&self) -> bool {
        self.events.is_empty()
    }
}

impl<'scope, T, K, V> Velocity<'scope, T, K, V> for Stream<'scope, T, Vec<Timed<(K, V)>>>
where
    T: EventTime,
    K: ExchangeData + Hash + Eq + Clone,
    V: ExchangeData + Ord + Clone,
{
    fn velocity(self, n: usize, span: Duration) -> Stream<'scope, T, Vec<Burst<K, V>>> {
        let (n, span) = (n.max(1), span.millis());
        self.keyed_ordered("Velocity", move |key: &K| Bursts {
            key: key.clone(),
            n,
            span,
            events: Vec::new(),
            burst: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn logic(n: usize, span: u64) -> Bursts<u32, usize> {
        Bursts { key: 0, n, span, events: Vec::new(), burst: None }
    }

    /// Feeds all `times` to one key at once, then closes the input.
    fn bursts(times: &[Millis], n: usize, span: u64) -> Vec<Vec<Millis>> {
        let mut state = logic(n, span);
        let mut events: Vec<(Millis, usize)> = times.iter().enumerate().map(|(i, &t)| (t, i)).collect();
        events.sort();
        let mut out = Vec::new();
        let wake = state.advance(&mut events, Millis::MAX, &mut out);
        assert_eq!(wake, None);
        assert!(state.is_empty(), "nothing kept after the end");
        out.into_iter().map(|(_, b)| b.events.iter().map(|e| e.0).collect()).collect()
    }

    #[test]
    fn window_is_open_on_the_left() {
        assert_eq!(bursts(&[0, 10, 20, 30, 59], 5, 60), vec![vec![0, 10, 20, 30, 59]]);
        assert!(bursts(&[0, 10, 20, 30, 60], 5, 60).is_empty());
        // Ties all count.
        assert_eq!(bursts(&[5, 5, 5], 3, 1), vec![vec![5, 5, 5]]);
    }

    #[test]
    fn overlapping_triggers_merge_and_gaps_split() {
        let t = [0, 1, 2, 3, 4, 30, 100, 101, 102, 103, 104, 200, 300];
        assert_eq!(bursts(&t, 5, 60), vec![vec![0, 1, 2, 3, 4, 30], vec![100, 101, 102, 103, 104]]);
        // A trigger whose window reaches back into a burst extends it.
        let t = [0, 1, 2, 3, 4, 55, 58, 59, 62];
        assert_eq!(bursts(&t, 5, 60), vec![t.to_vec()]);
    }

    #[test]
    fn judging_in_steps_equals_judging_at_once() {
        let times: Vec<Millis> = (0..200u64).map(|i| (i * 7919) % 1000).collect();
        let all = bursts(&times, 4, 40);
        let mut sorted: Vec<(Millis, usize)> = times.iter().enumerate().map(|(i, &t)| (t, i)).collect();
        sorted.sort();
        // Release events one instant at a time, as a moving frontier does.
        let mut state = logic(4, 40);
        let mut out = Vec::new();
        for run in sorted.chunk_by(|a, b| a.0 == b.0) {
            let mut batch = run.to_vec();
            state.advance(&mut batch, run[0].0 + 1, &mut out);
        }
        state.advance(&mut Vec::new(), Millis::MAX, &mut out);
        let stepped: Vec<Vec<Millis>> =
            out.into_iter().map(|(_, b)| b.events.iter().map(|e| e.0).collect()).collect();
        assert_eq!(stepped, all);
        assert!(!all.is_empty());
    }

    /// Runs the operator on two workers, feeding `events` in order with the input's
    /// time held `lag` behind the largest event time so far, like a watermark.
    fn run_dataflow(events: Vec<(Millis, u32)>, lag: u64) -> Vec<(Millis, u32, Vec<Millis>)> {
        use std::sync::{Arc, Mutex};
        use timely::dataflow::InputHandleVec;
        use timely::dataflow::operators::{Input, Inspect, Probe};

        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&seen);
        timely::execute(timely::Config::process(2), move |worker| {
            let mut input: InputHandleVec<Millis, Timed<(u32, usize)>> = InputHandleVec::new();
            let sink = Arc::clone(&sink);
            let probe = worker.dataflow::<Millis, _, _>(|scope| {
                let (probe, _) = scope
                    .input_from(&mut input)
                    .velocity(4, Duration(40))
                    .inspect_time(move |at, burst: &Burst<u32, usize>| {
                        let times = burst.events.iter().map(|e| e.0).collect();
                        sink.lock().unwrap().push((*at, burst.key, times));
                    })
                    .probe();
                probe
            });
            if worker.index() == 0 {
                let mut max = 0;
                for (i, &(t, key)) in events.iter().enumerate() {
                    input.send(((key, i), t));
                    max = max.max(t);
                    let watermark = max.saturating_sub(lag);
                    if watermark > *input.time() {
                        input.advance_to(watermark);
                        worker.step_while(|| probe.less_than(input.time()));
                    }
                }
            }
            input.close();
            while worker.step() {}
        })
        .unwrap();
        let mut out = seen.lock().unwrap().clone();
        out.sort();
        out
    }

    #[test]
    fn a_moving_watermark_finds_the_same_bursts_as_the_end_of_input() {
        // Three keys, sparse but for a burst of one key every 50 events, with bounded
        // disorder: each event at most 22 ms behind the largest so far, under `lag`.
        let lag = 25;
        let mut events: Vec<(Millis, u32)> = (0..600u64)
            .map(|i| {
                let (block, k) = (i / 50, i % 50);
                let (t, key) = if k < 8 {
                    (1000 + block * 750 + k * 2, (block % 3) as u32)
                } else {
                    (1000 + block * 750 + k * 15, (i % 3) as u32)
                };
                (t - (i * 7919 % 23), key)
            })
            .collect();
        events.sort_by_key(|e| e.0 / 50);
        let streamed = run_dataflow(events.clone(), lag);
        let at_end = run_dataflow(events.clone(), u64::MAX);
        assert_eq!(streamed.len(), 12, "{streamed:?}");
        assert_eq!(streamed, at_end);
        for (at, _, times) in &streamed {
            assert_eq!(*at, times.last().unwrap() + 40, "emitted at last + span");
        }
    }
}

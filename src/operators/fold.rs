//! Folding a stream into a result once its input has ended.
//!
//! Reports over a whole input (the log report, the e-commerce report, the fraud tally,
//! the delivery check) wait for the end of the input and then compute once. This is
//! that pattern, written once: records are routed (all to worker 0, or by a key),
//! folded into a state as they arrive, and when the input frontier is empty `finish`
//! turns the state into output rows, once per participating worker.
//!
//! The output is stamped with the operator's initial capability (time 0): it is
//! complete as soon as it is emitted, since nothing can follow it. Worker 0 holds that
//! capability from the start, so a fold over an empty input still finishes.
//!
//! **Snapshots.** The state takes part in snapshots ([`crate::operators::round`]): at
//! each checkpoint round it is saved as folded from the rounds before, and a restart
//! continues folding from it. So a fold's state must be serializable.

use serde::Serialize;
use serde::de::DeserializeOwned;
use timely::ExchangeData;
use timely::container::CapacityContainerBuilder;
use timely::dataflow::Stream;
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::generic::Operator;

use super::round::{RoundGate, Step};
use crate::time::{EventTime, round_frontier};

/// Folds a stream into rows once its input has ended.
pub trait FoldAtEnd<'scope, T: EventTime, D> {
    /// Gathers every record to worker 0 and folds it into `state`; when the input has
    /// ended, `finish` turns the state into rows, on worker 0 only.
    fn fold_at_end<S, R>(
        self,
        name: &str,
        state: S,
        fold: impl FnMut(&mut S, D) + 'static,
        finish: impl FnOnce(S) -> Vec<R> + 'static,
    ) -> Stream<'scope, T, Vec<R>>
    where
        S: Serialize + DeserializeOwned + 'static,
        R: Clone + 'static;

    /// Routes each record to the worker `route` names (its value modulo the workers)
    /// and folds each worker's share into its own `state`; when the input has ended,
    /// every worker's `finish` turns its state into rows.
    fn fold_at_end_by<S, R>(
        self,
        name: &str,
        route: impl Fn(&D) -> u64 + 'static,
        state: S,
        fold: impl FnMut(&mut S, D) + 'static,
        finish: impl FnOnce(S) -> Vec<R> + 'static,
    ) -> Stream<'scope, T, Vec<R>>
    where
        S: Serialize + DeserializeOwned + 'static,
        R: Clone + 'static;
}

impl<'scope, T: EventTime, D: ExchangeData> FoldAtEnd<'scope, T, D> for Stream<'scope, T, Vec<D>> {
    fn fold_at_end<S, R>(
        self,
        name: &str,
        state: S,
        fold: impl FnMut(&mut S, D) + 'static,
        finish: impl FnOnce(S) -> Vec<R> + 'static,
    ) -> Stream<'scope, T, Vec<R>>
    where
        S: Serialize + DeserializeOwned + 'static,
        R: Clone + 'static,
    {
        let first = self.scope().index() == 0;
        fold_routed(self, name, |_| 0, first, state, fold, finish)
    }

    fn fold_at_end_by<S, R>(
        self,
        name: &str,
        route: impl Fn(&D) -> u64 + 'static,
        state: S,
        fold: impl FnMut(&mut S, D) + 'static,
        finish: impl FnOnce(S) -> Vec<R> + 'static,
    ) -> Stream<'scope, T, Vec<R>>
    where
        S: Serialize + DeserializeOwned + 'static,
        R: Clone + 'static,
    {
        fold_routed(self, name, route, true, state, fold, finish)
    }
}

/// The operator behind both folds; `finishes` says whether this worker finishes.
fn fold_routed<'scope, T, D, S, R>(
    stream: Stream<'scope, T, Vec<D>>,
    name: &str,
    route: impl Fn(&D) -> u64 + 'static,
    finishes: bool,
    state: S,
    mut fold: impl FnMut(&mut S, D) + 'static,
    finish: impl FnOnce(S) -> Vec<R> + 'static,
) -> Stream<'scope, T, Vec<R>>
where
    T: EventTime,
    D: ExchangeData,
    S: Serialize + DeserializeOwned + 'static,
    R: Clone + 'static,
{
    let mut finish = Some(finish);
    let worker = stream.scope().index();
    let kind = name.to_owned();
    stream.unary_frontier::<CapacityContainerBuilder<Vec<R>>, _, _, _>(
        Exchange::new(move |d: &D| route(d)),
        name,
        move |cap, _info| {
            let mut gate = RoundGate::<(), D>::new::<T>(worker, &kind);
            let mut state = Some(gate.restore().unwrap_or(state));
            let mut cap = finishes.then_some(cap);
            // Downstream operators reach the fold's round through its capability.
            if let Some(cap) = cap.as_mut() {
                gate.lift(cap);
            }
            move |(input, frontier), output| {
                input.for_each_time(|time, mut data| {
                    if gate.hold_if_ahead(time.time().round(), time.time().event(), || (), &mut data) {
                        return;
                    }
                    let state = state.as_mut().expect("no input after the end");
                    for batch in data {
                        for d in batch.drain(..) {
                            fold(state, d);
                        }
                    }
                });
                let lifted = gate.advance(round_frontier(&frontier.frontier()), |step| {
                    let state = state.as_mut().expect("no input after the end");
                    match step {
                        Step::Snapshot(snap) => snap.save(state),
                        Step::Release((), data) => data.into_iter().for_each(|d| fold(state, d)),
                    }
                });
                if lifted && let Some(cap) = cap.as_mut() {
                    gate.lift(cap);
                }
                if frontier.is_empty()
                    && let (Some(cap), Some(state), Some(finish)) = (cap.take(), state.take(), finish.take())
                {
                    output.session(&cap).give_iterator(finish(state).into_iter());
                }
            }
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::operators::testing::collect;
    use crate::time::Millis;

    #[test]
    fn folds_every_record_once_on_worker_zero_at_the_end() {
        for workers in [1, 3] {
            let input: Vec<(Millis, Vec<u64>)> = vec![(0, (1..=50).collect()), (7, (51..=100).collect())];
            let out = collect(workers, input, |s| {
                s.fold_at_end(
                    "Sum",
                    (0u64, 0u64),
                    |(sum, n), x| {
                        *sum += x;
                        *n += 1;
                    },
                    |(sum, n)| vec![(sum, n)],
                )
            });
            assert_eq!(out, vec![(0, (5050, 100))], "-w {workers}");
        }
    }

    #[test]
    fn an_empty_input_still_finishes() {
        let out = collect(2, Vec::<(Millis, Vec<u64>)>::new(), |s| {
            s.fold_at_end("Count", 0u64, |n, _| *n += 1, |n| vec![n])
        });
        assert_eq!(out, vec![(0, 0)]);
    }

    #[test]
    fn by_key_each_worker_folds_whole_keys() {
        // Every worker reports the distinct keys it saw: with routing by key, no key is
        // seen by two workers, and together they saw all.
        let input: Vec<(Millis, Vec<u64>)> = vec![(0, (0..300).map(|i| i % 17).collect())];
        let out = collect(3, input, |s| {
            s.fold_at_end_by(
                "Keys",
                |k| *k,
                std::collections::BTreeSet::new(),
                |set, k| {
                    set.insert(k);
                },
                |set| set.into_iter().collect::<Vec<u64>>(),
            )
        });
        let keys: Vec<u64> = out.into_iter().map(|(_, k)| k).collect();
        assert_eq!(keys, (0..17).collect::<Vec<_>>());
    }
}

//! Keeping the K first rows of each group, in batch and in incremental mode.
//!
//! Both variants order rows by a total order that the caller chooses (for example
//! count descending, then key), so which rows survive a tie never depends on arrival
//! order, worker count or hashing: top-K output is as deterministic as the full table.

use std::collections::BTreeMap;

use differential_dataflow::VecCollection;
use differential_dataflow::hashable::Hashable;
use timely::ExchangeData;
use timely::dataflow::Stream;
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::Capability;
use timely::dataflow::operators::generic::Operator;

use super::round::{RoundGate, Step};
use super::time_order::InTimeOrder;
use crate::time::{EventTime, Millis, event_frontier, round_frontier};

/// The first `k` rows of each complete timestamp of a batch stream.
pub trait TopPerTime<'scope, T: EventTime, D> {
    /// Gathers rows to worker 0 and, when a timestamp is complete, passes on the `k` rows
    /// that sort first by `order`. Meant for streams where one timestamp holds one
    /// group, such as [`window_aggregate`](super::WindowAggregate) output (one window per time).
    fn top_per_time<K: Ord>(self, k: usize, order: impl Fn(&D) -> K + 'static) -> Stream<'scope, T, Vec<D>>;
}

impl<'scope, T: EventTime, D: ExchangeData> TopPerTime<'scope, T, D> for Stream<'scope, T, Vec<D>> {
    fn top_per_time<K: Ord>(self, k: usize, order: impl Fn(&D) -> K + 'static) -> Stream<'scope, T, Vec<D>> {
        let worker = self.scope().index();
        self.unary_frontier::<timely::container::CapacityContainerBuilder<Vec<D>>, _, _, _>(
            Exchange::new(|_: &D| 0u64),
            "TopPerTime",
            move |initial, _info| {
                let mut gate = RoundGate::new::<T>(worker, "TopPerTime");
                // Rows per event time, with the capability of the first of them.
                let mut pending: BTreeMap<Millis, (Capability<T>, Vec<D>)> = BTreeMap::new();
                let restored: Vec<(Millis, Vec<D>)> = gate.restore().unwrap_or_default();
                for (time, rows) in restored {
                    pending.insert(time, (gate.mint(&initial, time), rows));
                }
                move |(input, frontier), output| {
                    input.for_each_time(|cap, mut data| {
                        if gate.hold_at(&cap, &mut data) {
                            return;
                        }
                        let at = cap.time().event();
                        let slot = pending.entry(at).or_insert_with(|| (cap.retain(0), Vec::new()));
                        for batch in data {
                            slot.1.append(batch);
                        }
                    });
                    let lifted = gate.advance(round_frontier(&frontier.frontier()), |step| match step {
                        Step::Snapshot(snap) => {
                            let saved: Vec<(&Millis, &Vec<D>)> =
                                pending.iter().map(|(t, (_, rows))| (t, rows)).collect();
                            snap.save(&saved);
                        }
                        Step::Release(cap, mut rows) => {
                            let slot = pending.entry(cap.time().event()).or_insert_with(|| (cap, Vec::new()));
                            slot.1.append(&mut rows);
                        }
                    });
                    if lifted {
                        pending.values_mut().for_each(|(cap, _)| gate.lift(cap));
                    }
                    let watermark = gate.watermark(event_frontier(&frontier.frontier()));
                    while let Some(entry) = pending.first_entry() {
                        if *entry.key() >= watermark {
                            break;
                        }
                        let (cap, mut rows) = entry.remove();
                        rows.sort_by_cached_key(&order);
                        rows.truncate(k);
                        output.session(&cap).give_iterator(rows.into_iter());
                    }
                }
            },
        )
    }
}

/// The first `k` values of each group of a differential collection, as it changes.
pub trait TopK<'scope, G, V> {
    /// For every group `G`, the `k` smallest values `V` (by `Ord`), maintained
    /// incrementally. Each value must occur at most once per group.
    ///
    /// Times are totally ordered, so the operator keeps each group's values in order and
    /// applies a complete time's changes to them directly: a time costs in proportion to
    /// the values it changes plus `k` per group it touches, never the group's size. (A
    /// `reduce` would recompute a group once per distinct time in a batch, from its whole
    /// history: quadratic when a bounded input releases every epoch at once.) When every
    /// value a time changes sorts after a full top `k`'s last, the top `k` cannot change
    /// and the time costs its changes alone.
    fn top_k(self, k: usize) -> VecCollection<'scope, Millis, (G, V), isize>;
}

impl<'scope, G, V> TopK<'scope, G, V> for VecCollection<'scope, Millis, (G, V), isize>
where
    G: ExchangeData + Hashable + Ord + Clone,
    V: ExchangeData + Ord + Clone,
{
    fn top_k(self, k: usize) -> VecCollection<'scope, Millis, (G, V), isize> {
        // Each group's values, in order, with their multiplicities.
        let mut groups: BTreeMap<G, BTreeMap<V, isize>> = BTreeMap::new();
        let (mut before, mut after) = (Vec::new(), Vec::new());
        let route = |(g, _): &(G, V)| g.hashed().into();
        self.in_time_order("TopK", route, move |_time, changes, out| {
            changes.sort_by(|a, b| a.0.0.cmp(&b.0.0));
            for chunk in changes.chunk_by(|a, b| a.0.0 == b.0.0) {
                let group = &chunk[0].0.0;
                let values = groups.entry(group.clone()).or_default();
                // Changes behind a full top K's last value leave the top K as it is:
                // the common case, with no list to compare.
                let last = values.iter().filter(|(_, count)| **count > 0).nth(k.saturating_sub(1));
                let behind = match last {
                    Some((last, _)) if k > 0 => chunk.iter().all(|((_, value), _)| value > last),
                    _ => k == 0,
                };
                if !behind {
                    first(values, k, &mut before);
                }
                for ((_, value), diff) in chunk {
                    let count = values.entry(value.clone()).or_insert(0);
                    *count += diff;
                    if *count == 0 {
                        values.remove(value);
                    }
                }
                if !behind {
                    first(values, k, &mut after);
                    for (value, diff) in difference(&before, &after) {
                        out.push(((group.clone(), value), diff));
                    }
                }
                if values.is_empty() {
                    groups.remove(group);
                }
            }
        })
    }
}

/// The first `k` values present in a group, into `out`.
fn first<V: Clone>(values: &BTreeMap<V, isize>, k: usize, out: &mut Vec<V>) {
    out.clear();
    out.extend(values.iter().filter(|(_, count)| **count > 0).take(k).map(|(v, _)| v.clone()));
}

/// What turns the sorted list `before` into the sorted list `after`: `-1` for each value
/// only in `before`, `+1` for each only in `after`.
fn difference<'a, V: Ord + Clone>(before: &'a [V], after: &'a [V]) -> impl Iterator<Item = (V, isize)> + 'a {
    let gone = before.iter().filter(|v| after.binary_search(v).is_err()).map(|v| (v.clone(), -1));
    let came = after.iter().filter(|v| before.binary_search(v).is_err()).map(|v| (v.clone(), 1));
    gone.chain(came)
}

#[cfg(test)]
mod tests {
    use std::cmp::Reverse;

    use std::collections::BTreeSet;

    use differential_dataflow::AsCollection;
    use rand::{Rng, SeedableRng};
    use timely::dataflow::operators::vec::Map;

    use super::*;
    use crate::operators::testing::collect;

    #[test]
    fn top_per_time_keeps_the_first_k_of_each_time() {
        let input = vec![(0, vec![(3u64, 'a'), (9, 'b'), (5, 'c')]), (4, vec![(1, 'd'), (2, 'e')])];
        let out = collect(3, input, |s| s.top_per_time(2, |(n, _)| Reverse(*n)));
        assert_eq!(out, vec![(0, (5, 'c')), (0, (9, 'b')), (4, (1, 'd')), (4, (2, 'e'))]);
    }

    #[test]
    fn top_k_follows_the_collection_as_it_changes() {
        // (group, value) updates: value 7 arrives at time 5 and displaces 9 from the top 2.
        let input = vec![
            (0, vec![((0u32, 9u32), 0u64, 1isize), ((0, 12), 0, 1), ((1, 4), 0, 1)]),
            (5, vec![((0, 7), 5, 1)]),
        ];
        let out = collect(2, input, |s| s.as_collection().top_k(2).inner.map(|(d, t, r)| (t, d, r)));
        let changes: Vec<_> = out.into_iter().map(|(_, c)| c).collect();
        assert_eq!(
            changes,
            vec![(0, (0, 9), 1), (0, (0, 12), 1), (0, (1, 4), 1), (5, (0, 7), 1), (5, (0, 12), -1)]
        );
    }

    #[test]
    fn top_k_equals_a_fold_over_random_changes() {
        // Values toggle in and out of three groups over 300 times; after each time the
        // reference is the sorted set's first 4, and the output must be their difference.
        let mut rng = rand_pcg::Pcg64::seed_from_u64(7);
        let mut present: BTreeSet<(u32, u32)> = BTreeSet::new();
        let top = |present: &BTreeSet<(u32, u32)>, g: u32| -> Vec<u32> {
            present.iter().filter(|(pg, _)| *pg == g).map(|(_, v)| *v).take(4).collect()
        };
        let (mut input, mut want) = (Vec::new(), BTreeMap::new());
        for time in 0..300u64 {
            let before: Vec<Vec<u32>> = (0..3).map(|g| top(&present, g)).collect();
            let mut batch = Vec::new();
            for _ in 0..rng.random_range(0..6) {
                let gv = (rng.random_range(0..3u32), rng.random_range(0..40u32));
                let diff = if present.remove(&gv) { -1 } else { 1 };
                if diff == 1 {
                    present.insert(gv);
                }
                batch.push((gv, time, diff));
            }
            for g in 0..3 {
                let old: BTreeSet<u32> = before[g as usize].iter().copied().collect();
                let new: BTreeSet<u32> = top(&present, g).into_iter().collect();
                for (v, d) in
                    old.difference(&new).map(|v| (*v, -1)).chain(new.difference(&old).map(|v| (*v, 1)))
                {
                    *want.entry((time, (g, v))).or_insert(0) += d;
                }
            }
            input.push((time, batch));
        }
        let out = collect(2, input, |s| s.as_collection().top_k(4).inner.map(|(d, t, r)| (t, d, r)));
        let mut got: BTreeMap<(u64, (u32, u32)), isize> = BTreeMap::new();
        for (_, (t, d, r)) in out {
            *got.entry((t, d)).or_insert(0) += r;
        }
        got.retain(|_, r| *r != 0);
        want.retain(|_, r| *r != 0);
        assert!(want.len() > 100, "the test needs many changes");
        assert_eq!(got, want);
    }
}

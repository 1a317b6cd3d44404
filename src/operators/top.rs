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

use crate::time::{EventTime, Millis, event_frontier};

/// The first `k` rows of each complete timestamp of a batch stream.
pub trait TopPerTime<'scope, T: EventTime, D> {
    /// Gathers rows to worker 0 and, when a timestamp is complete, passes on the `k` rows
    /// that sort first by `order`. Meant for streams where one timestamp holds one
    /// group, such as [`window_aggregate`](super::WindowAggregate) output (one window per time).
    fn top_per_time<K: Ord>(self, k: usize, order: impl Fn(&D) -> K + 'static) -> Stream<'scope, T, Vec<D>>;
}

impl<'scope, T: EventTime, D: ExchangeData> TopPerTime<'scope, T, D> for Stream<'scope, T, Vec<D>> {
    fn top_per_time<K: Ord>(self, k: usize, order: impl Fn(&D) -> K + 'static) -> Stream<'scope, T, Vec<D>> {
        self.unary_frontier::<timely::container::CapacityContainerBuilder<Vec<D>>, _, _, _>(
            Exchange::new(|_: &D| 0u64),
            "TopPerTime",
            move |_cap, _info| {
                // Rows per event time, with the capability of the first of them.
                let mut pending: BTreeMap<Millis, (Capability<T>, Vec<D>)> = BTreeMap::new();
                move |(input, frontier), output| {
                    input.for_each_time(|cap, data| {
                        let slot =
                            pending.entry(cap.time().event()).or_insert_with(|| (cap.retain(0), Vec::new()));
                        for batch in data {
                            slot.1.append(batch);
                        }
                    });
                    let watermark = event_frontier(&frontier.frontier());
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
    /// incrementally with `reduce`. Each value must occur at most once per group.
    fn top_k(self, k: usize) -> VecCollection<'scope, Millis, (G, V), isize>;
}

impl<'scope, G, V> TopK<'scope, G, V> for VecCollection<'scope, Millis, (G, V), isize>
where
    G: differential_dataflow::ExchangeData + Hashable,
    V: differential_dataflow::ExchangeData,
{
    fn top_k(self, k: usize) -> VecCollection<'scope, Millis, (G, V), isize> {
        self.reduce_named("TopK", move |_group, input, output| {
            // `input` is sorted by value, so the first k are the top k.
            output.extend(input.iter().filter(|(_, diff)| *diff > 0).take(k).map(|(v, _)| ((*v).clone(), 1)));
        })
    }
}

#[cfg(test)]
mod tests {
    use std::cmp::Reverse;

    use differential_dataflow::AsCollection;
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
}

//! Sending records at a timestamp computed from the record itself.
//!
//! Differential operators may send an update in a message whose timestamp is earlier
//! than the update's own time, and ingest sends records at the watermark. Sinks group
//! rows by message timestamp, so before a sink, rows are restamped at the time their
//! content names: then the groups, and the output bytes, depend only on the data.

use timely::dataflow::Stream;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::Operator;

use crate::time::{EventTime, Millis};

/// Restamps records at a time derived from each.
pub trait StampBy<'scope, T: EventTime, D> {
    /// Sends each record at event time `time(record)` (in its message's round), or at its
    /// current event time if that is later.
    fn stamp_by(self, time: impl Fn(&D) -> Millis + 'static) -> Stream<'scope, T, Vec<D>>;
}

impl<'scope, T: EventTime, D: Clone + 'static> StampBy<'scope, T, D> for Stream<'scope, T, Vec<D>> {
    fn stamp_by(self, time: impl Fn(&D) -> Millis + 'static) -> Stream<'scope, T, Vec<D>> {
        self.unary::<timely::container::CapacityContainerBuilder<Vec<D>>, _, _, _>(
            Pipeline,
            "StampBy",
            move |_, _| {
                move |input, output| {
                    input.for_each_time(|cap, data| {
                        for batch in data {
                            let at = |d: &D| time(d).max(cap.time().event());
                            batch.sort_by_key(|d| at(d));
                            for run in batch.chunk_by(|a, b| at(a) == at(b)) {
                                output
                                    .session(&cap.delayed(&cap.time().at_event(at(&run[0])), 0))
                                    .give_iterator(run.iter().cloned());
                            }
                        }
                    });
                }
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::operators::testing::collect;

    #[test]
    fn records_move_to_their_own_time_but_never_earlier() {
        let out = collect(2, vec![(0, vec![30u64, 10, 20]), (15, vec![5, 40])], |s| s.stamp_by(|t| *t));
        // 5 arrived at time 15: it cannot be stamped earlier than its message.
        assert_eq!(out, vec![(10, 10), (15, 5), (20, 20), (30, 30), (40, 40)]);
    }
}

//! Moving records from the watermark to their own event-time epoch.
//!
//! Ingest sends records at the watermark, so which timestamp a record travels at depends
//! on how the input was delivered. Per-record outputs (such as an alert for every
//! failed request) are restamped at their event time's epoch first: then the sink's
//! per-timestamp groups, and so the output bytes, depend only on the records.

use timely::dataflow::Stream;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::Operator;

use super::ingest::Timed;
use crate::time::{Duration, Millis, epoch_of};

/// Restamps records at the epoch of their event time.
pub trait AtEventTime<'scope, D> {
    /// Sends each `(record, time)` at timestamp `epoch_of(time, epoch)`.
    fn at_event_time(self, epoch: Duration) -> Stream<'scope, Millis, Vec<Timed<D>>>;
}

impl<'scope, D: Clone + 'static> AtEventTime<'scope, D> for Stream<'scope, Millis, Vec<Timed<D>>> {
    fn at_event_time(self, epoch: Duration) -> Stream<'scope, Millis, Vec<Timed<D>>> {
        self.unary::<timely::container::CapacityContainerBuilder<Vec<Timed<D>>>, _, _, _>(
            Pipeline,
            "AtEventTime",
            move |_cap, _info| {
                move |input, output| {
                    input.for_each_time(|cap, data| {
                        for batch in data {
                            batch.sort_by_key(|(_, t)| *t);
                            let mut rest = &mut batch[..];
                            while let Some(((_, first), _)) = rest.split_first() {
                                // Records are never behind the capability (late ones were set
                                // aside by ingest); `max` only guards the invariant.
                                let at = epoch_of(*first, epoch).max(*cap.time());
                                let run = rest
                                    .iter()
                                    .position(|(_, t)| epoch_of(*t, epoch).max(*cap.time()) != at)
                                    .unwrap_or(rest.len());
                                let (now, later) = rest.split_at_mut(run);
                                output
                                    .session(&cap.delayed(&at, 0))
                                    .give_iterator(now.iter().cloned());
                                rest = later;
                            }
                        }
                    });
                }
            },
        )
    }
}

//! Restamping records at their own event time.
//!
//! Ingest sends records at the watermark, which depends on how far each worker has
//! read. A result that should appear at a deterministic place in the output, such as a
//! per-record alert, is restamped at its event time: the sinks then write it with the
//! other results of that time, whatever the worker count or delivery.

use timely::dataflow::Stream;
use timely::dataflow::channels::pact::Pipeline;
use timely::dataflow::operators::generic::Operator;

use super::ingest::Timed;
use crate::time::Millis;

/// Moves each `(record, event_time)` to timestamp `event_time`.
pub trait AtEventTime<'scope, D> {
    /// The records, each at its own event time.
    fn at_event_time(self) -> Stream<'scope, Millis, Vec<D>>;
}

impl<'scope, D: 'static> AtEventTime<'scope, D> for Stream<'scope, Millis, Vec<Timed<D>>> {
    fn at_event_time(self) -> Stream<'scope, Millis, Vec<D>> {
        self.unary::<timely::container::CapacityContainerBuilder<Vec<D>>, _, _, _>(
            Pipeline,
            "AtEventTime",
            |_cap, _info| {
                let mut by_time: Vec<Timed<D>> = Vec::new();
                move |input, output| {
                    input.for_each_time(|cap, data| {
                        for batch in data {
                            by_time.append(batch);
                        }
                        // Records are never behind their capability: ingest sends them
                        // at the watermark, which trails every record it sends.
                        by_time.sort_by_key(|r| r.1);
                        let mut records = by_time.drain(..).peekable();
                        while let Some((record, time)) = records.next() {
                            let at = cap.delayed(&time, 0);
                            let mut session = output.session(&at);
                            session.give(record);
                            while let Some((record, _)) = records.next_if(|r| r.1 == time) {
                                session.give(record);
                            }
                        }
                    });
                }
            },
        )
    }
}

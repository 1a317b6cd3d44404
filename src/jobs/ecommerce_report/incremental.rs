//! The incremental report: every section kept up to date as differential collections.
//!
//! ```text
//! sales ─► (grouping, totals) updates per --emit-every ─► ((group, customer), totals)
//!            └─ sum and distinct customers per group ─┬──────────────────────────┬─► changes
//!                                                     └─ customers ─► top N ─► ranks ─┘
//! ```
//!
//! Each group's totals and distinct customers are kept by
//! [`SumDistinct`](crate::operators::SumDistinct): a time costs in proportion to the
//! sales it brings, not to the groups' histories.
//!
//! Top customers are ranked by [`TopK`](crate::operators::TopK), which keeps every
//! customer in order: a time costs the customers it changes plus N, not a re-ranking.

use std::cmp::Reverse;

use compact_str::CompactString;
use differential_dataflow::AsCollection;
use timely::dataflow::operators::Leave;
use timely::dataflow::operators::vec::Map;
use timely::dataflow::{Scope, Stream};

use super::{Sale, SalesRow, Section};
use crate::jobs::sales::Totals;
use crate::operators::ingest::Timed;
use crate::operators::{SumDistinct, ToUpdates, TopK, Windowing};
use crate::sink::Change;
use crate::time::{Duration, Millis, Time};

/// The incremental report over a stream of sales.
pub trait IncrementalReport<'scope> {
    /// The report's changes per `every` of event time, keeping the `top` customers;
    /// `customer` rows only if `all_customers`. The sales come from a job's checkpointed
    /// region; the report is kept in `outer`, its parent scope.
    fn incremental_report<'outer>(
        self,
        outer: Scope<'outer, Millis>,
        every: Duration,
        top: usize,
        all_customers: bool,
    ) -> Stream<'outer, Millis, Vec<Change<SalesRow>>>;
}

impl<'scope> IncrementalReport<'scope> for Stream<'scope, Time, Vec<Timed<Sale>>> {
    fn incremental_report<'outer>(
        self,
        outer: Scope<'outer, Millis>,
        every: Duration,
        top: usize,
        all_customers: bool,
    ) -> Stream<'outer, Millis, Vec<Change<SalesRow>>> {
        // Sales are summed per grouping and epoch while the epoch is incomplete, and
        // split into their groups only once complete, on their customer's worker.
        let groups = self
            .map(|(sale, time)| ((sale.grouping(time), sale.totals), time))
            .to_updates(every, Windowing::Global)
            .leave(outer)
            .as_collection()
            .sum_distinct(
                |(_window, grouping)| grouping.customer.clone(),
                |(_window, grouping), groups| grouping.for_each_group(|g| groups.push(g)),
            );
        let rows = groups
            .clone()
            .filter(move |(g, _)| g.section != Section::Customer || all_customers)
            .map(|(g, (t, c))| row(g.section, 0, g.key, t, c as i64));

        let ranked = groups
            .filter(|(g, _)| g.section == Section::Customer)
            .map(|(g, (t, _))| ((), (Reverse(t.total), g.key, t)))
            .top_k(top)
            .reduce(|_, input, output| {
                // At most `top` candidates: numbering them costs nothing.
                for (rank, (candidate, _)) in input.iter().enumerate() {
                    output.push(((rank as u32 + 1, (*candidate).clone()), 1isize));
                }
            })
            .map(|((), (rank, (_, customer, t)))| row(Section::TopCustomers, rank, customer, t, 1));

        // Each changes a row only when its value changes, so nothing here cancels.
        rows.concat(ranked)
            .inner
            .map(|(row, time, diff)| Change::new(SalesRow { time, ..row }, diff as i64, time))
    }
}

/// A report row at time 0; incremental rows take the time of their change.
fn row(section: Section, rank: u32, key: CompactString, totals: Totals, customers: i64) -> SalesRow {
    SalesRow { time: 0, section, rank, key, totals, customers }
}

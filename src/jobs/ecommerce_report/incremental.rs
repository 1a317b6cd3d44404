//! The incremental report: every section kept up to date as differential collections.
//!
//! ```text
//! sales ─► ((group, customer), totals) updates per --emit-every
//!            ├─ count_total per group ─────────────┐
//!            ├─ distinct customers ─► count_total ─┴─ join ─┐
//!            └─ customer totals ─► top N ─► ranks ──────────┴─► changes
//! ```
//!
//! Top customers are ranked by [`TopK`](crate::operators::TopK), hierarchically, so a
//! time re-ranks only the buckets its changed customers fall in.

use std::cmp::Reverse;

use compact_str::CompactString;
use differential_dataflow::AsCollection;
use differential_dataflow::operators::{CountTotal, ThresholdTotal};
use timely::dataflow::operators::Leave;
use timely::dataflow::operators::vec::Map;
use timely::dataflow::{Scope, Stream};

use super::{Sale, SalesRow, Section};
use crate::jobs::sales::Totals;
use crate::operators::ingest::Timed;
use crate::operators::{ToUpdates, TopK, Windowing};
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
        // One update per (group, customer): its value is the difference.
        let by_customer = self
            .flat_map(|(sale, time)| {
                let mut parts = Vec::with_capacity(6);
                sale.for_each_group(time, |g| {
                    parts.push((((g, sale.customer.clone()), sale.totals), time));
                });
                parts
            })
            .to_updates(every, Windowing::Global)
            .leave(outer)
            .as_collection()
            .map(|(_window, group_customer)| group_customer);

        let totals = by_customer.clone().map(|(g, _)| g).count_total();
        let customers = by_customer.distinct_total().map(|(g, _)| g).count_total();
        let groups = totals
            .clone()
            .join(customers)
            .filter(move |(g, _)| g.section != Section::Customer || all_customers)
            .map(|(g, (t, c))| row(g.section, 0, g.key, t, c as i64));

        let ranked = totals
            .filter(|(g, _)| g.section == Section::Customer)
            .map(|(g, t)| ((), (Reverse(t.total), g.key, t)))
            .top_k(top)
            .reduce(|_, input, output| {
                // At most `top` candidates: numbering them costs nothing.
                for (rank, (candidate, _)) in input.iter().enumerate() {
                    output.push(((rank as u32 + 1, (*candidate).clone()), 1isize));
                }
            })
            .map(|((), (rank, (_, customer, t)))| row(Section::TopCustomers, rank, customer, t, 1));

        // The join sees its two inputs' changes at one time in separate batches;
        // consolidating drops the pairs that cancel in between.
        groups
            .concat(ranked)
            .consolidate()
            .inner
            .map(|(row, time, diff)| Change::new(SalesRow { time, ..row }, diff as i64, time))
    }
}

/// A report row at time 0; incremental rows take the time of their change.
fn row(section: Section, rank: u32, key: CompactString, totals: Totals, customers: i64) -> SalesRow {
    SalesRow { time: 0, section, rank, key, totals, customers }
}

//! The batch report: every section folded over the whole input, reported once at its end.
//!
//! Two folds. Each worker owns whole customers (records are routed by customer), so it
//! can fold every group's totals and distinct customers among its own customers, and
//! pick its own top customers. When the input has ended each worker sends worker 0 its
//! partial groups and top candidates, and worker 0 merges them into the report: the
//! distinct-customer counts add up because no customer is on two workers.

use std::collections::BTreeMap;

use compact_str::CompactString;
use differential_dataflow::difference::Semigroup;
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};
use timely::dataflow::Stream;

use super::{Group, Sale, SalesRow, Section, customer_hash, top_order};
use crate::jobs::sales::Totals;
use crate::operators::FoldAtEnd;
use crate::operators::ingest::Timed;
use crate::time::{EventTime, Millis};

/// What a worker sends worker 0 when its share of the input is complete.
#[derive(Clone, Debug, Serialize, Deserialize)]
enum Partial {
    /// A group's totals and distinct customers among this worker's customers.
    Group(Group, Totals, i64),
    /// One of this worker's top customers.
    Top(CompactString, Totals),
    /// The largest event time seen.
    MaxEvent(Millis),
}

/// One worker's groups, per customer, and the largest event time it saw.
#[derive(Default, Serialize, Deserialize)]
struct Folded {
    groups: FxHashMap<(Group, CompactString), Totals>,
    max_event: Option<Millis>,
}

/// The report as worker 0 merges it.
#[derive(Default, Serialize, Deserialize)]
struct Merged {
    groups: BTreeMap<Group, (Totals, i64)>,
    best: Vec<(CompactString, Totals)>,
    max_event: Option<Millis>,
}

/// The batch report over a stream of sales.
pub trait BatchReport<'scope, T: EventTime> {
    /// Folds the sales into report rows, keeping the `top` customers; `customer` rows are
    /// included only if `all_customers`.
    fn batch_report(self, top: usize, all_customers: bool) -> Stream<'scope, T, Vec<SalesRow>>;
}

impl<'scope, T: EventTime> BatchReport<'scope, T> for Stream<'scope, T, Vec<Timed<Sale>>> {
    fn batch_report(self, top: usize, all_customers: bool) -> Stream<'scope, T, Vec<SalesRow>> {
        self.fold_at_end_by(
            "ReportFold",
            |(sale, _): &Timed<Sale>| customer_hash(&sale.customer),
            Folded::default(),
            |folded, (sale, time)| {
                folded.max_event = Some(folded.max_event.map_or(time, |m| m.max(time)));
                sale.for_each_group(time, |group| {
                    match folded.groups.get_mut(&(group.clone(), sale.customer.clone())) {
                        Some(t) => t.plus_equals(&sale.totals),
                        None => {
                            folded.groups.insert((group, sale.customer.clone()), sale.totals);
                        }
                    }
                });
            },
            move |folded| partials(folded, top, all_customers),
        )
        .fold_at_end(
            "ReportMerge",
            Merged::default(),
            |merged, partial| match partial {
                Partial::Group(g, t, c) => {
                    let slot = merged.groups.entry(g).or_default();
                    slot.0.plus_equals(&t);
                    slot.1 += c;
                }
                Partial::Top(c, t) => merged.best.push((c, t)),
                Partial::MaxEvent(m) => merged.max_event = Some(merged.max_event.map_or(m, |x| x.max(m))),
            },
            move |merged| rows(merged, top),
        )
    }
}

/// A worker's partial report: its groups (with distinct customers) and its top customers.
fn partials(folded: Folded, top: usize, all_customers: bool) -> Vec<Partial> {
    let mut groups: FxHashMap<Group, (Totals, i64)> = FxHashMap::default();
    let mut best: Vec<(CompactString, Totals)> = Vec::new();
    for ((group, customer), totals) in folded.groups {
        if group.section == Section::Customer {
            best.push((customer, totals));
        }
        let slot = groups.entry(group).or_default();
        slot.0.plus_equals(&totals);
        slot.1 += 1;
    }
    best.sort_by_cached_key(|(c, t)| top_order(c, t));
    best.truncate(top);
    let mut out: Vec<Partial> = groups
        .into_iter()
        .filter(|(group, _)| group.section != Section::Customer || all_customers)
        .map(|(group, (totals, customers))| Partial::Group(group, totals, customers))
        .collect();
    out.extend(best.into_iter().map(|(customer, totals)| Partial::Top(customer, totals)));
    out.extend(folded.max_event.map(Partial::MaxEvent));
    out
}

/// The report rows, stamped one past the largest event time.
fn rows(merged: Merged, top: usize) -> Vec<SalesRow> {
    let Merged { groups, mut best, max_event } = merged;
    let time = max_event.map_or(0, |m| m.saturating_add(1));
    best.sort_by_cached_key(|(c, t)| top_order(c, t));
    best.truncate(top);
    let mut out: Vec<SalesRow> = groups
        .into_iter()
        .map(|(group, (totals, customers))| SalesRow {
            time,
            section: group.section,
            rank: 0,
            key: group.key,
            totals,
            customers,
        })
        .collect();
    out.extend(best.into_iter().enumerate().map(|(rank, (customer, totals))| SalesRow {
        time,
        section: Section::TopCustomers,
        rank: rank as u32 + 1,
        key: customer,
        totals,
        customers: 1,
    }));
    out
}

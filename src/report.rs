//! The e-commerce report: the notebook's batch analytics as one multi-section table.
//!
//! Every transaction contributes to one group in each section:
//!
//! | section | key | notebook |
//! |---|---|---|
//! | `category` | product category | sales by category (sum, mean, count, quantity) |
//! | `daily` | UTC date `YYYY-MM-DD` of the event time | daily sales trend |
//! | `customer` | customer id | customer segmentation (spent, count) |
//! | `payment` | payment method | payment method analysis |
//! | `age_group` | `18-25`, `26-35`, `36-45`, `46-55`, `56+` | age groups |
//! | `overall` | `all` | total revenue, transactions, unique customers |
//!
//! Age groups follow pandas' `cut(bins=[0, 25, 35, 45, 55, 100])`: right-closed bins, so
//! `18-25` holds ages 1 to 25 and `56+` ages 56 to 100; an age of 0 or above 100 falls
//! in no bin and is left out of that section only, as pandas leaves out NaN groups.
//!
//! Besides these, `top_customers` ranks the `customer` groups by amount spent (highest
//! first, ties by customer id) and keeps the first `--top`.
//!
//! All sections share one row type, [`ReportRow`], so the CSV header and JSON keys are
//! the same for every row: `time,section,rank,key,total,count,quantity,mean,customers`.
//! `customers` counts the distinct customers of the group; `rank` is 1.. in
//! `top_customers` and 0 elsewhere. In incremental mode rows carry a trailing `diff`.

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::io::{self, Write};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use compact_str::CompactString;
use differential_dataflow::difference::Semigroup;
use rustc_hash::{FxHashMap, FxHasher};
use serde::{Deserialize, Serialize};
use timely::ExchangeData;
use timely::dataflow::Stream;
use timely::dataflow::channels::pact::Exchange;
use timely::dataflow::operators::Capability;
use timely::dataflow::operators::generic::Operator;

use crate::cli::Format;
use crate::job::Job;
use crate::money::Cents;
use crate::operators::ingest::{Timed, fail};
use crate::sink::{Cell, GatherSorted, Gathered, Tabular, WriteRows};
use crate::time::{DAY_MS, Millis, civil_from_days};
use crate::totals::Totals;

/// A part of the report.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Section {
    /// Sales by product category.
    Category,
    /// Sales per UTC day.
    Daily,
    /// The customers who spent most.
    TopCustomers,
    /// Spent and count per customer (printed with `--all-customers`).
    Customer,
    /// Sales by payment method.
    Payment,
    /// Sales by customer age group.
    AgeGroup,
    /// Everything.
    Overall,
}

impl Section {
    /// The section's name in CSV and JSON.
    pub fn name(self) -> &'static str {
        match self {
            Section::Category => "category",
            Section::Daily => "daily",
            Section::TopCustomers => "top_customers",
            Section::Customer => "customer",
            Section::Payment => "payment",
            Section::AgeGroup => "age_group",
            Section::Overall => "overall",
        }
    }

    /// The title of the section's table.
    fn title(self) -> &'static str {
        match self {
            Section::Category => "Sales by category",
            Section::Daily => "Daily sales",
            Section::TopCustomers => "Top customers",
            Section::Customer => "Customers",
            Section::Payment => "Payment methods",
            Section::AgeGroup => "Age groups",
            Section::Overall => "Overall",
        }
    }

    /// The columns a table of this section shows, by [`ReportRow`] column name.
    fn table_columns(self) -> &'static [&'static str] {
        match self {
            Section::Category | Section::AgeGroup => &["key", "total", "mean", "count", "quantity"],
            Section::Daily | Section::Payment => &["key", "total", "count", "mean"],
            Section::TopCustomers => &["rank", "key", "total", "count"],
            Section::Customer => &["key", "total", "count"],
            Section::Overall => &["total", "count", "customers", "quantity", "mean"],
        }
    }

    /// What the `key` column means in this section's table.
    fn key_name(self) -> &'static str {
        match self {
            Section::Category => "category",
            Section::Daily => "date",
            Section::TopCustomers | Section::Customer => "customer_id",
            Section::Payment => "payment_method",
            Section::AgeGroup => "age_group",
            Section::Overall => "all",
        }
    }
}

/// A group of transactions: one row of one section.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Group {
    /// The section.
    pub section: Section,
    /// The key within the section.
    pub key: CompactString,
}

/// What the report keeps of one transaction.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Sale {
    /// Customer id.
    pub customer: CompactString,
    /// Product category.
    pub category: CompactString,
    /// Payment method.
    pub payment: CompactString,
    /// Customer age.
    pub age: u8,
    /// Amount, count 1 and quantity.
    pub totals: Totals,
}

/// The age group label of `age`, as pandas' `cut` with bins `[0, 25, 35, 45, 55, 100]`.
pub fn age_group(age: u8) -> Option<&'static str> {
    match age {
        1..=25 => Some("18-25"),
        26..=35 => Some("26-35"),
        36..=45 => Some("36-45"),
        46..=55 => Some("46-55"),
        56..=100 => Some("56+"),
        _ => None,
    }
}

/// The UTC date of `time` as `YYYY-MM-DD`.
pub fn date_of(time: Millis) -> CompactString {
    let (y, m, d) = civil_from_days((time / DAY_MS) as i64);
    compact_str::format_compact!("{y:04}-{m:02}-{d:02}")
}

impl Sale {
    /// Calls `each` with every group the sale at `time` belongs to.
    pub fn for_each_group(&self, time: Millis, mut each: impl FnMut(Group)) {
        let g = |section, key: &str| Group { section, key: CompactString::from(key) };
        each(g(Section::Category, &self.category));
        each(Group { section: Section::Daily, key: date_of(time) });
        each(g(Section::Customer, &self.customer));
        each(g(Section::Payment, &self.payment));
        if let Some(label) = age_group(self.age) {
            each(g(Section::AgeGroup, label));
        }
        each(g(Section::Overall, "all"));
    }
}

/// One row of the report.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ReportRow {
    /// Batch: one past the last event time covered. Incremental: the start of the
    /// `--emit-every` interval whose data changed the row.
    pub time: Millis,
    /// The section.
    pub section: Section,
    /// Rank in `top_customers`, from 1; 0 in other sections.
    pub rank: u32,
    /// The group's key.
    pub key: CompactString,
    /// Amount, count and quantity.
    pub totals: Totals,
    /// Distinct customers.
    pub customers: i64,
}

const ROW_COLUMNS: [&str; 9] =
    ["time", "section", "rank", "key", "total", "count", "quantity", "mean", "customers"];

impl ReportRow {
    fn cell(&self, column: &str) -> Cell<'_> {
        let t = self.totals;
        match column {
            "time" => Cell::Time(self.time),
            "section" => Cell::Text(self.section.name()),
            "rank" => Cell::Int(self.rank as i64),
            "key" => Cell::Text(&self.key),
            "total" => Cell::Money(Cents(t.total)),
            "count" => Cell::Int(t.count),
            "quantity" => Cell::Int(t.quantity),
            "mean" => Cell::Money(Cents(t.total).mean(t.count.max(0) as u64)),
            "customers" => Cell::Int(self.customers),
            other => unreachable!("no report column {other}"),
        }
    }
}

impl Tabular for ReportRow {
    fn columns() -> &'static [&'static str] {
        &ROW_COLUMNS
    }
    fn cells<'a>(&'a self, out: &mut Vec<Cell<'a>>) {
        out.extend(ROW_COLUMNS.iter().map(|c| self.cell(c)));
    }
}

/// A change to a report row, as differential reports it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ReportChange {
    /// The row retracted or asserted.
    pub row: ReportRow,
    /// `-1` retracts, `+1` asserts.
    pub diff: i64,
}

impl Tabular for ReportChange {
    fn columns() -> &'static [&'static str] {
        &["time", "section", "rank", "key", "total", "count", "quantity", "mean", "customers", "diff"]
    }
    fn cells<'a>(&'a self, out: &mut Vec<Cell<'a>>) {
        self.row.cells(out);
        out.push(Cell::Int(self.diff));
    }
}

/// A row type the report sink can print: a [`ReportRow`] and maybe a diff.
pub trait ReportLine: Tabular + Ord + ExchangeData {
    /// The row.
    fn row(&self) -> &ReportRow;
    /// The diff, for changes.
    fn diff(&self) -> Option<i64>;
}

impl ReportLine for ReportRow {
    fn row(&self) -> &ReportRow {
        self
    }
    fn diff(&self) -> Option<i64> {
        None
    }
}

impl ReportLine for ReportChange {
    fn row(&self) -> &ReportRow {
        &self.row
    }
    fn diff(&self) -> Option<i64> {
        Some(self.diff)
    }
}

/// Orders customers for `top_customers`: most spent first, ties by customer id.
pub fn top_order(customer: &str, totals: &Totals) -> (std::cmp::Reverse<i64>, CompactString) {
    (std::cmp::Reverse(totals.total), CompactString::from(customer))
}

fn customer_hash(customer: &str) -> u64 {
    let mut h = FxHasher::default();
    customer.hash(&mut h);
    h.finish()
}

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

/// The batch report: every section folded over the whole input, reported once at its end.
pub trait BatchReport<'scope> {
    /// Folds the sales into report rows, keeping the `top` customers; `customer` rows are
    /// included only if `all_customers`.
    fn batch_report(self, top: usize, all_customers: bool) -> Stream<'scope, Millis, Vec<ReportRow>>;
}

impl<'scope> BatchReport<'scope> for Stream<'scope, Millis, Vec<Timed<Sale>>> {
    fn batch_report(self, top: usize, all_customers: bool) -> Stream<'scope, Millis, Vec<ReportRow>> {
        // Each worker owns whole customers, so per-worker distinct counts add up and
        // each customer's total is complete on one worker.
        let partials = self
            .unary_frontier::<timely::container::CapacityContainerBuilder<Vec<Partial>>, _, _, _>(
                Exchange::new(|(sale, _): &Timed<Sale>| customer_hash(&sale.customer)),
                "ReportFold",
                move |cap, _info| {
                    let mut held = Some(cap);
                    let mut groups: FxHashMap<(Group, CompactString), Totals> = FxHashMap::default();
                    let mut max_event: Option<Millis> = None;
                    move |(input, frontier), output| {
                        input.for_each_time(|_, data| {
                            for batch in data {
                                for (sale, time) in batch.drain(..) {
                                    max_event = Some(max_event.map_or(time, |m| m.max(time)));
                                    sale.for_each_group(time, |group| {
                                        match groups.get_mut(&(group.clone(), sale.customer.clone())) {
                                            Some(t) => t.plus_equals(&sale.totals),
                                            None => {
                                                groups.insert((group, sale.customer.clone()), sale.totals);
                                            }
                                        }
                                    });
                                }
                            }
                        });
                        if !frontier.is_empty() {
                            return;
                        }
                        let Some(cap) = held.take() else { return };
                        let mut folded: FxHashMap<Group, (Totals, i64)> = FxHashMap::default();
                        let mut best: Vec<(CompactString, Totals)> = Vec::new();
                        for ((group, customer), totals) in groups.drain() {
                            if group.section == Section::Customer {
                                best.push((customer, totals));
                            }
                            let slot = folded.entry(group).or_default();
                            slot.0.plus_equals(&totals);
                            slot.1 += 1;
                        }
                        best.sort_by_cached_key(|(c, t)| top_order(c, t));
                        best.truncate(top);
                        let mut session = output.session(&cap);
                        for (group, (totals, customers)) in folded {
                            if group.section != Section::Customer || all_customers {
                                session.give(Partial::Group(group, totals, customers));
                            }
                        }
                        for (customer, totals) in best {
                            session.give(Partial::Top(customer, totals));
                        }
                        if let Some(m) = max_event {
                            session.give(Partial::MaxEvent(m));
                        }
                    }
                },
            );

        partials.unary_frontier::<timely::container::CapacityContainerBuilder<Vec<ReportRow>>, _, _, _>(
            Exchange::new(|_: &Partial| 0),
            "ReportMerge",
            move |_cap, _info| {
                let mut held: Option<Capability<Millis>> = None;
                let mut groups: BTreeMap<Group, (Totals, i64)> = BTreeMap::new();
                let mut best: Vec<(CompactString, Totals)> = Vec::new();
                let mut max_event: Option<Millis> = None;
                move |(input, frontier), output| {
                    input.for_each_time(|cap, data| {
                        if held.is_none() {
                            held = Some(cap.retain(0));
                        }
                        for batch in data {
                            for partial in batch.drain(..) {
                                match partial {
                                    Partial::Group(g, t, c) => {
                                        let slot = groups.entry(g).or_default();
                                        slot.0.plus_equals(&t);
                                        slot.1 += c;
                                    }
                                    Partial::Top(c, t) => best.push((c, t)),
                                    Partial::MaxEvent(m) => {
                                        max_event = Some(max_event.map_or(m, |x| x.max(m)))
                                    }
                                }
                            }
                        }
                    });
                    if !frontier.is_empty() {
                        return;
                    }
                    let Some(cap) = held.take() else { return };
                    let time = max_event.map_or(0, |m| m.saturating_add(1));
                    best.sort_by_cached_key(|(c, t)| top_order(c, t));
                    best.truncate(top);
                    let mut session = output.session(&cap);
                    for (group, (totals, customers)) in std::mem::take(&mut groups) {
                        session.give(ReportRow {
                            time,
                            section: group.section,
                            rank: 0,
                            key: group.key,
                            totals,
                            customers,
                        });
                    }
                    for (rank, (customer, totals)) in best.drain(..).enumerate() {
                        session.give(ReportRow {
                            time,
                            section: Section::TopCustomers,
                            rank: rank as u32 + 1,
                            key: customer,
                            totals,
                            customers: 1,
                        });
                    }
                }
            },
        )
    }
}

/// Writes report rows: CSV or JSON lines like any sink, or a titled table per section.
pub trait WriteReport<'scope, R> {
    /// Gathers rows to worker 0 and writes each complete timestamp's rows, sorted.
    fn write_report(self, job: &Arc<Job>);
}

impl<'scope, R: ReportLine> WriteReport<'scope, R> for Stream<'scope, Millis, Vec<R>> {
    fn write_report(self, job: &Arc<Job>) {
        // CSV and JSON are plain rows: the shared sink writes them.
        if job.common.format != Format::Table {
            return self.write_rows(job);
        }
        let mut out = job.take_output(self.scope().index());
        let job = Arc::clone(job);
        self.gather_sorted("WriteReport", move |gathered| {
            let result = match gathered {
                Gathered::Frontier(_) => Ok(()),
                Gathered::Complete(rows) => {
                    job.meters().rows_out.fetch_add(rows.len() as u64, Ordering::Relaxed);
                    // Tables are for people watching: each completed time is flushed.
                    out.as_mut().map_or(Ok(()), |o| write_tables(o, &rows).and_then(|()| o.flush()))
                }
                Gathered::Closed => out.take().map_or(Ok(()), |mut o| o.flush()),
            };
            if let Err(e) = result {
                write_failed(&e);
            }
        });
    }
}

fn write_failed(e: &io::Error) -> ! {
    if e.kind() == io::ErrorKind::BrokenPipe {
        std::process::exit(0);
    }
    fail(&format!("writing output: {}", crate::source::io_reason(e)))
}

/// Writes sorted rows as one titled, aligned table per (time, section).
fn write_tables<R: ReportLine>(out: &mut impl Write, rows: &[R]) -> io::Result<()> {
    let mut start = 0;
    while start < rows.len() {
        let first = rows[start].row();
        let end = start
            + rows[start..]
                .iter()
                .take_while(|r| r.row().time == first.time && r.row().section == first.section)
                .count();
        let section = first.section;
        let changes = rows[start].diff().is_some();
        let mut when = Vec::new();
        crate::time::write_iso8601(&mut when, first.time);
        let when = String::from_utf8_lossy(&when);
        let title = if changes {
            format!("{} (changes at {when})", section.title())
        } else {
            format!("{} (events before {when})", section.title())
        };
        let mut header: Vec<&str> = section
            .table_columns()
            .iter()
            .map(|c| if *c == "key" { section.key_name() } else { *c })
            .collect();
        if changes {
            header.push("diff");
        }
        let mut table: Vec<Vec<(String, bool)>> = Vec::new();
        for line in &rows[start..end] {
            let mut cells: Vec<(String, bool)> =
                section.table_columns().iter().map(|c| render(line.row().cell(c))).collect();
            if let Some(d) = line.diff() {
                cells.push((d.to_string(), true));
            }
            table.push(cells);
        }
        writeln!(out, "{title}")?;
        write_aligned(out, &header, &table)?;
        writeln!(out)?;
        start = end;
    }
    Ok(())
}

fn render(cell: Cell<'_>) -> (String, bool) {
    match cell {
        Cell::Time(t) => (crate::time::format_iso8601(t), true),
        Cell::Int(v) => (v.to_string(), true),
        Cell::Money(c) => (c.to_string(), true),
        Cell::Text(s) => (s.to_owned(), false),
        Cell::Ratio(v, d) => (format!("{v:.d$}"), true),
    }
}

fn write_aligned(out: &mut impl Write, header: &[&str], rows: &[Vec<(String, bool)>]) -> io::Result<()> {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, (text, _)) in widths.iter_mut().zip(row) {
            *w = (*w).max(text.chars().count());
        }
    }
    let numeric: Vec<bool> = (0..header.len()).map(|i| rows.first().is_some_and(|r| r[i].1)).collect();
    let line = |cells: Vec<(&str, bool)>| {
        let mut s = String::new();
        for (i, ((text, right), w)) in cells.iter().zip(&widths).enumerate() {
            if i > 0 {
                s.push_str("  ");
            }
            if *right {
                s.push_str(&format!("{text:>w$}"));
            } else {
                s.push_str(&format!("{text:<w$}"));
            }
        }
        s.trim_end().to_owned()
    };
    writeln!(out, "{}", line(header.iter().zip(&numeric).map(|(h, n)| (*h, *n)).collect()))?;
    writeln!(out, "{}", widths.iter().map(|w| "-".repeat(*w)).collect::<Vec<_>>().join("  "))?;
    for row in rows {
        writeln!(out, "{}", line(row.iter().map(|(t, n)| (t.as_str(), *n)).collect()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn age_groups_follow_pandas_cut() {
        assert_eq!(age_group(0), None);
        assert_eq!(age_group(1), Some("18-25"));
        assert_eq!(age_group(25), Some("18-25"));
        assert_eq!(age_group(26), Some("26-35"));
        assert_eq!(age_group(55), Some("46-55"));
        assert_eq!(age_group(56), Some("56+"));
        assert_eq!(age_group(100), Some("56+"));
        assert_eq!(age_group(101), None);
    }

    #[test]
    fn dates_are_utc() {
        assert_eq!(date_of(crate::record::DEFAULT_START), "2026-10-01");
        assert_eq!(date_of(crate::record::DEFAULT_START + DAY_MS - 1), "2026-10-01");
        assert_eq!(date_of(crate::record::DEFAULT_START + DAY_MS), "2026-10-02");
    }

    #[test]
    fn top_order_is_most_spent_then_id() {
        let t = |total| Totals { total, count: 1, quantity: 1 };
        let mut v = [("B", t(5)), ("A", t(5)), ("C", t(9))];
        v.sort_by_key(|(c, t)| top_order(c, t));
        assert_eq!(v.iter().map(|x| x.0).collect::<Vec<_>>(), ["C", "A", "B"]);
    }
}

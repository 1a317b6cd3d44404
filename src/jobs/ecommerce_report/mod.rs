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
//! All sections share one row type, [`SalesRow`], so the CSV header and JSON keys are
//! the same for every row: `time,section,rank,key,total,count,quantity,mean,customers`.
//! `customers` counts the distinct customers of the group; `rank` is 1.. in
//! `top_customers` and 0 elsewhere. In incremental mode rows carry a trailing `diff`.
//! In `--format table` each section of a completed time is a titled table of its own.
//!
//! The report is computed by [`batch`] (folded once over the whole input) or by
//! [`incremental`] (kept up to date as differential collections).

pub mod batch;
pub mod incremental;

use std::hash::{Hash, Hasher};

use compact_str::CompactString;
use rustc_hash::FxHasher;
use serde::{Deserialize, Serialize};

use super::sales::Totals;
use crate::money::Cents;
use crate::sink::{Cell, Layout, Tabular};
use crate::time::{DAY_MS, Millis, civil_from_days};

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

    /// The columns a table of this section shows, by [`SalesRow`] column name.
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
    pub fn for_each_group(&self, time: Millis, each: impl FnMut(Group)) {
        self.grouping(time).for_each_group(each)
    }

    /// What decides the groups of the sale at `time`.
    pub fn grouping(&self, time: Millis) -> Grouping {
        Grouping {
            customer: self.customer.clone(),
            category: self.category.clone(),
            payment: self.payment.clone(),
            age: self.age,
            day: time / DAY_MS,
        }
    }
}

/// What decides a sale's groups: all of it but its totals, and its UTC day. Sales with
/// the same grouping can be summed before they are split into groups.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Grouping {
    /// Customer id.
    pub customer: CompactString,
    /// Product category.
    pub category: CompactString,
    /// Payment method.
    pub payment: CompactString,
    /// Customer age.
    pub age: u8,
    /// Days since the Unix epoch, UTC.
    pub day: Millis,
}

impl Grouping {
    /// Calls `each` with every group of the sales with this grouping.
    pub fn for_each_group(&self, mut each: impl FnMut(Group)) {
        let g = |section, key: &str| Group { section, key: CompactString::from(key) };
        each(g(Section::Category, &self.category));
        each(Group { section: Section::Daily, key: date_of(self.day * DAY_MS) });
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
pub struct SalesRow {
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

impl SalesRow {
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

impl Tabular for SalesRow {
    fn current_key() -> &'static [&'static str] {
        &["section", "rank", "key"]
    }

    fn columns() -> Vec<&'static str> {
        ROW_COLUMNS.to_vec()
    }
    fn cells<'a>(&'a self, out: &mut Vec<Cell<'a>>) {
        out.extend(ROW_COLUMNS.iter().map(|c| self.cell(c)));
    }
    fn layout(&self, changes: bool) -> Option<Layout> {
        let section = self.section;
        let when = crate::time::format_iso8601(self.time);
        let title = if changes {
            format!("{} (changes at {when})", section.title())
        } else {
            format!("{} (events before {when})", section.title())
        };
        let columns = section
            .table_columns()
            .iter()
            .map(|c| (*c, if *c == "key" { section.key_name() } else { *c }))
            .collect();
        Some(Layout { title, columns })
    }
}

/// Orders customers for `top_customers`: most spent first, ties by customer id.
pub fn top_order(customer: &str, totals: &Totals) -> (std::cmp::Reverse<i128>, CompactString) {
    (std::cmp::Reverse(totals.total), CompactString::from(customer))
}

/// A customer's stable hash, for routing and bucketing customers.
pub fn customer_hash(customer: &str) -> u64 {
    let mut h = FxHasher::default();
    customer.hash(&mut h);
    h.finish()
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

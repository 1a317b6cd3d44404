//! Sales totals: an amount, a count and a quantity that add up exactly.
//!
//! [`Totals`] is both the batch fold's value and differential's difference type, so the
//! two modes sum the same integers and a consolidated incremental output equals the
//! batch output by construction.

use compact_str::CompactString;
use differential_dataflow::difference::{IsZero, Monoid, Semigroup};
use serde::{Deserialize, Serialize};

use crate::money::Cents;
use crate::sink::{Cell, Tabular};
use crate::time::Millis;

/// Amount, count and quantity of a group of transactions.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Totals {
    /// Sum of amounts in cents.
    pub total: i64,
    /// Number of transactions.
    pub count: i64,
    /// Sum of quantities.
    pub quantity: i64,
}

impl Totals {
    /// The totals of one transaction.
    pub fn one(amount: Cents, quantity: u32) -> Self {
        Totals { total: amount.0, count: 1, quantity: quantity as i64 }
    }
}

impl IsZero for Totals {
    fn is_zero(&self) -> bool {
        self.total == 0 && self.count == 0 && self.quantity == 0
    }
}

impl Semigroup for Totals {
    #[inline]
    fn plus_equals(&mut self, rhs: &Self) {
        self.total += rhs.total;
        self.count += rhs.count;
        self.quantity += rhs.quantity;
    }
}

impl Monoid for Totals {
    fn zero() -> Self {
        Totals::default()
    }
}

/// A key's totals at a time: a batch result row.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TotalsRow {
    /// Upper bound (exclusive) of the event times covered.
    pub time: Millis,
    /// The group, e.g. a product category.
    pub key: CompactString,
    /// Its totals.
    pub totals: Totals,
}

/// Columns of [`TotalsRow`] for per-category output.
pub const CATEGORY_COLUMNS: &[&str] = &["time", "category", "total", "count", "quantity", "mean"];

impl Tabular for TotalsRow {
    fn columns() -> &'static [&'static str] {
        CATEGORY_COLUMNS
    }
    fn cells<'a>(&'a self, out: &mut Vec<Cell<'a>>) {
        let t = self.totals;
        out.extend([
            Cell::Time(self.time),
            Cell::Text(&self.key),
            Cell::Money(Cents(t.total)),
            Cell::Int(t.count),
            Cell::Int(t.quantity),
            Cell::Money(Cents(t.total).mean(t.count.max(0) as u64)),
        ]);
    }
}

/// A change to a key's totals: an incremental result row, as differential reports it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TotalsChange {
    /// The time of the change.
    pub time: Millis,
    /// The group.
    pub key: CompactString,
    /// `-1` retracts an old value, `+1` asserts a new one.
    pub diff: i64,
    /// The totals being retracted or asserted.
    pub totals: Totals,
}

impl Tabular for TotalsChange {
    fn columns() -> &'static [&'static str] {
        &["time", "category", "total", "count", "quantity", "diff"]
    }
    fn cells<'a>(&'a self, out: &mut Vec<Cell<'a>>) {
        let t = self.totals;
        out.extend([
            Cell::Time(self.time),
            Cell::Text(&self.key),
            Cell::Money(Cents(t.total)),
            Cell::Int(t.count),
            Cell::Int(t.quantity),
            Cell::Int(self.diff),
        ]);
    }
}

//! Per-category sales totals: the rows of the `category_totals` job.
//!
//! Batch rows are [`CategoryRow`]s (`time,category,total,count,quantity,mean`);
//! incremental rows are changes to [`CategoryTotals`]
//! (`time,category,total,count,quantity,diff`). The mean is left out of changes: it is
//! derived, and a change says what was added to or taken from the totals.

use compact_str::CompactString;
use serde::{Deserialize, Serialize};

use super::sales::Totals;
use crate::money::Cents;
use crate::sink::{Cell, Tabular};
use crate::time::Millis;

/// A category's totals at a time.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct CategoryTotals {
    /// Batch: upper bound (exclusive) of the event times covered. Incremental: the time
    /// of the change.
    pub time: Millis,
    /// The product category.
    pub key: CompactString,
    /// Its totals.
    pub totals: Totals,
}

impl Tabular for CategoryTotals {
    fn current_key() -> &'static [&'static str] {
        &["category"]
    }

    fn columns() -> Vec<&'static str> {
        vec!["time", "category", "total", "count", "quantity"]
    }
    fn cells<'a>(&'a self, out: &mut Vec<Cell<'a>>) {
        let t = self.totals;
        out.extend([
            Cell::Time(self.time),
            Cell::Text(&self.key),
            Cell::Money(Cents(t.total)),
            Cell::Int(t.count),
            Cell::Int(t.quantity),
        ]);
    }
}

/// A batch result row: a category's totals and their mean.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct CategoryRow(pub CategoryTotals);

impl Tabular for CategoryRow {
    fn current_key() -> &'static [&'static str] {
        &["category"]
    }

    fn columns() -> Vec<&'static str> {
        let mut columns = CategoryTotals::columns();
        columns.push("mean");
        columns
    }
    fn cells<'a>(&'a self, out: &mut Vec<Cell<'a>>) {
        self.0.cells(out);
        let t = self.0.totals;
        out.push(Cell::Money(Cents(t.total).mean(t.count.max(0) as u64)));
    }
}

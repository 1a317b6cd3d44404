//! A change to a result row: the row and its difference, as differential reports it.
//!
//! Incremental jobs report `-1` for a row that is retracted and `+1` for a row that is
//! asserted. [`Change`] wraps any row type: its columns are the row's columns followed
//! by `diff`, so every incremental output has the same shape as its batch output plus
//! one column, and summing the diffs per row gives the batch table.

use serde::{Deserialize, Serialize};

use super::tabular::{Cell, Layout, Tabular};
use crate::time::Millis;

/// A row retracted (`diff` -1) or asserted (`diff` +1).
///
/// Ordered by the row, then the diff: within a completed time, changes are written in
/// the row type's own order.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Change<R> {
    /// The row.
    pub row: R,
    /// How many copies of the row are added (negative: removed).
    pub diff: i64,
    /// The event time at which the change happened: the changes of one time are
    /// written together, once the watermark has passed it.
    pub at: Millis,
}

impl<R> Change<R> {
    /// A change of `diff` copies of `row`, happening at event time `at`.
    pub fn new(row: R, diff: i64, at: Millis) -> Self {
        Change { row, diff, at }
    }
}

impl<R: Tabular> Tabular for Change<R> {
    fn columns() -> Vec<&'static str> {
        let mut columns = R::columns();
        columns.push("diff");
        columns
    }

    fn cells<'a>(&'a self, out: &mut Vec<Cell<'a>>) {
        self.row.cells(out);
        out.push(Cell::Int(self.diff));
    }

    fn layout(&self, _changes: bool) -> Option<Layout> {
        self.row.layout(true).map(|mut layout| {
            layout.columns.push(("diff", "diff"));
            layout
        })
    }

    fn group_time(&self) -> Option<Millis> {
        Some(self.at)
    }

    fn current_key() -> &'static [&'static str] {
        R::current_key()
    }

    fn is_change() -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Row(i64);
    impl Tabular for Row {
        fn columns() -> Vec<&'static str> {
            vec!["value"]
        }
        fn cells<'a>(&'a self, out: &mut Vec<Cell<'a>>) {
            out.push(Cell::Int(self.0));
        }
    }

    #[test]
    fn a_change_is_its_row_and_a_diff_column() {
        assert_eq!(Change::<Row>::columns(), ["value", "diff"]);
        let mut cells = Vec::new();
        let change = Change::new(Row(7), -1, 3);
        assert_eq!(change.group_time(), Some(3));
        change.cells(&mut cells);
        assert_eq!(cells, [Cell::Int(7), Cell::Int(-1)]);
    }
}

//! The row model every sink renders: what a row's columns are and what each cell holds.
//!
//! A row type implements [`Tabular`]; its cells are [`Cell`]s, and a group of rows may be
//! split into titled tables by [`Layout`], as a report does per section. How cells are
//! printed is the formats' business (`format`, `html`).

use crate::money::Cents;
use crate::time::Millis;

/// One output value.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Cell<'a> {
    /// An event time in milliseconds; printed as an integer, or ISO 8601 in tables.
    Time(Millis),
    /// A signed integer.
    Int(i64),
    /// A signed integer too wide for [`Cell::Int`], such as a sum of byte counts.
    Wide(i128),
    /// An amount of money, printed with two decimals.
    Money(Cents),
    /// Text.
    Text(&'a str),
    /// A ratio, printed with the given number of decimals.
    Ratio(f64, usize),
    /// A measurement, printed in the shortest form that reads back as the same `f64`.
    Real(f64),
    /// An exact fixed-point number: the integer and its number of decimals (`(-50, 3)`
    /// prints `-0.050`).
    Fixed(i128, u32),
    /// No value: empty in CSV and tables, `null` in JSON.
    Null,
}

/// A titled table within a group of rows, for `--format table`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Layout {
    /// Printed above the table; consecutive rows with the same title form one table.
    pub title: String,
    /// The columns shown, by name, each with the header it is shown under.
    pub columns: Vec<(&'static str, &'static str)>,
}

/// A row type that sinks can print.
pub trait Tabular {
    /// Column names, in order.
    fn columns() -> Vec<&'static str>;
    /// Appends this row's cells, one per column.
    fn cells<'a>(&'a self, out: &mut Vec<Cell<'a>>);
    /// For `--format table`: the titled table this row belongs to, if the rows of a
    /// group are shown as several tables; `changes` is set when the row is shown as a
    /// change ([`super::Change`] adds a `diff` column). By default a group is one table
    /// of every column.
    fn layout(&self, _changes: bool) -> Option<Layout> {
        None
    }
    /// The event time whose group this row is written in, if the row names it (a
    /// change names the time it happened); by default, the time of the row's message.
    ///
    /// Rows that name their time can travel in few, large messages stamped earlier than
    /// their own times (as differential sends them), instead of one message per time.
    fn group_time(&self) -> Option<Millis> {
        None
    }
    /// The columns that name what a row is about, for views that keep each key's current
    /// row (the dashboard); none by default: such rows are events, not a key's value.
    fn current_key() -> &'static [&'static str] {
        &[]
    }
    /// Whether rows are changes whose last column is their `diff` ([`super::Change`]).
    fn is_change() -> bool {
        false
    }
}

/// Which cells a table shows (their index among `columns`), under which headers: the
/// layout's columns, or every column.
pub fn shown_columns<'a>(columns: &[&'a str], layout: Option<&'a Layout>) -> Vec<(usize, &'a str)> {
    match layout {
        Some(l) => l
            .columns
            .iter()
            .map(|(name, header)| {
                (columns.iter().position(|c| c == name).expect("layout names a column"), *header)
            })
            .collect(),
        None => columns.iter().copied().enumerate().collect(),
    }
}

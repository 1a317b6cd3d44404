//! The latest rows a job wrote, kept for people watching it: a bounded ring per output.
//!
//! Contract: for each output name (`output` for the results, side outputs such as
//! `alerts` by their own names) the ring holds the last [`Latest::capacity`] rows
//! written, oldest first, already rendered as text cells, with the output's column
//! names. Memory is bounded by `capacity` rows per output, whatever the run's length.
//! Each row carries its sequence number among all rows written to that output, so a
//! reader can tell how many it missed. Sinks push only when a job is watched
//! (`--http`), so an unwatched job pays nothing.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;

use serde::Serialize;

/// Rows of one output: its columns and its most recent rows.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct Rows {
    /// The output's column names.
    pub columns: Vec<&'static str>,
    /// The most recent rows, oldest first: `(sequence number from 1, cells)`.
    pub rows: VecDeque<(u64, Vec<String>)>,
    /// Rows written to this output so far.
    pub written: u64,
}

/// The latest rows of every output of one process.
#[derive(Debug)]
pub struct Latest {
    capacity: usize,
    outputs: Mutex<BTreeMap<&'static str, Rows>>,
}

impl Latest {
    /// Keeps the last `capacity` rows of each output.
    pub fn new(capacity: usize) -> Self {
        Latest { capacity, outputs: Mutex::new(BTreeMap::new()) }
    }

    /// How many rows are kept per output.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Notes that `count` rows were written to `output`, whose columns are `columns`;
    /// `render(i)` gives the cells of the `i`-th of them. Only the last `capacity` are
    /// rendered, so a huge group costs no more than a small one.
    pub fn wrote(
        &self,
        output: &'static str,
        columns: impl FnOnce() -> Vec<&'static str>,
        count: usize,
        mut render: impl FnMut(usize) -> Vec<String>,
    ) {
        let mut outputs = self.outputs.lock().expect("latest rows lock");
        let rows = outputs.entry(output).or_default();
        if rows.columns.is_empty() {
            rows.columns = columns();
        }
        let first = count.saturating_sub(self.capacity);
        let base = rows.written + 1;
        for i in first..count {
            if rows.rows.len() == self.capacity {
                rows.rows.pop_front();
            }
            rows.rows.push_back((base + i as u64, render(i)));
        }
        rows.written += count as u64;
    }

    /// A copy of every output's latest rows.
    pub fn snapshot(&self) -> BTreeMap<&'static str, Rows> {
        self.outputs.lock().expect("latest rows lock").clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_only_the_last_rows_of_each_output_and_counts_all() {
        let latest = Latest::new(3);
        let cells = |i: usize| vec![i.to_string()];
        latest.wrote("output", || vec!["n"], 2, cells);
        latest.wrote("output", || vec!["ignored"], 1_000_000, cells);
        latest.wrote("alerts", || vec!["a"], 1, cells);
        let shown = latest.snapshot();
        let out = &shown["output"];
        assert_eq!(out.columns, vec!["n"]);
        assert_eq!(out.written, 1_000_002);
        let kept: Vec<_> = out.rows.iter().map(|(seq, c)| (*seq, c[0].as_str())).collect();
        assert_eq!(kept, vec![(1_000_000, "999997"), (1_000_001, "999998"), (1_000_002, "999999")]);
        assert_eq!(shown["alerts"].rows.len(), 1);
    }
}

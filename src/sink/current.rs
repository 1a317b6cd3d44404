//! What a watched job keeps of one output for its dashboard: the last rows written and,
//! when the row type names a key ([`Tabular::current_key`]), each key's current row.
//!
//! Contract, for one output:
//!
//! * a ring holds the last `capacity` rows written, oldest first, each with its sequence
//!   number among all rows written (from 1), so a reader can tell how many it missed;
//! * with a key, a table holds each key's current row: the latest row written for it or,
//!   for changes ([`Tabular::is_change`]), the rows whose diffs sum to more than zero, the
//!   way summing a change log per row gives the result. A row of a change log is named
//!   by its cells but the first (its time, which a retraction gives as the time of its
//!   change). At most `capacity` × [`KEYS_PER_RING_ROW`] keys are tracked: a key first
//!   seen beyond that is counted as untracked and not shown; a change log's key leaves the
//!   table when its rows sum to zero, which frees its place; a retraction of a key not in
//!   the table is ignored (it retracts a row the table never had).
//!
//! Memory is bounded by these limits, whatever the run's length. Rows are kept as they
//! are and rendered when read; per row written the sink pays a copy and, with a key, the
//! key's text and one hash lookup (a change log's rows are rendered, to be matched).

use std::any::Any;
use std::collections::VecDeque;

use rustc_hash::FxHashMap as HashMap;

use super::tabular::{Cell, Tabular};
use crate::metrics::latest::{Current, Rows, View};

/// How many keys are tracked per output, for each row of the ring.
pub const KEYS_PER_RING_ROW: usize = 10;

/// A change log's rows of one key: cells without the diff, summed diff, last change.
type Summed = Vec<(Vec<String>, i64, u64)>;

/// The kept rows of one output of row type `R`.
pub struct Watch<R> {
    capacity: usize,
    ring: VecDeque<(u64, R)>,
    written: u64,
    /// Where each key column is among the cells.
    key_at: Vec<usize>,
    key: Vec<u8>,
    cells: Vec<String>,
    /// Latest rows by key (rows that are not changes).
    latest: HashMap<Vec<u8>, (u64, R)>,
    /// A change log's rows by key.
    summed: HashMap<Vec<u8>, Summed>,
    untracked: u64,
}

impl<R: Tabular + Clone + Send + 'static> Watch<R> {
    /// Keeps the last `capacity` rows, and the current rows of up to `capacity` ×
    /// [`KEYS_PER_RING_ROW`] keys.
    pub fn new(capacity: usize) -> Self {
        let columns = R::columns();
        let key_at = R::current_key()
            .iter()
            .map(|k| columns.iter().position(|c| c == k).expect("a key names a column"))
            .collect();
        Watch {
            capacity,
            ring: VecDeque::new(),
            written: 0,
            key_at,
            key: Vec::new(),
            cells: Vec::new(),
            latest: HashMap::default(),
            summed: HashMap::default(),
            untracked: 0,
        }
    }

    /// Notes that `rows` were written, in this order.
    pub fn wrote(&mut self, rows: &[R]) {
        let mut cells = Vec::new();
        for (i, row) in rows.iter().enumerate() {
            let seq = self.written + 1 + i as u64;
            if i + self.capacity >= rows.len() {
                if self.ring.len() == self.capacity {
                    self.ring.pop_front();
                }
                self.ring.push_back((seq, row.clone()));
            }
            if self.key_at.is_empty() {
                continue;
            }
            cells.clear();
            row.cells(&mut cells);
            self.key.clear();
            for &k in &self.key_at {
                cells[k].write_plain(&mut self.key, false);
                self.key.push(0x1f);
            }
            if R::is_change() {
                self.cells.clear();
                self.cells.extend(cells.iter().map(Cell::text));
                self.sum(seq);
            } else {
                self.replace(seq, row);
            }
        }
        self.written += rows.len() as u64;
    }

    fn limit(&self) -> usize {
        self.capacity * KEYS_PER_RING_ROW
    }

    /// Keeps `row` as its key's latest.
    fn replace(&mut self, seq: u64, row: &R) {
        let limit = self.limit();
        if let Some(kept) = self.latest.get_mut(self.key.as_slice()) {
            *kept = (seq, row.clone());
        } else if self.latest.len() < limit {
            self.latest.insert(self.key.clone(), (seq, row.clone()));
        } else {
            self.untracked += 1;
        }
    }

    /// Adds the change in `self.cells` to its key's rows.
    fn sum(&mut self, seq: u64) {
        let diff = self.cells.pop().and_then(|d| d.parse::<i64>().ok()).unwrap_or(0);
        let limit = self.limit();
        let Some(values) = self.summed.get_mut(self.key.as_slice()) else {
            if diff > 0 && self.summed.len() < limit {
                self.summed.insert(self.key.clone(), vec![(std::mem::take(&mut self.cells), diff, seq)]);
            } else if diff > 0 {
                self.untracked += 1;
            }
            return;
        };
        match values.iter_mut().find(|(c, _, _)| c.get(1..) == self.cells.get(1..)) {
            Some(value) => {
                value.1 += diff;
                value.2 = seq;
                if diff > 0 {
                    value.0 = std::mem::take(&mut self.cells);
                }
            }
            None if diff > 0 => values.push((std::mem::take(&mut self.cells), diff, seq)),
            None => {}
        }
        values.retain(|(_, d, _)| *d > 0);
        if values.is_empty() {
            self.summed.remove(self.key.as_slice());
        }
    }
}

fn render<R: Tabular>(row: &R) -> Vec<String> {
    let mut cells = Vec::new();
    row.cells(&mut cells);
    cells.iter().map(Cell::text).collect()
}

impl<R: Tabular + Clone + Send + 'static> View for Watch<R> {
    fn rows(&self) -> Rows {
        let columns = R::columns();
        let current = (!self.key_at.is_empty()).then(|| {
            let mut rows: Vec<(u64, Vec<String>)> = match R::is_change() {
                true => self
                    .summed
                    .values()
                    .flat_map(|values| values.iter().map(|(cells, _, seq)| (*seq, cells.clone())))
                    .collect(),
                false => self.latest.values().map(|(seq, row)| (*seq, render(row))).collect(),
            };
            rows.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
            Current {
                key: R::current_key().to_vec(),
                columns: columns[..columns.len() - R::is_change() as usize].to_vec(),
                rows,
                untracked: self.untracked,
            }
        });
        Rows {
            rows: self.ring.iter().map(|(seq, row)| (*seq, render(row))).collect(),
            columns,
            written: self.written,
            current,
        }
    }

    fn as_any(&mut self) -> &mut dyn Any {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::latest::Latest;
    use crate::sink::Change;

    /// A row `time,k,v`, keyed by `k` when `KEYED`.
    #[derive(Clone, Debug, PartialEq)]
    struct Row<const KEYED: bool>(i64, &'static str, i64);

    impl<const KEYED: bool> Tabular for Row<KEYED> {
        fn columns() -> Vec<&'static str> {
            vec!["time", "k", "v"]
        }
        fn cells<'a>(&'a self, out: &mut Vec<Cell<'a>>) {
            out.extend([Cell::Int(self.0), Cell::Text(self.1), Cell::Int(self.2)]);
        }
        fn current_key() -> &'static [&'static str] {
            if KEYED { &["k"] } else { &[] }
        }
    }

    fn write<R: Tabular + Clone + Send + 'static>(latest: &Latest, rows: &[R]) {
        let capacity = latest.capacity();
        latest.update("output", || Watch::<R>::new(capacity), |w| w.wrote(rows));
    }

    fn current(latest: &Latest) -> Vec<(u64, String)> {
        let current = latest.snapshot()["output"].current.clone().unwrap();
        current.rows.into_iter().map(|(seq, cells)| (seq, cells.join(","))).collect()
    }

    #[test]
    fn keeps_only_the_last_rows_of_each_output_and_counts_all() {
        let latest = Latest::new(3);
        let rows: Vec<Row<false>> = (0..1_000_002).map(|i| Row(i, "a", 0)).collect();
        write(&latest, &rows[..2]);
        write(&latest, &rows[2..]);
        let shown = latest.snapshot();
        let out = &shown["output"];
        assert_eq!(out.columns, vec!["time", "k", "v"]);
        assert_eq!(out.written, 1_000_002);
        let kept: Vec<_> = out.rows.iter().map(|(seq, c)| (*seq, c[0].as_str())).collect();
        assert_eq!(kept, vec![(1_000_000, "999999"), (1_000_001, "1000000"), (1_000_002, "1000001")]);
        assert_eq!(out.current, None, "rows without a key have no current table");
    }

    #[test]
    fn a_key_shows_its_latest_row_and_a_change_log_its_rows_that_sum_above_zero() {
        let latest = Latest::new(2);
        write(&latest, &[Row::<true>(1, "a", 10), Row(1, "b", 20), Row(2, "a", 11)]);
        assert_eq!(current(&latest), vec![(3, "2,a,11".into()), (2, "1,b,20".into())]);

        let latest = Latest::new(2);
        // Within a time, a retraction may come before or after the assertion it pairs
        // with, and it carries the time of its change.
        let log = [
            (Row::<true>(1, "a", 10), 1),
            (Row(1, "b", 20), 1),
            (Row(2, "a", 11), 1),
            (Row(2, "a", 10), -1),
            (Row(3, "b", 20), -1),
            (Row(4, "c", 5), 2),
        ];
        let log: Vec<Change<Row<true>>> =
            log.into_iter().map(|(r, d)| Change::new(r.clone(), d, r.0 as u64)).collect();
        write(&latest, &log);
        assert_eq!(current(&latest), vec![(6, "4,c,5".into()), (3, "2,a,11".into())]);
        let shown = latest.snapshot();
        assert_eq!(shown["output"].current.as_ref().unwrap().columns, vec!["time", "k", "v"]);
        assert_eq!(shown["output"].rows.len(), 2, "the ring still keeps only the last rows");
    }

    #[test]
    fn keys_beyond_the_limit_are_counted_and_a_retracted_key_frees_its_place() {
        const NAMES: [&str; 13] =
            ["k00", "k01", "k02", "k03", "k04", "k05", "k06", "k07", "k08", "k09", "k10", "k11", "k12"];
        let latest = Latest::new(1);
        let change = |k: usize, d: i64| Change::new(Row::<true>(1, NAMES[k], 0), d, 1);
        write(&latest, &(0..12).map(|k| change(k, 1)).collect::<Vec<_>>());
        assert_eq!(current(&latest).len(), 10);
        assert_eq!(latest.snapshot()["output"].current.as_ref().unwrap().untracked, 2);
        // k11 was never tracked: its retraction is ignored; k00's frees a place for k12.
        write(&latest, &[change(11, -1), change(0, -1), change(12, 1)]);
        let keys: Vec<String> = current(&latest).into_iter().map(|(_, r)| r[2..5].to_owned()).collect();
        assert_eq!(keys.len(), 10);
        assert!(keys.contains(&"k12".to_owned()) && !keys.contains(&"k00".to_owned()), "{keys:?}");
    }
}

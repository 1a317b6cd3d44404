//! The rows a job wrote, kept for people watching it: per output, the latest rows and,
//! for rows with a key, each key's current row.
//!
//! This module holds what readers see ([`Rows`]) and one [`View`] per output name
//! (`output` for the results, side outputs such as `alerts` by their own names). The
//! sinks own the views' logic and their bounds (`sink::current`); a view keeps typed rows
//! and renders them only when read, so a watched job pays a copy per row, not a
//! rendering. Sinks update views only when a job is watched (`--http`), so an unwatched
//! job pays nothing.

use std::any::Any;
use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;

use serde::Serialize;

/// Rows of one output: its columns, its most recent rows and its current row per key.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct Rows {
    /// The output's column names.
    pub columns: Vec<&'static str>,
    /// The most recent rows, oldest first: `(sequence number from 1, cells)`.
    pub rows: VecDeque<(u64, Vec<String>)>,
    /// Rows written to this output so far.
    pub written: u64,
    /// The current row of each key, if the output's rows have a key.
    pub current: Option<Current>,
}

/// The current row of each key of one output.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct Current {
    /// The key's columns.
    pub key: Vec<&'static str>,
    /// The columns of the rows below (a change log's `diff` is left out).
    pub columns: Vec<&'static str>,
    /// Each key's current rows, `(sequence number of the row's last change, cells)`,
    /// most recently changed first.
    pub rows: Vec<(u64, Vec<String>)>,
    /// Keys seen while the table was full, which it does not show.
    pub untracked: u64,
}

/// What is kept of one output, rendered on demand.
pub trait View: Any + Send {
    /// The rows as readers see them.
    fn rows(&self) -> Rows;
    /// For the sink that updates it.
    fn as_any(&mut self) -> &mut dyn Any;
}

/// The views of every output of one process.
pub struct Latest {
    capacity: usize,
    outputs: Mutex<BTreeMap<&'static str, Box<dyn View>>>,
}

impl std::fmt::Debug for Latest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Latest").field("capacity", &self.capacity).finish_non_exhaustive()
    }
}

impl Latest {
    /// Views that keep the last `capacity` rows of each output.
    pub fn new(capacity: usize) -> Self {
        Latest { capacity, outputs: Mutex::new(BTreeMap::new()) }
    }

    /// How many rows are kept per output.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Updates `output`'s view, made by `make` on first use. One output is always
    /// updated through one view type.
    pub fn update<V: View>(&self, output: &'static str, make: impl FnOnce() -> V, f: impl FnOnce(&mut V)) {
        let mut outputs = self.outputs.lock().expect("latest rows lock");
        let view = outputs.entry(output).or_insert_with(|| Box::new(make()));
        f(view.as_any().downcast_mut::<V>().expect("one view type per output"));
    }

    /// Every output's rows, rendered now.
    pub fn snapshot(&self) -> BTreeMap<&'static str, Rows> {
        let outputs = self.outputs.lock().expect("latest rows lock");
        outputs.iter().map(|(name, view)| (*name, view.rows())).collect()
    }
}

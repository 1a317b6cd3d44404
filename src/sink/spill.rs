//! Sorting more records than should stay in memory: sorted runs spilled to anonymous
//! temporary files, merged back in order.
//!
//! A job's rejects and late records grow with its input (a file of two million bad
//! lines), and they can only be written once their timestamp is complete, which for a
//! bounded input is its end. [`SortedRuns`] keeps at most `limit` records in memory:
//! beyond that it sorts them and writes them as one run, one JSON line per record, to a
//! file that is unlinked as soon as it is created, so nothing is left behind even if the
//! process is killed. [`SortedRuns::drain`] merges the runs and what is in memory into
//! one sorted sequence; equal records keep no particular order among themselves.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Seek, Write};
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;
use serde::de::DeserializeOwned;

/// Records in memory before a run is spilled, for [`SortedRuns::default`].
pub const DEFAULT_LIMIT: usize = 1 << 16;

/// Records sorted in bounded memory.
pub struct SortedRuns<R> {
    limit: usize,
    memory: Vec<R>,
    runs: Vec<File>,
}

impl<R> Default for SortedRuns<R> {
    fn default() -> Self {
        SortedRuns { limit: DEFAULT_LIMIT, memory: Vec::new(), runs: Vec::new() }
    }
}

impl<R: Ord + Serialize + DeserializeOwned> SortedRuns<R> {
    /// Keeps at most `limit` records (at least one) in memory.
    pub fn new(limit: usize) -> Self {
        SortedRuns { limit: limit.max(1), memory: Vec::new(), runs: Vec::new() }
    }

    /// Adds a record, spilling a sorted run when memory is full.
    pub fn push(&mut self, record: R) -> io::Result<()> {
        self.memory.push(record);
        if self.memory.len() >= self.limit {
            self.spill()?;
        }
        Ok(())
    }

    /// How many runs went to disk so far.
    pub fn spilled_runs(&self) -> usize {
        self.runs.len()
    }

    fn spill(&mut self) -> io::Result<()> {
        self.memory.sort();
        let mut file = anonymous_file()?;
        let mut out = BufWriter::new(&mut file);
        for record in self.memory.drain(..) {
            serde_json::to_writer(&mut out, &record)?;
            out.write_all(b"\n")?;
        }
        out.flush()?;
        drop(out);
        file.rewind()?;
        self.runs.push(file);
        Ok(())
    }

    /// Calls `each` with every record in sorted order, emptying the runs.
    pub fn drain(&mut self, mut each: impl FnMut(R) -> io::Result<()>) -> io::Result<()> {
        self.memory.sort();
        if self.runs.is_empty() {
            return self.memory.drain(..).try_for_each(each);
        }
        let mut sources: Vec<Run<R>> = Vec::with_capacity(self.runs.len() + 1);
        for file in self.runs.drain(..) {
            sources.push(Run::File(BufReader::new(file), String::new()));
        }
        sources.push(Run::Memory(std::mem::take(&mut self.memory).into_iter()));
        // A heap of each source's next record; ties go to the lower source.
        let mut heap = BinaryHeap::with_capacity(sources.len());
        for (i, source) in sources.iter_mut().enumerate() {
            if let Some(record) = source.next()? {
                heap.push(Reverse((record, i)));
            }
        }
        while let Some(Reverse((record, i))) = heap.pop() {
            if let Some(next) = sources[i].next()? {
                heap.push(Reverse((next, i)));
            }
            each(record)?;
        }
        Ok(())
    }
}

/// One sorted sequence being merged.
enum Run<R> {
    File(BufReader<File>, String),
    Memory(std::vec::IntoIter<R>),
}

impl<R: DeserializeOwned> Run<R> {
    fn next(&mut self) -> io::Result<Option<R>> {
        match self {
            Run::Memory(records) => Ok(records.next()),
            Run::File(reader, line) => {
                line.clear();
                if reader.read_line(line)? == 0 {
                    return Ok(None);
                }
                serde_json::from_str(line).map(Some).map_err(io::Error::other)
            }
        }
    }
}

/// A new file in the temporary directory, already unlinked: only this handle reaches it.
fn anonymous_file() -> io::Result<File> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let dir = std::env::temp_dir();
    loop {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = dir.join(format!("kappa-spill-{}-{n}", std::process::id()));
        match File::options().read(true).write(true).create_new(true).open(&path) {
            Ok(file) => {
                std::fs::remove_file(&path)?;
                return Ok(file);
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sorted_through(limit: usize, records: Vec<(u64, String)>) -> (Vec<(u64, String)>, usize) {
        let mut runs = SortedRuns::new(limit);
        for r in records {
            runs.push(r).unwrap();
        }
        let spilled = runs.spilled_runs();
        let mut out = Vec::new();
        runs.drain(|r| {
            out.push(r);
            Ok(())
        })
        .unwrap();
        (out, spilled)
    }

    #[test]
    fn spilled_runs_merge_to_the_same_order_as_one_sort() {
        let records: Vec<(u64, String)> =
            (0..10_000u64).map(|i| ((i * 7919) % 1000, format!("line {}", i % 13))).collect();
        let mut want = records.clone();
        want.sort();
        for limit in [1, 7, 1000, 20_000] {
            let (got, spilled) = sorted_through(limit, records.clone());
            assert_eq!(got, want, "limit {limit}");
            assert_eq!(spilled, records.len() / limit.max(1) * usize::from(limit <= records.len()));
        }
    }

    #[test]
    fn memory_holds_at_most_the_limit_and_drain_empties() {
        let mut runs = SortedRuns::new(100);
        for i in 0..1000u64 {
            runs.push(i).unwrap();
            assert!(runs.memory.len() < 100);
        }
        let mut n = 0;
        runs.drain(|_| {
            n += 1;
            Ok(())
        })
        .unwrap();
        assert_eq!(n, 1000);
        runs.drain(|_| panic!("drained twice")).unwrap();
    }
}

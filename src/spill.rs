//! Holding more records than should stay in memory: sorted runs spilled to anonymous
//! temporary files, merged back in order.
//!
//! Some state grows with a bounded input until it ends: its rejects and late records,
//! and in incremental mode over shuffled history, the updates of every epoch, which can
//! be released only when the watermark passes them (at the input's end). Both kinds keep
//! at most `limit` records in memory; beyond that they write a sorted run (bincode) to a
//! file that is unlinked as soon as it is created, so nothing is left behind even if the
//! process is killed.
//!
//! - [`SortedRuns`] sorts records: [`SortedRuns::drain`] merges runs and memory into one
//!   sorted sequence; equal records keep no particular order among themselves.
//! - [`TimeQueue`] sums values per `(time, key)` and releases one time at a time in
//!   increasing order ([`TimeQueue::pop_first`]), pushes and pops interleaved freely. A
//!   key may come out more than once at one time (once per run it was spilled in), each
//!   with part of its sum: consumers that add values up (differential) see no difference.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::fs::File;
use std::hash::Hash;
use std::io::{self, BufReader, BufWriter, Seek, Write};
use std::sync::atomic::{AtomicU64, Ordering};

use rustc_hash::FxHashMap;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::time::Millis;

/// Records in memory before a run is spilled, for [`SortedRuns::default`].
pub const DEFAULT_LIMIT: usize = 1 << 16;

/// Records sorted in bounded memory.
pub struct SortedRuns<R> {
    limit: usize,
    memory: Vec<R>,
    runs: Vec<Run<R>>,
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
        let records = self.memory.len() as u64;
        self.runs.push(write_run(records, self.memory.drain(..))?);
        Ok(())
    }

    /// Calls `each` with every record in sorted order, emptying the runs.
    pub fn drain(&mut self, mut each: impl FnMut(R) -> io::Result<()>) -> io::Result<()> {
        self.memory.sort();
        if self.runs.is_empty() {
            return self.memory.drain(..).try_for_each(each);
        }
        let mut runs = std::mem::take(&mut self.runs);
        let mut memory = std::mem::take(&mut self.memory).into_iter();
        // A heap of each source's next record (the last source is memory); ties go to
        // the lower source.
        let mut heap = BinaryHeap::with_capacity(runs.len() + 1);
        for (i, run) in runs.iter_mut().enumerate() {
            if let Some(record) = run.next()? {
                heap.push(Reverse((record, i)));
            }
        }
        if let Some(record) = memory.next() {
            heap.push(Reverse((record, runs.len())));
        }
        while let Some(Reverse((record, i))) = heap.pop() {
            let next = if i == runs.len() { memory.next() } else { runs[i].next()? };
            if let Some(next) = next {
                heap.push(Reverse((next, i)));
            }
            each(record)?;
        }
        Ok(())
    }
}

/// A spilled sum: its time, key and value.
type Timed<K, A> = (Millis, K, A);

/// A spilled run and its next record.
type Spilled<K, A> = (Run<Timed<K, A>>, Option<Timed<K, A>>);

/// Values summed per `(time, key)` and released in time order, in bounded memory.
pub struct TimeQueue<K, A> {
    limit: usize,
    memory: BTreeMap<Millis, FxHashMap<K, A>>,
    len: usize,
    /// Spilled runs, each sorted by time, with its next record read ahead.
    runs: Vec<Spilled<K, A>>,
}

impl<K, A> TimeQueue<K, A>
where
    K: Hash + Eq + Serialize + DeserializeOwned,
    A: Serialize + DeserializeOwned,
{
    /// Keeps at most `limit` `(time, key)` sums (at least one) in memory.
    pub fn new(limit: usize) -> Self {
        TimeQueue { limit: limit.max(1), memory: BTreeMap::new(), len: 0, runs: Vec::new() }
    }

    /// Adds `value` to the sum of `key` at `time` with `add`, spilling when memory is full.
    pub fn push(&mut self, time: Millis, key: K, value: A, add: impl FnOnce(&mut A, A)) -> io::Result<()> {
        match self.memory.entry(time).or_default().entry(key) {
            std::collections::hash_map::Entry::Occupied(mut sum) => add(sum.get_mut(), value),
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert(value);
                self.len += 1;
                if self.len >= self.limit {
                    self.spill()?;
                }
            }
        }
        Ok(())
    }

    fn spill(&mut self) -> io::Result<()> {
        let records = self.len as u64;
        let memory = std::mem::take(&mut self.memory);
        self.len = 0;
        let sorted =
            memory.into_iter().flat_map(|(time, sums)| sums.into_iter().map(move |(k, a)| (time, k, a)));
        let mut run = write_run(records, sorted)?;
        let head = run.next()?;
        self.runs.push((run, head));
        Ok(())
    }

    /// The earliest time held, if any.
    pub fn first_time(&self) -> Option<Millis> {
        let spilled = self.runs.iter().filter_map(|(_, head)| head.as_ref().map(|h| h.0)).min();
        let memory = self.memory.first_key_value().map(|(t, _)| *t);
        match (spilled, memory) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Removes the earliest time, calling `each` with its keys and sums; returns the
    /// time and how many sums it had.
    pub fn pop_first(&mut self, mut each: impl FnMut(K, A)) -> io::Result<Option<(Millis, usize)>> {
        let Some(time) = self.first_time() else { return Ok(None) };
        let mut count = 0;
        if let Some(sums) = self.memory.first_entry().filter(|e| *e.key() == time).map(|e| e.remove()) {
            self.len -= sums.len();
            count += sums.len();
            sums.into_iter().for_each(|(k, a)| each(k, a));
        }
        for (run, head) in &mut self.runs {
            while head.as_ref().is_some_and(|h| h.0 == time) {
                let (_, k, a) = std::mem::replace(head, run.next()?).expect("checked");
                count += 1;
                each(k, a);
            }
        }
        self.runs.retain(|(_, head)| head.is_some());
        Ok(Some((time, count)))
    }

    /// How many runs are on disk now.
    pub fn spilled_runs(&self) -> usize {
        self.runs.len()
    }
}

/// A run written to an anonymous file, read back record by record.
struct Run<R> {
    reader: BufReader<File>,
    remaining: u64,
    _records: std::marker::PhantomData<R>,
}

impl<R: DeserializeOwned> Run<R> {
    fn next(&mut self) -> io::Result<Option<R>> {
        if self.remaining == 0 {
            return Ok(None);
        }
        self.remaining -= 1;
        bincode::deserialize_from(&mut self.reader).map(Some).map_err(io::Error::other)
    }
}

/// Writes `records` (already in order) as a run.
fn write_run<R: Serialize>(records: u64, sorted: impl Iterator<Item = R>) -> io::Result<Run<R>> {
    let mut file = anonymous_file()?;
    let mut out = BufWriter::with_capacity(1 << 16, &mut file);
    for record in sorted {
        bincode::serialize_into(&mut out, &record).map_err(io::Error::other)?;
    }
    out.flush()?;
    drop(out);
    file.rewind()?;
    Ok(Run {
        reader: BufReader::with_capacity(1 << 16, file),
        remaining: records,
        _records: std::marker::PhantomData,
    })
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
    use std::collections::BTreeMap;

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
    fn a_time_queue_releases_each_time_once_in_order_with_its_sums() {
        // Pushes and pops interleave; spilling must not change any (time, key)'s total.
        for limit in [1, 5, 64, 1 << 20] {
            let mut queue: TimeQueue<u32, i64> = TimeQueue::new(limit);
            let mut want: BTreeMap<(u64, u32), i64> = BTreeMap::new();
            let mut got: BTreeMap<(u64, u32), i64> = BTreeMap::new();
            let mut released = Vec::new();
            for i in 0..5_000u64 {
                let block = i / 1000;
                let (time, key) = (block * 1000 + (i * 7919) % 997, (i % 11) as u32);
                queue.push(time, key, 1, |sum, v| *sum += v).unwrap();
                *want.entry((time, key)).or_default() += 1;
                // At the end of each block, release the times before the next block's.
                if i % 1000 == 999 {
                    while queue.first_time().is_some_and(|t| t < (block + 1) * 1000) {
                        let mut sums = Vec::new();
                        let (t, n) = queue.pop_first(|k, a| sums.push((k, a))).unwrap().unwrap();
                        assert_eq!(n, sums.len());
                        for (k, a) in sums {
                            *got.entry((t, k)).or_default() += a;
                        }
                        released.push(t);
                    }
                }
            }
            assert!(queue.first_time().is_none());
            assert_eq!(queue.spilled_runs(), 0);
            assert_eq!(got, want, "limit {limit}");
            assert!(released.windows(2).all(|p| p[0] < p[1]), "each time once, in order");
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

//! Per-process shards: each process reads its own local files, for hosts without
//! shared storage.
//!
//! A spec with `{p}` in it (`data/part-{p}.csv`) names process `p`'s file; a directory
//! (`data/` or `data/host-{p}/`) means every regular file in it, in name order, hidden
//! files skipped. Each process splits its own shard among its own `-w` workers by byte
//! ranges, exactly as a single shared file is split among all workers.
//!
//! A directory is read by every process that names it: on one machine, or on shared
//! storage, give each process its own directory with `{p}`.
//!
//! Rejected lines name the process's file (or directory); in a directory, line numbers
//! count through its files in name order, as if they were one file. The counts read the
//! files this reader opened, never their paths again, so a file replaced or deleted
//! mid-run keeps its numbers.

use std::io;
use std::path::{Path, PathBuf};

use super::file::FileRange;
use super::lines::Line;

/// The placeholder replaced by the process index.
pub const PROCESS_PLACEHOLDER: &str = "{p}";

/// A per-process shard: the pattern as given, and once bound, this process's files.
#[derive(Clone, Debug, PartialEq)]
pub struct ShardSpec {
    /// The spec as the user wrote it.
    pub pattern: String,
    bound: Option<Bound>,
}

#[derive(Clone, Debug, PartialEq)]
struct Bound {
    process: usize,
    processes: usize,
    path: PathBuf,
    files: Vec<PathBuf>,
}

impl ShardSpec {
    /// A shard spec, if `text` is one: it contains `{p}` or names a directory.
    pub fn parse(text: &str) -> Option<ShardSpec> {
        (text.contains(PROCESS_PLACEHOLDER) || Path::new(text).is_dir())
            .then(|| ShardSpec { pattern: text.to_owned(), bound: None })
    }

    /// This spec for process `process` of `processes`: finds the process's files.
    pub fn for_process(&self, process: usize, processes: usize) -> Result<ShardSpec, String> {
        let path = PathBuf::from(self.pattern.replace(PROCESS_PLACEHOLDER, &process.to_string()));
        let meta = std::fs::metadata(&path).map_err(|e| {
            format!("{} (process {process}'s shard): {}", path.display(), crate::exit::io_reason(&e))
        })?;
        let files = if meta.is_dir() {
            let mut files = Vec::new();
            let entries = std::fs::read_dir(&path)
                .map_err(|e| format!("{}: {}", path.display(), crate::exit::io_reason(&e)))?;
            for entry in entries {
                let entry =
                    entry.map_err(|e| format!("{}: {}", path.display(), crate::exit::io_reason(&e)))?;
                let hidden = entry.file_name().to_string_lossy().starts_with('.');
                if !hidden && entry.path().is_file() {
                    files.push(entry.path());
                }
            }
            files.sort();
            if files.is_empty() {
                return Err(format!("{} (process {process}'s shard): no files in directory", path.display()));
            }
            files
        } else if meta.is_file() {
            vec![path.clone()]
        } else {
            return Err(format!("{}: not a regular file or directory", path.display()));
        };
        Ok(ShardSpec {
            pattern: self.pattern.clone(),
            bound: Some(Bound { process, processes, path, files }),
        })
    }

    /// The process's own file or directory once bound, else the pattern.
    pub fn origin(&self) -> String {
        match &self.bound {
            Some(b) => b.path.display().to_string(),
            None => self.pattern.clone(),
        }
    }

    /// The process's own files once bound (none before).
    pub fn files(&self) -> &[PathBuf] {
        self.bound.as_ref().map_or(&[], |b| &b.files)
    }

    /// Checks that the spec was bound to a process and found files.
    pub fn validate(&self) -> Result<(), String> {
        match &self.bound {
            Some(_) => Ok(()),
            None => Err(format!("{}: shard input was not bound to a process", self.pattern)),
        }
    }

    /// Opens global worker `part` of `parts`' share: its process's files, split among
    /// that process's workers.
    pub fn open(&self, part: usize, parts: usize, max_line: usize) -> io::Result<ShardReader> {
        let b = self.bound.as_ref().ok_or_else(|| {
            io::Error::other(format!("{}: shard input was not bound to a process", self.pattern))
        })?;
        let threads = (parts / b.processes).max(1);
        if part / threads != b.process {
            return Err(io::Error::other(format!(
                "worker {part} of {parts} is not on process {}",
                b.process
            )));
        }
        Ok(ShardReader {
            files: b.files.clone(),
            part: part % threads,
            parts: threads,
            max_line,
            current: None,
            next_file: 0,
            done: Vec::new(),
            first_index: 0,
            emitted: 0,
        })
    }
}

/// One worker's share of its process's shard: the same byte range of each file in turn.
pub struct ShardReader {
    files: Vec<PathBuf>,
    part: usize,
    parts: usize,
    max_line: usize,
    current: Option<FileRange>,
    next_file: usize,
    /// Finished ranges with the reader index of their first line, for line numbers.
    done: Vec<(u64, usize, FileRange)>,
    /// Reader index of the current range's first line.
    first_index: u64,
    /// Lines handed out so far.
    emitted: u64,
}

impl ShardReader {
    /// Hands out the lines of the next block; `Ok(false)` once every file is exhausted.
    pub fn next_block(&mut self, mut each: impl FnMut(Line<'_>)) -> io::Result<bool> {
        loop {
            if self.current.is_none() {
                let Some(path) = self.files.get(self.next_file) else {
                    return Ok(false);
                };
                self.current = Some(FileRange::open(path, self.part, self.parts, self.max_line)?);
                self.first_index = self.emitted;
                self.next_file += 1;
            }
            let range = self.current.as_mut().expect("opened above");
            let offset = self.first_index;
            let mut last = None;
            let more = range.next_block(|line| {
                last = Some(line.index);
                each(Line { index: offset + line.index, ..line })
            })?;
            if let Some(i) = last {
                self.emitted = offset + i + 1;
            }
            if more {
                return Ok(true);
            }
            let finished = self.current.take().expect("opened above");
            self.done.push((self.first_index, self.next_file - 1, finished));
            if last.is_some() {
                return Ok(self.next_file < self.files.len());
            }
        }
    }

    /// The 1-based line number of the reader's `index`-th line, counted through the
    /// shard's files in name order.
    pub fn line_number(&mut self, index: u64) -> io::Result<u64> {
        // `None` for the current range, else the finished range holding `index`.
        let at = match self.current {
            Some(_) if index >= self.first_index => None,
            _ => Some(self.done.iter().rposition(|(first, _, _)| *first <= index).unwrap_or(0)),
        };
        let (first, file) = match at {
            None => (self.first_index, self.next_file - 1),
            Some(at) => (self.done[at].0, self.done[at].1),
        };
        // Every file before `file` was opened by this reader and is finished.
        let mut before = 0;
        for (_, _, earlier) in self.done.iter_mut().filter(|(_, f, _)| *f < file) {
            before += earlier.lines_in_file()?;
        }
        let range = match at {
            None => self.current.as_mut().expect("matched above"),
            Some(at) => &mut self.done[at].2,
        };
        Ok(before + range.line_number(index - first)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_bind_to_their_process_and_split_among_its_workers() {
        let dir = std::env::temp_dir().join(format!("kappa-shard-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("d")).unwrap();
        for p in 0..2 {
            let text: String = (0..100).map(|i| format!("p{p}-{i}\n")).collect();
            std::fs::write(dir.join(format!("part-{p}.txt")), &text).unwrap();
            std::fs::write(dir.join("d").join(format!("f{p}.txt")), &text).unwrap();
        }
        std::fs::write(dir.join("d").join(".hidden"), "x\n").unwrap();
        let pattern = format!("{}/part-{{p}}.txt", dir.display());
        let spec = ShardSpec::parse(&pattern).unwrap();
        assert!(spec.for_process(2, 3).unwrap_err().contains("process 2's shard"));
        let bound = spec.for_process(1, 2).unwrap();
        assert!(bound.origin().ends_with("part-1.txt"));
        let mut lines = Vec::new();
        // Process 1 of 2 with 3 workers each owns global workers 3, 4 and 5.
        for part in 3..6 {
            let mut r = bound.open(part, 6, 1000).unwrap();
            while r.next_block(|l| lines.push(String::from_utf8(l.bytes.to_vec()).unwrap())).unwrap() {}
        }
        let want: Vec<String> = (0..100).map(|i| format!("p1-{i}")).collect();
        assert_eq!(lines, want);
        assert!(bound.open(0, 6, 1000).is_err());

        // A directory: both files in name order, hidden ones skipped, numbers run on.
        let spec = ShardSpec::parse(dir.join("d").to_str().unwrap()).unwrap();
        let bound = spec.for_process(0, 1).unwrap();
        let mut r = bound.open(0, 1, 1000).unwrap();
        let mut got = Vec::new();
        while r.next_block(|l| got.push((l.index, l.bytes.to_vec()))).unwrap() {}
        assert_eq!(got.len(), 200);
        assert_eq!(got[150].1, b"p1-50");
        assert_eq!(r.line_number(got[150].0).unwrap(), 151);
        assert_eq!(r.line_number(got[7].0).unwrap(), 8);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn line_numbers_in_a_directory_survive_its_files_being_replaced_or_deleted() {
        let dir = std::env::temp_dir().join(format!("kappa-shard-gone-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for f in 0..2 {
            let text: String = (0..100).map(|i| format!("f{f}-{i}\n")).collect();
            std::fs::write(dir.join(format!("f{f}.txt")), &text).unwrap();
        }
        let bound = ShardSpec::parse(dir.to_str().unwrap()).unwrap().for_process(0, 1).unwrap();
        let mut r = bound.open(0, 1, 1000).unwrap();
        let mut got = Vec::new();
        while r.next_block(|l| got.push((l.index, l.bytes.to_vec()))).unwrap() {}
        // The earlier file is deleted and the later one replaced by a shorter file.
        std::fs::remove_file(dir.join("f0.txt")).unwrap();
        std::fs::remove_file(dir.join("f1.txt")).unwrap();
        std::fs::write(dir.join("f1.txt"), "x\n").unwrap();
        assert_eq!(got[150].1, b"f1-50");
        assert_eq!(r.line_number(got[150].0).unwrap(), 151);
        assert_eq!(r.line_number(got[7].0).unwrap(), 8);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

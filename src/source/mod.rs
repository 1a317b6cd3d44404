//! Inputs: one `--input SPEC` names where lines come from.
//!
//! | spec | input |
//! |---|---|
//! | a path | a file, split among all workers by byte ranges |
//! | `gen:KIND?rate=R&count=N&seed=S` | seeded records made inside the job |
//! | a path with `{p}`, or a directory | each process's own local shard ([`shard`]) |
//!
//! Being bounded or unbounded is a property of the input, not a separate code path:
//! every input hands the ingest operator blocks of [`Line`]s through a [`Reader`].

use std::io;
use std::path::PathBuf;

pub mod file;
pub mod generate;
pub mod lines;
pub mod shard;

pub use lines::Line;

use file::FileRange;
use generate::{GenRange, GenSpec};
use shard::{ShardReader, ShardSpec};

/// Where a job's lines come from.
#[derive(Clone, Debug, PartialEq)]
pub enum InputSpec {
    /// A bounded file.
    File(PathBuf),
    /// Records generated in the job.
    Gen(GenSpec),
    /// Each process's own file(s).
    Shard(ShardSpec),
}

impl std::str::FromStr for InputSpec {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        if let Some(rest) = text.strip_prefix("gen:") {
            return GenSpec::parse(rest).map(InputSpec::Gen);
        }
        if text.is_empty() {
            return Err("empty input spec".into());
        }
        if let Some(shard) = ShardSpec::parse(text) {
            return Ok(InputSpec::Shard(shard));
        }
        Ok(InputSpec::File(PathBuf::from(text)))
    }
}

impl std::fmt::Display for InputSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            InputSpec::File(path) => write!(f, "{}", path.display()),
            InputSpec::Gen(spec) => write!(f, "gen:{}", spec.kind),
            InputSpec::Shard(spec) => write!(f, "{}", spec.origin()),
        }
    }
}

impl InputSpec {
    /// Checks what can be checked before workers start, such as that a file exists.
    pub fn validate(&self) -> Result<(), String> {
        match self {
            InputSpec::File(path) => match std::fs::metadata(path) {
                Ok(meta) if meta.is_file() => Ok(()),
                Ok(_) => Err(format!("{}: not a regular file", path.display())),
                Err(e) => Err(format!("{}: {}", path.display(), io_reason(&e))),
            },
            InputSpec::Gen(_) => Ok(()),
            InputSpec::Shard(spec) => spec.validate(),
        }
    }

    /// This input as process `process` of `processes` reads it: a shard spec finds the
    /// process's own files; other inputs are the same for every process.
    pub fn for_process(self, process: usize, processes: usize) -> Result<InputSpec, String> {
        match self {
            InputSpec::Shard(spec) => spec.for_process(process, processes).map(InputSpec::Shard),
            other => Ok(other),
        }
    }

    /// Opens worker `part` of `parts`' reader.
    pub fn open(&self, part: usize, parts: usize, max_line: usize) -> io::Result<Reader> {
        Ok(match self {
            InputSpec::File(path) => Reader::File(FileRange::open(path, part, parts, max_line)?),
            InputSpec::Gen(spec) => Reader::Gen(GenRange::new(spec, part, parts)),
            InputSpec::Shard(spec) => Reader::Shard(spec.open(part, parts, max_line)?),
        })
    }
}

/// An I/O error's reason without Rust's `(os error N)` suffix.
pub fn io_reason(e: &io::Error) -> String {
    let text = e.to_string();
    match text.find(" (os error") {
        Some(at) => text[..at].to_owned(),
        None => text,
    }
}

/// What a reader reports after handing out a block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Poll {
    /// More lines are ready to be read now.
    More,
    /// The input has ended.
    Done,
}

/// One worker's share of an input.
pub enum Reader {
    /// A byte range of a file.
    File(FileRange),
    /// A share of a generator's rows.
    Gen(GenRange),
    /// A share of this process's own files.
    Shard(ShardReader),
}

impl Reader {
    /// Hands out the next block of lines.
    pub fn next_block(&mut self, each: impl FnMut(Line<'_>)) -> io::Result<Poll> {
        let more = match self {
            Reader::File(range) => range.next_block(each)?,
            Reader::Gen(range) => range.next_block(each),
            Reader::Shard(shard) => shard.next_block(each)?,
        };
        Ok(if more { Poll::More } else { Poll::Done })
    }

    /// The 1-based line number of the reader's `index`-th line, for messages.
    pub fn line_number(&mut self, index: u64) -> io::Result<u64> {
        match self {
            Reader::File(range) => range.line_number(index),
            Reader::Gen(_) => Ok(index + 1),
            Reader::Shard(shard) => shard.line_number(index),
        }
    }
}

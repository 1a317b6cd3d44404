//! Committing output files, so a restarted job writes each row exactly once.
//!
//! With `--checkpoint`, a sink appends the rows of each completed time to its file and,
//! at most every `--checkpoint-every`, records the last completed time and the file's
//! length ([`Commit`]). A restarted job cuts the file back to that length (done when
//! [`Outputs`](super::Outputs) opens it) and recomputes every row, but a sink writes
//! only the times after the committed one. Because the rows of a time are the same in
//! every run (`gather` decides their order from the rows alone), the file ends
//! byte-identical to one written by a run that never failed.

use std::fs::File;
use std::io::{self, Seek};
use std::sync::Arc;
use std::time::Instant;

use crate::checkpoint::{Checkpoint, Commit, crash_point};
use crate::metrics::Meters;
use crate::time::Millis;

/// One output file's commits.
pub struct Committer {
    name: String,
    checkpoint: Arc<Checkpoint>,
    /// The file itself (a duplicate descriptor: it shares the writer's offset).
    file: File,
    committed: Commit,
    /// The latest completed time written but not yet committed.
    pending: Option<Millis>,
    /// When the last commit was made; `None` before the first, which is made at once.
    last: Option<Instant>,
    meters: Arc<Meters>,
}

impl Committer {
    /// The commits of output `name`, written to `file`, resuming from `committed`;
    /// each is counted in `meters`.
    pub fn new(
        name: impl Into<String>,
        checkpoint: Arc<Checkpoint>,
        file: File,
        committed: Commit,
        meters: Arc<Meters>,
    ) -> Self {
        Committer { name: name.into(), checkpoint, file, committed, pending: None, last: None, meters }
    }

    /// Whether the file already holds something from an earlier run (its header, say).
    pub fn resumed(&self) -> bool {
        self.committed.bytes > 0
    }

    /// Whether the rows of `time` are in the file already: an earlier run committed them.
    pub fn skips(&self, time: Millis) -> bool {
        self.committed.time.is_some_and(|c| time <= c)
    }

    /// Notes that every row of `time` has been handed to the writer; commits when the
    /// last commit is older than `--checkpoint-every`. `flush` empties the writer's buffer.
    /// A time the file holds already (see [`Committer::skips`]) changes nothing.
    pub fn wrote(&mut self, time: Millis, flush: impl FnOnce() -> io::Result<()>) -> io::Result<()> {
        if !self.skips(time) {
            self.pending = Some(time);
        }
        self.tick(flush)
    }

    /// Commits what is pending if the last commit is older than `--checkpoint-every`
    /// (or there was none): sinks call it whenever they run, so rows written before a
    /// quiet spell are committed too once the interval has passed and the sink runs.
    pub fn tick(&mut self, flush: impl FnOnce() -> io::Result<()>) -> io::Result<()> {
        let due = self.last.is_none_or(|at| at.elapsed() >= self.checkpoint.every());
        if due && self.pending.is_some() { self.commit(flush) } else { Ok(()) }
    }

    /// Commits what has been written: flush, sync with `--fsync`, record time and length.
    pub fn commit(&mut self, flush: impl FnOnce() -> io::Result<()>) -> io::Result<()> {
        let Some(time) = self.pending.take() else { return Ok(()) };
        let started = Instant::now();
        flush()?;
        crash_point("append");
        if self.checkpoint.fsync() {
            self.file.sync_data()?;
        }
        let commit = Commit { time: Some(time), bytes: self.file.stream_position()? };
        self.checkpoint.commit(&self.name, commit)?;
        self.committed = commit;
        self.last = Some(Instant::now());
        if let Some(commits) = &self.meters.commits {
            commits.made(started.elapsed());
        }
        Ok(())
    }
}

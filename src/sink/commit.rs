//! Committing output files, so a restarted job writes each row exactly once.
//!
//! With `--checkpoint`, a sink appends the rows of each completed time to its file and,
//! at most every `--checkpoint-every`, records the last completed time and the file's
//! length ([`Commit`]). A restarted job cuts the file back to that length (done when
//! [`Outputs`](super::Outputs) opens it) and recomputes every row, but a sink writes
//! only the times after the committed one. Because the rows of a time are the same in
//! every run (`gather` decides their order from the rows alone), the file ends
//! byte-identical to one written by a run that never failed.
//!
//! A Kafka topic ([`super::kafka`]) is committed the same way, with the topic itself as
//! the record: after each completed time a progress record, and on restart the topic
//! read back instead of a commit record; its committer exists with or without
//! `--checkpoint`, since progress records are always written.

use std::fs::File;
use std::io::{self, Seek};
use std::sync::Arc;
use std::time::Instant;

use super::kafka::TopicProgress;
use crate::checkpoint::snapshot::Snapshots;
use crate::checkpoint::{Checkpoint, Commit, crash_point};
use crate::metrics::Meters;
use crate::time::Millis;

/// What a committer commits.
enum Target {
    /// A file: commit records in the checkpoint.
    File {
        checkpoint: Arc<Checkpoint>,
        /// The file itself (a duplicate descriptor: it shares the writer's offset).
        file: File,
    },
    /// A Kafka topic: progress records in the topic.
    Topic(Arc<TopicProgress>),
}

/// One output's commits.
pub struct Committer {
    name: String,
    target: Target,
    /// How often to commit, at most.
    every: std::time::Duration,
    committed: Commit,
    /// The latest completed time written but not yet committed.
    pending: Option<Millis>,
    /// Rows written so far, committed or not.
    rows: u64,
    /// When the last commit was made; `None` before the first, which is made at once.
    last: Option<Instant>,
    meters: Arc<Meters>,
    /// Snapshots to tell about each commit (an output after differential).
    floor: Option<Arc<Snapshots>>,
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
        let every = checkpoint.every();
        let target = Target::File { checkpoint, file };
        let rows = committed.rows;
        Committer {
            name: name.into(),
            target,
            every,
            committed,
            pending: None,
            rows,
            last: None,
            meters,
            floor: None,
        }
    }

    /// The progress of a Kafka output topic, acknowledged by the broker at most every
    /// `every`.
    pub fn topic(
        name: impl Into<String>,
        progress: Arc<TopicProgress>,
        every: std::time::Duration,
        meters: Arc<Meters>,
    ) -> Self {
        let target = Target::Topic(progress);
        Committer {
            name: name.into(),
            target,
            every,
            committed: Commit::default(),
            pending: None,
            rows: 0,
            last: None,
            meters,
            floor: None,
        }
    }

    /// Tells `snapshots` about every commit: this output is rebuilt from replayed
    /// history, which may be compacted only at or before what it has committed.
    pub fn report_to(&mut self, snapshots: &Arc<Snapshots>) {
        if matches!(self.target, Target::File { .. }) {
            snapshots.committed(&self.name, self.committed.time);
            self.floor = Some(Arc::clone(snapshots));
        }
    }

    /// Notes that every row before `frontier` has been handed to the writer: the output
    /// is complete up to `frontier - 1`, rows or not, and commits may say so. Only an
    /// output that reports to snapshots needs it: an output without rows for a while
    /// must not hold back their compaction.
    pub fn reached(&mut self, frontier: Millis) {
        if self.floor.is_none() || frontier == 0 || frontier == Millis::MAX {
            return;
        }
        let time = frontier - 1;
        if self.committed.time.is_none_or(|c| c < time) && self.pending.is_none_or(|p| p < time) {
            self.pending = Some(time);
        }
    }

    /// Whether the output already holds something from an earlier run (its header,
    /// say). A topic never gets a header.
    pub fn resumed(&self) -> bool {
        matches!(self.target, Target::Topic(_)) || self.committed.bytes > 0
    }

    /// Rows an earlier run committed: the summary counts them, since a restart writes
    /// them no more (a topic does not keep the count: 0, and its rows count again).
    pub fn committed_rows(&self) -> u64 {
        self.committed.rows
    }

    /// Notes `n` more rows handed to the writer.
    pub fn add_rows(&mut self, n: usize) {
        self.rows += n as u64;
    }

    /// Whether rows are sent as keyed messages (to a Kafka topic).
    pub fn keyed(&self) -> bool {
        matches!(self.target, Target::Topic(_))
    }

    /// Whether the rows of `time` are in the output already: an earlier run committed them.
    pub fn skips(&self, time: Millis) -> bool {
        match &self.target {
            Target::File { .. } => self.committed.time.is_some_and(|c| time <= c),
            Target::Topic(progress) => progress.skips(time),
        }
    }

    /// Notes that every row of `time` has been handed to the writer; commits when the
    /// last commit is older than `--checkpoint-every`. `flush` empties the writer's buffer.
    /// A time the output holds already (see [`Committer::skips`]) changes nothing. A
    /// topic gets the time's progress record at once, behind its rows.
    pub fn wrote(&mut self, time: Millis, flush: impl FnOnce() -> io::Result<()>) -> io::Result<()> {
        if self.skips(time) {
            return self.tick(flush);
        }
        self.pending = Some(time);
        match &self.target {
            Target::File { .. } => self.tick(flush),
            Target::Topic(progress) => {
                flush()?;
                if crate::checkpoint::crash_armed("progress") {
                    progress.sync()?;
                    crash_point("progress");
                }
                progress.completed(time)?;
                self.tick(|| Ok(()))
            }
        }
    }

    /// Commits what is pending if the last commit is older than `--checkpoint-every`
    /// (or there was none): sinks call it whenever they run, so rows written before a
    /// quiet spell are committed too once the interval has passed and the sink runs.
    pub fn tick(&mut self, flush: impl FnOnce() -> io::Result<()>) -> io::Result<()> {
        let due = self.last.is_none_or(|at| at.elapsed() >= self.every);
        if due && self.pending.is_some() { self.commit(flush) } else { Ok(()) }
    }

    /// Commits what has been written: flush, sync with `--fsync`, record time and length.
    pub fn commit(&mut self, flush: impl FnOnce() -> io::Result<()>) -> io::Result<()> {
        let Some(time) = self.pending.take() else { return Ok(()) };
        let started = Instant::now();
        flush()?;
        crash_point("append");
        match &mut self.target {
            Target::File { checkpoint, file } => {
                if checkpoint.fsync() {
                    file.sync_data()?;
                }
                let commit = Commit { time: Some(time), bytes: file.stream_position()?, rows: self.rows };
                checkpoint.commit(&self.name, commit)?;
                self.committed = commit;
                if let Some(snapshots) = &self.floor {
                    snapshots.committed(&self.name, commit.time);
                }
            }
            Target::Topic(progress) => progress.sync()?,
        }
        self.last = Some(Instant::now());
        if let Some(commits) = &self.meters.commits {
            commits.made(started.elapsed());
        }
        Ok(())
    }
}

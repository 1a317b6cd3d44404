//! Inputs: one `--input SPEC` names where lines come from.
//!
//! | spec | input |
//! |---|---|
//! | a path | a file, split among all workers by byte ranges |
//! | `-` | stdin |
//! | `tcp://HOST:PORT` | listen for line clients; process `p` listens on `PORT + p` |
//! | `tail:PATH` | follow a growing file, surviving rotation |
//! | `mqtt://HOST:PORT/FILTER` | subscribe to an MQTT broker at QoS 1; each payload is a line ([`mqtt`]) |
//! | `kafka://HOST:PORT/TOPIC[,TOPIC…]?group=G[&until=end]` | read Kafka topics, partition `p` on worker `p mod (n × w)` ([`kafka`]) |
//! | `gen:KIND?rate=R&count=N&seed=S` | seeded records made inside the job, optionally paced |
//! | a path with `{p}`, or a directory | each process's own local shard ([`shard`]) |
//!
//! Being bounded or unbounded is a property of the input, not a separate code path:
//! every input hands the ingest operator blocks of [`Line`]s through a [`Reader`].

use std::io;

use crate::exit::io_reason;
use std::path::PathBuf;

pub mod file;
pub mod generate;
pub mod kafka;
pub mod lines;
pub mod live;
pub mod mqtt;
pub mod shard;
pub mod tail;
pub mod tcp;

pub use lines::{Flaw, LastLine, Line, Poll};

pub use file::FilePosition;
use file::FileRange;
use generate::{GenRange, GenSpec};
use kafka::KafkaSpec;
use live::{Feed, LiveReader, Received};
use mqtt::MqttSpec;
use shard::{ShardReader, ShardSpec};
use tail::TailSpec;
use tcp::TcpSpec;

/// Where a job's lines come from.
#[derive(Clone, Debug, PartialEq)]
pub enum InputSpec {
    /// A bounded file.
    File(PathBuf),
    /// Standard input, until end of file.
    Stdin,
    /// Line clients connecting over TCP.
    Tcp(TcpSpec),
    /// A growing file.
    Tail(TailSpec),
    /// Messages from an MQTT broker.
    Mqtt(MqttSpec),
    /// Records from Kafka topics.
    Kafka(KafkaSpec),
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
        if let Some(rest) = text.strip_prefix("tcp://") {
            return TcpSpec::parse(rest).map(InputSpec::Tcp);
        }
        if let Some(rest) = text.strip_prefix("mqtt://") {
            return MqttSpec::parse(rest).map(InputSpec::Mqtt);
        }
        if let Some(rest) = text.strip_prefix("kafka://") {
            return KafkaSpec::parse(rest).map(InputSpec::Kafka);
        }
        if let Some(rest) = text.strip_prefix("tail:") {
            return TailSpec::parse(rest).map(InputSpec::Tail);
        }
        match text {
            "" => Err("empty input spec".into()),
            "-" => Ok(InputSpec::Stdin),
            path => {
                Ok(ShardSpec::parse(path)
                    .map_or_else(|| InputSpec::File(PathBuf::from(path)), InputSpec::Shard))
            }
        }
    }
}

impl std::fmt::Display for InputSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            InputSpec::File(path) => write!(f, "{}", path.display()),
            InputSpec::Stdin => write!(f, "stdin"),
            InputSpec::Tcp(spec) => write!(f, "tcp://{}:{}", spec.host, spec.port),
            InputSpec::Tail(spec) => write!(f, "tail:{}", spec.path.display()),
            InputSpec::Mqtt(spec) => write!(f, "{spec}"),
            InputSpec::Kafka(spec) => write!(f, "{spec}"),
            InputSpec::Gen(spec) => write!(f, "gen:{}", spec.kind),
            InputSpec::Shard(spec) => write!(f, "{}", spec.origin()),
        }
    }
}

impl InputSpec {
    /// Whether the input is live: unbounded, or arriving over time from outside.
    ///
    /// Live inputs get a finite default lateness; a bounded file or an unpaced generator
    /// holds its watermark back until it ends.
    pub fn is_live(&self) -> bool {
        match self {
            InputSpec::File(_) | InputSpec::Shard(_) => false,
            // Unpaced, a generator is history however long it runs: it holds the
            // watermark like a file does.
            InputSpec::Gen(spec) => spec.rate.is_some(),
            // Read to the end offsets captured at start, a topic is history like a file.
            InputSpec::Kafka(spec) => !spec.until_end,
            InputSpec::Stdin | InputSpec::Tcp(_) | InputSpec::Tail(_) | InputSpec::Mqtt(_) => true,
        }
    }

    /// Whether the input's records arrive in event-time order by construction.
    pub fn is_ordered(&self) -> bool {
        matches!(self, InputSpec::Gen(spec) if spec.rate.is_some())
    }

    /// Checks what can be checked before workers start, such as that a file exists.
    pub fn validate(&self) -> Result<(), String> {
        match self {
            InputSpec::File(path) => match std::fs::metadata(path) {
                Ok(meta) if meta.is_file() => Ok(()),
                Ok(_) => Err(format!("{}: not a regular file", path.display())),
                Err(e) => Err(format!("{}: {}", path.display(), io_reason(&e))),
            },
            InputSpec::Stdin
            | InputSpec::Tcp(_)
            | InputSpec::Tail(_)
            | InputSpec::Mqtt(_)
            | InputSpec::Kafka(_)
            | InputSpec::Gen(_) => Ok(()),
            InputSpec::Shard(spec) => spec.validate(),
        }
    }

    /// The files this process reads, for checks such as that no output overwrites one.
    pub fn files(&self) -> Vec<PathBuf> {
        match self {
            InputSpec::File(path) => vec![path.clone()],
            InputSpec::Tail(spec) => vec![spec.path.clone()],
            InputSpec::Shard(spec) => spec.files().to_vec(),
            InputSpec::Stdin
            | InputSpec::Tcp(_)
            | InputSpec::Mqtt(_)
            | InputSpec::Kafka(_)
            | InputSpec::Gen(_) => Vec::new(),
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

    /// Opens worker `part` of `parts`' reader. Live inputs read from the process's `feed`.
    pub fn open(
        &self,
        part: usize,
        parts: usize,
        max_line: usize,
        feed: Option<&Feed>,
    ) -> io::Result<Reader> {
        self.open_at(part, parts, max_line, feed, None)
    }

    /// Whether a reader of this input can say where it is and resume there
    /// ([`Reader::position`]): a file and a generator can.
    pub fn resumable(&self) -> bool {
        matches!(self, InputSpec::File(_) | InputSpec::Gen(_))
    }

    /// Whether this is a live input that can resume from its journal at a snapshot's
    /// round: stdin, tcp and mqtt journal their lines; Kafka and `tail:`, which can be
    /// read again, only where each round began (a partition's offsets, a file's place).
    pub fn journaled(&self) -> bool {
        matches!(
            self,
            InputSpec::Stdin
                | InputSpec::Tcp(_)
                | InputSpec::Mqtt(_)
                | InputSpec::Kafka(_)
                | InputSpec::Tail(_)
        )
    }

    /// Whether a journal of this input keeps only where each round began, not its lines:
    /// it can be read again from there (Kafka, `tail:`).
    pub fn rereadable(&self) -> bool {
        matches!(self, InputSpec::Kafka(_) | InputSpec::Tail(_))
    }

    /// The same, resuming at `at` (a position the same worker's reader reported before).
    pub fn open_at(
        &self,
        part: usize,
        parts: usize,
        max_line: usize,
        feed: Option<&Feed>,
        at: Option<Position>,
    ) -> io::Result<Reader> {
        if let Some(feed) = feed {
            return Ok(Reader::Live(LiveReader::new(feed.clone())));
        }
        let misplaced = || io::Error::other("the checkpoint's position is not one of this input's");
        Ok(match self {
            InputSpec::File(path) => {
                let at = match at {
                    None => None,
                    Some(Position::File(at)) => Some(at),
                    Some(_) => return Err(misplaced()),
                };
                Reader::File(FileRange::resume(path, part, parts, max_line, at)?)
            }
            InputSpec::Gen(spec) => {
                let mut range = GenRange::new(spec, part, parts);
                match at {
                    None => {}
                    Some(Position::Gen(next)) => range.resume_at(next),
                    Some(_) => return Err(misplaced()),
                }
                Reader::Gen(range)
            }
            InputSpec::Shard(spec) => Reader::Shard(spec.open(part, parts, max_line)?),
            InputSpec::Stdin
            | InputSpec::Tcp(_)
            | InputSpec::Tail(_)
            | InputSpec::Mqtt(_)
            | InputSpec::Kafka(_) => {
                unreachable!("live inputs are read through their feed")
            }
        })
    }
}

/// Where a worker's reader resumes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Position {
    /// In a file's byte range.
    File(FilePosition),
    /// At a generator's next row.
    Gen(u64),
}

/// One worker's share of an input.
pub enum Reader {
    /// A byte range of a file.
    File(FileRange),
    /// A share of a generator's rows.
    Gen(GenRange),
    /// A share of a live feed.
    Live(LiveReader),
    /// A share of this process's own files.
    Shard(ShardReader),
}

impl Reader {
    /// Hands out the next block of lines.
    pub fn next_block(&mut self, each: impl FnMut(Line<'_>)) -> io::Result<Poll> {
        Ok(match self {
            Reader::File(range) => {
                if range.next_block(each)? {
                    Poll::More
                } else {
                    Poll::Done
                }
            }
            Reader::Shard(shard) => {
                if shard.next_block(each)? {
                    Poll::More
                } else {
                    Poll::Done
                }
            }
            Reader::Gen(range) => range.next_block(each),
            Reader::Live(live) => match live.next_block(each) {
                Received::Batch => Poll::More,
                Received::Empty => Poll::Idle,
                Received::Ended => Poll::Done,
            },
        })
    }

    /// Where the reader would resume, if it can ([`InputSpec::resumable`]) and is between
    /// lines.
    pub fn position(&self) -> Option<Position> {
        match self {
            Reader::File(range) => range.position().map(Position::File),
            Reader::Gen(range) => Some(Position::Gen(range.position())),
            Reader::Live(_) | Reader::Shard(_) => None,
        }
    }

    /// A lower bound on the event times of lines still to come, if the reader knows one.
    pub fn watermark_hint(&self) -> Option<crate::time::Millis> {
        match self {
            Reader::Gen(range) => range.next_time(),
            Reader::File(_) | Reader::Live(_) | Reader::Shard(_) => None,
        }
    }

    /// For an open-loop input, when its line `index` was due: latency is measured from
    /// then, not from when it was read, so a stalled job cannot hide its stall.
    pub fn schedule(&self) -> Option<(std::time::Instant, u64)> {
        match self {
            Reader::Gen(range) => range.pace(),
            Reader::File(_) | Reader::Live(_) | Reader::Shard(_) => None,
        }
    }

    /// When the last block's line `index` was published, in ms since the Unix epoch, if
    /// the input says (a Kafka record's timestamp): latency is measured from then, so the
    /// time a record spent in the broker counts.
    pub fn published(&self, index: u64) -> Option<u64> {
        match self {
            Reader::Live(live) => live.published(index),
            Reader::File(_) | Reader::Gen(_) | Reader::Shard(_) => None,
        }
    }

    /// The line number [`locate`](Self::locate) gives the last block's `index`-th line,
    /// without the origin.
    pub fn line_of(&mut self, index: u64) -> u64 {
        match self {
            Reader::File(range) => range.line_number(index).unwrap_or(0),
            Reader::Gen(_) => index + 1,
            Reader::Live(_) => index,
            Reader::Shard(shard) => shard.line_number(index).unwrap_or(0),
        }
    }

    /// The origin and 1-based line number of the last block's `index`-th line, for messages.
    pub fn locate(&mut self, index: u64, input: &InputSpec) -> (String, u64) {
        match self {
            Reader::File(range) => (input.to_string(), range.line_number(index).unwrap_or(0)),
            Reader::Gen(_) => (input.to_string(), index + 1),
            // A live feed's lines carry their own numbers (a Kafka offset may be 0).
            Reader::Live(live) => (live.origin().to_owned(), index),
            Reader::Shard(shard) => (input.to_string(), shard.line_number(index).unwrap_or(0)),
        }
    }
}

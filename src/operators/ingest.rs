//! Ingest: lines in, timestamped records out, with rejects and late records routed aside.
//!
//! The ingest operator owns the worker's share of the input. It parses each line with a
//! [`LineFormat`], keeps the record's own event time beside it, and sends it at the
//! operator's capability. The capability is the watermark rounded down to the epoch:
//! every record sent later has an event time at or above it, so the frontier downstream
//! *is* the event-time watermark.
//!
//! Sending records at the watermark rather than at their own epoch keeps batches large
//! (a shuffled file has one timestamp until it ends), while operators that bucket by
//! event time read the time from the data and use the frontier only to know when a
//! bucket is complete.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};
use timely::dataflow::operators::generic::OutputBuilder;
use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;
use timely::dataflow::{Scope, Stream};

use crate::record::{LineFormat, ParseError};
use crate::source::lines::EXCERPT_BYTES;
use crate::source::{InputSpec, Line, Poll, Reader};
use crate::time::{Duration, Millis, epoch_of};

/// A record with its event time.
pub type Timed<D> = (D, Millis);

/// A line that did not parse.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Rejected {
    /// The input it came from.
    pub origin: String,
    /// Its 1-based line number.
    pub line: u64,
    /// Why it was rejected.
    pub reason: String,
    /// The start of the line, made printable.
    pub text: String,
}

/// A record that arrived behind the watermark.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Late {
    /// The input it came from.
    pub origin: String,
    /// Its 1-based line number.
    pub line: u64,
    /// Its event time.
    pub event_time: Millis,
    /// The watermark it was behind.
    pub watermark: Millis,
    /// The line, made printable.
    pub text: String,
}

/// What ingest counted on one worker.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Counts {
    /// Data lines seen (header lines excluded).
    pub read: u64,
    /// Lines that parsed and were sent on.
    pub accepted: u64,
    /// Lines rejected as malformed.
    pub rejected: u64,
    /// Records behind the watermark.
    pub late: u64,
    /// Bytes of input handed to the parser.
    pub bytes: u64,
}

impl std::ops::AddAssign for Counts {
    fn add_assign(&mut self, o: Counts) {
        self.read += o.read;
        self.accepted += o.accepted;
        self.rejected += o.rejected;
        self.late += o.late;
        self.bytes += o.bytes;
    }
}

/// Diagnostics that travel beside the records to the diagnostics sink.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Diag {
    /// A malformed line.
    Reject(Rejected),
    /// A record behind the watermark.
    Late(Late),
    /// A worker's final counts.
    Counts(Counts),
}

/// Process-wide counters that progress lines read while the job runs.
#[derive(Debug, Default)]
pub struct LiveCounters {
    /// Data lines seen.
    pub read: AtomicU64,
    /// Lines rejected.
    pub rejected: AtomicU64,
    /// Records late.
    pub late: AtomicU64,
}

/// How ingest reads and stamps its input.
#[derive(Clone, Debug)]
pub struct IngestConfig {
    /// The input.
    pub input: InputSpec,
    /// Timestamp granularity.
    pub epoch: Duration,
    /// How far behind the largest event time seen the watermark trails; `None` holds it
    /// back until the input ends, which makes any order of a bounded input exact.
    pub lateness: Option<Duration>,
    /// Fail on the first malformed line.
    pub strict: bool,
    /// Longest accepted line.
    pub max_line: usize,
    /// Counters for progress reporting.
    pub counters: Arc<LiveCounters>,
}

/// Makes printable text from the start of a line.
pub fn excerpt(bytes: &[u8]) -> String {
    let cut = &bytes[..bytes.len().min(EXCERPT_BYTES)];
    let text = String::from_utf8_lossy(cut);
    let mut out: String = text
        .chars()
        .map(|c| if c.is_control() { '\u{fffd}' } else { c })
        .collect();
    if bytes.len() > EXCERPT_BYTES {
        out.push('…');
    }
    out
}

/// The records and the diagnostics that ingest produces.
pub type Ingested<'scope, D> = (
    Stream<'scope, Millis, Vec<Timed<D>>>,
    Stream<'scope, Millis, Vec<Diag>>,
);

/// Reads the input into a stream of timestamped records, plus a diagnostics stream.
pub trait Ingest<'scope> {
    /// Parses every line of this worker's share of `config.input` as `F` and maps each
    /// record through `project`.
    fn ingest<F, D, P>(self, config: &IngestConfig, project: P) -> Ingested<'scope, D>
    where
        F: LineFormat,
        D: Clone + 'static,
        P: for<'a> FnMut(&F::Parsed<'a>) -> D + 'static;
}

impl<'scope> Ingest<'scope> for Scope<'scope, Millis> {
    fn ingest<F, D, P>(self, config: &IngestConfig, mut project: P) -> Ingested<'scope, D>
    where
        F: LineFormat,
        D: Clone + 'static,
        P: for<'a> FnMut(&F::Parsed<'a>) -> D + 'static,
    {
        let mut builder = OperatorBuilder::new(format!("Ingest({})", F::NAME), self);
        let info = builder.operator_info();
        let activator = self.activator_for(info.address);
        let (records_out, records) = builder.new_output();
        let (diags_out, diags) = builder.new_output();
        let mut records_out = OutputBuilder::<
            _,
            timely::container::CapacityContainerBuilder<Vec<Timed<D>>>,
        >::from(records_out);
        let mut diags_out = OutputBuilder::<
            _,
            timely::container::CapacityContainerBuilder<Vec<Diag>>,
        >::from(diags_out);

        let config = config.clone();
        let origin = config.input.to_string();
        let (part, parts) = (self.index(), self.peers());
        let mut reader: Option<Reader> = None;
        let mut open_error: Option<io::Error> = None;
        match config.input.open(part, parts, config.max_line) {
            Ok(r) => reader = Some(r),
            Err(e) => open_error = Some(e),
        }

        builder.build(move |mut caps| {
            let mut diag_cap = caps.pop();
            let mut cap = caps.pop();
            let mut counts = Counts::default();
            let mut max_seen: Option<Millis> = None;
            let mut rejects: Vec<Rejected> = Vec::new();
            let mut lates: Vec<(u64, Millis, Millis, String)> = Vec::new();
            activator.activate();

            move |_frontiers| {
                let (Some(c), Some(dc)) = (cap.as_mut(), diag_cap.as_mut()) else {
                    return;
                };
                if let Some(e) = open_error.take() {
                    fail(&format!("{origin}: {}", crate::source::io_reason(&e)));
                }
                let reader = reader.as_mut().expect("reader opened");
                let before = counts;
                let state = {
                    let mut records = records_out.activate();
                    let mut session = records.session(c);
                    reader.next_block(|line: Line<'_>| {
                        let outcome = parse_line::<F>(&line);
                        let parsed = match outcome {
                            LineOutcome::Header => return,
                            LineOutcome::Bad(reason) => {
                                counts.read += 1;
                                counts.rejected += 1;
                                rejects.push(Rejected {
                                    origin: String::new(),
                                    line: line.index,
                                    reason: reason.to_string(),
                                    text: excerpt(line.bytes),
                                });
                                return;
                            }
                            LineOutcome::Good(parsed) => parsed,
                        };
                        counts.read += 1;
                        counts.bytes += line.bytes.len() as u64 + 1;
                        let time = F::event_time(&parsed);
                        // The watermark moves per record, so which records are late depends
                        // only on their order, not on how the input was cut into blocks.
                        if let (Some(l), Some(m)) = (config.lateness, max_seen) {
                            let watermark = m.saturating_sub(l.millis());
                            if time < watermark {
                                counts.late += 1;
                                lates.push((line.index, time, watermark, excerpt(line.bytes)));
                                return;
                            }
                        }
                        max_seen = Some(max_seen.map_or(time, |m| m.max(time)));
                        counts.accepted += 1;
                        session.give((project(&parsed), time));
                    })
                };
                let state = match state {
                    Ok(s) => s,
                    Err(e) => fail(&format!(
                        "{origin}: read error: {}",
                        crate::source::io_reason(&e)
                    )),
                };
                config
                    .counters
                    .read
                    .fetch_add(counts.read - before.read, Ordering::Relaxed);
                config
                    .counters
                    .rejected
                    .fetch_add(counts.rejected - before.rejected, Ordering::Relaxed);
                config
                    .counters
                    .late
                    .fetch_add(counts.late - before.late, Ordering::Relaxed);

                if !rejects.is_empty() || !lates.is_empty() {
                    let mut diags = diags_out.activate();
                    let mut session = diags.session(dc);
                    for mut r in rejects.drain(..) {
                        r.line = reader.line_number(r.line).unwrap_or(0);
                        r.origin = origin.clone();
                        if config.strict {
                            fail(&format!("{}:{}: {}", r.origin, r.line, r.reason));
                        }
                        session.give(Diag::Reject(r));
                    }
                    for (index, event_time, watermark, text) in lates.drain(..) {
                        let line = reader.line_number(index).unwrap_or(0);
                        session.give(Diag::Late(Late {
                            origin: origin.clone(),
                            line,
                            event_time,
                            watermark,
                            text,
                        }));
                    }
                }

                match state {
                    Poll::More => {
                        if let (Some(l), Some(m)) = (config.lateness, max_seen) {
                            let frontier = epoch_of(m.saturating_sub(l.millis()), config.epoch);
                            if frontier > *c.time() {
                                c.downgrade(&frontier);
                                dc.downgrade(&frontier);
                            }
                        }
                        activator.activate();
                    }
                    Poll::Done => {
                        diags_out.activate().session(dc).give(Diag::Counts(counts));
                        cap = None;
                        diag_cap = None;
                    }
                }
            }
        });

        (records, diags)
    }
}

enum LineOutcome<P> {
    Header,
    Bad(ParseError),
    Good(P),
}

#[inline]
fn parse_line<'a, F: LineFormat>(line: &Line<'a>) -> LineOutcome<F::Parsed<'a>> {
    if let Some(len) = line.overlong {
        return LineOutcome::Bad(ParseError::from(format!("line too long ({len} bytes)")));
    }
    if line.bytes.is_empty() {
        return LineOutcome::Bad(ParseError::fixed("empty line"));
    }
    let text = match std::str::from_utf8(line.bytes) {
        Ok(t) => t,
        Err(e) => {
            return LineOutcome::Bad(ParseError::from(format!(
                "invalid UTF-8 at byte {}",
                e.valid_up_to() + 1
            )));
        }
    };
    if F::is_header(text) {
        return LineOutcome::Header;
    }
    match F::parse(text) {
        Ok(p) => LineOutcome::Good(p),
        Err(e) => LineOutcome::Bad(e),
    }
}

/// Prints `NAME: error: MESSAGE` and ends the process with exit code 1.
///
/// Timely is fail-stop: a worker that stops alone would leave its peers waiting, so a
/// fatal data error ends the whole process at once.
pub fn fail(message: &str) -> ! {
    eprintln!("{}: error: {message}", crate::cli::program_name());
    std::process::exit(crate::cli::EXIT_FAILURE as i32)
}

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
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use rustc_hash::FxHashMap;

use serde::{Deserialize, Serialize};
use timely::dataflow::operators::generic::OutputBuilder;
use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;
use timely::dataflow::{Scope, Stream};

use super::window::Windowing;
use crate::metrics::Meters;
use crate::record::{LineFormat, ParseError};
use crate::source::lines::EXCERPT_BYTES;
use crate::source::live::{Feed, Wakers};
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

/// How ingest reads and stamps its input.
#[derive(Clone)]
pub struct IngestConfig {
    /// The input.
    pub input: InputSpec,
    /// Timestamp granularity.
    pub epoch: Duration,
    /// How far behind the largest event time seen the watermark trails; `None` holds it
    /// back until the input ends, which makes any order of a bounded input exact.
    pub lateness: Option<Duration>,
    /// After this long without input, the watermark follows the wall clock.
    pub idle_timeout: Option<Duration>,
    /// Fail on the first malformed line.
    pub strict: bool,
    /// Send rejected lines to the diagnostics sink (when they are written somewhere).
    pub keep_rejects: bool,
    /// Send late records to the diagnostics sink (when they are written somewhere).
    pub keep_late: bool,
    /// Longest accepted line.
    pub max_line: usize,
    /// The process's live feed, for live inputs.
    pub feed: Option<Feed>,
    /// Operators to wake when the job must stop.
    pub wakers: Wakers,
    /// Set when the job must stop: ingest ends its input.
    pub stop: Arc<AtomicBool>,
    /// The watermark of a live feed, shared by the process's workers: they all draw from
    /// one channel, so a worker that got no records must not hold the frontier back.
    pub shared_watermark: Arc<AtomicU64>,
    /// Process-wide meters.
    pub meters: Arc<Meters>,
    /// Which windows records close, for latency measurement.
    pub closing: Windowing,
}

impl IngestConfig {
    /// The same configuration, measuring latency up to the close of `windowing`'s windows.
    pub fn closing(&self, windowing: Windowing) -> IngestConfig {
        IngestConfig { closing: windowing, ..self.clone() }
    }

    /// The event time whose passing releases results for a record at `time`: the end of
    /// its first window, or of its epoch.
    fn closes(&self, time: Millis) -> Millis {
        let mut first = None;
        match self.closing {
            Windowing::Global => epoch_of(time, self.epoch) + self.epoch.millis(),
            w => {
                w.for_each_window(time, |end| {
                    first.get_or_insert(end);
                });
                first.unwrap_or(time)
            }
        }
    }
}

/// Makes printable text from the start of a line.
pub fn excerpt(bytes: &[u8]) -> String {
    let cut = &bytes[..bytes.len().min(EXCERPT_BYTES)];
    let text = String::from_utf8_lossy(cut);
    let mut out: String = text.chars().map(|c| if c.is_control() { '\u{fffd}' } else { c }).collect();
    if bytes.len() > EXCERPT_BYTES {
        out.push('…');
    }
    out
}

/// The records and the diagnostics that ingest produces.
pub type Ingested<'scope, D> = (Stream<'scope, Millis, Vec<Timed<D>>>, Stream<'scope, Millis, Vec<Diag>>);

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
        let activator = self.activator_for(info.address.clone());
        let (records_out, records) = builder.new_output();
        let (diags_out, diags) = builder.new_output();
        let mut records_out =
            OutputBuilder::<_, timely::container::CapacityContainerBuilder<Vec<Timed<D>>>>::from(records_out);
        let mut diags_out =
            OutputBuilder::<_, timely::container::CapacityContainerBuilder<Vec<Diag>>>::from(diags_out);

        let config = config.clone();
        let (part, parts) = (self.index(), self.peers());
        let mut reader: Option<Reader> = None;
        let mut open_error: Option<io::Error> = None;
        match config.input.open(part, parts, config.max_line, config.feed.as_ref()) {
            Ok(r) => reader = Some(r),
            Err(e) => open_error = Some(e),
        }
        config.wakers.register(self.worker().sync_activator_for(info.address.to_vec()));

        builder.build(move |mut caps| {
            let mut diag_cap = caps.pop();
            let mut cap = caps.pop();
            let mut counts = Counts::default();
            let mut max_seen: Option<Millis> = None;
            // The event-time watermark; with a lateness it trails the largest time seen.
            let mut watermark: Millis = 0;
            let mut last_data = Instant::now();
            let mut rejects: Vec<(u64, ParseError, String)> = Vec::new();
            let mut lates: Vec<(u64, Millis, Millis, String)> = Vec::new();
            // Records per (closing time, millisecond they were due, if scheduled).
            let mut arrivals: FxHashMap<(Millis, Option<u64>), u64> = FxHashMap::default();
            activator.activate();

            move |_frontiers| {
                let (Some(c), Some(dc)) = (cap.as_mut(), diag_cap.as_mut()) else { return };
                if let Some(e) = open_error.take() {
                    fail(&format!("{}: {}", config.input, crate::source::io_reason(&e)));
                }
                let reader = reader.as_mut().expect("reader opened");
                let before = counts;
                let shared = config.feed.is_some() && config.lateness.is_some();
                if shared {
                    watermark = watermark.max(config.shared_watermark.load(Ordering::Relaxed));
                }
                let schedule = reader.schedule();
                let state = if config.stop.load(Ordering::Relaxed) {
                    Poll::Done
                } else {
                    let mut records = records_out.activate();
                    let mut session = records.session(c);
                    let measure = config.meters.latency.is_some();
                    let read = reader.next_block(|line: Line<'_>| {
                        let parsed = match parse_line::<F>(&line) {
                            LineOutcome::Header => return,
                            LineOutcome::Bad(reason) => {
                                counts.read += 1;
                                counts.rejected += 1;
                                if config.keep_rejects || config.strict {
                                    rejects.push((line.index, reason, excerpt(line.bytes)));
                                }
                                return;
                            }
                            LineOutcome::Good(parsed) => parsed,
                        };
                        counts.read += 1;
                        counts.bytes += line.bytes.len() as u64 + 1;
                        let time = F::event_time(&parsed);
                        // The watermark moves per record, so which records are late depends
                        // only on their order, not on how the input was cut into blocks.
                        if let Some(l) = config.lateness {
                            if time < watermark {
                                counts.late += 1;
                                if config.keep_late {
                                    lates.push((line.index, time, watermark, excerpt(line.bytes)));
                                }
                                return;
                            }
                            watermark = watermark.max(time.saturating_sub(l.millis()));
                        }
                        max_seen = Some(max_seen.map_or(time, |m| m.max(time)));
                        counts.accepted += 1;
                        if measure {
                            let due =
                                schedule.map(|(_, rate)| (line.index as u128 * 1000 / rate as u128) as u64);
                            *arrivals.entry((config.closes(time), due)).or_default() += 1;
                        }
                        session.give((project(&parsed), time));
                    });
                    match read {
                        Ok(s) => s,
                        Err(e) => {
                            fail(&format!("{}: read error: {}", config.input, crate::source::io_reason(&e)))
                        }
                    }
                };
                let now = Instant::now();
                if counts.read > before.read {
                    last_data = now;
                }
                let meters = &config.meters;
                meters.read.fetch_add(counts.read - before.read, Ordering::Relaxed);
                meters.rejected.fetch_add(counts.rejected - before.rejected, Ordering::Relaxed);
                meters.late.fetch_add(counts.late - before.late, Ordering::Relaxed);
                if let Some(m) = max_seen {
                    meters.max_event.fetch_max(m + 1, Ordering::Relaxed);
                }
                if !arrivals.is_empty()
                    && let Some(latency) = &meters.latency
                {
                    let mut latency = latency.lock().expect("latency lock");
                    for ((closes, due), n) in arrivals.drain() {
                        let at = match (schedule, due) {
                            (Some((start, _)), Some(ms)) => start + std::time::Duration::from_millis(ms),
                            _ => now,
                        };
                        latency.arrived(closes, at, n);
                    }
                }

                if !rejects.is_empty() || !lates.is_empty() {
                    let mut diags = diags_out.activate();
                    let mut session = diags.session(dc);
                    for (index, reason, text) in rejects.drain(..) {
                        let (origin, line) = reader.locate(index, &config.input);
                        if config.strict {
                            fail(&format!("{origin}:{line}: {reason}"));
                        }
                        session.give(Diag::Reject(Rejected {
                            origin,
                            line,
                            reason: reason.to_string(),
                            text,
                        }));
                    }
                    for (index, event_time, watermark, text) in lates.drain(..) {
                        let (origin, line) = reader.locate(index, &config.input);
                        session.give(Diag::Late(Late { origin, line, event_time, watermark, text }));
                    }
                }

                // Sources that know their future (a paced generator) and idle inputs
                // (after --idle-timeout, following the wall clock) move the watermark too.
                if let Some(hint) = reader.watermark_hint() {
                    watermark = watermark.max(hint);
                }
                if let (Some(idle), Some(l), Poll::Idle) = (config.idle_timeout, config.lateness, state) {
                    let quiet = now.duration_since(last_data);
                    if quiet >= idle.to_std() {
                        // Event time is taken to advance with the wall clock from the last
                        // record seen; an input that never sent one follows the wall clock.
                        let seen = max_seen.or_else(|| {
                            Some(config.meters.max_event.load(Ordering::Relaxed))
                                .filter(|&m| m > 0)
                                .map(|m| m - 1)
                        });
                        let now_event = match seen {
                            Some(m) => m + quiet.as_millis() as u64,
                            None => crate::time::now_millis(),
                        };
                        watermark = watermark.max(now_event.saturating_sub(l.millis()));
                    }
                }
                if shared && config.shared_watermark.fetch_max(watermark, Ordering::Relaxed) < watermark {
                    config.wakers.wake_all();
                }
                let frontier = epoch_of(watermark, config.epoch);
                if config.lateness.is_some() && frontier > *c.time() {
                    c.downgrade(&frontier);
                    dc.downgrade(&frontier);
                }

                match state {
                    Poll::More => activator.activate(),
                    Poll::Wait(delay) => activator.activate_after(delay),
                    Poll::Idle => {
                        if let Some(idle) = config.idle_timeout {
                            // Keep checking while idle so the watermark can follow the clock.
                            let period = idle
                                .to_std()
                                .min(config.epoch.to_std())
                                .max(std::time::Duration::from_millis(10));
                            activator.activate_after(period);
                        }
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

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

use std::collections::{BTreeMap, VecDeque};
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

use rustc_hash::FxHashMap;

use serde::{Deserialize, Serialize};
use timely::dataflow::operators::Capability;
use timely::dataflow::operators::generic::OutputBuilder;
use timely::dataflow::operators::generic::builder_rc::OperatorBuilder;
use timely::dataflow::operators::probe::{Handle as ProbeHandle, Probe};
use timely::dataflow::{Scope, Stream};

use super::watermark::Watermark;
use super::window::Windowing;
use crate::checkpoint::snapshot::Participant;
use crate::diag::{Counts, Diag, EXCERPT_BYTES, Late, Rejected, excerpt};
use crate::exit::{fail, io_reason};
use crate::metrics::Meters;
use crate::record::{LineFormat, ParseError};
use crate::source::live::{Feed, Wakers};
use crate::source::{Flaw, InputSpec, Line, Poll, Position, Reader};
use crate::time::{Duration, EventTime, Millis, epoch_of};

/// A record with its event time.
pub type Timed<D> = (D, Millis);

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
    /// Reads `input` with timestamps rounded to `epoch` and the given lateness; every
    /// other setting at its default: no idle timeout, not strict, rejected and late
    /// lines kept for the diagnostics sink, lines up to 64 KiB, no live feed.
    pub fn new(input: InputSpec, epoch: Duration, lateness: Option<Duration>, meters: Arc<Meters>) -> Self {
        IngestConfig {
            input,
            epoch,
            lateness,
            idle_timeout: None,
            strict: false,
            keep_rejects: true,
            keep_late: true,
            max_line: 65_536,
            feed: None,
            wakers: Wakers::default(),
            stop: Arc::new(AtomicBool::new(false)),
            shared_watermark: Arc::new(AtomicU64::new(0)),
            meters,
            closing: Windowing::Global,
        }
    }

    /// The same configuration, measuring latency up to the close of `windowing`'s windows.
    pub fn closing(&self, windowing: Windowing) -> IngestConfig {
        IngestConfig { closing: windowing, ..self.clone() }
    }

    /// The event time whose passing releases results for a record at `time`: the end of
    /// its first window, or of its epoch.
    fn closes(&self, time: Millis) -> Millis {
        let mut first = None;
        match self.closing {
            Windowing::Global => epoch_of(time, self.epoch).saturating_add(self.epoch.millis()),
            w => {
                w.for_each_window(time, |end| {
                    first.get_or_insert(end);
                });
                first.unwrap_or(time)
            }
        }
    }
}

/// The records and the diagnostics that ingest produces.
pub type Ingested<'scope, T, D> = (Stream<'scope, T, Vec<Timed<D>>>, Stream<'scope, T, Vec<Diag>>);

/// Reads the input into a stream of timestamped records, plus a diagnostics stream.
pub trait Ingest<'scope, T: EventTime> {
    /// Parses every line of this worker's share of `config.input` as `F` and maps each
    /// record through `project`.
    fn ingest<F, D, P>(self, config: &IngestConfig, project: P) -> Ingested<'scope, T, D>
    where
        F: LineFormat,
        D: Clone + 'static,
        P: for<'a> FnMut(&F::Parsed<'a>) -> D + 'static;

    /// The same, but `check` may reject a parsed record (an unknown sensor, say): the
    /// line is then counted and written to the rejects like a line that did not parse,
    /// with its line number and `check`'s reason.
    fn ingest_checked<F, D, P>(self, config: &IngestConfig, check: P) -> Ingested<'scope, T, D>
    where
        F: LineFormat,
        D: Clone + 'static,
        P: for<'a> FnMut(&F::Parsed<'a>) -> Result<D, ParseError> + 'static;

    /// The same, with each record's line number (a live feed's: its own, such as a Kafka
    /// offset) written into it by `set_line`, for operators downstream that reject
    /// records themselves (duplicates) and must say where they came from.
    fn ingest_numbered<F, D, P>(
        self,
        config: &IngestConfig,
        check: P,
        set_line: fn(&mut D, u64),
    ) -> Ingested<'scope, T, D>
    where
        F: LineFormat,
        D: Clone + 'static,
        P: for<'a> FnMut(&F::Parsed<'a>) -> Result<D, ParseError> + 'static;
}

impl<'scope, T: EventTime> Ingest<'scope, T> for Scope<'scope, T> {
    fn ingest<F, D, P>(self, config: &IngestConfig, mut project: P) -> Ingested<'scope, T, D>
    where
        F: LineFormat,
        D: Clone + 'static,
        P: for<'a> FnMut(&F::Parsed<'a>) -> D + 'static,
    {
        self.ingest_checked::<F, D, _>(config, move |parsed| Ok(project(parsed)))
    }

    fn ingest_checked<F, D, P>(self, config: &IngestConfig, project: P) -> Ingested<'scope, T, D>
    where
        F: LineFormat,
        D: Clone + 'static,
        P: for<'a> FnMut(&F::Parsed<'a>) -> Result<D, ParseError> + 'static,
    {
        ingest::<T, F, D, _>(self, config, None, project)
    }

    fn ingest_numbered<F, D, P>(
        self,
        config: &IngestConfig,
        project: P,
        set_line: fn(&mut D, u64),
    ) -> Ingested<'scope, T, D>
    where
        F: LineFormat,
        D: Clone + 'static,
        P: for<'a> FnMut(&F::Parsed<'a>) -> Result<D, ParseError> + 'static,
    {
        ingest::<T, F, D, _>(self, config, Some(set_line), project)
    }
}

/// The ingest operator. With `number`, each record is numbered by its line once its
/// block is read (a line's number is known only then).
fn ingest<'scope, T, F, D, P>(
    scope: Scope<'scope, T>,
    config: &IngestConfig,
    number: Option<fn(&mut D, u64)>,
    mut project: P,
) -> Ingested<'scope, T, D>
where
    T: EventTime,
    F: LineFormat,
    D: Clone + 'static,
    P: for<'a> FnMut(&F::Parsed<'a>) -> Result<D, ParseError> + 'static,
{
    let mut builder = OperatorBuilder::new(format!("Ingest({})", F::NAME), scope);
    let info = builder.operator_info();
    let activator = scope.activator_for(info.address.clone());
    let (records_out, records) = builder.new_output();
    let (diags_out, diags) = builder.new_output();
    // The records' frontier over every worker: how far the slowest has read.
    let read_by_all = ProbeHandle::<T>::new();
    let slowest = read_by_all.clone();
    let mut records_out =
        OutputBuilder::<_, timely::container::CapacityContainerBuilder<Vec<Timed<D>>>>::from(records_out);
    let mut diags_out =
        OutputBuilder::<_, timely::container::CapacityContainerBuilder<Vec<Diag>>>::from(diags_out);

    let config = config.clone();
    let (part, parts) = (scope.index(), scope.peers());
    // Only an input that can resume from a position, or from its journal, takes part
    // in snapshots.
    let takes_part = config.input.resumable() || config.input.journaled();
    let participant = if T::ROUNDS && takes_part { Participant::register(part, "Ingest") } else { None };
    let restored: Option<IngestState> = participant.as_ref().and_then(Participant::restore);
    let mut reader: Option<Reader> = None;
    let mut open_error: Option<io::Error> = None;
    let at = restored.as_ref().and_then(|r| r.at);
    match config.input.open_at(part, parts, config.max_line, config.feed.as_ref(), at) {
        Ok(r) => reader = Some(r),
        Err(e) => open_error = Some(e),
    }
    config.wakers.register(scope.worker().sync_activator_for(info.address.to_vec()));

    builder.build(move |mut caps| {
        let mut diag_cap = caps.pop();
        let mut cap = caps.pop();
        let mut counts = Counts::default();
        let shared = config.feed.as_ref().map(|_| Arc::clone(&config.shared_watermark));
        let mut watermark = Watermark::new(config.lateness, config.idle_timeout, shared);
        // Snapshots: the round being read, when to cut the next, and whether the
        // restored state had already read everything.
        let mut round = participant.as_ref().map_or(0, Participant::round);
        let mut next_cut = participant.as_ref().map(|p| Instant::now() + p.snapshots().pause());
        let mut finished_before = false;
        let mut restored_origins = BTreeMap::new();
        if let Some(state) = restored {
            restored_origins = state.origins;
            counts = state.counts;
            watermark.restore(state.watermark);
            finished_before = state.done;
            let meters = &config.meters;
            meters.read.fetch_add(counts.read, Ordering::Relaxed);
            meters.rejected.fetch_add(counts.rejected, Ordering::Relaxed);
            meters.late.fetch_add(counts.late, Ordering::Relaxed);
            if let Some(m) = watermark.max_seen() {
                meters.max_event.fetch_max(m + 1, Ordering::Relaxed);
            }
            let at = |c: &Capability<T>| {
                let event = if watermark.moves() { watermark.frontier(config.epoch) } else { 0 };
                c.time().at_event(event).at_round(round)
            };
            for c in cap.iter_mut().chain(diag_cap.iter_mut()) {
                c.downgrade(&at(c));
            }
        }
        let partitioned = config.feed.as_ref().map(|f| Arc::clone(&f.origins)).filter(|o| o.partitioned());
        if partitioned.is_some() {
            watermark = watermark.partitioned();
        }
        let mut own_origins = restored_origins;
        if let Some(origins) = &partitioned {
            let now = Instant::now();
            for (origin, &max) in &own_origins {
                origins.seen(origin, max, now);
            }
            // Judge the first batch after a restore by the restored partitions too.
            if !own_origins.is_empty() {
                watermark.follow(origins.low(now, config.idle_timeout.map(Duration::to_std)));
            }
        }
        let mut rejects: Vec<(u64, ParseError, String)> = Vec::new();
        // With `number`: the block's records, waiting for their line numbers.
        let mut to_number: Vec<(D, Millis, u64)> = Vec::new();
        let mut lates: Vec<(u64, Millis, Millis, String)> = Vec::new();
        // Records per (closing time, millisecond they were due, if scheduled).
        // Accepted records per (the time that releases them, when their wait began:
        // ms after a paced generator's start, or a published time).
        let mut arrivals: FxHashMap<(Millis, Option<u64>), u64> = FxHashMap::default();
        // Accepted lines of a block whose wait may begin at their published time.
        let mut unpaced: Vec<(Millis, u64)> = Vec::new();
        // This worker's event-time frontier after each of its last blocks, while it
        // reads a file or an unpaced generator with a moving watermark.
        let mut marks: VecDeque<Millis> = VecDeque::with_capacity(AHEAD_BLOCKS + 1);
        activator.activate();

        move |_frontiers| {
            let (Some(c), Some(dc)) = (cap.as_mut(), diag_cap.as_mut()) else { return };
            if finished_before {
                // Its records and counts are in the restored state downstream.
                cap = None;
                diag_cap = None;
                return;
            }
            if let Some(e) = open_error.take() {
                fail(&format!("{}: {}", config.input, io_reason(&e)));
            }
            let reader = reader.as_mut().expect("reader opened");
            let before = counts;
            watermark.catch_up();
            let schedule = reader.schedule();
            // A live feed ends by itself on a stop once it has handed out all it read;
            // a file or a generator just stops.
            let stopped = config.stop.load(Ordering::Relaxed) && !matches!(reader, Reader::Live(_));
            // A live feed's batches carry their round: cut up to the next one's
            // before applying it (a file or a generator cuts by the clock, below).
            if let (Some(p), Reader::Live(live)) = (&participant, &mut *reader) {
                let reached = live.reached();
                if reached > round {
                    let watermark = watermark.position();
                    while round < reached {
                        round += 1;
                        let origins = own_origins.clone();
                        p.save(round, &IngestState { at: None, counts, watermark, done: false, origins });
                    }
                    c.downgrade(&c.time().at_round(round));
                    dc.downgrade(&dc.time().at_round(round));
                }
            }
            // Blocks this worker reads past the slowest worker's frontier wait downstream
            // until that frontier passes them: past `AHEAD_BLOCKS`, it waits instead.
            let ahead = marks.len() == AHEAD_BLOCKS
                && slowest
                    .with_frontier(|f| f.iter().map(|t| t.event()).min())
                    .is_some_and(|low| low < marks[0]);
            let state = if stopped {
                Poll::Done
            } else if ahead {
                Poll::Wait(AHEAD_WAIT)
            } else {
                let mut records = records_out.activate();
                let mut session = records.session(c);
                let measure = config.meters.latency.is_some();
                let read = reader.next_block(|line: Line<'_>| {
                    let outcome = match parse_line::<F>(&line) {
                        LineOutcome::Good(parsed) => match project(&parsed) {
                            Ok(record) => LineOutcome::Good((record, F::event_time(&parsed))),
                            Err(reason) => LineOutcome::Bad(reason),
                        },
                        LineOutcome::Header => LineOutcome::Header,
                        LineOutcome::Bad(reason) => LineOutcome::Bad(reason),
                    };
                    let (record, time) = match outcome {
                        LineOutcome::Header => return,
                        LineOutcome::Bad(reason) => {
                            counts.read += 1;
                            counts.rejected += 1;
                            if config.keep_rejects || config.strict {
                                rejects.push((line.index, reason, excerpt(line.bytes, EXCERPT_BYTES)));
                            }
                            return;
                        }
                        LineOutcome::Good(good) => good,
                    };
                    counts.read += 1;
                    counts.bytes += line.bytes.len() as u64 + 1;
                    if let Err(behind) = watermark.observe(time) {
                        counts.late += 1;
                        if config.keep_late {
                            lates.push((line.index, time, behind, excerpt(line.bytes, EXCERPT_BYTES)));
                        }
                        return;
                    }
                    counts.accepted += 1;
                    if measure {
                        let closes = config.closes(time);
                        match schedule {
                            Some((_, rate)) => {
                                let due = (line.index as u128 * 1000 / rate as u128) as u64;
                                *arrivals.entry((closes, Some(due))).or_default() += 1;
                            }
                            None => unpaced.push((closes, line.index)),
                        }
                    }
                    match number {
                        Some(_) => to_number.push((record, time, line.index)),
                        None => session.give((record, time)),
                    }
                });
                if let Some(number) = number {
                    for (mut record, time, index) in to_number.drain(..) {
                        number(&mut record, reader.line_of(index));
                        session.give((record, time));
                    }
                }
                match read {
                    Ok(s) => s,
                    Err(e) => fail(&format!("{}: read error: {}", config.input, io_reason(&e))),
                }
            };
            let now = Instant::now();
            for (closes, index) in unpaced.drain(..) {
                *arrivals.entry((closes, reader.published(index))).or_default() += 1;
            }
            if counts.read > before.read {
                watermark.data_at(now);
            }
            if let (Some(origins), Reader::Live(live)) = (&partitioned, &*reader)
                && watermark.is_partitioned()
            {
                if let Some(max) = watermark.take_block_max() {
                    origins.seen(live.origin(), max, now);
                    if participant.is_some() {
                        match own_origins.get_mut(live.origin()) {
                            Some(own) => *own = (*own).max(max),
                            None => {
                                own_origins.insert(live.origin().to_owned(), max);
                            }
                        }
                    }
                }
                watermark.follow(origins.low(now, config.idle_timeout.map(Duration::to_std)));
            }
            let meters = &config.meters;
            meters.read.fetch_add(counts.read - before.read, Ordering::Relaxed);
            meters.rejected.fetch_add(counts.rejected - before.rejected, Ordering::Relaxed);
            meters.late.fetch_add(counts.late - before.late, Ordering::Relaxed);
            if let Some(m) = watermark.max_seen() {
                meters.max_event.fetch_max(m + 1, Ordering::Relaxed);
            }
            if !arrivals.is_empty()
                && let Some(latency) = &meters.latency
            {
                let mut latency = latency.lock().expect("latency lock");
                let now_ms = crate::time::now_millis();
                for ((closes, due), n) in arrivals.drain() {
                    let at = match (schedule, due) {
                        (Some((start, _)), Some(ms)) => start + std::time::Duration::from_millis(ms),
                        // Published `ms` since the Unix epoch (a clock ahead of ours: now).
                        (None, Some(ms)) => now
                            .checked_sub(std::time::Duration::from_millis(now_ms.saturating_sub(ms)))
                            .unwrap_or(now),
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
                    session.give(Diag::Reject(Rejected { origin, line, reason: reason.to_string(), text }));
                }
                for (index, event_time, watermark, text) in lates.drain(..) {
                    let (origin, line) = reader.locate(index, &config.input);
                    session.give(Diag::Late(Late { origin, line, event_time, watermark, text }));
                }
            }

            // Sources that know their future (a paced generator) and idle inputs
            // (after --idle-timeout, following the wall clock) move the watermark too.
            if let Some(hint) = reader.watermark_hint() {
                watermark.hint(hint);
            }
            if state == Poll::Idle {
                let seen = Some(meters.max_event.load(Ordering::Relaxed)).filter(|&m| m > 0).map(|m| m - 1);
                watermark.idle(now, seen, crate::time::now_millis());
            }
            if watermark.publish() {
                config.wakers.wake_all();
            }
            // A cut: what was read so far is round `round`'s state; what is read
            // from now on carries the next round.
            if let (Some(p), Some(due)) = (&participant, next_cut)
                && state != Poll::Done
                && now >= due
                && let Some(at) = reader.position()
            {
                round += 1;
                let watermark = watermark.position();
                let origins = own_origins.clone();
                p.save(round, &IngestState { at: Some(at), counts, watermark, done: false, origins });
                next_cut = Some(Instant::now() + p.snapshots().pause());
            }
            let frontier = watermark.frontier(config.epoch);
            let event = if watermark.moves() { frontier.max(c.time().event()) } else { c.time().event() };
            if event != c.time().event() || round != c.time().round() {
                c.downgrade(&c.time().at_event(event).at_round(round));
                dc.downgrade(&dc.time().at_event(event).at_round(round));
            }
            // One file's interleaved stripes, or a generator's rows: the workers read the
            // same stretch of event time. (A live feed is paced by its channel, a paced
            // generator by its clock, and a process's own shard files may hold other times
            // than the others', which it should not wait to read.)
            if state == Poll::More
                && watermark.moves()
                && schedule.is_none()
                && matches!(reader, Reader::File(_) | Reader::Gen(_))
            {
                marks.push_back(event);
                if marks.len() > AHEAD_BLOCKS {
                    marks.pop_front();
                }
            }

            match state {
                Poll::More => activator.activate(),
                Poll::Wait(delay) => activator.activate_after(delay),
                Poll::Idle => {
                    // Keep checking while idle so the watermark can follow the clock.
                    if let Some(period) = watermark.idle_period(config.epoch) {
                        activator.activate_after(period);
                    }
                }
                Poll::Done => {
                    diags_out.activate().session(dc).give(Diag::Counts(counts));
                    if let Some(p) = &participant {
                        let watermark = watermark.position();
                        let origins = own_origins.clone();
                        p.finish(&IngestState { at: None, counts, watermark, done: true, origins });
                    }
                    cap = None;
                    diag_cap = None;
                }
            }
        }
    });

    (records.probe_with(&read_by_all), diags)
}

/// Blocks a worker may read past the slowest worker's event-time frontier: with one
/// worker busier than the others (worker 0 writes the sinks), the others would read on,
/// and their records would wait downstream for the slowest's frontier, so memory would
/// grow with the history. Results do not depend on it: only when records are read.
const AHEAD_BLOCKS: usize = 32;
/// How long a worker that is that far ahead waits before it looks again.
const AHEAD_WAIT: std::time::Duration = std::time::Duration::from_millis(2);

/// Ingest's part of a snapshot: where its reader resumes and what it has counted.
#[derive(Serialize, Deserialize)]
struct IngestState {
    /// The reader's position (in a file's byte range, or a generator's rows).
    at: Option<Position>,
    counts: Counts,
    /// The watermark and the largest event time seen.
    watermark: (Millis, Option<Millis>),
    /// Everything was read: its records and counts went downstream before the round.
    done: bool,
    /// Over a partitioned input: the largest event time this worker applied from each
    /// origin. Its own only: the process-wide table may hold other workers' batches of
    /// later rounds.
    origins: BTreeMap<String, Millis>,
}

enum LineOutcome<P> {
    Header,
    Bad(ParseError),
    Good(P),
}

#[inline]
fn parse_line<'a, F: LineFormat>(line: &Line<'a>) -> LineOutcome<F::Parsed<'a>> {
    match line.flaw {
        Some(Flaw::TooLong(len)) => {
            return LineOutcome::Bad(ParseError::from(format!("line too long ({len} bytes)")));
        }
        Some(Flaw::Truncated) => return LineOutcome::Bad(ParseError::fixed("truncated")),
        None => {}
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

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use timely::dataflow::operators::Inspect;

    use super::*;
    use crate::record::transaction::{HEADER, TransactionCsv};

    fn line(id: u32, time: &str) -> String {
        format!("T{id},C1,Books,10.00,1,{time},30,Paris,Card,10.00")
    }

    /// Ingests `text` as a transactions file on `workers` workers; returns the accepted
    /// ids with their times, and the diagnostics.
    fn ingest(text: &str, workers: usize, lateness: Option<Duration>) -> (Vec<(String, Millis)>, Vec<Diag>) {
        let dir = std::env::temp_dir().join(format!(
            "kappa-ingest-{}-{workers}-{}",
            std::process::id(),
            text.len()
        ));
        std::fs::write(&dir, text).unwrap();
        let config = IngestConfig::new(
            InputSpec::File(dir.clone()),
            Duration(1000),
            lateness,
            Arc::new(Meters::new(false)),
        );
        let records: Arc<Mutex<Vec<(String, Millis)>>> = Arc::default();
        let diags: Arc<Mutex<Vec<Diag>>> = Arc::default();
        let (r, d) = (Arc::clone(&records), Arc::clone(&diags));
        timely::execute(timely::Config::process(workers), move |worker| {
            let (r, d, config) = (Arc::clone(&r), Arc::clone(&d), config.clone());
            worker.dataflow::<Millis, _, _>(|scope| {
                let (records, diags) =
                    scope.ingest::<TransactionCsv, _, _>(&config, |t| t.transaction_id.to_string());
                records.inspect(move |x| r.lock().unwrap().push(x.clone()));
                diags.inspect(move |x| d.lock().unwrap().push(x.clone()));
            });
        })
        .unwrap();
        std::fs::remove_file(dir).unwrap();
        let mut records = records.lock().unwrap().clone();
        records.sort();
        let mut diags = diags.lock().unwrap().clone();
        diags.sort();
        (records, diags)
    }

    #[test]
    fn every_line_is_accepted_rejected_or_late_exactly_once() {
        let text = [
            HEADER.to_owned(),
            line(1, "2026-10-01T00:00:10Z"),
            "not,a,transaction".to_owned(),
            line(2, "2026-10-01T00:00:20Z"),
            line(3, "2026-10-01T00:00:05Z"),
            String::new(),
            line(4, "2026-10-01T00:00:30Z"),
        ]
        .join("\n");
        for workers in [1, 2] {
            // A bounded input without lateness: nothing is late.
            let (records, diags) = ingest(&text, workers, None);
            assert_eq!(records.iter().map(|r| r.0.as_str()).collect::<Vec<_>>(), ["T1", "T2", "T3", "T4"]);
            let rejected: Vec<(u64, String)> = diags
                .iter()
                .filter_map(|d| match d {
                    Diag::Reject(r) => Some((r.line, r.reason.clone())),
                    _ => None,
                })
                .collect();
            assert_eq!(rejected.len(), 2, "{diags:?}");
            assert_eq!((rejected[0].0, rejected[1].0), (3, 6), "line numbers count the header");
            assert_eq!(rejected[1].1, "empty line");
            let mut total = Counts::default();
            for d in &diags {
                if let Diag::Counts(c) = d {
                    total += *c;
                }
            }
            assert_eq!(
                (total.read, total.accepted, total.rejected, total.late),
                (6, 4, 2, 0),
                "-w {workers}"
            );
        }
        // With no lateness in one reader, T3 (5 s behind T2) is late, and named.
        let (records, diags) = ingest(&text, 1, Some(Duration(0)));
        assert_eq!(records.len(), 3);
        let late: Vec<&Late> =
            diags.iter().filter_map(|d| if let Diag::Late(l) = d { Some(l) } else { None }).collect();
        assert_eq!(late.len(), 1);
        assert_eq!((late[0].line, late[0].watermark - late[0].event_time), (5, 15_000));
    }
}

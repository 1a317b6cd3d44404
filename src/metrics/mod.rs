//! Throughput, latency and progress: what a running job can tell about itself.
//!
//! [`Meters`] are process-wide atomics that ingest and sinks update and that the
//! progress thread reads, so watching a job costs its workers nothing but a few relaxed
//! atomic adds per block. Output latency is kept in an HdrHistogram: ingest notes when
//! each block of records arrived and which event time closes their results; when the
//! output frontier passes that time, the wait is recorded once per record. When the job
//! is watched (`--http`), sinks also keep the latest rows of each output ([`latest`]).

pub mod latest;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::diag::Counts;
use crate::time::Millis;

/// Output latency: arrivals waiting for the frontier, and the waits recorded so far.
pub struct Latency {
    pending: BTreeMap<Millis, Vec<(Instant, u64)>>,
    /// Waits in microseconds, from a record's arrival to its result's release.
    pub histogram: Histogram<u64>,
}

impl Default for Latency {
    fn default() -> Self {
        Latency {
            pending: BTreeMap::new(),
            histogram: Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("bounds"),
        }
    }
}

impl Latency {
    /// Notes that `count` records arrived at `at` whose results are released when the
    /// frontier reaches `closes`.
    pub fn arrived(&mut self, closes: Millis, at: Instant, count: u64) {
        self.pending.entry(closes).or_default().push((at, count));
    }

    /// Records the waits of every arrival whose result the frontier `frontier` releases.
    pub fn released(&mut self, frontier: Millis, now: Instant) {
        while let Some(entry) = self.pending.first_entry() {
            if *entry.key() > frontier {
                break;
            }
            for (at, count) in entry.remove() {
                let wait = now.saturating_duration_since(at).as_micros().max(1) as u64;
                let _ = self.histogram.record_n(wait.min(self.histogram.high()), count);
            }
        }
    }

    /// `p50 … max` of the recorded waits, in milliseconds.
    pub fn describe(&self) -> String {
        let h = &self.histogram;
        let ms = |v: u64| v as f64 / 1000.0;
        format!(
            "latency p50 {:.1} ms, p99 {:.1} ms, p99.9 {:.1} ms, max {:.1} ms over {} records",
            ms(h.value_at_quantile(0.5)),
            ms(h.value_at_quantile(0.99)),
            ms(h.value_at_quantile(0.999)),
            ms(h.max()),
            h.len()
        )
    }
}

/// Process-wide meters of a running job.
pub struct Meters {
    /// Data lines seen.
    pub read: AtomicU64,
    /// Lines rejected.
    pub rejected: AtomicU64,
    /// Records behind the watermark.
    pub late: AtomicU64,
    /// Largest event time seen, plus one (0: none yet).
    pub max_event: AtomicU64,
    /// The output frontier: results for event times below it have been released.
    pub output_frontier: AtomicU64,
    /// The last output frontier before the input closed.
    pub last_open_frontier: AtomicU64,
    /// Result rows written.
    pub rows_out: AtomicU64,
    /// TCP clients refused (too many connections, or no thread for one).
    pub refused: AtomicU64,
    /// Output latency, when measured (live inputs).
    pub latency: Option<Mutex<Latency>>,
    /// The latest rows of each output, when the job is watched ([`Meters::watched`]).
    pub latest: Option<latest::Latest>,
    /// Output commits, with `--checkpoint` ([`Meters::checkpointed`]).
    pub commits: Option<Commits>,
}

/// Commits of output files to the checkpoint folder.
#[derive(Default)]
pub struct Commits {
    /// Commits made (each file counts).
    pub count: AtomicU64,
    /// Time spent committing, in nanoseconds: flush, sync, record, rename.
    pub nanos: AtomicU64,
    /// When the last commit finished, in milliseconds since the Unix epoch (0: none yet).
    pub last_unix_ms: AtomicU64,
}

impl Commits {
    /// Notes a commit that took `took`.
    pub fn made(&self, took: Duration) {
        self.count.fetch_add(1, Ordering::Relaxed);
        self.nanos.fetch_add(took.as_nanos() as u64, Ordering::Relaxed);
        self.last_unix_ms.store(crate::time::now_millis(), Ordering::Relaxed);
    }
}

impl Meters {
    /// Meters, measuring latency if `latency` is set.
    pub fn new(latency: bool) -> Self {
        Meters {
            read: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            late: AtomicU64::new(0),
            max_event: AtomicU64::new(0),
            output_frontier: AtomicU64::new(0),
            last_open_frontier: AtomicU64::new(0),
            rows_out: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            latency: latency.then(|| Mutex::new(Latency::default())),
            latest: None,
            commits: None,
        }
    }

    /// The same meters, counting output commits.
    pub fn checkpointed(self) -> Self {
        Meters { commits: Some(Commits::default()), ..self }
    }

    /// The same meters, keeping the last `rows` rows of each output for watchers.
    pub fn watched(self, rows: usize) -> Self {
        Meters { latest: Some(latest::Latest::new(rows)), ..self }
    }

    /// Notes the output frontier; releases latency waits it ends.
    pub fn output_frontier_is(&self, frontier: Millis) {
        if frontier < Millis::MAX {
            self.last_open_frontier.fetch_max(frontier, Ordering::Relaxed);
        }
        if self.output_frontier.fetch_max(frontier, Ordering::Relaxed) < frontier
            && let Some(latency) = &self.latency
        {
            latency.lock().expect("latency lock").released(frontier, Instant::now());
        }
    }

    /// One progress line comparing now with `last` (the previous reading and its time).
    pub fn progress_line(&self, last: &mut (Instant, u64, u64), started: Instant) -> String {
        let now = Instant::now();
        let read = self.read.load(Ordering::Relaxed);
        let rows = self.rows_out.load(Ordering::Relaxed);
        let secs = now.duration_since(last.0).as_secs_f64().max(1e-9);
        let (rate_in, rate_out) = ((read - last.1) as f64 / secs, (rows - last.2) as f64 / secs);
        *last = (now, read, rows);
        let frontier = self.output_frontier.load(Ordering::Relaxed);
        let max_event = self.max_event.load(Ordering::Relaxed);
        let wall = crate::time::now_millis();
        let lag = |behind: u64| -> String {
            if frontier == u64::MAX {
                "closed".into()
            } else if frontier == 0 || behind == 0 {
                "-".into()
            } else {
                format!("{:.3}s", behind.saturating_sub(frontier) as f64 / 1000.0)
            }
        };
        format!(
            "progress: {:.1}s in {:.0}/s out {:.0}/s records {} late {} rejected {} frontier behind wall {} behind max event {}",
            now.duration_since(started).as_secs_f64(),
            rate_in,
            rate_out,
            read,
            self.late.load(Ordering::Relaxed),
            self.rejected.load(Ordering::Relaxed),
            lag(wall),
            lag(max_event),
        )
    }
}

/// This process's resident memory in bytes, from `/proc/self/statm` (0 where there is none).
pub fn resident_bytes() -> u64 {
    let Ok(statm) = std::fs::read_to_string("/proc/self/statm") else { return 0 };
    // The second field is resident pages.
    let pages: u64 = statm.split_whitespace().nth(1).and_then(|p| p.parse().ok()).unwrap_or(0);
    // SAFETY: sysconf only reads a configuration value.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    pages * page.max(0) as u64
}

/// What a finished job reports on stderr.
#[derive(Clone, Debug)]
pub struct Summary {
    /// Ingest counts over all workers and processes.
    pub counts: Counts,
    /// Result rows written.
    pub rows_out: u64,
    /// Wall-clock time from start to finish.
    pub elapsed: Duration,
    /// Latency, for live inputs.
    pub latency: Option<String>,
    /// TCP clients this process refused.
    pub refused: u64,
    /// How far the last open frontier trailed the largest event time, for live inputs.
    pub frontier_lag: Option<Duration>,
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.elapsed.as_secs_f64();
        let rate = if secs > 0.0 { self.counts.read as f64 / secs } else { 0.0 };
        write!(
            f,
            "summary: read {} records, rejected {}, late {}, wrote {} rows in {:.3}s ({:.0} records/s)",
            self.counts.read, self.counts.rejected, self.counts.late, self.rows_out, secs, rate
        )?;
        if let Some(lag) = self.frontier_lag {
            write!(f, "; frontier lag {:.3}s", lag.as_secs_f64())?;
        }
        if let Some(latency) = &self.latency {
            write!(f, "; {latency}")?;
        }
        if self.refused > 0 {
            write!(f, "; refused {} tcp connections", self.refused)?;
        }
        Ok(())
    }
}
